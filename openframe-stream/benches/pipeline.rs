//! Pipeline throughput, printed as a table (one run):
//!
//! - (a) `serde_json::from_slice::<Value>` of the payloads: the parsing ceiling;
//! - (b) adapt + enrich with a warm cache on one thread (goal ≥ 300,000 events/s);
//! - (c) in-process bus → processor → in-memory sink, end to end;
//! - (e) the SQLite event store's `append` alone, sequential batches of 10 to 1000 events of the
//!   mix (feature `sqlite`);
//! - (d0) Kafka (`OPENFRAME_TEST_KAFKA_BROKERS`) → processor → no-op sink: what consuming alone
//!   allows; (d) Kafka → processor → SQLite event store (goal ≥ 50,000 events/s), every event
//!   verified in SQLite by a count at the end; both need features `kafka` and `sqlite`. Under
//!   each, where the time went: time to the first record, sink writes and their size, and the
//!   processor's consumer commits with the time spent in them.
//!
//! Run with: `cargo bench -p openframe-stream --bench pipeline`
//! (add `--features kafka,sqlite` and set `OPENFRAME_TEST_KAFKA_BROKERS` for (d0) and (d), e.g.
//! through `scripts/test-services.sh`). Size knobs: `OPENFRAME_BENCH_KAFKA_RECORDS` (default
//! 100,000), `OPENFRAME_BENCH_APPEND_EVENTS` (default 100,000), `OPENFRAME_BENCH_LANE_BATCH`
//! (default: the processor's default batch size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openframe_core::{
    Clock, Machine, MachineId, OsType, SystemClock, TenantId, ToolConnection, ToolType,
};
use openframe_data::Repositories;
use openframe_data::memory::{InMemoryCache, InMemoryDocumentStore};
use openframe_stream::adapters::{AdapterRegistry, RawRecord};
use openframe_stream::bus::memory::InMemoryEventBus;
use openframe_stream::bus::{
    ConsumerSpec, Delivered, EventBus, EventConsumer, EventPublisher, PartitionLag, Position,
    Record, TopicSpec,
};
use openframe_stream::enrich::{Enricher, RepositoryDirectory};
use openframe_stream::model::UnifiedEvent;
use openframe_stream::processor::{
    EventSink, InMemoryEventSink, Processor, ProcessorConfig, StoreSink,
};
use serde_json::json;

const MACHINES: usize = 200;
const TENANT: &str = "acme";
const MESH_NODE: &str = "node//Zx9kLmq2vT4hW8pR3yN5aB7cD1eF6gH0jK2lM4nO8pQ$";

const TOPICS: [&str; 5] = [
    "openframe.agent-events",
    "openframe.agent-results",
    "fleet-mdm-query-result-events",
    "meshcentral-events",
    "tactical-rmm.public.events",
];

