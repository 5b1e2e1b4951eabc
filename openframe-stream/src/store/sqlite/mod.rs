//! The SQLite event store (feature `sqlite`): embedded and durable.
//!
//! One table, `of_events`, with the tenant, id, `occurred_at` in microseconds (`t`), one column
//! per filterable field, the lower-cased search text and the event as JSON. Its own versioned
//! migrations (`of_event_store_migrations`) run on open, so the file may be private or shared
//! with other stores. Indexes make the common lists seeks rather than scans:
//!
//! - `(tenant, id)` unique: idempotent appends and `get`;
//! - `(tenant, t, id)`: a tenant's newest events, time ranges, keyset pages;
//! - `(tenant, machine_id, t, id)`: a machine's newest events ("newest 50 of one machine among
//!   millions" reads about 51 index entries);
//! - `(t)`: retention purges across tenants.
//!
//! The file runs in WAL mode: one writer connection and a few reader connections, driven on
//! Tokio's blocking pool. An append is written whole or not at all. Appends that arrive while
//! the writer is busy are committed together in one transaction (group commit; each keeps its
//! own outcome and, if the shared transaction fails, is retried alone), after being encoded on
//! the callers' threads.
//! Text search uses `instr` on the lower-cased search column: a literal substring test, so
//! `%`, `_` and `\` need no escaping.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! use openframe_stream::store::{EventStore, sqlite::SqliteEventStore};
//! let dir = std::env::temp_dir().join(format!("of-events-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = SqliteEventStore::open(dir.join("events.db")).await?;
//! assert_eq!(store.purge_before(chrono::Utc::now()).await?, 0);
//! # drop(store); std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

mod commit;
mod sql;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use openframe_core::{Error, Page, PageRequest, Result, TenantId, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};
use uuid::Uuid;

use super::histogram::{Buckets, histogram_rows};
use super::paging::{EventKey, PagePlan};
use super::{
    AppendOutcome, BucketWidth, EventFacet, EventFilter, EventGroup, EventStore, FacetGroup,
    HistogramBucket, MAX_FACET_VALUES, distinct_facets, facet_value, rank_counts, search_text,
    validate,
};
use crate::model::UnifiedEvent;
use sql::{MIGRATIONS, TABLE, Where, facet_column};

const BACKEND: &str = "sqlite";
const READERS: usize = 4;

fn backend_err(e: impl Into<openframe_core::BoxError>) -> Error {
    Error::backend(BACKEND, e)
}

fn poisoned() -> Error {
    Error::Internal("sqlite connection mutex poisoned".into())
}

/// An [`EventStore`] in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    appends: commit::AppendQueue,
}

impl SqliteEventStore {
    /// Opens (or creates) the database file, enables WAL and applies the migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        blocking(move || {
            let open = |flags| Connection::open_with_flags(&path, flags).map_err(backend_err);
            let writer = open(
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&writer, true)?;
            migrate(&writer)?;
            let mut readers = Vec::with_capacity(READERS);
            for _ in 0..READERS {
                let r = open(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
                configure(&r, false)?;
                readers.push(Mutex::new(r));
            }
            Ok(Self {
                inner: Arc::new(Inner {
                    writer: Mutex::new(writer),
                    readers,
                    next_reader: AtomicUsize::new(0),
                    appends: commit::AppendQueue::default(),
                }),
            })
        })
        .await
    }

    /// Refreshes the planner statistics (`ANALYZE`); worth running after a bulk load.
    pub async fn analyze(&self) -> Result<()> {
        self.write(|conn| conn.execute_batch("ANALYZE;").map_err(backend_err))
            .await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut conn = inner.writer.lock().map_err(|_| poisoned())?;
            f(&mut conn)
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i].lock().map_err(|_| poisoned())?;
            f(&conn)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("sqlite task failed: {e}").into()))?
}

/// The writer's settings beyond WAL mode:
///
/// - `synchronous = NORMAL`: a commit appends to the WAL without an fsync (the WAL is synced
///   at each checkpoint), so a commit survives a crash of the process, not a power cut;
/// - `wal_autocheckpoint = 10000` pages (about 40 MB): a checkpoint copies each page changed
///   since the previous one back into the database file once, however often it was changed.
///   At SQLite's default (1000 pages) checkpoints ran every few appends and copied the same
///   index pages again and again: appends of 100 events were 1.4 to 2 times slower (benches);
/// - `journal_size_limit`: the WAL file is truncated back to 64 MiB after a checkpoint.
const WRITER_PRAGMAS: &str = "PRAGMA synchronous = NORMAL;
    PRAGMA wal_autocheckpoint = 10000;
    PRAGMA journal_size_limit = 67108864;";

