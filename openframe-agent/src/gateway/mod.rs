//! The agent WebSocket gateway: how agents reach the bus when there is no NATS.
//!
//! In the embedded deployment the server runs an in-process [`AgentBus`]; agents connect to
//! the server itself with a WebSocket on [`GATEWAY_PATH`] (`GET /ws/agent`) and exchange JSON
//! frames that the gateway bridges to the bus.
//!
//! # Authentication
//!
//! The upgrade request carries the agent's access token, as `Authorization: Bearer <token>` or
//! (since browsers and some WebSocket clients cannot set headers) as `?authorization=<token>`.
//! It is verified with the [`Authenticator`]; the principal must be a
//! [`Principal::Machine`] with role `AGENT`. Anything else is answered `401` before the
//! upgrade. The connection is then an [`AgentSessions`] session: it is closed with code [`CLOSE_SESSION_ENDED`] and the
//! [`SessionEnd`](crate::sessions::SessionEnd) text as reason when the token expires (on the injected clock) or the
//! machine is uninstalled or disabled; the agent reconnects with a fresh token (or is refused).
//!
//! # Confinement
//!
//! A connection speaks for one machine of one tenant, both taken from the token:
//!
//! - every `pub` subject (except `agents.logs`, the log stream, which any agent may publish
//!   to; the gateway then also stamps [`MACHINE_HEADER`]), `sub` pattern and `consume` filter
//!   must pass
//!   [`machine_may`] for the machine (its own
//!   `machine.{id}.…` subjects; subscriptions also to the `machine.all…` broadcasts); a
//!   `consume` durable name must start with `machine_{id}_` (so a machine cannot bind another
//!   machine's consumer of a broadcast). A refusal is an `err` frame with code `FORBIDDEN`; the
//!   connection stays open and nothing is published or delivered;
//! - the server stamps the trusted [`TENANT_HEADER`] (the token's tenant) on everything the
//!   agent publishes, replacing any `tenant` header the agent sent (in any letter case).
//!
//! # Frames
//!
//! One JSON object per WebSocket text frame, tagged by `op` (see [`protocol`]). Payloads are
//! strings: the UTF-8 payload itself, or base64 with `"encoding":"base64"` (the server sends
//! base64 only for payloads that are not UTF-8). Headers are `{"name":"value"}` or
//! `{"name":["v1","v2"]}`. Every client frame may carry a request id `rid` and is answered by
//! exactly one `ok` or `err` frame echoing it.
//!
//! Agent → server:
//!
//! | frame | meaning |
//! |---|---|
//! | `{"op":"pub","rid"?,"subject","payload","encoding"?,"headers"?}` | publish ephemerally |
//! | `{"op":"sub","rid"?,"sid","subject"}` | subscribe to a subject or pattern |
//! | `{"op":"unsub","rid"?,"sid"}` | end a subscription or consumer binding |
//! | `{"op":"consume","rid"?,"sid","stream","durable","filter","deliver"?,"ack_wait_ms"?,"max_deliver"?}` | bind a durable consumer |
//! | `{"op":"ack"\|"term"\|"progress","rid"?,"id"}`, `{"op":"nak","rid"?,"id","delay_ms"?}` | settle a delivery |
//!
//! Server → agent:
//!
//! | frame | meaning |
//! |---|---|
//! | `{"op":"msg","sid","subject","payload","encoding"?,"headers"?}` | a subscription's message |
//! | `{"op":"delivery","sid","id","subject","payload","encoding"?,"headers"?,"delivered","max_deliver"}` | a durable delivery |
//! | `{"op":"ok","rid"?}` | the request succeeded |
//! | `{"op":"err","rid"?,"sid"?,"code","message"}` | the request (or subscription `sid`) failed |
//!
//! Deliveries left unsettled when the connection ends are redelivered after their `ack_wait`.
//! At most [`GatewayConfig::max_in_flight`] deliveries per consumer are unsettled at a time.
//!
//! # Protocol violations
//!
//! A frame larger than [`GatewayConfig::max_frame_bytes`] (default 1 MiB) closes the
//! connection with code 1009 (message too big); a frame that is not a JSON object of a known
//! `op` with the right fields, or a binary frame, closes it with 1008 (policy violation).
//! More than [`GatewayConfig::max_subscriptions`] subscriptions is an `err` frame.
//!
//! ```no_run
//! # fn build(stack: &openframe_security::stack::SecurityStack, auth: openframe_security::auth::Authenticator) {
//! use std::sync::Arc;
//! use openframe_agent::bus::memory::InMemoryAgentBus;
//! use openframe_agent::gateway;
//! let app = axum::Router::new().merge(gateway::router(Arc::new(InMemoryAgentBus::new()), auth));
//! # let _ = (app, stack); }
//! ```

