//! The event bus: topics of keyed records, read by consumer groups that commit after processing.
//!
//! The model is Kafka's, so every backend maps onto it directly:
//!
//! - A **topic** ([`TopicSpec`]) has a fixed number of **partitions**. A record with a key goes to
//!   [`partition_for_key`] (Kafka's murmur2 partitioner), so all records of one key (one machine)
//!   stay in order; records without a key are spread round-robin. A record's [`Position`] is its
//!   partition and its offset there; offsets increase strictly within a partition (they are
//!   opaque otherwise: not necessarily contiguous, and their first value depends on the backend).
//! - A **consumer group** ([`ConsumerSpec::group`]) sees every record of its topics. The
//!   consumers of one group split the partitions between them (rebalanced when consumers join or
//!   leave), so each record goes to one consumer of the group.
//! - Delivery is **at least once**: a consumer [`commit`](EventConsumer::commit)s a position
//!   after processing the record. A record whose position was not committed when its consumer
//!   goes away (dropped, crashed, or the partition moved in a rebalance) is delivered again to
//!   the group, which resumes from the last committed position. Handlers must therefore be
//!   idempotent (the normalized events have deterministic ids for this).
//! - **Lag**: [`EventConsumer::lag`] reports, per assigned partition, the group's committed
//!   position, the partition's end and how many records lie between ([`PartitionLag`]).
//!
//! Backend mapping: Kafka topics, partitions, offsets and group commits are used as they are.
//! On NATS JetStream a topic is a stream with one subject per partition (`<topic>.<partition>`),
//! a position's offset is the stream sequence, and a group is a durable consumer per partition.
//!
//! Backends: [`memory::InMemoryEventBus`] (in-process, the embedded default),
//! `kafka::KafkaEventBus` (feature `kafka`) and `nats::NatsEventBus` (feature `nats`). All run
//! the same conformance suite (`testkit`, feature `testkit`).
//!
//! ```
//! use openframe_stream::bus::{ConsumerSpec, EventBus, EventPublisher, Headers, Record, TopicSpec};
//! use openframe_stream::bus::memory::InMemoryEventBus;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let bus = InMemoryEventBus::new();
//! bus.ensure_topics(&[TopicSpec::new("logs.events", 3)]).await.unwrap();
//!
//! let record = Record::new("logs.events", b"{}".to_vec())
//!     .with_key("machine-1")
//!     .with_headers(Headers::new().with("message-type", "COMMAND_EXECUTED"));
//! let position = bus.publish(record).await.unwrap();
//!
//! let mut consumer = bus
//!     .consumer(ConsumerSpec::new("stream-service", ["logs.events"]))
//!     .await
//!     .unwrap();
//! let delivered = consumer.next().await.unwrap().unwrap();
//! assert_eq!(delivered.position, position);
//! assert_eq!(delivered.record.headers.get("message-type"), Some("COMMAND_EXECUTED"));
//! consumer.commit_delivered(&delivered).await.unwrap();
//! # });
//! ```

use std::fmt;

use async_trait::async_trait;
use openframe_core::{Error, Result, Timestamp};

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
mod partitioner;
#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(any(feature = "kafka", feature = "nats"))]
mod url_settings;

pub use partitioner::partition_for_key;

/// Longest topic name (Kafka's limit).
pub const MAX_TOPIC_LEN: usize = 249;

/// Longest consumer group name.
pub const MAX_GROUP_LEN: usize = 128;

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// Largest record (key, payload and headers) a bus accepts by default; Kafka's default
/// `message.max.bytes` is about the same.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The default [`ConsumerSpec::max_in_flight`] (Kafka's default `max.poll.records`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 500;

pub use openframe_core::Headers;

