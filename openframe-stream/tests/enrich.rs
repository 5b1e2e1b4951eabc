//! Enrichment over real openframe-data repositories (SQLite and in-memory): tenant, machine
//! and organization resolution, caching with counted directory calls, negative caching,
//! invalidation (local and through the changes topic), unknown machines, unresolvable
//! tenants and tenant isolation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{
    Clock, Error, Machine, MachineId, ManualClock, Organization, OrganizationId, OsType, Result,
    TenantId, ToolConnection, ToolType,
};
use openframe_data::Repositories;
use openframe_data::memory::{InMemoryCache, InMemoryDocumentStore};
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_stream::adapters::{AdapterRegistry, RawRecord};
use openframe_stream::bus::memory::InMemoryEventBus;
use openframe_stream::bus::{EventBus, EventPublisher, Record};
use openframe_stream::enrich::{
    ChangeListener, DEFAULT_CHANGES_TOPIC, DEFAULT_NEGATIVE_TTL, Enricher, EntityChange,
    EntityDirectory, HeaderTenantResolver, MachineInfo, OrganizationInfo, RepositoryDirectory,
    TENANT_FIELD, publish_entity_change,
};
use openframe_stream::model::UnifiedEvent;
use serde_json::json;

/// Counts the calls reaching the real directory.
#[derive(Debug)]
struct Counting {
    inner: RepositoryDirectory,
    tool_agent: AtomicU64,
    machine: AtomicU64,
    organization: AtomicU64,
    default_org: AtomicU64,
}

impl Counting {
    fn new(repos: &Repositories) -> Arc<Self> {
        Arc::new(Self {
            inner: RepositoryDirectory::from_repositories(repos),
            tool_agent: AtomicU64::new(0),
            machine: AtomicU64::new(0),
            organization: AtomicU64::new(0),
            default_org: AtomicU64::new(0),
        })
    }

