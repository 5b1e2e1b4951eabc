//! The in-process event bus: the embedded default, no broker needed.
//!
//! - **Topics** hold their partitions in memory. Offsets start at 0 and are contiguous.
//! - **Retention**: each partition keeps at most
//!   [`with_retention`](InMemoryEventBusBuilder::with_retention) records (100 000 by default).
//!   Past it the oldest records are dropped, whether or not every group has read them, as a
//!   Kafka topic's retention does; a group whose committed position fell behind the oldest
//!   retained record resumes at the oldest retained record (the dropped ones are lost to it, and
//!   a warning is logged). Backpressure (below) keeps this from happening to an **active** group
//!   (one with a live consumer of the topic), because the backlog bound may not exceed the
//!   retention; only groups without consumers can lose records.
//! - **Backpressure**: a publish waits while the slowest active group's backlog on the target
//!   partition (records after its committed position) is at
//!   [`with_max_backlog`](InMemoryEventBusBuilder::with_max_backlog) (10 000 by default). It
//!   fails with `Unavailable` once the
//!   [publish timeout](InMemoryEventBusBuilder::with_publish_timeout) (30 s by default) has
//!   passed on the bus [`Clock`]; a waiting publisher re-reads the clock at least every
//!   [tick](InMemoryEventBusBuilder::with_tick), so tests drive the timeout with a
//!   [`ManualClock`](openframe_core::ManualClock) instead of sleeping.
//! - **Consumer groups** keep a committed position per partition. The partitions of each topic
//!   are dealt round-robin to the group's live consumers of that topic (in the order they
//!   joined), recomputed whenever one joins or leaves; a consumer keeps the partitions it still
//!   owns and loses the others, whose uncommitted records the new owner receives again. A
//!   group without committed position on a partition starts where its joining consumer's
//!   [`StartPosition`] says, and that start counts as committed from then on.
//!
//! Everything is lost when the process exits.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use openframe_core::ManualClock;
//! use openframe_stream::bus::memory::InMemoryEventBus;
//!
//! let clock = Arc::new(ManualClock::default());
//! let bus = InMemoryEventBus::builder()
//!     .with_clock(clock)
//!     .with_max_backlog(1_000)
//!     .with_publish_timeout(Duration::from_secs(5))
//!     .build()
//!     .unwrap();
//! # let _ = bus;
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Clock, Error, Result, SystemClock};
use tokio::sync::Notify;

use super::{
    ConsumerSpec, DEFAULT_MAX_RECORD_BYTES, Delivered, EventBus, EventConsumer, EventPublisher,
    PartitionLag, Position, Record, StartPosition, TopicSpec, partition_for_key, to_millis,
    validate_record, validate_topic, validate_topic_set,
};

/// Default retention, in records per partition.
pub const DEFAULT_RETENTION: usize = 100_000;

/// Default bound on the slowest active group's backlog per partition, in records.
pub const DEFAULT_MAX_BACKLOG: usize = 10_000;

/// Default time a publish waits under backpressure before failing.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Default tick at which a publisher waiting under backpressure re-reads the clock.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

/// The in-process [`EventBus`]. Cloning shares the bus.
#[derive(Clone)]
pub struct InMemoryEventBus {
    inner: Arc<Inner>,
}