/// One record on a topic. Its `Debug` shows the payload's size, never its content (payloads
/// carry command output and tool data).
///
/// ```
/// use openframe_stream::bus::Record;
/// let record = Record::new("logs.events", b"{}".to_vec()).with_key("machine-1");
/// assert_eq!(record.key.as_deref(), Some(&b"machine-1"[..]));
/// assert!(record.timestamp.is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The topic.
    pub topic: String,
    /// The key: records with one key go to one partition and keep their order. `None` spreads
    /// records round-robin.
    pub key: Option<Vec<u8>>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The headers (e.g. `message-type`).
    pub headers: Headers,
    /// When the event happened, with millisecond precision (finer parts are dropped, as Kafka
    /// keeps milliseconds). `None` on publish lets the bus stamp it from its clock; a delivered
    /// record always has one.
    pub timestamp: Option<Timestamp>,
}

impl Record {
    /// A record without key, headers or timestamp.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            payload: payload.into(),
            headers: Headers::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Adds one header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the timestamp.
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// The size counted against a bus's record limit: key, payload and headers.
    pub fn byte_len(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.payload.len() + self.headers.byte_len()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("topic", &self.topic)
            .field("key", &self.key.as_deref().map(String::from_utf8_lossy))
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("headers", &self.headers)
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// Where a record is stored in its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The partition (0-based).
    pub partition: u32,
    /// The offset in the partition; strictly increasing within a partition.
    pub offset: u64,
}

impl Position {
    /// A position.
    pub fn new(partition: u32, offset: u64) -> Self {
        Self { partition, offset }
    }
}

/// A record handed to a consumer, with where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// The record (its `timestamp` is always set).
    pub record: Record,
    /// Its position in `record.topic`; commit it once the record is processed.
    pub position: Position,
}

impl Delivered {
    /// A delivered record (for backend implementors).
    pub fn new(record: Record, position: Position) -> Self {
        Self { record, position }
    }
}

/// How far a consumer group is behind on one partition, as [`EventConsumer::lag`] reports it.
///
/// Offsets are the bus's [`Position::offset`]s. `lag` is a count of records, never a
/// difference of offsets: offsets need not be contiguous (on NATS they are stream sequences
/// shared by every partition of a topic), so `end - committed` may exceed `lag` there.
///
/// ```
/// use openframe_stream::bus::PartitionLag;
/// let lag = PartitionLag::new("logs.events", 0, Some(4), 10, 6);
/// assert_eq!((lag.committed, lag.end, lag.lag), (Some(4), 10, 6));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The group's committed position on the partition: the offset right after the last
    /// committed record, where the group resumes. `None` while the group has committed nothing
    /// on the partition (NATS counts the start of a `Latest` group as its first commit).
    pub committed: Option<u64>,
    /// The end of the partition: every record of the partition has a lower offset, and the
    /// next one published gets this offset or a higher one. On Kafka and the in-process bus it
    /// is the high watermark (the last offset + 1, or 0 for an empty partition); on NATS the
    /// topic stream's last sequence + 1.
    pub end: u64,
    /// Records of the partition after the committed position, delivered or not: what the group
    /// still has to process and commit. When nothing is committed it counts from where the
    /// group starts (its [`StartPosition`]: the oldest retained record, or the end when the
    /// consumer joined); records dropped by retention are not counted.
    pub lag: u64,
}

impl PartitionLag {
    /// A partition's lag (for backend implementors).
    pub fn new(
        topic: impl Into<String>,
        partition: u32,
        committed: Option<u64>,
        end: u64,
        lag: u64,
    ) -> Self {
        Self {
            topic: topic.into(),
            partition,
            committed,
            end,
            lag,
        }
    }
}

/// A topic to create: its name and its number of partitions.
///
/// ```
/// use openframe_stream::bus::TopicSpec;
/// assert!(TopicSpec::new("logs.events", 3).validate().is_ok());
/// assert!(TopicSpec::new("logs events", 3).validate().is_err());
/// assert!(TopicSpec::new("logs.events", 0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicSpec {
    /// The name: 1 to 249 ASCII letters, digits, `.`, `_` and `-`, not `.` or `..` (Kafka's rule).
    pub name: String,
    /// The number of partitions: 1 to [`MAX_PARTITIONS`]. Fixed once created, since the key →
    /// partition mapping depends on it.
    pub partitions: u32,
}

