//! The NATS agent bus (feature `nats`): core NATS for ephemeral traffic, JetStream for streams
//! and durable consumers. Works with nats-server 2.9 and later, with JetStream enabled (`-js`).
//!
//! - [`AgentBus::publish`] is a core publish; [`AgentBus::publish_durable`] a JetStream publish
//!   that waits for the stream's acknowledgement (a subject without a stream and without
//!   subscribers is `NotFound`; with core subscribers but no stream the publish times out and is
//!   a `Backend` error, as NATS cannot tell the two apart).
//! - [`AgentBus::ensure_streams`] creates or updates each stream (limits retention, discard
//!   old, one replica) one after the other: when a later spec fails, the earlier ones stay
//!   applied. A stream's storage cannot change (`Conflict`).
//! - Durable consumers are JetStream **pull** consumers with explicit ack. Each binding pulls
//!   one message at a time, so bindings of one durable consumer share the work fairly and an
//!   unsettled message is never held by a binding that did not ask for it. `delivered` comes
//!   from the message's JetStream metadata. Acks, naks, terms and progress acks are published
//!   to the message's reply subject and flushed.
//! - Ephemeral subscriptions follow the client's slow-consumer policy: when a subscription's
//!   buffer ([`NatsAgentBusOptions::with_subscription_capacity`]) is full, new messages for it
//!   are dropped.
//!
//! Credentials in the URL (`nats://user:pass@host:4222`) are used to connect but never logged,
//! printed by `Debug` or put into errors.
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use openframe_agent::bus::{AgentBus, agent_streams, nats::NatsAgentBus};
//! let bus = NatsAgentBus::connect("nats://127.0.0.1:4222").await?;
//! bus.ensure_streams(&agent_streams()).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Config as PullConfig, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy as JsDeliverPolicy, PullConsumer};
use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamErrorKind, PublishErrorKind as JsPublishErrorKind,
};
use async_nats::jetstream::stream::{
    Config as JsStreamConfig, ConsumerErrorKind, DiscardPolicy, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, ErrorCode};
use async_trait::async_trait;
use futures::StreamExt;
use openframe_core::{BoxError, Error, Result};

use super::{
    AckKind, AgentBus, ConsumerSpec, DeliverPolicy, Delivery, DeliveryAcker, DurableConsumer,
    Headers, Message, PublishAck, StreamSpec, StreamStorage, Subscription, no_stream, too_large,
    validate_name, validate_publish, validate_stream_set,
};
use crate::subjects::{overlap, validate_pattern};

const BACKEND: &str = "nats";

/// Connection settings of a [`NatsAgentBus`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NatsAgentBusOptions {
    /// The client name the server sees (e.g. in monitoring and advisories).
    pub name: Option<String>,
    /// How long connecting may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How long a JetStream API request or a publish acknowledgement may take. Default 5 s.
    pub request_timeout: Duration,
    /// How many messages a subscription buffers before the client drops new ones. Default 4096.
    pub subscription_capacity: usize,
    /// A NATS credentials file's content (user JWT and seed), for a server in operator mode
    /// (e.g. [`NatsAuthority::privileged_user`](crate::nats_proxy::NatsAuthority::privileged_user)).
    pub credentials: Option<openframe_core::Secret>,
}

impl Default for NatsAgentBusOptions {
    fn default() -> Self {
        Self {
            name: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            subscription_capacity: 4096,
            credentials: None,
        }
    }
}

impl NatsAgentBusOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the client name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Authenticates with a NATS credentials file's content (user JWT and seed).
    pub fn with_credentials(mut self, credentials: openframe_core::Secret) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the subscription buffer size.
    pub fn with_subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity;
        self
    }
}

/// The NATS JetStream [`AgentBus`]. Cloning shares the connection.
#[derive(Clone)]
pub struct NatsAgentBus {
    client: async_nats::Client,
    js: jetstream::Context,
    server: String,
}

