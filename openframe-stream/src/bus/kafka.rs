//! The Kafka event bus (feature `kafka`): rdkafka over a bundled librdkafka, so it works with
//! any Kafka-protocol broker (Apache Kafka, Redpanda, tansu).
//!
//! - **Topics** are Kafka topics (created with the admin client, the broker's default
//!   replication unless [`KafkaEventBusConfig::replication_factor`] says otherwise), named with
//!   the configured [`topic_prefix`](KafkaEventBusConfig::topic_prefix) on the broker. Consumer
//!   group ids get the same prefix.
//! - **Publishing** is idempotent with `acks=all`: librdkafka retries (with backoff) until the
//!   [delivery timeout](KafkaEventBusConfig::delivery_timeout) without duplicating or
//!   reordering, then the publish fails with `Unavailable`. The bus picks the partition itself:
//!   [`partition_for_key`] for keyed records (what Java clients do), round-robin otherwise. A
//!   publish whose future is dropped may still be delivered.
//! - **Consumers** are group members with `enable.auto.commit=false`: only what the caller
//!   commits is committed, synchronously. Rebalancing is eager: on every rebalance a member
//!   loses its partitions (its uncommitted records are delivered again, to whoever gets the
//!   partition) and receives its new ones. A `Latest` consumer starts partitions its group never
//!   committed at the end they had when [`EventBus::consumer`] returned, even though the group
//!   join completes later.
//! - **Errors**: broker unreachable, timeouts and leader moves are `Unavailable`; a too large
//!   record `InvalidInput`; a missing topic `NotFound`; authentication, authorization and
//!   configuration failures `Backend` (see the `error` module).
//!
//! Deleting a topic removes it on the broker; whether the broker also drops the groups'
//! committed offsets of that topic is the broker's business (Apache Kafka does).
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use openframe_stream::bus::EventBus;
//! use openframe_stream::bus::kafka::KafkaEventBus;
//! let bus = KafkaEventBus::from_url("kafka://127.0.0.1:9092?client_id=stream-service")?;
//! bus.ensure_topic("logs.events", 3).await?;
//! # Ok(()) }
//! ```

mod config;
mod consumer;
mod error;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openframe_core::{Clock, Error, Result, SystemClock};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

pub use config::KafkaEventBusConfig;
pub use consumer::KafkaEventConsumer;

use self::consumer::GroupContext;
use self::error::{BACKEND, is_transient, is_unknown_topic, map_error};
use super::{
    ConsumerSpec, EventBus, EventConsumer, EventPublisher, MAX_TOPIC_LEN, Position, Record,
    StartPosition, TopicSpec, partition_for_key, to_millis, validate_record, validate_topic,
    validate_topic_set,
};

/// How often topic creation and deletion are polled until the broker's metadata shows them.
const SETTLE_POLL: Duration = Duration::from_millis(50);

/// The Kafka [`EventBus`]. Cloning shares the clients.
#[derive(Clone)]
pub struct KafkaEventBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaEventBusConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    probe: TopicProbe,
    clock: Arc<dyn Clock>,
    /// Known topics (broker names): partition count and the next round-robin partition.
    topics: Mutex<HashMap<String, (u32, u32)>>,
}

impl fmt::Debug for KafkaEventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaEventBus")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Reads partition counts from broker metadata (a blocking librdkafka call, run on the blocking
/// pool).
#[derive(Clone)]
pub(crate) struct TopicProbe {
    producer: FutureProducer,
    timeout: Duration,
}

impl fmt::Debug for TopicProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicProbe").finish_non_exhaustive()
    }
}