pub mod protocol;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};

/// Read and write buffer of one agent connection.
const CONNECTION_BUFFER: usize = 8 * 1024;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use openframe_core::{Error, MachineId, Result, TenantId};
use openframe_security::auth::{AuthRejection, Authenticator, Principal};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinSet};

use crate::bus::{AgentBus, ConsumerSpec, DeliverPolicy, Delivery, Headers, Message};
use crate::enrollment::AGENT_ROLE;
use crate::sessions::{AgentSessions, Session, presented_token_expiry, session_end};
use crate::subjects::{Access, machine_may};
use protocol::{
    ClientFrame, ServerFrame, WireDeliver, WirePayload, headers_from_wire, headers_to_wire,
};

/// The path agents connect to.
pub const GATEWAY_PATH: &str = "/ws/agent";

/// The listen backlog [`bind_listener`] asks for (the kernel caps it at `somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener for a server that agents connect to, with a [`LISTEN_BACKLOG`]-deep accept
/// queue: when thousands of agents reconnect at once (a reconnect storm), the default backlog
/// (1024) overflows, dropped connection attempts back off exponentially in the kernel, and
/// agents see their requests time out long after the server has caught up.
pub fn bind_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The header the gateway stamps on everything an agent publishes: the token's tenant.
pub const TENANT_HEADER: &str = "tenant";
/// The header the gateway stamps on an agent's log batches (`agents.logs`): the token's
/// machine (the ids inside the batch are the agent's word only).
pub const MACHINE_HEADER: &str = "machine-id";

/// The default largest accepted frame (1 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Close code for a frame over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a malformed frame.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code for a session the server ended (token expired, machine uninstalled or
/// disabled; the reason says which).
pub const CLOSE_SESSION_ENDED: u16 = 4001;

/// Longest subscription id.
const MAX_SID_LEN: usize = 64;
/// Outbound frames buffered per connection.
const OUTBOUND_BUFFER: usize = 256;
/// Default `ack_wait` of a `consume` without one.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(120);
/// Default `max_deliver` of a `consume` without one.
const DEFAULT_MAX_DELIVER: u32 = 10;

/// Gateway limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Largest accepted frame, bytes (default 1 MiB).
    pub max_frame_bytes: usize,
    /// Most subscriptions and consumer bindings per connection (default 64).
    pub max_subscriptions: usize,
    /// Most unsettled deliveries per consumer binding (default 32).
    pub max_in_flight: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_subscriptions: 64,
            max_in_flight: 32,
        }
    }
}

impl GatewayConfig {
    /// Sets `max_frame_bytes`.
    pub fn with_max_frame_bytes(mut self, max_frame_bytes: usize) -> Self {
        self.max_frame_bytes = max_frame_bytes;
        self
    }

    /// Sets `max_subscriptions`.
    pub fn with_max_subscriptions(mut self, max_subscriptions: usize) -> Self {
        self.max_subscriptions = max_subscriptions;
        self
    }

    /// Sets `max_in_flight` (at least 1).
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight.max(1);
        self
    }
}

#[derive(Clone)]
struct GatewayState {
    bus: Arc<dyn AgentBus>,
    auth: Authenticator,
    config: GatewayConfig,
    sessions: AgentSessions,
}

/// The gateway router: `GET /ws/agent` (see the module docs), with the default limits.
/// Sessions end when their token expires (on the system clock); use [`router_with_sessions`]
/// to also end them on uninstall or disable, or to share a registry and clock.
pub fn router(bus: Arc<dyn AgentBus>, authenticator: Authenticator) -> Router {
    router_with(bus, authenticator, GatewayConfig::default())
}

