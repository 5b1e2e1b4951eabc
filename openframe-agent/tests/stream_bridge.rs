//! The agent plane → event bus bridge, end to end: presence and execution results publish
//! through `StreamBridge`, the stream processor adapts and enriches them from the same
//! repositories, and unified events land in the sink.

use std::sync::Arc;
use std::time::Duration;

use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::events::{AgentEvent, AgentEventKind, AgentEventSink};
use openframe_agent::executions::{
    ExecutionConfig, ExecutionService, ResultMessage, RunSpec, Shell,
};
use openframe_agent::listener::BusChannel;
use openframe_agent::presence::{PresenceConfig, PresenceService};
use openframe_agent::stream_bridge::{AGENT_EVENTS_TOPIC, AGENT_RESULTS_TOPIC, StreamBridge};
use openframe_core::{
    Clock, Machine, MachineId, MachineStatus, ManualClock, Organization, OrganizationId, OsType,
    TenantId,
};
use openframe_data::Repositories;
use openframe_data::memory::{InMemoryCache, InMemoryDocumentStore, InMemoryLock};
use openframe_stream::bus::memory::InMemoryEventBus;
use openframe_stream::bus::{ConsumerSpec, EventBus};
use openframe_stream::enrich::{Enricher, RepositoryDirectory};
use openframe_stream::model::{Outcome, Severity, ToolSource, UnifiedEvent};
use openframe_stream::processor::{InMemoryEventSink, Processor, ProcessorConfig};
use tokio::sync::oneshot;

struct World {
    clock: Arc<ManualClock>,
    store: Arc<InMemoryDocumentStore>,
    repos: Repositories,
    bus: Arc<InMemoryEventBus>,
    bridge: Arc<StreamBridge>,
    tenant: TenantId,
    org: OrganizationId,
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(openframe_core::SystemClock.now()));
    let store = Arc::new(InMemoryDocumentStore::new());
    let repos = Repositories::with_clock(store.clone(), clock.clone());
    let tenant = TenantId::parse("acme").unwrap();
    let org = repos
        .organizations
        .insert(&tenant, Organization::new("Acme Retail", clock.now()))
        .await
        .unwrap()
        .id;
    let bus = Arc::new(InMemoryEventBus::new());
    bus.ensure_topic(AGENT_EVENTS_TOPIC, 3).await.unwrap();
    bus.ensure_topic(AGENT_RESULTS_TOPIC, 3).await.unwrap();
    let bridge = Arc::new(StreamBridge::new(bus.clone()));
    World {
        clock,
        store,
        repos,
        bus,
        bridge,
        tenant,
        org,
    }
}

impl World {
    async fn machine(&self, id: &str, status: MachineStatus) -> MachineId {
        let mut m = Machine::new(
            MachineId::parse(id).unwrap(),
            id,
            OsType::Linux,
            self.clock.now(),
        );
        m.status = status;
        m.organization_id = Some(self.org.clone());
        self.repos
            .machines
            .insert(&self.tenant, m)
            .await
            .unwrap()
            .id
    }

