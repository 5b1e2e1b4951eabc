//! API key metadata (the secret hash lives with the security crate's credential store).

use async_trait::async_trait;
use openframe_core::{
    ApiKey, ApiKeyId, Page, PageRequest, Result, SortDirection, SortField, SortSpec, TenantId,
    Timestamp, UserId,
};

use super::{DocumentRepository, StoreSortField, search_filter};
use crate::entity::{Entity, entity_basics};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores API key metadata.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// let key = ApiKey::new("ci", UserId::generate(), vec!["devices:read".into()], SystemClock.now());
/// let key = repos.api_keys.insert(&tenant, key).await?;
/// let used = repos.api_keys.record_usage(&tenant, &key.id, false, SystemClock.now()).await?;
/// assert_eq!(used.total_requests, 1);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait ApiKeyRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts new key metadata; `AlreadyExists` if the key id is taken.
    async fn insert(&self, tenant: &TenantId, key: ApiKey) -> Result<ApiKey>;
    /// One key.
    async fn get(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<Option<ApiKey>>;
    /// Writes `key` if its version is current.
    async fn update(&self, tenant: &TenantId, key: ApiKey) -> Result<ApiKey>;
    /// Adds usage: one request, failed or not, at `at`. Never loses a concurrent increment.
    async fn record_usage(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        failed: bool,
        at: Timestamp,
    ) -> Result<ApiKey>;
    /// Deletes the key; `NotFound` if absent.
    async fn delete(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<()>;
    /// A page of keys.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &ApiKeyFilter,
        sort: SortSpec<ApiKeySort>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>>;
    /// How many match.
    async fn count(&self, tenant: &TenantId, filter: &ApiKeyFilter) -> Result<u64>;
}

/// API key list filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiKeyFilter {
    /// Only this owner's keys.
    pub user_id: Option<UserId>,
    /// Only enabled (or disabled) keys.
    pub enabled: Option<bool>,
    /// Case-insensitive literal substring of name or description.
    pub search: Option<String>,
}

impl ApiKeyFilter {
    fn to_filter(&self) -> Result<Filter> {
        let mut parts = vec![search_filter(self.search.as_deref())?];
        if let Some(u) = &self.user_id {
            parts.push(Filter::Eq("user_id", Value::str(u.as_str())));
        }
        if let Some(e) = self.enabled {
            parts.push(Filter::Eq("enabled", Value::Bool(e)));
        }
        Ok(Filter::and(parts))
    }
}

/// Sortable API key fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeySort {
    /// By id.
    Id,
    /// By name.
    Name,
    /// By creation time (default, newest first).
    CreatedAt,
}

impl SortField for ApiKeySort {
    const ALL: &'static [Self] = &[Self::Id, Self::Name, Self::CreatedAt];
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::CreatedAt => "createdAt",
        }
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(Self::CreatedAt, SortDirection::Desc)
    }
}

impl StoreSortField for ApiKeySort {
    fn key(self) -> SortKey {
        match self {
            Self::Id => SortKey::Id,
            Self::Name => SortKey::Field("name"),
            Self::CreatedAt => SortKey::Field("created_at"),
        }
    }
}

static SCHEMA: Schema = Schema {
    collection: "api_keys",
    entity: "api key",
    fields: &[
        FieldDef::required("user_id", FieldKind::Str),
        FieldDef::required("enabled", FieldKind::Bool),
        FieldDef::required("name", FieldKind::Str),
        FieldDef::required("created_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["user_id", "created_at"],
        },
        IndexDef {
            fields: &["created_at"],
        },
    ],
    unique: &[],
};

impl Entity for ApiKey {
    const SCHEMA: &'static Schema = &SCHEMA;
    entity_basics!("api key", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::str(self.user_id.as_str()),
            Value::Bool(self.enabled),
            Value::str(&self.name),
            Value::time(self.created_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        let mut t = vec![self.name.as_str()];
        t.extend(self.description.as_deref());
        t
    }
}

crate::timestamped!(ApiKey);

#[async_trait]
impl ApiKeyRepository for DocumentRepository<ApiKey> {
    async fn insert(&self, tenant: &TenantId, key: ApiKey) -> Result<ApiKey> {
        DocumentRepository::insert(self, &Partition::tenant(tenant), key).await
    }
    async fn get(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<Option<ApiKey>> {
        DocumentRepository::get(self, &Partition::tenant(tenant), id.as_str()).await
    }
    async fn update(&self, tenant: &TenantId, key: ApiKey) -> Result<ApiKey> {
        DocumentRepository::update(self, &Partition::tenant(tenant), key).await
    }
    async fn record_usage(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        failed: bool,
        at: Timestamp,
    ) -> Result<ApiKey> {
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |k, _| {
                k.total_requests += 1;
                if failed {
                    k.failed_requests += 1;
                } else if k.last_used_at.is_none_or(|l| at > l) {
                    k.last_used_at = Some(at);
                }
                Ok(true)
            })
            .await?;
        Ok(m.after)
    }
    async fn delete(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<()> {
        self.delete_hard(&Partition::tenant(tenant), id.as_str())
            .await
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &ApiKeyFilter,
        sort: SortSpec<ApiKeySort>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>> {
        self.page(&Partition::tenant(tenant), filter.to_filter()?, sort, page)
            .await
    }
    async fn count(&self, tenant: &TenantId, filter: &ApiKeyFilter) -> Result<u64> {
        DocumentRepository::count(self, &Partition::tenant(tenant), &filter.to_filter()?).await
    }
}
