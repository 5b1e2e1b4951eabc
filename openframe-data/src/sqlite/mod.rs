//! The SQLite document store: embedded, durable, the reference server's default.
//!
//! One table per collection (`c_<collection>`) with the partition, id, version, search text,
//! JSON body and one typed column per index field (`f_<field>`). Every [`Schema`] index
//! becomes a `(partition, fields..., id)` index, every unique group a partial-free unique
//! index (SQLite unique indexes never collide on NULL, which is exactly the contract).
//! The file runs in WAL mode: one writer connection, a few reader connections, all driven on
//! Tokio's blocking pool. Migrations are applied on open and recorded with a fingerprint.

mod sql;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use openframe_core::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};

use crate::store::{
    DocumentStore, FacetSpec, Filter, FindQuery, Partition, Schema, StoredDoc, Value,
};
use sql::{Param, SqlBuilder, read_doc, table};

const READERS: usize = 4;

/// A [`DocumentStore`] in one SQLite file.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_data::{Repositories, sqlite::SqliteDocumentStore};
/// let dir = std::env::temp_dir().join(format!("of-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let store = SqliteDocumentStore::open(dir.join("openframe.db")).await?;
/// let repos = Repositories::new(Arc::new(store));
/// # let _ = repos; std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteDocumentStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    ensured: RwLock<HashSet<&'static str>>,
}

fn backend_err(e: rusqlite::Error) -> Error {
    Error::backend("sqlite", e)
}

fn poisoned() -> Error {
    Error::Internal("sqlite connection mutex poisoned".into())
}

impl SqliteDocumentStore {
    /// Opens (or creates) the database file, enables WAL and applies migrations for the
    /// built-in collections.
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
            let mut readers = Vec::with_capacity(READERS);
            for _ in 0..READERS {
                let r = open(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
                configure(&r, false)?;
                readers.push(Mutex::new(r));
            }
            Self::with_connections(writer, readers)
        })
        .await
    }

    /// A private in-memory database (one connection; for tests).
    pub async fn open_in_memory() -> Result<Self> {
        blocking(|| {
            let conn = Connection::open_in_memory().map_err(backend_err)?;
            configure(&conn, true)?;
            Self::with_connections(conn, Vec::new())
        })
        .await
    }

    fn with_connections(writer: Connection, readers: Vec<Mutex<Connection>>) -> Result<Self> {
        migrate_meta(&writer)?;
        let mut ensured = HashSet::new();
        for schema in crate::builtin_schemas() {
            ensure_schema(&writer, schema)?;
            ensured.insert(schema.collection);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                ensured: RwLock::new(ensured),
            }),
        })
    }

    /// Makes sure `schema`'s table and indexes exist (done lazily for non-built-in schemas).
    async fn ensure(&self, schema: &'static Schema) -> Result<()> {
        if self
            .inner
            .ensured
            .read()
            .map_err(|_| poisoned())?
            .contains(schema.collection)
        {
            return Ok(());
        }
        self.write(move |conn| ensure_schema(conn, schema)).await?;
        self.inner
            .ensured
            .write()
            .map_err(|_| poisoned())?
            .insert(schema.collection);
        Ok(())
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
        schema: &'static Schema,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.ensure(schema).await?;
        let inner = self.inner.clone();
        blocking(move || {
            if inner.readers.is_empty() {
                let conn = inner.writer.lock().map_err(|_| poisoned())?;
                return f(&conn);
            }
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i].lock().map_err(|_| poisoned())?;
            f(&conn)
        })
        .await
    }
}

/// The SQL and parameters of a find.
fn find_statement(
    schema: &Schema,
    partition: &Partition,
    query: &FindQuery,
) -> Result<(String, Vec<Param>)> {
    let mut b = SqlBuilder::new(schema, partition);
    let sql = b.find(query)?;
    Ok((sql, b.into_params()))
}

/// The SQL and parameters of a count.
fn count_statement(
    schema: &Schema,
    partition: &Partition,
    filter: &Filter,
) -> Result<(String, Vec<Param>)> {
    let mut b = SqlBuilder::new(schema, partition);
    let sql = b.count(filter)?;
    Ok((sql, b.into_params()))
}

/// Runs a find built by [`find_statement`].
fn run_find(
    conn: &Connection,
    schema: &Schema,
    sql: &str,
    params: &[Param],
) -> Result<Vec<StoredDoc>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend_err)?;
    let mut rows = stmt
        .query(params_from_iter(params.iter()))
        .map_err(backend_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend_err)? {
        out.push(read_doc(schema, row)?);
    }
    Ok(out)
}

