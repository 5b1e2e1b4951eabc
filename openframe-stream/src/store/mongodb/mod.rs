//! The MongoDB event store (feature `mongodb`), through the official driver.
//!
//! # Why a regular collection, not a time-series one
//!
//! Appends must be idempotent: a replayed event replaces the stored one. Time-series
//! collections cannot give that: they allow no unique index (so no uniqueness on the event
//! id), their `_id` is not unique either, and updates/deletes of single measurements are
//! restricted (no upsert by id, no `replaceOne`). Deduplicating at read time would make every
//! count, facet and page approximate or expensive. So events live in a **regular collection**
//! keyed by `_id = "{tenant}:{event id}"` (a re-append is a replace of that document, and two
//! tenants' events never collide), with retention done the time-series way: a **TTL index**
//! (`expireAfterSeconds`) on the `at` date field when a retention is configured, plus
//! [`EventStore::purge_before`] for explicit purges.
//!
//! Document: `{_id, tenant, id, t (occurred_at µs, Int64), at (date), machine, org, type, sev,
//! tool, cat, s (lower-cased search text), b (the event as JSON)}`. Indexes:
//! `(tenant, t desc, id desc)` for a tenant's newest events and keyset pages,
//! `(tenant, machine, t desc, id desc)` for a machine's newest events, `(t)` for purges, and the
//! TTL index. Text search is an escaped (literal) regular expression on the lower-cased `s`.
//! Filters and pipelines are built by pure functions (module `translate`), unit-tested without
//! a server; the conformance suite runs against a server when `OPENFRAME_TEST_MONGODB_URL` is
//! set.
//!
//! Appends validate the whole batch first, then write with one unordered `insertMany` and
//! replace the documents that already existed. Without a replica-set transaction a server
//! failure mid-batch can leave part of it written; retrying the append is safe (idempotent).
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use std::time::Duration;
//! use openframe_stream::store::mongodb::MongoEventStoreBuilder;
//! let store = MongoEventStoreBuilder::new("mongodb://localhost:27017", "openframe")
//!     .with_retention(Duration::from_secs(60 * 86_400))
//!     .build()
//!     .await?;
//! # let _ = store;
//! # Ok(()) }
//! ```

mod translate;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use ::mongodb::error::{Error as DriverError, ErrorKind};
use ::mongodb::options::{ClientOptions, IndexOptions};
use ::mongodb::{Client, Collection, Database, IndexModel};
use async_trait::async_trait;
use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use openframe_core::{Error, Page, PageRequest, Result, TenantId, Timestamp};
use uuid::Uuid;

use super::histogram::{Buckets, histogram_rows};
use super::paging::PagePlan;
use super::{
    AppendOutcome, BucketWidth, EventFacet, EventFilter, EventGroup, EventStore, FacetGroup,
    HistogramBucket, distinct_facets, rank_counts, validate,
};
use crate::model::UnifiedEvent;
use translate::field;

const BACKEND: &str = "mongodb";
const DUPLICATE_KEY: i32 = 11000;
/// `IndexOptionsConflict` / `IndexKeySpecsConflict`: the TTL index exists with another expiry.
const INDEX_CONFLICT: [i32; 2] = [85, 86];

fn driver(e: DriverError) -> Error {
    Error::backend(BACKEND, e)
}

/// Configuration of a [`MongoEventStore`]; the connection string is redacted in `Debug`.
#[derive(Clone)]
pub struct MongoEventStoreBuilder {
    url: String,
    database: String,
    collection: String,
    retention: Option<Duration>,
}

impl fmt::Debug for MongoEventStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoEventStoreBuilder")
            .field("url", &"<redacted>")
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("retention", &self.retention)
            .finish()
    }
}