    /// Runs the stream processor over both agent topics until `n` records are processed.
    async fn process(&self, n: u64) -> Vec<UnifiedEvent> {
        let enricher = Enricher::builder(
            Arc::new(RepositoryDirectory::from_repositories(&self.repos)),
            Arc::new(InMemoryCache::new(self.clock.clone())),
        )
        .build()
        .unwrap();
        let sink = Arc::new(InMemoryEventSink::new());
        let processor = Processor::builder(self.bus.clone(), enricher, sink.clone())
            .with_config(ProcessorConfig::new([
                AGENT_EVENTS_TOPIC,
                AGENT_RESULTS_TOPIC,
            ]))
            .build()
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let processor = processor.clone();
            async move {
                processor
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
            }
        });
        for _ in 0..2000 {
            let m = processor.metrics();
            if m.processed + m.dead_lettered >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop.send(());
        task.await.unwrap().unwrap();
        let m = processor.metrics();
        assert_eq!((m.processed, m.dead_lettered), (n, 0));
        sink.events()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_events_become_unified_events() {
    let w = world().await;
    let m1 = w.machine("m-1", MachineStatus::Offline).await;
    // A real heartbeat through presence emits CameOnline into the bridge.
    let presence = PresenceService::new(
        w.repos.machines.clone(),
        w.repos.tenants.clone(),
        Arc::new(InMemoryLock::new(w.clock.clone())),
        w.bridge.clone(),
        w.clock.clone(),
        PresenceConfig::default(),
    );
    presence.heartbeat(&w.tenant, &m1).await.unwrap();
    for (kind, status) in [
        (AgentEventKind::Registered, MachineStatus::Pending),
        (AgentEventKind::WentOffline, MachineStatus::Offline),
        (AgentEventKind::Uninstalled, MachineStatus::Archived),
    ] {
        w.clock.advance(Duration::from_secs(1));
        w.bridge
            .emit(AgentEvent {
                tenant: w.tenant.clone(),
                machine_id: m1.clone(),
                kind,
                previous_status: None,
                status,
                at: w.clock.now(),
            })
            .await
            .unwrap();
    }

    // On the bus: keyed by machine, with the tenant header.
    let mut consumer = w
        .bus
        .consumer(ConsumerSpec::new("inspect", [AGENT_EVENTS_TOPIC]))
        .await
        .unwrap();
    let first = consumer.next().await.unwrap().unwrap();
    assert_eq!(first.record.key.as_deref(), Some(&b"m-1"[..]));
    assert_eq!(first.record.headers.get("tenant-id"), Some("acme"));
    assert_eq!(
        first.record.headers.get("message-type"),
        Some("AGENT_EVENT")
    );

    let events = w.process(4).await;
    let mut types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "DEVICE_OFFLINE",
            "DEVICE_ONLINE",
            "DEVICE_REGISTERED",
            "DEVICE_UNINSTALLED"
        ]
    );
    for e in &events {
        assert_eq!(e.tool, ToolSource::Openframe);
        assert_eq!(e.tenant, Some(w.tenant.clone()));
        assert_eq!(e.machine_id, Some(m1.clone()));
        assert_eq!(
            e.organization_id,
            Some(w.org.clone()),
            "enriched from the repositories"
        );
        assert!(!e.unknown_machine);
    }
    let online = events
        .iter()
        .find(|e| e.event_type == "DEVICE_ONLINE")
        .unwrap();
    assert_eq!(online.details["previousStatus"], "OFFLINE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_results_become_unified_events_once() {
    let w = world().await;
    let m1 = w.machine("m-1", MachineStatus::Online).await;
    let agent_bus = Arc::new(InMemoryAgentBus::new());
    let service = ExecutionService::new(
        w.store.clone(),
        w.repos.machines.clone(),
        Arc::new(BusChannel(agent_bus)),
        w.clock.clone(),
        ExecutionConfig::default(),
    )
    .with_observer(w.bridge.clone());

    let command = service
        .dispatch(
            &w.tenant,
            std::slice::from_ref(&m1),
            RunSpec::command("exit 3", Shell::Bash, 60),
            None,
        )
        .await
        .unwrap()
        .remove(0);
    let script_spec = RunSpec {
        script_id: Some("s-7".into()),
        ..RunSpec::command("echo hi", Shell::Bash, 60)
    };
    let script = service
        .dispatch(&w.tenant, std::slice::from_ref(&m1), script_spec, None)
        .await
        .unwrap()
        .remove(0);

    let failed = ResultMessage {
        execution_id: command.execution_id.clone(),
        machine_id: None,
        stdout: String::new(),
        stderr: "boom".into(),
        exit_code: Some(3),
        execution_time_ms: Some(12),
        timed_out: false,
        error: None,
        script_id: None,
    };
    assert!(
        service
            .ingest_result(&w.tenant, &m1, failed.clone())
            .await
            .unwrap()
            .is_some()
    );
    // A retried result finishes nothing and publishes nothing.
    assert!(
        service
            .ingest_result(&w.tenant, &m1, failed)
            .await
            .unwrap()
            .is_none()
    );
    let ok = ResultMessage {
        execution_id: script.execution_id.clone(),
        machine_id: None,
        stdout: "hi".into(),
        stderr: String::new(),
        exit_code: Some(0),
        execution_time_ms: Some(5),
        timed_out: false,
        error: None,
        script_id: Some("s-7".into()),
    };
    service
        .ingest_result(&w.tenant, &m1, ok)
        .await
        .unwrap()
        .unwrap();

    let events = w.process(2).await;
    assert_eq!(events.len(), 2);
    let cmd = events
        .iter()
        .find(|e| e.source_type == "command_result")
        .unwrap();
    assert_eq!(cmd.event_type, "COMMAND_EXECUTED");
    assert_eq!(
        (cmd.outcome, cmd.severity),
        (Some(Outcome::Failure), Severity::Error)
    );
    assert_eq!(cmd.details["executionId"], command.execution_id.as_str());
    assert_eq!(cmd.details["exitCode"], 3);
    assert_eq!(cmd.details["stderr"], "boom");
    let scr = events
        .iter()
        .find(|e| e.source_type == "script_result")
        .unwrap();
    assert_eq!(scr.event_type, "SCRIPT_EXECUTED");
    assert_eq!(
        (scr.outcome, scr.severity),
        (Some(Outcome::Success), Severity::Info)
    );
    assert_eq!(scr.details["scriptId"], "s-7");
    for e in &events {
        assert_eq!(e.tool, ToolSource::OpenframeAgent);
        assert_eq!(e.tenant, Some(w.tenant.clone()));
        assert_eq!(e.machine_id, Some(m1.clone()));
        assert_eq!(e.organization_id, Some(w.org.clone()));
    }
}

#[tokio::test]
async fn unfinished_executions_and_bad_topics_are_refused() {
    let w = world().await;
    let m1 = w.machine("m-1", MachineStatus::Offline).await;
    let service = ExecutionService::new(
        w.store.clone(),
        w.repos.machines.clone(),
        Arc::new(BusChannel(Arc::new(InMemoryAgentBus::new()))),
        w.clock.clone(),
        ExecutionConfig::default(),
    );
    // An offline machine's execution is QUEUED: not a result.
    let queued = service
        .dispatch(
            &w.tenant,
            &[m1],
            RunSpec::command("ls", Shell::Bash, 60),
            None,
        )
        .await
        .unwrap()
        .remove(0);
    let err = w.bridge.result_record(&w.tenant, &queued).unwrap_err();
    assert_eq!(err.field(), Some("status"));
    let err = StreamBridge::new(w.bus.clone())
        .with_events_topic("bad topic")
        .unwrap_err();
    assert_eq!(err.field(), Some("topic"));
}