/// Runs a count built by [`count_statement`].
fn run_count(conn: &Connection, sql: &str, params: &[Param]) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached(sql)
        .map_err(backend_err)?
        .query_row(params_from_iter(params.iter()), |r| r.get(0))
        .map_err(backend_err)?;
    Ok(n.max(0) as u64)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("sqlite task failed: {e}").into()))?
}

fn configure(conn: &Connection, writer: bool) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend_err)?;
    if writer {
        // `journal_mode` returns a row, so it is queried rather than executed.
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(backend_err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(backend_err)?;
    }
    conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;")
        .map_err(backend_err)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(())
}

/// Versioned migrations of the store's own metadata tables.
const META_MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS _openframe_schema (
        collection TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        applied_at INTEGER NOT NULL
    );",
)];

fn migrate_meta(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _openframe_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
    )
    .map_err(backend_err)?;
    for (version, sql) in META_MIGRATIONS {
        let done: Option<i64> = conn
            .query_row(
                "SELECT version FROM _openframe_migrations WHERE version = ?",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend_err)?;
        if done.is_none() {
            conn.execute_batch(sql).map_err(backend_err)?;
            conn.execute(
                "INSERT INTO _openframe_migrations (version, applied_at) VALUES (?, unixepoch())",
                [version],
            )
            .map_err(backend_err)?;
        }
    }
    Ok(())
}

/// Creates or upgrades one collection: table, missing columns (additive), indexes.
fn ensure_schema(conn: &Connection, schema: &Schema) -> Result<()> {
    let fingerprint = schema.fingerprint();
    let recorded: Option<String> = conn
        .query_row(
            "SELECT fingerprint FROM _openframe_schema WHERE collection = ?",
            [schema.collection],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend_err)?;
    if recorded.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let t = table(schema)?;
    // Clustered by (partition, id) so a tenant's rows are contiguous; the body goes last so
    // filters and sorts never read past it.
    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS {t} (p TEXT NOT NULL, id TEXT NOT NULL, v INTEGER NOT NULL, s TEXT NOT NULL"
    );
    for f in schema.fields {
        ddl.push_str(&format!(
            ", {} {}",
            sql::column(f.name)?,
            sql::column_type(f.kind)
        ));
    }
    ddl.push_str(", b TEXT NOT NULL, PRIMARY KEY (p, id)) WITHOUT ROWID;");
    conn.execute_batch(&ddl).map_err(backend_err)?;
    let existing: HashSet<String> = {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({t})"))
            .map_err(backend_err)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(backend_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(backend_err)?
    };
    for f in schema.fields {
        let col = sql::column(f.name)?;
        if !existing.contains(&col) {
            conn.execute_batch(&format!(
                "ALTER TABLE {t} ADD COLUMN {col} {};",
                sql::column_type(f.kind)
            ))
            .map_err(backend_err)?;
        }
    }
    for index in schema.indexes {
        let cols: Vec<String> = index
            .fields
            .iter()
            .map(|f| sql::column(f))
            .collect::<Result<_>>()?;
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS ix_{}_{} ON {t} (p, {}, id);",
            schema.collection,
            index.fields.join("_"),
            cols.join(", ")
        ))
        .map_err(backend_err)?;
    }
    for group in schema.unique {
        let cols: Vec<String> = group
            .iter()
            .map(|f| sql::column(f))
            .collect::<Result<_>>()?;
        conn.execute_batch(&format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_{}_{} ON {t} (p, {});",
            schema.collection,
            group.join("_"),
            cols.join(", ")
        ))
        .map_err(backend_err)?;
    }
    conn.execute(
        "INSERT INTO _openframe_schema (collection, fingerprint, applied_at) VALUES (?, ?, unixepoch())
         ON CONFLICT (collection) DO UPDATE SET fingerprint = excluded.fingerprint, applied_at = excluded.applied_at",
        [schema.collection, fingerprint.as_str()],
    )
    .map_err(backend_err)?;
    Ok(())
}

/// Maps a write error: unique violations become `AlreadyExists` naming the fields.
fn write_err(schema: &Schema, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(code, Some(msg)) = &e {
        if code.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("UNIQUE") {
            let fields: Vec<&str> = msg
                .split(['.', ',', ' '])
                .filter_map(|part| part.strip_prefix("f_"))
                .collect();
            let field = if fields.is_empty() {
                "id".to_owned()
            } else {
                fields.join(",")
            };
            return Error::AlreadyExists {
                entity: schema.entity,
                field: field.into(),
            };
        }
    }
    backend_err(e)
}