fn golden(path: &str) -> Vec<u8> {
    let p = format!("{}/tests/golden/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The `i`-th record of the mix: agent event, command result, Fleet query result, MeshCentral
/// and TacticalRMM change events (tenant from the header for tool events).
fn record(i: usize, mesh: &[u8], trmm: &[u8]) -> Record {
    let m = format!("m-{}", i % MACHINES);
    let at = 1_740_823_200_000_i64 + i as i64;
    let (topic, payload, headers): (&str, Vec<u8>, Vec<(&str, String)>) = match i % 5 {
        0 => (
            TOPICS[0],
            serde_json::to_vec(&json!({
                "tenant": TENANT, "machineId": m, "kind": "CAME_ONLINE",
                "previousStatus": "OFFLINE", "status": "ONLINE", "at": at
            }))
            .unwrap(),
            vec![],
        ),
        1 => (
            TOPICS[1],
            serde_json::to_vec(&json!({
                "execution_id": format!("e-{i}"), "machine_id": m, "exit_code": 0,
                "execution_time_ms": 42, "timed_out": false, "stdout": "ok\n", "stderr": "",
                "finished_at": at
            }))
            .unwrap(),
            vec![
                ("message-type", "COMMAND_EXECUTED".into()),
                ("machine-id", m.clone()),
                ("tenant-id", TENANT.into()),
            ],
        ),
        2 => (
            TOPICS[2],
            serde_json::to_vec(&json!({
                "id": i, "query_id": 12, "host_id": i % MACHINES, "error": null,
                "last_fetched": at, "data": {"name": "sshd", "pid": "812"}
            }))
            .unwrap(),
            vec![("tenant-id", TENANT.into())],
        ),
        3 => (TOPICS[3], mesh.to_vec(), vec![("tenant-id", TENANT.into())]),
        _ => (TOPICS[4], trmm.to_vec(), vec![("tenant-id", TENANT.into())]),
    };
    let mut record = Record::new(topic, payload).with_key(m);
    for (name, value) in headers {
        record = record.with_header(name, value);
    }
    record
}

fn raw(record: &Record) -> RawRecord {
    let mut raw = RawRecord::new(record.topic.clone(), record.payload.clone());
    for (name, value) in record.headers.iter() {
        raw = raw.with_header(name, value);
    }
    raw
}

/// Repositories with the machines and tool connections the mix names.
async fn repositories() -> Repositories {
    let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
    let tenant = TenantId::parse(TENANT).unwrap();
    let now = SystemClock.now();
    for i in 0..MACHINES {
        let id = MachineId::parse(format!("m-{i}")).unwrap();
        let m = Machine::new(id.clone(), format!("host-{i}"), OsType::Linux, now);
        repos.machines.insert(&tenant, m).await.unwrap();
        let fleet = ToolConnection::new(id.clone(), ToolType::FleetMdm, i.to_string(), now);
        repos.tool_connections.insert(&tenant, fleet).await.unwrap();
    }
    let mesh = ToolConnection::new(
        MachineId::parse("m-0").unwrap(),
        ToolType::MeshCentral,
        MESH_NODE,
        now,
    );
    repos.tool_connections.insert(&tenant, mesh).await.unwrap();
    let trmm = ToolConnection::new(
        MachineId::parse("m-1").unwrap(),
        ToolType::TacticalRmm,
        "57",
        now,
    );
    repos.tool_connections.insert(&tenant, trmm).await.unwrap();
    repos
}

/// The enricher as the reference server configures it: the shared cache with a local level of
/// a few seconds in front.
fn enricher(repos: &Repositories) -> Enricher {
    Enricher::builder(
        Arc::new(RepositoryDirectory::from_repositories(repos)),
        Arc::new(InMemoryCache::new(Arc::new(SystemClock))),
    )
    .with_local_cache(Duration::from_secs(5))
    .build()
    .unwrap()
}

struct Row {
    name: &'static str,
    items: u64,
    unit: &'static str,
    elapsed: Duration,
    /// Printed under the row when not empty.
    note: String,
}

/// A size knob: the environment variable `name`, else `default`.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Row {
    fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let mesh = golden("meshcentral/agent_connect.json");
    let trmm = golden("tacticalrmm/alert_check.json");
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    // (a) and (b): one thread.
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const N: usize = 200_000;
    let records: Vec<Record> = (0..N).map(|i| record(i, &mesh, &trmm)).collect();
    let raws: Vec<RawRecord> = records.iter().map(raw).collect();
    let bytes: usize = records.iter().map(|r| r.payload.len()).sum();

    let start = Instant::now();
    let mut fields = 0usize;
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        fields += v.as_object().map_or(0, |o| o.len());
    }
    rows.push(Row {
        name: "(a) serde_json::from_slice::<Value> (ceiling)",
        items: N as u64,
        unit: "records",
        elapsed: start.elapsed(),
        note: String::new(),
    });
    std::hint::black_box(fields);

    let start = Instant::now();
    let registry = AdapterRegistry::builtin();
    let mut adapted = 0u64;
    for raw in &raws {
        adapted += std::hint::black_box(registry.adapt(raw).unwrap()).len() as u64;
    }
    rows.push(Row {
        name: "(b0) adapt only, 1 thread",
        items: adapted,
        unit: "events",
        elapsed: start.elapsed(),
        note: String::new(),
    });

    let repos = single.block_on(repositories());
    let enricher = enricher(&repos);
    let run_b = |raws: &[RawRecord]| {
        single.block_on(async {
            let mut events = 0u64;
            let mut unknown = 0u64;
            for raw in raws {
                for mut e in registry.adapt(raw).unwrap() {
                    enricher.enrich_in_place(raw, &mut e).await.unwrap();
                    events += 1;
                    unknown += u64::from(e.unknown_machine);
                }
            }
            (events, unknown)
        })
    };
    run_b(&raws[..MACHINES * 5]); // warm the cache
    let start = Instant::now();
    let (events, unknown) = run_b(&raws);
    rows.push(Row {
        name: "(b) adapt + enrich, warm cache, 1 thread",
        items: events,
        unit: "events",
        elapsed: start.elapsed(),
        note: String::new(),
    });
    assert_eq!(unknown, 0, "every machine of the mix is known");

    // (c) in-process bus → processor → in-memory sink.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    const E2E: usize = 100_000;
    let (e2e_elapsed, written) = multi.block_on(async {
        let bus = Arc::new(InMemoryEventBus::new());
        for t in TOPICS {
            bus.ensure_topic(t, 6).await.unwrap();
        }
        for r in records.iter().take(E2E) {
            bus.publish(r.clone()).await.unwrap();
        }
        let sink = Arc::new(InMemoryEventSink::new());
        let mut config = ProcessorConfig::new(TOPICS);
        config.concurrency = 4;
        config.max_in_flight = 4000;
        let processor = Processor::builder(bus, enricher.clone(), sink.clone())
            .with_config(config)
            .build()
            .unwrap();
        let (elapsed, _) = run_until(&processor, E2E as u64).await;
        (elapsed, sink.len())
    });
    rows.push(Row {
        name: "(c) in-process bus → processor → memory sink",
        items: E2E as u64,
        unit: "records",
        elapsed: e2e_elapsed,
        note: String::new(),
    });
    assert_eq!(written, E2E);

    // (e) SQLite append alone, at the batch sizes a processor lane produces and above.
    match sqlite_rows(&multi, &raws, &registry, &enricher) {
        Ok(sqlite) => rows.extend(sqlite),
        Err(line) => notes.push(line),
    }

    // (d0) and (d): Kafka → processor → no-op sink, then → SQLite.
    match kafka_rows(&multi, &records, &enricher) {
        Ok(kafka) => rows.extend(kafka),
        Err(line) => notes.push(line),
    }

    let ceiling = rows[0].rate();
    println!();
    println!(
        "payloads: {N} records, {:.0} bytes on average; {MACHINES} machines, warm cache",
        bytes as f64 / N as f64
    );
    println!(
        "{:<52} {:>10} {:>9} {:>14} {:>10}",
        "stage", "items", "time ms", "per second", "vs (a)"
    );
    for row in &rows {
        println!(
            "{:<52} {:>10} {:>9.1} {:>14.0} {:>9.2}x  ({})",
            row.name,
            row.items,
            row.elapsed.as_secs_f64() * 1000.0,
            row.rate(),
            row.rate() / ceiling,
            row.unit
        );
        if !row.note.is_empty() {
            println!("    {}", row.note);
        }
    }
    for note in notes {
        println!("{note}");
    }
}

