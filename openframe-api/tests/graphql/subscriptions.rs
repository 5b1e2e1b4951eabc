//! Subscriptions over a real WebSocket (graphql-transport-ws): a machine status change
//! reaches its tenant's subscriber and no other tenant's.

use std::time::Duration;

use crate::support::Harness;
use futures::{SinkExt as _, StreamExt as _};
use openframe_agent::events::{AgentEvent, AgentEventKind};
use openframe_core::{Clock, MachineStatus};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(h: &Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("ws://{addr}/api/graphql/ws")
}

/// Waits until `n` subscriptions of each kind (as picked by `pick`) are registered.
async fn wait_for(h: &Harness, pick: fn((usize, usize)) -> usize, n: usize) {
    for _ in 0..500 {
        if pick(h.events.subscriber_counts()) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("subscriptions did not register");
}

async fn recv(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn subscribe(url: &str, token: &str) -> Socket {
    let query = "subscription { machineStatusChanged { machineId kind previousStatus status } }";
    open(url, token, query).await
}

async fn open(url: &str, token: &str, query: &str) -> Socket {
    let mut req = format!("{url}?authorization={token}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(
        json!({"type": "connection_init"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(recv(&mut ws).await["type"], "connection_ack");
    ws.send(Message::text(
        json!({"id": "1", "type": "subscribe", "payload": {"query": query}}).to_string(),
    ))
    .await
    .unwrap();
    ws
}

#[tokio::test]
async fn a_subscriber_receives_its_tenants_status_changes_only() {
    let h = Harness::start().await;
    let url = serve(&h).await;
    let mut a = subscribe(&url, &h.a.token).await;
    let mut b = subscribe(&url, &h.b.token).await;
    wait_for(&h, |c| c.0, 2).await;

    let m = h.machine(&h.a, "web-01", MachineStatus::Offline).await;
    let sink = h.events.sink();
    sink.emit(AgentEvent {
        tenant: h.a.id.clone(),
        machine_id: m.id.clone(),
        kind: AgentEventKind::WentOffline,
        previous_status: Some(MachineStatus::Online),
        status: MachineStatus::Offline,
        at: h.clock.now(),
    })
    .await
    .unwrap();
    // Then one of tenant B: on the one ordered channel, B's first message must be its own.
    let theirs = h.machine(&h.b, "their-01", MachineStatus::Online).await;
    sink.emit(AgentEvent {
        tenant: h.b.id.clone(),
        machine_id: theirs.id.clone(),
        kind: AgentEventKind::CameOnline,
        previous_status: Some(MachineStatus::Pending),
        status: MachineStatus::Online,
        at: h.clock.now(),
    })
    .await
    .unwrap();

    let next = recv(&mut a).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["data"]["machineStatusChanged"],
        json!({"machineId": m.id.as_str(), "kind": "WENT_OFFLINE", "previousStatus": "ONLINE", "status": "OFFLINE"})
    );
    let first_of_b = recv(&mut b).await;
    assert_eq!(
        first_of_b["payload"]["data"]["machineStatusChanged"]["machineId"],
        theirs.id.as_str(),
        "tenant B must not receive tenant A's event"
    );
}

#[tokio::test]
async fn an_unauthenticated_upgrade_is_refused() {
    let h = Harness::start().await;
    let url = serve(&h).await;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn new_events_reach_their_tenants_subscriber_only() {
    let h = Harness::start().await;
    let url = serve(&h).await;
    let query = "subscription { eventAdded { summary severity } }";
    let mut a = open(&url, &h.a.token, query).await;
    let mut b = open(&url, &h.b.token, query).await;
    wait_for(&h, |c| c.1, 2).await;

    let event = h
        .event(
            &h.a,
            "user.login",
            openframe_stream::model::Severity::Warning,
            None,
            0,
        )
        .await;
    h.events.publish_event(event);
    let theirs = h
        .event(
            &h.b,
            "user.logout",
            openframe_stream::model::Severity::Info,
            None,
            1,
        )
        .await;
    h.events.publish_event(theirs);
    let next = recv(&mut a).await;
    assert_eq!(
        next["payload"]["data"]["eventAdded"],
        json!({"summary": "user.login on acme", "severity": "WARNING"})
    );
    let first_of_b = recv(&mut b).await;
    assert_eq!(
        first_of_b["payload"]["data"]["eventAdded"]["summary"], "user.logout on globex",
        "tenant B must not receive tenant A's event"
    );
}

#[tokio::test]
async fn a_subscription_socket_ends_when_its_access_token_expires() {
    let h = Harness::start().await;
    let url = serve(&h).await;
    let mut ws = subscribe(&url, &h.a.token).await;
    wait_for(&h, |c| c.0, 1).await;
    // Still open while the token is valid: nothing arrives, and the socket is not closed.
    h.clock.advance(Duration::from_secs(60));
    let quiet = tokio::time::timeout(Duration::from_millis(1500), ws.next()).await;
    assert!(quiet.is_err(), "the socket must stay open: {quiet:?}");
    // Past any access token's lifetime (at most a day), the server closes it.
    h.clock.advance(Duration::from_secs(25 * 3600));
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket outlived its token");
}
