//! The processor: source topics → adapt → enrich → sink → output topic → commit.
//!
//! A [`Processor`] consumes its topics as one member of a consumer group and hands each record
//! to one of `concurrency` **lanes** chosen by the hash of the record's key (of its partition
//! when it has none), so the records of one key (one machine) are processed in order while
//! different keys run in parallel. A lane takes the records queued for it in batches: it adapts
//! them with the [`AdapterRegistry`], enriches them with the [`Enricher`], writes the events to
//! the [`EventSink`] in one call, and publishes them (JSON, keyed by machine) to the output
//! topic.
//!
//! - **Commits** happen only after the sink (and output topic) took a record's events, and
//!   only up to the first unfinished record of each partition, so a crash never skips one.
//! - **Transient failures** (`Error::is_retryable`: `Unavailable`, `Backend`, ...) of the
//!   enrichment lookups, the sink and the output topic are retried with exponential backoff
//!   ([`RetryPolicy`]); when the retries are spent the record is dead-lettered.
//! - **Poison** (malformed payloads, records no adapter accepts, an unresolvable tenant, a
//!   sink refusing an event) goes to the dead-letter topic at once, whole, with `x-dlq-*`
//!   headers: the reason, a payload-free error text, the source topic, partition and offset,
//!   and the attempts; its original headers are kept. If the sink refuses a batch, its
//!   records are written one by one so only the refused one is dead-lettered.
//! - **Replay**: [`Processor::replay_dead_letters`] moves dead letters back to their source
//!   topic (or another), committing each on the dead-letter topic.
//! - **Shutdown**: when the future given to [`Processor::run`] completes, the processor stops
//!   fetching, lets the lanes finish what they hold, commits, and returns.
//! - **Metrics**: [`Processor::metrics`] at any time: counters, throughput, and the consumer
//!   lag per partition, asked from the bus every
//!   [`lag_interval`](ProcessorConfig::lag_interval) of the processor's clock (which is read
//!   at least every 100 ms, so a manual clock drives it in tests).
//!
//! Nothing is dropped silently: a record is either processed, dead-lettered, or left
//! uncommitted (if even the dead-letter topic refuses it) so the group gets it again.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_core::SystemClock;
//! use openframe_data::{Repositories, memory::{InMemoryCache, InMemoryDocumentStore}};
//! use openframe_stream::adapters::AdapterRegistry;
//! use openframe_stream::bus::{EventBus, EventPublisher, Record, memory::InMemoryEventBus};
//! use openframe_stream::enrich::{Enricher, RepositoryDirectory};
//! use openframe_stream::processor::{InMemoryEventSink, Processor, ProcessorConfig};
//!
//! let bus = Arc::new(InMemoryEventBus::new());
//! bus.ensure_topic("openframe.agent-events", 3).await?;
//! let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
//! let enricher = Enricher::builder(
//!     Arc::new(RepositoryDirectory::from_repositories(&repos)),
//!     Arc::new(InMemoryCache::new(Arc::new(SystemClock))),
//! ).build()?;
//! let sink = Arc::new(InMemoryEventSink::new());
//! let processor = Processor::builder(bus.clone(), enricher, sink.clone())
//!     .with_config(ProcessorConfig::new(["openframe.agent-events"]))
//!     .build()?;
//!
//! bus.publish(Record::new("openframe.agent-events",
//!     br#"{"tenant":"acme","machineId":"m-1","kind":"CAME_ONLINE","status":"ONLINE","at":"2025-03-01T10:00:00Z"}"#.to_vec())
//!     .with_key("m-1")).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn({
//!     let processor = processor.clone();
//!     async move { processor.run(async { let _ = stopped.await; }).await }
//! });
//! while processor.metrics().processed < 1 { tokio::task::yield_now().await; }
//! stop.send(()).unwrap();
//! running.await.unwrap()?;
//! assert_eq!(sink.events()[0].event_type, "DEVICE_ONLINE");
//! assert!(sink.events()[0].unknown_machine); // no such machine in the repositories
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

mod config;
mod dead_letter;
mod lane;
mod metrics;
mod sink;
mod tracker;

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openframe_core::{Clock, Error, Result, SystemClock};
use tokio::sync::mpsc;

use crate::adapters::AdapterRegistry;
use crate::bus::{Delivered, EventBus, EventConsumer};
use crate::enrich::Enricher;

pub use config::{
    DEFAULT_DEAD_LETTER_TOPIC, DEFAULT_GROUP, DEFAULT_LAG_INTERVAL, DEFAULT_OUTPUT_TOPIC,
    MAX_CONCURRENCY, ProcessorConfig, RetryPolicy,
};
pub use dead_letter::{
    ATTEMPTS_HEADER, DeadLetterInfo, DeadLetterReason, ERROR_HEADER, FAILED_AT_HEADER,
    REASON_HEADER, REPLAY_COUNT_HEADER, ReplayOptions, ReplayReport, SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER, SOURCE_TOPIC_HEADER, replay_dead_letters,
};
pub use lane::{OUTPUT_MESSAGE_TYPE, output_record, raw_record};
pub use metrics::{MetricsSnapshot, PartitionProgress};
pub use sink::{EventSink, InMemoryEventSink, StoreSink};

