//! The in-process agent bus: the embedded default, no external process needed.
//!
//! - **Subscriptions** are matched through a subject trie. Each has a bounded queue
//!   ([`InMemoryAgentBusBuilder::with_subscriber_capacity`], 4096 messages by default); when a
//!   subscriber falls that far behind, the **oldest** queued message is dropped (and a warning
//!   logged), so a slow subscriber never blocks a publisher. Ephemeral delivery is lossy by
//!   contract, as on NATS.
//! - **Streams** keep messages in memory with per-stream sequence numbers and enforce their
//!   limits (`max_age` by the bus clock, `max_messages`, `max_messages_per_subject`) on every
//!   append and read. The storage setting is ignored.
//! - **Durable consumers** keep a cursor, the deliveries awaiting acknowledgement and the
//!   messages due for redelivery. Redelivery deadlines are read from the injected
//!   [`Clock`]; a waiting consumer re-checks them at least every
//!   [tick](InMemoryAgentBusBuilder::with_tick) (100 ms by default), so tests drive redelivery
//!   with a [`ManualClock`](openframe_core::ManualClock) and a small tick instead of sleeping for
//!   `ack_wait`. Consumers are not limited in how many deliveries await acknowledgement (NATS
//!   defaults to 1000).
//!
//! Everything is lost when the process exits.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use openframe_agent::bus::memory::InMemoryAgentBus;
//! use openframe_core::ManualClock;
//!
//! let clock = Arc::new(ManualClock::default());
//! let bus = InMemoryAgentBus::builder()
//!     .with_clock(clock.clone())
//!     .with_tick(Duration::from_millis(5))
//!     .build()
//!     .unwrap();
//! # let _ = bus;
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openframe_core::{Clock, Error, Result, SystemClock, Timestamp};
use tokio::sync::Notify;

use super::trie::SubjectTrie;
use super::{
    AckKind, AgentBus, ConsumerSpec, DEFAULT_MAX_PAYLOAD, DeliverPolicy, Delivery, DeliveryAcker,
    DurableConsumer, Headers, Message, PublishAck, StreamSpec, Subscription, no_stream,
    validate_name, validate_publish, validate_stream_set,
};
use crate::subjects::{tokens_match, tokens_overlap, validate_pattern};

/// Default subscriber queue capacity, in messages.
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 4096;

/// Default tick at which waiting durable consumers re-check the clock.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

/// The in-process [`AgentBus`]. Cloning shares the bus (the server and in-process agents hold
/// clones of one bus).
#[derive(Clone)]
pub struct InMemoryAgentBus {
    inner: Arc<Inner>,
}

/// Builds an [`InMemoryAgentBus`].
#[derive(Debug, Clone)]
pub struct InMemoryAgentBusBuilder {
    clock: Arc<dyn Clock>,
    tick: Duration,
    subscriber_capacity: usize,
    max_payload: usize,
}

impl Default for InMemoryAgentBusBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryAgentBusBuilder {
    /// The defaults: system clock, 100 ms tick, 4096-message subscriber queues, 1 MiB messages.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            tick: DEFAULT_TICK,
            subscriber_capacity: DEFAULT_SUBSCRIBER_CAPACITY,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }

    /// The clock that decides redelivery and `max_age`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often a waiting consumer with unsettled deliveries re-reads the clock (1 ms to 10 s).
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// How many messages a subscription queues before dropping the oldest (at least 1).
    pub fn with_subscriber_capacity(mut self, capacity: usize) -> Self {
        self.subscriber_capacity = capacity;
        self
    }

    /// The largest message (payload plus headers) accepted (at least 1 byte).
    pub fn with_max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload;
        self
    }

    /// The bus; `InvalidInput` for out-of-range settings.
    pub fn build(self) -> Result<InMemoryAgentBus> {
        if self.tick < Duration::from_millis(1) || self.tick > Duration::from_secs(10) {
            return Err(Error::invalid("tick", "must be between 1 ms and 10 s"));
        }
        if self.subscriber_capacity == 0 {
            return Err(Error::invalid("subscriberCapacity", "must be at least 1"));
        }
        if self.max_payload == 0 {
            return Err(Error::invalid("maxPayload", "must be at least 1"));
        }
        Ok(InMemoryAgentBus {
            inner: Arc::new(Inner {
                clock: self.clock,
                tick: self.tick,
                subscriber_capacity: self.subscriber_capacity,
                max_payload: self.max_payload,
                state: Mutex::new(State::default()),
            }),
        })
    }
}

