//! Consumer groups on JetStream: membership over core NATS, one durable consumer per
//! partition, fencing by replacing the durable when a partition changes owner.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, ErrorCode};
use async_trait::async_trait;
use base64::Engine as _;
use futures::StreamExt;
use openframe_core::{Clock, Error, Headers, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{KEY_HEADER, NatsEventBusConfig, TIME_HEADER, backend, is_reserved_header, naming};
use crate::bus::{Delivered, EventConsumer, PartitionLag, Position, Record, validate_topic};

/// A topic (as the caller names it) and a partition.
type Tp = (String, u32);

/// How long a durable may hold an unacknowledged record before JetStream redelivers it. The
/// bus never relies on it (a new owner replays from the ack floor), so it is long.
const ACK_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A topic a consumer reads.
#[derive(Debug, Clone)]
pub(super) struct TopicInfo {
    /// The caller's name.
    pub(super) name: String,
    /// The name with the bus prefix.
    pub(super) full: String,
    pub(super) partitions: u32,
    /// The stream sequence a partition starts at when its group has no durable yet.
    pub(super) start: u64,
}

/// Everything a new member needs.
pub(super) struct JoinSpec {
    pub(super) client: async_nats::Client,
    pub(super) js: jetstream::Context,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: NatsEventBusConfig,
    pub(super) group: String,
    pub(super) topics: Vec<TopicInfo>,
    pub(super) max_in_flight: usize,
}

/// What the member task hands to the consumer.
enum Event {
    Message {
        tp: Tp,
        epoch: u64,
        message: Box<jetstream::Message>,
    },
    /// The assignment changed or the consumer ended: re-check.
    Wake,
}

/// The assignment, written by the member task and read by the consumer.
#[derive(Debug, Default)]
struct Shared {
    /// Assigned partitions and the epoch of their current durable.
    assigned: BTreeMap<Tp, u64>,
    /// The name of each claimed partition's current durable.
    durables: HashMap<Tp, String>,
    ended: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A member's announcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Heartbeat {
    id: String,
    joined: i64,
    topics: Vec<String>,
    #[serde(default)]
    leaving: bool,
}

/// What this consumer tracks for one partition it reads.
#[derive(Debug)]
struct PartitionState {
    epoch: u64,
    next: Option<u64>,
    committed: Option<u64>,
    in_flight: BTreeMap<u64, jetstream::Message>,
}

/// A member of a consumer group on a [`NatsEventBus`](super::NatsEventBus); dropping it says
/// goodbye to the group (its partitions move at once).
pub struct NatsEventConsumer {
    rx: mpsc::Receiver<Event>,
    js: jetstream::Context,
    /// The stream of each topic read (by the caller's topic name).
    streams: HashMap<String, String>,
    shared: Arc<Mutex<Shared>>,
    partitions: BTreeMap<Tp, PartitionState>,
    group: String,
    max_in_flight: usize,
    goodbye: Option<(async_nats::Client, String, Vec<u8>)>,
    _task: AbortOnDrop,
}

impl fmt::Debug for NatsEventConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsEventConsumer")
            .field("group", &self.group)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl NatsEventConsumer {
    /// Joins the group: announces itself, listens for the join window, takes its partitions.
    pub(super) async fn join(spec: JoinSpec) -> Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let subject = naming::group_subject(&spec.config.topic_prefix, &spec.group);
        let me = Heartbeat {
            id: id.clone(),
            joined: spec.clock.now().timestamp_millis(),
            topics: spec.topics.iter().map(|t| t.name.clone()).collect(),
            leaving: false,
        };
        let goodbye = serde_json::to_vec(&Heartbeat {
            leaving: true,
            ..me.clone()
        })
        .map_err(|e| Error::Internal(format!("cannot encode a heartbeat: {e}").into()))?;
        let subscriber = spec
            .client
            .subscribe(subject.clone())
            .await
            .map_err(backend)?;
        // JetStream announces deleted streams; a deleted topic ends its consumers.
        let deletions = spec
            .client
            .subscribe("$JS.EVENT.ADVISORY.STREAM.DELETED.*")
            .await
            .map_err(backend)?;
        spec.client.flush().await.map_err(backend)?;
        let capacity = spec.max_in_flight.clamp(1, 256);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (ready_tx, ready_rx) = oneshot::channel();
        let js = spec.js.clone();
        let streams = spec
            .topics
            .iter()
            .map(|t| (t.name.clone(), naming::stream_name(&t.full)))
            .collect();
        let member = Member {
            client: spec.client.clone(),
            js: spec.js,
            config: spec.config,
            group: spec.group.clone(),
            subject: subject.clone(),
            me,
            topics: spec.topics,
            max_in_flight: spec.max_in_flight,
            members: HashMap::new(),
            owned: HashMap::new(),
            epoch: 0,
            tx,
            shared: shared.clone(),
        };
        let task = tokio::spawn(member.run(subscriber, deletions, ready_tx));
        let task = AbortOnDrop(task);
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Internal("the group member task ended".into())),
        }
        Ok(Self {
            rx,
            js,
            streams,
            shared,
            partitions: BTreeMap::new(),
            group: spec.group,
            max_in_flight: spec.max_in_flight,
            goodbye: Some((spec.client, subject, goodbye)),
            _task: task,
        })
    }

    /// Drops local state of partitions that moved or got a new durable.
    fn sync_assignment(&mut self) -> bool {
        let shared = lock(&self.shared);
        self.partitions
            .retain(|tp, state| shared.assigned.get(tp) == Some(&state.epoch));
        shared.ended
    }

    fn deliver(&mut self, tp: Tp, epoch: u64, message: jetstream::Message) -> Result<Delivered> {
        let info = message
            .info()
            .map_err(|e| Error::backend(super::BACKEND, e))?;
        let sequence = info.stream_sequence;
        let mut headers = Headers::new();
        let mut key = None;
        let mut timestamp = None;
        if let Some(map) = &message.message.headers {
            for (name, values) in map.iter() {
                let name = name.to_string();
                for value in values {
                    if name.eq_ignore_ascii_case(KEY_HEADER) {
                        key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(value.as_str())
                            .ok();
                    } else if name.eq_ignore_ascii_case(TIME_HEADER) {
                        timestamp = value
                            .as_str()
                            .parse::<i64>()
                            .ok()
                            .and_then(chrono::DateTime::from_timestamp_millis);
                    } else if !is_reserved_header(&name) {
                        headers.append(name.clone(), value.as_str());
                    }
                }
            }
        }
        let published = info.published;
        let timestamp = timestamp.unwrap_or_else(|| {
            chrono::DateTime::from_timestamp_millis(
                (published.unix_timestamp_nanos() / 1_000_000) as i64,
            )
            .unwrap_or_default()
        });
        let record = Record {
            topic: tp.0.clone(),
            key,
            payload: message.message.payload.to_vec(),
            headers,
            timestamp: Some(timestamp),
        };
        let position = Position::new(tp.1, sequence);
        let state = self.partitions.entry(tp).or_insert_with(|| PartitionState {
            epoch,
            next: None,
            committed: None,
            in_flight: BTreeMap::new(),
        });
        state.next = Some(state.next.map_or(sequence + 1, |n| n.max(sequence + 1)));
        state.in_flight.insert(sequence, message);
        Ok(Delivered::new(record, position))
    }
}

