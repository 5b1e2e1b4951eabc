//! A member of a Kafka consumer group: manual commits, eager rebalancing, in-flight bound.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Clock, Error, Headers, Result};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::error::{BACKEND, is_transient, is_unknown_topic, map_commit_error, map_error};
use crate::bus::{
    Delivered, EventConsumer, PartitionLag, Position, Record, StartPosition, validate_topic,
};

/// A topic (as named on the broker) and a partition.
type Tp = (String, u32);

/// What this member knows about one assigned partition.
#[derive(Debug, Default)]
struct PartitionState {
    /// The offset after the last record delivered since the assignment.
    next: Option<u64>,
    /// The offset after the last record this member committed since the assignment.
    committed: Option<u64>,
    /// Offsets delivered and not yet committed.
    in_flight: BTreeSet<u64>,
}

/// The assignment, shared between the consumer and the rebalance callback.
#[derive(Debug, Default)]
struct Assignment {
    partitions: BTreeMap<Tp, PartitionState>,
    /// What the last revocation took away: an eager rebalance revokes everything, and the
    /// partitions this member gets back keep what it knew (delivered, committed).
    revoked: BTreeMap<Tp, PartitionState>,
}

fn lock(shared: &Mutex<Assignment>) -> MutexGuard<'_, Assignment> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The librdkafka context: applies assignments with the right start offsets and tracks them.
pub(super) struct GroupContext {
    shared: Arc<Mutex<Assignment>>,
    start: StartPosition,
    /// For [`StartPosition::Latest`]: each partition's end when the consumer was created, so a
    /// late assignment still starts at what was the end when `consumer` returned.
    latest: HashMap<Tp, u64>,
    timeout: Duration,
}

impl GroupContext {
    pub(super) fn new(start: StartPosition, latest: HashMap<Tp, u64>, timeout: Duration) -> Self {
        Self {
            shared: Arc::default(),
            start,
            latest,
            timeout,
        }
    }

    /// `tpl` with explicit start offsets for partitions the group never committed, when the
    /// consumer starts `Latest`.
    fn start_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> TopicPartitionList {
        if self.start == StartPosition::Earliest {
            return tpl.clone();
        }
        let committed = match consumer.committed_offsets(tpl.clone(), self.timeout) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets; starting at the end");
                return tpl.clone();
            }
        };
        let mut out = TopicPartitionList::with_capacity(committed.count());
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(n) if n >= 0 => Offset::Offset(n),
                _ => {
                    let tp = (element.topic().to_owned(), element.partition() as u32);
                    match self.latest.get(&tp) {
                        Some(end) => Offset::Offset(*end as i64),
                        None => Offset::End,
                    }
                }
            };
            if let Err(e) = out.add_partition_offset(element.topic(), element.partition(), offset) {
                tracing::warn!(error = %e, "cannot set a start offset");
            }
        }
        out
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let assignment = self.start_offsets(consumer, tpl);
            let mut shared = lock(&self.shared);
            let mut previous = std::mem::take(&mut shared.revoked);
            shared.partitions = assignment
                .elements()
                .iter()
                .map(|e| {
                    let tp = (e.topic().to_owned(), e.partition() as u32);
                    let state = previous.remove(&tp).unwrap_or_default();
                    (tp, state)
                })
                .collect();
            drop(shared);
            if let Err(e) = consumer.assign(&assignment) {
                tracing::warn!(error = %e, "cannot apply the partition assignment");
            }
        } else {
            if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                tracing::warn!(error = ?err, "rebalance error; dropping the assignment");
            }
            let mut shared = lock(&self.shared);
            shared.revoked = std::mem::take(&mut shared.partitions);
            drop(shared);
            if let Err(e) = consumer.unassign() {
                tracing::warn!(error = %e, "cannot drop the partition assignment");
            }
        }
    }
}

