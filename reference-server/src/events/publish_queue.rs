//! A bounded in-memory queue in front of the event bus, so a request never waits on the bus.
//!
//! [`PublishQueue::push`] returns at once; one background task publishes the records in the
//! order they were pushed, retrying transient failures (`Error::is_retryable`) with a doubling
//! backoff until a record is older than [`PublishQueueConfig::max_age`]. What it cannot publish
//! is dropped and counted by [`DropReason`]: the queue was full, the record grew too old, the
//! bus refused it for good, or the server stopped before it went out. Drop logs name the topic
//! and the reason, never a payload, key or header.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use openframe_core::{Clock, Error, Result, Timestamp};
use openframe_stream::bus::{EventPublisher, Record};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// At most one drop warning per this interval (of the queue's clock); the counters see all.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Settings of a [`PublishQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishQueueConfig {
    /// Most records waiting or in flight (default 10 000); a record pushed to a full queue is
    /// dropped.
    pub capacity: usize,
    /// How long a record may wait, retries included, before it is dropped as too old (default
    /// 10 minutes).
    pub max_age: Duration,
    /// The pause after the first transient failure (default 100 ms); it doubles after each.
    pub backoff_initial: Duration,
    /// The longest pause between two attempts (default 5 s).
    pub backoff_max: Duration,
}

impl Default for PublishQueueConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_age: Duration::from_secs(600),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl PublishQueueConfig {
    /// `InvalidInput` for a zero capacity or backoff.
    pub fn validate(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(Error::invalid("capacity", "must be at least 1"));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err(Error::invalid(
                "backoff",
                "the initial backoff must be above zero and at most the maximum",
            ));
        }
        Ok(())
    }
}

/// Why a record never reached the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue was full when it was pushed.
    Full,
    /// It was older than [`PublishQueueConfig::max_age`] before the bus took it.
    Expired,
    /// The bus refused it with a permanent error (bad record, missing topic).
    Rejected,
    /// The server stopped before the bus took it.
    Shutdown,
}

impl DropReason {
    /// Every reason, in metric order.
    pub const ALL: [DropReason; 4] = [Self::Full, Self::Expired, Self::Rejected, Self::Shutdown];

    /// The metric label (`full`, `expired`, `rejected`, `shutdown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A point-in-time copy of a queue's state and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishQueueStats {
    /// Records waiting or in flight.
    pub depth: usize,
    /// The configured capacity.
    pub capacity: usize,
    /// Records the bus took.
    pub published: u64,
    /// Repeated attempts after transient failures.
    pub retried: u64,
    /// Dropped records by [`DropReason`] (indexed in [`DropReason::ALL`] order).
    pub dropped: [u64; 4],
}