impl Drop for NatsEventConsumer {
    fn drop(&mut self) {
        let Some((client, subject, goodbye)) = self.goodbye.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = client.publish(subject, goodbye.into()).await;
                let _ = client.flush().await;
            });
        }
    }
}

#[async_trait]
impl EventConsumer for NatsEventConsumer {
    async fn next(&mut self) -> Result<Option<Delivered>> {
        loop {
            if self.sync_assignment() {
                return Ok(None);
            }
            let in_flight: usize = self.partitions.values().map(|p| p.in_flight.len()).sum();
            if in_flight >= self.max_in_flight {
                return Err(Error::conflict(
                    "max_in_flight records are delivered and uncommitted; commit before reading more",
                ));
            }
            let Some(event) = self.rx.recv().await else {
                return Ok(None);
            };
            let Event::Message { tp, epoch, message } = event else {
                continue;
            };
            if lock(&self.shared).assigned.get(&tp) != Some(&epoch) {
                continue;
            }
            if self.partitions.get(&tp).is_some_and(|s| s.epoch != epoch) {
                self.partitions.remove(&tp);
            }
            return self.deliver(tp, epoch, *message).map(Some);
        }
    }

    async fn commit(&mut self, topic: &str, positions: &[Position]) -> Result<()> {
        validate_topic(topic)?;
        self.sync_assignment();
        let mut wanted: BTreeMap<u32, u64> = BTreeMap::new();
        {
            let shared = lock(&self.shared);
            for position in positions {
                let tp = (topic.to_owned(), position.partition);
                let Some(epoch) = shared.assigned.get(&tp) else {
                    return Err(Error::conflict(
                        "the partition is not assigned to this consumer (rebalanced)",
                    ));
                };
                let delivered = self
                    .partitions
                    .get(&tp)
                    .filter(|s| s.epoch == *epoch)
                    .and_then(|s| s.next);
                if delivered.is_none_or(|next| position.offset >= next) {
                    return Err(Error::invalid(
                        "position",
                        "was not delivered to this consumer",
                    ));
                }
                let slot = wanted.entry(position.partition).or_insert(position.offset);
                *slot = (*slot).max(position.offset);
            }
        }
        for (partition, offset) in wanted {
            let tp = (topic.to_owned(), partition);
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if state.committed.is_some_and(|c| c > offset) {
                continue;
            }
            // Acknowledging the last delivered record at or before the position covers every
            // earlier one (AckPolicy::All).
            if let Some((_, message)) = state.in_flight.range(..=offset).next_back() {
                message.double_ack().await.map_err(|e| {
                    tracing::debug!(group = %self.group, error = %e, "commit failed");
                    Error::conflict(
                        "the partition is no longer assigned to this consumer (its durable was replaced)",
                    )
                })?;
            }
            state.committed = Some(state.committed.map_or(offset + 1, |c| c.max(offset + 1)));
            state.in_flight.retain(|sequence, _| *sequence > offset);
        }
        Ok(())
    }

