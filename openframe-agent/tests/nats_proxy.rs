//! The original agent's NATS sockets through the proxy, against a real nats-server in operator
//! mode. The client below is written from `upstream-agent-wire.md` (steps 3-7): it registers
//! over HTTP, gets a token, opens `/ws/nats?authorization=<token>` and speaks the NATS protocol
//! over the WebSocket by hand with `user = "machine"`, `pass = ""`.

#![cfg(feature = "nats")]

mod support_enrollment;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use openframe_agent::bus::agent_streams;
use openframe_agent::nats_proxy::{self, NatsAuthority, NatsProxyConfig, ServerConfigOptions};
use openframe_agent::sessions::{AgentSessions, RepositoryStanding};
use openframe_security::token::AccessTokenRequest;
use serde_json::{Value, json};
use support_enrollment::{Creds, Server, TestTenant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);

// ---- nats-server ------------------------------------------------------------------------

fn nats_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A nats-server in operator mode; killed (and its directory removed) when dropped, also when
/// a test panics.
struct Nats {
    child: Child,
    dir: PathBuf,
    url: String,
    ws_url: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nats {
    async fn start(authority: &NatsAuthority) -> Option<Self> {
        let Some(binary) = nats_server_binary() else {
            eprintln!("skipped: nats-server not installed");
            return None;
        };
        let dir =
            std::env::temp_dir().join(format!("openframe-nats-proxy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("js")).unwrap();
        let port = free_port();
        let mut websocket_port = free_port();
        while websocket_port == port {
            websocket_port = free_port();
        }
        let config = authority
            .server_config(&ServerConfigOptions {
                host: "127.0.0.1".into(),
                port,
                websocket_port,
                store_dir: dir.join("js").display().to_string(),
            })
            .unwrap();
        std::fs::write(dir.join("nats.conf"), config).unwrap();
        let log = std::fs::File::create(dir.join("nats.log")).unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(dir.join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let nats = Self {
            child,
            dir,
            url: format!("nats://127.0.0.1:{port}"),
            ws_url: format!("ws://127.0.0.1:{websocket_port}"),
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", websocket_port))
                .await
                .is_ok()
                && TcpStream::connect(("127.0.0.1", port)).await.is_ok()
            {
                return Some(nats);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "nats-server did not start: {}",
            std::fs::read_to_string(nats.dir.join("nats.log")).unwrap_or_default()
        );
    }

    /// The server's own connection, as an unrestricted user of the account.
    async fn privileged(&self, authority: &NatsAuthority) -> async_nats::Client {
        let creds = authority.privileged_user("openframe-server", None).unwrap();
        async_nats::ConnectOptions::with_credentials(creds.creds_file().unwrap().expose())
            .unwrap()
            .connect(&self.url)
            .await
            .unwrap()
    }
}

// ---- the server with the proxy ----------------------------------------------------------

/// Serves the proxy router for `server` on its own loopback port.
async fn serve_proxy(server: &Server, authority: &NatsAuthority, upstream: &str) -> String {
    serve_proxy_with(server, authority, upstream, None).await
}

/// Same, with the given session registry.
async fn serve_proxy_with(
    server: &Server,
    authority: &NatsAuthority,
    upstream: &str,
    sessions: Option<AgentSessions>,
) -> String {
    let mut config = NatsProxyConfig::new(
        upstream.parse().unwrap(),
        authority.clone(),
        server.service.authenticator().clone(),
        Some(server.service.secrets().clone()),
        server.clock.clone(),
    );
    if let Some(sessions) = sessions {
        config = config.with_sessions(sessions);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = nats_proxy::router(config);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("ws://{addr}")
}

async fn access_token(server: &Server, creds: &Creds) -> String {
    server.token(creds).await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---- the test client: NATS over a WebSocket, by hand ------------------------------------

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Info(Value),
    Msg {
        subject: String,
        reply: Option<String>,
        payload: Vec<u8>,
    },
    Ping,
    Pong,
    Ok,
    Err(String),
}

struct NatsWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buf: Vec<u8>,
    closed: bool,
}

impl NatsWs {
    /// Opens the WebSocket; `Err(status)` if the upgrade is refused.
    async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Self, u16> {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Self {
                ws,
                buf: Vec::new(),
                closed: false,
            }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// Step 4: `/ws/nats?authorization=<token>` with `x-machine-id`, then INFO and CONNECT as
    /// the original agent sends it, then a PING/PONG round trip.
    async fn agent(base: &str, token: &str, machine_id: &str) -> Result<Self, u16> {
        let mut url = url::Url::parse(&format!("{base}/ws/nats")).unwrap();
        url.query_pairs_mut().append_pair("authorization", token);
        let mut client = Self::open(url.as_str(), &[("x-machine-id", machine_id)]).await?;
        let info = client.next_op().await;
        assert!(matches!(info, Op::Info(_)), "{info:?}");
        let connect = json!({
            "name": machine_id, "user": "machine", "pass": "", "headers": true,
            "no_responders": true, "verbose": false, "pedantic": false,
            "lang": "rust", "version": "0.33.0", "protocol": 1,
        });
        client.send(&format!("CONNECT {connect}\r\nPING\r\n")).await;
        Ok(client)
    }

    /// Straight to nats-server (no proxy) as the user `creds`, answering its nonce.
    async fn direct(ws_url: &str, creds: &openframe_agent::nats_proxy::UserCredentials) -> Self {
        let mut client = Self::open(ws_url, &[]).await.unwrap();
        let Op::Info(info) = client.next_op().await else {
            panic!("no INFO");
        };
        let nonce = info["nonce"].as_str().unwrap();
        let connect = json!({
            "jwt": creds.jwt(), "sig": creds.sign_nonce(nonce).unwrap(),
            "verbose": false, "pedantic": false, "headers": true, "protocol": 1,
        });
        client.send(&format!("CONNECT {connect}\r\nPING\r\n")).await;
        assert_eq!(client.next_op().await, Op::Pong, "CONNECT accepted");
        client
    }

    /// The connection is closed (after any operations, returned).
    async fn closed(&mut self) -> Vec<Op> {
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.read_op()).await {
                Ok(Some(op)) => seen.push(op),
                Ok(None) => return seen,
                Err(_) => panic!("still open after {seen:?}"),
            }
        }
    }

    async fn send(&mut self, raw: &str) {
        self.ws
            .send(Message::Binary(raw.as_bytes().to_vec().into()))
            .await
            .unwrap();
    }

    async fn publish(&mut self, subject: &str, reply: Option<&str>, payload: &str) {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        self.send(&format!(
            "PUB {subject}{reply} {}\r\n{payload}\r\n",
            payload.len()
        ))
        .await;
    }

    async fn fill(&mut self) -> bool {
        if self.closed {
            return false;
        }
        match self.ws.next().await {
            Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
            Some(Ok(Message::Text(t))) => self.buf.extend_from_slice(t.as_bytes()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                self.closed = true;
                return false;
            }
            Some(Ok(_)) => {}
        }
        true
    }

    /// The next operation (answers server PINGs itself); panics after [`WAIT`].
    async fn next_op(&mut self) -> Op {
        tokio::time::timeout(WAIT, self.read_op())
            .await
            .expect("no NATS operation in time")
            .expect("connection closed")
    }

    async fn read_op(&mut self) -> Option<Op> {
        loop {
            let op = loop {
                if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    let line = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                    if let Some(rest) = line.strip_prefix("MSG ") {
                        let parts: Vec<&str> = rest.split(' ').collect();
                        let len: usize = parts.last().unwrap().parse().unwrap();
                        while self.buf.len() < end + 2 + len + 2 {
                            if !self.fill().await {
                                return None;
                            }
                        }
                        let payload = self.buf[end + 2..end + 2 + len].to_vec();
                        self.buf.drain(..end + 2 + len + 2);
                        break Op::Msg {
                            subject: parts[0].to_owned(),
                            reply: (parts.len() == 4).then(|| parts[2].to_owned()),
                            payload,
                        };
                    }
                    self.buf.drain(..end + 2);
                    break if let Some(info) = line.strip_prefix("INFO ") {
                        Op::Info(serde_json::from_str(info).unwrap())
                    } else if line == "PING" {
                        Op::Ping
                    } else if line == "PONG" {
                        Op::Pong
                    } else if line == "+OK" {
                        Op::Ok
                    } else if let Some(e) = line.strip_prefix("-ERR ") {
                        Op::Err(e.to_owned())
                    } else {
                        panic!("unexpected line {line:?}");
                    };
                }
                if !self.fill().await {
                    return None;
                }
            };
            if op == Op::Ping {
                self.send("PONG\r\n").await;
                continue;
            }
            return Some(op);
        }
    }

    /// PING and wait for the PONG, returning every operation seen before it.
    async fn round_trip(&mut self) -> Vec<Op> {
        self.send("PING\r\n").await;
        let mut seen = Vec::new();
        loop {
            match self.next_op().await {
                Op::Pong => return seen,
                op => seen.push(op),
            }
        }
    }

    /// The next MSG (skipping PONGs), panicking on anything else.
    async fn next_msg(&mut self) -> (String, Option<String>, Vec<u8>) {
        loop {
            match self.next_op().await {
                Op::Msg {
                    subject,
                    reply,
                    payload,
                } => return (subject, reply, payload),
                Op::Pong => {}
                op => panic!("expected a MSG, got {op:?}"),
            }
        }
    }
}

fn is_permission_violation(ops: &[Op], what: &str) -> bool {
    ops.iter().any(|op| {
        matches!(op, Op::Err(e) if e.starts_with("'Permissions Violation") && e.contains(what))
    })
}

async fn nothing_on(sub: &mut async_nats::Subscriber, wait: Duration) {
    if let Ok(Some(m)) = tokio::time::timeout(wait, sub.next()).await {
        panic!("unexpected message on {}", m.subject);
    }
}

async fn setup() -> Option<(
    Server,
    TestTenant,
    NatsAuthority,
    Nats,
    async_nats::Client,
    String,
)> {
    let authority = NatsAuthority::generate("openframe-test");
    let nats = Nats::start(&authority).await?;
    let privileged = nats.privileged(&authority).await;
    let js = async_nats::jetstream::new(privileged.clone());
    for spec in agent_streams() {
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: spec.name.clone(),
            subjects: spec.subjects.clone(),
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let proxy = serve_proxy(&server, &authority, &nats.ws_url).await;
    Some((server, tenant, authority, nats, privileged, proxy))
}

// ---- tests -----------------------------------------------------------------------------

#[tokio::test]
async fn the_agent_is_confined_to_its_own_subjects_by_nats_server() {
    let Some((server, tenant, _authority, nats, privileged, proxy)) = setup().await else {
        return;
    };
    let me = server.register(&tenant, "vm-1").await;
    let other = server.register(&tenant, "vm-2").await;
    let token = access_token(&server, &me).await;
    let (id, other_id) = (me.machine_id.as_str(), other.machine_id.as_str());
    let mut watch = privileged.subscribe("machine.>").await.unwrap();
    privileged.flush().await.unwrap();

    // nats-server itself refuses the agent's own credentials: only the proxy gets it in.
    let mut direct = NatsWs::open(&nats.ws_url, &[]).await.unwrap();
    assert!(matches!(direct.next_op().await, Op::Info(_)));
    direct
        .send("CONNECT {\"user\":\"machine\",\"pass\":\"\",\"verbose\":false}\r\nPING\r\n")
        .await;
    match direct.next_op().await {
        Op::Err(e) => assert!(e.contains("Authorization Violation"), "{e}"),
        op => panic!("nats-server accepted a bare CONNECT: {op:?}"),
    }

    let mut agent = NatsWs::agent(&proxy, &token, id).await.unwrap();
    assert_eq!(agent.next_op().await, Op::Pong, "CONNECT accepted");

    // Step 5: hostname and heartbeat, JSON strings that contain JSON.
    agent
        .publish(
            &format!("machine.{id}.hostname"),
            None,
            r#""{\"hostname\":\"vm\"}""#,
        )
        .await;
    agent
        .publish(&format!("machine.{id}.heartbeat"), None, r#""{}""#)
        .await;
    assert_eq!(agent.round_trip().await, vec![]);
    let got = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.subject.as_str(), format!("machine.{id}.hostname"));
    let got = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.subject.as_str(), format!("machine.{id}.heartbeat"));
    assert_eq!(&got.payload[..], br#""{}""#);

    // Another machine's subject and a broadcast: refused by nats-server, nothing arrives.
    agent
        .publish(&format!("machine.{other_id}.heartbeat"), None, r#""{}""#)
        .await;
    agent.publish("machine.all.client-update", None, "{}").await;
    let ops = agent.round_trip().await;
    assert!(
        is_permission_violation(&ops, &format!("machine.{other_id}.heartbeat")),
        "{ops:?}"
    );
    assert!(
        is_permission_violation(&ops, "machine.all.client-update"),
        "{ops:?}"
    );
    nothing_on(&mut watch, QUIET).await;

    // Subscribing to every machine is refused; its own commands are delivered.
    agent.send("SUB machine.> 1\r\n").await;
    let ops = agent.round_trip().await;
    assert!(
        is_permission_violation(&ops, "Subscription to \"machine.>\""),
        "{ops:?}"
    );
    agent
        .send(&format!("SUB machine.{id}.command-execution 2\r\n"))
        .await;
    assert_eq!(agent.round_trip().await, vec![]);
    privileged
        .publish(format!("machine.{other_id}.command-execution"), "no".into())
        .await
        .unwrap();
    privileged
        .publish(format!("machine.{id}.command-execution"), "yes".into())
        .await
        .unwrap();
    privileged.flush().await.unwrap();
    let (subject, _, payload) = agent.next_msg().await;
    assert_eq!(subject, format!("machine.{id}.command-execution"));
    assert_eq!(payload, b"yes");

    for _ in 0..2 {
        // The server's own two publishes above.
        tokio::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .unwrap();
    }

    // The token decides, not `x-machine-id` nor the CONNECT `name`: claiming to be the
    // other machine changes nothing.
    let mut liar = NatsWs::agent(&proxy, &token, other_id).await.unwrap();
    assert_eq!(liar.next_op().await, Op::Pong);
    liar.publish(&format!("machine.{other_id}.heartbeat"), None, r#""{}""#)
        .await;
    let ops = liar.round_trip().await;
    assert!(
        is_permission_violation(&ops, &format!("machine.{other_id}.heartbeat")),
        "{ops:?}"
    );
    nothing_on(&mut watch, QUIET).await;
}

#[tokio::test]
async fn the_agent_creates_and_acks_only_its_own_durable_consumers() {
    let Some((server, tenant, _authority, _nats, privileged, proxy)) = setup().await else {
        return;
    };
    let me = server.register(&tenant, "vm-1").await;
    let other = server.register(&tenant, "vm-2").await;
    let token = access_token(&server, &me).await;
    let (id, other_id) = (me.machine_id.as_str(), other.machine_id.as_str());
    let mut agent = NatsWs::agent(&proxy, &token, id).await.unwrap();
    assert_eq!(agent.next_op().await, Op::Pong);
    agent
        .send("SUB _INBOX.t.> 1\r\nSUB _INBOX.deliver 2\r\n")
        .await;

    let durable = format!("machine_{id}_tool-installation_consumer");
    let filter = format!("machine.{id}.tool-installation");
    let create = |durable: &str, filter: &str| {
        json!({
            "stream_name": "TOOL_INSTALLATION",
            "config": {
                "durable_name": durable, "deliver_subject": "_INBOX.deliver",
                "filter_subject": filter, "deliver_policy": "all", "ack_policy": "explicit",
                "ack_wait": 120_000_000_000_i64, "max_deliver": 10,
            },
        })
        .to_string()
    };
    // Step 6: $JS.API.CONSUMER.CREATE.<STREAM>.<durable>.<filter>.
    agent
        .publish(
            &format!("$JS.API.CONSUMER.CREATE.TOOL_INSTALLATION.{durable}.{filter}"),
            Some("_INBOX.t.1"),
            &create(&durable, &filter),
        )
        .await;
    let (subject, _, payload) = agent.next_msg().await;
    assert_eq!(subject, "_INBOX.t.1");
    let answer: Value = serde_json::from_slice(&payload).unwrap();
    assert!(answer.get("error").is_none(), "{answer}");
    assert_eq!(answer["config"]["filter_subject"], filter.as_str());

    // One of its own pinned subjects with another machine's filter in the body: nats-server
    // refuses, since the filter in the subject must match the one in the config.
    let uninstall = format!("machine_{id}_tool-uninstall_consumer");
    agent
        .publish(
            &format!(
                "$JS.API.CONSUMER.CREATE.TOOL_INSTALLATION.{uninstall}.machine.{id}.tool-uninstall"
            ),
            Some("_INBOX.t.2"),
            &create(&uninstall, &format!("machine.{other_id}.tool-uninstall")),
        )
        .await;
    let (_, _, payload) = agent.next_msg().await;
    let answer: Value = serde_json::from_slice(&payload).unwrap();
    assert!(answer.get("error").is_some(), "{answer}");
    eprintln!("mismatched filter refused: {}", answer["error"]);

    // Another machine's consumer, or the forms without a pinned filter: permission violations.
    let other_durable = format!("machine_{other_id}_tool-installation_consumer");
    let other_filter = format!("machine.{other_id}.tool-installation");
    for subject in [
        format!("$JS.API.CONSUMER.CREATE.TOOL_INSTALLATION.{other_durable}.{other_filter}"),
        format!("$JS.API.CONSUMER.CREATE.TOOL_INSTALLATION.{durable}"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.TOOL_INSTALLATION.{durable}"),
        "$JS.API.STREAM.DELETE.TOOL_INSTALLATION".to_owned(),
    ] {
        agent
            .publish(
                &subject,
                Some("_INBOX.t.3"),
                &create(&other_durable, &other_filter),
            )
            .await;
        let ops = agent.round_trip().await;
        assert!(
            is_permission_violation(&ops, &subject),
            "{subject}: {ops:?}"
        );
    }

    // Lookup (10013 path) and account info are allowed.
    agent
        .publish(
            &format!("$JS.API.CONSUMER.INFO.TOOL_INSTALLATION.{durable}"),
            Some("_INBOX.t.4"),
            "",
        )
        .await;
    let (_, _, payload) = agent.next_msg().await;
    let info: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(info["name"], durable.as_str(), "{info}");

    // The server asks for an installation; the agent gets it and acks it.
    let js = async_nats::jetstream::new(privileged.clone());
    js.publish(filter.clone(), "install".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // (A push delivery keeps the message's subject; it arrives on the deliver subscription.)
    let (subject, reply, payload) = agent.next_msg().await;
    assert_eq!(subject, filter);
    assert_eq!(payload, b"install");
    let reply = reply.expect("an ack subject");
    assert!(
        reply.starts_with(&format!("$JS.ACK.TOOL_INSTALLATION.{durable}.")),
        "{reply}"
    );
    agent.publish(&reply, None, "+ACK").await;
    assert_eq!(agent.round_trip().await, vec![]);
    let stream = js.get_stream("TOOL_INSTALLATION").await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PushConsumer =
        stream.get_consumer(&durable).await.unwrap();
    let mut pending = 1;
    for _ in 0..50 {
        pending = consumer.info().await.unwrap().num_ack_pending;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0, "acked");
}

#[tokio::test]
async fn the_log_socket_is_admitted_by_the_registration_secret_and_confined_to_logs() {
    let Some((server, tenant, _authority, _nats, _privileged, proxy)) = setup().await else {
        return;
    };
    let url = format!("{proxy}/ws/nats-logs");
    let headers = |key: &'static str| {
        [
            ("x-tenant-domain", "acme.example"),
            ("x-initial-key", key),
            ("x-machine-id", "openframe-client"),
        ]
    };
    assert_eq!(NatsWs::open(&url, &headers("wrong")).await.err(), Some(401));
    let key: &'static str = Box::leak(tenant.key.expose().to_owned().into_boxed_str());
    let mut logs = NatsWs::open(&url, &headers(key)).await.unwrap();
    assert!(matches!(logs.next_op().await, Op::Info(_)));
    logs.send("CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\nPING\r\n")
        .await;
    assert_eq!(logs.next_op().await, Op::Pong);
    logs.send("SUB _INBOX.logs.> 1\r\n").await;
    let batch = json!({
        "machineId": "m", "hostname": "vm", "tenantDomain": "acme.example",
        "logs": [{"level": "INFO", "ts": "2026-01-01T00:00:00Z", "msg": "hello"}],
    });
    logs.publish("agents.logs", Some("_INBOX.logs.1"), &batch.to_string())
        .await;
    let (_, _, payload) = logs.next_msg().await;
    let ack: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(ack["stream"], "AGENT_LOGS", "{ack}");
    assert_eq!(ack["seq"], 1);
    logs.publish("machine.x.heartbeat", None, "{}").await;
    let ops = logs.round_trip().await;
    assert!(
        is_permission_violation(&ops, "machine.x.heartbeat"),
        "{ops:?}"
    );
    drop(server);
}

#[tokio::test]
async fn only_agent_tokens_get_through_and_refusals_never_reach_nats() {
    // A fake upstream that counts connections: none may be made for a refused request.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("ws://{}", upstream.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = upstream.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let authority = NatsAuthority::generate("t");
    let proxy = serve_proxy(&server, &authority, &upstream_url).await;
    let me = server.register(&tenant, "vm-1").await;
    let id = me.machine_id.as_str();

    let url = format!("{proxy}/ws/nats");
    assert_eq!(
        NatsWs::open(&url, &[("x-machine-id", id)]).await.err(),
        Some(401)
    );
    assert_eq!(
        NatsWs::agent(&proxy, "garbage", id).await.err(),
        Some(401),
        "bad token"
    );
    let mut req = AccessTokenRequest::new(tenant.id.clone(), "console", "console");
    req.roles = vec!["ADMIN".into()];
    let admin = server.stack.tokens.issue_access_token(req).await.unwrap();
    assert_eq!(
        NatsWs::agent(&proxy, &admin.token, id).await.err(),
        Some(403),
        "user token"
    );
    assert_eq!(
        NatsWs::open(&format!("{proxy}/ws/nats-logs"), &[])
            .await
            .err(),
        Some(401)
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no upstream connection");

    // A valid agent token does reach upstream (here a dead one: 502, not 101).
    let token = access_token(&server, &me).await;
    assert_eq!(NatsWs::agent(&proxy, &token, id).await.err(), Some(502));
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn one_agent_never_receives_replies_meant_for_another() {
    let Some((server, tenant, authority, nats, privileged, proxy)) = setup().await else {
        return;
    };
    let a = server.register(&tenant, "vm-a").await;
    let b = server.register(&tenant, "vm-b").await;
    let (a_id, b_id) = (a.machine_id.as_str(), b.machine_id.as_str());
    // The responder listens before B connects (so B's request never finds no responder).
    let mut requests = privileged
        .subscribe(format!("machine.{b_id}.>"))
        .await
        .unwrap();
    privileged.flush().await.unwrap();
    let mut agent_a = NatsWs::agent(&proxy, &access_token(&server, &a).await, a_id)
        .await
        .unwrap();
    let mut agent_b = NatsWs::agent(&proxy, &access_token(&server, &b).await, b_id)
        .await
        .unwrap();
    assert_eq!(agent_a.next_op().await, Op::Pong);
    assert_eq!(agent_b.next_op().await, Op::Pong);

    // Both use the default `_INBOX.` names; A even asks for every inbox, in lower case and
    // split across WebSocket messages. Nothing is refused: the proxy moves them into each
    // agent's own namespace.
    agent_b.send("SUB _INBOX.b.* 1\r\n").await;
    agent_a.send("SUB _INBOX.> 1\r\nsu").await;
    agent_a.send("b _IN").await;
    agent_a.send("BOX.> 2\r\n").await;
    assert_eq!(agent_a.round_trip().await, vec![]);
    assert_eq!(agent_b.round_trip().await, vec![]);

    // B sends a request with its inbox as reply subject; the responder answers there.
    agent_b
        .publish(&format!("machine.{b_id}.ask"), Some("_INBOX.b.1"), "q")
        .await;
    let request = tokio::time::timeout(WAIT, requests.next())
        .await
        .unwrap()
        .unwrap();
    let reply = request.reply.expect("a reply subject").to_string();
    assert_eq!(
        reply,
        format!("_INBOX_{b_id}.b.1"),
        "moved into B's namespace"
    );
    privileged
        .publish(reply, "secret answer for b".into())
        .await
        .unwrap();
    // A reply to the legacy shared name reaches nobody.
    privileged
        .publish("_INBOX.b.1", "legacy".into())
        .await
        .unwrap();
    privileged.flush().await.unwrap();

    let (subject, _, payload) = agent_b.next_msg().await;
    assert_eq!(subject, "_INBOX.b.1", "B sees its own name back");
    assert_eq!(payload, b"secret answer for b");
    assert_eq!(agent_b.round_trip().await, vec![], "nothing else for B");
    assert_eq!(agent_a.round_trip().await, vec![], "A received nothing");

    // A naming B's namespace outright is refused by the proxy, which closes the session.
    agent_a.send(&format!("SUB _INBOX_{b_id}.> 3\r\n")).await;
    let ops = agent_a.closed().await;
    assert!(
        matches!(ops.as_slice(), [Op::Err(e)] if e.contains("reserved inbox")),
        "{ops:?}"
    );

    // And nats-server itself enforces it: A's user may subscribe to neither the shared
    // inboxes nor B's, only to its own namespace.
    let a_user = authority.user_jwt_for(&a.machine_id, None).unwrap();
    let mut direct = NatsWs::direct(&nats.ws_url, &a_user).await;
    direct
        .send(&format!(
            "SUB _INBOX.> 1\r\nSUB _INBOX_{b_id}.> 2\r\nSUB _INBOX_{a_id}.> 3\r\n"
        ))
        .await;
    let ops = direct.round_trip().await;
    assert!(is_permission_violation(&ops, "\"_INBOX.>\""), "{ops:?}");
    assert!(
        is_permission_violation(&ops, &format!("_INBOX_{b_id}.>")),
        "{ops:?}"
    );
    assert!(
        !is_permission_violation(&ops, &format!("_INBOX_{a_id}.>")),
        "{ops:?}"
    );
}

/// A server whose enrollment events end sessions, and a proxy whose sessions re-read the
/// manual clock every 20 ms and check their machine's standing every 50 ms.
async fn setup_with_sessions() -> Option<(Server, TestTenant, Nats, String)> {
    let authority = NatsAuthority::generate("openframe-test");
    let nats = Nats::start(&authority).await?;
    let (server, sessions) = Server::start_with_sessions().await;
    let sessions = sessions.with_standing(
        Arc::new(RepositoryStanding::new(
            server.stack.repos.clone(),
            server.stack.clients.clone(),
        )),
        Duration::from_millis(50),
    );
    let tenant = server.tenant("acme").await;
    let proxy = serve_proxy_with(&server, &authority, &nats.ws_url, Some(sessions)).await;
    Some((server, tenant, nats, proxy))
}

#[tokio::test]
async fn a_nats_session_ends_when_its_token_expires() {
    let Some((server, tenant, _nats, proxy)) = setup_with_sessions().await else {
        return;
    };
    let me = server.register(&tenant, "vm-1").await;
    let token = server.token(&me).await;
    let expires_in = token["expiresIn"].as_u64().unwrap();
    let access = token["accessToken"].as_str().unwrap();
    let mut agent = NatsWs::agent(&proxy, access, me.machine_id.as_str())
        .await
        .unwrap();
    assert_eq!(agent.next_op().await, Op::Pong);
    server.clock.advance(Duration::from_secs(expires_in - 5));
    assert_eq!(
        agent.round_trip().await,
        vec![],
        "still valid 5 s before exp"
    );
    server.clock.advance(Duration::from_secs(6));
    let ops = agent.closed().await;
    assert_eq!(ops, vec![Op::Err("'User Authentication Expired'".into())]);
    // The same token is refused now; a fresh one gets in again.
    assert_eq!(
        NatsWs::agent(&proxy, access, me.machine_id.as_str())
            .await
            .err(),
        Some(401)
    );
    let fresh = access_token(&server, &me).await;
    let mut again = NatsWs::agent(&proxy, &fresh, me.machine_id.as_str())
        .await
        .unwrap();
    assert_eq!(again.next_op().await, Op::Pong);
}

#[tokio::test]
async fn a_nats_session_ends_when_its_machine_is_uninstalled_or_disabled() {
    let Some((server, tenant, _nats, proxy)) = setup_with_sessions().await else {
        return;
    };
    let gone = server.register(&tenant, "vm-gone").await;
    let disabled = server.register(&tenant, "vm-disabled").await;
    let bystander = server.register(&tenant, "vm-stays").await;
    let mut sockets = Vec::new();
    for creds in [&gone, &disabled, &bystander] {
        let token = access_token(&server, creds).await;
        let mut agent = NatsWs::agent(&proxy, &token, creds.machine_id.as_str())
            .await
            .unwrap();
        assert_eq!(agent.next_op().await, Op::Pong);
        sockets.push(agent);
    }
    let mut bystander_ws = sockets.pop().unwrap();
    let mut disabled_ws = sockets.pop().unwrap();
    let mut gone_ws = sockets.pop().unwrap();

    // Uninstall (the agent's own request): the Uninstalled event ends its session.
    let r = server
        .uninstall_raw(gone.machine_id.as_str(), &gone.secret)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        gone_ws.closed().await,
        vec![Op::Err("'Authorization Violation'".into())]
    );

    // An administrator disables the machine's client: no event, the standing check sees it.
    server
        .stack
        .clients
        .set_enabled(&tenant.id, &format!("agent_{}", disabled.machine_id), false)
        .await
        .unwrap();
    assert_eq!(
        disabled_ws.closed().await,
        vec![Op::Err("'Authorization Violation'".into())]
    );

    // The other machine keeps its session.
    assert_eq!(bystander_ws.round_trip().await, vec![]);
}