impl TopicProbe {
    /// The partition count of each topic (broker names), `None` for a missing one.
    async fn partitions(&self, topics: Vec<String>) -> Result<BTreeMap<String, Option<u32>>> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + timeout;
            let mut out = BTreeMap::new();
            for topic in topics {
                let count = loop {
                    match Self::describe(&producer, &topic, timeout) {
                        Ok(count) => break count,
                        Err(e) if e.is_retryable() && Instant::now() < deadline => {
                            std::thread::sleep(SETTLE_POLL);
                        }
                        Err(e) => return Err(e),
                    }
                };
                out.insert(topic, count);
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Internal(format!("metadata task failed: {e}").into()))?
    }

    fn describe(producer: &FutureProducer, topic: &str, timeout: Duration) -> Result<Option<u32>> {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| map_error("metadata request", e))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        if let Some(err) = found.error() {
            let code = RDKafkaErrorCode::from(err);
            if is_unknown_topic(code) {
                return Ok(None);
            }
            if is_transient(code) {
                return Err(Error::Unavailable {
                    reason: format!("kafka metadata of a topic is not ready: {code}").into(),
                });
            }
            return Err(Error::backend(
                BACKEND,
                rdkafka::error::KafkaError::MetadataFetch(code),
            ));
        }
        match u32::try_from(found.partitions().len()) {
            Ok(0) => Err(Error::Unavailable {
                reason: "kafka metadata lists a topic without partitions".into(),
            }),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(Error::Internal("too many partitions".into())),
        }
    }

    /// The end offset (high watermark) of each partition of `topic`.
    /// The low and high watermarks of each partition, asked through the producer's client:
    /// a consumer's own handle must not be used for this (librdkafka 2.12 against tansu
    /// corrupted the subscribed consumer's metadata cache when it also answered watermark
    /// queries, and crashed; found by the pipeline benchmark).
    pub(crate) async fn watermarks(
        &self,
        partitions: Vec<(String, u32)>,
    ) -> Result<Vec<(u64, u64)>> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            partitions
                .iter()
                .map(|(topic, p)| {
                    producer
                        .client()
                        .fetch_watermarks(topic, *p as i32, timeout)
                        .map(|(low, high)| {
                            (
                                u64::try_from(low).unwrap_or(0),
                                u64::try_from(high).unwrap_or(0),
                            )
                        })
                        .map_err(|e| map_error("offset request", e))
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Internal(format!("offset task failed: {e}").into()))?
    }

    async fn ends(&self, topic: String, partitions: u32) -> Result<Vec<u64>> {
        let all = (0..partitions).map(|p| (topic.clone(), p)).collect();
        Ok(self
            .watermarks(all)
            .await?
            .into_iter()
            .map(|(_, high)| high)
            .collect())
    }
}