    /// The pending and ack-pending counts of each assigned partition's durable: with
    /// `AckPolicy::All` their sum is exactly the records after the ack floor.
    async fn lag(&mut self) -> Result<Vec<PartitionLag>> {
        let claimed: Vec<(Tp, String)> = {
            let shared = lock(&self.shared);
            shared
                .assigned
                .keys()
                .filter_map(|tp| Some((tp.clone(), shared.durables.get(tp)?.clone())))
                .collect()
        };
        let mut streams: HashMap<String, jetstream::stream::Stream> = HashMap::new();
        let mut out = Vec::with_capacity(claimed.len());
        for ((topic, partition), durable) in claimed {
            let Some(name) = self.streams.get(&topic) else {
                continue;
            };
            if !streams.contains_key(name) {
                match self.js.get_stream(name).await {
                    Ok(stream) => {
                        streams.insert(name.clone(), stream);
                    }
                    // The topic was deleted: this consumer is ending.
                    Err(e) if super::is_stream_not_found(&e) => continue,
                    Err(e) => return Err(super::map_request_error(e)),
                }
            }
            let Some(stream) = streams.get(name) else {
                continue;
            };
            let info = match stream.consumer_info(&durable).await {
                Ok(info) => info,
                Err(e) => match e.kind() {
                    // The durable was replaced: the partition moved to another member.
                    ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound => {
                        continue;
                    }
                    ConsumerInfoErrorKind::JetStream(js)
                        if js.error_code() == ErrorCode::CONSUMER_NOT_FOUND =>
                    {
                        continue;
                    }
                    ConsumerInfoErrorKind::TimedOut
                    | ConsumerInfoErrorKind::Request
                    | ConsumerInfoErrorKind::NoResponders
                    | ConsumerInfoErrorKind::Offline => {
                        return Err(Error::Unavailable {
                            reason: format!("nats consumer info failed: {}", e.kind()).into(),
                        });
                    }
                    _ => return Err(backend(e)),
                },
            };
            let floor = committed_floor(&info);
            out.push(PartitionLag::new(
                topic,
                partition,
                (floor > 0).then_some(floor + 1),
                stream.cached_info().state.last_sequence + 1,
                info.num_pending + info.num_ack_pending as u64,
            ));
        }
        Ok(out)
    }

    fn assignment(&self) -> Vec<(String, u32)> {
        lock(&self.shared).assigned.keys().cloned().collect()
    }
}

/// The member task: heartbeats, membership view, claiming and releasing partitions.
struct Member {
    client: async_nats::Client,
    js: jetstream::Context,
    config: NatsEventBusConfig,
    group: String,
    subject: String,
    me: Heartbeat,
    topics: Vec<TopicInfo>,
    max_in_flight: usize,
    /// Other members and when they were last heard from.
    members: HashMap<String, (Heartbeat, Instant)>,
    /// Partitions this member reads, with their reader task.
    owned: HashMap<Tp, AbortOnDrop>,
    epoch: u64,
    tx: mpsc::Sender<Event>,
    shared: Arc<Mutex<Shared>>,
}