fn configure(conn: &Connection, writer: bool) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend_err)?;
    if writer {
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(backend_err)?;
        conn.execute_batch(WRITER_PRAGMAS).map_err(backend_err)?;
    }
    conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32000;")
        .map_err(backend_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS of_event_store_migrations (
            version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
    )
    .map_err(backend_err)?;
    for (version, ddl) in MIGRATIONS {
        let done: Option<i64> = conn
            .query_row(
                "SELECT version FROM of_event_store_migrations WHERE version = ?",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend_err)?;
        if done.is_none() {
            let tx = conn.unchecked_transaction().map_err(backend_err)?;
            tx.execute_batch(ddl).map_err(backend_err)?;
            tx.execute(
                "INSERT INTO of_event_store_migrations (version, applied_at) VALUES (?, unixepoch())",
                [version],
            )
            .map_err(backend_err)?;
            tx.commit().map_err(backend_err)?;
        }
    }
    Ok(())
}

/// One row to write: the index columns and the JSON body.
struct Row {
    tenant: String,
    id: String,
    t: i64,
    machine_id: Option<String>,
    organization_id: Option<String>,
    event_type: String,
    severity: String,
    tool: String,
    category: String,
    search: String,
    body: String,
}

impl Row {
    fn of(tenant: &TenantId, e: &UnifiedEvent) -> Result<Self> {
        Ok(Self {
            tenant: tenant.as_str().to_owned(),
            id: e.id.hyphenated().to_string(),
            t: e.occurred_at.timestamp_micros(),
            machine_id: facet_value(e, EventFacet::MachineId),
            organization_id: facet_value(e, EventFacet::OrganizationId),
            event_type: e.event_type.clone(),
            severity: facet_value(e, EventFacet::Severity).unwrap_or_default(),
            tool: e.tool.as_str().to_owned(),
            category: facet_value(e, EventFacet::Category).unwrap_or_default(),
            search: search_text(e),
            body: serde_json::to_string(e).map_err(backend_err)?,
        })
    }
}

fn read_body(body: &str) -> Result<UnifiedEvent> {
    serde_json::from_str(body).map_err(backend_err)
}

/// Runs `sql` and decodes the `body` column of every row.
fn bodies(conn: &Connection, sql: &str, params: &[Value]) -> Result<Vec<UnifiedEvent>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend_err)?;
    let mut rows = stmt.query(params_from_iter(params)).map_err(backend_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend_err)? {
        let body: String = row.get(0).map_err(backend_err)?;
        out.push(read_body(&body)?);
    }
    Ok(out)
}

