//! The processor against a real Kafka-protocol broker (tansu): poison is dead-lettered while
//! the rest flows, a sink outage is retried then recovers, and a broker killed and restarted
//! mid-stream loses nothing and stores nothing twice in a SQLite event store.
//!
//! The first two tests use the shared broker of `OPENFRAME_TEST_KAFKA_BROKERS` (random topic
//! prefix); the restart test starts its own tansu (from `OPENFRAME_TEST_TANSU_BIN`, else `tansu`
//! on the PATH) with SQLite storage in a temporary directory so it can kill it. Each prints a
//! `skipped:` line when its broker is not available (`scripts/test-services.sh` provides both).

#![cfg(all(feature = "kafka", feature = "sqlite"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support_tansu;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use openframe_core::{Error, ManualClock, Result, TenantId};
use openframe_data::Repositories;
use openframe_data::memory::{InMemoryCache, InMemoryDocumentStore};
use openframe_stream::bus::kafka::{KafkaEventBus, KafkaEventBusConfig};
use openframe_stream::bus::{ConsumerSpec, Delivered, EventBus, EventPublisher, Record};
use openframe_stream::enrich::{Enricher, RepositoryDirectory};
use openframe_stream::model::UnifiedEvent;
use openframe_stream::processor::{
    DeadLetterInfo, DeadLetterReason, EventSink, Processor, ProcessorConfig, RetryPolicy, RunEnd,
};
use openframe_stream::store::sqlite::SqliteEventStore;
use openframe_stream::store::{EventFilter, EventStore};
use serde_json::json;
use support_tansu::Tansu;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

const VAR: &str = "OPENFRAME_TEST_KAFKA_BROKERS";
const EVENTS: &str = "agent-events";
const DLQ: &str = "dead-letters";

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// A bus on the broker(s) `brokers`, topics under a fresh random prefix when `prefixed`.
fn kafka_bus(brokers: &str, prefixed: bool) -> Arc<KafkaEventBus> {
    kafka_bus_with_session(brokers, prefixed, Duration::from_secs(6))
}

/// [`kafka_bus`] whose consumers leave their group after `session` without the broker.
fn kafka_bus_with_session(brokers: &str, prefixed: bool, session: Duration) -> Arc<KafkaEventBus> {
    let mut config = KafkaEventBusConfig::new(brokers.split(','))
        .with_client_id("processor-kafka-tests")
        .with_group_timeouts(session, Duration::from_millis(500))
        .with_delivery_timeout(Duration::from_secs(60))
        .with_request_timeout(Duration::from_secs(5))
        .with_linger(Duration::from_millis(1));
    if prefixed {
        let id = Uuid::new_v4().simple().to_string();
        config = config.with_topic_prefix(format!("pk-{}.", &id[..8]));
    }
    Arc::new(KafkaEventBus::new(config).expect("bus"))
}

/// The shared broker's bus, or `None` (after printing why).
fn shared_bus() -> Option<Arc<KafkaEventBus>> {
    let Ok(brokers) = std::env::var(VAR) else {
        println!("skipped: set {VAR} to run the processor's Kafka fault tests");
        return None;
    };
    Some(kafka_bus(&brokers, true))
}

/// An agent domain event of machine `i`, `seq` seconds after a fixed start (its event id is
/// derived from the payload, so every `seq` gives a distinct event).
fn agent_event(i: usize, seq: u32) -> Record {
    let payload = json!({
        "tenant": "acme", "machineId": format!("m-{i}"), "kind": "CAME_ONLINE",
        "status": "ONLINE", "at": at(seq).to_rfc3339()
    });
    Record::new(EVENTS, serde_json::to_vec(&payload).unwrap()).with_key(format!("m-{i}"))
}

fn at(seq: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seq.into())
}

/// An enricher over empty repositories (every machine unknown).
fn empty_enricher() -> Enricher {
    let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
    Enricher::builder(
        Arc::new(RepositoryDirectory::from_repositories(&repos)),
        Arc::new(InMemoryCache::new(Arc::new(ManualClock::default()))),
    )
    .build()
    .unwrap()
}