/// The gateway router with explicit limits; sessions end when their token expires (on the
/// system clock).
pub fn router_with(
    bus: Arc<dyn AgentBus>,
    authenticator: Authenticator,
    config: GatewayConfig,
) -> Router {
    let sessions = AgentSessions::new(Arc::new(openframe_core::SystemClock));
    router_with_sessions(bus, authenticator, config, sessions)
}

/// The gateway router whose connections are [`AgentSessions`] sessions: each ends when its
/// token expires or its machine is uninstalled or disabled (see the module docs).
pub fn router_with_sessions(
    bus: Arc<dyn AgentBus>,
    authenticator: Authenticator,
    config: GatewayConfig,
    sessions: AgentSessions,
) -> Router {
    gateway_router(GatewayState {
        bus,
        auth: authenticator,
        config,
        sessions,
    })
}

fn gateway_router(state: GatewayState) -> Router {
    Router::new()
        .route(GATEWAY_PATH, get(upgrade))
        .with_state(state)
}

fn unauthorized(description: &'static str) -> Response {
    AuthRejection {
        error: "invalid_token",
        description,
    }
    .into_response()
}

async fn upgrade(State(state): State<GatewayState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let principal = match state.auth.authenticate(&parts).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return unauthorized("an agent access token is required"),
        Err(rejection) => return rejection.into_response(),
    };
    let (tenant, machine_id) = match principal {
        Principal::Machine {
            ref tenant,
            ref machine_id,
            ..
        } if principal.has_role(AGENT_ROLE) => (tenant.clone(), machine_id.clone()),
        _ => return unauthorized("an agent access token is required"),
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let session = match state
        .sessions
        .open(&tenant, &machine_id, presented_token_expiry(&parts))
    {
        Ok(session) => Some(session),
        Err(_) => return unauthorized("the access token has expired"),
    };
    // The transport's own limit is a backstop above ours, so an oversized frame is read
    // whole and answered with a proper close code.
    let backstop = state
        .config
        .max_frame_bytes
        .saturating_mul(2)
        .max(64 * 1024);
    // Small per-connection buffers: tungstenite's defaults (128 KiB read buffer, zero-filled on
    // every read) cost ~130 KiB resident per agent, which dominates at 10,000 agents.
    ws.max_message_size(backstop)
        .max_frame_size(backstop)
        .read_buffer_size(CONNECTION_BUFFER)
        .write_buffer_size(CONNECTION_BUFFER)
        .on_upgrade(move |socket| {
            let conn = Connection {
                bus: state.bus,
                config: state.config,
                tenant,
                machine_id,
                pending: Arc::new(Mutex::new(HashMap::new())),
                next_delivery: Arc::new(AtomicU64::new(1)),
                subs: HashMap::new(),
                tasks: JoinSet::new(),
            };
            conn.run(socket, session)
        })
}