impl PublishQueueStats {
    /// Records dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Records dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// The bounded queue and its publishing task. Cheap to clone; the task stops when the last
/// clone is dropped or at [`shutdown`](Self::shutdown).
#[derive(Debug, Clone)]
pub struct PublishQueue {
    shared: Arc<Shared>,
    worker: Arc<Worker>,
}

#[derive(Debug)]
struct Queued {
    record: Record,
    pushed_at: Timestamp,
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Queued>,
    in_flight: bool,
    closed: bool,
}

impl State {
    fn depth(&self) -> usize {
        self.waiting.len() + usize::from(self.in_flight)
    }
}

#[derive(Debug)]
struct Shared {
    config: PublishQueueConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Wakes the task when a record is pushed.
    pushed: Notify,
    /// The depth after every change, for [`PublishQueue::flush`].
    depth: watch::Sender<usize>,
    published: AtomicU64,
    retried: AtomicU64,
    dropped: [AtomicU64; 4],
    last_drop_log: Mutex<Option<Timestamp>>,
}

/// Aborts the publishing task when the last queue handle goes.
#[derive(Debug)]
struct Worker(Mutex<Option<JoinHandle<()>>>);

impl Worker {
    fn take(&self) -> Option<JoinHandle<()>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Aborts the task and waits until it is gone (so it touches no record afterwards).
    async fn stop(&self) {
        if let Some(task) = self.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(task) = self.take() {
            task.abort();
        }
    }
}

impl PublishQueue {
    /// Starts the publishing task on the current Tokio runtime. `InvalidInput` for bad
    /// settings, `Internal` outside a runtime.
    pub fn start(
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        config: PublishQueueConfig,
    ) -> Result<Self> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Internal("the event publish queue needs a Tokio runtime".into()))?;
        let shared = Arc::new(Shared {
            config,
            clock,
            state: Mutex::new(State::default()),
            pushed: Notify::new(),
            depth: watch::Sender::new(0),
            published: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: Default::default(),
            last_drop_log: Mutex::new(None),
        });
        let task = runtime.spawn(drain(shared.clone(), publisher));
        Ok(Self {
            shared,
            worker: Arc::new(Worker(Mutex::new(Some(task)))),
        })
    }

    /// Queues `record` for the bus and returns at once: `true` if it was queued, `false` if it
    /// was dropped (the queue is full or shut down; counted and logged).
    pub fn push(&self, record: Record) -> bool {
        let shared = &self.shared;
        let mut state = shared.lock();
        let refused = if state.closed {
            Some(DropReason::Shutdown)
        } else if state.depth() >= shared.config.capacity {
            Some(DropReason::Full)
        } else {
            None
        };
        if let Some(reason) = refused {
            drop(state);
            shared.dropped(reason, &record.topic, None);
            return false;
        }
        state.waiting.push_back(Queued {
            record,
            pushed_at: shared.clock.now(),
        });
        shared.depth.send_replace(state.depth());
        drop(state);
        shared.pushed.notify_one();
        true
    }

    /// The depth and counters now.
    pub fn stats(&self) -> PublishQueueStats {
        let shared = &self.shared;
        let mut dropped = [0; 4];
        for (n, counter) in dropped.iter_mut().zip(&shared.dropped) {
            *n = counter.load(Ordering::Relaxed);
        }
        PublishQueueStats {
            depth: shared.lock().depth(),
            capacity: shared.config.capacity,
            published: shared.published.load(Ordering::Relaxed),
            retried: shared.retried.load(Ordering::Relaxed),
            dropped,
        }
    }

    /// Waits until every record pushed so far was published or dropped, at most `timeout`;
    /// `true` if the queue is empty.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let mut depth = self.shared.depth.subscribe();
        tokio::time::timeout(timeout, depth.wait_for(|d| *d == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Flushes for at most `grace`, then stops the task: what is still queued is dropped
    /// (counted as [`DropReason::Shutdown`]), and so is every later push. Returns the final
    /// counters.
    pub async fn shutdown(&self, grace: Duration) -> PublishQueueStats {
        let flushed = self.flush(grace).await;
        self.worker.stop().await;
        let left = {
            let mut state = self.shared.lock();
            state.closed = true;
            let left = state.depth();
            state.waiting.clear();
            state.in_flight = false;
            self.shared.depth.send_replace(0);
            left
        };
        if left > 0 {
            self.shared.dropped[DropReason::Shutdown.index()]
                .fetch_add(left as u64, Ordering::Relaxed);
            tracing::warn!(
                dropped = left,
                flushed,
                "events for the event bus still queued at shutdown were dropped"
            );
        }
        self.stats()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the oldest waiting record, marking it in flight.
    fn take(&self) -> Option<Queued> {
        let mut state = self.lock();
        let next = state.waiting.pop_front()?;
        state.in_flight = true;
        Some(next)
    }

    /// The record in flight is done (published or dropped).
    fn done(&self) {
        let mut state = self.lock();
        state.in_flight = false;
        self.depth.send_replace(state.depth());
    }

    fn too_old(&self, item: &Queued) -> bool {
        (self.clock.now() - item.pushed_at)
            .to_std()
            .is_ok_and(|age| age >= self.config.max_age)
    }

    /// Counts a drop and logs it (at most once per [`DROP_LOG_INTERVAL`]): topic, reason and
    /// totals only.
    fn dropped(&self, reason: DropReason, topic: &str, error: Option<&Error>) {
        let total = self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.clock.now();
        let mut last = self
            .last_drop_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| {
            (now - at)
                .to_std()
                .map_or(true, |since| since >= DROP_LOG_INTERVAL)
        });
        if due {
            *last = Some(now);
            let code = error.map(|e| e.code().as_str());
            tracing::warn!(
                topic,
                reason = reason.as_str(),
                error_code = code,
                dropped_for_reason = total,
                "an event headed for the event bus was dropped (further drops in the next 10 s \
                 are only counted in openframe_event_publish_dropped_total)"
            );
        }
    }

    /// Publishes `item`, retrying transient failures until it is too old.
    async fn deliver(&self, publisher: &dyn EventPublisher, item: Queued) {
        let mut backoff = self.config.backoff_initial;
        loop {
            if self.too_old(&item) {
                self.dropped(DropReason::Expired, &item.record.topic, None);
                return;
            }
            match publisher.publish(Record::clone(&item.record)).await {
                Ok(_) => {
                    self.published.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) if e.is_retryable() => {
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(topic = %item.record.topic, error = %e, retry_in = ?backoff, "event bus publish failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.backoff_max);
                }
                Err(e) => {
                    self.dropped(DropReason::Rejected, &item.record.topic, Some(&e));
                    return;
                }
            }
        }
    }
}

/// The publishing task: one record at a time, oldest first.
async fn drain(shared: Arc<Shared>, publisher: Arc<dyn EventPublisher>) {
    loop {
        match shared.take() {
            Some(item) => {
                shared.deliver(publisher.as_ref(), item).await;
                shared.done();
            }
            None => shared.pushed.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use openframe_agent::events::{AgentEvent, AgentEventKind, AgentEventSink};
    use openframe_agent::stream_bridge::StreamBridge;
    use openframe_core::{MachineId, MachineStatus, ManualClock, TenantId};
    use openframe_stream::bus::Position;

    use super::*;
    use crate::events::QueuedBridge;

    /// Guards against a hang only; no test depends on how long anything takes.
    const HANG: Duration = Duration::from_secs(10);

    /// A bus stand-in that can hold every publish until opened, fail the first attempts with
    /// a transient error, refuse one topic for good, and move a clock on each attempt.
    #[derive(Debug)]
    struct TestPublisher {
        open: watch::Sender<bool>,
        transient_failures: AtomicUsize,
        refused_topic: Option<&'static str>,
        clock_step: Option<(Arc<ManualClock>, Duration)>,
        attempts: AtomicUsize,
        published: Mutex<Vec<String>>,
    }

    impl TestPublisher {
        fn new() -> Self {
            Self {
                open: watch::Sender::new(true),
                transient_failures: AtomicUsize::new(0),
                refused_topic: None,
                clock_step: None,
                attempts: AtomicUsize::new(0),
                published: Mutex::new(Vec::new()),
            }
        }

        fn closed() -> Self {
            let publisher = Self::new();
            publisher.open.send_replace(false);
            publisher
        }

        fn published(&self) -> Vec<String> {
            self.published.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl EventPublisher for TestPublisher {
        async fn publish(&self, record: Record) -> Result<Position> {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
            if let Some((clock, step)) = &self.clock_step {
                clock.advance(*step);
            }
            let _ = self.open.subscribe().wait_for(|open| *open).await;
            if self
                .transient_failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Error::Unavailable {
                    reason: "broker down".into(),
                });
            }
            if self.refused_topic == Some(record.topic.as_str()) {
                return Err(Error::not_found("topic"));
            }
            let mut published = self.published.lock().unwrap();
            published.push(String::from_utf8(record.payload).unwrap());
            Ok(Position::new(0, attempt as u64))
        }
    }

    fn config() -> PublishQueueConfig {
        PublishQueueConfig {
            capacity: 100,
            max_age: Duration::from_secs(300),
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
        }
    }

    fn record(payload: &str) -> Record {
        Record::new("openframe.agent-events", payload.as_bytes().to_vec())
    }

    fn start(
        publisher: &Arc<TestPublisher>,
        clock: Arc<ManualClock>,
        config: PublishQueueConfig,
    ) -> PublishQueue {
        PublishQueue::start(publisher.clone(), clock, config).unwrap()
    }

    #[tokio::test]
    async fn emit_returns_while_the_bus_blocks_and_records_go_out_in_order() {
        let publisher = Arc::new(TestPublisher::closed());
        let queue = start(&publisher, Arc::default(), config());
        let bridge = QueuedBridge::new(StreamBridge::new(publisher.clone()), queue.clone());
        let clock = ManualClock::default();
        for i in 0..5 {
            let event = AgentEvent {
                tenant: TenantId::parse("acme").unwrap(),
                machine_id: MachineId::parse(format!("m-{i}")).unwrap(),
                kind: AgentEventKind::Registered,
                previous_status: None,
                status: MachineStatus::Online,
                at: clock.now(),
            };
            tokio::time::timeout(HANG, bridge.emit(event))
                .await
                .expect("emit must not wait for the bus")
                .unwrap();
        }
        assert_eq!(queue.stats().depth, 5);
        assert!(publisher.published().is_empty());
        publisher.open.send_replace(true);
        assert!(queue.flush(HANG).await);
        let machines: Vec<String> = publisher
            .published()
            .iter()
            .map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap()["machineId"].to_string())
            .collect();
        assert_eq!(
            machines,
            ["\"m-0\"", "\"m-1\"", "\"m-2\"", "\"m-3\"", "\"m-4\""]
        );
        let stats = queue.stats();
        assert_eq!(
            (stats.depth, stats.published, stats.dropped_total()),
            (0, 5, 0)
        );
    }

    #[tokio::test]
    async fn transient_failures_are_retried_without_reordering() {
        let publisher = Arc::new(TestPublisher::new());
        publisher.transient_failures.store(3, Ordering::SeqCst);
        let queue = start(&publisher, Arc::default(), config());
        for p in ["a", "b", "c"] {
            assert!(queue.push(record(p)));
        }
        assert!(queue.flush(HANG).await);
        assert_eq!(publisher.published(), ["a", "b", "c"]);
        let stats = queue.stats();
        assert_eq!(
            (stats.published, stats.retried, stats.dropped_total()),
            (3, 3, 0)
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_the_newest() {
        let publisher = Arc::new(TestPublisher::closed());
        let queue = start(
            &publisher,
            Arc::default(),
            PublishQueueConfig {
                capacity: 2,
                ..config()
            },
        );
        assert!(queue.push(record("a")));
        assert!(queue.push(record("b")));
        assert!(!queue.push(record("c")));
        let stats = queue.stats();
        assert_eq!((stats.depth, stats.dropped(DropReason::Full)), (2, 1));
        publisher.open.send_replace(true);
        assert!(queue.flush(HANG).await);
        assert_eq!(publisher.published(), ["a", "b"]);
        // Room again once drained.
        assert!(queue.push(record("d")));
        assert!(queue.flush(HANG).await);
        assert_eq!(publisher.published(), ["a", "b", "d"]);
    }

    #[tokio::test]
    async fn a_record_is_retried_until_too_old_then_dropped() {
        let clock = Arc::new(ManualClock::default());
        let mut publisher = TestPublisher::new();
        publisher
            .transient_failures
            .store(usize::MAX, Ordering::SeqCst);
        // Each attempt takes a minute of the queue's clock; records may wait five.
        publisher.clock_step = Some((clock.clone(), Duration::from_secs(60)));
        let publisher = Arc::new(publisher);
        let queue = start(&publisher, clock, config());
        assert!(queue.push(record("old")));
        assert!(queue.flush(HANG).await);
        let stats = queue.stats();
        assert_eq!(publisher.attempts.load(Ordering::SeqCst), 5);
        assert_eq!((stats.published, stats.retried), (0, 5));
        assert_eq!(stats.dropped(DropReason::Expired), 1);
        assert_eq!(stats.dropped_total(), 1);
    }

    #[tokio::test]
    async fn a_permanent_error_drops_only_that_record() {
        let mut publisher = TestPublisher::new();
        publisher.refused_topic = Some("gone");
        let publisher = Arc::new(publisher);
        let queue = start(&publisher, Arc::default(), config());
        assert!(queue.push(Record::new("gone", b"x".to_vec())));
        assert!(queue.push(record("kept")));
        assert!(queue.flush(HANG).await);
        assert_eq!(publisher.published(), ["kept"]);
        let stats = queue.stats();
        assert_eq!((stats.dropped(DropReason::Rejected), stats.retried), (1, 0));
    }

    #[tokio::test]
    async fn shutdown_drains_what_is_queued_then_refuses_more() {
        let publisher = Arc::new(TestPublisher::closed());
        let queue = start(&publisher, Arc::default(), config());
        assert!(queue.push(record("a")));
        assert!(queue.push(record("b")));
        let stopping = tokio::spawn({
            let queue = queue.clone();
            async move { queue.shutdown(HANG).await }
        });
        publisher.open.send_replace(true);
        let stats = stopping.await.unwrap();
        assert_eq!(publisher.published(), ["a", "b"]);
        assert_eq!(
            (stats.depth, stats.published, stats.dropped_total()),
            (0, 2, 0)
        );
        assert!(!queue.push(record("late")));
        assert_eq!(queue.stats().dropped(DropReason::Shutdown), 1);
    }

    #[tokio::test]
    async fn shutdown_counts_what_could_not_go_out_in_the_grace_period() {
        let publisher = Arc::new(TestPublisher::closed());
        let queue = start(&publisher, Arc::default(), config());
        assert!(queue.push(record("a")));
        assert!(queue.push(record("b")));
        let stats = queue.shutdown(Duration::ZERO).await;
        assert_eq!((stats.depth, stats.published), (0, 0));
        assert_eq!(stats.dropped(DropReason::Shutdown), 2);
        publisher.open.send_replace(true);
        assert!(publisher.published().is_empty());
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [
            PublishQueueConfig {
                capacity: 0,
                ..config()
            },
            PublishQueueConfig {
                backoff_initial: Duration::ZERO,
                ..config()
            },
            PublishQueueConfig {
                backoff_max: Duration::from_micros(1),
                ..config()
            },
        ] {
            assert_eq!(
                bad.validate().unwrap_err().code(),
                openframe_core::ErrorCode::ValidationError
            );
        }
    }
}