/// A member of a consumer group on a [`KafkaEventBus`](super::KafkaEventBus); dropping it
/// leaves the group (librdkafka closes it, which blocks briefly for the leave request).
pub struct KafkaEventConsumer {
    consumer: Arc<StreamConsumer<GroupContext>>,
    shared: Arc<Mutex<Assignment>>,
    group: String,
    prefix: String,
    topics: Vec<String>,
    max_in_flight: usize,
    clock: Arc<dyn Clock>,
    probe: super::TopicProbe,
    ended: bool,
}

impl fmt::Debug for KafkaEventConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaEventConsumer")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl KafkaEventConsumer {
    pub(super) fn new(
        consumer: StreamConsumer<GroupContext>,
        group: String,
        prefix: String,
        topics: Vec<String>,
        max_in_flight: usize,
        clock: Arc<dyn Clock>,
        probe: super::TopicProbe,
    ) -> Self {
        let shared = consumer.context().shared.clone();
        Self {
            consumer: Arc::new(consumer),
            shared,
            group,
            prefix,
            topics,
            max_in_flight,
            clock,
            probe,
            ended: false,
        }
    }

    /// Records the delivery of `message` and converts it; `None` if its partition is not
    /// (or no longer) assigned.
    fn deliver(&self, message: &BorrowedMessage<'_>) -> Option<Delivered> {
        let partition = u32::try_from(message.partition()).ok()?;
        let offset = u64::try_from(message.offset()).ok()?;
        let tp = (message.topic().to_owned(), partition);
        {
            let mut shared = lock(&self.shared);
            let state = shared.partitions.get_mut(&tp)?;
            state.next = Some(state.next.map_or(offset + 1, |n| n.max(offset + 1)));
            state.in_flight.insert(offset);
        }
        let topic = message
            .topic()
            .strip_prefix(self.prefix.as_str())
            .unwrap_or(message.topic())
            .to_owned();
        let mut headers = Headers::new();
        if let Some(borrowed) = message.headers() {
            for header in borrowed.iter() {
                let value = header
                    .value
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                headers.append(header.key, value);
            }
        }
        let timestamp = message
            .timestamp()
            .to_millis()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or_else(|| crate::bus::to_millis(self.clock.now()));
        let record = Record {
            topic,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
            timestamp: Some(timestamp),
        };
        Some(Delivered::new(record, Position::new(partition, offset)))
    }

    fn in_flight(&self) -> usize {
        lock(&self.shared)
            .partitions
            .values()
            .map(|p| p.in_flight.len())
            .sum()
    }

    /// The group's committed offset and the low and high watermarks of each of `partitions`,
    /// asked from the broker (blocking librdkafka calls, run on the blocking pool).
    async fn offsets(&self, partitions: Vec<Tp>) -> Result<Vec<(Tp, Option<u64>, u64, u64)>> {
        // Watermarks through the bus's producer client (see `TopicProbe::watermarks`); the
        // group's commits through the consumer.
        let marks = self.probe.watermarks(partitions.clone()).await?;
        let consumer = self.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || {
            let timeout = consumer.context().timeout;
            let mut tpl = TopicPartitionList::with_capacity(partitions.len());
            for (topic, partition) in &partitions {
                tpl.add_partition(topic, *partition as i32);
            }
            consumer
                .committed_offsets(tpl, timeout)
                .map(|committed| (partitions, committed))
                .map_err(|e| map_error("offset request", e))
        })
        .await
        .map_err(|e| Error::Internal(format!("offset task failed: {e}").into()))?;
        let (partitions, committed) = committed?;
        Ok(partitions
            .into_iter()
            .zip(marks)
            .map(|((topic, partition), (low, high))| {
                let done = committed
                    .find_partition(&topic, partition as i32)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(n) => u64::try_from(n).ok(),
                        _ => None,
                    });
                ((topic, partition), done, low, high)
            })
            .collect())
    }

    /// Whether every topic this consumer reads still exists.
    async fn topics_exist(&self) -> Result<bool> {
        let counts = self.probe.partitions(self.topics.clone()).await?;
        Ok(counts.values().all(Option::is_some))
    }
}