impl Member {
    async fn run(
        mut self,
        mut subscriber: async_nats::Subscriber,
        mut deletions: async_nats::Subscriber,
        ready: oneshot::Sender<Result<()>>,
    ) {
        if let Err(e) = self.announce().await {
            let _ = ready.send(Err(e));
            return;
        }
        let window = tokio::time::sleep(self.config.join_window);
        tokio::pin!(window);
        loop {
            tokio::select! {
                () = &mut window => break,
                message = subscriber.next() => match message {
                    Some(message) => {
                        self.hear(&message.payload).await;
                    }
                    None => break,
                },
            }
        }
        if let Err(e) = self.rebalance().await {
            let _ = ready.send(Err(e));
            return;
        }
        let _ = ready.send(Ok(()));
        let mut ticker = tokio::time::interval(self.config.heartbeat_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(e) = self.announce().await {
                        tracing::debug!(group = %self.group, error = %e, "heartbeat failed");
                    }
                    self.prune();
                    self.owned.retain(|_, reader| !reader.0.is_finished());
                    self.rebalance_logged().await;
                }
                message = subscriber.next() => match message {
                    Some(message) => {
                        if self.hear(&message.payload).await {
                            self.rebalance_logged().await;
                        }
                    }
                    None => return,
                },
                Some(advisory) = deletions.next() => {
                    let deleted = advisory.subject.as_str().rsplit('.').next().unwrap_or_default();
                    if self.topics.iter().any(|t| naming::stream_name(&t.full) == deleted) {
                        tracing::info!(group = %self.group, "a topic of this consumer was deleted; ending");
                        self.owned.clear();
                        {
                            let mut shared = lock(&self.shared);
                            shared.ended = true;
                            shared.assigned.clear();
                        }
                        let _ = self.tx.try_send(Event::Wake);
                        return;
                    }
                }
            }
        }
    }

    async fn announce(&self) -> Result<()> {
        let payload = serde_json::to_vec(&self.me)
            .map_err(|e| Error::Internal(format!("cannot encode a heartbeat: {e}").into()))?;
        self.client
            .publish(self.subject.clone(), payload.into())
            .await
            .map_err(backend)
    }

    /// Handles an announcement; `true` if the membership changed.
    async fn hear(&mut self, payload: &[u8]) -> bool {
        let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(payload) else {
            tracing::debug!(group = %self.group, "ignoring a malformed group announcement");
            return false;
        };
        if heartbeat.id == self.me.id {
            return false;
        }
        if heartbeat.leaving {
            return self.members.remove(&heartbeat.id).is_some();
        }
        let id = heartbeat.id.clone();
        let known = self.members.contains_key(&id);
        self.members.insert(id, (heartbeat, Instant::now()));
        if !known {
            // Let the newcomer learn about this member at once.
            if let Err(e) = self.announce().await {
                tracing::debug!(group = %self.group, error = %e, "heartbeat failed");
            }
        }
        !known
    }

    fn prune(&mut self) {
        let timeout = self.config.session_timeout;
        self.members.retain(|_, (_, seen)| seen.elapsed() < timeout);
    }

    /// The partitions this member should own given the members it knows.
    fn desired(&self) -> BTreeSet<Tp> {
        let mut out = BTreeSet::new();
        for topic in &self.topics {
            let mut readers: Vec<(i64, &str)> = self
                .members
                .values()
                .map(|(h, _)| h)
                .chain(std::iter::once(&self.me))
                .filter(|h| h.topics.contains(&topic.name))
                .map(|h| (h.joined, h.id.as_str()))
                .collect();
            readers.sort_unstable();
            for partition in 0..topic.partitions {
                let owner = readers[partition as usize % readers.len()].1;
                if owner == self.me.id {
                    out.insert((topic.name.clone(), partition));
                }
            }
        }
        out
    }

    async fn rebalance_logged(&mut self) {
        if let Err(e) = self.rebalance().await {
            tracing::warn!(group = %self.group, error = %e, "rebalance incomplete; retrying on the next heartbeat");
        }
    }

    async fn rebalance(&mut self) -> Result<()> {
        let desired = self.desired();
        let released: Vec<Tp> = self
            .owned
            .keys()
            .filter(|tp| !desired.contains(*tp))
            .cloned()
            .collect();
        {
            let mut shared = lock(&self.shared);
            for tp in &released {
                shared.assigned.remove(tp);
            }
            shared
                .assigned
                .retain(|tp, _| self.owned.contains_key(tp) || desired.contains(tp));
        }
        for tp in released {
            self.owned.remove(&tp);
        }
        let mut changed = false;
        let mut result = Ok(());
        for tp in desired {
            if self.owned.contains_key(&tp) {
                continue;
            }
            match self.claim(&tp).await {
                Ok(()) => changed = true,
                Err(Error::NotFound { .. }) => {
                    lock(&self.shared).ended = true;
                    changed = true;
                    break;
                }
                Err(e) => {
                    lock(&self.shared).assigned.remove(&tp);
                    result = Err(e);
                }
            }
        }
        if changed {
            let _ = self.tx.try_send(Event::Wake);
        }
        result
    }

    /// Takes a partition: replaces its durable consumer by one starting after the ack floor
    /// (which fences any previous owner) and starts reading it.
    async fn claim(&mut self, tp: &Tp) -> Result<()> {
        let Some(topic) = self.topics.iter().find(|t| t.name == tp.0).cloned() else {
            return Err(Error::Internal(
                "claimed a partition of an unknown topic".into(),
            ));
        };
        let stream = match self.js.get_stream(naming::stream_name(&topic.full)).await {
            Ok(stream) => stream,
            Err(e) if super::is_stream_not_found(&e) => return Err(Error::not_found("topic")),
            Err(e) => return Err(super::map_request_error(e)),
        };
        let prefix = naming::durable_prefix(&self.group, tp.1);
        let mut previous = Vec::new();
        let mut names = stream.consumer_names();
        while let Some(name) = names.next().await {
            let name = name.map_err(backend)?;
            if name.starts_with(&prefix) {
                previous.push(name);
            }
        }
        let mut floor = None;
        for name in &previous {
            if let Ok(info) = stream.consumer_info(name).await {
                let acked = committed_floor(&info);
                floor = Some(floor.map_or(acked, |f: u64| f.max(acked)));
            }
        }
        let start = floor.map_or(topic.start, |f| f + 1).max(1);
        for name in &previous {
            if let Err(e) = stream.delete_consumer(name).await {
                tracing::debug!(group = %self.group, error = %e, "cannot delete a replaced durable");
            }
        }
        self.epoch += 1;
        let epoch = self.epoch;
        let durable_name = format!("{prefix}{epoch}x{}", &self.me.id[..8]);
        let config = PullConfig {
            durable_name: Some(durable_name.clone()),
            filter_subject: naming::subject(&topic.full, tp.1),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: AckPolicy::All,
            ack_wait: ACK_WAIT,
            max_ack_pending: i64::try_from(self.max_in_flight).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let consumer: PullConsumer = stream.create_consumer(config).await.map_err(backend)?;
        let batch = self.max_in_flight.clamp(1, 100);
        let reader = tokio::spawn(read(consumer, tp.clone(), epoch, batch, self.tx.clone()));
        self.owned.insert(tp.clone(), AbortOnDrop(reader));
        let mut shared = lock(&self.shared);
        shared.assigned.insert(tp.clone(), epoch);
        shared.durables.insert(tp.clone(), durable_name);
        Ok(())
    }
}

