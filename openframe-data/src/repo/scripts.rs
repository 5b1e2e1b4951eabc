//! Stored scripts, run on machines by id.

use async_trait::async_trait;
use openframe_core::{
    FacetCount, OsType, Page, PageRequest, Result, Script, ScriptId, ScriptShell, ScriptStatus,
    SortDirection, SortField, SortSpec, TagId, TenantId, UserId,
};

use super::{
    DocumentRepository, FacetDimension, QueryFilter, StoreSortField, filter_list, search_filter,
};
use crate::entity::{Entity, entity_basics};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores scripts. Names are unique per tenant among scripts that are not deleted,
/// case-insensitively; deleting is soft (status DELETED, hidden from lists by default).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// let script = Script::new("Disk usage", ScriptShell::Bash, "df -h", SystemClock.now());
/// let script = repos.scripts.insert(&tenant, script).await?;
/// assert_eq!(repos.scripts.get(&tenant, &script.id).await?.unwrap().code, "df -h");
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait ScriptRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new script; `AlreadyExists` if a live script has the name.
    async fn insert(&self, tenant: &TenantId, script: Script) -> Result<Script>;
    /// One script (also a deleted one: check [`Script::status`]).
    async fn get(&self, tenant: &TenantId, id: &ScriptId) -> Result<Option<Script>>;
    /// Several scripts in the order of `ids` (missing ones skipped).
    async fn get_many(&self, tenant: &TenantId, ids: &[ScriptId]) -> Result<Vec<Script>>;
    /// Writes `script` if its version is current (`Conflict` otherwise).
    async fn update(&self, tenant: &TenantId, script: Script) -> Result<Script>;
    /// Soft-deletes the script (idempotent); `NotFound` if absent. Returns it.
    async fn delete(&self, tenant: &TenantId, id: &ScriptId) -> Result<Script>;
    /// A page of scripts.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &ScriptFilter,
        sort: SortSpec<ScriptSort>,
        page: &PageRequest,
    ) -> Result<Page<Script>>;
    /// How many match.
    async fn count(&self, tenant: &TenantId, filter: &ScriptFilter) -> Result<u64>;
    /// Value counts per dimension ("filter options"); each dimension ignores its own
    /// condition.
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &ScriptFilter,
        dimensions: &[ScriptFacet],
    ) -> Result<Vec<(ScriptFacet, Vec<FacetCount>)>>;
}

/// Script list filter. Every list holds at most 100 values; empty lists do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptFilter {
    /// Any of these statuses (empty: every status except DELETED, unless `include_deleted`).
    pub statuses: Vec<ScriptStatus>,
    /// Any of these shells.
    pub shells: Vec<ScriptShell>,
    /// Supports any of these platforms.
    pub platforms: Vec<OsType>,
    /// Any of these categories.
    pub categories: Vec<String>,
    /// Has any of these tags.
    pub tag_ids: Vec<TagId>,
    /// Written by any of these users.
    pub authors: Vec<UserId>,
    /// Case-insensitive literal substring of name, description or category.
    pub search: Option<String>,
    /// Include deleted scripts when no status is given.
    pub include_deleted: bool,
}

/// Facet dimensions of scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptFacet {
    /// By status.
    Status,
    /// By shell.
    Shell,
    /// By supported platform.
    Platform,
    /// By category.
    Category,
    /// By tag.
    Tag,
    /// By author.
    Author,
}

impl FacetDimension for ScriptFacet {
    fn field(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Shell => "shell",
            Self::Platform => "platforms",
            Self::Category => "category",
            Self::Tag => "tags",
            Self::Author => "author",
        }
    }
}

/// Sortable script fields (the allowlist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptSort {
    /// By id.
    Id,
    /// By name (case-insensitive).
    Name,
    /// By creation time (default, newest first).
    CreatedAt,
    /// By last change.
    UpdatedAt,
}

impl SortField for ScriptSort {
    const ALL: &'static [Self] = &[Self::Id, Self::Name, Self::CreatedAt, Self::UpdatedAt];
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::CreatedAt => "createdAt",
            Self::UpdatedAt => "updatedAt",
        }
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::CreatedAt, SortDirection::Desc)
    }
}

impl StoreSortField for ScriptSort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::Name => SortKey::Field("name_sort"),
            Self::CreatedAt => SortKey::Field("created_at"),
            Self::UpdatedAt => SortKey::Field("updated_at"),
        }
    }
}

fn strs<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> Vec<Value> {
    items.into_iter().map(|i| Value::str(i.as_ref())).collect()
}

impl QueryFilter for ScriptFilter {
    type Facet = ScriptFacet;

    fn base(&self) -> Result<Filter> {
        let mut parts = vec![search_filter(self.search.as_deref())?];
        if self.statuses.is_empty() && !self.include_deleted {
            parts.push(Filter::NotIn(
                "status",
                vec![Value::str(ScriptStatus::Deleted.as_str())],
            ));
        }
        Ok(Filter::and(parts))
    }