impl TopicSpec {
    /// A topic spec.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self {
            name: name.into(),
            partitions,
        }
    }

    /// Checks the spec (`InvalidInput` on `topic` or `partitions`).
    pub fn validate(&self) -> Result<()> {
        validate_topic(&self.name)?;
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(Error::invalid(
                "partitions",
                format!("must be between 1 and {MAX_PARTITIONS}"),
            ));
        }
        Ok(())
    }
}

/// Where a group starts reading a partition for which it has no committed position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StartPosition {
    /// From the oldest retained record (Kafka `auto.offset.reset=earliest`). The default: a new
    /// group misses nothing that is still retained.
    #[default]
    Earliest,
    /// From the end: only records published after [`EventBus::consumer`] returned.
    Latest,
}

/// A consumer to create: its group, its topics and how much it may hold uncommitted.
///
/// ```
/// use openframe_stream::bus::{ConsumerSpec, StartPosition};
/// let spec = ConsumerSpec::new("stream-service", ["logs.events", "meshcentral-events"])
///     .with_start(StartPosition::Latest)
///     .with_max_in_flight(100);
/// assert!(spec.validate().is_ok());
/// assert!(ConsumerSpec::new("bad group", ["t"]).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerSpec {
    /// The group: 1 to 128 ASCII letters, digits, `-` and `_` (valid as a Kafka group id and a
    /// JetStream durable name).
    pub group: String,
    /// The topics to read (at least one, no duplicates); they must exist.
    pub topics: Vec<String>,
    /// Where to start on partitions the group has not committed yet.
    pub start: StartPosition,
    /// How many delivered but uncommitted records the consumer may hold (at least 1).
    pub max_in_flight: usize,
}

impl ConsumerSpec {
    /// A consumer of `topics` in `group`, from [`StartPosition::Earliest`], with
    /// [`DEFAULT_MAX_IN_FLIGHT`].
    pub fn new<S: Into<String>>(
        group: impl Into<String>,
        topics: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            start: StartPosition::Earliest,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// Sets the start position.
    pub fn with_start(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Sets `max_in_flight`.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Checks the spec (`InvalidInput`); whether the topics exist is checked by
    /// [`EventBus::consumer`].
    pub fn validate(&self) -> Result<()> {
        validate_group(&self.group)?;
        if self.topics.is_empty() {
            return Err(Error::invalid("topics", "at least one topic is needed"));
        }
        for (i, topic) in self.topics.iter().enumerate() {
            validate_topic(topic)?;
            if self.topics[..i].contains(topic) {
                return Err(Error::invalid("topics", "duplicate topic"));
            }
        }
        if self.max_in_flight == 0 {
            return Err(Error::invalid("maxInFlight", "must be at least 1"));
        }
        Ok(())
    }
}

/// Publishes records. Pass it as `Arc<dyn EventPublisher>`.
#[async_trait]
pub trait EventPublisher: Send + Sync + fmt::Debug + 'static {
    /// Stores `record` in its topic and returns where. `InvalidInput` for a malformed topic name,
    /// malformed headers or an oversized record; `NotFound` (`topic`) if the topic does not
    /// exist; `Unavailable` if the bus could not take it in time (backpressure, broker down).
    async fn publish(&self, record: Record) -> Result<Position>;
}

/// Reads records for one member of a consumer group. Obtained from [`EventBus::consumer`];
/// dropping it leaves the group (its partitions go to the other members, from the last commit).
///
/// [`next`](EventConsumer::next) is cancel-safe: dropping its future (e.g. in a
/// `tokio::time::timeout` or `select!`) loses no record.
#[async_trait]
pub trait EventConsumer: Send + fmt::Debug {
    /// The next record of the consumer's partitions, waiting for one if none is pending; records
    /// of one partition come in offset order. `Ok(None)` when the consumer has ended (a topic it
    /// reads was deleted, or the bus shut down). `Conflict` if `max_in_flight` records are
    /// delivered and uncommitted: commit before reading more.
    async fn next(&mut self) -> Result<Option<Delivered>>;

