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
    /// Adds an aggregated usage delta in one conditional write: the counters grow by
    /// `delta.requests` and `delta.failed`, and `last_used_at` moves to `delta.last_used_at`
    /// only if that is later (never backwards). Never loses a concurrent increment.
    ///
    /// An empty delta writes nothing and returns the key as stored. `InvalidInput` if
    /// `delta.failed > delta.requests`; `NotFound` if `tenant` has no such key (nothing is
    /// written).
    async fn add_usage(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        delta: &UsageDelta,
    ) -> Result<ApiKey>;
    /// Adds usage: one request, failed or not, at `at` (stamped as the last use only on
    /// success). One conditional write, see [`add_usage`](Self::add_usage).
    async fn record_usage(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        failed: bool,
        at: Timestamp,
    ) -> Result<ApiKey> {
        self.add_usage(tenant, id, &UsageDelta::one(failed, at))
            .await
    }
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

/// Usage of one key aggregated over many requests, applied by [`ApiKeyRepository::add_usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// Requests made (failed ones included).
    pub requests: u64,
    /// Of those, requests that failed; at most `requests`.
    pub failed: u64,
    /// The latest successful use among them, if any.
    pub last_used_at: Option<Timestamp>,
}

impl UsageDelta {
    /// One request at `at`; a successful one is also the last use.
    pub fn one(failed: bool, at: Timestamp) -> Self {
        Self {
            requests: 1,
            failed: u64::from(failed),
            last_used_at: (!failed).then_some(at),
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.failed == 0 && self.last_used_at.is_none()
    }

    /// Adds `other` into this delta (counters add, the later last use wins).
    pub fn merge(&mut self, other: &UsageDelta) {
        self.requests = self.requests.saturating_add(other.requests);
        self.failed = self.failed.saturating_add(other.failed);
        self.last_used_at = later(self.last_used_at, other.last_used_at);
    }

    /// `InvalidInput` if more requests failed than were made.
    pub fn validate(&self) -> Result<()> {
        if self.failed > self.requests {
            return Err(openframe_core::Error::invalid(
                "failed",
                "cannot exceed the number of requests",
            ));
        }
        Ok(())
    }

    /// Applies the delta to `key`; whether anything changed.
    fn apply_to(&self, key: &mut ApiKey) -> bool {
        if self.is_empty() {
            return false;
        }
        key.total_requests = key.total_requests.saturating_add(self.requests);
        key.failed_requests = key.failed_requests.saturating_add(self.failed);
        key.last_used_at = later(key.last_used_at, self.last_used_at);
        true
    }
}

/// The later of two optional times.
fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
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
    async fn add_usage(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        delta: &UsageDelta,
    ) -> Result<ApiKey> {
        delta.validate()?;
        let m = self
            .modify(&Partition::tenant(tenant), id.as_str(), |k, _| {
                Ok(delta.apply_to(k))
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