impl fmt::Debug for NatsAgentBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsAgentBus")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl NatsAgentBus {
    /// Connects with the default options; see [`NatsAgentBus::connect_with`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, NatsAgentBusOptions::default()).await
    }

    /// Connects to `url` (`nats://host:port`, optionally with `user:password@`; several
    /// comma-separated servers allowed) and checks that JetStream is enabled.
    /// `Unavailable` if the server cannot be reached or has no JetStream.
    pub async fn connect_with(url: &str, options: NatsAgentBusOptions) -> Result<Self> {
        if options.subscription_capacity == 0 {
            return Err(Error::invalid("subscriptionCapacity", "must be at least 1"));
        }
        let server = openframe_core::redact_url(url);
        let mut connect = async_nats::ConnectOptions::new()
            .connection_timeout(options.connect_timeout)
            .request_timeout(Some(options.request_timeout))
            .subscription_capacity(options.subscription_capacity);
        if let Some(name) = &options.name {
            connect = connect.name(name);
        }
        if let Some(credentials) = &options.credentials {
            connect = connect
                .credentials(credentials.expose())
                .map_err(|_| Error::invalid("credentials", "not a valid NATS credentials file"))?;
        }
        let client = connect.connect(url).await.map_err(|e| Error::Unavailable {
            reason: format!("cannot connect to NATS at {server}: {}", e.kind()).into(),
        })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .build(client.clone());
        // A raw account-info request: the typed one does not parse a 2.9 server's answer.
        let info: serde_json::Value =
            js.request("INFO", &())
                .await
                .map_err(|e| Error::Unavailable {
                    reason: format!("JetStream is not available at {server}: {}", e.kind()).into(),
                })?;
        if let Some(error) = info.get("error") {
            let description = error
                .get("description")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("error");
            return Err(Error::Unavailable {
                reason: format!("JetStream is not available at {server}: {description}").into(),
            });
        }
        Ok(Self { client, js, server })
    }

    fn max_payload(&self) -> usize {
        match self.client.max_payload() {
            0 => super::DEFAULT_MAX_PAYLOAD,
            n => n,
        }
    }

    async fn subscribe_to(&self, pattern: &str, group: Option<&str>) -> Result<Subscription> {
        validate_pattern(pattern)?;
        let subscriber = match group {
            Some(group) => {
                validate_name("group", group)?;
                self.client
                    .queue_subscribe(pattern.to_owned(), group.to_owned())
                    .await
            }
            None => self.client.subscribe(pattern.to_owned()).await,
        }
        .map_err(backend)?;
        self.client.flush().await.map_err(backend)?;
        Ok(Subscription::new(
            pattern,
            subscriber.map(from_nats_message),
        ))
    }

    /// Creates the consumer, or updates its `ack_wait` and `max_deliver`.
    async fn create_consumer(
        &self,
        stream: &jetstream::stream::Stream,
        config: PullConfig,
    ) -> Result<()> {
        match stream.create_consumer(config).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.kind() {
                ConsumerErrorKind::JetStream(js) => match js.error_code() {
                    ErrorCode::STREAM_NOT_FOUND => no_stream(),
                    ErrorCode::CONSUMER_FILTER_NOT_SUBSET => {
                        Error::invalid("filterSubject", "matches none of the stream's subjects")
                    }
                    ErrorCode::CONSUMER_NAME_EXIST | ErrorCode::CONSUMER_ALREADY_EXISTS => {
                        Error::conflict("the durable consumer exists with another configuration")
                    }
                    _ => backend(e),
                },
                _ => backend(e),
            }),
        }
    }
}