impl KafkaEventBus {
    /// Connects with `config` (clients connect lazily; nothing is checked on the network
    /// here). `InvalidInput` for bad settings.
    pub fn new(config: KafkaEventBusConfig) -> Result<Self> {
        config.validate()?;
        let producer: FutureProducer = config
            .producer()
            .create()
            .map_err(|e| client_error("producer", e))?;
        let admin: AdminClient<DefaultClientContext> = config
            .admin()
            .create()
            .map_err(|e| client_error("admin client", e))?;
        let probe = TopicProbe {
            producer: producer.clone(),
            timeout: config.request_timeout,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                producer,
                admin,
                probe,
                clock: Arc::new(SystemClock),
                topics: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Connects to `kafka://host:port[,host:port][?...]`; see [`KafkaEventBusConfig::from_url`].
    pub fn from_url(url: &str) -> Result<Self> {
        Self::new(KafkaEventBusConfig::from_url(url)?)
    }

    /// Uses `clock` to stamp records published without a timestamp (call before cloning).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.clock = clock;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(shared) => {
                tracing::warn!("with_clock on a shared KafkaEventBus is ignored");
                Self { inner: shared }
            }
        }
    }

    /// The settings.
    pub fn config(&self) -> &KafkaEventBusConfig {
        &self.inner.config
    }

    /// Waits until every record published so far is delivered or failed, at most `timeout`
    /// (`Unavailable` if some are still pending).
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let producer = self.inner.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| Error::Internal(format!("flush task failed: {e}").into()))?
            .map_err(|e| map_error("flush", e))
    }

    /// The broker name of `topic` (checked, prefix added).
    fn broker_name(&self, topic: &str) -> Result<String> {
        validate_topic(topic)?;
        let full = format!("{}{topic}", self.inner.config.topic_prefix);
        if full.len() > MAX_TOPIC_LEN {
            return Err(Error::invalid(
                "topic",
                format!("with the topic prefix, must be at most {MAX_TOPIC_LEN} characters"),
            ));
        }
        Ok(full)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, u32)>> {
        self.inner
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The partition count of a topic (broker name), from the cache or the broker.
    async fn partition_count(&self, full: &str) -> Result<Option<u32>> {
        if let Some((count, _)) = self.cache().get(full) {
            return Ok(Some(*count));
        }
        let found = self.inner.probe.partitions(vec![full.to_owned()]).await?;
        let count = found.get(full).copied().flatten();
        if let Some(count) = count {
            self.cache().entry(full.to_owned()).or_insert((count, 0));
        }
        Ok(count)
    }

    /// Polls metadata until `check` holds for every topic, at most the request timeout.
    async fn settle(
        &self,
        topics: &[String],
        check: impl Fn(Option<u32>) -> bool,
    ) -> Result<BTreeMap<String, Option<u32>>> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            let found = self.inner.probe.partitions(topics.to_vec()).await?;
            if found.values().all(|count| check(*count)) {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    reason: "kafka metadata did not show the topic change in time".into(),
                });
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    fn admin_options(&self) -> AdminOptions {
        let timeout = self.inner.config.request_timeout;
        AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout))
    }
}

fn client_error(what: &str, error: rdkafka::error::KafkaError) -> Error {
    match error {
        rdkafka::error::KafkaError::ClientConfig(_, description, _, _) => Error::invalid(
            "properties",
            format!("librdkafka rejected the {what} configuration: {description}"),
        ),
        other => Error::backend(BACKEND, other),
    }
}

