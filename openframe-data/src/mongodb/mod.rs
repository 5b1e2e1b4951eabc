//! The MongoDB document store, through the official driver (feature `mongodb`).
//!
//! One collection per [`Schema::collection`] (optionally prefixed), one document per stored
//! document: `{p: partition, id, v: version, s: search text, b: body, f: {index fields}}`.
//! Indexes are created when the store connects (for [`crate::builtin_schemas`]) and on first use
//! for any other schema:
//!
//! - unique `(p, id)`;
//! - one `(p, fields..., id)` per [`Schema::indexes`] entry, so every list query is a
//!   partition-prefixed index range in sort order;
//! - one unique `(p, fields...)` per [`Schema::unique`] group, partial on every value having its
//!   type, so null values never collide.
//!
//! Filters, sorts and facets are translated by pure functions (module `translate`) that
//! reproduce the reference semantics of [`Filter::matches`] and
//! [`compare_docs`](crate::store::compare_docs). `replace` is one conditional `replaceOne` on
//! `(p, id, v)`, so concurrent writers of the same version see exactly one winner.
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use std::sync::Arc;
//! use openframe_data::{Repositories, mongodb::MongoDocumentStore};
//!
//! let store = MongoDocumentStore::connect("mongodb://localhost:27017", "openframe").await?;
//! let repos = Repositories::new(Arc::new(store));
//! # let _ = repos;
//! # Ok(()) }
//! ```

mod codec;
mod translate;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use ::mongodb::error::{Error as DriverError, ErrorKind, WriteFailure};
use ::mongodb::options::{ClientOptions, IndexOptions};
use ::mongodb::{Client, Collection, Database, IndexModel};
use async_trait::async_trait;
use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use openframe_core::{Error, Result};

use self::codec::{ID, PARTITION, VERSION};
use crate::store::{
    DocumentStore, FieldKind, Filter, FindQuery, Partition, Schema, StoredDoc, Value,
};

const BACKEND: &str = "mongodb";

/// The server error codes of a duplicate key.
const DUPLICATE_KEY: [i32; 2] = [11000, 11001];

fn driver(e: DriverError) -> Error {
    Error::backend(BACKEND, e)
}

/// The server message of a duplicate-key error, if `e` is one.
fn duplicate_key_message(e: &DriverError) -> Option<&str> {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if DUPLICATE_KEY.contains(&w.code) => {
            Some(&w.message)
        }
        ErrorKind::Command(c) if DUPLICATE_KEY.contains(&c.code) => Some(&c.message),
        _ => None,
    }
}

/// Configuration for a [`MongoDocumentStore`]. The connection string is redacted in `Debug`
/// (it may carry credentials).
///
/// ```no_run
/// # async fn run() -> openframe_core::Result<()> {
/// use openframe_data::mongodb::MongoDocumentStoreBuilder;
/// let store = MongoDocumentStoreBuilder::new("mongodb://localhost:27017", "openframe")
///     .with_collection_prefix("of_")
///     .build()
///     .await?;
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MongoDocumentStoreBuilder {
    url: String,
    database: String,
    collection_prefix: String,
}

impl fmt::Debug for MongoDocumentStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDocumentStoreBuilder")
            .field("url", &"<redacted>")
            .field("database", &self.database)
            .field("collection_prefix", &self.collection_prefix)
            .finish()
    }
}

impl MongoDocumentStoreBuilder {
    /// A store on database `database` of the deployment at `url` (a `mongodb://` or
    /// `mongodb+srv://` connection string).
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            collection_prefix: String::new(),
        }
    }

    /// Reads `OPENFRAME_MONGODB_URL` (required), `OPENFRAME_MONGODB_DATABASE` (default
    /// `openframe`) and `OPENFRAME_MONGODB_COLLECTION_PREFIX` (default none).
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("OPENFRAME_MONGODB_URL")
            .map_err(|_| Error::invalid("OPENFRAME_MONGODB_URL", "is not set"))?;
        let database =
            std::env::var("OPENFRAME_MONGODB_DATABASE").unwrap_or_else(|_| "openframe".to_owned());
        let prefix = std::env::var("OPENFRAME_MONGODB_COLLECTION_PREFIX").unwrap_or_default();
        Ok(Self::new(url, database).with_collection_prefix(prefix))
    }

    /// Prefixes every collection name (several deployments can share one database).
    pub fn with_collection_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.collection_prefix = prefix.into();
        self
    }

    /// Connects and creates the indexes of every built-in collection.
    ///
    /// Fails with `InvalidInput` on a malformed connection string, database name or prefix,
    /// and with a backend error if the deployment cannot be reached.
    pub async fn build(self) -> Result<MongoDocumentStore> {
        validate_database(&self.database)?;
        validate_prefix(&self.collection_prefix)?;
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
        let store = MongoDocumentStore {
            db: client.database(&self.database),
            prefix: self.collection_prefix,
            ready: Mutex::new(HashSet::new()),
        };
        for schema in crate::builtin_schemas() {
            store.collection(schema).await?;
        }
        Ok(store)
    }
}

