//! The agent's connection loop: connect, subscribe, heartbeat, dispatch, reconnect.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use openframe_core::{Error, MachineId, Result, Secret};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::http::TokenManager;
use super::logs::{LogBatch, LogShipper};
use super::{AgentHandler, AgentStatus, AgentTiming};
use crate::bus::{AGENT_ACK_WAIT, agent_consumers};
use crate::executions::{CancelMessage, CommandMessage, ResultMessage, ScriptMessage};
use crate::gateway::protocol::{ClientFrame, ServerFrame, WireDeliver, WirePayload};
use crate::subjects::MachineSubjectKind;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SID_COMMANDS: &str = "commands";
const SID_SCRIPTS: &str = "scripts";
const SID_CANCEL: &str = "command-cancel";
const SID_TOOLS: &str = "tool-installation";

/// A result waiting to be acknowledged by the gateway.
#[derive(Clone)]
struct Outgoing {
    subject: String,
    payload: Vec<u8>,
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy)]
enum Settle {
    Ack,
    Nak,
    Term,
}

/// What handler tasks report back to the connection.
enum Event {
    Result(Outgoing),
    Settle { session: u64, id: u64, how: Settle },
}

/// What an answered request was.
enum Request {
    Setup(&'static str),
    Heartbeat,
    Result(Outgoing),
    Other,
}

enum End {
    Shutdown,
    Lost,
}

enum ConnectError {
    Unauthorized,
    Other(String),
}

/// The subjects of one machine.
struct Subjects {
    heartbeat: String,
    hostname: String,
    commands: String,
    scripts: String,
    cancel: String,
    command_results: String,
    script_results: String,
}

impl Subjects {
    fn new(id: &MachineId) -> Result<Self> {
        let s = |kind: MachineSubjectKind| kind.subject_for(id);
        Ok(Self {
            heartbeat: s(MachineSubjectKind::Heartbeat)?,
            hostname: s(MachineSubjectKind::Hostname)?,
            commands: s(MachineSubjectKind::CommandExecution)?,
            scripts: s(MachineSubjectKind::ScriptExecution)?,
            cancel: s(MachineSubjectKind::CommandCancel)?,
            command_results: s(MachineSubjectKind::CommandExecutionResult)?,
            script_results: s(MachineSubjectKind::ScriptExecutionResult)?,
        })
    }
}

/// Runs the agent until shutdown.
pub(crate) struct Runner {
    machine_id: MachineId,
    gateway: Url,
    hostname: String,
    timing: AgentTiming,
    tokens: TokenManager,
    handler: Arc<dyn AgentHandler>,
    status: watch::Sender<AgentStatus>,
    shutdown: watch::Receiver<bool>,
    subjects: Subjects,
    tool_consumer: Option<ClientFrame>,
    outbox: VecDeque<Outgoing>,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    tasks: JoinSet<()>,
    session: u64,
    next_rid: u64,
    logs: LogShipper,
    tenant_domain: String,
    /// Handler tasks still running, by execution id (for `command-cancel`).
    running: HashMap<String, tokio::task::AbortHandle>,
}

impl Runner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        machine_id: MachineId,
        gateway: Url,
        hostname: String,
        timing: AgentTiming,
        tokens: TokenManager,
        handler: Arc<dyn AgentHandler>,
        status: watch::Sender<AgentStatus>,
        shutdown: watch::Receiver<bool>,
        logs: LogShipper,
    ) -> Result<Self> {
        // As the original agent: the server host without a leading `api.`.
        let host = gateway.host_str().unwrap_or_default();
        let tenant_domain = host.strip_prefix("api.").unwrap_or(host).to_owned();
        let subjects = Subjects::new(&machine_id)?;
        let tools = MachineSubjectKind::ToolInstallation.subject_for(&machine_id)?;
        let tool_consumer = agent_consumers(&machine_id)?
            .into_iter()
            .find(|spec| spec.filter_subject.as_deref() == Some(tools.as_str()))
            .map(|spec| ClientFrame::Consume {
                rid: None,
                sid: SID_TOOLS.to_owned(),
                stream: spec.stream,
                durable: spec.durable_name,
                filter: tools.clone(),
                deliver: Some(WireDeliver::All),
                ack_wait_ms: Some(u64::try_from(AGENT_ACK_WAIT.as_millis()).unwrap_or(u64::MAX)),
                max_deliver: Some(spec.max_deliver),
            });
        let (events_tx, events) = mpsc::channel(256);
        Ok(Self {
            machine_id,
            gateway,
            hostname,
            timing,
            tokens,
            handler,
            status,
            shutdown,
            subjects,
            tool_consumer,
            outbox: VecDeque::new(),
            events_tx,
            events,
            tasks: JoinSet::new(),
            session: 0,
            next_rid: 0,
            logs,
            tenant_domain,
            running: HashMap::new(),
        })
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `delay`; `false` if shutdown came first.
    async fn pause(&mut self, delay: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = sleep(delay) => !self.stopping(),
            _ = stopped(&mut shutdown) => false,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut attempt = 0u32;
        while !self.stopping() {
            self.status.send_replace(AgentStatus::Connecting);
            let token = {
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    token = self.tokens.access_token() => token,
                    _ = stopped(&mut shutdown) => break,
                }
            };
            let token = match token {
                Ok(token) => token,
                Err(error) => {
                    let delay = self.timing.backoff(attempt);
                    tracing::warn!(error = %error, retry_in = ?delay, "agent token request failed");
                    attempt = attempt.saturating_add(1);
                    if !self.pause(delay).await {
                        break;
                    }
                    continue;
                }
            };
            match connect(&self.gateway, &token).await {
                Ok(ws) => {
                    attempt = 0;
                    tracing::info!(machine_id = %self.machine_id, "agent connected to the gateway");
                    if let End::Shutdown = self.session(ws).await {
                        break;
                    }
                    tracing::info!(machine_id = %self.machine_id, "agent connection lost");
                }
                Err(ConnectError::Unauthorized) => {
                    tracing::warn!("the gateway refused the agent token; renewing it");
                    self.tokens.invalidate();
                }
                Err(ConnectError::Other(reason)) => {
                    tracing::warn!(%reason, "agent connection failed");
                }
            }
            let delay = self.timing.backoff(attempt);
            attempt = attempt.saturating_add(1);
            if !self.pause(delay).await {
                break;
            }
        }
        self.tasks.shutdown().await;
        self.status.send_replace(AgentStatus::Stopped);
    }

    fn rid(&mut self) -> u64 {
        self.next_rid += 1;
        self.next_rid
    }

    /// One connection, until it is lost or the agent shuts down.
    async fn session(&mut self, ws: Ws) -> End {
        self.session += 1;
        let session = self.session;
        let (mut sink, mut stream) = ws.split();
        let mut requests: HashMap<u64, Request> = HashMap::new();
        let mut setup: HashSet<u64> = HashSet::new();

        // Subscriptions, the hostname, and the results left over from earlier connections.
        let mut first: Vec<(ClientFrame, Request)> = vec![
            (
                sub_frame(SID_COMMANDS, &self.subjects.commands),
                Request::Setup(SID_COMMANDS),
            ),
            (
                sub_frame(SID_SCRIPTS, &self.subjects.scripts),
                Request::Setup(SID_SCRIPTS),
            ),
            (
                sub_frame(SID_CANCEL, &self.subjects.cancel),
                Request::Setup(SID_CANCEL),
            ),
        ];
        if let Some(consume) = self.tool_consumer.clone() {
            first.push((consume, Request::Setup(SID_TOOLS)));
        }
        let hostname = serde_json::json!({ "hostname": self.hostname }).to_string();
        first.push((
            pub_frame(&self.subjects.hostname, &double_encoded(&hostname)),
            Request::Other,
        ));
        while let Some(item) = self.outbox.pop_front() {
            let frame = pub_frame(&item.subject, &item.payload);
            first.push((frame, Request::Result(item)));
        }
        for (mut frame, request) in first {
            let rid = self.rid();
            set_rid(&mut frame, rid);
            if let Request::Setup(_) = request {
                setup.insert(rid);
            }
            requests.insert(rid, request);
            if send(&mut sink, &frame).await.is_err() {
                self.requeue(requests);
                return End::Lost;
            }
        }

        let mut shutdown = self.shutdown.clone();
        let mut next_heartbeat = Instant::now() + self.timing.next_heartbeat();
        let mut heartbeat_unanswered = false;
        let mut retry_later: Vec<(Instant, Outgoing)> = Vec::new();
        let mut next_logs = Instant::now() + self.timing.log_interval;
        let far = || Instant::now() + Duration::from_secs(86_400);
        let end = loop {
            let renew_at = self.tokens.renew_at().unwrap_or_else(far);
            let retry_at = retry_later
                .iter()
                .map(|(at, _)| *at)
                .min()
                .unwrap_or_else(far);
            tokio::select! {
                _ = stopped(&mut shutdown) => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    break End::Shutdown;
                }
                incoming = stream.next() => {
                    let text = match incoming {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break End::Lost,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(frame) = serde_json::from_str::<ServerFrame>(text.as_str()) else {
                        tracing::warn!("malformed frame from the gateway ignored");
                        continue;
                    };
                    match frame {
                        ServerFrame::Ok { rid: Some(rid) } => {
                            if let Some(Request::Heartbeat) = requests.remove(&rid) {
                                heartbeat_unanswered = false;
                            }
                            if setup.remove(&rid) && setup.is_empty() {
                                self.status.send_replace(AgentStatus::Connected);
                            }
                        }
                        ServerFrame::Err { rid: Some(rid), code, message, .. } => {
                            setup.remove(&rid);
                            match requests.remove(&rid) {
                                Some(Request::Result(item)) if retryable(&code) => {
                                    retry_later.push((Instant::now() + self.timing.result_retry, item));
                                }
                                Some(Request::Result(item)) => {
                                    tracing::warn!(%code, %message, subject = %item.subject, "the gateway refused a result; dropped");
                                }
                                Some(Request::Setup(what)) => {
                                    tracing::warn!(%code, %message, what, "the gateway refused a subscription");
                                    if setup.is_empty() {
                                        self.status.send_replace(AgentStatus::Connected);
                                    }
                                }
                                Some(Request::Heartbeat) => heartbeat_unanswered = false,
                                _ => tracing::debug!(%code, "the gateway refused a request"),
                            }
                        }
                        ServerFrame::Err { code, message, sid, .. } => {
                            tracing::warn!(%code, %message, ?sid, "gateway error");
                        }
                        ServerFrame::Msg { sid, payload, .. } => self.dispatch(&sid, &payload),
                        ServerFrame::Delivery { sid, id, payload, .. } if sid == SID_TOOLS => {
                            self.install(session, id, &payload);
                        }
                        ServerFrame::Ok { .. } | ServerFrame::Delivery { .. } => {}
                    }
                }
                Some(event) = self.events.recv() => {
                    let (frame, request) = match event {
                        Event::Result(item) => (pub_frame(&item.subject, &item.payload), Request::Result(item)),
                        Event::Settle { session: s, .. } if s != session => continue,
                        Event::Settle { id, how, .. } => {
                            let frame = match how {
                                Settle::Ack => ClientFrame::Ack { rid: None, id },
                                Settle::Nak => ClientFrame::Nak { rid: None, id, delay_ms: None },
                                Settle::Term => ClientFrame::Term { rid: None, id },
                            };
                            (frame, Request::Other)
                        }
                    };
                    if !self.request(&mut sink, &mut requests, frame, request).await {
                        break End::Lost;
                    }
                }
                _ = sleep_until(next_heartbeat) => {
                    if heartbeat_unanswered {
                        tracing::warn!("the gateway did not answer the last heartbeat");
                        break End::Lost;
                    }
                    let frame = pub_frame(&self.subjects.heartbeat, &double_encoded("{}"));
                    if !self.request(&mut sink, &mut requests, frame, Request::Heartbeat).await {
                        break End::Lost;
                    }
                    heartbeat_unanswered = true;
                    next_heartbeat = Instant::now() + self.timing.next_heartbeat();
                }
                _ = sleep_until(next_logs) => {
                    next_logs = Instant::now() + self.timing.log_interval;
                    let mut lost = false;
                    while let Some(item) = self.log_batch() {
                        let frame = pub_frame(&item.subject, &item.payload);
                        if !self.request(&mut sink, &mut requests, frame, Request::Result(item)).await {
                            lost = true;
                            break;
                        }
                    }
                    if lost {
                        break End::Lost;
                    }
                }
                _ = sleep_until(renew_at) => {
                    if let Err(error) = self.tokens.renew().await {
                        tracing::warn!(error = %error, "agent token renewal failed; will retry");
                        // Retry later rather than spin; the current connection stays up.
                        self.tokens.postpone(self.timing.backoff(2));
                    }
                }
                _ = sleep_until(retry_at) => {
                    let now = Instant::now();
                    let (due, later): (Vec<_>, Vec<_>) = retry_later.drain(..).partition(|(at, _)| *at <= now);
                    retry_later = later;
                    for (_, item) in due {
                        let frame = pub_frame(&item.subject, &item.payload);
                        if !self.request(&mut sink, &mut requests, frame, Request::Result(item)).await {
                            break;
                        }
                    }
                }
            }
        };
        self.outbox
            .extend(retry_later.into_iter().map(|(_, item)| item));
        self.requeue(requests);
        end
    }

    /// The next batch of buffered log lines for `agents.logs`, if any.
    fn log_batch(&self) -> Option<Outgoing> {
        let lines = self.logs.take_batch();
        if lines.is_empty() {
            return None;
        }
        let batch = LogBatch {
            machine_id: self.machine_id.as_str(),
            hostname: &self.hostname,
            tenant_domain: &self.tenant_domain,
            logs: lines,
        };
        let payload = serde_json::to_vec(&batch).ok()?;
        Some(Outgoing {
            subject: crate::subjects::AGENT_LOGS.to_owned(),
            payload,
        })
    }

    /// Puts the results that were not acknowledged back in the outbox (oldest first).
    fn requeue(&mut self, requests: HashMap<u64, Request>) {
        let mut unacked: Vec<(u64, Outgoing)> = requests
            .into_iter()
            .filter_map(|(rid, r)| match r {
                Request::Result(item) => Some((rid, item)),
                _ => None,
            })
            .collect();
        unacked.sort_by_key(|(rid, _)| *rid);
        for (_, item) in unacked.into_iter().rev() {
            self.outbox.push_front(item);
        }
    }

    /// Sends a frame with a fresh request id; `false` if the connection failed (a result is
    /// then kept for the next connection).
    async fn request(
        &mut self,
        sink: &mut futures::stream::SplitSink<Ws, WsMessage>,
        requests: &mut HashMap<u64, Request>,
        mut frame: ClientFrame,
        request: Request,
    ) -> bool {
        let rid = self.rid();
        set_rid(&mut frame, rid);
        requests.insert(rid, request);
        send(sink, &frame).await.is_ok()
    }

    /// Runs a command or script handler in the background.
    fn dispatch(&mut self, sid: &str, payload: &WirePayload) {
        let Some(value) = payload.decode().ok().and_then(|b| decode_json(&b)) else {
            tracing::warn!(%sid, "malformed message from the server ignored");
            return;
        };
        /// What a message asks for.
        enum Run {
            Command(CommandMessage),
            Script(ScriptMessage),
        }
        if sid == SID_CANCEL {
            self.cancel(value);
            return;
        }
        let (run, subject) = match sid {
            SID_COMMANDS => (
                serde_json::from_value(value).map(Run::Command),
                &self.subjects.command_results,
            ),
            SID_SCRIPTS => (
                serde_json::from_value(value).map(Run::Script),
                &self.subjects.script_results,
            ),
            _ => return,
        };
        let Ok(run) = run else {
            tracing::warn!(%sid, "malformed request from the server ignored");
            return;
        };
        let execution_id = match &run {
            Run::Command(command) => command.execution_id.clone(),
            Run::Script(script) => script.execution_id.clone(),
        };
        let (handler, events) = (self.handler.clone(), self.events_tx.clone());
        let (subject, machine) = (subject.clone(), self.machine_id.to_string());
        let task = self.tasks.spawn(async move {
            let result = match run {
                Run::Command(command) => handler.on_command(command).await,
                Run::Script(script) => handler.on_script(script).await,
            };
            report(&events, subject, machine, result).await;
        });
        self.running.retain(|_, task| !task.is_finished());
        self.running.insert(execution_id, task);
    }

    /// `command-cancel`: stops the handler of that execution (its future is dropped, so no
    /// result is sent; the server has already recorded the cancellation).
    fn cancel(&mut self, value: serde_json::Value) {
        let Ok(cancel) = serde_json::from_value::<CancelMessage>(value) else {
            tracing::warn!("malformed cancellation from the server ignored");
            return;
        };
        if let Some(task) = self.running.remove(&cancel.execution_id) {
            task.abort();
            tracing::info!(execution_id = %cancel.execution_id, "execution cancelled by the server");
        }
    }

    /// Runs the tool installation handler for a delivery in the background.
    fn install(&mut self, session: u64, id: u64, payload: &WirePayload) {
        let handler = self.handler.clone();
        let events = self.events_tx.clone();
        let value = payload.decode().ok().and_then(|b| decode_json(&b));
        self.tasks.spawn(async move {
            let how = match value {
                None => {
                    tracing::warn!("malformed tool installation request terminated");
                    Settle::Term
                }
                Some(value) => match handler.on_tool_installation(value).await {
                    Ok(()) => Settle::Ack,
                    Err(Error::InvalidInput { .. }) => Settle::Term,
                    Err(error) => {
                        tracing::warn!(error = %error, "tool installation failed; asking for redelivery");
                        Settle::Nak
                    }
                },
            };
            let _ = events.send(Event::Settle { session, id, how }).await;
        });
    }
}

