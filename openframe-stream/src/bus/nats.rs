//! The NATS JetStream event bus (feature `nats`). Works with nats-server 2.9 and later, with
//! JetStream enabled (`-js`).
//!
//! Mapping (see the [module docs](super)):
//!
//! - A **topic** is a stream (named after the topic, `.` written `_D` and `_` written `__`)
//!   whose subjects are exactly `<topic>.0` … `<topic>.<n-1>`, one per partition; the subject
//!   list is how the partition count is stored. Streams use file storage, limits retention.
//! - A record's **offset** is its stream sequence (strictly increasing within a partition, not
//!   contiguous). The key and the timestamp travel in the headers `Openframe-Bus-Key` (base64)
//!   and `Openframe-Bus-Time` (Unix milliseconds); user headers starting with `Openframe-Bus-`
//!   are rejected.
//! - A **group** keeps one durable pull consumer per partition (filtered on the partition's
//!   subject, `AckPolicy::All`), so a **commit** is an acknowledgement of the position, which
//!   covers every earlier record of the partition; the durable's ack floor is the committed
//!   position.
//! - **Membership**: JetStream 2.9 has no group coordinator, so a group's members announce
//!   themselves on the core subject `_OPENFRAME.groups.<scope>.<group>` every
//!   [heartbeat](NatsEventBusConfig::heartbeat_interval); a member silent for the
//!   [session timeout](NatsEventBusConfig::session_timeout) (or one that says goodbye on drop)
//!   leaves. Every member computes the same assignment from the members it knows (partitions
//!   dealt round-robin in join order, as the in-process bus does). Taking a partition
//!   **fences** its previous owner: the new owner replaces the partition's durable consumer by
//!   a fresh one that starts after the ack floor, so uncommitted records are delivered again
//!   at once and the old owner's pulls and commits fail (`Conflict`).
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use openframe_stream::bus::EventBus;
//! use openframe_stream::bus::nats::NatsEventBus;
//! let bus = NatsEventBus::connect("nats://127.0.0.1:4222").await?;
//! bus.ensure_topic("logs.events", 3).await?;
//! # Ok(()) }
//! ```

mod group;
mod naming;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use async_trait::async_trait;
use base64::Engine as _;
use openframe_core::{BoxError, Clock, Error, Result, SystemClock};

pub use group::NatsEventConsumer;

use super::{
    ConsumerSpec, DEFAULT_MAX_RECORD_BYTES, EventBus, EventConsumer, EventPublisher, Position,
    Record, StartPosition, TopicSpec, partition_for_key, to_millis, validate_record,
    validate_topic, validate_topic_set,
};

const BACKEND: &str = "nats";

/// The header carrying a record's key (URL-safe base64 without padding).
pub const KEY_HEADER: &str = "Openframe-Bus-Key";

/// The header carrying a record's timestamp (Unix milliseconds).
pub const TIME_HEADER: &str = "Openframe-Bus-Time";

/// Prefix of the headers the bus uses itself.
const RESERVED_HEADER_PREFIX: &str = "openframe-bus-";

/// Settings of a [`NatsEventBus`]. `Debug` never shows credentials from the URL.
#[derive(Clone)]
#[non_exhaustive]
pub struct NatsEventBusConfig {
    /// `nats://host:port` (several comma-separated allowed, `user:password@` accepted).
    pub url: String,
    /// The client name the server sees. Default `openframe`.
    pub name: String,
    /// Prepended to every topic (and so to stream names and subjects); callers never see it.
    pub topic_prefix: String,
    /// How long connecting may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How long a JetStream API request may take. Default 5 s.
    pub request_timeout: Duration,
    /// How often group members announce themselves. Default 1 s.
    pub heartbeat_interval: Duration,
    /// A member not heard from for this long leaves its group. Default 10 s.
    pub session_timeout: Duration,
    /// How long a new member listens for the others before taking partitions. Default 200 ms.
    pub join_window: Duration,
    /// Largest record (key, payload, headers) accepted by `publish`. Default 1 MiB (the
    /// server's `max_payload` may be lower).
    pub max_record_bytes: usize,
    /// Keep streams in memory instead of files (tests). Default `false`.
    pub memory_storage: bool,
}