fn validate_database(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 63
        || name.contains([
            '/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0',
        ])
    {
        return Err(Error::invalid(
            "database",
            "not a valid MongoDB database name",
        ));
    }
    Ok(())
}

fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > 64 || prefix.contains(['$', '\0']) || prefix.starts_with("system.") {
        return Err(Error::invalid(
            "collection_prefix",
            "not a valid MongoDB collection name prefix",
        ));
    }
    Ok(())
}

/// A [`DocumentStore`] on MongoDB: durable, shared by many server instances.
///
/// Connect with [`MongoDocumentStore::connect`] or [`MongoDocumentStoreBuilder`]. The store
/// holds a connection pool; clone the `Arc` it is wrapped in rather than connecting again.
pub struct MongoDocumentStore {
    db: Database,
    prefix: String,
    /// Fingerprints of the schemas whose indexes exist.
    ready: Mutex<HashSet<String>>,
}

impl fmt::Debug for MongoDocumentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDocumentStore")
            .field("database", &self.db.name())
            .field("collection_prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl MongoDocumentStore {
    /// Connects to database `database` of the deployment at `url` and creates the indexes of
    /// every built-in collection.
    pub async fn connect(url: &str, database: &str) -> Result<Self> {
        MongoDocumentStoreBuilder::new(url, database).build().await
    }

    /// Drops the whole database (tests use it to clean up their random database). The store
    /// stays usable: indexes are created again on next use.
    pub async fn drop_database(&self) -> Result<()> {
        self.db.drop().await.map_err(driver)?;
        self.ready.lock().map_err(|_| poisoned())?.clear();
        Ok(())
    }

    /// The collection of `schema`, creating its indexes on first use.
    async fn collection(&self, schema: &'static Schema) -> Result<Collection<Document>> {
        let coll = self
            .db
            .collection::<Document>(&format!("{}{}", self.prefix, schema.collection));
        let key = schema.fingerprint();
        if self.ready.lock().map_err(|_| poisoned())?.contains(&key) {
            return Ok(coll);
        }
        let models: Vec<IndexModel> = codec::index_specs(schema)?
            .into_iter()
            .map(|spec| {
                let options = IndexOptions::builder()
                    .name(spec.name)
                    .unique(spec.unique.then_some(true))
                    .partial_filter_expression(spec.partial)
                    .build();
                IndexModel::builder()
                    .keys(spec.keys)
                    .options(options)
                    .build()
            })
            .collect();
        // createIndexes is idempotent: concurrent first uses may both run it.
        coll.create_indexes(models).await.map_err(driver)?;
        self.ready.lock().map_err(|_| poisoned())?.insert(key);
        Ok(coll)
    }

    /// Maps a write error: a duplicate key is `AlreadyExists` on the colliding field or group,
    /// reporting a taken id before a taken unique group (as the reference does).
    async fn write_error(
        &self,
        coll: &Collection<Document>,
        schema: &'static Schema,
        partition: &Partition,
        doc: &StoredDoc,
        is_insert: bool,
        e: DriverError,
    ) -> Error {
        let Some(message) = duplicate_key_message(&e) else {
            return driver(e);
        };
        let named = codec::duplicate_field(schema, message);
        match self
            .colliding_field(coll, schema, partition, doc, is_insert, named)
            .await
        {
            Ok(field) => Error::AlreadyExists {
                entity: schema.entity,
                field: field.into(),
            },
            Err(err) => err,
        }
    }

    /// Which key of `doc` is taken: the id (on insert), else the group the server named, else
    /// the first unique group another document holds.
    async fn colliding_field(
        &self,
        coll: &Collection<Document>,
        schema: &'static Schema,
        partition: &Partition,
        doc: &StoredDoc,
        is_insert: bool,
        named: Option<String>,
    ) -> Result<String> {
        if named.as_deref() == Some(ID) {
            return Ok(ID.to_owned());
        }
        if is_insert
            && coll
                .find_one(id_query(partition, &doc.id))
                .await
                .map_err(driver)?
                .is_some()
        {
            return Ok(ID.to_owned());
        }
        if let Some(group) = named {
            return Ok(group);
        }
        for group in schema.unique {
            let mut query = doc! { PARTITION: partition.as_str(), ID: { "$ne": doc.id.as_str() } };
            let mut complete = true;
            for name in group.iter() {
                let value = &doc.fields[schema.position(name)?];
                if *value == Value::Null {
                    complete = false;
                    break;
                }
                query.insert(translate::field_path(name), codec::value_to_bson(value));
            }
            if complete && coll.find_one(query).await.map_err(driver)?.is_some() {
                return Ok(group.join(","));
            }
        }
        Ok(ID.to_owned())
    }
}

