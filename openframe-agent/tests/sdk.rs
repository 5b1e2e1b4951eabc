//! The agent SDK against a real server (security stack, enrollment, gateway over the in-memory
//! bus) on a loopback port, and the gateway's hostile cases.
//!
//! Run with: `cargo test -p openframe-agent --features client,testkit --test sdk`

#![cfg(feature = "client")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, Stream, StreamExt};
use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::bus::{AgentBus, Headers, Message, agent_streams};
use openframe_agent::client::{Agent, AgentConfig, AgentHandle, AgentHandler, AgentTiming};
use openframe_agent::enrollment::{self, EnrollmentParts, EnrollmentService, RegistrationSecrets};
use openframe_agent::events::NoopEventSink;
use openframe_agent::executions::{CommandMessage, PrivilegeLevel, ResultMessage, Shell};
use openframe_agent::gateway::{self, TENANT_HEADER};
use openframe_core::{MachineId, Result, Secret, SystemClock, TenantId};
use openframe_data::MachineFilter;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_security::accounts::{AccountConfig, Argon2Params, SignUp};
use openframe_security::crypto::MasterKey;
use openframe_security::stack::SecurityStack;
use serde_json::{Value as Json, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

struct Server {
    base: String,
    bus: Arc<InMemoryAgentBus>,
    stack: SecurityStack,
    tenant: TenantId,
    key: Secret,
    http: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let store = Arc::new(InMemoryDocumentStore::new());
        let master = MasterKey::generate().unwrap();
        let clock = Arc::new(SystemClock);
        let stack = SecurityStack::builder(store.clone(), base.parse().unwrap(), master.clone())
            .with_clock(clock.clone())
            .with_account_config(AccountConfig {
                argon2: Argon2Params::fast_for_tests(),
                ..AccountConfig::default()
            })
            .build()
            .unwrap();
        let secrets = RegistrationSecrets::new(store.clone(), &master, clock.clone());
        let service = EnrollmentService::new(EnrollmentParts::from_stack(
            &stack,
            store,
            secrets,
            Arc::new(NoopEventSink),
            clock,
        ));
        let bus = Arc::new(InMemoryAgentBus::new());
        bus.ensure_streams(&agent_streams()).await.unwrap();
        let app = stack
            .router()
            .merge(enrollment::router(service.clone()))
            .merge(gateway::router(
                bus.clone(),
                service.authenticator().clone(),
            ));
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let tenant = TenantId::parse("acme").unwrap();
        stack
            .accounts
            .sign_up(SignUp {
                tenant_id: Some(tenant.clone()),
                tenant_name: "Acme MSP".into(),
                domain: "acme.example".into(),
                email: "owner@acme.example".into(),
                password: Secret::new("Correct-Horse-42-battery"),
                first_name: "Olive".into(),
                last_name: "Owner".into(),
            })
            .await
            .unwrap();
        let key = service.secrets().ensure(&tenant).await.unwrap();
        Self {
            base,
            bus,
            stack,
            tenant,
            key,
            http: reqwest::Client::new(),
        }
    }

    fn config(&self, credentials: PathBuf) -> AgentConfig {
        let timing = AgentTiming::default()
            .with_heartbeat(Duration::from_millis(100), Duration::from_millis(20))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
            .with_result_retry(Duration::from_millis(50));
        AgentConfig::new(
            self.base.parse().unwrap(),
            self.key.clone(),
            credentials,
            "vm-01",
        )
        .with_os_type("MAC_OS")
        .with_agent_version("1.4.2")
        .with_timing(timing)
    }

    async fn machine_count(&self) -> u64 {
        let all = MachineFilter {
            include_deleted: true,
            ..Default::default()
        };
        self.stack
            .repos
            .machines
            .count(&self.tenant, &all)
            .await
            .unwrap()
    }

    /// Registers a machine over HTTP and returns its id and an access token.
    async fn machine_token(&self, hostname: &str) -> (MachineId, String) {
        let r = self
            .http
            .post(format!("{}{}", self.base, enrollment::REGISTER_PATH))
            .header("X-Initial-Key", self.key.expose())
            .json(&json!({"hostname": hostname, "agentVersion": "1", "osType": "MAC_OS"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let c: Json = r.json().await.unwrap();
        let t: Json = self
            .http
            .post(format!("{}{}", self.base, enrollment::TOKEN_PATH))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", c["clientId"].as_str().unwrap()),
                ("client_secret", c["clientSecret"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            MachineId::parse(c["machineId"].as_str().unwrap()).unwrap(),
            t["accessToken"].as_str().unwrap().to_owned(),
        )
    }

    /// A raw gateway connection: the token in a header, in the query, or none.
    async fn raw(
        &self,
        token: Option<&str>,
        in_query: bool,
    ) -> std::result::Result<Ws, tungstenite::Error> {
        let ws = self.base.replacen("http://", "ws://", 1);
        let url = match (token, in_query) {
            (Some(t), true) => format!("{ws}{}?authorization={t}", gateway::GATEWAY_PATH),
            _ => format!("{ws}{}", gateway::GATEWAY_PATH),
        };
        let mut request = url.into_client_request().unwrap();
        if let (Some(t), false) = (token, in_query) {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
    }
}

fn temp_credentials() -> PathBuf {
    std::env::temp_dir()
        .join(format!("openframe-sdk-{}", uuid::Uuid::new_v4().simple()))
        .join("agent")
        .join("credentials.json")
}

async fn next_message(sub: &mut (impl Stream<Item = Message> + Unpin)) -> Message {
    timeout(WAIT, sub.next())
        .await
        .expect("a message in time")
        .unwrap()
}

/// Records what the server asked and answers commands with exit code 0.
#[derive(Debug, Default)]
struct Recorder {
    commands: Mutex<Vec<CommandMessage>>,
    installs: Mutex<Vec<Json>>,
}

#[async_trait]
impl AgentHandler for Recorder {
    async fn on_command(&self, command: CommandMessage) -> ResultMessage {
        self.commands.lock().unwrap().push(command.clone());
        let mut result = openframe_agent::client::result_for(&command.execution_id);
        result.exit_code = Some(0);
        result.stdout = format!("ran {}", command.code);
        result
    }

    async fn on_tool_installation(&self, request: Json) -> Result<()> {
        self.installs.lock().unwrap().push(request);
        Ok(())
    }
}

async fn started(config: AgentConfig, handler: Arc<Recorder>) -> AgentHandle {
    let agent = timeout(WAIT, Agent::start(config, handler))
        .await
        .expect("registered in time")
        .unwrap();
    timeout(WAIT, agent.wait_connected())
        .await
        .expect("connected in time")
        .unwrap();
    agent
}

// ---------------------------------------------------------------------------------------
// The SDK end to end

#[tokio::test]
async fn agent_registers_heartbeats_runs_commands_and_restarts_without_registering() {
    let server = Server::start().await;
    let path = temp_credentials();
    let mut heartbeats = server.bus.subscribe("machine.*.heartbeat").await.unwrap();
    let handler = Arc::new(Recorder::default());
    let agent = started(server.config(path.clone()), handler.clone()).await;
    let id = agent.machine_id().clone();

    // Registered once, credentials stored 0600 with the camelCase shape.
    assert_eq!(server.machine_count().await, 1);
    let stored: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored["machineId"], id.as_str());
    assert_eq!(stored["clientId"], format!("agent_{id}"));
    assert!(
        stored["clientSecret"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
    let debug = format!("{agent:?}");
    assert!(!debug.contains(stored["clientSecret"].as_str().unwrap()));

    // Heartbeats arrive with the trusted tenant header, repeatedly.
    for _ in 0..2 {
        let hb = next_message(&mut heartbeats).await;
        assert_eq!(hb.subject, format!("machine.{id}.heartbeat"));
        assert_eq!(hb.headers.get_all(TENANT_HEADER), [server.tenant.as_str()]);
        assert_eq!(
            hb.payload, br#""{}""#,
            "double-encoded like the original agent"
        );
    }

    // A command reaches the handler; its result comes back on the bus.
    let mut results = server
        .bus
        .subscribe(&format!("machine.{id}.command-execution.result"))
        .await
        .unwrap();
    let command = CommandMessage {
        execution_id: "exec-1".into(),
        code: "uptime".into(),
        shell: Shell::Bash,
        privilege_level: PrivilegeLevel::Admin,
        timeout: 30,
    };
    server
        .bus
        .publish(
            &format!("machine.{id}.command-execution"),
            serde_json::to_vec(&command).unwrap(),
            Headers::new(),
        )
        .await
        .unwrap();
    let result = next_message(&mut results).await;
    assert_eq!(
        result.headers.get(TENANT_HEADER),
        Some(server.tenant.as_str())
    );
    let result: ResultMessage = serde_json::from_slice(&result.payload).unwrap();
    assert_eq!(result.execution_id, "exec-1");
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.stdout, "ran uptime");
    assert_eq!(result.machine_id.as_deref(), Some(id.as_str()));
    assert_eq!(handler.commands.lock().unwrap().as_slice(), [command]);

    // A durable tool installation reaches the handler.
    server
        .bus
        .publish_durable(
            &format!("machine.{id}.tool-installation"),
            br#"{"toolAgentId":"meshcentral"}"#.to_vec(),
            Headers::new(),
        )
        .await
        .unwrap();
    timeout(WAIT, async {
        while handler.installs.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the installation in time");
    assert_eq!(
        handler.installs.lock().unwrap()[0],
        json!({"toolAgentId": "meshcentral"})
    );
    agent.shutdown().await;

    // Restart with the same credentials file: no second registration, same machine.
    let handler = Arc::new(Recorder::default());
    let agent = started(server.config(path.clone()), handler).await;
    assert_eq!(agent.machine_id(), &id);
    assert_eq!(server.machine_count().await, 1);
    // Only heartbeats of the restarted agent from now on.
    let mut heartbeats = server.bus.subscribe("machine.*.heartbeat").await.unwrap();
    let hb = next_message(&mut heartbeats).await;
    assert_eq!(hb.subject, format!("machine.{id}.heartbeat"));
    agent.shutdown().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[tokio::test]
async fn a_corrupt_credentials_file_is_an_error_not_a_new_registration() {
    let server = Server::start().await;
    let path = temp_credentials();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{not json").unwrap();
    let err = Agent::start(server.config(path.clone()), Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("credentialsFile"));
    assert_eq!(server.machine_count().await, 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

// ---------------------------------------------------------------------------------------
// The gateway, hostile

fn expect_http_status(result: std::result::Result<Ws, tungstenite::Error>, status: u16) {
    match result {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), status),
        Err(other) => panic!("expected HTTP {status}, got {other}"),
        Ok(_) => panic!("expected HTTP {status}, the upgrade succeeded"),
    }
}

#[tokio::test]
async fn connections_without_a_valid_agent_token_are_refused() {
    let server = Server::start().await;
    expect_http_status(server.raw(None, false).await, 401);
    expect_http_status(server.raw(Some("not-a-token"), false).await, 401);
    expect_http_status(server.raw(Some("not-a-token"), true).await, 401);
    // A forged token: a real one with its signature changed.
    let (_, token) = server.machine_token("vm-a").await;
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    expect_http_status(server.raw(Some(&forged), false).await, 401);
    // The real token works, in the header and in the query.
    assert!(server.raw(Some(&token), false).await.is_ok());
    assert!(server.raw(Some(&token), true).await.is_ok());
}

async fn send(ws: &mut Ws, frame: Json) {
    ws.send(WsMessage::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON frame from the server.
async fn recv(ws: &mut Ws) -> Json {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(WsMessage::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_machine_is_confined_to_its_own_subjects_and_tenant() {
    let server = Server::start().await;
    let (a, token) = server.machine_token("vm-a").await;
    let (b, _) = server.machine_token("vm-b").await;
    let mut ws = server.raw(Some(&token), true).await.unwrap();
    let mut everything = server.bus.subscribe("machine.>").await.unwrap();

    // Publishing on another machine's subject: refused, connection kept, nothing published.
    send(
        &mut ws,
        json!({"op":"pub","rid":1,"subject":format!("machine.{b}.heartbeat"),"payload":"{}"}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(err["op"], "err");
    assert_eq!(err["rid"], 1);
    assert_eq!(err["code"], "FORBIDDEN");
    // (`agents.logs` is allowed: see the log shipping tests.)
    for subject in ["machine.all.client-update", "machine.*.heartbeat"] {
        send(
            &mut ws,
            json!({"op":"pub","rid":2,"subject":subject,"payload":"x"}),
        )
        .await;
        assert_eq!(recv(&mut ws).await["code"], "FORBIDDEN", "{subject}");
    }

    // A forged tenant header (in any case) is replaced by the token's tenant; others are kept.
    send(
        &mut ws,
        json!({"op":"pub","rid":3,"subject":format!("machine.{a}.heartbeat"),"payload":"{}",
               "headers":{"tenant":"evil","TENANT":["evil2"],"x-trace":"t1"}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"op":"ok","rid":3}));
    let m = next_message(&mut everything).await;
    assert_eq!(
        m.subject,
        format!("machine.{a}.heartbeat"),
        "the refused publishes went nowhere"
    );
    assert_eq!(m.headers.get_all(TENANT_HEADER), [server.tenant.as_str()]);
    assert!(m.headers.get("TENANT").is_none());
    assert_eq!(m.headers.get("x-trace"), Some("t1"));

    // Subscribing beyond its namespace: refused.
    for pattern in [
        "machine.>",
        "machine.*.command-execution",
        &format!("machine.{b}.>"),
        ">",
    ] {
        send(
            &mut ws,
            json!({"op":"sub","rid":4,"sid":"x","subject":pattern}),
        )
        .await;
        let err = recv(&mut ws).await;
        assert_eq!(
            (err["op"].as_str(), err["code"].as_str()),
            (Some("err"), Some("FORBIDDEN")),
            "{pattern}"
        );
    }
    // Consuming another machine's durable, or with another machine's filter: refused.
    send(
        &mut ws,
        json!({"op":"consume","rid":5,"sid":"t","stream":"TOOL_INSTALLATION",
        "durable":format!("machine_{b}_tool-installation_consumer"),
        "filter":format!("machine.{a}.tool-installation")}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "FORBIDDEN");
    send(
        &mut ws,
        json!({"op":"consume","rid":6,"sid":"t","stream":"TOOL_INSTALLATION",
        "durable":format!("machine_{a}_x"),
        "filter":format!("machine.{b}.tool-installation")}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "FORBIDDEN");

    // Its own subscription works; another machine's commands never reach it.
    send(
        &mut ws,
        json!({"op":"sub","rid":7,"sid":"own","subject":format!("machine.{a}.>")}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"op":"ok","rid":7}));
    for target in [&b, &a] {
        server
            .bus
            .publish(
                &format!("machine.{target}.command-execution"),
                b"{\"for\":1}".to_vec(),
                Headers::new(),
            )
            .await
            .unwrap();
    }
    let msg = recv(&mut ws).await;
    assert_eq!(msg["op"], "msg");
    assert_eq!(msg["sid"], "own");
    assert_eq!(msg["subject"], format!("machine.{a}.command-execution"));
    assert_eq!(msg["payload"], "{\"for\":1}");

    // Its own durable consumer works, with explicit ack.
    send(&mut ws, json!({"op":"unsub","rid":8,"sid":"own"})).await;
    assert_eq!(recv(&mut ws).await, json!({"op":"ok","rid":8}));
    server
        .bus
        .publish_durable(
            &format!("machine.{a}.tool-installation"),
            vec![0xff, 0x00],
            Headers::new(),
        )
        .await
        .unwrap();
    send(
        &mut ws,
        json!({"op":"consume","rid":9,"sid":"tools","stream":"TOOL_INSTALLATION",
        "durable":format!("machine_{a}_tool-installation_consumer"),
        "filter":format!("machine.{a}.tool-installation")}),
    )
    .await;
    let mut frames = [recv(&mut ws).await, recv(&mut ws).await];
    frames.sort_by_key(|f| f["op"].as_str().map(str::to_owned));
    assert_eq!(frames[1], json!({"op":"ok","rid":9}));
    let delivery = &frames[0];
    assert_eq!(delivery["op"], "delivery");
    assert_eq!(delivery["encoding"], "base64");
    assert_eq!(delivery["payload"], "/wA=");
    assert_eq!(delivery["delivered"], 1);
    send(&mut ws, json!({"op":"ack","rid":10,"id":delivery["id"]})).await;
    assert_eq!(recv(&mut ws).await, json!({"op":"ok","rid":10}));
    send(&mut ws, json!({"op":"ack","rid":11,"id":delivery["id"]})).await;
    assert_eq!(recv(&mut ws).await["code"], "NOT_FOUND", "settled once");
}

async fn expect_close(ws: &mut Ws, code: CloseCode) {
    loop {
        match timeout(WAIT, ws.next()).await.expect("closed in time") {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                assert_eq!(frame.code, code);
                return;
            }
            Some(Ok(WsMessage::Text(text))) => panic!("expected a close, got {text}"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn oversized_and_malformed_frames_close_the_connection() {
    let server = Server::start().await;
    let (a, token) = server.machine_token("vm-a").await;

    let mut ws = server.raw(Some(&token), false).await.unwrap();
    let huge = "x".repeat(gateway::DEFAULT_MAX_FRAME_BYTES + 1);
    send(
        &mut ws,
        json!({"op":"pub","subject":format!("machine.{a}.heartbeat"),"payload":huge}),
    )
    .await;
    expect_close(&mut ws, CloseCode::Size).await;

    for bad in [
        WsMessage::Text("{not json".into()),
        WsMessage::Text(r#"{"op":"launch","subject":"x"}"#.into()),
        WsMessage::Text(r#"{"op":"pub"}"#.into()),
        WsMessage::Text("[1,2]".into()),
        WsMessage::Binary(vec![1, 2, 3].into()),
    ] {
        let mut ws = server.raw(Some(&token), false).await.unwrap();
        ws.send(bad.clone()).await.unwrap();
        expect_close(&mut ws, CloseCode::Policy).await;
    }

    // Bad base64 is a refused request, not a protocol violation.
    let mut ws = server.raw(Some(&token), false).await.unwrap();
    send(&mut ws, json!({"op":"pub","rid":1,"subject":format!("machine.{a}.heartbeat"),"payload":"***","encoding":"base64"})).await;
    assert_eq!(recv(&mut ws).await["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn agent_ships_its_logs_to_agents_logs_stamped_by_the_gateway() {
    use openframe_agent::bus::{ConsumerSpec, stream_names};
    use openframe_agent::gateway::MACHINE_HEADER;

    let server = Server::start().await;
    let mut config = server.config(temp_credentials());
    config.timing = config.timing.with_log_interval(Duration::from_millis(50));
    let agent = started(config, Arc::new(Recorder::default())).await;
    let id = agent.machine_id().clone();
    let mut consumer = server
        .bus
        .durable_consumer(&ConsumerSpec::new(stream_names::AGENT_LOGS, "log-reader"))
        .await
        .unwrap();

    let logs = agent.logs();
    for i in 0..60 {
        logs.log("info", &format!("line {i}"));
    }
    logs.log("error", "disk full");
    let mut shipped = Vec::new();
    while shipped.len() < 61 {
        let delivery = timeout(WAIT, consumer.next())
            .await
            .expect("a log batch in time")
            .unwrap()
            .unwrap();
        let headers = &delivery.message.headers;
        assert_eq!(headers.get(TENANT_HEADER), Some(server.tenant.as_str()));
        assert_eq!(headers.get(MACHINE_HEADER), Some(id.as_str()));
        let batch: Json = serde_json::from_slice(&delivery.message.payload).unwrap();
        assert_eq!(batch["machineId"], id.as_str());
        assert_eq!(batch["hostname"], "vm-01");
        assert_eq!(batch["tenantDomain"], "127.0.0.1");
        let lines = batch["logs"].as_array().unwrap();
        assert!(!lines.is_empty() && lines.len() <= 50, "{}", lines.len());
        shipped.extend(lines.iter().cloned());
        delivery.ack().await.unwrap();
    }
    assert_eq!(shipped[0]["msg"], "line 0");
    assert_eq!(shipped[0]["level"], "INFO");
    assert!(shipped[0]["ts"].as_str().unwrap().contains('T'));
    assert_eq!(shipped[60]["msg"], "disk full");
    assert_eq!(shipped[60]["level"], "ERROR");
    assert_eq!(logs.buffered(), 0);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_forged_log_batch_still_carries_the_token_s_tenant_and_machine() {
    use openframe_agent::gateway::MACHINE_HEADER;

    let server = Server::start().await;
    let (id, token) = server.machine_token("vm-9").await;
    let mut logs = server.bus.subscribe("agents.logs").await.unwrap();
    let mut ws = server.raw(Some(&token), false).await.unwrap();
    send(
        &mut ws,
        json!({
            "op": "pub", "rid": 1, "subject": "agents.logs",
            "payload": json!({"machineId": "someone-else", "logs": []}).to_string(),
            "headers": {"tenant": "other", "machine-id": "someone-else"},
        }),
    )
    .await;
    assert_eq!(recv(&mut ws).await["op"], "ok");
    let message = next_message(&mut logs).await;
    assert_eq!(
        message.headers.get(TENANT_HEADER),
        Some(server.tenant.as_str())
    );
    assert_eq!(message.headers.get(MACHINE_HEADER), Some(id.as_str()));
}

/// Hangs on `hang` until dropped (recording the drop), answers anything else at once.
#[derive(Debug, Default)]
struct Hanging {
    started: tokio::sync::Notify,
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl AgentHandler for Hanging {
    async fn on_command(&self, command: CommandMessage) -> ResultMessage {
        if command.code == "hang" {
            let _flag = DropFlag(self.dropped.clone());
            self.started.notify_one();
            std::future::pending::<()>().await;
        }
        let mut result = openframe_agent::client::result_for(&command.execution_id);
        result.exit_code = Some(0);
        result
    }
}

#[tokio::test]
async fn a_cancelled_command_stops_its_handler_and_sends_no_result() {
    let server = Server::start().await;
    let handler = Arc::new(Hanging::default());
    let agent = timeout(
        WAIT,
        Agent::start(server.config(temp_credentials()), handler.clone()),
    )
    .await
    .unwrap()
    .unwrap();
    timeout(WAIT, agent.wait_connected())
        .await
        .unwrap()
        .unwrap();
    let id = agent.machine_id().clone();
    let mut results = server
        .bus
        .subscribe(&format!("machine.{id}.command-execution.result"))
        .await
        .unwrap();
    let send = |execution_id: &str, code: &str| {
        let command = CommandMessage {
            execution_id: execution_id.into(),
            code: code.into(),
            shell: Shell::Bash,
            privilege_level: PrivilegeLevel::Admin,
            timeout: 30,
        };
        let (bus, subject) = (
            server.bus.clone(),
            format!("machine.{id}.command-execution"),
        );
        async move {
            bus.publish(
                &subject,
                serde_json::to_vec(&command).unwrap(),
                Headers::new(),
            )
            .await
            .unwrap();
        }
    };
    send("exec-hang", "hang").await;
    timeout(WAIT, handler.started.notified()).await.unwrap();
    server
        .bus
        .publish(
            &format!("machine.{id}.command-cancel"),
            json!({"executionId": "exec-hang"}).to_string().into_bytes(),
            Headers::new(),
        )
        .await
        .unwrap();
    timeout(WAIT, async {
        while !handler.dropped.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the handler was stopped");
    // The next command's result is the first one on the bus: none came for the cancelled one.
    send("exec-next", "uptime").await;
    let result: Json = serde_json::from_slice(&next_message(&mut results).await.payload).unwrap();
    assert_eq!(result["execution_id"], "exec-next");
    agent.shutdown().await;
}
