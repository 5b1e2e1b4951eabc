//! Tool installation: definitions, install messages, reports from agents, update rollout and
//! its outbox, on the in-memory bus and store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::bus::{
    AgentBus, ConsumerSpec, DurableConsumer, Headers, PublishAck, StreamSpec, Subscription,
    agent_consumers, agent_streams,
};
use openframe_agent::listener::MachineTenants;
use openframe_agent::tools::*;
use openframe_core::{
    Clock, ConnectionStatus, Error, Machine, MachineId, MachineStatus, ManualClock, OsType, Result,
    Tenant, TenantId, ToolType,
};
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::{MachineFilter, Repositories};
use serde_json::json;

/// The in-memory bus, with durable publishes that can be made to fail.
#[derive(Debug)]
struct FlakyBus {
    inner: InMemoryAgentBus,
    fail: AtomicBool,
}

#[async_trait]
impl AgentBus for FlakyBus {
    async fn publish(&self, subject: &str, payload: Vec<u8>, headers: Headers) -> Result<()> {
        self.inner.publish(subject, payload, headers).await
    }
    async fn publish_durable(
        &self,
        subject: &str,
        payload: Vec<u8>,
        headers: Headers,
    ) -> Result<PublishAck> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                reason: "bus down".into(),
            });
        }
        self.inner.publish_durable(subject, payload, headers).await
    }
    async fn subscribe(&self, pattern: &str) -> Result<Subscription> {
        self.inner.subscribe(pattern).await
    }
    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription> {
        self.inner.queue_subscribe(pattern, group).await
    }
    async fn ensure_streams(&self, specs: &[StreamSpec]) -> Result<()> {
        self.inner.ensure_streams(specs).await
    }
    async fn delete_stream(&self, name: &str) -> Result<bool> {
        self.inner.delete_stream(name).await
    }
    async fn delete_consumer(&self, stream: &str, durable_name: &str) -> Result<bool> {
        self.inner.delete_consumer(stream, durable_name).await
    }
    async fn durable_consumer(&self, spec: &ConsumerSpec) -> Result<DurableConsumer> {
        self.inner.durable_consumer(spec).await
    }
}

/// Machine → tenant, or a failing lookup.
#[derive(Debug, Default)]
struct Tenants {
    map: Mutex<HashMap<MachineId, TenantId>>,
    fail: AtomicBool,
}

#[async_trait]
impl MachineTenants for Tenants {
    async fn tenant_of(&self, machine: &MachineId) -> Result<Option<TenantId>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                reason: "lookup down".into(),
            });
        }
        Ok(self.map.lock().unwrap().get(machine).cloned())
    }
}

struct World {
    clock: Arc<ManualClock>,
    repos: Repositories,
    bus: Arc<FlakyBus>,
    service: ToolInstallationService,
    ingestor: ToolReportIngestor,
    tenants: Arc<Tenants>,
    acme: TenantId,
    globex: TenantId,
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(openframe_core::SystemClock.now()));
    let store = Arc::new(InMemoryDocumentStore::new());
    let repos = Repositories::with_clock(store.clone(), clock.clone());
    let inner = InMemoryAgentBus::builder()
        .with_clock(clock.clone())
        .with_tick(Duration::from_millis(5))
        .build()
        .unwrap();
    inner.ensure_streams(&agent_streams()).await.unwrap();
    let bus = Arc::new(FlakyBus {
        inner,
        fail: AtomicBool::new(false),
    });
    let service = ToolInstallationService::new(
        bus.clone(),
        store.clone(),
        repos.machines.clone(),
        repos.tenants.clone(),
        clock.clone(),
        ToolInstallationConfig::new("https://assets.example/").unwrap(),
    );
    let ingestor = ToolReportIngestor::new(
        store,
        repos.tool_connections.clone(),
        repos.machines.clone(),
        clock.clone(),
        IngestConfig::default(),
    )
    .unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    for t in [&acme, &globex] {
        repos
            .tenants
            .insert(Tenant::new(
                t.clone(),
                t.as_str(),
                &format!("{t}.example"),
                clock.now(),
            ))
            .await
            .unwrap();
    }
    World {
        clock,
        repos,
        bus,
        service,
        ingestor,
        tenants: Arc::new(Tenants::default()),
        acme,
        globex,
    }
}

async fn machine(w: &World, tenant: &TenantId, os: OsType, status: MachineStatus) -> MachineId {
    let mut m = Machine::new(MachineId::generate(), "host", os, w.clock.now());
    m.status = status;
    let id = w.repos.machines.insert(tenant, m).await.unwrap().id;
    w.tenants
        .map
        .lock()
        .unwrap()
        .insert(id.clone(), tenant.clone());
    id
}

const SHA: &str = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef";

fn download(os: OsType, link: &str) -> DownloadConfiguration {
    DownloadConfiguration {
        os,
        file_name: "meshagent.zip".into(),
        agent_file_name: "meshagent".into(),
        link: link.into(),
        installation_type: InstallationType::Service,
        bundle_id: None,
        service_name: Some("Mesh Agent".into()),
    }
}

fn mesh(w: &World) -> IntegratedToolAgent {
    let mut a = IntegratedToolAgent::new(
        "meshcentral-agent",
        ToolType::MeshCentral,
        "1.1.44",
        SessionType::Service,
        w.clock.now(),
    );
    a.tool_key = Some("meshcentral-server".into());
    a.download_configurations = vec![
        download(
            OsType::Windows,
            "{assetsBaseUrl}/tool-agent/meshcentral-agent?os=windows&v={version}",
        ),
        download(
            OsType::MacOs,
            "https://github.com/o/r/releases/download/v{version}/mesh-mac.zip",
        ),
    ];
    a.assets = vec![ToolAgentAsset {
        id: "meshcentral-core-module".into(),
        version: "2.0.0".into(),
        download_configurations: vec![download(OsType::Windows, "/tool-agent/core/{version}")],
        local_filename_configuration: vec![LocalFilenameConfiguration {
            filename: "core.js".into(),
            os: OsType::Windows,
        }],
        source: AssetSource::ToolApi,
        path: Some("/core".into()),
        executable: false,
        sha256: Some(SHA.into()),
    }];
    a.installation_command_args = vec![
        "-install".into(),
        "--server=${client.serverUrl}".into(),
        "--core=${client.assetPath.meshcentral-core-module}".into(),
    ];
    a.run_command_args = vec!["-run".into()];
    a.agent_tool_id_command_args = vec!["-nodeid".into()];
    a.uninstallation_command_args = vec!["-uninstall".into()];
    a
}