impl MongoEventStoreBuilder {
    /// A store in collection `events` of `database` on the deployment at `url`.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            collection: "events".to_owned(),
            retention: None,
        }
    }

    /// Reads `OPENFRAME_MONGODB_URL` (required), `OPENFRAME_MONGODB_DATABASE` (default
    /// `openframe`) and `OPENFRAME_EVENT_RETENTION_DAYS` (default: no TTL index).
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("OPENFRAME_MONGODB_URL")
            .map_err(|_| Error::invalid("OPENFRAME_MONGODB_URL", "is not set"))?;
        let database =
            std::env::var("OPENFRAME_MONGODB_DATABASE").unwrap_or_else(|_| "openframe".to_owned());
        let mut builder = Self::new(url, database);
        if let Ok(days) = std::env::var("OPENFRAME_EVENT_RETENTION_DAYS") {
            let days: u64 = days.trim().parse().map_err(|_| {
                Error::invalid("OPENFRAME_EVENT_RETENTION_DAYS", "must be a whole number")
            })?;
            builder = builder.with_retention(Duration::from_secs(days.saturating_mul(86_400)));
        }
        Ok(builder)
    }

    /// Uses collection `name` instead of `events`.
    pub fn with_collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// Lets the server expire events this long after they occurred (a TTL index).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Connects and creates the indexes.
    pub async fn build(self) -> Result<MongoEventStore> {
        if self.database.is_empty()
            || self.database.len() > 63
            || self
                .database
                .contains(['/', '\\', '.', ' ', '"', '$', '\0'])
        {
            return Err(Error::invalid(
                "database",
                "not a valid MongoDB database name",
            ));
        }
        if self.collection.is_empty()
            || self.collection.len() > 120
            || self.collection.contains(['$', '\0'])
            || self.collection.starts_with("system.")
        {
            return Err(Error::invalid(
                "collection",
                "not a valid MongoDB collection name",
            ));
        }
        if self.retention.is_some_and(|r| r.as_secs() == 0) {
            return Err(Error::invalid("retention", "must be at least one second"));
        }
        let mut options =
            ClientOptions::parse(self.url.as_str())
                .await
                .map_err(|e| match *e.kind {
                    // The driver's message may quote the connection string: never echo it.
                    ErrorKind::InvalidArgument { .. } => {
                        Error::invalid("url", "not a valid MongoDB connection string")
                    }
                    _ => driver(e),
                })?;
        if options.app_name.is_none() {
            options.app_name = Some("openframe".to_owned());
        }
        let client = Client::with_options(options).map_err(driver)?;
        let db = client.database(&self.database);
        let store = MongoEventStore {
            events: db.collection(&self.collection),
            db,
        };
        store.ensure_indexes(self.retention).await?;
        Ok(store)
    }
}

/// An [`EventStore`] on MongoDB.
pub struct MongoEventStore {
    db: Database,
    events: Collection<Document>,
}

impl fmt::Debug for MongoEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoEventStore")
            .field("database", &self.db.name())
            .field("collection", &self.events.name())
            .finish()
    }
}

impl MongoEventStore {
    /// Connects with the defaults of [`MongoEventStoreBuilder`] (no TTL index).
    pub async fn connect(url: &str, database: &str) -> Result<Self> {
        MongoEventStoreBuilder::new(url, database).build().await
    }

    /// Drops the whole database (for test cleanup).
    pub async fn drop_database(&self) -> Result<()> {
        self.db.drop().await.map_err(driver)
    }