#[async_trait]
impl EventPublisher for KafkaEventBus {
    async fn publish(&self, record: Record) -> Result<Position> {
        validate_record(&record, self.inner.config.max_record_bytes)?;
        let full = self.broker_name(&record.topic)?;
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
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in record.headers.iter() {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let mut outgoing = FutureRecord::to(&full)
            .payload(&record.payload)
            .partition(partition as i32)
            .timestamp(timestamp.timestamp_millis())
            .headers(headers);
        if let Some(key) = &record.key {
            outgoing = outgoing.key(key);
        }
        let result = self
            .inner
            .producer
            .send(outgoing, self.inner.config.delivery_timeout)
            .await;
        match result {
            Ok(delivery) => Ok(Position::new(
                u32::try_from(delivery.partition).unwrap_or(partition),
                u64::try_from(delivery.offset)
                    .map_err(|_| Error::Internal("the broker returned no offset".into()))?,
            )),
            Err((e, _)) => {
                let error = map_error("publish", e);
                if matches!(error, Error::NotFound { .. }) {
                    self.cache().remove(&full);
                }
                Err(error)
            }
        }
    }
}

#[async_trait]
impl EventBus for KafkaEventBus {
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<()> {
        validate_topic_set(specs)?;
        let names = specs
            .iter()
            .map(|s| self.broker_name(&s.name))
            .collect::<Result<Vec<_>>>()?;
        let existing = self.inner.probe.partitions(names.clone()).await?;
        let conflict = |name: &str, count: u32| {
            Error::conflict(format!("topic {name} exists with {count} partitions"))
        };
        for (spec, full) in specs.iter().zip(&names) {
            if let Some(Some(count)) = existing.get(full) {
                if *count != spec.partitions {
                    return Err(conflict(&spec.name, *count));
                }
            }
        }
        let replication = self.inner.config.replication_factor.map_or(-1, i32::from);
        let missing: Vec<(&TopicSpec, &String)> = specs
            .iter()
            .zip(&names)
            .filter(|(_, full)| matches!(existing.get(*full), Some(None) | None))
            .collect();
        if !missing.is_empty() {
            let new_topics: Vec<NewTopic<'_>> = missing
                .iter()
                .map(|(spec, full)| {
                    NewTopic::new(
                        full,
                        spec.partitions as i32,
                        TopicReplication::Fixed(replication),
                    )
                })
                .collect();
            let results = self
                .inner
                .admin
                .create_topics(new_topics.iter(), &self.admin_options())
                .await
                .map_err(|e| map_error("create topics", e))?;
            for result in results {
                match result {
                    Ok(_) => {}
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => {
                        return Err(map_error(
                            "create topics",
                            rdkafka::error::KafkaError::AdminOp(code),
                        ));
                    }
                }
            }
            let created: Vec<String> = missing.iter().map(|(_, full)| (*full).clone()).collect();
            let found = self.settle(&created, |count| count.is_some()).await?;
            for (spec, full) in &missing {
                if let Some(Some(count)) = found.get(*full) {
                    if *count != spec.partitions {
                        return Err(conflict(&spec.name, *count));
                    }
                }
            }
        }
        let mut cache = self.cache();
        for (spec, full) in specs.iter().zip(names) {
            cache.entry(full).or_insert((spec.partitions, 0));
        }
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<bool> {
        let full = self.broker_name(name)?;
        self.cache().remove(&full);
        let results = self
            .inner
            .admin
            .delete_topics(&[full.as_str()], &self.admin_options())
            .await
            .map_err(|e| map_error("delete topic", e))?;
        let mut deleted = false;
        for result in results {
            match result {
                Ok(_) => deleted = true,
                Err((_, code)) if is_unknown_topic(code) => {}
                Err((_, code)) => {
                    return Err(map_error(
                        "delete topic",
                        rdkafka::error::KafkaError::AdminOp(code),
                    ));
                }
            }
        }
        if deleted {
            self.settle(&[full], |count| count.is_none()).await?;
        }
        Ok(deleted)
    }

    async fn topic_partitions(&self, topic: &str) -> Result<Option<u32>> {
        let full = self.broker_name(topic)?;
        let found = self.inner.probe.partitions(vec![full.clone()]).await?;
        Ok(found.get(&full).copied().flatten())
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn EventConsumer>> {
        spec.validate()?;
        let config = &self.inner.config;
        let topics = spec
            .topics
            .iter()
            .map(|t| self.broker_name(t))
            .collect::<Result<Vec<_>>>()?;
        let counts = self.inner.probe.partitions(topics.clone()).await?;
        if counts.values().any(Option::is_none) {
            return Err(Error::not_found("topic"));
        }
        let mut latest = HashMap::new();
        if spec.start == StartPosition::Latest {
            for (topic, count) in &counts {
                let ends = self
                    .inner
                    .probe
                    .ends(topic.clone(), count.unwrap_or(0))
                    .await?;
                for (partition, end) in ends.into_iter().enumerate() {
                    latest.insert((topic.clone(), partition as u32), end);
                }
            }
        }
        let group = format!("{}{}", config.topic_prefix, spec.group);
        let context = GroupContext::new(spec.start, latest, config.request_timeout);
        let consumer: StreamConsumer<GroupContext> = config
            .consumer(&group, spec.start)
            .create_with_context(context)
            .map_err(|e| client_error("consumer", e))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| map_error("subscribe", e))?;
        Ok(Box::new(KafkaEventConsumer::new(
            consumer,
            group,
            config.topic_prefix.clone(),
            topics,
            spec.max_in_flight,
            self.inner.clock.clone(),
            self.inner.probe.clone(),
        )))
    }
}