fn poisoned() -> Error {
    Error::Internal("mongodb store index cache lock poisoned".into())
}

fn id_query(partition: &Partition, id: &str) -> Document {
    doc! { PARTITION: partition.as_str(), ID: id }
}

async fn collect_docs(
    schema: &Schema,
    cursor: ::mongodb::Cursor<Document>,
) -> Result<Vec<StoredDoc>> {
    let raw: Vec<Document> = cursor.try_collect().await.map_err(driver)?;
    raw.iter().map(|d| codec::decode(schema, d)).collect()
}

#[async_trait]
impl DocumentStore for MongoDocumentStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<Option<StoredDoc>> {
        let coll = self.collection(schema).await?;
        let found = coll
            .find_one(id_query(partition, id))
            .await
            .map_err(driver)?;
        found.map(|d| codec::decode(schema, &d)).transpose()
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
        let coll = self.collection(schema).await?;
        let mut distinct: Vec<&str> = ids.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let query = doc! { PARTITION: partition.as_str(), ID: { "$in": distinct } };
        let cursor = coll.find(query).await.map_err(driver)?;
        let by_id: HashMap<String, StoredDoc> = collect_docs(schema, cursor)
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        // One result per requested id, like the reference.
        Ok(ids.iter().filter_map(|id| by_id.get(id).cloned()).collect())
    }

    async fn insert(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
    ) -> Result<()> {
        let stored = codec::encode(schema, partition, &doc)?;
        let coll = self.collection(schema).await?;
        match coll.insert_one(stored).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self
                .write_error(&coll, schema, partition, &doc, true, e)
                .await),
        }
    }

    async fn replace(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
        expected_version: u64,
    ) -> Result<()> {
        let stored = codec::encode(schema, partition, &doc)?;
        let coll = self.collection(schema).await?;
        if let Ok(expected) = i64::try_from(expected_version) {
            let mut query = id_query(partition, &doc.id);
            query.insert(VERSION, expected);
            match coll.replace_one(query, stored).await {
                Ok(result) if result.matched_count > 0 => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    return Err(self
                        .write_error(&coll, schema, partition, &doc, false, e)
                        .await);
                }
            }
        }
        // Nothing matched: tell a missing document from a stale version.
        let exists = coll
            .find_one(id_query(partition, &doc.id))
            .projection(doc! { VERSION: 1 })
            .await
            .map_err(driver)?
            .is_some();
        if exists {
            Err(Error::conflict(format!(
                "{} was changed concurrently",
                schema.entity
            )))
        } else {
            Err(Error::not_found(schema.entity))
        }
    }

    async fn delete(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<bool> {
        let coll = self.collection(schema).await?;
        let result = coll
            .delete_one(id_query(partition, id))
            .await
            .map_err(driver)?;
        Ok(result.deleted_count > 0)
    }

    async fn find(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        query: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        let filter = translate::query_doc(schema, partition, &query.filter)?;
        let sort = translate::sort_doc(schema, &query.sort)?;
        if query.limit == 0 {
            // MongoDB reads a limit of 0 as "no limit".
            return Ok(Vec::new());
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let coll = self.collection(schema).await?;
        let cursor = coll
            .find(filter)
            .sort(sort)
            .limit(limit)
            .await
            .map_err(driver)?;
        collect_docs(schema, cursor).await
    }

    async fn count(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        filter: &Filter,
    ) -> Result<u64> {
        let filter = translate::query_doc(schema, partition, filter)?;
        let coll = self.collection(schema).await?;
        coll.count_documents(filter).await.map_err(driver)
    }

    async fn facet(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        field: &'static str,
        filter: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        let pipeline = translate::facet_pipeline(schema, partition, field, filter)?;
        let kind = match schema.field(field)?.kind {
            FieldKind::StrList => FieldKind::Str,
            kind => kind,
        };
        let coll = self.collection(schema).await?;
        let groups: Vec<Document> = coll
            .aggregate(pipeline)
            .await
            .map_err(driver)?
            .try_collect()
            .await
            .map_err(driver)?;
        let mut out = Vec::with_capacity(groups.len());
        for group in &groups {
            let value = codec::bson_to_value(schema, kind, group.get("_id"))?;
            if value == Value::Null {
                continue;
            }
            let count = match group.get("n") {
                Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
                Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
                _ => None,
            }
            .ok_or_else(|| {
                Error::Internal(
                    format!("{}: bad facet count from mongodb", schema.collection).into(),
                )
            })?;
            out.push((value, count));
        }
        out.sort();
        Ok(out)
    }
}