impl TokenManager {
    /// Moves the next renewal `delay` into the future.
    pub(crate) fn postpone(&mut self, delay: Duration) {
        self.set_renew_at(Instant::now() + delay);
    }
}

/// Resolves once shutdown is asked for (or the handle is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}

async fn report(
    events: &mpsc::Sender<Event>,
    subject: String,
    machine: String,
    mut result: ResultMessage,
) {
    result.machine_id = Some(machine);
    match serde_json::to_vec(&result) {
        Ok(payload) => {
            let _ = events
                .send(Event::Result(Outgoing { subject, payload }))
                .await;
        }
        Err(_) => tracing::warn!("unserializable result dropped"),
    }
}

fn retryable(code: &str) -> bool {
    matches!(
        code,
        "UNAVAILABLE" | "RATE_LIMITED" | "DATABASE_ERROR" | "INTERNAL_ERROR" | "CONFLICT"
    )
}

/// Parses a JSON payload, also when it is double-encoded as a JSON string.
fn decode_json(bytes: &[u8]) -> Option<serde_json::Value> {
    match serde_json::from_slice(bytes).ok()? {
        serde_json::Value::String(inner) => serde_json::from_str(&inner).ok(),
        other => Some(other),
    }
}

/// `json` as a JSON string (the original agent double-encodes heartbeats and hostnames).
fn double_encoded(json: &str) -> Vec<u8> {
    serde_json::Value::String(json.to_owned())
        .to_string()
        .into_bytes()
}

