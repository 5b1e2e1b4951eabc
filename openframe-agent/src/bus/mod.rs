//! The agent bus: how the server and agents exchange messages.
//!
//! [`AgentBus`] has the two delivery guarantees the original agent protocol relies on:
//!
//! - **ephemeral** ([`AgentBus::publish`], [`AgentBus::subscribe`]): core NATS semantics. A
//!   message reaches the subscriptions whose pattern matches at the moment it is published and
//!   is lost if nobody listens. Heartbeats, commands, scripts and their results travel this way.
//! - **durable** ([`AgentBus::publish_durable`], [`AgentBus::durable_consumer`]): JetStream
//!   semantics. A message whose subject a stream captures is stored (with a per-stream sequence
//!   number) and handed to durable consumers with explicit acknowledgement: an unacknowledged
//!   message is redelivered after the consumer's `ack_wait`, up to `max_deliver` times. Tool
//!   installations, uninstalls, updates and the agent's facts (tool connections, installed
//!   agents, hostname) travel this way.
//!
//! A stream captures *every* message on its subjects, also the ones published with
//! [`AgentBus::publish`] (the original agent publishes its hostname and tool connections as core
//! messages into streams); [`AgentBus::publish_durable`] additionally waits for the store's
//! acknowledgement and fails if no stream captures the subject. Every durable publish is also
//! delivered to matching ephemeral subscriptions.
//!
//! Backends: [`memory::InMemoryAgentBus`] (in-process, the embedded default) and, with feature
//! `nats`, `nats::NatsAgentBus` (NATS JetStream). Both pass the same conformance suite
//! (`testkit`, feature `testkit`). [`agent_streams`] is the stream set the original agent
//! expects the server to create at start; [`agent_consumers`] are the durable consumers an agent
//! binds to.
//!
//! ```
//! use std::time::Duration;
//! use futures::StreamExt;
//! use openframe_agent::bus::{AgentBus, ConsumerSpec, Headers, StreamSpec, memory::InMemoryAgentBus};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let bus = InMemoryAgentBus::new();
//! bus.ensure_streams(&[StreamSpec::new("JOBS", ["jobs.>"])]).await.unwrap();
//!
//! let ack = bus.publish_durable("jobs.build", b"{}".to_vec(), Headers::new()).await.unwrap();
//! assert_eq!((ack.stream.as_str(), ack.sequence), ("JOBS", 1));
//!
//! let spec = ConsumerSpec::new("JOBS", "builder").with_ack_wait(Duration::from_secs(30));
//! let mut consumer = bus.durable_consumer(&spec).await.unwrap();
//! let delivery = consumer.next().await.unwrap().unwrap();
//! assert_eq!(delivery.message.subject, "jobs.build");
//! assert_eq!(delivery.delivered, 1);
//! delivery.ack().await.unwrap();
//! # });
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use futures::stream::BoxStream;
use openframe_core::{Error, Result};

pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
mod streams;
#[cfg(feature = "testkit")]
pub mod testkit;
mod trie;

pub use streams::{AGENT_ACK_WAIT, agent_consumers, agent_streams, stream_names};

use crate::subjects::{validate_pattern, validate_subject};

/// Largest message (payload plus encoded headers) the in-memory bus accepts by default; the
/// same as a NATS server's default `max_payload`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Longest accepted `ack_wait` and `nak` delay.
pub const MAX_ACK_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest stream name, durable name or queue group name.
pub const MAX_NAME_LEN: usize = 128;

/// Shortest accepted stream `max_age` (a NATS server refuses shorter ones).
pub const MIN_MAX_AGE: Duration = Duration::from_millis(100);

pub use openframe_core::Headers;

/// A message as a subscriber or consumer receives it. Its `Debug` shows the payload's size,
/// never its content (payloads carry scripts, environment variables and enrollment secrets).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The concrete subject it was published on.
    pub subject: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The headers it was published with.
    pub headers: Headers,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("subject", &self.subject)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("headers", &self.headers)
            .finish()
    }
}

/// Where a durable publish was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    /// The stream that captured the subject.
    pub stream: String,
    /// The message's sequence number in that stream (1 for the first message; increasing).
    pub sequence: u64,
}

