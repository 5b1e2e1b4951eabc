//! The agent plane end to end: enrollment and tokens over real HTTP, heartbeats and results over
//! the real bus (in-process always, NATS JetStream when `OPENFRAME_TEST_NATS_URL` is set):
//! register, token, heartbeat, ONLINE, silence, OFFLINE, a command queued while offline and
//! delivered on return, its result stored once even when sent twice, uninstall, token refused.

mod support_enrollment;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use openframe_agent::bus::{AgentBus, Headers, memory::InMemoryAgentBus};
use openframe_agent::executions::{
    ExecutionConfig, ExecutionService, ExecutionStatus, RunSpec, Shell,
};
use openframe_agent::listener::{AgentListener, BusChannel, CachedMachineTenants};
use openframe_agent::presence::{PresenceConfig, PresenceService};
use openframe_core::{MachineStatus, TenantId};
use openframe_data::memory::InMemoryLock;
use support_enrollment::Server;

struct Plane {
    server: Server,
    bus: Arc<dyn AgentBus>,
    presence: PresenceService,
    executions: ExecutionService,
}

async fn plane(bus: Arc<dyn AgentBus>) -> Plane {
    let server = Server::start().await;
    let presence = PresenceService::new(
        server.stack.repos.machines.clone(),
        server.stack.repos.tenants.clone(),
        Arc::new(InMemoryLock::new(server.clock.clone())),
        server.events.clone(),
        server.clock.clone(),
        PresenceConfig::default(),
    );
    let executions = ExecutionService::new(
        server.store.clone(),
        server.stack.repos.machines.clone(),
        Arc::new(BusChannel(bus.clone())),
        server.clock.clone(),
        ExecutionConfig::default(),
    );
    let listener = AgentListener::new(
        Arc::new(CachedMachineTenants::new(server.service.clone())),
        presence.clone(),
        executions.clone(),
        server.stack.repos.machines.clone(),
    );
    listener.spawn(bus.clone()).await.unwrap();
    Plane {
        server,
        bus,
        presence,
        executions,
    }
}