/// What the writer task sends.
enum Outbound {
    Frame(ServerFrame),
    Close(u16, &'static str),
}

/// Unsettled deliveries of a connection, by delivery id.
type Pending = Arc<Mutex<HashMap<u64, (Delivery, OwnedSemaphorePermit)>>>;

/// One agent connection.
struct Connection {
    bus: Arc<dyn AgentBus>,
    config: GatewayConfig,
    tenant: TenantId,
    machine_id: MachineId,
    pending: Pending,
    next_delivery: Arc<AtomicU64>,
    subs: HashMap<String, AbortHandle>,
    tasks: JoinSet<()>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("tenant", &self.tenant)
            .field("machine_id", &self.machine_id)
            .field("subscriptions", &self.subs.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    async fn run(mut self, socket: WebSocket, mut session: Option<Session>) {
        tracing::debug!(machine_id = %self.machine_id, tenant = %self.tenant, "agent connected");
        let (mut sink, mut stream) = socket.split();
        let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOUND_BUFFER);
        let writer = tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let result = match out {
                    Outbound::Frame(frame) => match serde_json::to_string(&frame) {
                        Ok(text) => sink.send(WsMessage::Text(text.into())).await,
                        Err(_) => continue,
                    },
                    Outbound::Close(code, reason) => {
                        let _ = sink
                            .send(WsMessage::Close(Some(CloseFrame {
                                code,
                                reason: reason.into(),
                            })))
                            .await;
                        break;
                    }
                };
                if result.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        loop {
            let incoming = tokio::select! {
                incoming = stream.next() => incoming,
                end = session_end(session.as_mut()) => {
                    tracing::info!(machine_id = %self.machine_id, reason = end.as_str(), "agent session ended by the server");
                    let _ = tx.send(Outbound::Close(CLOSE_SESSION_ENDED, end.as_str())).await;
                    break;
                }
            };
            let Some(incoming) = incoming else {
                break;
            };
            let text = match incoming {
                Ok(WsMessage::Text(text)) => text,
                Ok(WsMessage::Binary(_)) => {
                    let _ = tx
                        .send(Outbound::Close(
                            CLOSE_POLICY,
                            "binary frames are not accepted",
                        ))
                        .await;
                    break;
                }
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => continue,
                Ok(WsMessage::Close(_)) | Err(_) => break,
            };
            if text.len() > self.config.max_frame_bytes {
                tracing::info!(machine_id = %self.machine_id, size = text.len(), "agent frame too large; closing");
                let _ = tx
                    .send(Outbound::Close(CLOSE_TOO_BIG, "frame too large"))
                    .await;
                break;
            }
            let frame: ClientFrame = match serde_json::from_str(text.as_str()) {
                Ok(frame) => frame,
                Err(_) => {
                    tracing::info!(machine_id = %self.machine_id, "malformed agent frame; closing");
                    let _ = tx
                        .send(Outbound::Close(CLOSE_POLICY, "malformed frame"))
                        .await;
                    break;
                }
            };
            let rid = frame.rid();
            let answer = match self.handle(frame, &tx).await {
                Ok(()) => ServerFrame::Ok { rid },
                Err(error) => {
                    if matches!(error, Error::PermissionDenied) {
                        tracing::warn!(machine_id = %self.machine_id, tenant = %self.tenant, "agent frame refused: outside its machine's subjects");
                    }
                    ServerFrame::error(rid, None, &error)
                }
            };
            if tx.send(Outbound::Frame(answer)).await.is_err() {
                break;
            }
        }
        // Ends every subscription and consumer binding; unsettled deliveries are dropped and
        // so redelivered after their ack_wait.
        self.tasks.shutdown().await;
        self.pending.lock().await.clear();
        drop(tx);
        let _ = writer.await;
        tracing::debug!(machine_id = %self.machine_id, "agent disconnected");
    }

