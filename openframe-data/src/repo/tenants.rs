//! Tenants: stored in the platform partition, not in any tenant's.

use async_trait::async_trait;
use openframe_core::{Page, PageRequest, Result, SortSpec, Tenant, TenantId};

use super::DocumentRepository;
use crate::entity::{Entity, entity_basics};
use crate::store::{FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, SortKey, Value};

/// Stores tenants. Domains are unique across the platform.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{*, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let tenant = TenantId::parse("acme")?;
/// repos.tenants.insert(Tenant::new(tenant.clone(), "Acme", "acme.example", SystemClock.now())).await?;
/// assert_eq!(repos.tenants.find_by_domain("ACME.example").await?.unwrap().id, tenant);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait TenantRepository: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new tenant; `AlreadyExists` if the id or domain is taken.
    async fn insert(&self, tenant: Tenant) -> Result<Tenant>;
    /// One tenant.
    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>>;
    /// The tenant with this domain (lowercased), if any.
    async fn find_by_domain(&self, domain: &str) -> Result<Option<Tenant>>;
    /// Writes `tenant` if its version is current.
    async fn update(&self, tenant: Tenant) -> Result<Tenant>;
    /// A page of tenants, oldest first.
    async fn list(&self, page: &PageRequest) -> Result<Page<Tenant>>;
}

/// Tenants sort by id only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TenantSort;

impl openframe_core::SortField for TenantSort {
    const ALL: &'static [Self] = &[TenantSort];
    fn name(self) -> &'static str {
        "id"
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(TenantSort, openframe_core::SortDirection::Asc)
    }
}

impl super::StoreSortField for TenantSort {
    fn key(self) -> SortKey {
        SortKey::Id
    }
}

static SCHEMA: Schema = Schema {
    collection: "tenants",
    entity: "tenant",
    fields: &[
        FieldDef::required("domain", FieldKind::Str),
        FieldDef::required("status", FieldKind::Str),
    ],
    indexes: &[IndexDef {
        fields: &["domain"],
    }],
    unique: &[&["domain"]],
};

impl Entity for Tenant {
    const SCHEMA: &'static Schema = &SCHEMA;
    entity_basics!("tenant", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![Value::str(&self.domain), Value::str(self.status.as_str())]
    }
    fn search_texts(&self) -> Vec<&str> {
        vec![self.name.as_str(), self.domain.as_str()]
    }
}

crate::timestamped!(Tenant);

#[async_trait]
impl TenantRepository for DocumentRepository<Tenant> {
    async fn insert(&self, mut tenant: Tenant) -> Result<Tenant> {
        tenant.domain = tenant.domain.trim().to_lowercase();
        DocumentRepository::insert(self, &Partition::platform(), tenant).await
    }
    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>> {
        DocumentRepository::get(self, &Partition::platform(), id.as_str()).await
    }
    async fn find_by_domain(&self, domain: &str) -> Result<Option<Tenant>> {
        openframe_core::validate::max_chars(
            "domain",
            domain,
            openframe_core::validate::MAX_NAME_LEN,
        )?;
        let filter = Filter::Eq("domain", Value::Str(domain.trim().to_lowercase()));
        Ok(self
            .find_all(&Partition::platform(), filter, 1)
            .await?
            .into_iter()
            .next())
    }
    async fn update(&self, mut tenant: Tenant) -> Result<Tenant> {
        tenant.domain = tenant.domain.trim().to_lowercase();
        DocumentRepository::update(self, &Partition::platform(), tenant).await
    }
    async fn list(&self, page: &PageRequest) -> Result<Page<Tenant>> {
        self.page(
            &Partition::platform(),
            Filter::All,
            SortSpec::<TenantSort>::default(),
            page,
        )
        .await
    }
}