#[async_trait]
impl AgentBus for NatsAgentBus {
    async fn publish(&self, subject: &str, payload: Vec<u8>, headers: Headers) -> Result<()> {
        validate_publish(subject, &payload, &headers, self.max_payload())?;
        let result = if headers.is_empty() {
            self.client
                .publish(subject.to_owned(), payload.into())
                .await
        } else {
            self.client
                .publish_with_headers(
                    subject.to_owned(),
                    openframe_stream::bus::nats::to_nats_headers(&headers)?,
                    payload.into(),
                )
                .await
        };
        result.map_err(|e| match e.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                too_large(self.max_payload())
            }
            _ => backend(e),
        })
    }

    async fn publish_durable(
        &self,
        subject: &str,
        payload: Vec<u8>,
        headers: Headers,
    ) -> Result<PublishAck> {
        validate_publish(subject, &payload, &headers, self.max_payload())?;
        let map = |e: jetstream::context::PublishError| match e.kind() {
            JsPublishErrorKind::StreamNotFound => no_stream(),
            JsPublishErrorKind::MaxPayloadExceeded => too_large(self.max_payload()),
            _ => backend(e),
        };
        let pending = if headers.is_empty() {
            self.js.publish(subject.to_owned(), payload.into()).await
        } else {
            self.js
                .publish_with_headers(
                    subject.to_owned(),
                    openframe_stream::bus::nats::to_nats_headers(&headers)?,
                    payload.into(),
                )
                .await
        }
        .map_err(map)?;
        let ack = pending.await.map_err(map)?;
        Ok(PublishAck {
            stream: ack.stream,
            sequence: ack.sequence,
        })
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription> {
        self.subscribe_to(pattern, None).await
    }

    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription> {
        self.subscribe_to(pattern, Some(group)).await
    }

    async fn ensure_streams(&self, specs: &[StreamSpec]) -> Result<()> {
        validate_stream_set(specs)?;
        for spec in specs {
            let config = stream_config(spec);
            match self.js.get_stream(&spec.name).await {
                Ok(existing) => {
                    if existing.cached_info().config.storage != config.storage {
                        return Err(Error::conflict(format!(
                            "stream {} exists with another storage, which cannot change",
                            spec.name
                        )));
                    }
                    self.js
                        .update_stream(config)
                        .await
                        .map_err(|e| map_stream_error(&spec.name, e))?;
                }
                Err(e) if is_stream_not_found(&e) => {
                    self.js
                        .create_stream(config)
                        .await
                        .map_err(|e| map_stream_error(&spec.name, e))?;
                }
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, name: &str) -> Result<bool> {
        validate_name("stream", name)?;
        match self.js.delete_stream(name).await {
            Ok(status) => Ok(status.success),
            Err(e) if is_stream_not_found(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete_consumer(&self, stream: &str, durable_name: &str) -> Result<bool> {
        validate_name("stream", stream)?;
        validate_name("durableName", durable_name)?;
        let stream = match self.js.get_stream(stream).await {
            Ok(stream) => stream,
            Err(e) if is_stream_not_found(&e) => return Err(no_stream()),
            Err(e) => return Err(backend(e)),
        };
        match stream.delete_consumer(durable_name).await {
            Ok(status) => Ok(status.success),
            Err(e) => match e.kind() {
                ConsumerErrorKind::JetStream(js)
                    if js.error_code() == ErrorCode::CONSUMER_NOT_FOUND =>
                {
                    Ok(false)
                }
                ConsumerErrorKind::JetStream(js)
                    if js.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Err(no_stream())
                }
                _ => Err(backend(e)),
            },
        }
    }

    async fn durable_consumer(&self, spec: &ConsumerSpec) -> Result<DurableConsumer> {
        spec.validate()?;
        let stream = match self.js.get_stream(&spec.stream).await {
            Ok(stream) => stream,
            Err(e) if is_stream_not_found(&e) => return Err(no_stream()),
            Err(e) => return Err(backend(e)),
        };
        let filter = spec.filter_subject.clone().unwrap_or_default();
        if !filter.is_empty()
            && !stream
                .cached_info()
                .config
                .subjects
                .iter()
                .any(|s| overlap(s, &filter))
        {
            return Err(Error::invalid(
                "filterSubject",
                "matches none of the stream's subjects",
            ));
        }
        let deliver_policy = match spec.deliver {
            DeliverPolicy::All => JsDeliverPolicy::All,
            DeliverPolicy::New => JsDeliverPolicy::New,
        };
        let max_deliver = i64::from(spec.max_deliver);
        let config = PullConfig {
            durable_name: Some(spec.durable_name.clone()),
            filter_subject: filter.clone(),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver,
            ..Default::default()
        };
        match stream.consumer_info(&spec.durable_name).await {
            Ok(info) => {
                let existing = &info.config;
                if existing.deliver_subject.is_some() {
                    return Err(Error::conflict(
                        "a push consumer with this durable name exists",
                    ));
                }
                if existing.filter_subject != filter || existing.deliver_policy != deliver_policy {
                    return Err(Error::conflict(
                        "the durable consumer exists with another filter subject or deliver policy",
                    ));
                }
                if existing.ack_wait != spec.ack_wait || existing.max_deliver != max_deliver {
                    self.create_consumer(&stream, config).await?;
                }
            }
            Err(e) => match e.kind() {
                jetstream::context::ConsumerInfoErrorKind::NotFound => {
                    self.create_consumer(&stream, config).await?;
                }
                jetstream::context::ConsumerInfoErrorKind::StreamNotFound => {
                    return Err(no_stream());
                }
                _ => return Err(backend(e)),
            },
        }
        let consumer: PullConsumer = stream
            .get_consumer(&spec.durable_name)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(1)
            .messages()
            .await
            .map_err(backend)?;
        let client = self.client.clone();
        let max_deliver = spec.max_deliver;
        // A deleted consumer (or stream) ends the binding, as on every backend.
        let deliveries = messages
            .map(move |item| match item {
                Ok(message) => Some(to_delivery(message, &client, max_deliver)),
                Err(e) if e.kind() == MessagesErrorKind::ConsumerDeleted => None,
                Err(e) => Some(Err(backend(e))),
            })
            .take_while(|item| futures::future::ready(item.is_some()))
            .filter_map(futures::future::ready);
        Ok(DurableConsumer::new(spec, deliveries))
    }
}

/// Settles a JetStream delivery by publishing to its reply subject.
struct NatsAcker {
    client: async_nats::Client,
    reply: async_nats::Subject,
}

impl fmt::Debug for NatsAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsAcker")
            .field("reply", &self.reply.as_str())
            .finish()
    }
}

#[async_trait]
impl DeliveryAcker for NatsAcker {
    async fn settle(&self, kind: AckKind) -> Result<()> {
        let kind = match kind {
            AckKind::Ack => jetstream::AckKind::Ack,
            AckKind::Nak(delay) => jetstream::AckKind::Nak(delay),
            AckKind::Term => jetstream::AckKind::Term,
            AckKind::InProgress => jetstream::AckKind::Progress,
        };
        self.client
            .publish(self.reply.clone(), kind.into())
            .await
            .map_err(backend)?;
        self.client.flush().await.map_err(backend)
    }
}

fn to_delivery(
    message: jetstream::Message,
    client: &async_nats::Client,
    max_deliver: u32,
) -> Result<Delivery> {
    let info = message.info().map_err(|e| Error::backend(BACKEND, e))?;
    let delivered = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
    let stream = info.stream.to_owned();
    let sequence = info.stream_sequence;
    let reply =
        message.message.reply.clone().ok_or_else(|| {
            Error::Internal("a JetStream delivery without a reply subject".into())
        })?;
    let acker = NatsAcker {
        client: client.clone(),
        reply,
    };
    Ok(Delivery::new(
        from_nats_message(message.message),
        stream,
        sequence,
        delivered,
        max_deliver,
        Box::new(acker),
    ))
}

fn from_nats_message(message: async_nats::Message) -> Message {
    let mut headers = Headers::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            for value in values {
                headers.append(name.to_string(), value.as_str());
            }
        }
    }
    Message {
        subject: message.subject.to_string(),
        payload: message.payload.to_vec(),
        headers,
    }
}

