//! Tags attached to machines.

use async_trait::async_trait;
use openframe_core::{
    Page, PageRequest, Result, SortDirection, SortField, SortSpec, Tag, TagId, TenantId,
};

use super::{DocumentRepository, StoreSortField, search_filter};
use crate::entity::{Entity, entity_basics};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores tags. Names are unique per tenant, case-insensitively.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// repos.tags.insert(&tenant, Tag::new("Servers", SystemClock.now())).await?;
/// let dup = repos.tags.insert(&tenant, Tag::new("servers", SystemClock.now())).await;
/// assert!(matches!(dup, Err(Error::AlreadyExists { .. })));
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait TagRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new tag; `AlreadyExists` if the name is taken.
    async fn insert(&self, tenant: &TenantId, tag: Tag) -> Result<Tag>;
    /// One tag.
    async fn get(&self, tenant: &TenantId, id: &TagId) -> Result<Option<Tag>>;
    /// Several tags in the order of `ids`.
    async fn get_many(&self, tenant: &TenantId, ids: &[TagId]) -> Result<Vec<Tag>>;
    /// The tag with this name (case-insensitive), if any.
    async fn find_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Tag>>;
    /// Writes `tag` if its version is current.
    async fn update(&self, tenant: &TenantId, tag: Tag) -> Result<Tag>;
    /// Deletes the tag; `NotFound` if absent. Machines keep the id until they are updated.
    async fn delete(&self, tenant: &TenantId, id: &TagId) -> Result<()>;
    /// A page of tags.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &TagFilter,
        sort: SortSpec<TagSort>,
        page: &PageRequest,
    ) -> Result<Page<Tag>>;
    /// How many match.
    async fn count(&self, tenant: &TenantId, filter: &TagFilter) -> Result<u64>;
}

/// Tag list filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagFilter {
    /// Case-insensitive literal substring of name or description.
    pub search: Option<String>,
}

impl TagFilter {
    fn to_filter(&self) -> Result<Filter> {
        search_filter(self.search.as_deref())
    }
}

/// Sortable tag fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSort {
    /// By id.
    Id,
    /// By name (default, A to Z).
    Name,
    /// By creation time.
    CreatedAt,
}

impl SortField for TagSort {
    const ALL: &'static [Self] = &[Self::Id, Self::Name, Self::CreatedAt];
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::CreatedAt => "createdAt",
        }
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::Name, SortDirection::Asc)
    }
}

impl StoreSortField for TagSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::Name => SortKey::Field("name_key"),
            Self::CreatedAt => SortKey::Field("created_at"),
        }
    }
}

static SCHEMA: Schema = Schema {
    collection: "tags",
    entity: "tag",
    fields: &[
        FieldDef::required("name_key", FieldKind::Str),
        FieldDef::required("created_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["name_key"],
        },
        IndexDef {
            fields: &["created_at"],
        },
    ],
    unique: &[&["name_key"]],
};

impl Entity for Tag {
    const SCHEMA: &'static Schema = &SCHEMA;
    entity_basics!("tag", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::Str(self.name.trim().to_lowercase()),
            Value::time(self.created_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        let mut t = vec![self.name.as_str()];
        t.extend(self.description.as_deref());
        t
    }
}

crate::timestamped!(Tag);

#[async_trait]
impl TagRepository for DocumentRepository<Tag> {
    async fn insert(&self, tenant: &TenantId, tag: Tag) -> Result<Tag> {
        DocumentRepository::insert(self, &Partition::tenant(tenant), tag).await
    }
    async fn get(&self, tenant: &TenantId, id: &TagId) -> Result<Option<Tag>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }
    async fn get_many(&self, tenant: &TenantId, ids: &[TagId]) -> Result<Vec<Tag>> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        DocumentRepository::get_many(self, &Partition::tenant(tenant), &ids).await
    }
    async fn find_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<Tag>> {
        openframe_core::validate::max_chars("name", name, openframe_core::validate::MAX_NAME_LEN)?;
        let filter = Filter::Eq("name_key", Value::Str(name.trim().to_lowercase()));
        Ok(self
            .find_all(&Partition::tenant(tenant), filter, 1)
            .await?
            .into_iter()
            .next())
    }
    async fn update(&self, tenant: &TenantId, tag: Tag) -> Result<Tag> {
        DocumentRepository::update(self, &Partition::tenant(tenant), tag).await
    }
    async fn delete(&self, tenant: &TenantId, id: &TagId) -> Result<()> {
        self.delete_hard(&Partition::tenant(tenant), id.as_str())
            .await
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &TagFilter,
        sort: SortSpec<TagSort>,
        page: &PageRequest,
    ) -> Result<Page<Tag>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }
    async fn count(&self, tenant: &TenantId, filter: &TagFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }
}