fn fleet(w: &World) -> IntegratedToolAgent {
    let mut a = IntegratedToolAgent::new(
        "fleetmdm-agent",
        ToolType::FleetMdm,
        "1.40.0",
        SessionType::Service,
        w.clock.now(),
    );
    a.download_configurations = vec![download(
        OsType::Linux,
        "https://dl.example/orbit-{version}.tgz",
    )];
    a
}

fn expected_mesh_message(reinstall: bool) -> serde_json::Value {
    json!({
        "toolAgentId": "meshcentral-agent",
        "toolId": "meshcentral-server",
        "toolType": "MESHCENTRAL",
        "version": "1.1.44",
        "sessionType": "SERVICE",
        "downloadConfigurations": [
            {
                "os": "WINDOWS",
                "fileName": "meshagent.zip",
                "agentFileName": "meshagent",
                "link": "https://assets.example/tool-agent/meshcentral-agent?os=windows&v=1.1.44",
                "installationType": "SERVICE",
                "bundleId": null,
                "serviceName": "Mesh Agent"
            },
            {
                "os": "MAC_OS",
                "fileName": "meshagent.zip",
                "agentFileName": "meshagent",
                "link": "https://github.com/o/r/releases/download/v1.1.44/mesh-mac.zip",
                "installationType": "SERVICE",
                "bundleId": null,
                "serviceName": "Mesh Agent"
            }
        ],
        "assets": [{
            "id": "meshcentral-core-module",
            "version": "2.0.0",
            "downloadConfigurations": [{
                "os": "WINDOWS",
                "fileName": "meshagent.zip",
                "agentFileName": "meshagent",
                "link": "/tool-agent/core/2.0.0",
                "installationType": "SERVICE",
                "bundleId": null,
                "serviceName": "Mesh Agent"
            }],
            "localFilenameConfiguration": [{"filename": "core.js", "os": "WINDOWS"}],
            "source": "TOOL_API",
            "path": "/core",
            "executable": false,
            "sha256": SHA.to_lowercase()
        }],
        "installationCommandArgs": ["-install", "--server=${client.serverUrl}", "--core=${client.assetPath.meshcentral-core-module}"],
        "runCommandArgs": ["-run"],
        "toolAgentIdCommandArgs": ["-nodeid"],
        "uninstallationCommandArgs": ["-uninstall"],
        "reinstall": reinstall
    })
}

/// The agent's own `tool-installation` consumer, bound as the original agent binds it.
async fn agent_install_consumer(w: &World, machine: &MachineId) -> DurableConsumer {
    let spec = agent_consumers(machine).unwrap().remove(0);
    assert_eq!(
        spec.durable_name,
        format!("machine_{machine}_tool-installation_consumer")
    );
    w.bus.durable_consumer(&spec).await.unwrap()
}

async fn next_json(consumer: &mut DurableConsumer) -> (String, serde_json::Value) {
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("a delivery")
        .unwrap()
        .unwrap();
    let subject = delivery.message.subject.clone();
    let value = serde_json::from_slice(&delivery.message.payload).unwrap();
    delivery.ack().await.unwrap();
    (subject, value)
}

async fn nothing_more(consumer: &mut DurableConsumer) {
    let next = tokio::time::timeout(Duration::from_millis(100), consumer.next()).await;
    assert!(next.is_err(), "unexpected delivery");
}

#[tokio::test]
async fn registration_publishes_every_enabled_agent_with_resolved_links() {
    let w = world().await;
    w.service.agents().save(&w.acme, mesh(&w)).await.unwrap();
    let mut disabled = fleet(&w);
    disabled.enabled = false;
    w.service.agents().save(&w.acme, disabled).await.unwrap();
    let m = machine(&w, &w.acme, OsType::Windows, MachineStatus::Pending).await;
    let mut consumer = agent_install_consumer(&w, &m).await;

    let report = w
        .service
        .install_on_registration(&w.acme, &m)
        .await
        .unwrap();
    assert!(report.is_complete());
    assert_eq!(report.published.len(), 1);
    assert_eq!(report.published[0].ack.stream, "TOOL_INSTALLATION");
    assert_eq!(
        report.published[0].subject,
        format!("machine.{m}.tool-installation")
    );

    let (subject, message) = next_json(&mut consumer).await;
    assert_eq!(subject, format!("machine.{m}.tool-installation"));
    assert_eq!(message, expected_mesh_message(false));
    nothing_more(&mut consumer).await;

    // Another tenant's machine is not found from this tenant.
    let other = machine(&w, &w.globex, OsType::Windows, MachineStatus::Online).await;
    let err = w
        .service
        .install_on_registration(&w.acme, &other)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
}