    /// (tool agent, machine, organization, default organization) calls so far.
    fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.tool_agent.load(Ordering::SeqCst),
            self.machine.load(Ordering::SeqCst),
            self.organization.load(Ordering::SeqCst),
            self.default_org.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl EntityDirectory for Counting {
    async fn machine_for_tool_agent(
        &self,
        tenant: &TenantId,
        tool: ToolType,
        agent_tool_id: &str,
    ) -> Result<Option<MachineId>> {
        self.tool_agent.fetch_add(1, Ordering::SeqCst);
        self.inner
            .machine_for_tool_agent(tenant, tool, agent_tool_id)
            .await
    }
    async fn machine(&self, tenant: &TenantId, id: &MachineId) -> Result<Option<MachineInfo>> {
        self.machine.fetch_add(1, Ordering::SeqCst);
        self.inner.machine(tenant, id).await
    }
    async fn organization(
        &self,
        tenant: &TenantId,
        id: &OrganizationId,
    ) -> Result<Option<OrganizationInfo>> {
        self.organization.fetch_add(1, Ordering::SeqCst);
        self.inner.organization(tenant, id).await
    }
    async fn default_organization(&self, tenant: &TenantId) -> Result<Option<OrganizationInfo>> {
        self.default_org.fetch_add(1, Ordering::SeqCst);
        self.inner.default_organization(tenant).await
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

struct World {
    repos: Repositories,
    clock: Arc<ManualClock>,
    directory: Arc<Counting>,
    enricher: Enricher,
}

async fn sqlite_world() -> World {
    let store = SqliteDocumentStore::open_in_memory().await.unwrap();
    world(Repositories::new(Arc::new(store)))
}

fn world(repos: Repositories) -> World {
    let clock = Arc::new(ManualClock::default());
    let directory = Counting::new(&repos);
    let enricher = enricher_over(directory.clone(), clock.clone());
    World {
        repos,
        clock,
        directory,
        enricher,
    }
}

fn enricher_over(directory: Arc<Counting>, clock: Arc<ManualClock>) -> Enricher {
    Enricher::builder(directory, Arc::new(InMemoryCache::new(clock)))
        .with_tenant_resolver(Arc::new(
            HeaderTenantResolver::new().with_topic_prefix("globex.", tenant("globex")),
        ))
        .build()
        .unwrap()
}

impl World {
    async fn org(&self, t: &TenantId, name: &str, default: bool) -> OrganizationId {
        let mut org = Organization::new(name, self.clock.now());
        org.is_default = default;
        self.repos.organizations.insert(t, org).await.unwrap().id
    }

    async fn machine(&self, t: &TenantId, id: &str, org: Option<&OrganizationId>) -> MachineId {
        let mut m = Machine::new(
            MachineId::parse(id).unwrap(),
            id,
            OsType::Linux,
            self.clock.now(),
        );
        m.organization_id = org.cloned();
        self.repos.machines.insert(t, m).await.unwrap().id
    }

    async fn connect(&self, t: &TenantId, machine: &MachineId, host: &str) -> ToolConnection {
        let conn = ToolConnection::new(machine.clone(), ToolType::FleetMdm, host, self.clock.now());
        self.repos.tool_connections.insert(t, conn).await.unwrap()
    }

    async fn enrich(&self, raw: &RawRecord) -> Result<UnifiedEvent> {
        enrich_with(&self.enricher, raw).await
    }
}

async fn enrich_with(enricher: &Enricher, raw: &RawRecord) -> Result<UnifiedEvent> {
    let mut events = AdapterRegistry::builtin().adapt(raw).expect("adapts");
    assert_eq!(events.len(), 1);
    enricher.enrich(raw, events.remove(0)).await
}

/// A Fleet query result for host `host` (the tool's device id).
fn fleet(host: &str, tenant_header: Option<&str>) -> RawRecord {
    fleet_on("fleet-mdm-query-result-events", host, tenant_header)
}

fn fleet_on(topic: &str, host: &str, tenant_header: Option<&str>) -> RawRecord {
    let payload = json!({
        "id": 5561, "query_id": 12, "host_id": host, "error": null,
        "last_fetched": "2025-03-01T10:10:00Z", "data": {"name": "sshd"}
    });
    let raw = RawRecord::new(topic, serde_json::to_vec(&payload).unwrap());
    match tenant_header {
        Some(t) => raw.with_header("tenant-id", t),
        None => raw,
    }
}

/// An agent-plane domain event of `machine` in `tenant`.
fn agent_event(tenant: &str, machine: &str) -> RawRecord {
    let payload = json!({
        "tenant": tenant, "machineId": machine, "kind": "CAME_ONLINE",
        "status": "ONLINE", "at": "2025-03-01T10:00:00Z"
    });
    RawRecord::new(
        "openframe.agent-events",
        serde_json::to_vec(&payload).unwrap(),
    )
}

#[tokio::test]
async fn tool_and_agent_events_get_machine_and_organization() {
    let w = sqlite_world().await;
    let acme = tenant("acme");
    let org = w.org(&acme, "Acme Retail", false).await;
    let m = w.machine(&acme, "m-1", Some(&org)).await;
    w.connect(&acme, &m, "412").await;

    let e = w.enrich(&fleet("412", Some("acme"))).await.unwrap();
    assert_eq!(e.tenant, Some(acme.clone()));
    assert_eq!(e.machine_id, Some(m.clone()));
    assert_eq!(e.organization_id, Some(org.clone()));
    assert!(!e.unknown_machine);

    let e = w.enrich(&agent_event("acme", "m-1")).await.unwrap();
    assert_eq!(e.tenant, Some(acme));
    assert_eq!(e.machine_id, Some(m));
    assert_eq!(e.organization_id, Some(org));
    assert!(!e.unknown_machine);
}

#[tokio::test]
async fn machines_without_organization_get_the_default_one() {
    let w = sqlite_world().await;
    let acme = tenant("acme");
    let default = w.org(&acme, "Acme HQ", true).await;
    w.machine(&acme, "m-1", None).await;
    let e = w.enrich(&agent_event("acme", "m-1")).await.unwrap();
    assert_eq!(e.organization_id, Some(default));
}

#[tokio::test]
async fn lookups_are_cached() {
    let w = sqlite_world().await;
    let acme = tenant("acme");
    let org = w.org(&acme, "Acme Retail", false).await;
    let m = w.machine(&acme, "m-1", Some(&org)).await;
    w.connect(&acme, &m, "412").await;

    for _ in 0..5 {
        let e = w.enrich(&fleet("412", Some("acme"))).await.unwrap();
        assert_eq!(e.organization_id, Some(org.clone()));
    }
    assert_eq!(w.directory.counts(), (1, 1, 1, 0));
    // The agent event shares the machine and organization entries.
    w.enrich(&agent_event("acme", "m-1")).await.unwrap();
    assert_eq!(w.directory.counts(), (1, 1, 1, 0));
    // Entries expire with the TTL (on the injected clock).
    w.clock.advance(Duration::from_secs(16 * 60));
    w.enrich(&fleet("412", Some("acme"))).await.unwrap();
    assert_eq!(w.directory.counts(), (2, 2, 2, 0));
}

#[tokio::test]
async fn unknown_machines_are_flagged_and_negative_answers_cached_briefly() {
    let w = sqlite_world().await;
    let acme = tenant("acme");

    let e = w.enrich(&fleet("999", Some("acme"))).await.unwrap();
    assert!(e.unknown_machine, "an unknown device is kept and flagged");
    assert_eq!((e.machine_id, e.organization_id), (None, None));
    assert_eq!(e.tenant, Some(acme.clone()));
    let e = w.enrich(&agent_event("acme", "m-ghost")).await.unwrap();
    assert!(e.unknown_machine);
    assert_eq!(e.machine_id.unwrap().as_str(), "m-ghost");
    assert_eq!(w.directory.counts(), (1, 1, 0, 0));

    // The machine enrolls: the negative answer hides it only until its short TTL ends.
    let m = w.machine(&acme, "m-ghost", None).await;
    w.connect(&acme, &m, "999").await;
    assert!(
        w.enrich(&fleet("999", Some("acme")))
            .await
            .unwrap()
            .unknown_machine
    );
    assert_eq!(w.directory.counts(), (1, 1, 0, 0));
    w.clock
        .advance(DEFAULT_NEGATIVE_TTL + Duration::from_secs(1));
    let e = w.enrich(&fleet("999", Some("acme"))).await.unwrap();
    assert!(!e.unknown_machine);
    assert_eq!(e.machine_id, Some(m));
    assert_eq!(w.directory.counts(), (2, 2, 0, 1));
}

#[tokio::test]
async fn events_without_a_device_are_not_flagged() {
    let w = sqlite_world().await;
    // A MeshCentral login names a user, no device.
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/meshcentral/user_login.json"
    );
    let raw = RawRecord::new("meshcentral-events", std::fs::read(golden).unwrap())
        .with_header("tenant-id", "acme");
    let e = w.enrich(&raw).await.unwrap();
    assert!(e.tool_agent_id.is_none());
    assert!(!e.unknown_machine);
    assert_eq!(w.directory.counts(), (0, 0, 0, 0));
}

#[tokio::test]
async fn unresolvable_tenants_are_errors_on_the_tenant_field() {
    let w = sqlite_world().await;
    let err = w.enrich(&fleet("412", None)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(err.field(), Some(TENANT_FIELD));
    let err = w
        .enrich(&fleet("412", Some("not a tenant!")))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some(TENANT_FIELD));
    // The topic prefix map resolves what the header does not.
    let e = w
        .enrich(&fleet_on(
            "globex.fleet-mdm-query-result-events",
            "412",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(e.tenant, Some(tenant("globex")));
}

#[tokio::test]
async fn tenants_never_see_each_others_machines() {
    let w = world(Repositories::new(Arc::new(InMemoryDocumentStore::new())));
    let (a, b) = (tenant("acme"), tenant("globex"));
    let org_a = w.org(&a, "A", false).await;
    let org_b = w.org(&b, "B", false).await;
    let ma = w.machine(&a, "m-a", Some(&org_a)).await;
    let mb = w.machine(&b, "m-b", Some(&org_b)).await;
    // The same tool device id in both tenants.
    w.connect(&a, &ma, "412").await;
    w.connect(&b, &mb, "412").await;

    let ea = w.enrich(&fleet("412", Some("acme"))).await.unwrap();
    let eb = w.enrich(&fleet("412", Some("globex"))).await.unwrap();
    assert_eq!((ea.machine_id, ea.organization_id), (Some(ma), Some(org_a)));
    assert_eq!((eb.machine_id, eb.organization_id), (Some(mb), Some(org_b)));
    // A third tenant with a warm cache elsewhere still knows nothing.
    let ec = w.enrich(&fleet("412", Some("initech"))).await.unwrap();
    assert!(ec.unknown_machine);
    // An agent event naming acme's machine under globex is not acme's machine.
    let e = w.enrich(&agent_event("globex", "m-a")).await.unwrap();
    assert!(e.unknown_machine);
    assert_eq!(e.organization_id, None);
}

#[tokio::test]
async fn local_invalidation_drops_cached_entries() {
    let w = sqlite_world().await;
    let acme = tenant("acme");
    let org1 = w.org(&acme, "One", false).await;
    let org2 = w.org(&acme, "Two", false).await;
    let m1 = w.machine(&acme, "m-1", Some(&org1)).await;
    let m2 = w.machine(&acme, "m-2", Some(&org2)).await;
    let conn = w.connect(&acme, &m1, "412").await;
    assert_eq!(
        w.enrich(&fleet("412", Some("acme")))
            .await
            .unwrap()
            .organization_id,
        Some(org1.clone())
    );

    // The machine moves to another organization.
    let mut machine = w.repos.machines.get(&acme, &m1).await.unwrap().unwrap();
    machine.organization_id = Some(org2.clone());
    w.repos.machines.update(&acme, machine).await.unwrap();
    let stale = w.enrich(&fleet("412", Some("acme"))).await.unwrap();
    assert_eq!(
        stale.organization_id,
        Some(org1.clone()),
        "cached until invalidated"
    );
    w.enricher.invalidate_machine(&acme, &m1).await.unwrap();
    let fresh = w.enrich(&fleet("412", Some("acme"))).await.unwrap();
    assert_eq!(fresh.organization_id, Some(org2.clone()));

    // The tool device is reassigned to another machine.
    w.repos
        .tool_connections
        .delete(&acme, &conn.id)
        .await
        .unwrap();
    w.connect(&acme, &m2, "412").await;
    w.enricher
        .invalidate_tool_connection(&acme, ToolType::FleetMdm, "412")
        .await
        .unwrap();
    assert_eq!(
        w.enrich(&fleet("412", Some("acme")))
            .await
            .unwrap()
            .machine_id,
        Some(m2.clone())
    );

    // An organization lookup is reloaded after invalidate_organization.
    let before = w.directory.counts().2;
    w.enricher
        .invalidate_organization(&acme, &org2)
        .await
        .unwrap();
    w.enrich(&fleet("412", Some("acme"))).await.unwrap();
    assert_eq!(w.directory.counts().2, before + 1);
}

#[tokio::test]
async fn changes_on_the_bus_invalidate_every_replica() {
    let w = sqlite_world().await;
    let acme = tenant("acme");
    let org1 = w.org(&acme, "One", false).await;
    let org2 = w.org(&acme, "Two", false).await;
    let m1 = w.machine(&acme, "m-1", Some(&org1)).await;
    // Two replicas, each with its own cache and listener.
    let replica2 = enricher_over(w.directory.clone(), w.clock.clone());
    let bus = Arc::new(InMemoryEventBus::new());
    let mut l1 = ChangeListener::subscribe(
        bus.as_ref(),
        DEFAULT_CHANGES_TOPIC,
        "r1",
        w.enricher.clone(),
    )
    .await
    .unwrap();
    let mut l2 =
        ChangeListener::subscribe(bus.as_ref(), DEFAULT_CHANGES_TOPIC, "r2", replica2.clone())
            .await
            .unwrap();
    for enricher in [&w.enricher, &replica2] {
        let e = enrich_with(enricher, &agent_event("acme", "m-1"))
            .await
            .unwrap();
        assert_eq!(e.organization_id, Some(org1.clone()));
    }

    let mut machine = w.repos.machines.get(&acme, &m1).await.unwrap().unwrap();
    machine.organization_id = Some(org2.clone());
    w.repos.machines.update(&acme, machine).await.unwrap();
    let change = EntityChange::Machine {
        tenant: acme.clone(),
        machine_id: m1.clone(),
    };
    publish_entity_change(bus.as_ref(), DEFAULT_CHANGES_TOPIC, &change)
        .await
        .unwrap();
    // A malformed change is skipped, not fatal.
    bus.publish(Record::new(DEFAULT_CHANGES_TOPIC, b"{oops".to_vec()))
        .await
        .unwrap();
    assert_eq!(l1.apply_next().await.unwrap(), Some(Some(change.clone())));
    assert_eq!(l2.apply_next().await.unwrap(), Some(Some(change)));
    assert_eq!(l1.apply_next().await.unwrap(), Some(None));

    for enricher in [&w.enricher, &replica2] {
        let e = enrich_with(enricher, &agent_event("acme", "m-1"))
            .await
            .unwrap();
        assert_eq!(e.organization_id, Some(org2.clone()));
    }
    assert_eq!(
        bus.topic_partitions(DEFAULT_CHANGES_TOPIC).await.unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn entity_changes_have_a_stable_json_form() {
    let change = EntityChange::ToolConnection {
        tenant: tenant("acme"),
        tool_type: ToolType::FleetMdm,
        agent_tool_id: "412".into(),
    };
    let json = serde_json::to_value(&change).unwrap();
    assert_eq!(
        json,
        json!({"entity": "TOOL_CONNECTION", "tenant": "acme", "toolType": "FLEET_MDM", "agentToolId": "412"})
    );
    let back: EntityChange = serde_json::from_value(json).unwrap();
    assert_eq!(back, change);
    assert!(
        serde_json::from_value::<EntityChange>(
            json!({"entity": "MACHINE", "tenant": "acme", "machineId": "bad id"})
        )
        .is_err()
    );
}

#[tokio::test]
async fn bad_settings_are_rejected() {
    let w = sqlite_world().await;
    let build = |ttl, neg| {
        Enricher::builder(
            w.directory.clone(),
            Arc::new(InMemoryCache::new(w.clock.clone())),
        )
        .with_ttl(ttl)
        .with_negative_ttl(neg)
        .build()
    };
    assert!(build(Duration::ZERO, Duration::ZERO).is_err());
    assert!(build(Duration::from_secs(10), Duration::from_secs(60)).is_err());
    assert!(build(Duration::from_secs(60), Duration::from_secs(10)).is_ok());
    let bus = InMemoryEventBus::new();
    let err = ChangeListener::subscribe(
        &bus,
        DEFAULT_CHANGES_TOPIC,
        "bad replica",
        w.enricher.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.field(), Some("group"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_listener_applies_changes_until_shutdown() {
    let w = sqlite_world().await;
    let acme = tenant("acme");
    let org = w.org(&acme, "One", false).await;
    w.machine(&acme, "m-1", Some(&org)).await;
    let bus = Arc::new(InMemoryEventBus::new());
    let listener =
        ChangeListener::subscribe(bus.as_ref(), "test.changes", "r1", w.enricher.clone())
            .await
            .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(listener.run(async move {
        let _ = stopped.await;
    }));
    w.enrich(&agent_event("acme", "m-1")).await.unwrap();
    assert_eq!(w.directory.counts().2, 1);
    let change = EntityChange::Organization {
        tenant: acme.clone(),
        organization_id: org.clone(),
    };
    publish_entity_change(bus.as_ref(), "test.changes", &change)
        .await
        .unwrap();
    // Wait for the listener (progress of another task; no clock involved).
    let mut reloaded = false;
    for _ in 0..2000 {
        w.enrich(&agent_event("acme", "m-1")).await.unwrap();
        if w.directory.counts().2 == 2 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(reloaded, "the organization was invalidated by the listener");
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap().unwrap(), 1);
}

#[tokio::test]
async fn the_local_level_serves_warm_lookups_and_invalidation_clears_it() {
    let w = sqlite_world().await;
    let acme = tenant("acme");
    let org1 = w.org(&acme, "One", false).await;
    let org2 = w.org(&acme, "Two", false).await;
    let m = w.machine(&acme, "m-1", Some(&org1)).await;
    w.connect(&acme, &m, "412").await;
    let enricher = Enricher::builder(
        w.directory.clone(),
        Arc::new(InMemoryCache::new(w.clock.clone())),
    )
    .with_local_cache(Duration::from_secs(60))
    .build()
    .unwrap();

    let first = enrich_with(&enricher, &fleet("412", Some("acme")))
        .await
        .unwrap();
    assert_eq!(first.organization_id, Some(org1.clone()));
    let loads = w.directory.counts();
    // The shared cache's entries expire (on its clock); the local level still answers.
    w.clock.advance(Duration::from_secs(16 * 60));
    enrich_with(&enricher, &fleet("412", Some("acme")))
        .await
        .unwrap();
    assert_eq!(w.directory.counts(), loads);

    // The machine moves; invalidation clears both levels, so the next event sees it.
    let mut machine = w.repos.machines.get(&acme, &m).await.unwrap().unwrap();
    machine.organization_id = Some(org2.clone());
    w.repos.machines.update(&acme, machine).await.unwrap();
    enricher.invalidate_machine(&acme, &m).await.unwrap();
    let fresh = enrich_with(&enricher, &fleet("412", Some("acme")))
        .await
        .unwrap();
    assert_eq!(fresh.organization_id, Some(org2));

    // Ages beyond the bound are refused.
    let too_long = Enricher::builder(
        w.directory.clone(),
        Arc::new(InMemoryCache::new(w.clock.clone())),
    )
    .with_local_cache(Duration::from_secs(61))
    .build();
    assert!(too_long.is_err());
}
