//! Pipeline throughput, printed as a table (one run):
//!
//! - (a) `serde_json::from_slice::<Value>` of the payloads: the parsing ceiling;
//! - (b) adapt + enrich with a warm cache on one thread (goal ≥ 300,000 events/s);
//! - (c) in-process bus → processor → in-memory sink, end to end;
//! - (d) Kafka (`OPENFRAME_TEST_KAFKA_BROKERS`) → processor → SQLite event store (goal ≥
//!   50,000 events/s); needs features `kafka` and `sqlite`, skipped otherwise.
//!
//! Run with: `cargo bench -p openframe-stream --bench pipeline`
//! (add `--features kafka,sqlite` and set `OPENFRAME_TEST_KAFKA_BROKERS` for (d)).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openframe_core::{
    Clock, Machine, MachineId, OsType, SystemClock, TenantId, ToolConnection, ToolType,
};
use openframe_data::Repositories;
use openframe_data::memory::{InMemoryCache, InMemoryDocumentStore};
use openframe_stream::adapters::{AdapterRegistry, RawRecord};
use openframe_stream::bus::memory::InMemoryEventBus;
use openframe_stream::bus::{EventBus, EventPublisher, Record};
use openframe_stream::enrich::{Enricher, RepositoryDirectory};
use openframe_stream::processor::{InMemoryEventSink, Processor, ProcessorConfig};
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
        let elapsed = run_until(&processor, E2E as u64).await;
        (elapsed, sink.len())
    });
    rows.push(Row {
        name: "(c) in-process bus → processor → memory sink",
        items: E2E as u64,
        unit: "records",
        elapsed: e2e_elapsed,
    });
    assert_eq!(written, E2E);

    // (d) Kafka → processor → SQLite.
    match kafka_sqlite(&multi, &records, &enricher) {
        Ok(row) => rows.push(row),
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
    }
    for note in notes {
        println!("{note}");
    }
}

/// Runs `processor` until it processed `n` records; returns the time taken.
async fn run_until(processor: &Processor, n: u64) -> Duration {
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
    while processor.metrics().processed + processor.metrics().dead_lettered < n {
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
    elapsed
}

#[cfg(not(all(feature = "kafka", feature = "sqlite")))]
fn kafka_sqlite(
    _rt: &tokio::runtime::Runtime,
    _records: &[Record],
    _enricher: &Enricher,
) -> Result<Row, String> {
    Err("(d) Kafka → processor → SQLite: skipped: build with --features kafka,sqlite and set OPENFRAME_TEST_KAFKA_BROKERS".into())
}

#[cfg(all(feature = "kafka", feature = "sqlite"))]
fn kafka_sqlite(
    rt: &tokio::runtime::Runtime,
    records: &[Record],
    enricher: &Enricher,
) -> Result<Row, String> {
    use openframe_stream::bus::kafka::{KafkaEventBus, KafkaEventBusConfig};
    use openframe_stream::processor::{EventSink, StoreSink};
    use openframe_stream::store::sqlite::SqliteEventStore;

    let Ok(brokers) = std::env::var("OPENFRAME_TEST_KAFKA_BROKERS") else {
        return Err(
            "(d) Kafka → processor → SQLite: skipped: set OPENFRAME_TEST_KAFKA_BROKERS".into(),
        );
    };
    const N: usize = 100_000;
    rt.block_on(async {
        let prefix = format!("bench-{}-", uuid::Uuid::new_v4().simple());
        let config =
            KafkaEventBusConfig::new(brokers.split(',').map(str::trim)).with_topic_prefix(prefix);
        let bus = Arc::new(KafkaEventBus::new(config).map_err(|e| e.to_string())?);
        for t in TOPICS {
            bus.ensure_topic(t, 6).await.map_err(|e| e.to_string())?;
        }
        let publishes = records.iter().take(N).map(|r| bus.publish(r.clone()));
        for result in futures::future::join_all(publishes).await {
            result.map_err(|e| e.to_string())?;
        }
        let path = std::env::temp_dir().join(format!(
            "openframe-bench-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let store = SqliteEventStore::open(&path)
            .await
            .map_err(|e| e.to_string())?;
        let sink: Arc<dyn EventSink> = Arc::new(StoreSink::new(Arc::new(store)));
        let mut config = ProcessorConfig::new(TOPICS);
        config.concurrency = 4;
        config.max_in_flight = 4000;
        config.output_topic = None;
        let processor = Processor::builder(bus.clone(), enricher.clone(), sink)
            .with_config(config)
            .build()
            .map_err(|e| e.to_string())?;
        let elapsed = run_until(&processor, N as u64).await;
        for t in TOPICS {
            let _ = bus.delete_topic(t).await;
        }
        let _ = std::fs::remove_file(&path);
        Ok(Row {
            name: "(d) Kafka → processor → SQLite event store",
            items: N as u64,
            unit: "records",
            elapsed,
        })
    })
}