fn doc_params(partition: &Partition, doc: &StoredDoc) -> Result<Vec<Param>> {
    let mut params = vec![
        Param::Text(partition.as_str().to_owned()),
        Param::Text(doc.id.clone()),
        Param::Int(
            i64::try_from(doc.version).map_err(|_| Error::invalid("version", "out of range"))?,
        ),
        Param::Text(doc.search.clone()),
        Param::Text(doc.body.clone()),
    ];
    for v in &doc.fields {
        params.push(Param::from_value(v)?);
    }
    Ok(params)
}

#[async_trait]
impl DocumentStore for SqliteDocumentStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn get(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<Option<StoredDoc>> {
        let (p, id) = (partition.as_str().to_owned(), id.to_owned());
        self.read(schema, move |conn| {
            let sql = format!(
                "SELECT {} FROM {} WHERE p = ?1 AND id = ?2",
                sql::select_list(schema)?,
                table(schema)?
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(backend_err)?;
            let mut rows = stmt.query([p, id]).map_err(backend_err)?;
            match rows.next().map_err(backend_err)? {
                Some(row) => Ok(Some(read_doc(schema, row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn get_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = FindQuery {
            filter: Filter::IdIn(ids.to_vec()),
            sort: vec![(
                crate::store::SortKey::Id,
                openframe_core::SortDirection::Asc,
            )],
            limit: ids.len(),
        };
        self.find(schema, partition, &query).await
    }

    async fn insert(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
    ) -> Result<()> {
        self.ensure(schema).await?;
        let params = doc_params(partition, &doc)?;
        self.write(move |conn| {
            let cols: Vec<String> = schema
                .fields
                .iter()
                .map(|f| sql::column(f.name))
                .collect::<Result<_>>()?;
            let marks = vec!["?"; 5 + cols.len()].join(", ");
            let sql = format!(
                "INSERT INTO {} (p, id, v, s, b{}{}) VALUES ({marks})",
                table(schema)?,
                if cols.is_empty() { "" } else { ", " },
                cols.join(", ")
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(backend_err)?;
            stmt.execute(params_from_iter(params.iter()))
                .map_err(|e| write_err(schema, e))?;
            Ok(())
        })
        .await
    }

    async fn replace(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
        expected_version: u64,
    ) -> Result<()> {
        self.ensure(schema).await?;
        let mut params = doc_params(partition, &doc)?;
        let expected = i64::try_from(expected_version)
            .map_err(|_| Error::invalid("version", "out of range"))?;
        self.write(move |conn| {
            let sets: Vec<String> = schema
                .fields
                .iter()
                .map(|f| sql::column(f.name).map(|c| format!(", {c} = ?")))
                .collect::<Result<_>>()?;
            let sql = format!(
                "UPDATE {} SET v = ?, s = ?, b = ?{} WHERE p = ? AND id = ? AND v = ?",
                table(schema)?,
                sets.concat()
            );
            // Reorder: SET values first, then the key and the expected version.
            let (key, rest) = params.split_at_mut(2);
            let mut ordered: Vec<Param> = rest.to_vec();
            ordered.extend(key.iter().cloned());
            ordered.push(Param::Int(expected));
            let tx = conn.transaction().map_err(backend_err)?;
            let changed = tx
                .prepare_cached(&sql)
                .map_err(backend_err)?
                .execute(params_from_iter(ordered.iter()))
                .map_err(|e| write_err(schema, e))?;
            if changed == 0 {
                let exists: Option<i64> = tx
                    .query_row(
                        &format!("SELECT v FROM {} WHERE p = ? AND id = ?", table(schema)?),
                        [&key[0], &key[1]],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(backend_err)?;
                return Err(match exists {
                    None => Error::not_found(schema.entity),
                    Some(_) => {
                        Error::conflict(format!("{} was changed concurrently", schema.entity))
                    }
                });
            }
            tx.commit().map_err(backend_err)?;
            Ok(())
        })
        .await
    }

    async fn delete(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<bool> {
        self.ensure(schema).await?;
        let (p, id) = (partition.as_str().to_owned(), id.to_owned());
        self.write(move |conn| {
            let sql = format!("DELETE FROM {} WHERE p = ?1 AND id = ?2", table(schema)?);
            let n = conn
                .prepare_cached(&sql)
                .map_err(backend_err)?
                .execute([p, id])
                .map_err(backend_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn find(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        query: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        let (sql, params) = find_statement(schema, partition, query)?;
        self.read(schema, move |conn| run_find(conn, schema, &sql, &params))
            .await
    }

    /// Every statement on one reader connection inside one read transaction: one trip to
    /// the blocking pool, and the rows and the count see the same snapshot.
    async fn find_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        finds: &[FindQuery],
        count: Option<&Filter>,
    ) -> Result<(Vec<Vec<StoredDoc>>, Option<u64>)> {
        let finds = finds
            .iter()
            .map(|q| find_statement(schema, partition, q))
            .collect::<Result<Vec<_>>>()?;
        let count = count
            .map(|f| count_statement(schema, partition, f))
            .transpose()?;
        self.read(schema, move |conn| {
            let snapshot = conn.unchecked_transaction().map_err(backend_err)?;
            let rows = finds
                .iter()
                .map(|(sql, params)| run_find(&snapshot, schema, sql, params))
                .collect::<Result<Vec<_>>>()?;
            let total = count
                .as_ref()
                .map(|(sql, params)| run_count(&snapshot, sql, params))
                .transpose()?;
            snapshot.finish().map_err(backend_err)?;
            Ok((rows, total))
        })
        .await
    }

    async fn count(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        filter: &Filter,
    ) -> Result<u64> {
        let (sql, params) = count_statement(schema, partition, filter)?;
        self.read(schema, move |conn| run_count(conn, &sql, &params))
            .await
    }

    /// All facets in one pass: the rows matching the base filter are read once (index fields
    /// only, no bodies) and each facet's own conditions are evaluated in Rust.
    async fn facet_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        base: &Filter,
        facets: &[FacetSpec],
    ) -> Result<Vec<Vec<(Value, u64)>>> {
        if facets.is_empty() {
            return Ok(Vec::new());
        }
        if facets.iter().any(|f| f.filter.uses_search()) {
            // The one-pass scan reads no search text; answer facet by facet instead.
            let mut out = Vec::with_capacity(facets.len());
            for spec in facets {
                let filter = Filter::and(vec![base.clone(), spec.filter.clone()]);
                out.push(self.facet(schema, partition, spec.field, &filter).await?);
            }
            return Ok(out);
        }
        let positions: Vec<usize> = facets
            .iter()
            .map(|f| schema.position(f.field))
            .collect::<Result<_>>()?;
        let mut b = SqlBuilder::new(schema, partition);
        let sql = b.scan_fields(base)?;
        let params = b.into_params();
        let specs: Vec<Filter> = facets.iter().map(|f| f.filter.clone()).collect();
        self.read(schema, move |conn| {
            let mut counts: Vec<BTreeMap<Value, u64>> = vec![BTreeMap::new(); specs.len()];
            let mut stmt = conn.prepare_cached(&sql).map_err(backend_err)?;
            let mut rows = stmt
                .query(params_from_iter(params.iter()))
                .map_err(backend_err)?;
            while let Some(row) = rows.next().map_err(backend_err)? {
                let doc = sql::read_fields(schema, row)?;
                for (i, spec) in specs.iter().enumerate() {
                    if !spec.matches(schema, &doc)? {
                        continue;
                    }
                    match &doc.fields[positions[i]] {
                        Value::Null => {}
                        Value::StrList(items) => {
                            for item in items {
                                *counts[i].entry(Value::Str(item.clone())).or_default() += 1;
                            }
                        }
                        v => *counts[i].entry(v.clone()).or_default() += 1,
                    }
                }
            }
            Ok(counts
                .into_iter()
                .map(|c| c.into_iter().collect())
                .collect())
        })
        .await
    }

    async fn facet(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        field: &'static str,
        filter: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        let kind = schema.field(field)?.kind;
        let mut b = SqlBuilder::new(schema, partition);
        let sql = b.facet(field, filter)?;
        let params = b.into_params();
        self.read(schema, move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(backend_err)?;
            let mut rows = stmt
                .query(params_from_iter(params.iter()))
                .map_err(backend_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(backend_err)? {
                let value = sql::read_scalar(kind, row, 0)?;
                let n: i64 = row.get(1).map_err(backend_err)?;
                out.push((value, n.max(0) as u64));
            }
            Ok(out)
        })
        .await
    }
}