/// Runs `processor` until it processed `n` records; returns the time taken and when the first
/// record was processed.
async fn run_until(processor: &Processor, n: u64) -> (Duration, Duration) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let task = tokio::spawn({
        let processor = processor.clone();
        async move {
            processor
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let mut first = None;
    loop {
        let m = processor.metrics();
        let done = m.processed + m.dead_lettered;
        if done > 0 && first.is_none() {
            first = Some(start.elapsed());
        }
        if done >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let m = processor.metrics();
    assert_eq!(
        m.dead_lettered, 0,
        "nothing may be dead-lettered in the bench"
    );
    (elapsed, first.unwrap_or(elapsed))
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_rows(
    _rt: &tokio::runtime::Runtime,
    _raws: &[RawRecord],
    _registry: &AdapterRegistry,
    _enricher: &Enricher,
) -> Result<Vec<Row>, String> {
    Err("(e) SQLite append: skipped: build with --features sqlite".into())
}

/// (e) The SQLite event store's `append` alone, sequential batches of several sizes of the
/// events the mix produces, each size into a fresh file.
#[cfg(feature = "sqlite")]
fn sqlite_rows(
    rt: &tokio::runtime::Runtime,
    raws: &[RawRecord],
    registry: &AdapterRegistry,
    enricher: &Enricher,
) -> Result<Vec<Row>, String> {
    use openframe_stream::store::EventStore;
    use openframe_stream::store::sqlite::SqliteEventStore;

    let n = knob("OPENFRAME_BENCH_APPEND_EVENTS", 100_000).min(raws.len());
    rt.block_on(async {
        let mut events = Vec::with_capacity(n);
        for raw in &raws[..n] {
            for mut e in registry.adapt(raw).map_err(|e| e.to_string())? {
                enricher
                    .enrich_in_place(raw, &mut e)
                    .await
                    .map_err(|e| e.to_string())?;
                events.push(e);
            }
        }
        let distinct = distinct_ids(events.iter());
        let mut rows = Vec::new();
        for (batch, name) in [
            (10, "(e) SQLite append alone, batches of 10"),
            (100, "(e) SQLite append alone, batches of 100"),
            (250, "(e) SQLite append alone, batches of 250"),
            (1000, "(e) SQLite append alone, batches of 1000"),
        ] {
            let path = std::env::temp_dir().join(format!(
                "openframe-bench-{}.db",
                uuid::Uuid::new_v4().simple()
            ));
            let store = SqliteEventStore::open(&path)
                .await
                .map_err(|e| e.to_string())?;
            let start = Instant::now();
            for chunk in events.chunks(batch) {
                store.append(chunk).await.map_err(|e| e.to_string())?;
            }
            let elapsed = start.elapsed();
            let tenant = TenantId::parse(TENANT).map_err(|e| e.to_string())?;
            let stored = store
                .count(&tenant, &Default::default())
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(stored, distinct, "every event is stored (once per id)");
            drop(store);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            rows.push(Row {
                name,
                items: events.len() as u64,
                unit: "events",
                elapsed,
                note: String::new(),
            });
        }
        Ok(rows)
    })
}

/// How many different event ids `events` have (the store keeps one row per tenant and id; the
/// MeshCentral and TacticalRMM records of the mix repeat one change each).
#[cfg(feature = "sqlite")]
fn distinct_ids<'a>(events: impl Iterator<Item = &'a UnifiedEvent>) -> u64 {
    events
        .map(|e| e.id)
        .collect::<std::collections::HashSet<_>>()
        .len() as u64
}

/// Time spent in the processor's consumer calls (a decorator over the bus under test), to show
/// where the end-to-end time goes.
#[derive(Debug, Default)]
struct ConsumerTimes {
    commits: std::sync::atomic::AtomicU64,
    commit_nanos: std::sync::atomic::AtomicU64,
}

impl ConsumerTimes {
    fn summary(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        format!(
            "{} commits taking {} ms in all",
            self.commits.load(Relaxed),
            self.commit_nanos.load(Relaxed) / 1_000_000
        )
    }
}

/// The bus under test with its consumers' commits timed.
#[derive(Debug)]
struct TimedBus {
    inner: Arc<dyn EventBus>,
    times: Arc<ConsumerTimes>,
}

#[async_trait::async_trait]
impl EventPublisher for TimedBus {
    async fn publish(&self, record: Record) -> openframe_core::Result<Position> {
        self.inner.publish(record).await
    }
}

#[async_trait::async_trait]
impl EventBus for TimedBus {
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> openframe_core::Result<()> {
        self.inner.ensure_topics(specs).await
    }
    async fn delete_topic(&self, name: &str) -> openframe_core::Result<bool> {
        self.inner.delete_topic(name).await
    }
    async fn topic_partitions(&self, topic: &str) -> openframe_core::Result<Option<u32>> {
        self.inner.topic_partitions(topic).await
    }
    async fn consumer(&self, spec: ConsumerSpec) -> openframe_core::Result<Box<dyn EventConsumer>> {
        Ok(Box::new(TimedConsumer {
            inner: self.inner.consumer(spec).await?,
            times: self.times.clone(),
        }))
    }
}

#[derive(Debug)]
struct TimedConsumer {
    inner: Box<dyn EventConsumer>,
    times: Arc<ConsumerTimes>,
}

#[async_trait::async_trait]
impl EventConsumer for TimedConsumer {
    async fn next(&mut self) -> openframe_core::Result<Option<Delivered>> {
        self.inner.next().await
    }
    async fn commit(&mut self, topic: &str, positions: &[Position]) -> openframe_core::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let start = Instant::now();
        let result = self.inner.commit(topic, positions).await;
        self.times.commits.fetch_add(1, Relaxed);
        self.times
            .commit_nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        result
    }
    fn assignment(&self) -> Vec<(String, u32)> {
        self.inner.assignment()
    }
    async fn lag(&mut self) -> openframe_core::Result<Vec<PartitionLag>> {
        self.inner.lag().await
    }
}

/// Counts what the processor writes, then hands it to `inner` (a no-op when `None`).
#[derive(Debug)]
struct CountingSink {
    inner: Option<Arc<dyn EventSink>>,
    calls: std::sync::atomic::AtomicU64,
    events: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

impl CountingSink {
    fn new(inner: Option<Arc<dyn EventSink>>) -> Self {
        Self {
            inner,
            calls: Default::default(),
            events: Default::default(),
            nanos: Default::default(),
        }
    }

    /// `writes: calls, events per call`.
    fn summary(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let calls = self.calls.load(Relaxed);
        let events = self.events.load(Relaxed);
        format!(
            "{calls} sink writes, {:.1} events each, {} ms in writes (summed over lanes)",
            events as f64 / calls.max(1) as f64,
            self.nanos.load(Relaxed) / 1_000_000
        )
    }
}

#[async_trait::async_trait]
impl EventSink for CountingSink {
    async fn write(&self, events: &[UnifiedEvent]) -> openframe_core::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(inner) = &self.inner {
            let start = Instant::now();
            inner.write(events).await?;
            self.nanos
                .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        }
        self.calls.fetch_add(1, Relaxed);
        self.events.fetch_add(events.len() as u64, Relaxed);
        Ok(())
    }
}

#[cfg(not(all(feature = "kafka", feature = "sqlite")))]
fn kafka_rows(
    _rt: &tokio::runtime::Runtime,
    _records: &[Record],
    _enricher: &Enricher,
) -> Result<Vec<Row>, String> {
    Err("(d) Kafka → processor → SQLite: skipped: build with --features kafka,sqlite and set OPENFRAME_TEST_KAFKA_BROKERS".into())
}

/// (d0) Kafka → processor → no-op sink, the consuming ceiling, and (d) Kafka → processor →
/// SQLite event store, each on fresh topics with the records published before the clock starts.
#[cfg(all(feature = "kafka", feature = "sqlite"))]
fn kafka_rows(
    rt: &tokio::runtime::Runtime,
    records: &[Record],
    enricher: &Enricher,
) -> Result<Vec<Row>, String> {
    use openframe_stream::bus::kafka::{KafkaEventBus, KafkaEventBusConfig};
    use openframe_stream::store::EventStore;
    use openframe_stream::store::sqlite::SqliteEventStore;

    let Ok(brokers) = std::env::var("OPENFRAME_TEST_KAFKA_BROKERS") else {
        return Err(
            "(d) Kafka → processor → SQLite: skipped: set OPENFRAME_TEST_KAFKA_BROKERS".into(),
        );
    };
    let n = knob("OPENFRAME_BENCH_KAFKA_RECORDS", 100_000).min(records.len());
    let records = &records[..n];
    let registry = AdapterRegistry::builtin();
    let mut adapted = Vec::with_capacity(n);
    for r in records {
        adapted.extend(registry.adapt(&raw(r)).map_err(|e| e.to_string())?);
    }
    let distinct = distinct_ids(adapted.iter());
    let bus = |brokers: &str| -> Result<Arc<KafkaEventBus>, String> {
        let prefix = format!("bench-{}-", uuid::Uuid::new_v4().simple());
        let config =
            KafkaEventBusConfig::new(brokers.split(',').map(str::trim)).with_topic_prefix(prefix);
        Ok(Arc::new(
            KafkaEventBus::new(config).map_err(|e| e.to_string())?,
        ))
    };
    rt.block_on(async {
        let mut rows = Vec::new();

        let noop = Arc::new(CountingSink::new(None));
        let bus0 = bus(&brokers)?;
        let times = Arc::new(ConsumerTimes::default());
        let (elapsed, first) = kafka_run(&bus0, records, enricher, noop.clone(), &times).await?;
        rows.push(Row {
            name: "(d0) Kafka → processor → no-op sink (consuming)",
            items: n as u64,
            unit: "records",
            elapsed,
            note: format!(
                "first record after {first:.0?}; {}; {}",
                noop.summary(),
                times.summary()
            ),
        });

        let name = "(d) Kafka → processor → SQLite event store";
        let path = std::env::temp_dir().join(format!(
            "openframe-bench-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let store = Arc::new(
            SqliteEventStore::open(&path)
                .await
                .map_err(|e| e.to_string())?,
        );
        let inner: Arc<dyn EventSink> = Arc::new(StoreSink::new(store.clone()));
        let counting = Arc::new(CountingSink::new(Some(inner)));
        let times = Arc::new(ConsumerTimes::default());
        let run_bus = bus(&brokers)?;
        let (elapsed, first) =
            kafka_run(&run_bus, records, enricher, counting.clone(), &times).await?;
        let tenant = TenantId::parse(TENANT).map_err(|e| e.to_string())?;
        let stored = store
            .count(&tenant, &Default::default())
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(stored, distinct, "every event is in SQLite (once per id)");
        assert_eq!(
            counting.events.load(std::sync::atomic::Ordering::Relaxed),
            adapted.len() as u64,
            "every event was written"
        );
        rows.push(Row {
            name,
            items: n as u64,
            unit: "records",
            elapsed,
            note: format!(
                "first record after {first:.0?}; {}; {}; {stored} stored",
                counting.summary(),
                times.summary()
            ),
        });
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(rows)
    })
}

/// Publishes `records` to fresh topics on `bus`, then runs the processor (the server's
/// settings, no output topic) into `sink` until every record is processed; returns the time
/// taken and when the first record was processed. Deletes the topics.
#[cfg(all(feature = "kafka", feature = "sqlite"))]
async fn kafka_run(
    bus: &Arc<openframe_stream::bus::kafka::KafkaEventBus>,
    records: &[Record],
    enricher: &Enricher,
    sink: Arc<dyn EventSink>,
    times: &Arc<ConsumerTimes>,
) -> Result<(Duration, Duration), String> {
    for t in TOPICS {
        bus.ensure_topic(t, 6).await.map_err(|e| e.to_string())?;
    }
    let publishes = records.iter().map(|r| bus.publish(r.clone()));
    for result in futures::future::join_all(publishes).await {
        result.map_err(|e| e.to_string())?;
    }
    let mut config = ProcessorConfig::new(TOPICS);
    config.concurrency = 4;
    config.max_in_flight = 4000;
    config.output_topic = None;
    config.batch_size = knob("OPENFRAME_BENCH_LANE_BATCH", config.batch_size);
    // How often the processor asks the broker for the consumer lag (the server's default: 5 s).
    config.lag_interval = Duration::from_millis(knob("OPENFRAME_BENCH_LAG_MS", 5_000) as u64);
    let timed = Arc::new(TimedBus {
        inner: bus.clone(),
        times: times.clone(),
    });
    let processor = Processor::builder(timed, enricher.clone(), sink)
        .with_config(config)
        .build()
        .map_err(|e| e.to_string())?;
    let timed = run_until(&processor, records.len() as u64).await;
    for t in TOPICS {
        let _ = bus.delete_topic(t).await;
    }
    Ok(timed)
}