#[tokio::test]
async fn on_demand_install_to_machines_filter_and_all() {
    let w = world().await;
    w.service.agents().save(&w.acme, mesh(&w)).await.unwrap();
    let win = machine(&w, &w.acme, OsType::Windows, MachineStatus::Online).await;
    let mac = machine(&w, &w.acme, OsType::MacOs, MachineStatus::Offline).await;
    let deleted = machine(&w, &w.acme, OsType::Windows, MachineStatus::Deleted).await;
    let archived = machine(&w, &w.acme, OsType::Windows, MachineStatus::Archived).await;
    let foreign = machine(&w, &w.globex, OsType::Windows, MachineStatus::Online).await;
    let mut win_consumer = agent_install_consumer(&w, &win).await;
    let mut foreign_consumer = agent_install_consumer(&w, &foreign).await;

    // One machine, reinstall; a foreign id and a deleted one are skipped.
    let report = w
        .service
        .install(
            &w.acme,
            InstallTarget::Machines(vec![
                win.clone(),
                foreign.clone(),
                deleted.clone(),
                win.clone(),
            ]),
            "meshcentral-agent",
            true,
        )
        .await
        .unwrap();
    assert_eq!(report.published.len(), 1);
    assert_eq!(report.published[0].machine_id, win);
    assert!(report.published[0].message.reinstall);
    assert!(report.skipped.contains(&SkippedMachine {
        machine_id: foreign.clone(),
        reason: SkipReason::NotFound
    }));
    assert!(report.skipped.contains(&SkippedMachine {
        machine_id: deleted.clone(),
        reason: SkipReason::Inactive(MachineStatus::Deleted)
    }));
    let (_, message) = next_json(&mut win_consumer).await;
    assert_eq!(message, expected_mesh_message(true));

    // A filter: only the Mac.
    let filter = MachineFilter {
        os_types: vec![OsType::MacOs],
        ..Default::default()
    };
    let report = w
        .service
        .install(
            &w.acme,
            InstallTarget::Filter(filter),
            "meshcentral-agent",
            false,
        )
        .await
        .unwrap();
    let targeted: Vec<_> = report
        .published
        .iter()
        .map(|p| p.machine_id.clone())
        .collect();
    assert_eq!(targeted, vec![mac.clone()]);

    // A filter naming DELETED explicitly still skips them.
    let filter = MachineFilter {
        statuses: vec![MachineStatus::Deleted, MachineStatus::Archived],
        ..Default::default()
    };
    let report = w
        .service
        .install(
            &w.acme,
            InstallTarget::Filter(filter),
            "meshcentral-agent",
            false,
        )
        .await
        .unwrap();
    assert!(report.published.is_empty());
    assert_eq!(report.skipped.len(), 2);

    // All: every active machine of this tenant, never the other tenant's.
    let report = w
        .service
        .install(&w.acme, InstallTarget::All, "meshcentral-agent", false)
        .await
        .unwrap();
    let mut targeted: Vec<_> = report
        .published
        .iter()
        .map(|p| p.machine_id.clone())
        .collect();
    targeted.sort();
    let mut expected = vec![win.clone(), mac.clone()];
    expected.sort();
    assert_eq!(targeted, expected);
    assert!(!targeted.contains(&deleted) && !targeted.contains(&archived));
    let (_, message) = next_json(&mut win_consumer).await;
    assert_eq!(message["reinstall"], json!(false));
    nothing_more(&mut win_consumer).await;
    nothing_more(&mut foreign_consumer).await;

    // Unknown, other tenant's and disabled agents.
    let err = w
        .service
        .install(&w.acme, InstallTarget::All, "nope", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    let err = w
        .service
        .install(&w.globex, InstallTarget::All, "meshcentral-agent", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    let mut agent = w
        .service
        .agents()
        .get(&w.acme, "meshcentral-agent")
        .await
        .unwrap()
        .unwrap();
    agent.enabled = false;
    w.service.agents().save(&w.acme, agent).await.unwrap();
    let err = w
        .service
        .install(&w.acme, InstallTarget::All, "meshcentral-agent", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));
    let err = w
        .service
        .install(
            &w.acme,
            InstallTarget::Machines(vec![]),
            "fleetmdm-agent",
            false,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
}

#[tokio::test]
async fn install_to_many_machines_pages_through_all_of_them() {
    let w = world().await;
    w.service.agents().save(&w.acme, fleet(&w)).await.unwrap();
    for _ in 0..230 {
        machine(&w, &w.acme, OsType::Linux, MachineStatus::Online).await;
    }
    let report = w
        .service
        .install(&w.acme, InstallTarget::All, "fleetmdm-agent", false)
        .await
        .unwrap();
    assert_eq!(report.published.len(), 230);
    let mut ids: Vec<_> = report.published.iter().map(|p| &p.machine_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 230);
}

#[tokio::test]
async fn publish_failures_are_reported_per_machine() {
    let w = world().await;
    w.service.agents().save(&w.acme, mesh(&w)).await.unwrap();
    w.service.agents().save(&w.acme, fleet(&w)).await.unwrap();
    let m = machine(&w, &w.acme, OsType::Windows, MachineStatus::Online).await;
    w.bus.fail.store(true, Ordering::SeqCst);
    let report = w
        .service
        .install_on_registration(&w.acme, &m)
        .await
        .unwrap();
    assert!(!report.is_complete());
    assert!(report.published.is_empty());
    let mut failed: Vec<_> = report
        .failed
        .iter()
        .map(|f| (f.machine_id.clone(), f.tool_agent_key.as_str()))
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        vec![
            (m.clone(), "fleetmdm-agent"),
            (m.clone(), "meshcentral-agent")
        ]
    );
    assert!(report.failed.iter().all(|f| f.error.is_retryable()));
}

async fn report(w: &World, machine: &MachineId, kind: &str, payload: &[u8]) {
    w.bus
        .publish(
            &format!("machine.{machine}.{kind}"),
            payload.to_vec(),
            Headers::new(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn tool_connection_reports_are_upserted() {
    let w = world().await;
    let m = machine(&w, &w.acme, OsType::Windows, MachineStatus::Online).await;
    let payload = br#"{"toolType":"MESHCENTRAL","agentToolId":"abc$def","extra":{"x":1}}"#;

    let first = w
        .ingestor
        .handle_tool_connection(&w.acme, &m, payload)
        .await
        .unwrap();
    let ReportOutcome::Created(created) = first else {
        panic!("{first:?}")
    };
    assert_eq!(created.agent_tool_id, "node//abc$def");
    assert_eq!(created.status, ConnectionStatus::Connected);

    // Redelivery: nothing changes.
    let again = w
        .ingestor
        .handle_tool_connection(&w.acme, &m, payload)
        .await
        .unwrap();
    assert!(matches!(again, ReportOutcome::Unchanged(_)));
    let stored = w
        .repos
        .tool_connections
        .find_by_machine(&w.acme, &m)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].version, created.version);

    // A changed id is updated.
    w.clock.advance(Duration::from_secs(60));
    let changed = w
        .ingestor
        .handle_tool_connection(
            &w.acme,
            &m,
            br#"{"toolType":"MESHCENTRAL","agentToolId":"xyz"}"#,
        )
        .await
        .unwrap();
    let ReportOutcome::Updated(changed) = changed else {
        panic!("{changed:?}")
    };
    assert_eq!(changed.agent_tool_id, "node//xyz");
    assert_eq!(changed.id, created.id);

    // A disconnected connection is reconnected.
    let mut c = changed.clone();
    c.status = ConnectionStatus::Disconnected;
    c.disconnected_at = Some(w.clock.now());
    w.repos.tool_connections.update(&w.acme, c).await.unwrap();
    w.clock.advance(Duration::from_secs(60));
    let reconnected = w
        .ingestor
        .handle_tool_connection(
            &w.acme,
            &m,
            br#"{"toolType":"MESHCENTRAL","agentToolId":"xyz"}"#,
        )
        .await
        .unwrap();
    let ReportOutcome::Updated(reconnected) = reconnected else {
        panic!("{reconnected:?}")
    };
    assert_eq!(reconnected.status, ConnectionStatus::Connected);
    assert_eq!(reconnected.disconnected_at, None);
    assert_eq!(reconnected.connected_at, Some(w.clock.now()));

    // Another tool type is its own connection; Fleet ids are kept as reported.
    w.ingestor
        .handle_tool_connection(
            &w.acme,
            &m,
            br#"{"toolType":"fleet_mdm","agentToolId":"42"}"#,
        )
        .await
        .unwrap();
    let found = w
        .repos
        .tool_connections
        .find_by_agent_tool_id(&w.acme, ToolType::FleetMdm, "42")
        .await
        .unwrap();
    assert!(found.is_some());
    assert_eq!(
        w.repos
            .tool_connections
            .find_by_machine(&w.acme, &m)
            .await
            .unwrap()
            .len(),
        2
    );

    // The same report for the machine under the wrong tenant stores nothing there.
    let ignored = w
        .ingestor
        .handle_tool_connection(&w.globex, &m, payload)
        .await
        .unwrap();
    assert_eq!(ignored, ReportOutcome::Ignored);
    assert!(
        w.repos
            .tool_connections
            .find_by_machine(&w.globex, &m)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn installed_agent_reports_are_upserted() {
    let w = world().await;
    let m = machine(&w, &w.acme, OsType::Linux, MachineStatus::Online).await;
    let payload = br#"{"agentType":"openframe-client","version":"0.9.1","machineId":"ignored"}"#;
    let created = w
        .ingestor
        .handle_installed_agent(&w.acme, &m, payload)
        .await
        .unwrap();
    assert!(matches!(created, ReportOutcome::Created(_)));
    let again = w
        .ingestor
        .handle_installed_agent(&w.acme, &m, payload)
        .await
        .unwrap();
    assert!(matches!(again, ReportOutcome::Unchanged(_)));
    w.clock.advance(Duration::from_secs(5));
    let updated = w
        .ingestor
        .handle_installed_agent(
            &w.acme,
            &m,
            br#"{"agentType":"openframe-client","version":"1.0.0"}"#,
        )
        .await
        .unwrap();
    let ReportOutcome::Updated(updated) = updated else {
        panic!("{updated:?}")
    };
    assert_eq!(updated.version, "1.0.0");
    assert_eq!(updated.updated_at, w.clock.now());
    assert_eq!(updated.status, ConnectionStatus::Connected);
    let all = w.ingestor.installed_agents(&w.acme, &m).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(
        w.ingestor
            .installed_agents(&w.globex, &m)
            .await
            .unwrap()
            .is_empty()
    );
    let deleted = machine(&w, &w.acme, OsType::Linux, MachineStatus::Deleted).await;
    assert_eq!(
        w.ingestor
            .handle_installed_agent(&w.acme, &deleted, payload)
            .await
            .unwrap(),
        ReportOutcome::Ignored
    );
}

async fn wait_for<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn run_consumes_reports_from_the_durable_streams() {
    let w = world().await;
    let m = machine(&w, &w.acme, OsType::Windows, MachineStatus::Online).await;
    let stranger = MachineId::generate();
    // Published before the ingestor starts: the streams keep them.
    report(
        &w,
        &m,
        "tool-connection",
        br#"{"toolType":"MESHCENTRAL","agentToolId":"n1"}"#,
    )
    .await;
    report(&w, &m, "tool-connection", b"{garbage").await;
    report(
        &w,
        &stranger,
        "tool-connection",
        br#"{"toolType":"MESHCENTRAL","agentToolId":"n2"}"#,
    )
    .await;
    report(
        &w,
        &m,
        "installed-agent",
        br#""{\"agentType\":\"meshcentral-agent\",\"version\":\"1.1\"}""#,
    )
    .await;
    report(&w, &m, "installed-agent", br#"{"agentType":42}"#).await;

    let ingestor = w.ingestor.clone();
    let bus: Arc<dyn AgentBus> = w.bus.clone();
    let tenants: Arc<dyn MachineTenants> = w.tenants.clone();
    let task = tokio::spawn(async move { ingestor.run(bus, tenants).await });

    let repos = w.repos.clone();
    let (acme, mid) = (w.acme.clone(), m.clone());
    wait_for(|| {
        let (repos, acme, mid) = (repos.clone(), acme.clone(), mid.clone());
        async move {
            !repos
                .tool_connections
                .find_by_machine(&acme, &mid)
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;
    let ingestor = w.ingestor.clone();
    wait_for(|| {
        let (ingestor, acme, mid) = (ingestor.clone(), acme.clone(), mid.clone());
        async move {
            !ingestor
                .installed_agents(&acme, &mid)
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;
    let conn = w
        .repos
        .tool_connections
        .find_by_machine(&w.acme, &m)
        .await
        .unwrap();
    assert_eq!(conn[0].agent_tool_id, "node//n1");
    assert!(!task.is_finished());
    task.abort();

    // Everything was settled: a new binding of the same consumers gets nothing, even after
    // the ack wait.
    w.clock.advance(Duration::from_secs(120));
    for spec in [tool_connection_consumer(), installed_agent_consumer()] {
        let mut consumer = w.bus.durable_consumer(&spec).await.unwrap();
        nothing_more(&mut consumer).await;
    }
}

#[tokio::test]
async fn malformed_reports_are_acked_and_transient_failures_retried() {
    let w = world().await;
    let m = machine(&w, &w.acme, OsType::Windows, MachineStatus::Online).await;
    let mut consumer = w
        .bus
        .durable_consumer(&tool_connection_consumer())
        .await
        .unwrap();
    let huge = format!(
        r#"{{"toolType":"MESHCENTRAL","agentToolId":"{}"}}"#,
        "a".repeat(20_000)
    );
    let bad: Vec<&[u8]> = vec![
        b"",
        b"\xff\xfe",
        b"[1,2]",
        br#"{"toolType":"UNKNOWN","agentToolId":"x"}"#,
        br#"{"toolType":"MESHCENTRAL","agentToolId":""}"#,
        br#"{"toolType":"MESHCENTRAL","agentToolId":"a\u0000b"}"#,
        huge.as_bytes(),
    ];
    for payload in &bad {
        report(&w, &m, "tool-connection", payload).await;
    }
    for _ in &bad {
        let delivery = consumer.next().await.unwrap().unwrap();
        assert_eq!(
            w.ingestor.process(w.tenants.as_ref(), delivery).await,
            Settlement::Dropped
        );
    }
    w.clock.advance(Duration::from_secs(120));
    nothing_more(&mut consumer).await;
    assert!(
        w.repos
            .tool_connections
            .find_by_machine(&w.acme, &m)
            .await
            .unwrap()
            .is_empty()
    );

    // A failing tenant lookup is retried after the delay, then processed.
    report(
        &w,
        &m,
        "tool-connection",
        br#"{"toolType":"MESHCENTRAL","agentToolId":"ok"}"#,
    )
    .await;
    w.tenants.fail.store(true, Ordering::SeqCst);
    let delivery = consumer.next().await.unwrap().unwrap();
    assert_eq!(delivery.delivered, 1);
    assert_eq!(
        w.ingestor.process(w.tenants.as_ref(), delivery).await,
        Settlement::Retried
    );
    w.tenants.fail.store(false, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(6));
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(delivery.delivered, 2);
    assert_eq!(
        w.ingestor.process(w.tenants.as_ref(), delivery).await,
        Settlement::Processed
    );
    let stored = w
        .repos
        .tool_connections
        .find_by_machine(&w.acme, &m)
        .await
        .unwrap();
    assert_eq!(stored[0].agent_tool_id, "node//ok");
}

#[tokio::test]
async fn rollout_messages_go_to_the_broadcast_subjects() {
    let w = world().await;
    let m = MachineId::generate();
    let specs = agent_consumers(&m).unwrap();
    let client_spec = specs.iter().find(|s| s.stream == "CLIENT_UPDATE").unwrap();
    let tool_spec = specs.iter().find(|s| s.stream == "TOOL_UPDATE").unwrap();
    let mut client = w.bus.durable_consumer(client_spec).await.unwrap();
    let mut tools = w.bus.durable_consumer(tool_spec).await.unwrap();

    let ack = w
        .service
        .publish_client_update(
            "2.0.1",
            vec![download(
                OsType::Windows,
                "{assetsBaseUrl}/clients/{version}/setup.exe",
            )],
        )
        .await
        .unwrap();
    assert_eq!(ack.stream, "CLIENT_UPDATE");
    let (subject, message) = next_json(&mut client).await;
    assert_eq!(subject, "machine.all.client-update");
    assert_eq!(
        message,
        json!({
            "version": "2.0.1",
            "downloadConfigurations": [{
                "os": "WINDOWS",
                "fileName": "meshagent.zip",
                "agentFileName": "meshagent",
                "link": "https://assets.example/clients/2.0.1/setup.exe",
                "installationType": "SERVICE",
                "bundleId": null,
                "serviceName": "Mesh Agent"
            }]
        })
    );

    w.service.agents().save(&w.acme, mesh(&w)).await.unwrap();
    w.service
        .publish_tool_update(&w.acme, "meshcentral-agent")
        .await
        .unwrap();
    let (subject, message) = next_json(&mut tools).await;
    assert_eq!(subject, "machine.all.tool.meshcentral-agent.update");
    let install = expected_mesh_message(false);
    assert_eq!(
        message,
        json!({
            "toolAgentId": "meshcentral-agent",
            "version": "1.1.44",
            "sessionType": "SERVICE",
            "downloadConfigurations": install["downloadConfigurations"],
            "assets": [{
                "assetId": "meshcentral-core-module",
                "version": "2.0.0",
                "executable": false,
                "downloadConfigurations": install["assets"][0]["downloadConfigurations"],
                "sha256": SHA.to_lowercase()
            }]
        })
    );
    let agent = w
        .service
        .agents()
        .get(&w.acme, "meshcentral-agent")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        agent.publish_state,
        PublishState {
            published: true,
            attempts: 0
        }
    );
}

#[tokio::test]
async fn outbox_retries_failed_broadcasts_up_to_the_limit() {
    let w = world().await;
    let m = MachineId::generate();
    let tool_spec = agent_consumers(&m)
        .unwrap()
        .into_iter()
        .find(|s| s.stream == "TOOL_UPDATE")
        .unwrap();
    let mut tools = w.bus.durable_consumer(&tool_spec).await.unwrap();
    w.service.agents().save(&w.acme, mesh(&w)).await.unwrap();
    w.service.agents().save(&w.globex, fleet(&w)).await.unwrap();

    w.bus.fail.store(true, Ordering::SeqCst);
    assert!(
        w.service
            .publish_tool_update(&w.acme, "meshcentral-agent")
            .await
            .is_err()
    );
    assert!(
        w.service
            .publish_tool_update(&w.globex, "fleetmdm-agent")
            .await
            .is_err()
    );
    assert!(
        w.service
            .publish_client_update("2.0.0", vec![])
            .await
            .is_err()
    );
    let state = |tenant: TenantId, key: &'static str| {
        let agents = w.service.agents().clone();
        async move {
            agents
                .get(&tenant, key)
                .await
                .unwrap()
                .unwrap()
                .publish_state
        }
    };
    assert_eq!(
        state(w.acme.clone(), "meshcentral-agent").await,
        PublishState {
            published: false,
            attempts: 1
        }
    );

    // Still failing: each pending broadcast counts another attempt.
    let report = w.service.republish_pending().await.unwrap();
    assert_eq!(report.failed.len(), 2);
    assert!(matches!(report.client_update, Some(Err(_))));
    assert_eq!(state(w.acme.clone(), "meshcentral-agent").await.attempts, 2);

    // The Fleet agent exhausts its attempts: it is no longer retried.
    for _ in 0..3 {
        w.service
            .publish_tool_update(&w.globex, "fleetmdm-agent")
            .await
            .unwrap_err();
    }
    assert_eq!(state(w.globex.clone(), "fleetmdm-agent").await.attempts, 5);

    w.bus.fail.store(false, Ordering::SeqCst);
    let report = w.service.republish_pending().await.unwrap();
    assert_eq!(
        report.republished,
        vec![(w.acme.clone(), "meshcentral-agent".to_owned())]
    );
    assert!(report.failed.is_empty());
    assert!(matches!(report.client_update, Some(Ok(_))));
    assert_eq!(
        state(w.acme.clone(), "meshcentral-agent").await,
        PublishState {
            published: true,
            attempts: 0
        }
    );
    assert!(!state(w.globex.clone(), "fleetmdm-agent").await.published);
    let (subject, _) = next_json(&mut tools).await;
    assert_eq!(subject, "machine.all.tool.meshcentral-agent.update");
    nothing_more(&mut tools).await;

    // Nothing pending: nothing published.
    let report = w.service.republish_pending().await.unwrap();
    assert!(report.republished.is_empty() && report.client_update.is_none());
}

#[tokio::test]
async fn release_version_moves_following_agents_and_marks_them_pending() {
    let w = world().await;
    let mut follower = mesh(&w);
    follower.release_version = true;
    w.service.agents().save(&w.acme, follower).await.unwrap();
    w.service.agents().save(&w.acme, fleet(&w)).await.unwrap();
    let changed = w
        .service
        .apply_release_version(&w.acme, "3.0.0")
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].version, "3.0.0");
    assert_eq!(changed[0].publish_state, PublishState::pending());
    assert!(
        w.service
            .apply_release_version(&w.acme, "3.0.0")
            .await
            .unwrap()
            .is_empty()
    );
    let fleet = w
        .service
        .agents()
        .get(&w.acme, "fleetmdm-agent")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fleet.version, "1.40.0");
    let report = w.service.republish_pending().await.unwrap();
    assert!(
        report
            .republished
            .contains(&(w.acme.clone(), "meshcentral-agent".to_owned()))
    );
}

fn field_of(err: Error) -> String {
    match err {
        Error::InvalidInput { field, .. } => field.into_owned(),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_definitions_are_rejected() {
    let w = world().await;
    let agents = w.service.agents();
    type Mutation = Box<dyn Fn(&mut IntegratedToolAgent)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "assets.sha256",
            Box::new(|a| a.assets[0].sha256 = Some("abc".into())),
        ),
        (
            "assets.sha256",
            Box::new(|a| a.assets[0].sha256 = Some("z".repeat(64))),
        ),
        (
            "link",
            Box::new(|a| a.download_configurations[0].link = "http://insecure.example/x".into()),
        ),
        (
            "link",
            Box::new(|a| a.download_configurations[0].link = "https://x.example/{secret}".into()),
        ),
        (
            "link",
            Box::new(|a| a.download_configurations[0].link = "//evil.example/x".into()),
        ),
        (
            "downloadConfigurations",
            Box::new(|a| {
                let d = a.download_configurations[0].clone();
                a.download_configurations = vec![d; 101];
            }),
        ),
        (
            "assets",
            Box::new(|a| {
                a.assets = (0..101)
                    .map(|i| ToolAgentAsset {
                        id: format!("a{i}"),
                        ..a.assets[0].clone()
                    })
                    .collect();
            }),
        ),
        (
            "assets.id",
            Box::new(|a| a.assets.push(a.assets[0].clone())),
        ),
        (
            "installationCommandArgs",
            Box::new(|a| a.installation_command_args = vec!["x".into(); 101]),
        ),
        (
            "runCommandArgs",
            Box::new(|a| a.run_command_args = vec!["x".repeat(MAX_ARG_LEN + 1)]),
        ),
        ("key", Box::new(|a| a.key = "mesh.agent".into())),
        ("toolKey", Box::new(|a| a.tool_key = Some("a b".into()))),
        (
            "fileName",
            Box::new(|a| a.download_configurations[0].file_name = "../x".into()),
        ),
        ("version", Box::new(|a| a.version = " ".into())),
    ];
    for (field, mutate) in cases {
        let mut agent = mesh(&w);
        mutate(&mut agent);
        let err = agents.save(&w.acme, agent).await.unwrap_err();
        assert_eq!(field_of(err), field);
    }
    assert!(agents.list(&w.acme).await.unwrap().is_empty());

    // Keys are unique per tenant, not across tenants.
    agents.save(&w.acme, mesh(&w)).await.unwrap();
    let dup = agents.save(&w.acme, mesh(&w)).await.unwrap_err();
    assert!(matches!(dup, Error::AlreadyExists { .. }));
    agents.save(&w.globex, mesh(&w)).await.unwrap();

    // Stale revisions conflict.
    let current = agents
        .get(&w.acme, "meshcentral-agent")
        .await
        .unwrap()
        .unwrap();
    let mut a = current.clone();
    a.version = "1.2".into();
    agents.save(&w.acme, a).await.unwrap();
    let err = agents.save(&w.acme, current).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));

    assert!(ToolInstallationConfig::new("ftp://x").is_err());
    assert!(ToolInstallationConfig::new("https://x/{version}").is_err());
}

#[tokio::test]
async fn tenants_never_see_each_others_agents() {
    let w = world().await;
    let mut a = mesh(&w);
    a.version = "1.0-acme".into();
    w.service.agents().save(&w.acme, a).await.unwrap();
    assert!(
        w.service
            .agents()
            .get(&w.globex, "meshcentral-agent")
            .await
            .unwrap()
            .is_none()
    );
    assert!(w.service.agents().list(&w.globex).await.unwrap().is_empty());
    assert!(matches!(
        w.service
            .agents()
            .delete(&w.globex, "meshcentral-agent")
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.service
            .publish_tool_update(&w.globex, "meshcentral-agent")
            .await,
        Err(Error::NotFound { .. })
    ));
    // Registration in globex installs nothing from acme.
    let g = machine(&w, &w.globex, OsType::Windows, MachineStatus::Online).await;
    let report = w
        .service
        .install_on_registration(&w.globex, &g)
        .await
        .unwrap();
    assert!(report.published.is_empty());
    w.service
        .agents()
        .delete(&w.acme, "meshcentral-agent")
        .await
        .unwrap();
}

#[tokio::test]
async fn the_registered_event_publishes_installations_and_passes_the_event_on() {
    use openframe_agent::events::{AgentEvent, AgentEventKind, AgentEventSink, RecordingEventSink};
    use openframe_agent::tools::InstallOnRegistration;

    let w = world().await;
    w.service.agents().save(&w.acme, mesh(&w)).await.unwrap();
    let m = machine(&w, &w.acme, OsType::Windows, MachineStatus::Pending).await;
    let mut consumer = agent_install_consumer(&w, &m).await;
    let recorded = Arc::new(RecordingEventSink::default());
    let sink = InstallOnRegistration::new(w.service.clone(), recorded.clone());
    let event = |kind| AgentEvent {
        tenant: w.acme.clone(),
        machine_id: m.clone(),
        kind,
        previous_status: None,
        status: MachineStatus::Pending,
        at: w.clock.now(),
    };
    sink.emit(event(AgentEventKind::Registered)).await.unwrap();
    let (subject, message) = next_json(&mut consumer).await;
    assert_eq!(subject, format!("machine.{m}.tool-installation"));
    assert_eq!(message, expected_mesh_message(false));
    // Other events install nothing, and every event reaches the inner sink.
    sink.emit(event(AgentEventKind::CameOnline)).await.unwrap();
    nothing_more(&mut consumer).await;
    assert_eq!(recorded.events().len(), 2);
}

#[tokio::test]
async fn the_registration_secret_placeholder_is_resolved_per_tenant_and_never_left_in() {
    let w = world().await;
    let mut agent = fleet(&w);
    agent.installation_command_args = vec![
        "--fleet-url".into(),
        "${client.serverUrl}/tools/fleet".into(),
        "--enroll-secret=${server.registrationSecret}".into(),
    ];
    agent.run_command_args = vec!["--secret".into(), REGISTRATION_SECRET_PLACEHOLDER.into()];
    agent.agent_tool_id_command_args = vec!["--id".into()];
    w.service
        .agents()
        .save(&w.acme, agent.clone())
        .await
        .unwrap();
    w.service.agents().save(&w.globex, agent).await.unwrap();
    w.service.agents().save(&w.acme, mesh(&w)).await.unwrap();
    let acme_machine = machine(&w, &w.acme, OsType::Linux, MachineStatus::Online).await;
    let globex_machine = machine(&w, &w.globex, OsType::Linux, MachineStatus::Online).await;

    // Without any secret source: the Fleet install is refused (reported), MeshCentral still
    // goes out, and nothing with the placeholder left in reaches the agent.
    let mut consumer = agent_install_consumer(&w, &acme_machine).await;
    let report = w
        .service
        .install_on_registration(&w.acme, &acme_machine)
        .await
        .unwrap();
    assert_eq!(report.published.len(), 1);
    assert_eq!(
        report.published[0].message.tool_agent_id,
        "meshcentral-agent"
    );
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].tool_agent_key, "fleetmdm-agent");
    assert!(matches!(report.failed[0].error, Error::Conflict { .. }));
    let (_, message) = next_json(&mut consumer).await;
    assert_eq!(message["toolAgentId"], "meshcentral-agent");
    nothing_more(&mut consumer).await;
    let refused = w
        .service
        .install(
            &w.acme,
            InstallTarget::Machines(vec![acme_machine.clone()]),
            "fleetmdm-agent",
            false,
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Conflict { .. })),
        "{refused:?}"
    );

    // With secrets per tenant: each tenant's machines get their own tenant's secret.
    let secrets = Arc::new(ConfiguredToolSecrets::new());
    secrets.set(
        &w.acme,
        ToolType::FleetMdm,
        openframe_core::Secret::new("acme-enroll"),
    );
    secrets.set(
        &w.globex,
        ToolType::FleetMdm,
        openframe_core::Secret::new("globex-enroll"),
    );
    assert!(
        !format!("{secrets:?}").contains("enroll"),
        "no secret in Debug"
    );
    let service = w.service.clone().with_secrets(secrets);
    let report = service
        .install(
            &w.acme,
            InstallTarget::Machines(vec![acme_machine.clone()]),
            "fleetmdm-agent",
            true,
        )
        .await
        .unwrap();
    assert!(report.is_complete());
    // The report keeps the template: no secret in what callers may log.
    let kept = &report.published[0].message;
    assert_eq!(
        kept.installation_command_args[2],
        "--enroll-secret=${server.registrationSecret}"
    );
    assert!(!format!("{report:?}").contains("acme-enroll"));
    let (_, message) = next_json(&mut consumer).await;
    assert_eq!(
        message["installationCommandArgs"],
        json!([
            "--fleet-url",
            "${client.serverUrl}/tools/fleet",
            "--enroll-secret=acme-enroll"
        ]),
        "agent-side placeholders are left for the agent"
    );
    assert_eq!(
        message["runCommandArgs"],
        json!(["--secret", "acme-enroll"])
    );
    assert_eq!(message["toolAgentIdCommandArgs"], json!(["--id"]));
    assert_eq!(message["reinstall"], true);

    let mut globex_consumer = agent_install_consumer(&w, &globex_machine).await;
    service
        .install(&w.globex, InstallTarget::All, "fleetmdm-agent", false)
        .await
        .unwrap();
    let (_, message) = next_json(&mut globex_consumer).await;
    assert_eq!(
        message["runCommandArgs"],
        json!(["--secret", "globex-enroll"])
    );
    nothing_more(&mut consumer).await;
}