fn sub_frame(sid: &str, subject: &str) -> ClientFrame {
    ClientFrame::Sub {
        rid: None,
        sid: sid.to_owned(),
        subject: subject.to_owned(),
    }
}

fn pub_frame(subject: &str, payload: &[u8]) -> ClientFrame {
    ClientFrame::Pub {
        rid: None,
        subject: subject.to_owned(),
        payload: WirePayload::encode(payload),
        headers: Default::default(),
    }
}

fn set_rid(frame: &mut ClientFrame, id: u64) {
    match frame {
        ClientFrame::Pub { rid, .. }
        | ClientFrame::Sub { rid, .. }
        | ClientFrame::Unsub { rid, .. }
        | ClientFrame::Consume { rid, .. }
        | ClientFrame::Ack { rid, .. }
        | ClientFrame::Nak { rid, .. }
        | ClientFrame::Term { rid, .. }
        | ClientFrame::Progress { rid, .. } => *rid = Some(id),
    }
}

async fn send(
    sink: &mut futures::stream::SplitSink<Ws, WsMessage>,
    frame: &ClientFrame,
) -> std::result::Result<(), ()> {
    let text = serde_json::to_string(frame).map_err(|_| ())?;
    sink.send(WsMessage::Text(text.into()))
        .await
        .map_err(|_| ())
}

/// Opens the WebSocket with the token in `Authorization` (never in the URL, which may be
/// logged).
async fn connect(gateway: &Url, token: &Secret) -> std::result::Result<Ws, ConnectError> {
    let mut request = gateway
        .as_str()
        .into_client_request()
        .map_err(|_| ConnectError::Other("invalid gateway URL".into()))?;
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| ConnectError::Unauthorized)?;
    value.set_sensitive(true);
    request.headers_mut().insert(header::AUTHORIZATION, value);
    // Small buffers: the defaults (128 KiB, zero-filled on every read) dominate an agent's memory.
    let config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024);
    match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response))
            if response.status() == StatusCode::UNAUTHORIZED =>
        {
            Err(ConnectError::Unauthorized)
        }
        Err(tungstenite::Error::Http(response)) => Err(ConnectError::Other(format!(
            "the gateway answered {}",
            response.status().as_u16()
        ))),
        Err(_) => Err(ConnectError::Other("the gateway is unreachable".into())),
    }
}
