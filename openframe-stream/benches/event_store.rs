//! Event store benchmark: append throughput and the UI's list queries on a big store, per
//! backend (SQLite, memory), against the same queries on a tiny store as the baseline.
//!
//! Run with: `cargo bench -p openframe-stream --features sqlite --bench event_store`
//! (`OPENFRAME_BENCH_EVENTS` sets the big store's size, default 2,000,000; `OPENFRAME_BENCH_RUNS`
//! the timed runs per query, default 200). Goal: newest 50 events of one machine under 10 ms.
//!
//! Data: 1000 machines spread over 10 tenants; event `n` belongs to machine `n % 1000`, one
//! second after event `n - 1`, with types cycling every 1000 events and severities and tools
//! cycling within every tenant (tenant = `n % 10`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span};
use openframe_core::{MachineId, OrganizationId, PageRequest, TenantId, Timestamp};
use openframe_stream::model::{EventCategory, Outcome, Severity, ToolSource, UnifiedEvent};
use openframe_stream::store::memory::InMemoryEventStore;
use openframe_stream::store::sqlite::SqliteEventStore;
use openframe_stream::store::{EventFacet, EventFilter, EventStore};
use uuid::Uuid;

const MACHINES: u64 = 1000;
const TENANTS: u64 = 10;
/// The baseline store: 60 events of each of 10 machines (one per tenant).
const TINY_MACHINES: u64 = 10;
const TINY_PER_MACHINE: u64 = 60;
const BATCH: usize = 5000;

const TYPES: [&str; 4] = [
    "LOGIN",
    "DEVICE_ONLINE",
    "SCRIPT_EXECUTED",
    "POLICY_VIOLATION",
];
const CATEGORIES: [EventCategory; 4] = [
    EventCategory::Auth,
    EventCategory::Device,
    EventCategory::Scripts,
    EventCategory::Policies,
];
const SEVERITIES: [Severity; 5] = [
    Severity::Info,
    Severity::Info,
    Severity::Warning,
    Severity::Error,
    Severity::Critical,
];

fn start() -> Timestamp {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn tenant(i: u64) -> TenantId {
    TenantId::parse(format!("tenant-{i}")).unwrap()
}

fn machine(i: u64) -> MachineId {
    MachineId::parse(format!("machine-{i:04}")).unwrap()
}

fn event(n: u64) -> UnifiedEvent {
    let m = n % MACHINES;
    let i = (n / MACHINES) as usize;
    UnifiedEvent {
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &n.to_le_bytes()),
        tenant: Some(tenant(m % TENANTS)),
        tool: ToolSource::ALL[((n / 20 + n / 1000) % 5) as usize],
        source_type: "agent.script_result".into(),
        category: CATEGORIES[i % 4],
        event_type: TYPES[i % 4].into(),
        severity: SEVERITIES[((n / 10 + n / 1000) % 5) as usize],
        outcome: Some(Outcome::Success),
        occurred_at: start() + Span::seconds(n as i64),
        machine_id: Some(machine(m)),
        organization_id: Some(OrganizationId::parse(format!("org-{}", m % 50)).unwrap()),
        unknown_machine: false,
        tool_agent_id: Some(format!("agent-{m}")),
        user: Some(format!("tech{}", n % 7)),
        summary: format!("Script run #{n} finished on machine-{m:04}"),
        details: serde_json::json!({ "exitCode": 0, "durationMs": n % 5000 }),
        source_position: Some(format!("offset-{n}")),
    }
}

/// The event numbers of the baseline store.
fn tiny_events() -> Vec<u64> {
    (0..TINY_PER_MACHINE)
        .flat_map(|k| (0..TINY_MACHINES).map(move |m| k * MACHINES + m))
        .collect()
}

/// Appends the events numbered `ids` in batches; returns the time per batch.
async fn load(store: &dyn EventStore, ids: impl IntoIterator<Item = u64>) -> Vec<Duration> {
    let mut times = Vec::new();
    let mut ids = ids.into_iter().peekable();
    while ids.peek().is_some() {
        let batch: Vec<UnifiedEvent> = ids.by_ref().take(BATCH).map(event).collect();
        let t = Instant::now();
        store.append(&batch).await.unwrap();
        times.push(t.elapsed());
    }
    times
}

#[derive(Clone, Copy)]
enum Query {
    Newest50OfMachine,
    SecondPageOfMachine,
    FilteredNewest50,
    MachineFacets,
}

