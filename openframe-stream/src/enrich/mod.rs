//! Enrichment: an adapted [`UnifiedEvent`] gets its tenant, machine and organization.
//!
//! - **Tenant**: agent events carry it; tool events get it from a pluggable
//!   [`TenantResolver`] (default [`HeaderTenantResolver`]: the `tenant-id` header, else a
//!   topic-prefix map). An unresolvable tenant is an `InvalidInput` error on
//!   [`TENANT_FIELD`]: the processor dead-letters the record.
//! - **Machine**: agent events name it; tool events name the tool's device
//!   ([`UnifiedEvent::tool_agent_id`]), resolved through the tool connection of that tool.
//!   An event naming a device or machine nobody knows is kept with
//!   [`UnifiedEvent::unknown_machine`] set, never dropped.
//! - **Organization**: the machine's, else the tenant's default organization.
//!
//! Every lookup goes through an openframe-data [`Cache`] (tenant-scoped keys, a TTL, and a
//! short TTL for "not found" answers) in front of an [`EntityDirectory`]. Entries are removed
//! explicitly with [`Enricher::invalidate_machine`], [`Enricher::invalidate_organization`]
//! and [`Enricher::invalidate_tool_connection`]; an [`EntityChange`] published on the changes
//! topic makes every replica's [`ChangeListener`] do the same. (The original never evicted.)
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_core::{Clock, Machine, MachineId, OsType, SystemClock, TenantId};
//! use openframe_data::{Repositories, memory::{InMemoryCache, InMemoryDocumentStore}};
//! use openframe_stream::adapters::{AdapterRegistry, RawRecord};
//! use openframe_stream::enrich::{Enricher, RepositoryDirectory};
//!
//! let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
//! let acme = TenantId::parse("acme")?;
//! let machine = MachineId::parse("m-1")?;
//! repos.machines.insert(&acme, Machine::new(machine.clone(), "web-01", OsType::Linux, SystemClock.now())).await?;
//!
//! let enricher = Enricher::builder(
//!     Arc::new(RepositoryDirectory::from_repositories(&repos)),
//!     Arc::new(InMemoryCache::new(Arc::new(SystemClock))),
//! ).build()?;
//! let raw = RawRecord::new(
//!     "openframe.agent-events",
//!     br#"{"tenant":"acme","machineId":"m-1","kind":"CAME_ONLINE","status":"ONLINE","at":"2025-03-01T10:00:00Z"}"#.to_vec(),
//! );
//! let event = AdapterRegistry::builtin().adapt(&raw).unwrap().remove(0);
//! let enriched = enricher.enrich(&raw, event).await?;
//! assert_eq!(enriched.machine_id, Some(machine));
//! assert!(!enriched.unknown_machine);
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

mod changes;
mod directory;
mod tenant;