impl fmt::Debug for NatsEventBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsEventBusConfig")
            .field("url", &openframe_core::redact_url(&self.url))
            .field("name", &self.name)
            .field("topic_prefix", &self.topic_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("session_timeout", &self.session_timeout)
            .field("join_window", &self.join_window)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("memory_storage", &self.memory_storage)
            .finish()
    }
}

impl NatsEventBusConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: "openframe".to_owned(),
            topic_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            join_window: Duration::from_millis(200),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            memory_storage: false,
        }
    }

    /// Parses `nats://host:port[,nats://host2:port...][?name=value&...]`. Query names:
    /// `name`, `topic_prefix`, `connect_timeout_ms`, `request_timeout_ms`,
    /// `heartbeat_interval_ms`, `session_timeout_ms`, `join_window_ms`, `max_record_bytes`,
    /// `memory_storage` (`true`/`false`). An unknown name or a bad value is `InvalidInput`;
    /// the checks of [`validate`](Self::validate) apply.
    ///
    /// ```
    /// use openframe_stream::bus::nats::NatsEventBusConfig;
    /// let config = NatsEventBusConfig::from_url(
    ///     "nats://n1:4222,nats://n2:4222?topic_prefix=acme.&session_timeout_ms=6000",
    /// )
    /// .unwrap();
    /// assert_eq!(config.url, "nats://n1:4222,nats://n2:4222");
    /// assert_eq!(config.topic_prefix, "acme.");
    /// assert_eq!(config.session_timeout.as_millis(), 6000);
    /// assert!(NatsEventBusConfig::from_url("nats://n1:4222?bogus=1").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let (servers, settings) = super::url_settings::split(url);
        let servers = servers.trim();
        if servers.is_empty() {
            return Err(Error::invalid("url", "names no NATS server"));
        }
        let mut config = Self::new(servers);
        for (name, value) in settings {
            config.apply_setting(name, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_setting(&mut self, name: &str, value: &str) -> Result<()> {
        use super::url_settings::{millis, number, unknown};
        match name {
            "name" => self.name = value.to_owned(),
            "topic_prefix" => self.topic_prefix = value.to_owned(),
            "connect_timeout_ms" => self.connect_timeout = millis(name, value)?,
            "request_timeout_ms" => self.request_timeout = millis(name, value)?,
            "heartbeat_interval_ms" => self.heartbeat_interval = millis(name, value)?,
            "session_timeout_ms" => self.session_timeout = millis(name, value)?,
            "join_window_ms" => self.join_window = millis(name, value)?,
            "max_record_bytes" => {
                self.max_record_bytes = usize::try_from(number(name, value)?)
                    .map_err(|_| Error::invalid("max_record_bytes", "out of range"))?;
            }
            "memory_storage" => {
                self.memory_storage = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Error::invalid("memory_storage", "must be true or false")),
                };
            }
            _ => return Err(unknown(name)),
        }
        Ok(())
    }

    /// Sets the client name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the topic prefix.
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Sets the request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the heartbeat interval and the session timeout of group members.
    pub fn with_group_timeouts(mut self, session: Duration, heartbeat: Duration) -> Self {
        self.session_timeout = session;
        self.heartbeat_interval = heartbeat;
        self
    }

    /// Sets the join window.
    pub fn with_join_window(mut self, window: Duration) -> Self {
        self.join_window = window;
        self
    }

    /// Sets the record size limit.
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Keeps streams in memory.
    pub fn with_memory_storage(mut self, memory: bool) -> Self {
        self.memory_storage = memory;
        self
    }

    /// Checks the settings (`InvalidInput`).
    pub fn validate(&self) -> Result<()> {
        if !self.topic_prefix.is_empty() {
            validate_topic(&self.topic_prefix)
                .map_err(|_| Error::invalid("topicPrefix", "must be a valid topic name part"))?;
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval * 3 > self.session_timeout {
            return Err(Error::invalid(
                "heartbeatInterval",
                "must be positive and at most a third of the session timeout",
            ));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::invalid("requestTimeout", "must be positive"));
        }
        if self.join_window > self.session_timeout {
            return Err(Error::invalid(
                "joinWindow",
                "must be at most the session timeout",
            ));
        }
        if self.max_record_bytes == 0 {
            return Err(Error::invalid("maxRecordBytes", "must be at least 1"));
        }
        Ok(())
    }
}

