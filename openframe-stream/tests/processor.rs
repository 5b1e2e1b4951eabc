//! The processor end to end on the in-process bus, with real in-memory repositories for
//! enrichment and test sinks: dead letters, retries, replay, per-key ordering, graceful
//! shutdown, commits and exact metrics.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use openframe_core::{Clock, Error, Machine, MachineId, ManualClock, OsType, Result, TenantId};
use openframe_data::Repositories;
use openframe_data::memory::{InMemoryCache, InMemoryDocumentStore};
use openframe_stream::bus::memory::InMemoryEventBus;
use openframe_stream::bus::{
    ConsumerSpec, Delivered, EventBus, EventPublisher, Position, Record, partition_for_key,
};
use openframe_stream::enrich::{Enricher, RepositoryDirectory};
use openframe_stream::model::UnifiedEvent;
use openframe_stream::processor::{
    DeadLetterInfo, DeadLetterReason, EventSink, Processor, ProcessorConfig, REPLAY_COUNT_HEADER,
    ReplayOptions, RetryPolicy, RunEnd,
};
use serde_json::json;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

const EVENTS: &str = "openframe.agent-events";
const FLEET: &str = "fleet-mdm-query-result-events";
const DLQ: &str = "test.dead-letters";
const OUT: &str = "test.unified-events";

/// A sink that records every write (duplicates included) and can fail, reject, block and
/// report how many writes overlapped.
#[derive(Debug, Default)]
struct TestSink {
    events: Mutex<Vec<UnifiedEvent>>,
    /// Fail this many calls with `Unavailable`.
    fail_next: AtomicU64,
    /// Fail every call with `Unavailable` while set.
    down: AtomicBool,
    /// Refuse (`InvalidInput`) any batch holding an event of this machine.
    reject_machine: Mutex<Option<String>>,
    /// Writes wait for a permit while set.
    gate: Option<Semaphore>,
    entered: AtomicU64,
    active: AtomicU64,
    max_active: AtomicU64,
}

impl TestSink {
    fn gated() -> Self {
        Self {
            gate: Some(Semaphore::new(0)),
            ..Self::default()
        }
    }