fn stream_config(spec: &StreamSpec) -> JsStreamConfig {
    let limit = |n: Option<u64>| n.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1);
    JsStreamConfig {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        max_age: spec.max_age.unwrap_or_default(),
        max_messages: limit(spec.max_messages),
        max_messages_per_subject: limit(spec.max_messages_per_subject),
        max_bytes: -1,
        storage: match spec.storage {
            StreamStorage::File => StorageType::File,
            StreamStorage::Memory => StorageType::Memory,
        },
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        num_replicas: 1,
        ..Default::default()
    }
}

fn is_stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

fn map_stream_error(name: &str, e: jetstream::context::CreateStreamError) -> Error {
    match e.kind() {
        CreateStreamErrorKind::JetStream(js) => match js.error_code() {
            ErrorCode::STREAM_SUBJECT_OVERLAP => Error::conflict(format!(
                "the subjects of stream {name} overlap those of another stream"
            )),
            ErrorCode::STREAM_NAME_EXIST => {
                Error::conflict(format!("stream {name} exists with another configuration"))
            }
            _ => backend(e),
        },
        _ => backend(e),
    }
}

fn backend(e: impl Into<BoxError>) -> Error {
    Error::backend(BACKEND, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_config_maps_limits() {
        let spec = StreamSpec::new("S", ["a.>"])
            .with_max_age(Duration::from_secs(60))
            .with_max_messages_per_subject(3)
            .with_storage(StreamStorage::Memory);
        let config = stream_config(&spec);
        assert_eq!(config.max_age, Duration::from_secs(60));
        assert_eq!(config.max_messages, -1);
        assert_eq!(config.max_messages_per_subject, 3);
        assert_eq!(config.storage, StorageType::Memory);
        assert_eq!(config.subjects, ["a.>"]);
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let err = NatsAgentBus::connect_with(
            "nats://user:s3cret@127.0.0.1:1",
            NatsAgentBusOptions::new().with_connect_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), openframe_core::ErrorCode::Unavailable);
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