mod local;

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Error, MachineId, OrganizationId, Result, TenantId, ToolType};
use openframe_data::{Cache, CacheExt, CacheKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::adapters::RawRecord;
use crate::model::{ToolSource, UnifiedEvent};

pub use changes::{ChangeListener, DEFAULT_CHANGES_TOPIC, EntityChange, publish_entity_change};
pub use directory::{EntityDirectory, MachineInfo, OrganizationInfo, RepositoryDirectory};
pub use tenant::{HeaderTenantResolver, TENANT_FIELD, TENANT_HEADER, TenantResolver};

/// Default TTL of a found entity in the cache.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// Default TTL of a "not found" answer (short, so a machine enrolled a moment ago shows up).
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Longest tool-side agent id looked up; longer ones are treated as unknown devices.
pub const MAX_TOOL_AGENT_ID_LEN: usize = 256;
/// Longest [`EnricherBuilder::with_local_cache`] age.
pub const MAX_LOCAL_CACHE_AGE: Duration = Duration::from_secs(60);

const NS_TOOL_AGENT: &str = "enrich-tool-agent";
const NS_MACHINE: &str = "enrich-machine";
const NS_ORGANIZATION: &str = "enrich-org";
/// The key of the default organization (organization ids never start with `_`).
const DEFAULT_ORG_KEY: &str = "_default";

/// Builds an [`Enricher`].
#[derive(Debug, Clone)]
pub struct EnricherBuilder {
    directory: Arc<dyn EntityDirectory>,
    cache: Arc<dyn Cache>,
    resolver: Arc<dyn TenantResolver>,
    ttl: Duration,
    negative_ttl: Duration,
    local_max_age: Duration,
}

impl EnricherBuilder {
    /// Keeps decoded answers in this process for up to `max_age` (at most
    /// [`MAX_LOCAL_CACHE_AGE`]; zero, the default, turns it off), in front of the shared cache:
    /// a warm lookup is then a map read instead of a cache round trip and a JSON decode.
    /// Invalidations on this replica (local calls, or [`EntityChange`]s applied by its
    /// [`ChangeListener`]) clear it too, so staleness is bounded by how fast changes arrive.
    /// Its age is measured on the real-time clock.
    pub fn with_local_cache(mut self, max_age: Duration) -> Self {
        self.local_max_age = max_age;
        self
    }

    /// The tenant resolver (default [`HeaderTenantResolver::new`]).
    pub fn with_tenant_resolver(mut self, resolver: Arc<dyn TenantResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// How long a found entity stays cached (default [`DEFAULT_TTL`]).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a "not found" answer stays cached (default [`DEFAULT_NEGATIVE_TTL`]).
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The enricher; `InvalidInput` if a TTL is outside 1 ms to 30 days or the negative TTL is
    /// longer than the TTL.
    pub fn build(self) -> Result<Enricher> {
        for (field, ttl) in [("ttl", self.ttl), ("negativeTtl", self.negative_ttl)] {
            if ttl < Duration::from_millis(1) || ttl > openframe_data::cache::MAX_TTL {
                return Err(Error::invalid(field, "must be between 1 ms and 30 days"));
            }
        }
        if self.negative_ttl > self.ttl {
            return Err(Error::invalid("negativeTtl", "must not exceed the ttl"));
        }
        if self.local_max_age > MAX_LOCAL_CACHE_AGE {
            return Err(Error::invalid("localCache", "must be at most 60 s"));
        }
        Ok(Enricher {
            directory: self.directory,
            cache: self.cache,
            resolver: self.resolver,
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            local: Arc::new(local::LocalCache::new(self.local_max_age)),
        })
    }
}

/// Resolves tenant, machine and organization of adapted events, through a cache. Cloning
/// shares the directory and the cache.
#[derive(Debug, Clone)]
pub struct Enricher {
    directory: Arc<dyn EntityDirectory>,
    cache: Arc<dyn Cache>,
    resolver: Arc<dyn TenantResolver>,
    ttl: Duration,
    negative_ttl: Duration,
    local: Arc<local::LocalCache>,
}

/// The integrated tool behind a tool source, if its events name the tool's own device ids.
fn tool_type(source: ToolSource) -> Option<ToolType> {
    match source {
        ToolSource::Meshcentral => Some(ToolType::MeshCentral),
        ToolSource::FleetMdm => Some(ToolType::FleetMdm),
        ToolSource::TacticalRmm => Some(ToolType::TacticalRmm),
        ToolSource::OpenframeAgent | ToolSource::Openframe => None,
    }
}

impl Enricher {
    /// A builder over `directory` and `cache`.
    pub fn builder(directory: Arc<dyn EntityDirectory>, cache: Arc<dyn Cache>) -> EnricherBuilder {
        EnricherBuilder {
            directory,
            cache,
            resolver: Arc::new(HeaderTenantResolver::new()),
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            local_max_age: Duration::ZERO,
        }
    }

    /// Enriches `event`, adapted from `record`: sets the tenant (or fails with `InvalidInput` on
    /// [`TENANT_FIELD`]), the machine and the organization, or flags an unknown machine.
    /// Directory failures (`Unavailable`, `Backend`) are returned for the caller to retry.
    pub async fn enrich(
        &self,
        record: &RawRecord,
        mut event: UnifiedEvent,
    ) -> Result<UnifiedEvent> {
        self.enrich_in_place(record, &mut event).await?;
        Ok(event)
    }

    /// [`Enricher::enrich`] on a borrowed event, which is left unchanged on error (so the
    /// call can be retried without a copy).
    pub async fn enrich_in_place(
        &self,
        record: &RawRecord,
        event: &mut UnifiedEvent,
    ) -> Result<()> {
        let tenant = match &event.tenant {
            Some(tenant) => tenant.clone(),
            None => self
                .resolver
                .resolve(record, event)
                .await?
                .ok_or_else(tenant::unresolved)?,
        };
        let mut unknown_machine = false;
        let machine_id = match (
            &event.machine_id,
            tool_type(event.tool),
            &event.tool_agent_id,
        ) {
            (Some(machine), _, _) => Some(machine.clone()),
            (None, Some(tool), Some(agent)) => {
                let found = if agent.len() > MAX_TOOL_AGENT_ID_LEN {
                    None
                } else {
                    self.machine_for_tool_agent(&tenant, tool, agent).await?
                };
                unknown_machine = found.is_none();
                found
            }
            // Not about a device (a login, a server event): nothing more to resolve.
            _ => None,
        };
        let mut resolved = None;
        if let Some(id) = machine_id {
            match self.machine(&tenant, &id).await? {
                Some(machine) => {
                    let organization = self
                        .organization_of(&tenant, machine.organization_id)
                        .await?;
                    resolved = Some((machine.id, organization));
                }
                None => unknown_machine = true,
            }
        }
        if let Some((machine, organization)) = resolved {
            event.machine_id = Some(machine);
            event.organization_id = organization;
        }
        event.unknown_machine = unknown_machine;
        event.tenant = Some(tenant);
        Ok(())
    }

    /// The machine connected to `tool` as `agent_tool_id` (cached).
    pub async fn machine_for_tool_agent(
        &self,
        tenant: &TenantId,
        tool: ToolType,
        agent_tool_id: &str,
    ) -> Result<Option<MachineId>> {
        let key = tool_agent_key(tenant, tool, agent_tool_id)?;
        self.cached(&key, || {
            self.directory
                .machine_for_tool_agent(tenant, tool, agent_tool_id)
        })
        .await
    }

    /// One machine (cached).
    pub async fn machine(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<MachineInfo>> {
        let key = CacheKey::new(tenant, NS_MACHINE, id.as_str())?;
        self.cached(&key, || self.directory.machine(tenant, id))
            .await
    }

    /// The organization of a machine: its own if it exists, else the tenant's default.
    async fn organization_of(
        &self,
        tenant: &TenantId,
        organization: Option<OrganizationId>,
    ) -> Result<Option<OrganizationId>> {
        if let Some(id) = organization {
            let key = CacheKey::new(tenant, NS_ORGANIZATION, id.as_str())?;
            let found = self
                .cached(&key, || self.directory.organization(tenant, &id))
                .await?;
            if let Some(org) = found {
                return Ok(Some(org.id));
            }
        }
        let key = CacheKey::new(tenant, NS_ORGANIZATION, DEFAULT_ORG_KEY)?;
        Ok(self
            .cached(&key, || self.directory.default_organization(tenant))
            .await?
            .map(|org| org.id))
    }

    /// Forgets the cached machine (call after it changed, e.g. moved to another organization).
    pub async fn invalidate_machine(&self, tenant: &TenantId, id: &MachineId) -> Result<()> {
        self.forget(&CacheKey::new(tenant, NS_MACHINE, id.as_str())?)
            .await
    }

    /// Forgets the cached organization, and the tenant's cached default organization.
    pub async fn invalidate_organization(
        &self,
        tenant: &TenantId,
        id: &OrganizationId,
    ) -> Result<()> {
        self.forget(&CacheKey::new(tenant, NS_ORGANIZATION, id.as_str())?)
            .await?;
        self.forget(&CacheKey::new(tenant, NS_ORGANIZATION, DEFAULT_ORG_KEY)?)
            .await
    }

    /// Forgets the cached machine of a tool-side agent id (call after a connection was made,
    /// moved or removed).
    pub async fn invalidate_tool_connection(
        &self,
        tenant: &TenantId,
        tool: ToolType,
        agent_tool_id: &str,
    ) -> Result<()> {
        self.forget(&tool_agent_key(tenant, tool, agent_tool_id)?)
            .await
    }

    /// Applies one [`EntityChange`] (the matching `invalidate_*`).
    pub async fn apply(&self, change: &EntityChange) -> Result<()> {
        match change {
            EntityChange::Machine { tenant, machine_id } => {
                self.invalidate_machine(tenant, machine_id).await
            }
            EntityChange::Organization {
                tenant,
                organization_id,
            } => self.invalidate_organization(tenant, organization_id).await,
            EntityChange::ToolConnection {
                tenant,
                tool_type,
                agent_tool_id,
            } => {
                self.invalidate_tool_connection(tenant, *tool_type, agent_tool_id)
                    .await
            }
        }
    }

    /// Reads `key`, else loads and caches the answer (a miss with the negative TTL). A failing
    /// cache is bypassed (logged), never fatal.
    async fn cached<T, F, Fut>(&self, key: &CacheKey, load: F) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Option<T>>> + Send,
    {
        if let Some(hit) = self.local.get::<Option<T>>(key.as_str()) {
            return Ok(hit);
        }
        let answer = self.cached_shared(key, load).await?;
        let age = if answer.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        self.local.put(key.as_str(), answer.clone(), age);
        Ok(answer)
    }

    /// Forgets `key` here and in the shared cache.
    async fn forget(&self, key: &CacheKey) -> Result<()> {
        self.local.remove(key.as_str());
        self.cache.delete(key).await.map(drop)
    }

    /// [`Enricher::cached`] below the local level.
    async fn cached_shared<T, F, Fut>(&self, key: &CacheKey, load: F) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Option<T>>> + Send,
    {
        match self.cache.get_json::<Option<T>>(key).await {
            Ok(Some(hit)) => return Ok(hit),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "enrichment cache read failed; using the directory")
            }
        }
        let loaded = load().await?;
        let ttl = if loaded.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        if let Err(e) = self.cache.set_json(key, &loaded, ttl).await {
            tracing::warn!(error = %e, "enrichment cache write failed");
        }
        Ok(loaded)
    }
}

fn tool_agent_key(tenant: &TenantId, tool: ToolType, agent_tool_id: &str) -> Result<CacheKey> {
    CacheKey::new(
        tenant,
        NS_TOOL_AGENT,
        &format!("{}:{agent_tool_id}", tool.as_str()),
    )
}
