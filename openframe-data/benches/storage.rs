//! Storage benchmark: machines across tenants on the memory and SQLite backends.
//!
//! Run with: `cargo bench -p openframe-data --bench storage`
//! (`OPENFRAME_BENCH_MACHINES=20000` for a quicker run; default 100,000 across 10 tenants).
//!
//! Prints one table: insert rate, the first page of 50 with a status + OS + text filter, the
//! 100th page by cursor against the first page (keyset paging: the ratio should stay near 1),
//! the filtered count, and the four facet counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openframe_core::{
    Clock, Machine, MachineId, MachineStatus, OrganizationId, OsType, PageRequest, SortSpec,
    SystemClock, TagId, TenantId,
};
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::DocumentStore;
use openframe_data::{MachineFacet, MachineFilter, Repositories, memory::InMemoryDocumentStore};

const TENANTS: usize = 10;
const PAGE: i64 = 50;

struct Row {
    backend: &'static str,
    operation: String,
    median: Duration,
    p95: Duration,
    note: String,
}

fn machine(n: usize, orgs: &[OrganizationId], tags: &[TagId]) -> Machine {
    let prefixes = [
        "web", "db", "mail", "pos", "laptop", "kiosk", "build", "vpn",
    ];
    let statuses = [
        MachineStatus::Online,
        MachineStatus::Offline,
        MachineStatus::Online,
        MachineStatus::Pending,
    ];
    let os = [
        OsType::Windows,
        OsType::Linux,
        OsType::MacOs,
        OsType::Windows,
        OsType::Linux,
    ];
    let mut m = Machine::new(
        MachineId::generate(),
        format!("{}-{:05}.corp", prefixes[n % prefixes.len()], n),
        os[n % os.len()],
        SystemClock.now() - chrono::Duration::seconds(n as i64),
    );
    m.status = statuses[n % statuses.len()];
    m.organization_id = Some(orgs[n % orgs.len()].clone());
    m.tags = vec![tags[n % tags.len()].clone()];
    m.ip_addresses = vec![format!("10.{}.{}.{}", n % 200, (n / 200) % 250, n % 250)];
    m.last_seen = Some(SystemClock.now());
    m
}

async fn timed<F, Fut, T>(iterations: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..iterations / 10 + 1 {
        std::hint::black_box(f().await);
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        std::hint::black_box(f().await);
        samples.push(start.elapsed());
    }
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 95 / 100],
    )
}