use lane::{Finished, Pipeline, run_lane};
use metrics::Metrics;
use tracker::CommitTracker;

/// How often the run loop re-reads the clock to see whether the lag is due.
const LAG_TICK: Duration = Duration::from_millis(100);

/// How long the run loop waits for the bus to report the lag (it fetches nothing meanwhile);
/// a broker that takes longer keeps the last report.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a [`Processor`].
#[derive(Debug)]
pub struct ProcessorBuilder {
    bus: Arc<dyn EventBus>,
    enricher: Enricher,
    sink: Arc<dyn EventSink>,
    registry: AdapterRegistry,
    config: Option<ProcessorConfig>,
    clock: Arc<dyn Clock>,
}

impl ProcessorBuilder {
    /// The settings (required: at least the topics).
    pub fn with_config(mut self, config: ProcessorConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The adapters (default [`AdapterRegistry::builtin`]).
    pub fn with_registry(mut self, registry: AdapterRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// The clock for dead-letter times, throughput and lag refreshes (default the system
    /// clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The processor; `InvalidInput` for a missing or invalid configuration.
    pub fn build(self) -> Result<Processor> {
        let config = self
            .config
            .ok_or_else(|| Error::invalid("topics", "a configuration with topics is required"))?;
        config.validate()?;
        Ok(Processor {
            pipeline: Arc::new(Pipeline {
                bus: self.bus,
                registry: self.registry,
                enricher: self.enricher,
                sink: self.sink,
                config,
                clock: self.clock,
                metrics: Arc::new(Metrics::default()),
                stopping: AtomicBool::new(false),
            }),
        })
    }
}

/// The event processor (see the [module docs](self)). Cloning shares it; run it once at a
/// time per clone group.
#[derive(Clone)]
pub struct Processor {
    pipeline: Arc<Pipeline>,
}

impl fmt::Debug for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processor")
            .field("config", &self.pipeline.config)
            .finish_non_exhaustive()
    }
}

/// What one [`Processor::run`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEnd {
    /// The shutdown signal fired.
    Shutdown,
    /// The consumer ended (a topic was deleted or the bus shut down).
    ConsumerEnded,
}