fn processor(bus: Arc<KafkaEventBus>, sink: Arc<dyn EventSink>, retry: RetryPolicy) -> Processor {
    let mut config = ProcessorConfig::new([EVENTS]);
    config.group = format!("processor-{}", Uuid::new_v4().simple());
    config.dead_letter_topic = DLQ.into();
    config.output_topic = None;
    config.topic_partitions = 2;
    config.batch_size = 10;
    config.retry = retry;
    Processor::builder(bus, empty_enricher(), sink)
        .with_config(config)
        .build()
        .unwrap()
}

/// A SQLite event store in a fresh temporary directory.
async fn sqlite_store() -> (Arc<SqliteEventStore>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("openframe-processor-kafka-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteEventStore::open(dir.join("events.db")).await.unwrap();
    (Arc::new(store), dir)
}

/// Appends to an event store and counts what the store reports: every write (redeliveries
/// included), the rows inserted for the first time and the rows replaced. Can be made to fail
/// with `Unavailable` for its next `fail_next` calls.
#[derive(Debug)]
struct CountingStoreSink {
    store: Arc<dyn EventStore>,
    fail_next: AtomicU64,
    /// A pause before each append (keeps the stream going while the broker is killed).
    delay: Duration,
    /// Serializes writes, so the pauses add up.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// Holds one write after it reached the store, until released.
    hold: Option<Hold>,
    written: Mutex<Vec<UnifiedEvent>>,
    inserted: AtomicU64,
    replaced: AtomicU64,
}

impl CountingStoreSink {
    fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            fail_next: AtomicU64::new(0),
            delay: Duration::ZERO,
            one_at_a_time: tokio::sync::Mutex::new(()),
            hold: None,
            written: Mutex::new(Vec::new()),
            inserted: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
        }
    }

    fn written(&self) -> Vec<UnifiedEvent> {
        self.written.lock().unwrap().clone()
    }

    /// How many times each event was written.
    fn writes_per_event(&self) -> HashMap<Uuid, usize> {
        let mut out = HashMap::new();
        for event in self.written.lock().unwrap().iter() {
            *out.entry(event.id).or_default() += 1;
        }
        out
    }

    fn distinct_ids(&self) -> usize {
        self.written
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<HashSet<_>>()
            .len()
    }
}

#[async_trait]
impl EventSink for CountingStoreSink {
    async fn write(&self, events: &[UnifiedEvent]) -> Result<()> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Unavailable {
                reason: "sink down".into(),
            });
        }
        {
            let _turn = self.one_at_a_time.lock().await;
            tokio::time::sleep(self.delay).await;
            let outcome = self.store.append(events).await?;
            self.inserted.fetch_add(outcome.inserted, Ordering::SeqCst);
            self.replaced.fetch_add(outcome.replaced, Ordering::SeqCst);
            self.written.lock().unwrap().extend_from_slice(events);
        }
        // Other writes go on while this one is held.
        if let Some(hold) = &self.hold {
            hold.pass(events).await;
        }
        Ok(())
    }
}

/// Holds the `at`-th write (0-based) of a sink once it is in the store: the test learns which
/// events it held and decides when the write returns. Until then the processor commits nothing
/// of that partition from the held records on (commits stop at the first unfinished record).
#[derive(Debug)]
struct Hold {
    at: usize,
    writes: AtomicU64,
    held: Mutex<Vec<Uuid>>,
    reached: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

impl Hold {
    fn new(at: usize) -> Self {
        Self {
            at,
            writes: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
            reached: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        }
    }

    async fn pass(&self, events: &[UnifiedEvent]) {
        if self.writes.fetch_add(1, Ordering::SeqCst) != self.at as u64 {
            return;
        }
        *self.held.lock().unwrap() = events.iter().map(|e| e.id).collect();
        self.reached.notify_one();
        self.release.acquire().await.unwrap().forget();
    }