impl InMemoryAgentBus {
    /// A bus with the defaults of [`InMemoryAgentBusBuilder::new`].
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                clock: Arc::new(SystemClock),
                tick: DEFAULT_TICK,
                subscriber_capacity: DEFAULT_SUBSCRIBER_CAPACITY,
                max_payload: DEFAULT_MAX_PAYLOAD,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A builder.
    pub fn builder() -> InMemoryAgentBusBuilder {
        InMemoryAgentBusBuilder::new()
    }

    fn route(
        &self,
        subject: &str,
        payload: Vec<u8>,
        headers: Headers,
        durable: bool,
    ) -> Result<Option<PublishAck>> {
        let tokens = validate_publish(subject, &payload, &headers, self.inner.max_payload)?;
        let message = Message {
            subject: subject.to_owned(),
            payload,
            headers,
        };
        let now = self.inner.clock.now();
        let mut state = self.inner.lock();
        let ack = match state.streams.values_mut().find(|s| s.captures(&tokens)) {
            Some(stream) => Some(stream.append(message.clone(), &tokens, now)),
            None if durable => return Err(no_stream()),
            None => None,
        };
        state.fan_out(&tokens, &message);
        Ok(ack)
    }

    fn subscribe_to(&self, pattern: &str, group: Option<&str>) -> Result<Subscription> {
        let tokens: Vec<String> = validate_pattern(pattern)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if let Some(group) = group {
            validate_name("group", group)?;
        }
        let queue = Arc::new(SubQueue {
            buf: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            capacity: self.inner.subscriber_capacity,
            dropped: AtomicU64::new(0),
            pattern: pattern.to_owned(),
        });
        let id = {
            let mut state = self.inner.lock();
            let id = state.next_id();
            state.subscriptions.insert(
                &tokens,
                id,
                SubEntry {
                    queue: queue.clone(),
                    group: group.map(str::to_owned),
                },
            );
            id
        };
        let guard = SubGuard {
            inner: self.inner.clone(),
            pattern: tokens,
            id,
            queue,
        };
        let messages = futures::stream::unfold(guard, |guard| async move {
            loop {
                if let Some(message) = guard.queue.pop() {
                    return Some((message, guard));
                }
                guard.queue.notify.notified().await;
            }
        });
        Ok(Subscription::new(pattern, messages))
    }
}

impl Default for InMemoryAgentBus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryAgentBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("InMemoryAgentBus");
        // try_lock: formatting must never wait for (or deadlock on) the bus.
        match self.inner.state.try_lock() {
            Ok(state) => out
                .field("streams", &state.streams.keys().collect::<Vec<_>>())
                .field("subscriptions", &state.subscriptions.len()),
            Err(_) => out.field("state", &"<busy>"),
        };
        out.field("clock", &self.inner.clock)
            .field("tick", &self.inner.tick)
            .finish()
    }
}

#[async_trait]
impl AgentBus for InMemoryAgentBus {
    async fn publish(&self, subject: &str, payload: Vec<u8>, headers: Headers) -> Result<()> {
        self.route(subject, payload, headers, false).map(|_| ())
    }