/// How a stream stores its messages (the in-memory bus keeps everything in memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StreamStorage {
    /// On disk (survives a server restart). The default.
    #[default]
    File,
    /// In memory.
    Memory,
}

/// A stream: a named store capturing every message published on its subjects.
///
/// Retention is by limits: messages stay after they are acknowledged and are discarded (oldest
/// first) when older than `max_age` or beyond `max_messages` in the stream or
/// `max_messages_per_subject` on one subject. `None` means unlimited.
///
/// ```
/// use std::time::Duration;
/// use openframe_agent::bus::StreamSpec;
/// let spec = StreamSpec::new("AGENT_LOGS", ["agents.logs"])
///     .with_max_age(Duration::from_secs(86_400))
///     .with_max_messages(100_000);
/// assert!(spec.validate().is_ok());
/// assert!(StreamSpec::new("bad.name", ["x"]).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamSpec {
    /// The stream name: 1 to 128 ASCII letters, digits, `-` and `_`.
    pub name: String,
    /// The subjects (patterns allowed) it captures; at least one, not overlapping each other
    /// nor another stream's.
    pub subjects: Vec<String>,
    /// Discard messages older than this (at least [`MIN_MAX_AGE`]).
    pub max_age: Option<Duration>,
    /// Keep at most this many messages (at least 1).
    pub max_messages: Option<u64>,
    /// Keep at most this many messages per subject (at least 1).
    pub max_messages_per_subject: Option<u64>,
    /// Where the messages are stored.
    pub storage: StreamStorage,
}

