//! The original agent's NATS sockets through the reference server: `openframe-server
//! nats-config` writes the configuration of a real nats-server in operator mode, the server
//! connects its agent bus there as the authority's privileged user and proxies `/ws/nats` and
//! `/ws/nats-logs`. An agent speaking raw NATS over the WebSocket goes ONLINE in GraphQL, and
//! nats-server keeps it to its own subjects. Skipped (with a line saying so) without
//! `nats-server`; the unconfigured case always runs.

mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e_support::agent::DEVICE_BY_MACHINE;
use e2e_support::{Server, eventually};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

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

/// nats-server started from the configuration `openframe-server nats-config` wrote; killed
/// when dropped.
struct NatsServer {
    child: Child,
    port: u16,
    websocket_port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NatsServer {
    /// Runs the CLI's `nats-config` for `data_dir`, then nats-server on that file.
    async fn start(binary: &Path, data_dir: &Path) -> Self {
        let port = free_port();
        let mut websocket_port = free_port();
        while websocket_port == port {
            websocket_port = free_port();
        }
        let conf = data_dir.join("nats.conf");
        let out = Command::new(env!("CARGO_BIN_EXE_openframe-server"))
            .args(["nats-config", "--data-dir"])
            .arg(data_dir)
            .args(["--nats-port", &port.to_string()])
            .args(["--websocket-port", &websocket_port.to_string()])
            .arg("--out")
            .arg(&conf)
            .env_remove("OPENFRAME_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "nats-config: {out:?}");
        let hint = String::from_utf8_lossy(&out.stderr);
        assert!(
            hint.contains(&format!("ws://127.0.0.1:{websocket_port}")),
            "{hint}"
        );
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(
            text.contains("operator:") && text.contains("websocket"),
            "{text}"
        );
        let log = std::fs::File::create(data_dir.join("nats.log")).unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let nats = Self {
            child,
            port,
            websocket_port,
        };
        for _ in 0..100 {
            let up = |p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(port) && up(websocket_port) {
                return nats;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "nats-server did not start: {}",
            std::fs::read_to_string(data_dir.join("nats.log")).unwrap_or_default()
        );
    }
}

/// NATS spoken by hand over a WebSocket, as the original agent does.
struct NatsClient {
    ws: Socket,
    buf: String,
}

impl NatsClient {
    async fn open(url: &str, header: Option<(&str, &str)>) -> Result<Self, u16> {
        let mut request = url.into_client_request().unwrap();
        if let Some((name, value)) = header {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Self {
                ws,
                buf: String::new(),
            }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    async fn send(&mut self, raw: &str) {
        self.ws
            .send(Message::Binary(raw.as_bytes().to_vec().into()))
            .await
            .unwrap();
    }

    /// The next protocol line (answering PINGs); `None` once the socket closes.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.find("\r\n") {
                let line = self.buf[..end].to_owned();
                self.buf.drain(..end + 2);
                if line == "PING" {
                    self.send("PONG\r\n").await;
                    continue;
                }
                return Some(line);
            }
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("nothing from the proxy in time")
            {
                Some(Ok(Message::Binary(b))) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                Some(Ok(Message::Text(t))) => self.buf.push_str(&t),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads the server's INFO, sends the original agent's CONNECT and completes a PING.
    async fn handshake(&mut self) {
        let info = self.line().await.expect("INFO");
        assert!(info.starts_with("INFO "), "{info}");
        let connect = json!({
            "user": "machine", "pass": "", "headers": true, "no_responders": true,
            "verbose": false, "pedantic": false, "lang": "rust", "version": "0.33.0",
            "protocol": 1,
        });
        self.send(&format!("CONNECT {connect}\r\nPING\r\n")).await;
        assert_eq!(self.until_pong().await, Vec::<String>::new());
    }

    /// PING, then every line before the PONG.
    async fn round_trip(&mut self) -> Vec<String> {
        self.send("PING\r\n").await;
        self.until_pong().await
    }

    async fn until_pong(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.line().await {
                Some(line) if line == "PONG" => return seen,
                Some(line) => seen.push(line),
                None => panic!("closed after {seen:?}"),
            }
        }
    }

    async fn publish(&mut self, subject: &str, payload: &str) {
        self.send(&format!("PUB {subject} {}\r\n{payload}\r\n", payload.len()))
            .await;
    }
}

/// Registers a machine over `/clients` and returns its id and an access token.
async fn enroll(server: &Server, hostname: &str) -> (String, String) {
    let r = server
        .http
        .post(server.url("/clients/api/agents/register"))
        .header("X-Initial-Key", server.registration_secret.expose())
        .json(&json!({"hostname": hostname, "agentVersion": "1.4.2", "osType": "LINUX"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let creds: Value = r.json().await.unwrap();
    let r = server
        .http
        .post(server.url("/clients/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds["clientId"].as_str().unwrap()),
            ("client_secret", creds["clientSecret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token: Value = r.json().await.unwrap();
    (
        creds["machineId"].as_str().unwrap().to_owned(),
        token["access_token"]
            .as_str()
            .or(token["accessToken"].as_str())
            .unwrap()
            .to_owned(),
    )
}

fn ws_base(server: &Server) -> String {
    server.base.replacen("http://", "ws://", 1)
}

async fn agent_socket(server: &Server, token: &str, machine: &str) -> Result<NatsClient, u16> {
    let mut url = url::Url::parse(&format!("{}/ws/nats", ws_base(server))).unwrap();
    url.query_pairs_mut().append_pair("authorization", token);
    NatsClient::open(url.as_str(), Some(("x-machine-id", machine))).await
}

#[tokio::test]
async fn without_configuration_the_nats_sockets_answer_503_naming_the_setting() {
    let server = Server::start(|_| {}).await;
    for path in ["/ws/nats", "/ws/nats-logs"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "NATS_PROXY_NOT_CONFIGURED", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("nats_proxy.upstream"),
            "{body}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_original_agent_over_ws_nats_goes_online_and_stays_in_its_own_subjects() {
    let Some(binary) = nats_server_binary() else {
        eprintln!("skipped: nats-server not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let nats = NatsServer::start(&binary, &data_dir).await;
    let (port, websocket_port) = (nats.port, nats.websocket_port);
    let server = Server::start(|config| {
        config.data_dir = data_dir.clone();
        config.agent_bus.url = Some(openframe_server::config::ServiceUrl::new(format!(
            "nats://127.0.0.1:{port}"
        )));
        config.nats_proxy.upstream = Some(format!("ws://127.0.0.1:{websocket_port}"));
    })
    .await;
    let owner = server.owner_token().await;

    // Refused before any upstream connection: no token, a bad token, a user's token.
    let no_token = NatsClient::open(&format!("{}/ws/nats", ws_base(&server)), None).await;
    assert_eq!(no_token.err(), Some(401));
    assert_eq!(
        agent_socket(&server, "not-a-token", "x").await.err(),
        Some(401)
    );
    assert_eq!(agent_socket(&server, &owner, "x").await.err(), Some(403));

    // The agent connects with the original's credentials and heartbeats: ONLINE in GraphQL.
    let (machine, token) = enroll(&server, "nats-host").await;
    let (other, _) = enroll(&server, "other-host").await;
    let mut agent = agent_socket(&server, &token, &machine).await.unwrap();
    agent.handshake().await;
    agent
        .publish(&format!("machine.{machine}.heartbeat"), r#""{}""#)
        .await;
    assert_eq!(agent.round_trip().await, Vec::<String>::new());
    eventually("the machine is ONLINE", || async {
        let data = server
            .graphql(&owner, DEVICE_BY_MACHINE, json!({"m": machine}))
            .await;
        (data["deviceByMachineId"]["status"] == "ONLINE").then_some(())
    })
    .await;

    // nats-server itself refuses another machine's subjects.
    agent
        .publish(&format!("machine.{other}.heartbeat"), r#""{}""#)
        .await;
    let seen = agent.round_trip().await;
    assert!(
        seen.iter()
            .any(|l| l.starts_with("-ERR 'Permissions Violation")
                && l.contains(&format!("machine.{other}.heartbeat"))),
        "{seen:?}"
    );
    let data = server
        .graphql(&owner, DEVICE_BY_MACHINE, json!({"m": other}))
        .await;
    assert_ne!(data["deviceByMachineId"]["status"], "ONLINE", "{data}");

    // The log socket admits the registration secret only.
    let logs = format!("{}/ws/nats-logs", ws_base(&server));
    let bad = NatsClient::open(&logs, Some(("x-initial-key", "wrong-secret"))).await;
    assert!(matches!(bad.err(), Some(401 | 403)));
    let mut shipper = NatsClient::open(
        &logs,
        Some(("x-initial-key", server.registration_secret.expose())),
    )
    .await
    .unwrap();
    shipper.handshake().await;
    shipper.publish("agents.logs", r#"{"msg":"hello"}"#).await;
    shipper
        .publish(&format!("machine.{machine}.heartbeat"), "{}")
        .await;
    let seen = shipper.round_trip().await;
    assert!(
        seen.iter()
            .all(|l| !l.contains("agents.logs") || !l.starts_with("-ERR")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("-ERR 'Permissions Violation") && l.contains("heartbeat")),
        "{seen:?}"
    );

    // The authority survives a restart: the same sealed file, nats-server still trusts it
    // (same address, so the same issuer and the agent's token stays valid).
    let mut config = openframe_server::config::ServerConfig {
        listen: server.running.addr.to_string(),
        data_dir: data_dir.clone(),
        ..Default::default()
    };
    config.agent_bus.url = Some(openframe_server::config::ServiceUrl::new(format!(
        "nats://127.0.0.1:{port}"
    )));
    config.nats_proxy.upstream = Some(format!("ws://127.0.0.1:{websocket_port}"));
    server.shutdown().await;
    let again = openframe_server::server::start(config).await.unwrap();
    let mut url = url::Url::parse(&format!("ws://{}/ws/nats", again.addr)).unwrap();
    url.query_pairs_mut().append_pair("authorization", &token);
    let mut agent = NatsClient::open(url.as_str(), Some(("x-machine-id", &machine)))
        .await
        .unwrap();
    agent.handshake().await;
    agent
        .publish(&format!("machine.{machine}.heartbeat"), r#""{}""#)
        .await;
    assert_eq!(agent.round_trip().await, Vec::<String>::new());
    again.shutdown().await;
    drop(nats);
}