/// The last stream sequence a durable's group has committed: its ack floor, or the sequence
/// before the one it was created to start at (what its predecessors had committed, or where a
/// `Latest` group began), whichever is later. The server reports an ack floor of 0 until the
/// first acknowledgement, whatever the start.
fn committed_floor(info: &jetstream::consumer::Info) -> u64 {
    let start = match info.config.deliver_policy {
        DeliverPolicy::ByStartSequence { start_sequence } => start_sequence.saturating_sub(1),
        _ => 0,
    };
    info.ack_floor.stream_sequence.max(start)
}

/// Pulls one partition's durable and forwards its records until the durable goes away.
async fn read(consumer: PullConsumer, tp: Tp, epoch: u64, batch: usize, tx: mpsc::Sender<Event>) {
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(e) => {
            tracing::debug!(error = %e, "cannot pull from a durable");
            return;
        }
    };
    while let Some(item) = messages.next().await {
        match item {
            Ok(message) => {
                let event = Event::Message {
                    tp: tp.clone(),
                    epoch,
                    message: Box::new(message),
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            Err(e)
                if e.kind()
                    == async_nats::jetstream::consumer::pull::MessagesErrorKind::ConsumerDeleted =>
            {
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "pull error");
                // A deleted stream (or replaced durable) does not always surface as
                // ConsumerDeleted; ask the server whether the durable still exists.
                if let Err(e) = consumer.get_info().await {
                    use async_nats::jetstream::context::ConsumerInfoErrorKind as Kind;
                    if matches!(e.kind(), Kind::NotFound | Kind::StreamNotFound)
                        || matches!(e.kind(), Kind::JetStream(_))
                    {
                        return;
                    }
                }
            }
        }
    }
}