impl StreamSpec {
    /// A file-backed stream without limits.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        subjects: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            name: name.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
            max_age: None,
            max_messages: None,
            max_messages_per_subject: None,
            storage: StreamStorage::File,
        }
    }

    /// Sets `max_age`.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Sets `max_messages`.
    pub fn with_max_messages(mut self, max_messages: u64) -> Self {
        self.max_messages = Some(max_messages);
        self
    }

    /// Sets `max_messages_per_subject`.
    pub fn with_max_messages_per_subject(mut self, max: u64) -> Self {
        self.max_messages_per_subject = Some(max);
        self
    }

    /// Sets the storage.
    pub fn with_storage(mut self, storage: StreamStorage) -> Self {
        self.storage = storage;
        self
    }

    /// Checks the spec on its own (`InvalidInput`); overlaps with other streams are checked by
    /// [`AgentBus::ensure_streams`].
    pub fn validate(&self) -> Result<()> {
        validate_name("stream", &self.name)?;
        if self.subjects.is_empty() {
            return Err(Error::invalid(
                "subjects",
                "a stream needs at least one subject",
            ));
        }
        let mut patterns = Vec::with_capacity(self.subjects.len());
        for subject in &self.subjects {
            patterns.push(
                validate_pattern(subject).map_err(|e| Error::invalid("subjects", reason_of(&e)))?,
            );
        }
        for (i, a) in patterns.iter().enumerate() {
            if patterns[..i]
                .iter()
                .any(|b| crate::subjects::tokens_overlap(a, b))
            {
                return Err(Error::invalid(
                    "subjects",
                    "a stream's subjects must not overlap",
                ));
            }
        }
        if self.max_age.is_some_and(|age| age < MIN_MAX_AGE) {
            return Err(Error::invalid("maxAge", "must be at least 100 ms"));
        }
        if self
            .max_age
            .is_some_and(|age| age.as_nanos() > i64::MAX as u128)
        {
            return Err(Error::invalid("maxAge", "is too large"));
        }
        for (field, limit) in [
            ("maxMessages", self.max_messages),
            ("maxMessagesPerSubject", self.max_messages_per_subject),
        ] {
            if limit.is_some_and(|n| n == 0 || n > i64::MAX as u64) {
                return Err(Error::invalid(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Where a new durable consumer starts in its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DeliverPolicy {
    /// From the first message the stream still holds. The default.
    #[default]
    All,
    /// Only messages published after the consumer was first created.
    New,
}

/// A durable consumer: a named cursor over a stream (optionally filtered) with explicit
/// acknowledgement.
///
/// The durable state lives in the bus: binding again with the same `stream` and `durable_name`
/// continues where the consumer left off, and several bindings at once share the work (each
/// message goes to one of them). Binding with a different `filter_subject` or `deliver` than the
/// existing consumer has is a `Conflict`; a different `ack_wait` or `max_deliver` updates it.
///
/// ```
/// use std::time::Duration;
/// use openframe_agent::bus::{ConsumerSpec, DeliverPolicy};
/// let spec = ConsumerSpec::new("TOOL_CONNECTIONS", "tool-connection-processor")
///     .with_filter("machine.*.tool-connection")
///     .with_ack_wait(Duration::from_secs(30))
///     .with_max_deliver(50);
/// assert_eq!(spec.deliver, DeliverPolicy::All);
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerSpec {
    /// The stream to consume.
    pub stream: String,
    /// The durable name: 1 to 128 ASCII letters, digits, `-` and `_`.
    pub durable_name: String,
    /// Only messages on subjects matching this pattern (which must lie within the stream's
    /// subjects); `None` for the whole stream.
    pub filter_subject: Option<String>,
    /// Where a new consumer starts.
    pub deliver: DeliverPolicy,
    /// How long a delivery may stay unacknowledged before it is redelivered (1 ms to 24 h).
    pub ack_wait: Duration,
    /// How many times a message is delivered at most (at least 1).
    pub max_deliver: u32,
}

impl ConsumerSpec {
    /// A consumer of the whole stream, [`DeliverPolicy::All`], `ack_wait` 30 s and
    /// `max_deliver` 50 (the original server's consumer settings).
    pub fn new(stream: impl Into<String>, durable_name: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            durable_name: durable_name.into(),
            filter_subject: None,
            deliver: DeliverPolicy::All,
            ack_wait: Duration::from_secs(30),
            max_deliver: 50,
        }
    }

    /// Sets the filter subject.
    pub fn with_filter(mut self, filter_subject: impl Into<String>) -> Self {
        self.filter_subject = Some(filter_subject.into());
        self
    }

    /// Sets the deliver policy.
    pub fn with_deliver(mut self, deliver: DeliverPolicy) -> Self {
        self.deliver = deliver;
        self
    }

    /// Sets `ack_wait`.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Sets `max_deliver`.
    pub fn with_max_deliver(mut self, max_deliver: u32) -> Self {
        self.max_deliver = max_deliver;
        self
    }

    /// Checks the spec on its own (`InvalidInput`); whether the stream exists and the filter
    /// fits it is checked by [`AgentBus::durable_consumer`].
    pub fn validate(&self) -> Result<()> {
        validate_name("stream", &self.stream)?;
        validate_name("durableName", &self.durable_name)?;
        if let Some(filter) = &self.filter_subject {
            validate_pattern(filter).map_err(|e| Error::invalid("filterSubject", reason_of(&e)))?;
        }
        if self.ack_wait < Duration::from_millis(1) || self.ack_wait > MAX_ACK_WAIT {
            return Err(Error::invalid("ackWait", "must be between 1 ms and 24 h"));
        }
        if self.max_deliver == 0 {
            return Err(Error::invalid("maxDeliver", "must be at least 1"));
        }
        Ok(())
    }
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// Processed: never deliver it again.
    Ack,
    /// Not processed: redeliver it (after the delay, or at once), counting toward `max_deliver`.
    Nak(Option<Duration>),
    /// Never deliver it again, although it was not processed (e.g. malformed).
    Term,
    /// Still working on it: restart the `ack_wait` timer.
    InProgress,
}

/// Settles deliveries for a backend; implementors of [`AgentBus`] provide one per delivery.
#[async_trait]
pub trait DeliveryAcker: Send + Sync + fmt::Debug {
    /// Sends `kind` for this delivery. Settling a delivery whose consumer or stream is gone is
    /// not an error.
    async fn settle(&self, kind: AckKind) -> Result<()>;
}

/// One delivery of a stored message to a durable consumer. Settle it with [`Delivery::ack`],
/// [`Delivery::nak`] or [`Delivery::term`]; dropping it unsettled leaves it to be redelivered
/// after `ack_wait`.
#[derive(Debug)]
#[non_exhaustive]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// Which delivery of this message this is: 1 on the first delivery.
    pub delivered: u32,
    /// The consumer's `max_deliver`: when `delivered` reaches it, this is the last attempt.
    pub max_deliver: u32,
    /// The stream that stored it.
    pub stream: String,
    /// The message's sequence number in the stream.
    pub stream_sequence: u64,
    acker: Box<dyn DeliveryAcker>,
}

impl Delivery {
    /// A delivery (for backend implementors).
    pub fn new(
        message: Message,
        stream: impl Into<String>,
        stream_sequence: u64,
        delivered: u32,
        max_deliver: u32,
        acker: Box<dyn DeliveryAcker>,
    ) -> Self {
        Self {
            message,
            delivered,
            max_deliver,
            stream: stream.into(),
            stream_sequence,
            acker,
        }
    }

    /// Whether this is the last delivery the consumer will make of this message, so a handler
    /// can degrade gracefully instead of failing again.
    pub fn is_last_attempt(&self) -> bool {
        self.delivered >= self.max_deliver
    }

    /// Acknowledges: the message will not be delivered again.
    pub async fn ack(self) -> Result<()> {
        self.acker.settle(AckKind::Ack).await
    }

    /// Asks for redelivery, after `delay` (at most 24 h) or at once. Once `max_deliver`
    /// deliveries were made, it is not delivered again.
    pub async fn nak(self, delay: Option<Duration>) -> Result<()> {
        if delay.is_some_and(|d| d > MAX_ACK_WAIT) {
            return Err(Error::invalid("delay", "must be at most 24 h"));
        }
        self.acker.settle(AckKind::Nak(delay)).await
    }

    /// Terminates: the message will not be delivered again although it was not processed.
    pub async fn term(self) -> Result<()> {
        self.acker.settle(AckKind::Term).await
    }

    /// Restarts the `ack_wait` timer, for long work (the original agent does this every 60 s
    /// during tool installs).
    pub async fn in_progress(&self) -> Result<()> {
        self.acker.settle(AckKind::InProgress).await
    }
}

/// An ephemeral subscription: a [`Stream`] of the messages published on matching subjects
/// after it was created. Dropping it unsubscribes.
///
/// A subscription is bounded: when its consumer falls too far behind, messages are dropped
/// (ephemeral delivery is lossy by contract) rather than blocking publishers. See each backend
/// for its policy.
pub struct Subscription {
    pattern: String,
    inner: BoxStream<'static, Message>,
}

impl Subscription {
    /// A subscription to `pattern` yielding `messages` (for backend implementors).
    pub fn new(
        pattern: impl Into<String>,
        messages: impl Stream<Item = Message> + Send + 'static,
    ) -> Self {
        Self {
            pattern: pattern.into(),
            inner: Box::pin(messages),
        }
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Message;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A binding to a durable consumer: a [`Stream`] of deliveries. It yields `Err` for transient
/// backend failures (and keeps going) and ends when the consumer or its stream is deleted.
pub struct DurableConsumer {
    stream: String,
    durable_name: String,
    inner: BoxStream<'static, Result<Delivery>>,
}

impl DurableConsumer {
    /// A binding to the consumer `spec` describes, yielding `deliveries` (for backend
    /// implementors).
    pub fn new(
        spec: &ConsumerSpec,
        deliveries: impl Stream<Item = Result<Delivery>> + Send + 'static,
    ) -> Self {
        Self {
            stream: spec.stream.clone(),
            durable_name: spec.durable_name.clone(),
            inner: Box::pin(deliveries),
        }
    }

    /// The stream consumed.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// The durable name.
    pub fn durable_name(&self) -> &str {
        &self.durable_name
    }
}

impl fmt::Debug for DurableConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableConsumer")
            .field("stream", &self.stream)
            .field("durable_name", &self.durable_name)
            .finish_non_exhaustive()
    }
}

impl Stream for DurableConsumer {
    type Item = Result<Delivery>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Delivery>>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The message bus between the server and its agents. Pass it as `Arc<dyn AgentBus>`.
///
/// Subjects follow the NATS grammar ([`crate::subjects::validate_subject`]); patterns may use
/// `*` (one token) and `>` (one or more trailing tokens). Malformed subjects, patterns, names,
/// specs and headers, and oversized messages, are `InvalidInput`; driver failures are
/// `Backend`. Messages published on one bus are delivered to one subscriber in publish order.
#[async_trait]
pub trait AgentBus: Send + Sync + fmt::Debug + 'static {
    /// Publishes ephemerally: matching subscriptions get it, nobody else; a stream capturing the
    /// subject stores it too. Returns once the message is handed to the bus.
    async fn publish(&self, subject: &str, payload: Vec<u8>, headers: Headers) -> Result<()>;

    /// Publishes into the stream capturing `subject` and waits for it to be stored (matching
    /// subscriptions get it too). `NotFound` (`stream`) if no stream captures the subject.
    async fn publish_durable(
        &self,
        subject: &str,
        payload: Vec<u8>,
        headers: Headers,
    ) -> Result<PublishAck>;

    /// Subscribes to `pattern`. Publishes made on this bus after this returns are delivered.
    async fn subscribe(&self, pattern: &str) -> Result<Subscription>;

    /// Subscribes to `pattern` as a member of the queue `group`: each message goes to one
    /// member of each group (plain subscriptions still get every message), so server replicas
    /// can share a listener. `group` is a name like a durable name.
    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription>;

    /// Creates the streams that do not exist and updates the others to the specs (idempotent).
    /// `InvalidInput` for a bad spec, duplicate names or overlapping subjects among `specs`;
    /// `Conflict` if a spec's subjects overlap a stream not being updated to something else, or
    /// if a backend cannot change an existing stream's storage. Invalid input changes nothing;
    /// after a `Conflict` a backend may have applied the specs before the failing one (NATS
    /// applies them one by one; the in-memory bus applies all or nothing).
    async fn ensure_streams(&self, specs: &[StreamSpec]) -> Result<()>;

    /// Deletes a stream with its messages and consumers; `false` if there was none.
    async fn delete_stream(&self, name: &str) -> Result<bool>;

    /// Deletes a durable consumer with its state (e.g. a decommissioned machine's consumers);
    /// its bindings end. `false` if there was none; `NotFound` (`stream`) if the stream does
    /// not exist.
    async fn delete_consumer(&self, stream: &str, durable_name: &str) -> Result<bool>;

    /// Binds to the durable consumer `spec` describes, creating it if needed. `NotFound`
    /// (`stream`) if the stream does not exist, `InvalidInput` if the filter matches none of its
    /// subjects, `Conflict` if the consumer exists with another filter or deliver policy.
    async fn durable_consumer(&self, spec: &ConsumerSpec) -> Result<DurableConsumer>;
}

/// Checks a stream, durable or queue group name.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(field, "must be 1 to 128 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::invalid(
            field,
            "may contain only ASCII letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// Checks a set of stream specs for `ensure_streams`: each valid, names unique, subjects of
/// different specs not overlapping.
pub(crate) fn validate_stream_set(specs: &[StreamSpec]) -> Result<()> {
    for (i, spec) in specs.iter().enumerate() {
        spec.validate()?;
        for other in &specs[..i] {
            if other.name == spec.name {
                return Err(Error::invalid("name", "duplicate stream name"));
            }
            let clash = other
                .subjects
                .iter()
                .any(|a| spec.subjects.iter().any(|b| crate::subjects::overlap(a, b)));
            if clash {
                return Err(Error::invalid(
                    "subjects",
                    "the streams' subjects overlap each other",
                ));
            }
        }
    }
    Ok(())
}

/// Checks what every publish checks: the subject, the headers and the size.
pub(crate) fn validate_publish<'a>(
    subject: &'a str,
    payload: &[u8],
    headers: &Headers,
    max_payload: usize,
) -> Result<Vec<&'a str>> {
    let tokens = validate_subject(subject)?;
    headers.validate()?;
    if payload.len().saturating_add(headers.wire_len()) > max_payload {
        return Err(too_large(max_payload));
    }
    Ok(tokens)
}

/// The `InvalidInput` for an oversized message.
pub(crate) fn too_large(max_payload: usize) -> Error {
    Error::invalid(
        "payload",
        format!("the message exceeds the bus limit of {max_payload} bytes"),
    )
}

/// The reason text of an `InvalidInput`, to re-file it under another field.
fn reason_of(error: &Error) -> String {
    match error {
        Error::InvalidInput { reason, .. } => reason.to_string(),
        other => other.to_string(),
    }
}

/// The `NotFound` for a missing stream.
pub(crate) fn no_stream() -> Error {
    Error::not_found("stream")
}