    /// Commits `positions` of `topic`: each marks its record and every earlier record of that
    /// partition as processed, so the group resumes after it. Commits never move a partition's
    /// committed position backward (a lower one is ignored). `InvalidInput` for a position not
    /// yet delivered to this consumer; `Conflict` if a partition is no longer assigned to this
    /// consumer (it moved in a rebalance: its uncommitted records go to the new owner).
    async fn commit(&mut self, topic: &str, positions: &[Position]) -> Result<()>;

    /// The `(topic, partition)`s currently assigned to this consumer, sorted.
    fn assignment(&self) -> Vec<(String, u32)>;

    /// The group's [lag](PartitionLag) on each partition currently assigned to this consumer,
    /// sorted by topic and partition (empty while nothing is assigned). Asks the broker on
    /// Kafka and NATS (one request per partition): call it periodically, not per record.
    /// `Unavailable` if the broker cannot answer in time.
    async fn lag(&mut self) -> Result<Vec<PartitionLag>>;

    /// Commits one delivered record (and every earlier record of its partition).
    async fn commit_delivered(&mut self, delivered: &Delivered) -> Result<()> {
        self.commit(&delivered.record.topic, &[delivered.position])
            .await
    }
}

/// The event bus: topics, publishing and consumer groups. Pass it as `Arc<dyn EventBus>`.
#[async_trait]
pub trait EventBus: EventPublisher {
    /// Creates the topics that do not exist (idempotent). `InvalidInput` for a bad spec or a name
    /// given twice; `Conflict` if a topic exists with another number of partitions (nothing is
    /// created then).
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<()>;

    /// Deletes a topic with its records and every group's committed positions on it; consumers
    /// reading it end. `false` if there was none.
    async fn delete_topic(&self, name: &str) -> Result<bool>;

    /// The number of partitions of `topic`, `None` if it does not exist.
    async fn topic_partitions(&self, topic: &str) -> Result<Option<u32>>;

    /// Joins `spec.group` as a new consumer of `spec.topics`; the group's partitions are
    /// rebalanced among its consumers. `InvalidInput` for a bad spec; `NotFound` (`topic`) if a
    /// topic does not exist.
    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn EventConsumer>>;

    /// Creates one topic if it does not exist; see [`EventBus::ensure_topics`].
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<()> {
        self.ensure_topics(&[TopicSpec::new(name, partitions)])
            .await
    }
}

/// Checks a topic name (`InvalidInput` on `topic`).
pub fn validate_topic(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_TOPIC_LEN {
        return Err(Error::invalid(
            "topic",
            format!("must be 1 to {MAX_TOPIC_LEN} characters"),
        ));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid("topic", "must not be '.' or '..'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::invalid(
            "topic",
            "may contain only ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks a consumer group name (`InvalidInput` on `group`).
pub fn validate_group(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_GROUP_LEN {
        return Err(Error::invalid(
            "group",
            format!("must be 1 to {MAX_GROUP_LEN} characters"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return Err(Error::invalid(
            "group",
            "may contain only ASCII letters, digits, '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks a set of topic specs for `ensure_topics`: each valid, names unique.
pub(crate) fn validate_topic_set(specs: &[TopicSpec]) -> Result<()> {
    for (i, spec) in specs.iter().enumerate() {
        spec.validate()?;
        if specs[..i].iter().any(|other| other.name == spec.name) {
            return Err(Error::invalid("topic", "duplicate topic name"));
        }
    }
    Ok(())
}

/// Checks what every publish checks: the topic name, the headers and the size.
pub(crate) fn validate_record(record: &Record, max_bytes: usize) -> Result<()> {
    validate_topic(&record.topic)?;
    record.headers.validate()?;
    if record.byte_len() > max_bytes {
        return Err(Error::invalid(
            "payload",
            format!("the record exceeds the bus limit of {max_bytes} bytes"),
        ));
    }
    Ok(())
}

/// `timestamp` truncated to whole milliseconds (what Kafka keeps).
pub(crate) fn to_millis(timestamp: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(timestamp.timestamp_millis()).unwrap_or(timestamp)
}