    /// Waits until the held write is in the store; returns its events.
    async fn reached(&self) -> Vec<Uuid> {
        tokio::time::timeout(Duration::from_secs(60), self.reached.notified())
            .await
            .expect("the held write in time");
        self.held.lock().unwrap().clone()
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<RunEnd>>,
}

fn start(processor: &Processor) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let processor = processor.clone();
    let task = tokio::spawn(async move {
        processor
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    Running { stop, task }
}

impl Running {
    async fn stop(self) -> RunEnd {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap()
    }
}

/// Polls `cond` until it holds, at most `limit` (progress of the broker and other tasks).
async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads exactly `n` records of `topic` in a fresh group, then checks nothing more comes.
async fn read_all(bus: &KafkaEventBus, topic: &str, n: usize) -> Vec<Delivered> {
    let group = format!("reader-{}", Uuid::new_v4().simple());
    let mut consumer = bus
        .consumer(ConsumerSpec::new(group, [topic]))
        .await
        .unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("a record in time")
            .unwrap()
            .unwrap();
        consumer.commit_delivered(&d).await.unwrap();
        out.push(d);
    }
    if let Ok(extra) = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await {
        panic!(
            "more than {n} records on {topic}: {:?}",
            extra.map(|d| d.map(|d| d.position))
        );
    }
    out
}

/// Checks that the store holds exactly the events of seq `0..n` of tenant acme, once each.
async fn assert_stored_exactly(store: &dyn EventStore, sink: &CountingStoreSink, n: u32) {
    assert_eq!(
        store
            .count(&tenant(), &EventFilter::default())
            .await
            .unwrap(),
        u64::from(n),
        "rows in the store"
    );
    let written = sink.written();
    let ids: BTreeSet<Uuid> = written.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), n as usize, "distinct events written");
    for id in &ids {
        assert!(
            store.get(&tenant(), *id).await.unwrap().is_some(),
            "{id} stored"
        );
    }
    let times: BTreeSet<_> = written.iter().map(|e| e.occurred_at).collect();
    let expected: BTreeSet<_> = (0..n).map(at).collect();
    assert_eq!(times, expected, "every published event, and only those");
    assert_eq!(
        sink.inserted.load(Ordering::SeqCst),
        u64::from(n),
        "each event inserted as a new row exactly once"
    );
    assert_eq!(
        sink.inserted.load(Ordering::SeqCst) + sink.replaced.load(Ordering::SeqCst),
        written.len() as u64,
        "every other write replaced its own row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_kafka_is_dead_lettered_while_the_rest_flows() {
    let Some(bus) = shared_bus() else { return };
    const N: u32 = 30;
    bus.ensure_topic(EVENTS, 2).await.unwrap();
    for seq in 0..N / 2 {
        bus.publish(agent_event(seq as usize % 4, seq))
            .await
            .unwrap();
    }
    let poison = Record::new(
        EVENTS,
        br#"{"tenant":"acme","password":"hunter2-s3cr3t""#.to_vec(),
    )
    .with_key("m-1")
    .with_header("x-trace", "abc");
    let poison_at = bus.publish(poison).await.unwrap();
    for seq in N / 2..N {
        bus.publish(agent_event(seq as usize % 4, seq))
            .await
            .unwrap();
    }

    let (store, dir) = sqlite_store().await;
    let sink = Arc::new(CountingStoreSink::new(store.clone()));
    let retry = RetryPolicy::new(10, Duration::from_millis(10), Duration::from_millis(200));
    let processor = processor(bus.clone(), sink.clone(), retry);
    let running = start(&processor);
    eventually("processing", Duration::from_secs(60), || {
        let m = processor.metrics();
        m.processed == u64::from(N) && m.dead_lettered == 1
    })
    .await;
    assert_eq!(running.stop().await, RunEnd::Shutdown);
    let m = processor.metrics();
    assert_eq!(
        (
            m.processed,
            m.events_written,
            m.dead_lettered,
            m.retried,
            m.in_flight
        ),
        (u64::from(N), u64::from(N), 1, 0, 0)
    );
    assert_stored_exactly(store.as_ref(), &sink, N).await;
    assert_eq!(sink.written().len(), N as usize, "no write repeated");

    let letters = read_all(&bus, DLQ, 1).await;
    let letter = &letters[0];
    let info = DeadLetterInfo::from_headers(&letter.record.headers);
    assert_eq!(info.reason, Some(DeadLetterReason::Malformed));
    assert_eq!(info.source_topic.as_deref(), Some(EVENTS));
    assert_eq!(
        (info.source_partition, info.source_offset),
        (Some(poison_at.partition), Some(poison_at.offset))
    );
    assert_eq!(info.attempts, Some(1));
    let error = info.error.unwrap();
    assert!(
        !error.contains("hunter2") && !error.contains("s3cr3t"),
        "{error}"
    );
    assert_eq!(letter.record.headers.get("x-trace"), Some("abc"));
    assert_eq!(letter.record.key.as_deref(), Some(&b"m-1"[..]));
    assert!(
        letter.record.payload.ends_with(b"s3cr3t\""),
        "payload kept whole"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_outage_on_kafka_is_retried_then_recovers() {
    let Some(bus) = shared_bus() else { return };
    const N: u32 = 40;
    bus.ensure_topic(EVENTS, 2).await.unwrap();
    for seq in 0..N {
        bus.publish(agent_event(seq as usize % 8, seq))
            .await
            .unwrap();
    }
    let (store, dir) = sqlite_store().await;
    let sink = Arc::new(CountingStoreSink::new(store.clone()));
    sink.fail_next.store(5, Ordering::SeqCst);
    let retry = RetryPolicy::new(20, Duration::from_millis(20), Duration::from_millis(200));
    let processor = processor(bus.clone(), sink.clone(), retry);
    let running = start(&processor);
    eventually("all processed", Duration::from_secs(60), || {
        processor.metrics().processed == u64::from(N)
    })
    .await;
    assert_eq!(running.stop().await, RunEnd::Shutdown);
    let m = processor.metrics();
    assert_eq!(
        sink.fail_next.load(Ordering::SeqCst),
        0,
        "the outage happened"
    );
    assert_eq!(
        (m.processed, m.events_written, m.retried, m.dead_lettered),
        (u64::from(N), u64::from(N), 5, 0)
    );
    assert_stored_exactly(store.as_ref(), &sink, N).await;
    assert_eq!(sink.written().len(), N as usize, "no write repeated");
    // Nothing was dead-lettered: the topic exists (the processor made it) and is empty.
    read_all(&bus, DLQ, 0).await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let Some(bin) = Tansu::find() else { return };
    const N: u32 = 80;
    let (store, dir) = sqlite_store().await;
    let mut tansu = Tansu::start(bin, &dir);
    let bus = kafka_bus(&tansu.brokers(), false);
    bus.ensure_topic(EVENTS, 2).await.unwrap();
    for seq in 0..N / 2 {
        bus.publish(agent_event(seq as usize % 8, seq))
            .await
            .unwrap();
    }

    let mut sink = CountingStoreSink::new(store.clone());
    sink.delay = Duration::from_millis(100);
    let sink = Arc::new(sink);
    // Fetch errors while the broker is down are retried for up to about a minute.
    let retry = RetryPolicy::new(100, Duration::from_millis(50), Duration::from_millis(500));
    let processor = processor(bus.clone(), sink.clone(), retry);
    let running = start(&processor);
    // Mid-stream: some events stored, then the broker dies.
    eventually("the first events stored", Duration::from_secs(60), || {
        sink.distinct_ids() > 0
    })
    .await;
    tansu.kill();
    let before_restart = sink.distinct_ids();
    assert!(before_restart < N as usize / 2, "killed mid-stream");
    tokio::time::sleep(Duration::from_secs(2)).await;
    tansu.spawn();
    for seq in N / 2..N {
        bus.publish(agent_event(seq as usize % 8, seq))
            .await
            .expect("publish after the restart");
    }
    eventually("every event stored", Duration::from_secs(120), || {
        sink.distinct_ids() == N as usize
    })
    .await;
    assert_eq!(running.stop().await, RunEnd::Shutdown);

    let m = processor.metrics();
    assert_eq!(m.dead_lettered, 0);
    assert!(m.processed >= u64::from(N), "{m:?}");
    assert_stored_exactly(store.as_ref(), &sink, N).await;
    println!(
        "{N} events; {before_restart} stored before the kill; {} writes ({} redelivered, replaced in place)",
        sink.written().len(),
        sink.replaced.load(Ordering::SeqCst)
    );
    drop(tansu);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_lost_to_a_broker_kill_is_redelivered_and_stored_once() {
    let Some(bin) = Tansu::find() else { return };
    const N: u32 = 40;
    const AFTER: u32 = 10;
    const SESSION: Duration = Duration::from_secs(3);
    let (store, dir) = sqlite_store().await;
    let mut tansu = Tansu::start(bin, &dir);
    let bus = kafka_bus_with_session(&tansu.brokers(), false, SESSION);
    bus.ensure_topic(EVENTS, 2).await.unwrap();
    for seq in 0..N {
        bus.publish(agent_event(seq as usize % 8, seq))
            .await
            .unwrap();
    }

    // The second write is held once it is in the store, before the processor can commit it.
    let mut sink = CountingStoreSink::new(store.clone());
    sink.hold = Some(Hold::new(1));
    let sink = Arc::new(sink);
    let hold = sink.hold.as_ref().unwrap();
    let retry = RetryPolicy::new(100, Duration::from_millis(50), Duration::from_millis(500));
    let processor = processor(bus.clone(), sink.clone(), retry);
    let running = start(&processor);
    let held = hold.reached().await;
    assert!(!held.is_empty());
    // Kill the broker while the held records are stored but not committed, and keep it down
    // for longer than the session timeout (librdkafka times it; there is no clock to advance):
    // the consumer loses its partitions and rejoins the group after the restart, resuming
    // each partition from the last commit the broker stored, before the held records.
    tansu.kill();
    tokio::time::sleep(SESSION + Duration::from_secs(2)).await;
    tansu.spawn();
    for seq in N..N + AFTER {
        bus.publish(agent_event(seq as usize % 8, seq))
            .await
            .expect("publish after the restart");
    }
    // A record published after the restart is processed: the group was rejoined. Only now
    // does the held write return, so its commit cannot precede the rejoin.
    eventually(
        "processing after the restart",
        Duration::from_secs(60),
        || sink.written().iter().any(|e| e.occurred_at >= at(N)),
    )
    .await;
    hold.release.add_permits(1);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let writes = sink.writes_per_event();
        if writes.len() == (N + AFTER) as usize
            && held
                .iter()
                .all(|id| writes.get(id).copied().unwrap_or(0) >= 2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no redelivery: {} distinct events written, held {:?}, writes {:?}, metrics {:?}",
            writes.len(),
            held,
            writes,
            processor.metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(running.stop().await, RunEnd::Shutdown);

    // Redelivered: the held records were processed (and written) twice...
    let m = processor.metrics();
    assert_eq!(m.dead_lettered, 0);
    let writes = sink.writes_per_event();
    assert!(held.iter().all(|id| writes[id] >= 2), "{writes:?}");
    assert!(
        m.processed > u64::from(N + AFTER),
        "records processed again: {m:?}"
    );
    assert!(
        sink.replaced.load(Ordering::SeqCst) >= held.len() as u64,
        "the store saw the held events again"
    );
    // ...and the store still holds every event exactly once.
    assert_stored_exactly(store.as_ref(), &sink, N + AFTER).await;
    println!(
        "{} events; {} held through the kill; {} writes, {} records processed",
        N + AFTER,
        held.len(),
        sink.written().len(),
        m.processed
    );
    drop(tansu);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