    fn conditions(&self) -> Result<Vec<(ScriptFacet, Filter)>> {
        filter_list("statuses", &self.statuses)?;
        filter_list("shells", &self.shells)?;
        filter_list("platforms", &self.platforms)?;
        filter_list("categories", &self.categories)?;
        filter_list("tagIds", &self.tag_ids)?;
        filter_list("authors", &self.authors)?;
        let mut out = Vec::new();
        if !self.statuses.is_empty() {
            let values = strs(self.statuses.iter().map(|s| s.as_str()));
            out.push((ScriptFacet::Status, Filter::In("status", values)));
        }
        if !self.shells.is_empty() {
            let values = strs(self.shells.iter().map(|s| s.as_str()));
            out.push((ScriptFacet::Shell, Filter::In("shell", values)));
        }
        if !self.platforms.is_empty() {
            let values = self
                .platforms
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect();
            out.push((ScriptFacet::Platform, Filter::HasAny("platforms", values)));
        }
        if !self.categories.is_empty() {
            out.push((
                ScriptFacet::Category,
                Filter::In("category", strs(&self.categories)),
            ));
        }
        if !self.tag_ids.is_empty() {
            let values = self.tag_ids.iter().map(|t| t.to_string()).collect();
            out.push((ScriptFacet::Tag, Filter::HasAny("tags", values)));
        }
        if !self.authors.is_empty() {
            out.push((
                ScriptFacet::Author,
                Filter::In("author", strs(&self.authors)),
            ));
        }
        Ok(out)
    }
}

static SCHEMA: Schema = Schema {
    collection: "scripts",
    entity: "script",
    fields: &[
        FieldDef::required("status", FieldKind::Str),
        FieldDef::required("shell", FieldKind::Str),
        FieldDef::required("platforms", FieldKind::StrList),
        FieldDef::optional("category", FieldKind::Str),
        FieldDef::required("tags", FieldKind::StrList),
        FieldDef::optional("author", FieldKind::Str),
        FieldDef::required("name_sort", FieldKind::Str),
        FieldDef::optional("name_key", FieldKind::Str),
        FieldDef::required("created_at", FieldKind::Int),
        FieldDef::required("updated_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["created_at"],
        },
        IndexDef {
            fields: &["updated_at"],
        },
        IndexDef {
            fields: &["name_sort"],
        },
        IndexDef {
            fields: &["status", "created_at"],
        },
    ],
    unique: &[&["name_key"]],
};

fn sorted_unique(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

impl Entity for Script {
    const SCHEMA: &'static Schema = &SCHEMA;
    entity_basics!("script", serde);
    fn index_values(&self) -> Vec<Value> {
        let name = self.name.trim().to_lowercase();
        let live = self.status != ScriptStatus::Deleted;
        vec![
            Value::str(self.status.as_str()),
            Value::str(self.shell.as_str()),
            Value::StrList(sorted_unique(
                self.supported_platforms
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect(),
            )),
            Value::opt_str(self.category.clone()),
            Value::StrList(sorted_unique(
                self.tags.iter().map(|t| t.to_string()).collect(),
            )),
            Value::opt_str(self.author.as_ref().map(|a| a.as_str())),
            Value::Str(name.clone()),
            // Unique only while live: a deleted script's name may be reused.
            if live { Value::Str(name) } else { Value::Null },
            Value::time(self.created_at),
            Value::time(self.updated_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        let mut t = vec![self.name.as_str()];
        t.extend(self.description.as_deref());
        t.extend(self.category.as_deref());
        t
    }
}

crate::timestamped!(Script);

#[async_trait]
impl ScriptRepository for DocumentRepository<Script> {
    async fn insert(&self, tenant: &TenantId, script: Script) -> Result<Script> {
        DocumentRepository::insert(self, &Partition::tenant(tenant), script).await
    }
    async fn get(&self, tenant: &TenantId, id: &ScriptId) -> Result<Option<Script>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }
    async fn get_many(&self, tenant: &TenantId, ids: &[ScriptId]) -> Result<Vec<Script>> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        DocumentRepository::get_many(self, &Partition::tenant(tenant), &ids).await
    }
    async fn update(&self, tenant: &TenantId, script: Script) -> Result<Script> {
        DocumentRepository::update(self, &Partition::tenant(tenant), script).await
    }
    async fn delete(&self, tenant: &TenantId, id: &ScriptId) -> Result<Script> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |s, _| {
                let change = s.status != ScriptStatus::Deleted;
                s.status = ScriptStatus::Deleted;
                Ok(change)
            })
            .await?;
        Ok(m.after)
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &ScriptFilter,
        sort: SortSpec<ScriptSort>,
        page: &PageRequest,
    ) -> Result<Page<Script>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }
    async fn count(&self, tenant: &TenantId, filter: &ScriptFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &ScriptFilter,
        dimensions: &[ScriptFacet],
    ) -> Result<Vec<(ScriptFacet, Vec<FacetCount>)>> {
        DocumentRepository::facets(self, &Partition::tenant(tenant), filter, dimensions).await
    }
}