impl Query {
    const ALL: [Query; 4] = [
        Self::Newest50OfMachine,
        Self::SecondPageOfMachine,
        Self::FilteredNewest50,
        Self::MachineFacets,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Newest50OfMachine => "newest 50 of one machine",
            Self::SecondPageOfMachine => "next 50 of one machine (cursor)",
            Self::FilteredNewest50 => "newest 50 ERROR+CRITICAL SCRIPT_EXECUTED of tenant",
            Self::MachineFacets => "facets type+severity of one machine",
        }
    }

    /// Runs the query for run number `run`, rotating over `machines`; returns rows seen.
    async fn run(self, store: &dyn EventStore, machines: u64, run: u64) -> usize {
        let m = (run * 7) % machines;
        let tenant = tenant(m % TENANTS);
        let of_machine = EventFilter {
            machine_ids: vec![machine(m)],
            ..EventFilter::default()
        };
        match self {
            Self::Newest50OfMachine => {
                let page = store
                    .query(&tenant, &of_machine, &PageRequest::first(50))
                    .await
                    .unwrap();
                page.edges.len()
            }
            Self::SecondPageOfMachine => {
                let first = store
                    .query(&tenant, &of_machine, &PageRequest::first(1))
                    .await
                    .unwrap();
                let Some(cursor) = first.page_info.end_cursor else {
                    return 0;
                };
                let page = store
                    .query(&tenant, &of_machine, &PageRequest::first(50).after(cursor))
                    .await
                    .unwrap();
                page.edges.len()
            }
            Self::FilteredNewest50 => {
                let filter = EventFilter {
                    severities: vec![Severity::Error, Severity::Critical],
                    event_types: vec!["SCRIPT_EXECUTED".into()],
                    ..EventFilter::default()
                };
                let page = store
                    .query(&tenant, &filter, &PageRequest::first(50))
                    .await
                    .unwrap();
                page.edges.len()
            }
            Self::MachineFacets => {
                let facets = store
                    .facets(
                        &tenant,
                        &of_machine,
                        &[EventFacet::EventType, EventFacet::Severity],
                    )
                    .await
                    .unwrap();
                facets.iter().map(|f| f.counts.len()).sum()
            }
        }
    }
}

fn stats(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = times.len();
    (ms(times[n / 2]), ms(times[(n * 95 / 100).min(n - 1)]))
}

async fn time_query(
    store: &dyn EventStore,
    query: Query,
    machines: u64,
    runs: u64,
) -> (f64, f64, usize) {
    let mut rows = query.run(store, machines, 0).await; // warm-up
    let mut times = Vec::with_capacity(runs as usize);
    for run in 0..runs {
        let t = Instant::now();
        rows = rows.max(query.run(store, machines, run).await);
        times.push(t.elapsed());
    }
    let (median, p95) = stats(times);
    (median, p95, rows)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

struct Backend {
    name: &'static str,
    big: Arc<dyn EventStore>,
    tiny: Arc<dyn EventStore>,
}

fn main() {
    let events = env_u64("OPENFRAME_BENCH_EVENTS", 2_000_000).max(MACHINES);
    let runs = env_u64("OPENFRAME_BENCH_RUNS", 200).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("of-event-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    rt.block_on(async {
        let sqlite_big = SqliteEventStore::open(dir.join("big.db")).await.unwrap();
        let sqlite_tiny = SqliteEventStore::open(dir.join("tiny.db")).await.unwrap();
        let backends = [
            Backend {
                name: "sqlite",
                big: Arc::new(sqlite_big.clone()),
                tiny: Arc::new(sqlite_tiny.clone()),
            },
            Backend {
                name: "memory",
                big: Arc::new(InMemoryEventStore::new()),
                tiny: Arc::new(InMemoryEventStore::new()),
            },
        ];

        println!("# event store benchmark: {events} events, {MACHINES} machines, {TENANTS} tenants, {runs} runs per query");
        println!();
        println!(
            "| backend | operation | events | median ms | p95 ms | baseline median ms ({} events) | ratio | note |",
            TINY_MACHINES * TINY_PER_MACHINE
        );
        println!("|---|---|---:|---:|---:|---:|---:|---|");
        for b in &backends {
            let t = Instant::now();
            let batches = load(&*b.big, 0..events).await;
            let secs = t.elapsed().as_secs_f64();
            load(&*b.tiny, tiny_events()).await;
            if b.name == "sqlite" {
                sqlite_big.analyze().await.unwrap();
                sqlite_tiny.analyze().await.unwrap();
            }
            // Baseline: the first batch, written into the empty store.
            let base = stats(batches[..1].to_vec()).0;
            let (median, p95) = stats(batches);
            println!(
                "| {} | append (batches of {BATCH}) | {events} | {median:.1} | {p95:.1} | {base:.1} (1st batch, empty store) | {:.2} | {:.0} events/s over the whole load |",
                b.name,
                median / base,
                events as f64 / secs
            );
            for q in Query::ALL {
                let (median, p95, rows) = time_query(&*b.big, q, MACHINES, runs).await;
                let (base, _, base_rows) = time_query(&*b.tiny, q, TINY_MACHINES, runs).await;
                println!(
                    "| {} | {} | {events} | {median:.3} | {p95:.3} | {base:.3} | {:.2} | {rows} rows (baseline {base_rows}) |",
                    b.name,
                    q.name(),
                    median / base.max(1e-6),
                );
            }
        }
    });
    std::fs::remove_dir_all(&dir).ok();
}