    async fn publish_durable(
        &self,
        subject: &str,
        payload: Vec<u8>,
        headers: Headers,
    ) -> Result<PublishAck> {
        self.route(subject, payload, headers, true)?
            .ok_or_else(|| Error::Internal("a durable publish was not stored".into()))
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription> {
        self.subscribe_to(pattern, None)
    }

    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription> {
        self.subscribe_to(pattern, Some(group))
    }

    async fn ensure_streams(&self, specs: &[StreamSpec]) -> Result<()> {
        validate_stream_set(specs)?;
        let patterns = specs
            .iter()
            .map(|spec| owned_patterns(&spec.subjects))
            .collect::<Result<Vec<_>>>()?;
        let now = self.inner.clock.now();
        let mut state = self.inner.lock();
        for (spec, own) in specs.iter().zip(&patterns) {
            let clash = state.streams.values().find(|stream| {
                !specs.iter().any(|s| s.name == stream.spec.name)
                    && any_overlap(own, &stream.patterns)
            });
            if let Some(clash) = clash {
                return Err(Error::conflict(format!(
                    "the subjects of stream {} overlap those of stream {}",
                    spec.name, clash.spec.name
                )));
            }
        }
        for (spec, own) in specs.iter().zip(patterns) {
            match state.streams.get_mut(&spec.name) {
                Some(stream) => stream.update(spec.clone(), own, now),
                None => {
                    state
                        .streams
                        .insert(spec.name.clone(), MemStream::new(spec.clone(), own));
                }
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, name: &str) -> Result<bool> {
        validate_name("stream", name)?;
        let removed = self.inner.lock().streams.remove(name);
        match removed {
            Some(stream) => {
                for consumer in stream.consumers.values() {
                    consumer.notify.notify_waiters();
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_consumer(&self, stream: &str, durable_name: &str) -> Result<bool> {
        validate_name("stream", stream)?;
        validate_name("durableName", durable_name)?;
        let mut state = self.inner.lock();
        let stream = state.streams.get_mut(stream).ok_or_else(no_stream)?;
        match stream.consumers.remove(durable_name) {
            Some(consumer) => {
                stream.filters.remove(&consumer.filter, consumer.id);
                consumer.notify.notify_waiters();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn durable_consumer(&self, spec: &ConsumerSpec) -> Result<DurableConsumer> {
        spec.validate()?;
        let filter: Vec<String> = match &spec.filter_subject {
            Some(filter) => validate_pattern(filter)?
                .into_iter()
                .map(str::to_owned)
                .collect(),
            None => vec![">".to_owned()],
        };
        let mut state = self.inner.lock();
        let id = state.next_id();
        let stream = state.streams.get_mut(&spec.stream).ok_or_else(no_stream)?;
        if !stream.patterns.iter().any(|p| overlaps(p, &filter)) {
            return Err(Error::invalid(
                "filterSubject",
                "matches none of the stream's subjects",
            ));
        }
        let handle = match stream.consumers.get_mut(&spec.durable_name) {
            Some(existing) => {
                if existing.spec.filter_subject != spec.filter_subject
                    || existing.spec.deliver != spec.deliver
                {
                    return Err(Error::conflict(
                        "the durable consumer exists with another filter subject or deliver policy",
                    ));
                }
                existing.spec.ack_wait = spec.ack_wait;
                existing.spec.max_deliver = spec.max_deliver;
                (existing.id, existing.notify.clone())
            }
            None => {
                let next_seq = match spec.deliver {
                    DeliverPolicy::All => 1,
                    DeliverPolicy::New => stream.last_seq + 1,
                };
                let literal_filter = spec
                    .filter_subject
                    .clone()
                    .filter(|_| !filter.iter().any(|t| t == "*" || t == ">"));
                let consumer = MemConsumer {
                    id,
                    spec: spec.clone(),
                    filter: filter.clone(),
                    literal_filter,
                    next_seq,
                    pending: BTreeMap::new(),
                    redeliver: BTreeMap::new(),
                    notify: Arc::new(Notify::new()),
                };
                let notify = consumer.notify.clone();
                stream
                    .filters
                    .insert(&filter, id, spec.durable_name.clone());
                stream.consumers.insert(spec.durable_name.clone(), consumer);
                (id, notify)
            }
        };
        drop(state);
        let handle = ConsumerHandle {
            inner: self.inner.clone(),
            stream: spec.stream.clone(),
            name: spec.durable_name.clone(),
            id: handle.0,
            notify: handle.1,
        };
        let deliveries = futures::stream::unfold(handle, |handle| async move {
            handle.next().await.map(|delivery| (Ok(delivery), handle))
        });
        Ok(DurableConsumer::new(spec, deliveries))
    }
}

struct Inner {
    clock: Arc<dyn Clock>,
    tick: Duration,
    subscriber_capacity: usize,
    max_payload: usize,
    state: Mutex<State>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    subscriptions: SubjectTrie<SubEntry>,
    streams: BTreeMap<String, MemStream>,
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Delivers `message` to every matching plain subscription and to one member of each
    /// matching queue group.
    fn fan_out(&self, tokens: &[&str], message: &Message) {
        let mut groups: HashMap<&str, Vec<&SubEntry>> = HashMap::new();
        for (_, entry) in self.subscriptions.matches(tokens) {
            match &entry.group {
                None => entry.queue.push(message.clone()),
                Some(group) => groups.entry(group).or_default().push(entry),
            }
        }
        for members in groups.values() {
            let pick = rand::random_range(0..members.len());
            members[pick].queue.push(message.clone());
        }
    }
}

struct SubEntry {
    queue: Arc<SubQueue>,
    group: Option<String>,
}

/// A subscription's bounded queue (drop oldest when full).
struct SubQueue {
    buf: Mutex<VecDeque<Message>>,
    notify: Notify,
    capacity: usize,
    dropped: AtomicU64,
    pattern: String,
}

impl SubQueue {
    fn push(&self, message: Message) {
        {
            let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            if buf.len() >= self.capacity {
                buf.pop_front();
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped == 1 || dropped % 1000 == 0 {
                    tracing::warn!(
                        pattern = %self.pattern,
                        dropped,
                        "slow subscriber: dropped its oldest queued messages"
                    );
                }
            }
            buf.push_back(message);
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Message> {
        self.buf
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

/// Unsubscribes when the subscription is dropped.
struct SubGuard {
    inner: Arc<Inner>,
    pattern: Vec<String>,
    id: u64,
    queue: Arc<SubQueue>,
}

impl Drop for SubGuard {
    fn drop(&mut self) {
        self.inner
            .lock()
            .subscriptions
            .remove(&self.pattern, self.id);
    }
}

struct Stored {
    message: Message,
    at: Timestamp,
}

struct MemStream {
    spec: StreamSpec,
    patterns: Vec<Vec<String>>,
    last_seq: u64,
    messages: BTreeMap<u64, Stored>,
    by_subject: HashMap<String, BTreeSet<u64>>,
    consumers: BTreeMap<String, MemConsumer>,
    filters: SubjectTrie<String>,
}

impl MemStream {
    fn new(spec: StreamSpec, patterns: Vec<Vec<String>>) -> Self {
        Self {
            spec,
            patterns,
            last_seq: 0,
            messages: BTreeMap::new(),
            by_subject: HashMap::new(),
            consumers: BTreeMap::new(),
            filters: SubjectTrie::default(),
        }
    }

    fn captures(&self, subject: &[&str]) -> bool {
        self.patterns.iter().any(|p| {
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            tokens_match(&p, subject)
        })
    }

    fn update(&mut self, spec: StreamSpec, patterns: Vec<Vec<String>>, now: Timestamp) {
        self.spec = spec;
        self.patterns = patterns;
        self.purge_expired(now);
        let subjects: Vec<String> = self.by_subject.keys().cloned().collect();
        for subject in subjects {
            self.trim_subject(&subject);
        }
        self.trim_total();
    }

    fn append(&mut self, message: Message, tokens: &[&str], now: Timestamp) -> PublishAck {
        self.purge_expired(now);
        self.last_seq += 1;
        let seq = self.last_seq;
        let subject = message.subject.clone();
        self.by_subject
            .entry(subject.clone())
            .or_default()
            .insert(seq);
        self.messages.insert(seq, Stored { message, at: now });
        self.trim_subject(&subject);
        self.trim_total();
        for (_, name) in self.filters.matches(tokens) {
            if let Some(consumer) = self.consumers.get(name) {
                consumer.notify.notify_waiters();
            }
        }
        PublishAck {
            stream: self.spec.name.clone(),
            sequence: seq,
        }
    }

    fn remove(&mut self, seq: u64) {
        if let Some(stored) = self.messages.remove(&seq) {
            let subject = stored.message.subject;
            if let Some(seqs) = self.by_subject.get_mut(&subject) {
                seqs.remove(&seq);
                if seqs.is_empty() {
                    self.by_subject.remove(&subject);
                }
            }
        }
    }

    fn purge_expired(&mut self, now: Timestamp) {
        let Some(cutoff) = self.spec.max_age.and_then(|age| before(now, age)) else {
            return;
        };
        while let Some((&seq, stored)) = self.messages.first_key_value() {
            if stored.at > cutoff {
                break;
            }
            self.remove(seq);
        }
    }

    fn trim_subject(&mut self, subject: &str) {
        let Some(max) = self.spec.max_messages_per_subject else {
            return;
        };
        loop {
            let oldest = match self.by_subject.get(subject) {
                Some(seqs) if seqs.len() as u64 > max => seqs.first().copied(),
                _ => None,
            };
            match oldest {
                Some(seq) => self.remove(seq),
                None => break,
            }
        }
    }

    fn trim_total(&mut self) {
        let Some(max) = self.spec.max_messages else {
            return;
        };
        while self.messages.len() as u64 > max {
            match self.messages.first_key_value() {
                Some((&seq, _)) => self.remove(seq),
                None => break,
            }
        }
    }

    /// The next delivery for consumer `name` (if it still is consumer `id`) at `now`.
    fn take(&mut self, name: &str, id: u64, now: Timestamp) -> Taken {
        self.purge_expired(now);
        let Self {
            spec,
            messages,
            by_subject,
            consumers,
            last_seq,
            ..
        } = self;
        let Some(consumer) = consumers.get_mut(name).filter(|c| c.id == id) else {
            return Taken::Gone;
        };
        let max_deliver = consumer.spec.max_deliver;
        let deadline = after(now, consumer.spec.ack_wait);
        let deliver = |consumer: &mut MemConsumer, seq: u64, delivered: u32, stored: &Stored| {
            consumer.pending.insert(
                seq,
                Pending {
                    delivered,
                    deadline,
                },
            );
            Taken::Delivery {
                message: stored.message.clone(),
                stream: spec.name.clone(),
                seq,
                delivered,
                max_deliver,
            }
        };

        // Deliveries whose ack_wait passed become due for redelivery (or are dropped after
        // max_deliver attempts).
        let expired: Vec<u64> = consumer
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(p) = consumer.pending.remove(&seq) {
                if p.delivered < max_deliver {
                    consumer.redeliver.insert(
                        seq,
                        Redeliver {
                            delivered: p.delivered,
                            ready_at: p.deadline,
                        },
                    );
                }
            }
        }

        // Redeliveries first, oldest message first.
        while let Some(seq) = consumer
            .redeliver
            .iter()
            .find(|(_, r)| r.ready_at <= now)
            .map(|(seq, _)| *seq)
        {
            let Some(r) = consumer.redeliver.remove(&seq) else {
                break;
            };
            if let Some(stored) = messages.get(&seq) {
                return deliver(consumer, seq, r.delivered.saturating_add(1), stored);
            }
        }

        // Then the next new message matching the filter.
        let next = match &consumer.literal_filter {
            Some(subject) => by_subject
                .get(subject)
                .and_then(|seqs| seqs.range(consumer.next_seq..).next().copied()),
            None => {
                let filter: Vec<&str> = consumer.filter.iter().map(String::as_str).collect();
                messages
                    .range(consumer.next_seq..)
                    .find(|(_, stored)| {
                        let subject: Vec<&str> = stored.message.subject.split('.').collect();
                        tokens_match(&filter, &subject)
                    })
                    .map(|(seq, _)| *seq)
            }
        };
        if let Some((seq, stored)) = next.and_then(|seq| messages.get(&seq).map(|s| (seq, s))) {
            consumer.next_seq = seq + 1;
            return deliver(consumer, seq, 1, stored);
        }
        consumer.next_seq = *last_seq + 1;

        let wake_at = consumer
            .pending
            .values()
            .map(|p| p.deadline)
            .chain(consumer.redeliver.values().map(|r| r.ready_at))
            .min();
        Taken::Wait(wake_at)
    }
}

enum Taken {
    Gone,
    Delivery {
        message: Message,
        stream: String,
        seq: u64,
        delivered: u32,
        max_deliver: u32,
    },
    Wait(Option<Timestamp>),
}

struct MemConsumer {
    id: u64,
    spec: ConsumerSpec,
    filter: Vec<String>,
    /// The filter when it has no wildcards: new messages are looked up by subject.
    literal_filter: Option<String>,
    /// The next stream sequence to consider for a first delivery.
    next_seq: u64,
    /// Delivered, awaiting acknowledgement.
    pending: BTreeMap<u64, Pending>,
    /// Due for redelivery at `ready_at`.
    redeliver: BTreeMap<u64, Redeliver>,
    notify: Arc<Notify>,
}

struct Pending {
    delivered: u32,
    deadline: Timestamp,
}

struct Redeliver {
    delivered: u32,
    ready_at: Timestamp,
}

/// One binding to a durable consumer.
struct ConsumerHandle {
    inner: Arc<Inner>,
    stream: String,
    name: String,
    id: u64,
    notify: Arc<Notify>,
}

impl ConsumerHandle {
    async fn next(&self) -> Option<Delivery> {
        loop {
            let mut notified = std::pin::pin!(self.notify.notified());
            notified.as_mut().enable();
            let now = self.inner.clock.now();
            let taken = match self.inner.lock().streams.get_mut(&self.stream) {
                Some(stream) => stream.take(&self.name, self.id, now),
                None => Taken::Gone,
            };
            match taken {
                Taken::Gone => return None,
                Taken::Delivery {
                    message,
                    stream,
                    seq,
                    delivered,
                    max_deliver,
                } => {
                    let acker = MemAcker {
                        inner: self.inner.clone(),
                        stream: self.stream.clone(),
                        consumer: self.name.clone(),
                        id: self.id,
                        seq,
                    };
                    return Some(Delivery::new(
                        message,
                        stream,
                        seq,
                        delivered,
                        max_deliver,
                        Box::new(acker),
                    ));
                }
                Taken::Wait(None) => notified.await,
                Taken::Wait(Some(wake_at)) => {
                    let until = (wake_at - now).to_std().unwrap_or(Duration::ZERO);
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(until.min(self.inner.tick)) => {}
                    }
                }
            }
        }
    }
}

struct MemAcker {
    inner: Arc<Inner>,
    stream: String,
    consumer: String,
    id: u64,
    seq: u64,
}

impl fmt::Debug for MemAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemAcker")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .field("seq", &self.seq)
            .finish()
    }
}

#[async_trait]
impl DeliveryAcker for MemAcker {
    async fn settle(&self, kind: AckKind) -> Result<()> {
        let now = self.inner.clock.now();
        let mut state = self.inner.lock();
        let Some(consumer) = state
            .streams
            .get_mut(&self.stream)
            .and_then(|s| s.consumers.get_mut(&self.consumer))
            .filter(|c| c.id == self.id)
        else {
            return Ok(());
        };
        let seq = self.seq;
        match kind {
            AckKind::Ack | AckKind::Term => {
                consumer.pending.remove(&seq);
                consumer.redeliver.remove(&seq);
            }
            AckKind::Nak(delay) => {
                let delivered = consumer
                    .pending
                    .remove(&seq)
                    .map(|p| p.delivered)
                    .or_else(|| consumer.redeliver.remove(&seq).map(|r| r.delivered));
                if let Some(delivered) = delivered {
                    if delivered < consumer.spec.max_deliver {
                        consumer.redeliver.insert(
                            seq,
                            Redeliver {
                                delivered,
                                ready_at: after(now, delay.unwrap_or(Duration::ZERO)),
                            },
                        );
                    }
                    consumer.notify.notify_waiters();
                }
            }
            AckKind::InProgress => {
                let deadline = after(now, consumer.spec.ack_wait);
                if let Some(p) = consumer.pending.get_mut(&seq) {
                    p.deadline = deadline;
                }
            }
        }
        Ok(())
    }
}

fn after(now: Timestamp, by: Duration) -> Timestamp {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| now.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn before(now: Timestamp, by: Duration) -> Option<Timestamp> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| now.checked_sub_signed(by))
}

fn owned_patterns(subjects: &[String]) -> Result<Vec<Vec<String>>> {
    subjects
        .iter()
        .map(|s| {
            Ok(validate_pattern(s)?
                .into_iter()
                .map(str::to_owned)
                .collect())
        })
        .collect()
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    tokens_overlap(&a, &b)
}

fn any_overlap(a: &[Vec<String>], b: &[Vec<String>]) -> bool {
    a.iter().any(|x| b.iter().any(|y| overlaps(x, y)))
}