    fn events(&self) -> Vec<UnifiedEvent> {
        self.events.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

#[async_trait]
impl EventSink for TestSink {
    async fn write(&self, events: &[UnifiedEvent]) -> Result<()> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(active, Ordering::SeqCst);
        // Give other lanes a chance to overlap.
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst)
            || self
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(Error::Unavailable {
                reason: "sink down".into(),
            });
        }
        let reject = self.reject_machine.lock().unwrap().clone();
        if let Some(reject) = reject {
            if events
                .iter()
                .any(|e| e.machine_id.as_ref().map(|m| m.as_str()) == Some(reject.as_str()))
            {
                return Err(Error::invalid("event", "refused by the sink"));
            }
        }
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

struct Setup {
    bus: Arc<InMemoryEventBus>,
    sink: Arc<TestSink>,
    processor: Processor,
    clock: Arc<ManualClock>,
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn setup(sink: TestSink, config: impl FnOnce(&mut ProcessorConfig)) -> Setup {
    let bus = Arc::new(InMemoryEventBus::new());
    bus.ensure_topic(EVENTS, 4).await.unwrap();
    bus.ensure_topic(FLEET, 2).await.unwrap();
    let clock = Arc::new(ManualClock::default());
    let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
    for i in 0..16 {
        let m = Machine::new(machine(i), format!("host-{i}"), OsType::Linux, clock.now());
        repos.machines.insert(&tenant(), m).await.unwrap();
    }
    let enricher = Enricher::builder(
        Arc::new(RepositoryDirectory::from_repositories(&repos)),
        Arc::new(InMemoryCache::new(clock.clone())),
    )
    .build()
    .unwrap();
    let mut cfg = ProcessorConfig::new([EVENTS, FLEET]);
    cfg.group = "test-processor".into();
    cfg.dead_letter_topic = DLQ.into();
    cfg.output_topic = Some(OUT.into());
    cfg.retry = RetryPolicy::new(10, Duration::from_millis(1), Duration::from_millis(4));
    config(&mut cfg);
    let sink = Arc::new(sink);
    let processor = Processor::builder(bus.clone(), enricher, sink.clone())
        .with_config(cfg)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    Setup {
        bus,
        sink,
        processor,
        clock,
    }
}

fn machine(i: usize) -> MachineId {
    MachineId::parse(format!("m-{i}")).unwrap()
}

/// An agent domain event of machine `i`, `seq` seconds after a fixed start.
fn agent_event(i: usize, seq: u32) -> Record {
    let at =
        Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seq.into());
    let payload = json!({
        "tenant": "acme", "machineId": format!("m-{i}"), "kind": "CAME_ONLINE",
        "status": "ONLINE", "at": at.to_rfc3339()
    });
    Record::new(EVENTS, serde_json::to_vec(&payload).unwrap()).with_key(format!("m-{i}"))
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

/// Polls `cond` until it holds (progress of other tasks, not expiry: no clock to advance).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..4000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Reads exactly `n` records of `topic` in a fresh group.
async fn read(bus: &InMemoryEventBus, topic: &str, group: &str, n: usize) -> Vec<Delivered> {
    let mut consumer = bus
        .consumer(ConsumerSpec::new(group, [topic]))
        .await
        .unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a record in time")
            .unwrap()
            .unwrap();
        consumer.commit_delivered(&d).await.unwrap();
        out.push(d);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_while_the_rest_flows() {
    let s = setup(TestSink::default(), |_| {}).await;
    let mut positions = BTreeMap::new();
    for i in 0..10 {
        s.bus.publish(agent_event(i % 4, i as u32)).await.unwrap();
    }
    // Malformed JSON that contains a secret-looking string, with a header of its own.
    let poison = Record::new(
        EVENTS,
        br#"{"tenant":"acme","password":"hunter2-s3cr3t""#.to_vec(),
    )
    .with_key("m-1")
    .with_header("x-trace", "abc");
    positions.insert("malformed", s.bus.publish(poison).await.unwrap());
    // No adapter takes this message type.
    let unsupported = agent_event(2, 99).with_header("message-type", "BOGUS_TYPE");
    positions.insert("unsupported", s.bus.publish(unsupported).await.unwrap());
    // A Fleet record without a tenant header: the tenant cannot be resolved.
    let fleet =
        json!({"id": 1, "query_id": 2, "host_id": 3, "last_fetched": "2025-03-01T10:10:00Z"});
    positions.insert(
        "tenant",
        s.bus
            .publish(Record::new(FLEET, serde_json::to_vec(&fleet).unwrap()))
            .await
            .unwrap(),
    );

    let running = start(&s.processor);
    eventually("processing", || {
        let m = s.processor.metrics();
        m.processed == 10 && m.dead_lettered == 3
    })
    .await;
    assert_eq!(running.stop().await, RunEnd::Shutdown);
    // Throughput is measured on the processor's clock.
    s.clock.advance(Duration::from_secs(4));
    let metrics = s.processor.metrics();
    assert_eq!(metrics.elapsed, Duration::from_secs(4));
    assert!((metrics.throughput_per_sec - 2.5).abs() < 1e-9);

    let metrics = s.processor.metrics();
    assert_eq!(
        (
            metrics.processed,
            metrics.events_written,
            metrics.dead_lettered,
            metrics.retried,
            metrics.in_flight
        ),
        (10, 10, 3, 0, 0)
    );
    let stored = s.sink.events();
    assert_eq!(stored.len(), 10);
    assert!(
        stored
            .iter()
            .all(|e| e.tenant == Some(tenant()) && !e.unknown_machine)
    );

    let letters = read(&s.bus, DLQ, "dlq-reader", 3).await;
    let mut reasons = std::collections::HashMap::new();
    for d in &letters {
        let info = DeadLetterInfo::from_headers(&d.record.headers);
        let error = info.error.clone().unwrap();
        assert!(
            !error.contains("hunter2") && !error.contains("s3cr3t"),
            "{error}"
        );
        assert_eq!(info.attempts, Some(1));
        let position = Position::new(info.source_partition.unwrap(), info.source_offset.unwrap());
        reasons.insert(
            info.reason.unwrap(),
            (info.source_topic.unwrap(), position, d.clone()),
        );
    }
    let (topic, position, malformed) = &reasons[&DeadLetterReason::Malformed];
    assert_eq!(
        (topic.as_str(), *position),
        (EVENTS, positions["malformed"])
    );
    assert_eq!(
        malformed.record.headers.get("x-trace"),
        Some("abc"),
        "original headers kept"
    );
    assert_eq!(malformed.record.key.as_deref(), Some(&b"m-1"[..]));
    assert!(
        malformed.record.payload.ends_with(b"s3cr3t\""),
        "the payload is kept whole"
    );
    let (topic, position, _) = &reasons[&DeadLetterReason::Unsupported];
    assert_eq!(
        (topic.as_str(), *position),
        (EVENTS, positions["unsupported"])
    );
    let (topic, position, _) = &reasons[&DeadLetterReason::TenantUnresolved];
    assert_eq!((topic.as_str(), *position), (FLEET, positions["tenant"]));

    // Processed events are on the output topic, keyed by machine.
    let out = read(&s.bus, OUT, "out-reader", 10).await;
    for d in &out {
        let event: UnifiedEvent = serde_json::from_slice(&d.record.payload).unwrap();
        let key = event.machine_id.unwrap();
        assert_eq!(d.record.key.as_deref(), Some(key.as_str().as_bytes()));
        assert_eq!(d.record.headers.get("tenant-id"), Some("acme"));
    }

    // Everything was committed: the committed offset of each partition is its last record.
    let mut last: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for d in read(&s.bus, EVENTS, "count-events", 12)
        .await
        .iter()
        .chain(&read(&s.bus, FLEET, "count-fleet", 1).await)
    {
        last.insert(
            (d.record.topic.clone(), d.position.partition),
            d.position.offset,
        );
    }
    let committed: BTreeMap<(String, u32), u64> = metrics
        .partitions
        .iter()
        .filter_map(|p| Some(((p.topic.clone(), p.partition), p.committed_offset?)))
        .collect();
    assert_eq!(committed, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_outage_is_retried_with_nothing_lost_or_stored_twice() {
    let sink = TestSink::default();
    sink.fail_next.store(3, Ordering::SeqCst);
    let s = setup(sink, |_| {}).await;
    for i in 0..50 {
        s.bus.publish(agent_event(i % 16, i as u32)).await.unwrap();
    }
    let running = start(&s.processor);
    eventually("50 processed", || s.processor.metrics().processed == 50).await;
    running.stop().await;

    let metrics = s.processor.metrics();
    assert_eq!((metrics.retried, metrics.dead_lettered), (3, 0));
    let events = s.sink.events();
    let ids: HashSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        (events.len(), ids.len()),
        (50, 50),
        "each event stored exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_retries_dead_letter_and_replay_brings_records_back() {
    let sink = TestSink::default();
    sink.down.store(true, Ordering::SeqCst);
    let s = setup(sink, |c| {
        c.concurrency = 1;
        c.batch_size = 1;
        c.retry = RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(2));
    })
    .await;
    for i in 0..5 {
        s.bus.publish(agent_event(i, i as u32)).await.unwrap();
    }
    let running = start(&s.processor);
    eventually("5 dead letters", || {
        s.processor.metrics().dead_lettered == 5
    })
    .await;
    let m = s.processor.metrics();
    // Three attempts per record: two retries each.
    assert_eq!((m.processed, m.retried, s.sink.len()), (0, 10, 0));
    let letters = read(&s.bus, DLQ, "inspect", 5).await;
    for d in &letters {
        let info = DeadLetterInfo::from_headers(&d.record.headers);
        assert_eq!(info.reason, Some(DeadLetterReason::RetriesExhausted));
        assert_eq!(info.attempts, Some(3));
        assert_eq!(
            info.error.as_deref(),
            Some("UNAVAILABLE: service unavailable: sink down")
        );
    }

    // The sink is back: replay moves the dead letters to their source topic.
    s.sink.down.store(false, Ordering::SeqCst);
    let report = s
        .processor
        .replay_dead_letters(&ReplayOptions::default().with_max_records(5))
        .await
        .unwrap();
    assert_eq!((report.replayed, report.by_topic[EVENTS]), (5, 5));
    eventually("replayed records processed", || {
        s.processor.metrics().processed == 5
    })
    .await;
    running.stop().await;
    let m = s.processor.metrics();
    assert_eq!(
        (m.processed, m.dead_lettered, m.replayed, m.retried),
        (5, 5, 5, 10)
    );
    let mut stored: Vec<_> = s
        .sink
        .events()
        .iter()
        .map(|e| e.machine_id.clone().unwrap())
        .collect();
    stored.sort();
    assert_eq!(stored, (0..5).map(machine).collect::<Vec<_>>());

    // Replayed records carry a replay count and no dead-letter headers; a second replay of
    // the same group finds nothing left.
    let replayed = read(&s.bus, EVENTS, "inspect-replayed", 10).await;
    for d in &replayed[5..] {
        assert_eq!(d.record.headers.get(REPLAY_COUNT_HEADER), Some("1"));
        assert_eq!(DeadLetterInfo::from_headers(&d.record.headers).reason, None);
    }
    let again = s
        .processor
        .replay_dead_letters(&ReplayOptions::default().with_idle(Duration::from_millis(50)))
        .await
        .unwrap();
    assert_eq!(again.replayed, 0);

    // Another group may replay the same dead letters to a topic of its choice.
    s.bus.ensure_topic("test.replay-target", 1).await.unwrap();
    let options = ReplayOptions::default()
        .with_group("replay-elsewhere")
        .with_target("test.replay-target")
        .with_max_records(5);
    let report = s.processor.replay_dead_letters(&options).await.unwrap();
    assert_eq!(report.by_topic["test.replay-target"], 5);
    assert_eq!(s.processor.metrics().replayed, 10);
    let moved = read(&s.bus, "test.replay-target", "inspect-target", 5).await;
    let keys: HashSet<_> = moved
        .iter()
        .map(|d| d.record.key.clone().unwrap())
        .collect();
    assert_eq!(keys.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_isolated_from_its_batch() {
    let sink = TestSink::default();
    *sink.reject_machine.lock().unwrap() = Some("m-3".into());
    let s = setup(sink, |c| {
        c.concurrency = 1;
        c.batch_size = 100;
    })
    .await;
    for i in 0..8 {
        s.bus.publish(agent_event(i, i as u32)).await.unwrap();
    }
    let running = start(&s.processor);
    eventually("all handled", || {
        let m = s.processor.metrics();
        m.processed + m.dead_lettered == 8
    })
    .await;
    running.stop().await;
    let m = s.processor.metrics();
    assert_eq!((m.processed, m.dead_lettered, m.retried), (7, 1, 0));
    assert!(
        s.sink
            .events()
            .iter()
            .all(|e| e.machine_id != Some(machine(3)))
    );
    let letter = read(&s.bus, DLQ, "inspect", 1).await.remove(0);
    let info = DeadLetterInfo::from_headers(&letter.record.headers);
    assert_eq!(info.reason, Some(DeadLetterReason::Rejected));
    assert_eq!(letter.record.key.as_deref(), Some(&b"m-3"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_one_key_stay_in_order_under_concurrency_8() {
    let s = setup(TestSink::default(), |c| {
        c.concurrency = 8;
        c.batch_size = 3;
    })
    .await;
    const PER_MACHINE: u32 = 40;
    for seq in 0..PER_MACHINE {
        for i in 0..16 {
            s.bus.publish(agent_event(i, seq)).await.unwrap();
        }
    }
    let running = start(&s.processor);
    eventually("all processed", || {
        s.processor.metrics().processed == 16 * u64::from(PER_MACHINE)
    })
    .await;
    running.stop().await;

    let mut per_machine: BTreeMap<MachineId, Vec<_>> = BTreeMap::new();
    for e in s.sink.events() {
        per_machine
            .entry(e.machine_id.unwrap())
            .or_default()
            .push(e.occurred_at);
    }
    assert_eq!(per_machine.len(), 16);
    for (m, times) in per_machine {
        assert_eq!(times.len(), PER_MACHINE as usize, "{m}");
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{m} out of order");
    }
    assert!(
        s.sink.max_active.load(Ordering::SeqCst) > 1,
        "lanes must actually run in parallel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_and_commits_in_flight_work() {
    let s = setup(TestSink::gated(), |c| c.batch_size = 2).await;
    let mut published = Vec::new();
    for i in 0..20 {
        published.push(s.bus.publish(agent_event(i % 8, i as u32)).await.unwrap());
    }
    let running = start(&s.processor);
    // Every record fetched and held by blocked writes.
    eventually("20 records in flight", || {
        s.processor.metrics().in_flight == 20
    })
    .await;
    assert!(s.sink.entered.load(Ordering::SeqCst) > 0);
    assert_eq!(s.sink.len(), 0);
    // Shut down while writes are blocked, then let them finish.
    let stop = tokio::spawn(running.stop());
    s.sink.gate.as_ref().unwrap().add_permits(1_000);
    assert_eq!(stop.await.unwrap(), RunEnd::Shutdown);

    let m = s.processor.metrics();
    assert_eq!(m.in_flight, 0);
    let stored: HashSet<_> = s.sink.events().iter().map(|e| e.id).collect();
    assert_eq!(stored.len() as u64, m.processed);
    assert!(m.processed > 0);

    // A new member of the group resumes after what was processed: put a marker at the end of
    // every partition and read up to them.
    let mut markers = HashSet::new();
    for partition in 0..4u32 {
        let key = (0..)
            .map(|n| format!("marker-{n}"))
            .find(|k| partition_for_key(k.as_bytes(), 4) == partition)
            .unwrap();
        let record = Record::new(EVENTS, b"{}".to_vec()).with_key(key);
        markers.insert(s.bus.publish(record).await.unwrap());
    }
    let mut consumer = s
        .bus
        .consumer(ConsumerSpec::new("test-processor", [EVENTS]))
        .await
        .unwrap();
    let mut redelivered = Vec::new();
    while !markers.is_empty() {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !markers.remove(&d.position) {
            redelivered.push(d.position);
        }
        consumer.commit_delivered(&d).await.unwrap();
    }
    // Everything in flight at the shutdown was finished and committed: nothing comes again.
    assert_eq!(m.processed, 20);
    assert_eq!(redelivered, Vec::<Position>::new());
    assert_eq!(published.len(), 20);
}

#[tokio::test]
async fn invalid_configurations_are_rejected() {
    let s = setup(TestSink::default(), |_| {}).await;
    let bus = s.bus.clone();
    let check = |f: fn(&mut ProcessorConfig)| {
        let mut cfg = ProcessorConfig::new([EVENTS]);
        f(&mut cfg);
        cfg.validate()
    };
    assert!(check(|_| {}).is_ok());
    assert_eq!(
        check(|c| c.concurrency = 0).unwrap_err().field(),
        Some("concurrency")
    );
    assert_eq!(
        check(|c| c.batch_size = 0).unwrap_err().field(),
        Some("batchSize")
    );
    assert_eq!(
        check(|c| c.topics.clear()).unwrap_err().field(),
        Some("topics")
    );
    assert_eq!(
        check(|c| c.topics.push(c.dead_letter_topic.clone()))
            .unwrap_err()
            .field(),
        Some("topics")
    );
    assert_eq!(
        check(|c| c.output_topic = Some(c.dead_letter_topic.clone()))
            .unwrap_err()
            .field(),
        Some("outputTopic")
    );
    assert_eq!(
        check(|c| c.lag_interval = Duration::from_millis(10))
            .unwrap_err()
            .field(),
        Some("lagInterval")
    );
    assert_eq!(
        check(|c| c.retry = RetryPolicy::new(0, Duration::ZERO, Duration::ZERO))
            .unwrap_err()
            .field(),
        Some("maxAttempts")
    );
    let enricher = empty_enricher();
    let err = Processor::builder(bus, enricher, s.sink.clone())
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("topics"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_event_store_is_a_sink_and_redeliveries_are_not_stored_twice() {
    use openframe_stream::processor::StoreSink;
    use openframe_stream::store::memory::InMemoryEventStore;
    use openframe_stream::store::{EventFilter, EventStore};

    let store = Arc::new(InMemoryEventStore::new());
    let s = setup(TestSink::default(), |_| {}).await;
    let enricher = empty_enricher();
    let mut config = ProcessorConfig::new([EVENTS]);
    config.dead_letter_topic = DLQ.into();
    let processor = Processor::builder(
        s.bus.clone(),
        enricher,
        Arc::new(StoreSink::new(store.clone())),
    )
    .with_config(config)
    .build()
    .unwrap();
    // The same five records twice (a producer retry, a replay): same event ids.
    for _ in 0..2 {
        for i in 0..5 {
            s.bus.publish(agent_event(i, i as u32)).await.unwrap();
        }
    }
    let running = start(&processor);
    eventually("10 processed", || processor.metrics().processed == 10).await;
    running.stop().await;
    assert_eq!(processor.metrics().events_written, 10);
    let stored = store
        .count(&tenant(), &EventFilter::default())
        .await
        .unwrap();
    assert_eq!(stored, 5);
    let other = TenantId::parse("globex").unwrap();
    assert_eq!(
        store.count(&other, &EventFilter::default()).await.unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_refreshed_on_the_clock_and_reaches_zero() {
    let s = setup(TestSink::gated(), |c| {
        c.lag_interval = Duration::from_secs(5)
    })
    .await;
    let mut per_partition: BTreeMap<u32, u64> = BTreeMap::new();
    for i in 0..12 {
        let position = s.bus.publish(agent_event(i % 8, i as u32)).await.unwrap();
        *per_partition.entry(position.partition).or_default() += 1;
    }
    assert!(per_partition.len() > 1, "records on several partitions");
    assert_eq!(
        s.processor.metrics().lag_total,
        None,
        "no report before running"
    );
    let running = start(&s.processor);
    // The first report comes at once: every record is behind (held by the blocked sink).
    eventually("the first lag report", || {
        s.processor.metrics().lag_total == Some(12)
    })
    .await;
    let m = s.processor.metrics();
    assert_eq!(m.lag_updated_at, Some(s.clock.now()));
    let lag_of = |m: &openframe_stream::processor::MetricsSnapshot, topic: &str| {
        m.partitions
            .iter()
            .filter(|p| p.topic == topic)
            .map(|p| (p.partition, p.lag.unwrap()))
            .collect::<BTreeMap<_, _>>()
    };
    let mut expected: BTreeMap<u32, u64> = (0..4).map(|p| (p, 0)).collect();
    expected.extend(per_partition.iter().map(|(p, n)| (*p, *n)));
    assert_eq!(lag_of(&m, EVENTS), expected, "exact per partition");
    assert_eq!(lag_of(&m, FLEET), BTreeMap::from([(0, 0), (1, 0)]));

    // Let everything be processed and committed: the report is not refreshed before the
    // interval has passed on the processor's clock.
    s.sink.gate.as_ref().unwrap().add_permits(1_000);
    eventually("12 processed and committed", || {
        let m = s.processor.metrics();
        m.processed == 12 && m.in_flight == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.processor.metrics().lag_total, Some(12), "not due yet");
    s.clock.advance(Duration::from_secs(5));
    eventually("lag back to zero", || {
        s.processor.metrics().lag_total == Some(0)
    })
    .await;
    let m = s.processor.metrics();
    assert_eq!(m.lag_updated_at, Some(s.clock.now()));
    assert!(m.partitions.iter().all(|p| p.lag == Some(0)), "{m:?}");

    assert_eq!(running.stop().await, RunEnd::Shutdown);
}
