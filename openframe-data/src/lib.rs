//! # openframe-data
//!
//! Tenant-scoped persistence for OpenFrame-rs: one repository trait per aggregate
//! ([`MachineRepository`], [`OrganizationRepository`], ...), a [`Cache`] and a
//! [`DistributedLock`], each with pluggable backends.
//!
//! ## Storage design
//! Repository logic (validation, soft delete, filters, self-excluding facets, keyset cursor
//! paging, optimistic concurrency, conditional transitions) is written **once**, in
//! [`DocumentRepository`], over the narrow [`store::DocumentStore`] interface. A backend only
//! stores JSON documents with a few typed index fields and evaluates a small filter language:
//!
//! | backend | module | feature |
//! |---|---|---|
//! | in-memory | [`memory`] | always |
//! | SQLite (embedded, durable, WAL, migrations on open) | `sqlite` | `sqlite` (default) |
//! | MongoDB (official driver) | `mongodb` | `mongodb` |
//! | Redis (cache and lock only) | `redis` | `redis` |
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_core::*;
//! use openframe_data::{Repositories, MachineFilter, MachineFacet, memory::InMemoryDocumentStore};
//!
//! let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
//! let acme = TenantId::parse("acme")?;
//! let mut m = Machine::new(MachineId::generate(), "db-01", OsType::Linux, SystemClock.now());
//! m.status = MachineStatus::Online;
//! repos.machines.insert(&acme, m).await?;
//!
//! let facets = repos.machines.facets(&acme, &MachineFilter::default(), &[MachineFacet::OsType]).await?;
//! assert_eq!(facets[0].1[0].value, "LINUX");
//! // Another tenant sees nothing.
//! let other = TenantId::parse("globex")?;
//! assert_eq!(repos.machines.count(&other, &MachineFilter::default()).await?, 0);
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

pub mod cache;
pub mod entity;
pub mod lock;
pub mod memory;
pub mod paging;
mod repo;
pub mod store;

#[cfg(feature = "mongodb")]
pub mod mongodb;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::sync::Arc;

use openframe_core::{
    ApiKey, Clock, IntegratedTool, Machine, Organization, Script, Tag, Tenant, ToolConnection, User,
};

pub use cache::{Cache, CacheExt, CacheKey};
pub use lock::{DistributedLock, Lease};
pub use repo::*;

/// Every repository, built over one [`store::DocumentStore`].
#[derive(Debug, Clone)]
pub struct Repositories {
    /// Tenants (platform-wide).
    pub tenants: Arc<dyn TenantRepository>,
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Organizations.
    pub organizations: Arc<dyn OrganizationRepository>,
    /// Machines.
    pub machines: Arc<dyn MachineRepository>,
    /// Tags.
    pub tags: Arc<dyn TagRepository>,
    /// Integrated tools.
    pub tools: Arc<dyn IntegratedToolRepository>,
    /// Tool connections.
    pub tool_connections: Arc<dyn ToolConnectionRepository>,
    /// API key metadata.
    pub api_keys: Arc<dyn ApiKeyRepository>,
    /// Stored scripts.
    pub scripts: Arc<dyn ScriptRepository>,
}

impl Repositories {
    /// Repositories over `store`, on the system clock.
    pub fn new(store: Arc<dyn store::DocumentStore>) -> Self {
        Self::with_clock(store, repo::system_clock())
    }

    /// Repositories over `store`, stamping `updated_at` from `clock`.
    pub fn with_clock(store: Arc<dyn store::DocumentStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            tenants: Arc::new(DocumentRepository::<Tenant>::new(
                store.clone(),
                clock.clone(),
            )),
            users: Arc::new(DocumentRepository::<User>::new(
                store.clone(),
                clock.clone(),
            )),
            organizations: Arc::new(DocumentRepository::<Organization>::new(
                store.clone(),
                clock.clone(),
            )),
            machines: Arc::new(DocumentRepository::<Machine>::new(
                store.clone(),
                clock.clone(),
            )),
            tags: Arc::new(DocumentRepository::<Tag>::new(store.clone(), clock.clone())),
            tools: Arc::new(DocumentRepository::<IntegratedTool>::new(
                store.clone(),
                clock.clone(),
            )),
            tool_connections: Arc::new(DocumentRepository::<ToolConnection>::new(
                store.clone(),
                clock.clone(),
            )),
            api_keys: Arc::new(DocumentRepository::<ApiKey>::new(
                store.clone(),
                clock.clone(),
            )),
            scripts: Arc::new(DocumentRepository::<Script>::new(store, clock)),
        }
    }
}

/// The schemas of every built-in collection (backends create them on open).
pub fn builtin_schemas() -> Vec<&'static store::Schema> {
    use entity::Entity;
    vec![
        Tenant::SCHEMA,
        User::SCHEMA,
        Organization::SCHEMA,
        Machine::SCHEMA,
        Tag::SCHEMA,
        IntegratedTool::SCHEMA,
        ToolConnection::SCHEMA,
        ApiKey::SCHEMA,
        Script::SCHEMA,
    ]
}
