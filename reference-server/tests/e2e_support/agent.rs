//! An SDK agent against the server, and one whole agent lifecycle over HTTP.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openframe_agent::client::{Agent, AgentConfig, AgentHandle, AgentHandler, AgentTiming};
use openframe_agent::executions::{CommandMessage, ResultMessage};
use openframe_server::config::ServerConfig;
use serde_json::{Value, json};

use super::{Server, eventually, gid};

/// An agent that runs `echo <text>` commands by answering `<text>` with exit code 0.
#[derive(Debug, Default)]
pub struct EchoAgent {
    pub received: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl AgentHandler for EchoAgent {
    async fn on_command(&self, command: CommandMessage) -> ResultMessage {
        self.received.lock().unwrap().push(command.code.clone());
        let mut result = openframe_agent::client::result_for(&command.execution_id);
        result.exit_code = Some(0);
        result.stdout = command.code.trim_start_matches("echo ").to_owned();
        result
    }
}

/// Offline after 3 s of silence, swept every second.
pub fn fast_presence(config: &mut ServerConfig) {
    config.jobs.offline_after_secs = 3;
    config.jobs.offline_sweep_secs = 1;
}

/// Starts an SDK agent against `server` with heartbeats every 300 ms.
pub async fn start_agent(
    server: &Server,
    dir: &std::path::Path,
    hostname: &str,
    handler: Arc<dyn AgentHandler>,
) -> AgentHandle {
    let config = AgentConfig::new(
        server.base.parse().unwrap(),
        server.registration_secret.clone(),
        dir.join(format!("{hostname}.json")),
        hostname,
    )
    .with_os_type("LINUX")
    .with_timing(
        AgentTiming::default()
            .with_heartbeat(Duration::from_millis(300), Duration::from_millis(50)),
    );
    let agent = Agent::start(config, handler)
        .await
        .expect("the agent enrolls");
    tokio::time::timeout(Duration::from_secs(20), agent.wait_connected())
        .await
        .expect("the agent connects in time")
        .expect("the agent connects");
    agent
}

pub const DEVICE_BY_MACHINE: &str = "query($m: String!) { deviceByMachineId(machineId: $m) { id machineId hostname status osType } }";

/// The device's status in GraphQL, once the device exists.
pub async fn device_status(server: &Server, token: &str, machine: &str) -> Option<String> {
    let data = server
        .graphql(token, DEVICE_BY_MACHINE, json!({"m": machine}))
        .await;
    data["deviceByMachineId"]["status"]
        .as_str()
        .map(str::to_owned)
}

/// What one agent lifecycle left behind.
pub struct Lifecycle {
    pub machine: String,
    pub execution_batch: String,
    pub api_key: String,
}

/// Enrolls an SDK agent, sees it ONLINE in GraphQL and REST, runs a command through GraphQL,
/// stops the agent and sees it go OFFLINE.
pub async fn agent_lifecycle(server: &Server, token: &str) -> Lifecycle {
    let dir = tempfile::tempdir().unwrap();
    let handler = Arc::new(EchoAgent::default());
    let agent = start_agent(server, dir.path(), "vm-e2e-01", handler.clone()).await;
    let machine = agent.machine_id().to_string();

    // The machine is in GraphQL, ONLINE once its hostname/heartbeat arrived.
    eventually("the device is ONLINE in GraphQL", || async {
        (device_status(server, token, &machine).await.as_deref() == Some("ONLINE")).then_some(())
    })
    .await;
    let d = server
        .graphql(token, DEVICE_BY_MACHINE, json!({"m": machine}))
        .await;
    assert_eq!(d["deviceByMachineId"]["hostname"], "vm-e2e-01");
    assert_eq!(d["deviceByMachineId"]["osType"], "LINUX");
    let listed = server
        .graphql(
            token,
            "{ devices(filter: {statuses: [ONLINE]}) { filteredCount edges { node { machineId } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["devices"]["filteredCount"], 1);
    assert_eq!(listed["devices"]["edges"][0]["node"]["machineId"], machine);

    // And in REST with an API key created through the API.
    let api_key = server
        .api_key(token, &["devices:read", "events:read"])
        .await;
    let r = server.get_key("/api/v1/devices", &api_key).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["filteredCount"], 1, "{body}");
    assert_eq!(body["devices"][0]["machineId"], machine, "{body}");
    let r = server
        .get_key(&format!("/api/v1/devices/{machine}"), &api_key)
        .await;
    assert_eq!(r.status(), 200);
    let one: Value = r.json().await.unwrap();
    assert_eq!(one["hostname"], "vm-e2e-01", "{one}");
    assert_eq!(
        server
            .get_key("/api/v1/devices", "ak_bogus.sk_bogus")
            .await
            .status(),
        401
    );

    // A command dispatched through GraphQL runs on the agent; its result is queryable.
    let run = server
        .graphql(
            token,
            "mutation($ids: [ID!]) { runCommand(input: {target: {machineIds: $ids}, command: \"echo hello-e2e\", shell: BASH, timeoutSeconds: 30}) { executionId executions { id status } } }",
            json!({"ids": [gid("Machine", &machine)]}),
        )
        .await;
    let execution_batch = run["runCommand"]["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let execution = run["runCommand"]["executions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let finished = eventually("the command's result is stored", || async {
        let data = server
            .graphql(
                token,
                "query($id: ID!) { execution(id: $id) { status exitCode stdout machine { machineId } } }",
                json!({"id": execution}),
            )
            .await;
        let e = data["execution"].clone();
        (e["status"] != "RUNNING" && e["status"] != "QUEUED").then_some(e)
    })
    .await;
    assert_eq!(finished["status"], "SUCCESS", "{finished}");
    assert_eq!(finished["exitCode"], 0);
    assert_eq!(finished["stdout"], "hello-e2e");
    assert_eq!(finished["machine"]["machineId"], machine);
    assert_eq!(
        *handler.received.lock().unwrap(),
        vec!["echo hello-e2e".to_owned()],
        "the SDK handler ran the command once"
    );

    // Silence: the agent stops; the offline sweep marks the machine OFFLINE.
    agent.shutdown().await;
    eventually("the device goes OFFLINE after silence", || async {
        (device_status(server, token, &machine).await.as_deref() == Some("OFFLINE")).then_some(())
    })
    .await;
    let r = server
        .get_key(&format!("/api/v1/devices/{machine}"), &api_key)
        .await;
    let one: Value = r.json().await.unwrap();
    assert_eq!(one["status"], "OFFLINE", "{one}");
    Lifecycle {
        machine,
        execution_batch,
        api_key,
    }
}