    async fn ensure_indexes(&self, retention: Option<Duration>) -> Result<()> {
        let index = |keys: Document, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_owned()).build())
                .build()
        };
        self.events
            .create_indexes([
                index(
                    doc! { field::TENANT: 1, field::TIME: -1, field::ID: -1 },
                    "ix_events_time",
                ),
                index(
                    doc! { field::TENANT: 1, field::MACHINE: 1, field::TIME: -1, field::ID: -1 },
                    "ix_events_machine",
                ),
                index(doc! { field::TIME: 1 }, "ix_events_purge"),
            ])
            .await
            .map_err(driver)?;
        let Some(retention) = retention else {
            return Ok(());
        };
        let ttl = IndexModel::builder()
            .keys(doc! { field::AT: 1 })
            .options(
                IndexOptions::builder()
                    .name("ttl_events_at".to_owned())
                    .expire_after(retention)
                    .build(),
            )
            .build();
        match self.events.create_index(ttl).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(&*e.kind, ErrorKind::Command(c) if INDEX_CONFLICT.contains(&c.code)) =>
            {
                // The TTL index exists with another expiry: change it in place.
                let seconds = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
                self.db
                    .run_command(doc! {
                        "collMod": self.events.name(),
                        "index": { "name": "ttl_events_at", "expireAfterSeconds": seconds },
                    })
                    .await
                    .map_err(driver)?;
                Ok(())
            }
            Err(e) => Err(driver(e)),
        }
    }

    async fn bodies(
        &self,
        filter: Document,
        sort: Document,
        limit: i64,
    ) -> Result<Vec<UnifiedEvent>> {
        let cursor = self
            .events
            .find(filter)
            .sort(sort)
            .limit(limit)
            .projection(doc! { field::BODY: 1 })
            .await
            .map_err(driver)?;
        let docs: Vec<Document> = cursor.try_collect().await.map_err(driver)?;
        docs.iter().map(read_body).collect()
    }
}

fn read_body(d: &Document) -> Result<UnifiedEvent> {
    let body = d
        .get_str(field::BODY)
        .map_err(|_| Error::Internal("stored event has no body".into()))?;
    serde_json::from_str(body).map_err(|e| Error::backend(BACKEND, e))
}