impl Processor {
    /// A builder over the bus (source, dead-letter and output topics), the enricher and the
    /// sink.
    pub fn builder(
        bus: Arc<dyn EventBus>,
        enricher: Enricher,
        sink: Arc<dyn EventSink>,
    ) -> ProcessorBuilder {
        ProcessorBuilder {
            bus,
            enricher,
            sink,
            registry: AdapterRegistry::builtin(),
            config: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ProcessorConfig {
        &self.pipeline.config
    }

    /// The counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.pipeline.metrics.snapshot(self.pipeline.clock.now())
    }

    /// Processes records until `shutdown` completes (then finishes and commits what is in
    /// flight) or the consumer ends. Creates the dead-letter and output topics if missing.
    /// Errors: the bus refusing the consumer, or a non-transient fetch error (after in-flight
    /// work was finished and committed).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<RunEnd> {
        let p = &self.pipeline;
        self.ensure_topics().await?;
        let mut consumer = p.bus.consumer(p.config.consumer_spec()).await?;
        p.stopping.store(false, Ordering::Relaxed);
        p.metrics
            .started_at
            .lock()
            .map(|mut s| *s = Some(p.clock.now()))
            .ok();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        let mut lanes = Vec::with_capacity(p.config.concurrency);
        let mut tasks = Vec::with_capacity(p.config.concurrency);
        for _ in 0..p.config.concurrency {
            let (tx, rx) = mpsc::channel::<Delivered>(p.config.max_in_flight);
            lanes.push(tx);
            tasks.push(tokio::spawn(run_lane(p.clone(), rx, done_tx.clone())));
        }
        drop(done_tx);

        let mut tracker = CommitTracker::default();
        let mut running = 0usize;
        let mut end = None;
        let mut failure = None;
        let mut fetch_errors = 0u32;
        let mut lag_due = p.clock.now();
        let mut lag_tick = tokio::time::interval(LAG_TICK.min(p.config.lag_interval));
        lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            if end.is_some() && running == 0 {
                break;
            }
            if end.is_none() && p.clock.now() >= lag_due {
                self.refresh_lag(consumer.as_mut()).await;
                let interval = chrono::Duration::from_std(p.config.lag_interval)
                    .unwrap_or(chrono::Duration::MAX);
                lag_due = p
                    .clock
                    .now()
                    .checked_add_signed(interval)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
            }
            let can_fetch = end.is_none() && tracker.uncommitted() < p.config.max_in_flight;
            tokio::select! {
                biased;
                Some(first) = done_rx.recv() => {
                    let mut next = Some(first);
                    while let Some(f) = next {
                        tracker.finished(&f.topic, f.position, f.ok);
                        running -= 1;
                        next = done_rx.try_recv().ok();
                    }
                    p.metrics.in_flight.store(running as u64, Ordering::Relaxed);
                    self.commit(consumer.as_mut(), &mut tracker).await;
                }
                () = &mut shutdown, if end.is_none() => {
                    end = Some(RunEnd::Shutdown);
                    p.stopping.store(true, Ordering::Relaxed);
                }
                // Wakes the loop to re-read the clock for the lag refresh.
                _ = lag_tick.tick(), if end.is_none() => {}
                next = consumer.next(), if can_fetch => match next {
                    Ok(Some(delivered)) => {
                        fetch_errors = 0;
                        tracker.delivered(&delivered.record.topic, delivered.position);
                        running += 1;
                        p.metrics.in_flight.store(running as u64, Ordering::Relaxed);
                        let lane = lane_of(&delivered, lanes.len());
                        if lanes[lane].send(delivered).await.is_err() {
                            failure = Some(Error::Internal("a processor lane stopped".into()));
                            end = Some(RunEnd::Shutdown);
                        }
                    }
                    Ok(None) => end = Some(RunEnd::ConsumerEnded),
                    Err(e) if e.is_retryable() && fetch_errors < p.config.retry.max_attempts => {
                        fetch_errors += 1;
                        tracing::warn!(error = %e, "fetching failed; retrying");
                        tokio::time::sleep(p.config.retry.backoff(fetch_errors)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "fetching failed; stopping");
                        failure = Some(e);
                        end = Some(RunEnd::Shutdown);
                    }
                },
                // Every lane is gone (only after a panic): nothing more can finish.
                else => break,
            }
        }
        drop(lanes);
        for task in tasks {
            if task.await.is_err() {
                tracing::error!("a processor lane panicked");
            }
        }
        self.commit(consumer.as_mut(), &mut tracker).await;
        p.metrics.in_flight.store(0, Ordering::Relaxed);
        match failure {
            Some(e) => Err(e),
            None => Ok(end.unwrap_or(RunEnd::Shutdown)),
        }
    }

    /// Moves dead letters back to their source topics (see [`replay_dead_letters`]) and counts
    /// them in [`MetricsSnapshot::replayed`].
    pub async fn replay_dead_letters(&self, options: &ReplayOptions) -> Result<ReplayReport> {
        let p = &self.pipeline;
        let report =
            replay_dead_letters(p.bus.as_ref(), &p.config.dead_letter_topic, options).await?;
        Metrics::add(&p.metrics.replayed, report.replayed);
        Ok(report)
    }

    /// Creates the dead-letter and output topics if they do not exist.
    async fn ensure_topics(&self) -> Result<()> {
        let p = &self.pipeline;
        let topics = std::iter::once(&p.config.dead_letter_topic).chain(&p.config.output_topic);
        for topic in topics {
            if p.bus.topic_partitions(topic).await?.is_none() {
                p.bus.ensure_topic(topic, p.config.topic_partitions).await?;
            }
        }
        Ok(())
    }

    /// Asks the bus for the lag of the assigned partitions; a failure keeps the last report.
    async fn refresh_lag(&self, consumer: &mut dyn EventConsumer) {
        let p = &self.pipeline;
        match tokio::time::timeout(LAG_TIMEOUT, consumer.lag()).await {
            Ok(Ok(lag)) => p.metrics.set_lag(p.clock.now(), &lag),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the consumer lag; keeping the last")
            }
            Err(_) => tracing::warn!("the bus did not report the lag in time; keeping the last"),
        }
    }

    /// Commits what the tracker allows. A partition that moved to another consumer is
    /// forgotten (the new owner gets its uncommitted records); other failures are retried at
    /// the next commit.
    async fn commit(&self, consumer: &mut dyn EventConsumer, tracker: &mut CommitTracker) {
        for (topic, positions) in tracker.commits() {
            match consumer.commit(&topic, &positions).await {
                Ok(()) => {
                    tracker.committed(&topic, &positions);
                    for p in &positions {
                        self.pipeline
                            .metrics
                            .set_committed(&topic, p.partition, p.offset);
                    }
                }
                Err(Error::Conflict { .. }) => {
                    tracing::info!(topic = %topic, "partitions moved to another consumer");
                    tracker.forget(&topic, &positions);
                }
                Err(e) => tracing::warn!(topic = %topic, error = %e, "commit failed; will retry"),
            }
        }
    }
}

/// The lane of a record: by key, else by topic and partition.
fn lane_of(delivered: &Delivered, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    match &delivered.record.key {
        Some(key) => key.hash(&mut hasher),
        None => {
            delivered.record.topic.hash(&mut hasher);
            delivered.position.partition.hash(&mut hasher);
        }
    }
    (hasher.finish() % lanes.max(1) as u64) as usize
}