async fn run(
    backend: &'static str,
    store: Arc<dyn DocumentStore>,
    total: usize,
    rows: &mut Vec<Row>,
) {
    let repos = Repositories::new(store);
    let tenants: Vec<TenantId> = (0..TENANTS)
        .map(|i| TenantId::parse(format!("bench-{i}")).unwrap())
        .collect();
    let orgs: Vec<OrganizationId> = (0..20).map(|_| OrganizationId::generate()).collect();
    let tags: Vec<TagId> = (0..12).map(|_| TagId::generate()).collect();

    let start = Instant::now();
    for n in 0..total {
        repos
            .machines
            .insert(&tenants[n % TENANTS], machine(n / TENANTS, &orgs, &tags))
            .await
            .unwrap();
    }
    let elapsed = start.elapsed();
    rows.push(Row {
        backend,
        operation: format!("insert {total} machines ({TENANTS} tenants)"),
        median: elapsed / total as u32,
        p95: Duration::ZERO,
        note: format!("{:.0} inserts/s", total as f64 / elapsed.as_secs_f64()),
    });

    let t = &tenants[3];
    let filtered = MachineFilter {
        statuses: vec![MachineStatus::Online],
        os_types: vec![OsType::Linux],
        search: Some("WEB".into()),
        ..Default::default()
    };
    let iterations = 200;
    let first_page = PageRequest::first(PAGE);
    let (median, p95) = timed(iterations, || {
        repos
            .machines
            .list(t, &filtered, SortSpec::default(), &first_page)
    })
    .await;
    let hits = repos.machines.count(t, &filtered).await.unwrap();
    rows.push(Row {
        backend,
        operation: "page 1 of 50, status+OS+text filter".into(),
        median,
        p95,
        note: format!("{hits} matching rows"),
    });

    let all = MachineFilter::default();
    let (first_median, first_p95) = timed(iterations, || {
        repos
            .machines
            .list(t, &all, SortSpec::default(), &first_page)
    })
    .await;
    rows.push(Row {
        backend,
        operation: "page 1 of 50, no filter".into(),
        median: first_median,
        p95: first_p95,
        note: "baseline".into(),
    });

    // Walk to the last full page before page 100 (page 100 itself when the tenant has enough rows).
    let target = (total / TENANTS / PAGE as usize).clamp(2, 100);
    let mut cursor = String::new();
    let mut page2 = None;
    for page in 1..target {
        let req = if page == 1 {
            PageRequest::first(PAGE)
        } else {
            PageRequest::first(PAGE).after(&cursor)
        };
        let result = repos
            .machines
            .list(t, &all, SortSpec::default(), &req)
            .await
            .unwrap();
        assert!(
            result.page_info.has_next_page,
            "page {page} must have a successor"
        );
        cursor = result.page_info.end_cursor.unwrap();
        if page == 1 {
            page2 = Some(PageRequest::first(PAGE).after(&cursor));
        }
    }
    // Page 2 is the fair baseline for a cursor page: both run the page query and the
    // exact hasPreviousPage probe.
    let page2 = page2.expect("two pages");
    let (second_median, second_p95) = timed(iterations, || {
        repos.machines.list(t, &all, SortSpec::default(), &page2)
    })
    .await;
    rows.push(Row {
        backend,
        operation: "page 2 of 50 by cursor, no filter".into(),
        median: second_median,
        p95: second_p95,
        note: "cursor baseline".into(),
    });
    let page100 = PageRequest::first(PAGE).after(cursor);
    let (median, p95) = timed(iterations, || {
        repos.machines.list(t, &all, SortSpec::default(), &page100)
    })
    .await;
    rows.push(Row {
        backend,
        operation: format!("page {target} of 50 by cursor, no filter"),
        median,
        p95,
        note: format!(
            "{:.2}x page 2, {:.2}x page 1",
            median.as_secs_f64() / second_median.as_secs_f64(),
            median.as_secs_f64() / first_median.as_secs_f64()
        ),
    });

    let (median, p95) = timed(iterations, || repos.machines.count(t, &filtered)).await;
    rows.push(Row {
        backend,
        operation: "filtered count".into(),
        median,
        p95,
        note: String::new(),
    });

    let dims = [
        MachineFacet::Status,
        MachineFacet::OsType,
        MachineFacet::Organization,
        MachineFacet::Tag,
    ];
    let (median, p95) = timed(iterations / 2, || {
        repos.machines.facets(t, &filtered, &dims)
    })
    .await;
    rows.push(Row {
        backend,
        operation: "4 facets, status+OS+text filter".into(),
        median,
        p95,
        note: "self-excluding".into(),
    });
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let total: usize = std::env::var("OPENFRAME_BENCH_MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("openframe-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = Vec::new();
    rt.block_on(async {
        run(
            "memory",
            Arc::new(InMemoryDocumentStore::new()),
            total,
            &mut rows,
        )
        .await;
        let sqlite = SqliteDocumentStore::open(dir.join("bench.db"))
            .await
            .unwrap();
        run("sqlite", Arc::new(sqlite), total, &mut rows).await;
    });
    std::fs::remove_dir_all(&dir).ok();
    println!();
    println!("| backend | operation | median ms | p95 ms | note |");
    println!("|---|---|---:|---:|---|");
    for r in &rows {
        let p95 = if r.p95.is_zero() {
            "-".to_owned()
        } else {
            ms(r.p95)
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            r.backend,
            r.operation,
            ms(r.median),
            p95,
            r.note
        );
    }
}