/// Waits (bounded) until `check` holds: bus delivery is asynchronous.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn status(
    p: &Plane,
    tenant: &TenantId,
    machine: &openframe_core::MachineId,
) -> MachineStatus {
    p.server
        .stack
        .repos
        .machines
        .get(tenant, machine)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn lifecycle(bus: Arc<dyn AgentBus>) {
    let p = plane(bus).await;
    let tenant = p.server.tenant("acme").await;
    let creds = p.server.register(&tenant, "web-01").await;
    let token = p.server.token(&creds).await;
    assert!(token["accessToken"].as_str().is_some());
    let machine = creds.machine_id.clone();
    let mut commands = p
        .bus
        .subscribe(&format!("machine.{machine}.command-execution"))
        .await
        .unwrap();

    // The original agent double-encodes heartbeats: the payload is the JSON string "{}".
    let heartbeat = serde_json::to_vec(&serde_json::Value::String("{}".into())).unwrap();
    p.bus
        .publish(
            &format!("machine.{machine}.heartbeat"),
            heartbeat.clone(),
            Headers::new(),
        )
        .await
        .unwrap();
    eventually("ONLINE after the first heartbeat", || async {
        status(&p, &tenant.id, &machine).await == MachineStatus::Online
    })
    .await;
    let hostname = serde_json::to_vec(&serde_json::Value::String(
        r#"{"hostname":"web-01.renamed"}"#.into(),
    ))
    .unwrap();
    p.bus
        .publish(
            &format!("machine.{machine}.hostname"),
            hostname,
            Headers::new(),
        )
        .await
        .unwrap();
    eventually("hostname updated", || async {
        p.server
            .stack
            .repos
            .machines
            .get(&tenant.id, &machine)
            .await
            .unwrap()
            .unwrap()
            .hostname
            == "web-01.renamed"
    })
    .await;

    // Silence → OFFLINE.
    p.server.clock.advance(Duration::from_secs(200));
    assert_eq!(p.presence.sweep_once().await.unwrap(), Some(1));
    assert_eq!(
        status(&p, &tenant.id, &machine).await,
        MachineStatus::Offline
    );

    // A command while offline is queued, then delivered when the machine returns.
    let runs = p
        .executions
        .dispatch(
            &tenant.id,
            std::slice::from_ref(&machine),
            RunSpec::command("uptime", Shell::Bash, 30),
            None,
        )
        .await
        .unwrap();
    assert_eq!(runs[0].status, ExecutionStatus::Queued);
    p.bus
        .publish(
            &format!("machine.{machine}.heartbeat"),
            heartbeat,
            Headers::new(),
        )
        .await
        .unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(5), commands.next())
        .await
        .expect("the queued command arrives")
        .unwrap();
    let command: serde_json::Value = serde_json::from_slice(&delivered.payload).unwrap();
    assert_eq!(command["executionId"], runs[0].execution_id.as_str());
    assert_eq!(
        status(&p, &tenant.id, &machine).await,
        MachineStatus::Online
    );

    // The result, sent twice (an agent retry), is stored once.
    let result = serde_json::json!({"execution_id": runs[0].execution_id, "machine_id": machine.as_str(), "stdout": "up 3 days", "stderr": "", "exit_code": 0, "execution_time_ms": 12, "timed_out": false});
    for _ in 0..2 {
        p.bus
            .publish(
                &format!("machine.{machine}.command-execution.result"),
                serde_json::to_vec(&result).unwrap(),
                Headers::new(),
            )
            .await
            .unwrap();
    }
    eventually("the result is stored", || async {
        p.executions
            .get(&tenant.id, &runs[0].execution_id, &machine)
            .await
            .unwrap()
            .unwrap()
            .status
            == ExecutionStatus::Success
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stored = p
        .executions
        .get(&tenant.id, &runs[0].execution_id, &machine)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stdout, "up 3 days");
    assert_eq!(
        stored.version, 3,
        "queued, running, finished: the duplicate changed nothing"
    );

    // Another machine cannot report this machine's execution, even on its own subject.
    let other = p.server.register(&tenant, "db-01").await;
    let forged = serde_json::json!({"execution_id": runs[0].execution_id, "stdout": "forged", "exit_code": 1});
    p.bus
        .publish(
            &format!("machine.{}.command-execution.result", other.machine_id),
            serde_json::to_vec(&forged).unwrap(),
            Headers::new(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        p.executions
            .get(&tenant.id, &runs[0].execution_id, &machine)
            .await
            .unwrap()
            .unwrap()
            .stdout,
        "up 3 days"
    );

    // Uninstall: no more tokens.
    assert_eq!(
        p.server
            .uninstall_raw(machine.as_str(), &creds.secret)
            .await
            .status(),
        204
    );
    assert_eq!(p.server.client_credentials_raw(&creds).await.status(), 401);
    assert_eq!(
        status(&p, &tenant.id, &machine).await,
        MachineStatus::Deleted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_over_the_in_process_bus() {
    lifecycle(Arc::new(InMemoryAgentBus::new())).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_over_nats() {
    let Ok(url) = std::env::var("OPENFRAME_TEST_NATS_URL") else {
        println!("skipped: set OPENFRAME_TEST_NATS_URL to run the agent plane over NATS");
        return;
    };
    let bus = openframe_agent::bus::nats::NatsAgentBus::connect(&url)
        .await
        .unwrap();
    lifecycle(Arc::new(bus)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_unknown_machines_and_malformed_payloads_are_dropped() {
    let p = plane(Arc::new(InMemoryAgentBus::new())).await;
    let tenant = p.server.tenant("acme").await;
    let creds = p.server.register(&tenant, "web-01").await;
    let unknown = openframe_core::MachineId::generate();
    p.bus
        .publish(
            &format!("machine.{unknown}.heartbeat"),
            b"{}".to_vec(),
            Headers::new(),
        )
        .await
        .unwrap();
    for garbage in [
        &b"not json"[..],
        b"\"not json either\"",
        b"[1,2]",
        &[0xff, 0xfe],
    ] {
        p.bus
            .publish(
                &format!("machine.{}.command-execution.result", creds.machine_id),
                garbage.to_vec(),
                Headers::new(),
            )
            .await
            .unwrap();
    }
    // The listener keeps working after all that.
    p.bus
        .publish(
            &format!("machine.{}.heartbeat", creds.machine_id),
            b"{}".to_vec(),
            Headers::new(),
        )
        .await
        .unwrap();
    eventually("still processing", || async {
        status(&p, &tenant.id, &creds.machine_id).await == MachineStatus::Online
    })
    .await;
}