/// The NATS JetStream [`EventBus`]. Cloning shares the connection.
#[derive(Clone)]
pub struct NatsEventBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: NatsEventBusConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    clock: Arc<dyn Clock>,
    /// Known topics (full names): partition count and the next round-robin partition.
    topics: Mutex<HashMap<String, (u32, u32)>>,
}

impl fmt::Debug for NatsEventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsEventBus")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl NatsEventBus {
    /// Connects to `url`: the defaults, changed by the URL's query (see
    /// [`NatsEventBusConfig::from_url`]).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(NatsEventBusConfig::from_url(url)?).await
    }

    /// Connects with `config`. `Unavailable` if the server cannot be reached.
    pub async fn connect_with(config: NatsEventBusConfig) -> Result<Self> {
        config.validate()?;
        let client = async_nats::ConnectOptions::new()
            .name(&config.name)
            .connection_timeout(config.connect_timeout)
            .request_timeout(Some(config.request_timeout))
            .connect(config.url.as_str())
            .await
            .map_err(|e| Error::Unavailable {
                reason: format!(
                    "cannot connect to NATS at {}: {}",
                    openframe_core::redact_url(&config.url),
                    e.kind()
                )
                .into(),
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .build(client.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                client,
                js,
                clock: Arc::new(SystemClock),
                topics: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Uses `clock` to stamp records published without a timestamp and to date joins (call
    /// before cloning).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.clock = clock;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(shared) => {
                tracing::warn!("with_clock on a shared NatsEventBus is ignored");
                Self { inner: shared }
            }
        }
    }

    /// The settings.
    pub fn config(&self) -> &NatsEventBusConfig {
        &self.inner.config
    }

    fn full_name(&self, topic: &str) -> Result<String> {
        validate_topic(topic)?;
        let full = format!("{}{topic}", self.inner.config.topic_prefix);
        validate_topic(&full)?;
        Ok(full)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, u32)>> {
        self.inner
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream of a topic, `None` if it does not exist.
    async fn stream(&self, full: &str) -> Result<Option<jetstream::stream::Stream>> {
        match self.inner.js.get_stream(naming::stream_name(full)).await {
            Ok(stream) => Ok(Some(stream)),
            Err(e) if is_stream_not_found(&e) => Ok(None),
            Err(e) => Err(map_request_error(e)),
        }
    }

    /// The partition count of a topic from its stream, `None` if it does not exist.
    async fn describe(&self, full: &str) -> Result<Option<u32>> {
        let Some(stream) = self.stream(full).await? else {
            return Ok(None);
        };
        naming::partitions_of(full, &stream.cached_info().config.subjects)
            .map(Some)
            .ok_or_else(|| {
                Error::conflict(format!(
                    "stream {} exists but is not an event bus topic",
                    naming::stream_name(full)
                ))
            })
    }

    async fn partition_count(&self, full: &str) -> Result<Option<u32>> {
        if let Some((count, _)) = self.cache().get(full) {
            return Ok(Some(*count));
        }
        let count = self.describe(full).await?;
        if let Some(count) = count {
            self.cache().entry(full.to_owned()).or_insert((count, 0));
        }
        Ok(count)
    }

    fn stream_config(&self, full: &str, partitions: u32) -> StreamConfig {
        StreamConfig {
            name: naming::stream_name(full),
            subjects: naming::subjects(full, partitions),
            storage: if self.inner.config.memory_storage {
                StorageType::Memory
            } else {
                StorageType::File
            },
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            num_replicas: 1,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            ..Default::default()
        }
    }
}

#[async_trait]
impl EventPublisher for NatsEventBus {
    async fn publish(&self, record: Record) -> Result<Position> {
        validate_record(&record, self.inner.config.max_record_bytes)?;
        if record
            .headers
            .iter()
            .any(|(name, _)| is_reserved_header(name))
        {
            return Err(Error::invalid(
                "headers",
                "names starting with Openframe-Bus- are reserved",
            ));
        }
        let full = self.full_name(&record.topic)?;
        let Some(count) = self.partition_count(&full).await? else {
            return Err(Error::not_found("topic"));
        };
        let partition = match &record.key {
            Some(key) => partition_for_key(key, count),
            None => {
                let mut cache = self.cache();
                let entry = cache.entry(full.clone()).or_insert((count, 0));
                let p = entry.1 % count;
                entry.1 = (p + 1) % count;
                p
            }
        };
        let timestamp = to_millis(record.timestamp.unwrap_or_else(|| self.inner.clock.now()));
        let mut headers = to_nats_headers(&record.headers)?;
        headers.insert(
            TIME_HEADER,
            timestamp.timestamp_millis().to_string().as_str(),
        );
        if let Some(key) = &record.key {
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
            headers.insert(KEY_HEADER, encoded.as_str());
        }
        let too_large =
            || Error::invalid("payload", "the record exceeds the server's maximum payload");
        let map = |e: jetstream::context::PublishError| match e.kind() {
            PublishErrorKind::StreamNotFound => Error::not_found("topic"),
            PublishErrorKind::MaxPayloadExceeded => too_large(),
            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => Error::Unavailable {
                reason: format!("nats publish failed: {}", e.kind()).into(),
            },
            _ => backend(e),
        };
        let pending = self
            .inner
            .js
            .publish_with_headers(
                naming::subject(&full, partition),
                headers,
                record.payload.into(),
            )
            .await
            .map_err(map)?;
        let ack = match pending.await {
            Ok(ack) => ack,
            Err(e) => {
                let error = map(e);
                if matches!(error, Error::NotFound { .. }) {
                    self.cache().remove(&full);
                }
                return Err(error);
            }
        };
        Ok(Position::new(partition, ack.sequence))
    }
}

#[async_trait]
impl EventBus for NatsEventBus {
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<()> {
        validate_topic_set(specs)?;
        let names = specs
            .iter()
            .map(|s| self.full_name(&s.name))
            .collect::<Result<Vec<_>>>()?;
        let mut missing = Vec::new();
        for (spec, full) in specs.iter().zip(&names) {
            match self.describe(full).await? {
                Some(count) if count != spec.partitions => {
                    return Err(Error::conflict(format!(
                        "topic {} exists with {count} partitions",
                        spec.name
                    )));
                }
                Some(_) => {}
                None => missing.push((spec, full)),
            }
        }
        for (spec, full) in missing {
            match self
                .inner
                .js
                .create_stream(self.stream_config(full, spec.partitions))
                .await
            {
                Ok(_) => {}
                Err(e) => match e.kind() {
                    CreateStreamErrorKind::JetStream(js)
                        if js.error_code() == ErrorCode::STREAM_NAME_EXIST =>
                    {
                        if self.describe(full).await? != Some(spec.partitions) {
                            return Err(Error::conflict(format!(
                                "topic {} exists with another partition count",
                                spec.name
                            )));
                        }
                    }
                    CreateStreamErrorKind::JetStream(js)
                        if js.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP =>
                    {
                        return Err(Error::conflict(format!(
                            "the subjects of topic {} overlap another stream's",
                            spec.name
                        )));
                    }
                    CreateStreamErrorKind::TimedOut => {
                        return Err(Error::Unavailable {
                            reason: "nats stream creation timed out".into(),
                        });
                    }
                    _ => return Err(backend(e)),
                },
            }
        }
        let mut cache = self.cache();
        for (spec, full) in specs.iter().zip(names) {
            cache.entry(full).or_insert((spec.partitions, 0));
        }
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<bool> {
        let full = self.full_name(name)?;
        self.cache().remove(&full);
        match self
            .inner
            .js
            .delete_stream(naming::stream_name(&full))
            .await
        {
            Ok(status) => Ok(status.success),
            Err(e) => match e.kind() {
                jetstream::context::DeleteStreamErrorKind::JetStream(js)
                    if js.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(false)
                }
                _ => Err(backend(e)),
            },
        }
    }

    async fn topic_partitions(&self, topic: &str) -> Result<Option<u32>> {
        let full = self.full_name(topic)?;
        self.describe(&full).await
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn EventConsumer>> {
        spec.validate()?;
        let mut topics = Vec::with_capacity(spec.topics.len());
        for topic in &spec.topics {
            let full = self.full_name(topic)?;
            let Some(stream) = self.stream(&full).await? else {
                return Err(Error::not_found("topic"));
            };
            let info = stream.cached_info();
            let Some(partitions) = naming::partitions_of(&full, &info.config.subjects) else {
                return Err(Error::conflict("the stream is not an event bus topic"));
            };
            let start = match spec.start {
                StartPosition::Earliest => 1,
                StartPosition::Latest => info.state.last_sequence + 1,
            };
            topics.push(group::TopicInfo {
                name: topic.clone(),
                full,
                partitions,
                start,
            });
        }
        let consumer = group::NatsEventConsumer::join(group::JoinSpec {
            client: self.inner.client.clone(),
            js: self.inner.js.clone(),
            clock: self.inner.clock.clone(),
            config: self.inner.config.clone(),
            group: spec.group,
            topics,
            max_in_flight: spec.max_in_flight,
        })
        .await?;
        Ok(Box::new(consumer))
    }
}

fn is_reserved_header(name: &str) -> bool {
    name.get(..RESERVED_HEADER_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_HEADER_PREFIX))
}

/// Converts [`Headers`](openframe_core::Headers) into NATS headers (shared with the agent bus);
/// a name or value NATS cannot carry is an `InvalidInput` error.
pub fn to_nats_headers(headers: &openframe_core::Headers) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter() {
        let name: HeaderName = name
            .parse()
            .map_err(|_| Error::invalid("headers", "invalid header name"))?;
        let value: HeaderValue = value
            .parse()
            .map_err(|_| Error::invalid("headers", "invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

fn is_stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

fn map_request_error(e: jetstream::context::GetStreamError) -> Error {
    match e.kind() {
        GetStreamErrorKind::Request => Error::Unavailable {
            reason: format!("nats request failed: {}", e.kind()).into(),
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
    fn redacts_credentials_and_reserves_headers() {
        assert_eq!(
            openframe_core::redact_url("nats://u:s3cret@h:4222"),
            "nats://h:4222"
        );
        let config = NatsEventBusConfig::new("nats://u:s3cret@h:4222");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(is_reserved_header("openframe-bus-key"));
        assert!(!is_reserved_header("message-type"));
    }

    #[test]
    fn url_settings_are_applied_and_checked() {
        let config = NatsEventBusConfig::from_url(
            "nats://u:pw@n1:4222?name=stream&topic_prefix=acme.&connect_timeout_ms=1500\
             &request_timeout_ms=2500&heartbeat_interval_ms=500&session_timeout_ms=6000\
             &join_window_ms=100&max_record_bytes=4096&memory_storage=true",
        )
        .unwrap();
        assert_eq!(config.url, "nats://u:pw@n1:4222");
        assert_eq!(config.name, "stream");
        assert_eq!(config.topic_prefix, "acme.");
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        assert_eq!(config.request_timeout, Duration::from_millis(2500));
        assert_eq!(config.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(config.session_timeout, Duration::from_secs(6));
        assert_eq!(config.join_window, Duration::from_millis(100));
        assert_eq!(config.max_record_bytes, 4096);
        assert!(config.memory_storage);
        let plain = NatsEventBusConfig::from_url("nats://n1:4222").unwrap();
        assert_eq!(plain.url, "nats://n1:4222");
        assert_eq!(plain.session_timeout, Duration::from_secs(10));

        for (bad, field) in [
            ("nats://n1:4222?bogus=1", "url"),
            (
                "nats://n1:4222?session_timeout_ms=soon",
                "session_timeout_ms",
            ),
            ("nats://n1:4222?memory_storage=yes", "memory_storage"),
            ("nats://n1:4222?max_record_bytes=0", "maxRecordBytes"),
            (
                "nats://n1:4222?heartbeat_interval_ms=5000",
                "heartbeatInterval",
            ),
            ("nats://n1:4222?topic_prefix=a%20b", "topicPrefix"),
            ("?name=x", "url"),
        ] {
            match NatsEventBusConfig::from_url(bad) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{bad}"),
                other => panic!("{bad}: expected InvalidInput, got {other:?}"),
            }
        }
        let err = NatsEventBusConfig::from_url("nats://u:s3cret@n1:4222?bogus=1").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "no secret in errors");
    }
}