    fn allow(&self, access: Access, subject: &str) -> Result<()> {
        if machine_may(&self.machine_id, access, subject) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    fn check_new_sid(&mut self, sid: &str) -> Result<()> {
        if sid.is_empty() || sid.len() > MAX_SID_LEN {
            return Err(Error::invalid("sid", "must be 1 to 64 characters"));
        }
        // Forget subscriptions whose task ended (e.g. a consumer that was deleted).
        self.subs.retain(|_, handle| !handle.is_finished());
        if self.subs.contains_key(sid) {
            return Err(Error::conflict(
                "the sid is already in use on this connection",
            ));
        }
        if self.subs.len() >= self.config.max_subscriptions {
            return Err(Error::invalid(
                "sid",
                "too many subscriptions on this connection",
            ));
        }
        Ok(())
    }

    async fn handle(&mut self, frame: ClientFrame, tx: &mpsc::Sender<Outbound>) -> Result<()> {
        match frame {
            ClientFrame::Pub {
                subject,
                payload,
                headers,
                ..
            } => {
                let logs = subject == crate::subjects::AGENT_LOGS;
                if !logs {
                    self.allow(Access::Publish, &subject)?;
                }
                let payload = payload.decode()?;
                let mut headers = stamp_tenant(headers_from_wire(&headers), &self.tenant);
                if logs {
                    headers = stamp(headers, MACHINE_HEADER, self.machine_id.as_str());
                }
                self.bus.publish(&subject, payload, headers).await
            }
            ClientFrame::Sub { sid, subject, .. } => {
                self.allow(Access::Subscribe, &subject)?;
                self.check_new_sid(&sid)?;
                let mut subscription = self.bus.subscribe(&subject).await?;
                let tx = tx.clone();
                let task_sid = sid.clone();
                let handle = self.tasks.spawn(async move {
                    while let Some(message) = subscription.next().await {
                        if tx
                            .send(Outbound::Frame(msg_frame(&task_sid, message)))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                });
                self.subs.insert(sid, handle);
                Ok(())
            }
            ClientFrame::Unsub { sid, .. } => match self.subs.remove(&sid) {
                Some(handle) => {
                    handle.abort();
                    Ok(())
                }
                None => Err(Error::not_found("subscription")),
            },
            ClientFrame::Consume {
                sid,
                stream,
                durable,
                filter,
                deliver,
                ack_wait_ms,
                max_deliver,
                ..
            } => {
                self.allow(Access::Subscribe, &filter)?;
                if !durable.starts_with(&format!("machine_{}_", self.machine_id)) {
                    return Err(Error::PermissionDenied);
                }
                self.check_new_sid(&sid)?;
                let spec = ConsumerSpec::new(stream, durable)
                    .with_filter(filter)
                    .with_deliver(match deliver {
                        Some(WireDeliver::New) => DeliverPolicy::New,
                        Some(WireDeliver::All) | None => DeliverPolicy::All,
                    })
                    .with_ack_wait(ack_wait_ms.map_or(DEFAULT_ACK_WAIT, Duration::from_millis))
                    .with_max_deliver(max_deliver.unwrap_or(DEFAULT_MAX_DELIVER));
                spec.validate()?;
                let consumer = self.bus.durable_consumer(&spec).await?;
                let handle = self.tasks.spawn(consume(
                    consumer,
                    sid.clone(),
                    tx.clone(),
                    self.pending.clone(),
                    self.next_delivery.clone(),
                    Arc::new(Semaphore::new(self.config.max_in_flight)),
                ));
                self.subs.insert(sid, handle);
                Ok(())
            }
            ClientFrame::Ack { id, .. } => self.take(id).await?.ack().await,
            ClientFrame::Term { id, .. } => self.take(id).await?.term().await,
            ClientFrame::Nak { id, delay_ms, .. } => {
                self.take(id)
                    .await?
                    .nak(delay_ms.map(Duration::from_millis))
                    .await
            }
            ClientFrame::Progress { id, .. } => match self.pending.lock().await.get(&id) {
                Some((delivery, _)) => delivery.in_progress().await,
                None => Err(Error::not_found("delivery")),
            },
        }
    }

    /// Removes a pending delivery (releasing its in-flight slot once settled).
    async fn take(&self, id: u64) -> Result<Delivery> {
        self.pending
            .lock()
            .await
            .remove(&id)
            .map(|(delivery, _permit)| delivery)
            .ok_or_else(|| Error::not_found("delivery"))
    }
}

/// Replaces every `tenant` header (in any letter case) with the trusted tenant.
fn stamp_tenant(headers: Headers, tenant: &TenantId) -> Headers {
    stamp(headers, TENANT_HEADER, tenant.as_str())
}

/// Replaces every `name` header (in any letter case) with the trusted `value`.
fn stamp(headers: Headers, name: &'static str, value: &str) -> Headers {
    let mut stamped: Headers = headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .collect();
    stamped.insert(name, value);
    stamped
}

fn msg_frame(sid: &str, message: Message) -> ServerFrame {
    ServerFrame::Msg {
        sid: sid.to_owned(),
        subject: message.subject,
        payload: WirePayload::encode(&message.payload),
        headers: headers_to_wire(&message.headers),
    }
}

/// Forwards a durable consumer's deliveries, at most `slots` unsettled at a time.
async fn consume(
    mut consumer: crate::bus::DurableConsumer,
    sid: String,
    tx: mpsc::Sender<Outbound>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    slots: Arc<Semaphore>,
) {
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match consumer.next().await {
            Some(Ok(delivery)) => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let frame = ServerFrame::Delivery {
                    sid: sid.clone(),
                    id,
                    subject: delivery.message.subject.clone(),
                    payload: WirePayload::encode(&delivery.message.payload),
                    headers: headers_to_wire(&delivery.message.headers),
                    delivered: delivery.delivered,
                    max_deliver: delivery.max_deliver,
                };
                pending.lock().await.insert(id, (delivery, permit));
                if tx.send(Outbound::Frame(frame)).await.is_err() {
                    return;
                }
            }
            Some(Err(error)) => {
                tracing::warn!(%sid, error = %error, "durable consumer failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => {
                let error = Error::not_found("consumer");
                let _ = tx
                    .send(Outbound::Frame(ServerFrame::error(None, Some(sid), &error)))
                    .await;
                return;
            }
        }
    }
}
