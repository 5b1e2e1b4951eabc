//! `/ws/agent` sessions end when the agent's token expires or its machine is uninstalled or
//! disabled, over a real server and real WebSockets (the NATS proxy's sessions are tested in
//! `nats_proxy.rs`).

mod support_enrollment;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use openframe_agent::bus::memory::InMemoryAgentBus;
use openframe_agent::gateway::{self, CLOSE_SESSION_ENDED, GatewayConfig};
use openframe_agent::sessions::RepositoryStanding;
use support_enrollment::{Creds, Server, TestTenant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server whose `Uninstalled` events end sessions, and its gateway on its own port. With
/// `standing`, sessions also check their machine every 50 ms.
async fn setup(standing: bool) -> (Server, TestTenant, String) {
    let (server, mut sessions) = Server::start_with_sessions().await;
    if standing {
        sessions = sessions.with_standing(
            Arc::new(RepositoryStanding::new(
                server.stack.repos.clone(),
                server.stack.clients.clone(),
            )),
            Duration::from_millis(50),
        );
    }
    let tenant = server.tenant("acme").await;
    let app = gateway::router_with_sessions(
        Arc::new(InMemoryAgentBus::new()),
        server.service.authenticator().clone(),
        GatewayConfig::default(),
        sessions,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (
        server,
        tenant,
        format!("ws://{addr}{}", gateway::GATEWAY_PATH),
    )
}

async fn connect(url: &str, token: &str) -> Result<Ws, u16> {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

async fn token(server: &Server, creds: &Creds) -> (String, u64) {
    let body = server.token(creds).await;
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["expiresIn"].as_u64().unwrap(),
    )
}

/// The close frame the server ends the connection with.
async fn close_frame(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("not closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// Still open: a `pub` on its own subject is answered.
async fn still_open(ws: &mut Ws, machine: &str) {
    use futures::SinkExt as _;
    let frame = serde_json::json!({
        "op": "pub", "rid": 7, "subject": format!("machine.{machine}.heartbeat"), "payload": "{}",
    });
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no answer")
        {
            Some(Ok(Message::Text(text))) => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                if v["rid"] == 7 {
                    assert_eq!(v["op"], "ok", "{v}");
                    return;
                }
            }
            other => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_gateway_session_ends_when_its_token_expires() {
    let (server, tenant, url) = setup(false).await;
    let me = server.register(&tenant, "vm-1").await;
    let (access, expires_in) = token(&server, &me).await;
    let mut ws = connect(&url, &access).await.unwrap();
    server.clock.advance(Duration::from_secs(expires_in - 5));
    still_open(&mut ws, me.machine_id.as_str()).await;
    server.clock.advance(Duration::from_secs(6));
    assert_eq!(
        close_frame(&mut ws).await,
        (CLOSE_SESSION_ENDED, "token expired".to_owned())
    );
    assert_eq!(
        connect(&url, &access).await.err(),
        Some(401),
        "expired token"
    );
    let (fresh, _) = token(&server, &me).await;
    let mut again = connect(&url, &fresh).await.unwrap();
    still_open(&mut again, me.machine_id.as_str()).await;
}

#[tokio::test]
async fn a_gateway_session_ends_on_the_uninstalled_event() {
    let (server, tenant, url) = setup(false).await;
    let gone = server.register(&tenant, "vm-gone").await;
    let stays = server.register(&tenant, "vm-stays").await;
    let mut gone_ws = connect(&url, &token(&server, &gone).await.0).await.unwrap();
    let mut stays_ws = connect(&url, &token(&server, &stays).await.0)
        .await
        .unwrap();
    let r = server
        .uninstall_raw(gone.machine_id.as_str(), &gone.secret)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        close_frame(&mut gone_ws).await,
        (CLOSE_SESSION_ENDED, "machine uninstalled".to_owned())
    );
    still_open(&mut stays_ws, stays.machine_id.as_str()).await;
}

#[tokio::test]
async fn a_gateway_session_ends_when_its_machine_is_disabled() {
    let (server, tenant, url) = setup(true).await;
    let me = server.register(&tenant, "vm-1").await;
    let other = server.register(&tenant, "vm-2").await;
    let mut ws = connect(&url, &token(&server, &me).await.0).await.unwrap();
    let mut other_ws = connect(&url, &token(&server, &other).await.0)
        .await
        .unwrap();
    still_open(&mut ws, me.machine_id.as_str()).await;
    server
        .stack
        .clients
        .set_enabled(&tenant.id, &format!("agent_{}", me.machine_id), false)
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut ws).await,
        (CLOSE_SESSION_ENDED, "machine disabled".to_owned())
    );
    still_open(&mut other_ws, other.machine_id.as_str()).await;
}