impl fmt::Debug for InMemoryEventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryEventBus")
            .field("retention", &self.inner.retention)
            .field("max_backlog", &self.inner.max_backlog)
            .field("publish_timeout", &self.inner.publish_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds an [`InMemoryEventBus`].
#[derive(Debug, Clone)]
pub struct InMemoryEventBusBuilder {
    clock: Arc<dyn Clock>,
    tick: Duration,
    retention: usize,
    max_backlog: usize,
    publish_timeout: Duration,
    max_record_bytes: usize,
}

impl Default for InMemoryEventBusBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventBusBuilder {
    /// The defaults: system clock, 100 ms tick, 100 000 records retained per partition, backlog
    /// bound 10 000, publish timeout 30 s, 1 MiB records.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            tick: DEFAULT_TICK,
            retention: DEFAULT_RETENTION,
            max_backlog: DEFAULT_MAX_BACKLOG,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// The clock that stamps records and decides publish timeouts.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often a publisher waiting under backpressure re-reads the clock (1 ms to 10 s).
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// How many records a partition keeps before dropping the oldest (at least 1).
    pub fn with_retention(mut self, records: usize) -> Self {
        self.retention = records;
        self
    }

    /// The backlog (records after the committed position) of the slowest active group on a
    /// partition at which publishes to that partition wait (1 to the retention).
    pub fn with_max_backlog(mut self, records: usize) -> Self {
        self.max_backlog = records;
        self
    }

    /// How long a publish waits under backpressure before failing with `Unavailable` (zero
    /// fails at once).
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// The largest record (key, payload and headers) accepted (at least 1 byte).
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// The bus; `InvalidInput` for out-of-range settings.
    pub fn build(self) -> Result<InMemoryEventBus> {
        if self.tick < Duration::from_millis(1) || self.tick > Duration::from_secs(10) {
            return Err(Error::invalid("tick", "must be between 1 ms and 10 s"));
        }
        if self.retention == 0 {
            return Err(Error::invalid("retention", "must be at least 1"));
        }
        if self.max_backlog == 0 || self.max_backlog > self.retention {
            return Err(Error::invalid(
                "maxBacklog",
                "must be between 1 and the retention",
            ));
        }
        if chrono::Duration::from_std(self.publish_timeout).is_err() {
            return Err(Error::invalid("publishTimeout", "is too large"));
        }
        if self.max_record_bytes == 0 {
            return Err(Error::invalid("maxRecordBytes", "must be at least 1"));
        }
        Ok(self.into_bus())
    }

    fn into_bus(self) -> InMemoryEventBus {
        InMemoryEventBus {
            inner: Arc::new(Inner {
                clock: self.clock,
                tick: self.tick,
                retention: self.retention,
                max_backlog: self.max_backlog,
                publish_timeout: chrono::Duration::from_std(self.publish_timeout)
                    .unwrap_or(chrono::Duration::MAX),
                max_record_bytes: self.max_record_bytes,
                state: Mutex::new(State::default()),
                changed: Notify::new(),
            }),
        }
    }
}

impl Default for InMemoryEventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventBus {
    /// A bus with the default settings (see [`InMemoryEventBusBuilder::new`]).
    pub fn new() -> Self {
        InMemoryEventBusBuilder::new().into_bus()
    }

    /// A builder.
    pub fn builder() -> InMemoryEventBusBuilder {
        InMemoryEventBusBuilder::new()
    }
}

#[derive(Debug)]
struct Inner {
    clock: Arc<dyn Clock>,
    tick: Duration,
    retention: usize,
    max_backlog: usize,
    publish_timeout: chrono::Duration,
    max_record_bytes: usize,
    state: Mutex<State>,
    /// Woken on every change a waiter may care about: a publish, a commit, a rebalance.
    changed: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the state is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A (topic, partition).
type Tp = (String, u32);

#[derive(Debug, Default)]
struct State {
    topics: HashMap<String, Topic>,
    groups: HashMap<String, Group>,
    next_member: u64,
}

#[derive(Debug)]
struct Topic {
    partitions: Vec<Partition>,
    next_round_robin: u32,
}

impl Topic {
    fn partition_count(&self) -> u32 {
        u32::try_from(self.partitions.len()).unwrap_or(u32::MAX)
    }
}

#[derive(Debug, Default)]
struct Partition {
    /// The offset of the oldest retained record.
    start: u64,
    records: VecDeque<Record>,
}

impl Partition {
    /// The offset the next record gets.
    fn end(&self) -> u64 {
        self.start + self.records.len() as u64
    }

    fn get(&self, offset: u64) -> Option<&Record> {
        let index = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        self.records.get(index)
    }
}

#[derive(Debug, Default)]
struct Group {
    /// The next offset to read, per partition.
    committed: HashMap<Tp, u64>,
    /// Partitions a member of the group committed at least once (the others only hold the
    /// group's start in `committed`).
    acknowledged: HashSet<Tp>,
    members: BTreeMap<u64, Member>,
}

#[derive(Debug)]
struct Member {
    topics: Vec<String>,
    start: StartPosition,
    max_in_flight: usize,
    /// Assigned partitions with the next offset to deliver.
    assigned: BTreeMap<Tp, u64>,
    /// Where the next read starts looking, for fairness between partitions.
    cursor: usize,
    /// A topic it reads was deleted: it delivers nothing more.
    ended: bool,
}

impl Group {
    /// Deals every subscribed topic's partitions round-robin to the live members reading it,
    /// keeping a member's fetch position on partitions it still owns.
    fn rebalance(&mut self, topics: &HashMap<String, Topic>) {
        let Group {
            committed, members, ..
        } = self;
        let mut readers: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (id, member) in members.iter().filter(|(_, m)| !m.ended) {
            for topic in &member.topics {
                readers.entry(topic.as_str()).or_default().push(*id);
            }
        }
        let mut wanted: HashMap<u64, BTreeSet<Tp>> = HashMap::new();
        for (topic, ids) in &readers {
            let Some(count) = topics.get(*topic).map(Topic::partition_count) else {
                continue;
            };
            for partition in 0..count {
                let owner = ids[partition as usize % ids.len()];
                wanted
                    .entry(owner)
                    .or_default()
                    .insert(((*topic).to_owned(), partition));
            }
        }
        for (id, member) in members.iter_mut() {
            let mine = wanted.remove(id).unwrap_or_default();
            member.assigned.retain(|tp, _| mine.contains(tp));
            for tp in mine {
                if member.assigned.contains_key(&tp) {
                    continue;
                }
                let Some(partition) = topics
                    .get(&tp.0)
                    .and_then(|t| t.partitions.get(tp.1 as usize))
                else {
                    continue;
                };
                let start = match member.start {
                    StartPosition::Earliest => partition.start,
                    StartPosition::Latest => partition.end(),
                };
                let next = *committed.entry(tp.clone()).or_insert(start);
                member.assigned.insert(tp, next);
            }
        }
    }

    /// Whether a live member reads `topic`.
    fn is_active_on(&self, topic: &str) -> bool {
        self.members
            .values()
            .any(|m| !m.ended && m.topics.iter().any(|t| t == topic))
    }
}

#[async_trait]
impl EventPublisher for InMemoryEventBus {
    async fn publish(&self, record: Record) -> Result<Position> {
        let inner = &self.inner;
        validate_record(&record, inner.max_record_bytes)?;
        let now = inner.clock.now();
        let timestamp = to_millis(record.timestamp.unwrap_or(now));
        let deadline = now
            .checked_add_signed(inner.publish_timeout)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let mut record = Some(Record {
            timestamp: Some(timestamp),
            ..record
        });
        let mut chosen: Option<u32> = None;
        loop {
            let notified = inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let slowest = {
                let mut guard = inner.lock();
                let State { topics, groups, .. } = &mut *guard;
                let Some(pending) = record.as_ref() else {
                    return Err(Error::Internal("publish lost its record".into()));
                };
                let Some(topic) = topics.get_mut(&pending.topic) else {
                    return Err(Error::not_found("topic"));
                };
                let count = topic.partition_count();
                let index = match chosen {
                    Some(p) if p < count => p,
                    _ => {
                        let p = match &pending.key {
                            Some(key) => partition_for_key(key, count),
                            None => {
                                let p = topic.next_round_robin % count;
                                topic.next_round_robin = (p + 1) % count;
                                p
                            }
                        };
                        chosen = Some(p);
                        p
                    }
                };
                let Some(partition) = topic.partitions.get_mut(index as usize) else {
                    return Err(Error::Internal("partition out of range".into()));
                };
                let tp = (pending.topic.clone(), index);
                let slowest = groups
                    .iter()
                    .filter(|(_, g)| g.is_active_on(&tp.0))
                    .map(|(name, g)| {
                        let committed = g.committed.get(&tp).copied().unwrap_or(partition.start);
                        (partition.end() - committed.max(partition.start), name)
                    })
                    .max();
                match slowest {
                    Some((backlog, name)) if backlog >= inner.max_backlog as u64 => name.clone(),
                    _ => {
                        let offset = partition.end();
                        let Some(record) = record.take() else {
                            return Err(Error::Internal("publish lost its record".into()));
                        };
                        partition.records.push_back(record);
                        let mut dropped = 0usize;
                        while partition.records.len() > inner.retention {
                            partition.records.pop_front();
                            partition.start += 1;
                            dropped += 1;
                        }
                        if dropped > 0 {
                            tracing::trace!(topic = %tp.0, partition = index, dropped, "retention dropped records");
                        }
                        drop(guard);
                        inner.changed.notify_waiters();
                        return Ok(Position::new(index, offset));
                    }
                }
            };
            if inner.clock.now() >= deadline {
                tracing::warn!(group = %slowest, "publish timed out under backpressure");
                return Err(Error::Unavailable {
                    reason: format!(
                        "backpressure: consumer group {slowest} has {} uncommitted records on the partition",
                        inner.max_backlog
                    )
                    .into(),
                });
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(inner.tick) => {}
            }
        }
    }
}

#[async_trait]
impl EventBus for InMemoryEventBus {
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<()> {
        validate_topic_set(specs)?;
        let mut state = self.inner.lock();
        for spec in specs {
            if let Some(existing) = state.topics.get(&spec.name) {
                if existing.partition_count() != spec.partitions {
                    return Err(Error::conflict(format!(
                        "topic {} exists with {} partitions",
                        spec.name,
                        existing.partition_count()
                    )));
                }
            }
        }
        for spec in specs {
            state
                .topics
                .entry(spec.name.clone())
                .or_insert_with(|| Topic {
                    partitions: (0..spec.partitions).map(|_| Partition::default()).collect(),
                    next_round_robin: 0,
                });
        }
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<bool> {
        validate_topic(name)?;
        let mut guard = self.inner.lock();
        let State { topics, groups, .. } = &mut *guard;
        if topics.remove(name).is_none() {
            return Ok(false);
        }
        for group in groups.values_mut() {
            group.committed.retain(|tp, _| tp.0 != name);
            group.acknowledged.retain(|tp| tp.0 != name);
            let mut changed = false;
            for member in group.members.values_mut() {
                if member.topics.iter().any(|t| t == name) {
                    member.ended = true;
                    member.assigned.clear();
                    changed = true;
                }
            }
            if changed {
                group.rebalance(topics);
            }
        }
        drop(guard);
        self.inner.changed.notify_waiters();
        Ok(true)
    }

    async fn topic_partitions(&self, topic: &str) -> Result<Option<u32>> {
        validate_topic(topic)?;
        Ok(self
            .inner
            .lock()
            .topics
            .get(topic)
            .map(Topic::partition_count))
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn EventConsumer>> {
        spec.validate()?;
        let mut guard = self.inner.lock();
        let State {
            topics,
            groups,
            next_member,
        } = &mut *guard;
        if spec.topics.iter().any(|t| !topics.contains_key(t)) {
            return Err(Error::not_found("topic"));
        }
        let id = *next_member;
        *next_member += 1;
        let group = groups.entry(spec.group.clone()).or_default();
        group.members.insert(
            id,
            Member {
                topics: spec.topics.clone(),
                start: spec.start,
                max_in_flight: spec.max_in_flight,
                assigned: BTreeMap::new(),
                cursor: 0,
                ended: false,
            },
        );
        group.rebalance(topics);
        drop(guard);
        self.inner.changed.notify_waiters();
        Ok(Box::new(InMemoryEventConsumer {
            inner: self.inner.clone(),
            group: spec.group,
            id,
        }))
    }
}

/// A member of a consumer group on an [`InMemoryEventBus`]; dropping it leaves the group.
pub struct InMemoryEventConsumer {
    inner: Arc<Inner>,
    group: String,
    id: u64,
}

impl fmt::Debug for InMemoryEventConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryEventConsumer")
            .field("group", &self.group)
            .field("member", &self.id)
            .finish()
    }
}

/// What one attempt to read found.
enum Take {
    Record(Delivered),
    Nothing,
    Ended,
}

impl InMemoryEventConsumer {
    fn try_take(&self) -> Result<Take> {
        let mut guard = self.inner.lock();
        let State { topics, groups, .. } = &mut *guard;
        let Some(group) = groups.get_mut(&self.group) else {
            return Ok(Take::Ended);
        };
        let Group {
            committed, members, ..
        } = group;
        let Some(member) = members.get_mut(&self.id) else {
            return Ok(Take::Ended);
        };
        if member.ended {
            return Ok(Take::Ended);
        }
        // Skip records retention dropped, then count what is delivered but uncommitted.
        let mut in_flight = 0u64;
        for (tp, next) in member.assigned.iter_mut() {
            let Some(partition) = topics
                .get(&tp.0)
                .and_then(|t| t.partitions.get(tp.1 as usize))
            else {
                continue;
            };
            if *next < partition.start {
                tracing::warn!(
                    group = %self.group, topic = %tp.0, partition = tp.1,
                    lost = partition.start - *next,
                    "records were dropped by retention before this group read them"
                );
                *next = partition.start;
            }
            let done = committed.get(tp).copied().unwrap_or(0).max(partition.start);
            in_flight += next.saturating_sub(done);
        }
        if in_flight >= member.max_in_flight as u64 {
            return Err(Error::conflict(
                "max_in_flight records are delivered and uncommitted; commit before reading more",
            ));
        }
        let count = member.assigned.len();
        if count == 0 {
            return Ok(Take::Nothing);
        }
        let first = member.cursor % count;
        let entries = member.assigned.iter().enumerate();
        let found = entries
            .clone()
            .skip(first)
            .chain(entries.take(first))
            .find_map(|(i, (tp, next))| {
                let partition = topics.get(&tp.0)?.partitions.get(tp.1 as usize)?;
                let record = partition.get(*next)?;
                Some((i, tp.clone(), *next, record.clone()))
            });
        if let Some((i, tp, offset, record)) = found {
            member.cursor = i + 1;
            let position = Position::new(tp.1, offset);
            member.assigned.insert(tp, offset + 1);
            return Ok(Take::Record(Delivered::new(record, position)));
        }
        Ok(Take::Nothing)
    }
}

#[async_trait]
impl EventConsumer for InMemoryEventConsumer {
    async fn next(&mut self) -> Result<Option<Delivered>> {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_take()? {
                Take::Record(delivered) => return Ok(Some(delivered)),
                Take::Ended => return Ok(None),
                Take::Nothing => notified.await,
            }
        }
    }

    async fn commit(&mut self, topic: &str, positions: &[Position]) -> Result<()> {
        validate_topic(topic)?;
        let mut guard = self.inner.lock();
        let Some(Group {
            committed,
            acknowledged,
            members,
        }) = guard.groups.get_mut(&self.group)
        else {
            return Err(Error::conflict("the consumer left its group"));
        };
        let Some(member) = members.get(&self.id) else {
            return Err(Error::conflict("the consumer left its group"));
        };
        for position in positions {
            let tp = (topic.to_owned(), position.partition);
            let Some(next) = member.assigned.get(&tp) else {
                return Err(Error::conflict(
                    "the partition is not assigned to this consumer (rebalanced)",
                ));
            };
            if position.offset >= *next {
                return Err(Error::invalid(
                    "position",
                    "was not delivered to this consumer",
                ));
            }
        }
        for position in positions {
            let tp = (topic.to_owned(), position.partition);
            let value = committed.entry(tp.clone()).or_insert(0);
            *value = (*value).max(position.offset + 1);
            acknowledged.insert(tp);
        }
        drop(guard);
        self.inner.changed.notify_waiters();
        Ok(())
    }

    async fn lag(&mut self) -> Result<Vec<PartitionLag>> {
        let state = self.inner.lock();
        let Some(group) = state.groups.get(&self.group) else {
            return Ok(Vec::new());
        };
        let Some(member) = group.members.get(&self.id) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(member.assigned.len());
        for tp in member.assigned.keys() {
            let Some(partition) = state
                .topics
                .get(&tp.0)
                .and_then(|t| t.partitions.get(tp.1 as usize))
            else {
                continue;
            };
            // The rebalance recorded where the group starts, so this is always set.
            let resume = group.committed.get(tp).copied().unwrap_or(partition.start);
            let end = partition.end();
            out.push(PartitionLag::new(
                tp.0.clone(),
                tp.1,
                group.acknowledged.contains(tp).then_some(resume),
                end,
                end.saturating_sub(resume.max(partition.start)),
            ));
        }
        Ok(out)
    }

    fn assignment(&self) -> Vec<(String, u32)> {
        let state = self.inner.lock();
        state
            .groups
            .get(&self.group)
            .and_then(|g| g.members.get(&self.id))
            .map(|m| m.assigned.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for InMemoryEventConsumer {
    fn drop(&mut self) {
        let mut guard = self.inner.lock();
        let State { topics, groups, .. } = &mut *guard;
        if let Some(group) = groups.get_mut(&self.group) {
            if group.members.remove(&self.id).is_some() {
                group.rebalance(topics);
            }
        }
        drop(guard);
        self.inner.changed.notify_waiters();
    }
}