fn count_of(d: &Document) -> u64 {
    match d.get("n") {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

#[async_trait]
impl EventStore for MongoEventStore {
    async fn append(&self, events: &[UnifiedEvent]) -> Result<AppendOutcome> {
        let tenants = validate::batch(events)?;
        // The last event per key wins; earlier copies in the batch count as replaced.
        let mut latest: HashMap<String, usize> = HashMap::new();
        for (i, (e, t)) in events.iter().zip(&tenants).enumerate() {
            latest.insert(translate::key(t, &e.id), i);
        }
        let mut outcome = AppendOutcome {
            inserted: 0,
            replaced: (events.len() - latest.len()) as u64,
        };
        let mut order: Vec<usize> = latest.into_values().collect();
        order.sort_unstable();
        let docs: Vec<Document> = order
            .iter()
            .map(|&i| translate::event_doc(tenants[i], &events[i]))
            .collect::<Result<_>>()?;
        if docs.is_empty() {
            return Ok(outcome);
        }
        let existing: Vec<usize> = match self.events.insert_many(&docs).ordered(false).await {
            Ok(_) => Vec::new(),
            Err(e) => match &*e.kind {
                ErrorKind::InsertMany(failure)
                    if failure.write_concern_error.is_none()
                        && failure
                            .write_errors
                            .as_ref()
                            .is_some_and(|w| w.iter().all(|w| w.code == DUPLICATE_KEY)) =>
                {
                    failure
                        .write_errors
                        .iter()
                        .flatten()
                        .map(|w| w.index)
                        .collect()
                }
                _ => return Err(driver(e)),
            },
        };
        for &i in &existing {
            let d = &docs[i];
            let key = d.get_str(field::KEY).unwrap_or_default();
            self.events
                .replace_one(doc! { field::KEY: key }, d)
                .upsert(true)
                .await
                .map_err(driver)?;
        }
        outcome.replaced += existing.len() as u64;
        outcome.inserted += (docs.len() - existing.len()) as u64;
        Ok(outcome)
    }

    async fn get(&self, tenant: &TenantId, id: Uuid) -> Result<Option<UnifiedEvent>> {
        let found = self
            .events
            .find_one(
                doc! { field::KEY: translate::key(tenant, &id), field::TENANT: tenant.as_str() },
            )
            .projection(doc! { field::BODY: 1 })
            .await
            .map_err(driver)?;
        found.as_ref().map(read_body).transpose()
    }

    async fn query(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<UnifiedEvent>> {
        filter.validate()?;
        let plan = PagePlan::new(page)?;
        let base = translate::filter_doc(tenant, filter);
        let (ahead_op, behind_op) = if plan.backward {
            (">", "<=")
        } else {
            ("<", ">=")
        };
        let ahead = match plan.cursor {
            Some(c) => translate::keyset(base.clone(), ahead_op, c),
            None => base.clone(),
        };
        let rows = self
            .bodies(
                ahead,
                translate::sort_doc(plan.backward),
                plan.fetch() as i64,
            )
            .await?;
        let behind = match plan.cursor {
            None => false,
            Some(c) => self
                .events
                .find_one(translate::keyset(base, behind_op, c))
                .projection(doc! { field::KEY: 1 })
                .await
                .map_err(driver)?
                .is_some(),
        };
        Ok(plan.assemble(rows, behind))
    }

    async fn count(&self, tenant: &TenantId, filter: &EventFilter) -> Result<u64> {
        filter.validate()?;
        self.events
            .count_documents(translate::filter_doc(tenant, filter))
            .await
            .map_err(driver)
    }

    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        fields: &[EventFacet],
    ) -> Result<Vec<FacetGroup>> {
        filter.validate()?;
        let fields = distinct_facets(fields);
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = translate::facets_pipeline(translate::filter_doc(tenant, filter), &fields);
        let mut cursor = self.events.aggregate(pipeline).await.map_err(driver)?;
        let result = cursor.try_next().await.map_err(driver)?.unwrap_or_default();
        fields
            .iter()
            .enumerate()
            .map(|(i, facet)| {
                let counts = result
                    .get_array(format!("f{i}"))
                    .map(|rows| {
                        rows.iter()
                            .filter_map(Bson::as_document)
                            .filter_map(|d| Some((d.get_str("_id").ok()?.to_owned(), count_of(d))))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                Ok(FacetGroup {
                    facet: *facet,
                    counts: rank_counts(counts),
                })
            })
            .collect()
    }

    async fn histogram(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        bucket: BucketWidth,
        group: EventGroup,
    ) -> Result<Vec<HistogramBucket>> {
        let plan = Buckets::plan(filter, bucket)?;
        let pipeline =
            translate::histogram_pipeline(translate::filter_doc(tenant, filter), plan.width, group);
        let cursor = self.events.aggregate(pipeline).await.map_err(driver)?;
        let docs: Vec<Document> = cursor.try_collect().await.map_err(driver)?;
        let counts = docs
            .iter()
            .map(|d| {
                let id = d
                    .get_document("_id")
                    .map_err(|_| Error::Internal("histogram row without a key".into()))?;
                let start = match id.get("b") {
                    Some(Bson::Int64(b)) => *b,
                    Some(Bson::Int32(b)) => i64::from(*b),
                    _ => return Err(Error::Internal("histogram bucket is not an integer".into())),
                };
                Ok((
                    start,
                    id.get_str("g").unwrap_or_default().to_owned(),
                    count_of(d),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        histogram_rows(counts)
    }

    async fn purge_before(&self, cutoff: Timestamp) -> Result<u64> {
        let result = self
            .events
            .delete_many(doc! { field::TIME: { "$lt": cutoff.timestamp_micros() } })
            .await
            .map_err(driver)?;
        Ok(result.deleted_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_connection_string() {
        let builder = MongoEventStoreBuilder::new("mongodb://admin:hunter2@db:27017", "openframe");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("admin"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn bad_configuration_is_rejected_before_connecting() {
        let cases = [
            ("mongodb://admin:hunter2@", "openframe", "events", "url"),
            ("not a url hunter2", "openframe", "events", "url"),
            ("mongodb://localhost", "bad.name", "events", "database"),
            (
                "mongodb://localhost",
                "openframe",
                "system.events",
                "collection",
            ),
            ("mongodb://localhost", "openframe", "", "collection"),
        ];
        for (url, db, coll, field) in cases {
            let err = MongoEventStoreBuilder::new(url, db)
                .with_collection(coll)
                .build()
                .await
                .unwrap_err();
            assert_eq!(err.field(), Some(field), "{url} {db} {coll}: {err}");
            assert!(!err.to_string().contains("hunter2"));
        }
        let err = MongoEventStoreBuilder::new("mongodb://localhost", "openframe")
            .with_retention(Duration::ZERO)
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some("retention"));
    }
}