/// Fleet's view in this test: host UUID → numeric host id, for the hosts it has enrolled.
#[derive(Debug, Default)]
struct FleetHosts {
    known: Mutex<HashMap<String, String>>,
    asked: Mutex<Vec<(TenantId, String)>>,
}

#[async_trait]
impl AgentToolIdResolver for FleetHosts {
    async fn resolve(&self, tenant: &TenantId, raw: &str) -> Result<Option<String>> {
        self.asked
            .lock()
            .unwrap()
            .push((tenant.clone(), raw.to_owned()));
        Ok(self.known.lock().unwrap().get(raw).cloned())
    }
}

#[tokio::test]
async fn fleet_host_ids_are_resolved_and_fall_back_to_the_uuid_on_the_last_attempt() {
    use openframe_agent::bus::stream_names;

    let w = world().await;
    let fleet = Arc::new(FleetHosts::default());
    fleet
        .known
        .lock()
        .unwrap()
        .insert("uuid-known".into(), "42".into());
    let ingestor = w
        .ingestor
        .clone()
        .with_resolver(ToolType::FleetMdm, fleet.clone());
    let enrolled = machine(&w, &w.acme, OsType::Linux, MachineStatus::Online).await;
    let lagging = machine(&w, &w.acme, OsType::Linux, MachineStatus::Online).await;
    let spec = ConsumerSpec::new(stream_names::TOOL_CONNECTIONS, "fleet-test")
        .with_filter("machine.*.tool-connection")
        .with_max_deliver(2);
    let mut consumer = w.bus.durable_consumer(&spec).await.unwrap();
    let stored = |m: MachineId| {
        let repos = w.repos.clone();
        let tenant = w.acme.clone();
        async move {
            repos
                .tool_connections
                .find_by_machine(&tenant, &m)
                .await
                .unwrap()
        }
    };

    // Known to Fleet: its numeric host id is stored.
    report(
        &w,
        &enrolled,
        "tool-connection",
        br#"{"toolType":"FLEET_MDM","agentToolId":"uuid-known"}"#,
    )
    .await;
    let delivery = consumer.next().await.unwrap().unwrap();
    assert_eq!(
        ingestor.process(w.tenants.as_ref(), delivery).await,
        Settlement::Processed
    );
    assert_eq!(stored(enrolled.clone()).await[0].agent_tool_id, "42");
    assert_eq!(
        fleet.asked.lock().unwrap()[0],
        (w.acme.clone(), "uuid-known".into())
    );

    // Not enrolled in Fleet yet: retried; on the last delivery the UUID is stored.
    report(
        &w,
        &lagging,
        "tool-connection",
        br#"{"toolType":"FLEET_MDM","agentToolId":"uuid-late"}"#,
    )
    .await;
    let delivery = consumer.next().await.unwrap().unwrap();
    assert!(!delivery.is_last_attempt());
    assert_eq!(
        ingestor.process(w.tenants.as_ref(), delivery).await,
        Settlement::Retried
    );
    assert!(
        stored(lagging.clone()).await.is_empty(),
        "nothing stored yet"
    );
    w.clock.advance(Duration::from_secs(6));
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(delivery.is_last_attempt());
    assert_eq!(
        ingestor.process(w.tenants.as_ref(), delivery).await,
        Settlement::Processed
    );
    assert_eq!(stored(lagging.clone()).await[0].agent_tool_id, "uuid-late");

    // Once Fleet knows the host, a later report moves the connection to the host id; other
    // tools never ask the resolver.
    fleet
        .known
        .lock()
        .unwrap()
        .insert("uuid-late".into(), "43".into());
    let outcome = ingestor
        .handle_tool_connection(
            &w.acme,
            &lagging,
            br#"{"toolType":"FLEET_MDM","agentToolId":"uuid-late"}"#,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, ReportOutcome::Updated(c) if c.agent_tool_id == "43"));
    let asked = fleet.asked.lock().unwrap().len();
    ingestor
        .handle_tool_connection(
            &w.acme,
            &lagging,
            br#"{"toolType":"MESHCENTRAL","agentToolId":"abc"}"#,
        )
        .await
        .unwrap();
    assert_eq!(fleet.asked.lock().unwrap().len(), asked);
}