/// The SQL and parameters of one page fetch and of its "rows behind the cursor" probe.
fn page_sql(tenant: &TenantId, filter: &EventFilter, plan: &PagePlan) -> (String, Vec<Value>) {
    let mut w = Where::new(tenant, filter);
    let (op, order) = if plan.backward {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if let Some(c) = plan.cursor {
        w.keyset(op, c);
    }
    let sql = format!(
        "SELECT body FROM {TABLE}{} ORDER BY t {order}, id {order} LIMIT ?",
        w.sql()
    );
    (sql, w.params([Value::Integer(plan.fetch() as i64)]))
}

fn probe_sql(
    tenant: &TenantId,
    filter: &EventFilter,
    plan: &PagePlan,
    cursor: EventKey,
) -> (String, Vec<Value>) {
    let mut w = Where::new(tenant, filter);
    w.keyset(if plan.backward { "<=" } else { ">=" }, cursor);
    (
        format!("SELECT 1 FROM {TABLE}{} LIMIT 1", w.sql()),
        w.params([]),
    )
}

fn count_sql(tenant: &TenantId, filter: &EventFilter) -> (String, Vec<Value>) {
    let w = Where::new(tenant, filter);
    (
        format!("SELECT count(*) FROM {TABLE}{}", w.sql()),
        w.params([]),
    )
}

fn facet_sql(tenant: &TenantId, filter: &EventFilter, facet: EventFacet) -> (String, Vec<Value>) {
    let col = facet_column(facet);
    let mut w = Where::new(tenant, filter);
    w.not_null(col);
    let sql = format!(
        "SELECT {col}, count(*) AS n FROM {TABLE}{} GROUP BY {col} ORDER BY n DESC, {col} ASC LIMIT ?",
        w.sql()
    );
    (sql, w.params([Value::Integer(MAX_FACET_VALUES as i64)]))
}

fn histogram_sql(
    tenant: &TenantId,
    filter: &EventFilter,
    width: i64,
    group: EventGroup,
) -> (String, Vec<Value>) {
    let col = facet_column(group.facet());
    let w = Where::new(tenant, filter);
    // Floor division of `t` by the width, also for instants before 1970.
    let sql = format!(
        "SELECT t - (((t % ?) + ?) % ?) AS b, {col}, count(*) FROM {TABLE}{} GROUP BY b, {col}",
        w.sql()
    );
    let mut params = vec![Value::Integer(width); 3];
    params.extend(w.params([]));
    (sql, params)
}

/// Inserts `row`, or replaces the stored row of the same tenant and id; true when new.
fn upsert(tx: &rusqlite::Transaction<'_>, row: &Row) -> Result<bool> {
    let params = rusqlite::params![
        row.tenant,
        row.id,
        row.t,
        row.machine_id,
        row.organization_id,
        row.event_type,
        row.severity,
        row.tool,
        row.category,
        row.search,
        row.body
    ];
    let inserted = tx
        .prepare_cached(
            "INSERT INTO of_events (tenant, id, t, machine_id, organization_id, event_type,
                severity, tool, category, search, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (tenant, id) DO NOTHING",
        )
        .map_err(backend_err)?
        .execute(params)
        .map_err(backend_err)?;
    if inserted == 1 {
        return Ok(true);
    }
    tx.prepare_cached(
        "UPDATE of_events SET t = ?3, machine_id = ?4, organization_id = ?5, event_type = ?6,
            severity = ?7, tool = ?8, category = ?9, search = ?10, body = ?11
         WHERE tenant = ?1 AND id = ?2",
    )
    .map_err(backend_err)?
    .execute(params)
    .map_err(backend_err)?;
    Ok(false)
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, events: &[UnifiedEvent]) -> Result<AppendOutcome> {
        let tenants = validate::batch(events)?;
        if events.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let rows: Vec<Row> = events
            .iter()
            .zip(tenants)
            .map(|(e, t)| Row::of(t, e))
            .collect::<Result<_>>()?;
        // Encoded here, on the caller's thread; written by whichever drain gets the writer
        // first, together with the other appends queued by then (see `commit`).
        let outcome = self.inner.appends.push(rows);
        let inner = self.inner.clone();
        self.write(move |conn| {
            inner.appends.drain(conn);
            Ok(())
        })
        .await?;
        outcome.await.map_err(|_| commit::lost())?
    }

    async fn get(&self, tenant: &TenantId, id: Uuid) -> Result<Option<UnifiedEvent>> {
        let params = vec![
            Value::Text(tenant.as_str().to_owned()),
            Value::Text(id.hyphenated().to_string()),
        ];
        self.read(move |conn| {
            let sql = format!("SELECT body FROM {TABLE} WHERE tenant = ? AND id = ?");
            Ok(bodies(conn, &sql, &params)?.pop())
        })
        .await
    }

    async fn query(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<UnifiedEvent>> {
        filter.validate()?;
        let plan = PagePlan::new(page)?;
        let (sql, params) = page_sql(tenant, filter, &plan);
        let probe = plan.cursor.map(|c| probe_sql(tenant, filter, &plan, c));
        self.read(move |conn| {
            let rows = bodies(conn, &sql, &params)?;
            let behind = match probe {
                None => false,
                Some((sql, params)) => conn
                    .prepare_cached(&sql)
                    .map_err(backend_err)?
                    .exists(params_from_iter(&params))
                    .map_err(backend_err)?,
            };
            Ok(plan.assemble(rows, behind))
        })
        .await
    }

    async fn count(&self, tenant: &TenantId, filter: &EventFilter) -> Result<u64> {
        filter.validate()?;
        let (sql, params) = count_sql(tenant, filter);
        self.read(move |conn| {
            let n: i64 = conn
                .prepare_cached(&sql)
                .map_err(backend_err)?
                .query_row(params_from_iter(&params), |r| r.get(0))
                .map_err(backend_err)?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        fields: &[EventFacet],
    ) -> Result<Vec<FacetGroup>> {
        filter.validate()?;
        let queries: Vec<(EventFacet, (String, Vec<Value>))> = distinct_facets(fields)
            .into_iter()
            .map(|f| (f, facet_sql(tenant, filter, f)))
            .collect();
        self.read(move |conn| {
            let mut out = Vec::with_capacity(queries.len());
            for (facet, (sql, params)) in queries {
                let mut stmt = conn.prepare_cached(&sql).map_err(backend_err)?;
                let counts = stmt
                    .query_map(params_from_iter(&params), |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                    })
                    .map_err(backend_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend_err)?;
                out.push(FacetGroup {
                    facet,
                    counts: rank_counts(counts),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn histogram(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        bucket: BucketWidth,
        group: EventGroup,
    ) -> Result<Vec<HistogramBucket>> {
        let plan = Buckets::plan(filter, bucket)?;
        let (sql, params) = histogram_sql(tenant, filter, plan.width, group);
        let counts: Vec<(i64, String, i64)> = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(backend_err)?;
                stmt.query_map(params_from_iter(&params), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(backend_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend_err)
            })
            .await?;
        histogram_rows(
            counts
                .into_iter()
                .map(|(start, group, n)| (start, group, n.max(0) as u64)),
        )
    }

    async fn purge_before(&self, cutoff: Timestamp) -> Result<u64> {
        let cutoff = cutoff.timestamp_micros();
        self.write(move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM of_events WHERE t < ?")
                .map_err(backend_err)?
                .execute([cutoff])
                .map_err(backend_err)?;
            Ok(n as u64)
        })
        .await
    }
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use super::*;
    use openframe_core::MachineId;

    use crate::store::testkit::{base_time, event, random_tenant};

    fn plan_of(conn: &Connection, sql: &str, params: &[Value]) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(params_from_iter(params), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join(" | ")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn list_queries_are_index_seeks_without_sorting() {
        let dir = std::env::temp_dir().join(format!("of-events-plan-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteEventStore::open(dir.join("events.db")).await.unwrap();
        let tenant = random_tenant();
        let events: Vec<UnifiedEvent> = (0..300)
            .map(|n| {
                event(
                    &tenant,
                    n,
                    base_time() + chrono::Duration::seconds(n as i64),
                )
            })
            .collect();
        store.append(&events).await.unwrap();
        store.analyze().await.unwrap();

        let machine = EventFilter {
            machine_ids: vec![MachineId::parse("m1").unwrap()],
            ..EventFilter::default()
        };
        let first = PagePlan::new(&PageRequest::first(50)).unwrap();
        let page = store
            .query(&tenant, &EventFilter::default(), &PageRequest::first(1))
            .await
            .unwrap();
        let after =
            PagePlan::new(&PageRequest::first(50).after(page.page_info.end_cursor.unwrap()))
                .unwrap();
        let cases = [
            (
                "machine, first page",
                page_sql(&tenant, &machine, &first),
                "ix_of_events_machine (tenant=? AND machine_id=?)",
            ),
            (
                "machine, after cursor",
                page_sql(&tenant, &machine, &after),
                "ix_of_events_machine (tenant=? AND machine_id=? AND (t,id)<(?,?))",
            ),
            (
                "tenant, first page",
                page_sql(&tenant, &EventFilter::default(), &first),
                "ix_of_events_time (tenant=?)",
            ),
            (
                "tenant, after cursor",
                page_sql(&tenant, &EventFilter::default(), &after),
                "ix_of_events_time (tenant=? AND (t,id)<(?,?))",
            ),
        ];
        let conn = store.inner.writer.lock().unwrap();
        for (name, (sql, params), index) in cases {
            let plan = plan_of(&conn, &sql, &params);
            println!("{name}: {plan}");
            assert!(plan.contains(index), "{name}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{name} sorts: {plan}");
            assert!(!plan.contains("SCAN"), "{name} scans: {plan}");
        }
        let (sql, params) = probe_sql(&tenant, &machine, &after, after.cursor.unwrap());
        let plan = plan_of(&conn, &sql, &params);
        assert!(
            plan.contains("ix_of_events_machine (tenant=? AND machine_id=? AND (t,id)>(?,?))"),
            "{plan}"
        );
        let plan = plan_of(
            &conn,
            "DELETE FROM of_events WHERE t < ?",
            &[Value::Integer(0)],
        );
        assert!(plan.contains("ix_of_events_purge"), "{plan}");
        drop(conn);
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopening_keeps_events_and_skips_applied_migrations() {
        let dir =
            std::env::temp_dir().join(format!("of-events-reopen-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.db");
        let tenant = random_tenant();
        let e = event(&tenant, 1, base_time());
        {
            let store = SqliteEventStore::open(&path).await.unwrap();
            store.append(std::slice::from_ref(&e)).await.unwrap();
        }
        let store = SqliteEventStore::open(&path).await.unwrap();
        assert_eq!(store.get(&tenant, e.id).await.unwrap(), Some(e));
        let versions: i64 = store
            .read(|c| {
                c.query_row("SELECT count(*) FROM of_event_store_migrations", [], |r| {
                    r.get(0)
                })
                .map_err(backend_err)
            })
            .await
            .unwrap();
        assert_eq!(versions, MIGRATIONS.len() as i64);
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}