#[async_trait]
impl EventConsumer for KafkaEventConsumer {
    async fn next(&mut self) -> Result<Option<Delivered>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if self.in_flight() >= self.max_in_flight {
                return Err(Error::conflict(
                    "max_in_flight records are delivered and uncommitted; commit before reading more",
                ));
            }
            let error = match self.consumer.recv().await {
                Ok(message) => match self.deliver(&message) {
                    Some(delivered) => return Ok(Some(delivered)),
                    None => continue,
                },
                Err(e) => e,
            };
            let code = error.rdkafka_error_code();
            match code {
                Some(code) if is_unknown_topic(code) => {
                    if !self.topics_exist().await? {
                        tracing::info!(group = %self.group, "a topic of this consumer was deleted; ending");
                        self.ended = true;
                    }
                }
                Some(code) if is_transient(code) => {
                    tracing::debug!(group = %self.group, error = %code, "transient consumer error");
                }
                _ if matches!(error, KafkaError::MessageConsumptionFatal(_)) => {
                    return Err(Error::backend(BACKEND, error));
                }
                Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset) => {
                    tracing::warn!(group = %self.group, error = %error, "offset reset by retention");
                }
                _ => return Err(map_error("consume", error)),
            }
        }
    }

    async fn commit(&mut self, topic: &str, positions: &[Position]) -> Result<()> {
        validate_topic(topic)?;
        let full = format!("{}{topic}", self.prefix);
        let mut wanted: BTreeMap<u32, u64> = BTreeMap::new();
        {
            let shared = lock(&self.shared);
            for position in positions {
                let Some(state) = shared.partitions.get(&(full.clone(), position.partition)) else {
                    return Err(Error::conflict(
                        "the partition is not assigned to this consumer (rebalanced)",
                    ));
                };
                if state.next.is_none_or(|next| position.offset >= next) {
                    return Err(Error::invalid(
                        "position",
                        "was not delivered to this consumer",
                    ));
                }
                let end = position.offset + 1;
                if state.committed.is_some_and(|c| c >= end) {
                    continue;
                }
                let slot = wanted.entry(position.partition).or_insert(end);
                *slot = (*slot).max(end);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(wanted.len());
        for (partition, end) in &wanted {
            tpl.add_partition_offset(&full, *partition as i32, Offset::Offset(*end as i64))
                .map_err(|e| Error::backend(BACKEND, e))?;
        }
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| Error::Internal(format!("commit task failed: {e}").into()))?
            .map_err(map_commit_error)?;
        let mut shared = lock(&self.shared);
        for (partition, end) in wanted {
            if let Some(state) = shared.partitions.get_mut(&(full.clone(), partition)) {
                state.committed = Some(state.committed.map_or(end, |c| c.max(end)));
                state.in_flight.retain(|offset| *offset >= end);
            }
        }
        Ok(())
    }

    async fn lag(&mut self) -> Result<Vec<PartitionLag>> {
        let assigned: Vec<Tp> = lock(&self.shared).partitions.keys().cloned().collect();
        if assigned.is_empty() {
            return Ok(Vec::new());
        }
        let context = self.consumer.context();
        let offsets = self.offsets(assigned).await?;
        Ok(offsets
            .into_iter()
            .map(|(tp, committed, low, high)| {
                // Where the group starts reading a partition it never committed.
                let start = match context.start {
                    StartPosition::Earliest => low,
                    StartPosition::Latest => context.latest.get(&tp).copied().unwrap_or(high),
                };
                let resume = committed.unwrap_or(start).max(low);
                let topic = tp.0.strip_prefix(self.prefix.as_str()).unwrap_or(&tp.0);
                PartitionLag::new(topic, tp.1, committed, high, high.saturating_sub(resume))
            })
            .collect())
    }

    fn assignment(&self) -> Vec<(String, u32)> {
        lock(&self.shared)
            .partitions
            .keys()
            .map(|(topic, partition)| {
                let topic = topic.strip_prefix(self.prefix.as_str()).unwrap_or(topic);
                (topic.to_owned(), *partition)
            })
            .collect()
    }
}
