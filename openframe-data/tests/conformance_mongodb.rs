//! The MongoDB document store against the shared conformance suite, plus MongoDB-specific
//! checks (index use, duplicate-key mapping, body storage, connection errors).
//!
//! Runs when `OPENFRAME_TEST_MONGODB_URL` is set (e.g. `mongodb://localhost:27017`); otherwise
//! every server test prints a `skipped:` line and passes. Each test works in its own random
//! database (`openframe_test_<hex>`) and drops it when done.

#![cfg(feature = "mongodb")]

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use openframe_core::{Error, Result};
use openframe_data::mongodb::{MongoDocumentStore, MongoDocumentStoreBuilder};
use openframe_data::store::{
    DocumentStore, FieldKind, Filter, FindQuery, Partition, Schema, StoredDoc, Value,
};
use openframe_data::testkit::probe::{PROBE, doc as probe_doc};
use openframe_data::testkit::random_tenant;

const URL_VAR: &str = "OPENFRAME_TEST_MONGODB_URL";

/// The test server's URL, or `None` (after printing why) when none is configured.
fn test_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: set {URL_VAR} to run the MongoDB conformance suite");
            None
        }
    }
}

/// A store on a fresh random database, dropped with the store.
struct Scratch {
    store: MongoDocumentStore,
    url: String,
    database: String,
}

impl Scratch {
    async fn new() -> Option<Self> {
        let url = test_url()?;
        let database = format!("openframe_test_{:016x}", rand::random::<u64>());
        let store = MongoDocumentStore::connect(&url, &database)
            .await
            .expect("connect to the test MongoDB");
        Some(Self {
            store,
            url,
            database,
        })
    }

    /// A raw driver handle on the scratch database, to inspect what the store wrote.
    async fn raw(&self) -> ::mongodb::Database {
        ::mongodb::Client::with_uri_str(&self.url)
            .await
            .expect("connect to the test MongoDB")
            .database(&self.database)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The suites run on multi-threaded runtimes, where a worker may block on the drop.
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => h,
            _ => {
                eprintln!(
                    "left test database {} behind (no multi-threaded runtime)",
                    self.database
                );
                return;
            }
        };
        let dropped = tokio::task::block_in_place(|| handle.block_on(self.store.drop_database()));
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.database);
        }
    }
}

impl fmt::Debug for Scratch {
    // The URL may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scratch")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl DocumentStore for Scratch {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }
    async fn get(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<Option<StoredDoc>> {
        self.store.get(schema, partition, id).await
    }
    async fn get_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>> {
        self.store.get_many(schema, partition, ids).await
    }
    async fn insert(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
    ) -> Result<()> {
        self.store.insert(schema, partition, doc).await
    }
    async fn replace(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
        expected_version: u64,
    ) -> Result<()> {
        self.store
            .replace(schema, partition, doc, expected_version)
            .await
    }
    async fn delete(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<bool> {
        self.store.delete(schema, partition, id).await
    }
    async fn find(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        query: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        self.store.find(schema, partition, query).await
    }
    async fn count(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        filter: &Filter,
    ) -> Result<u64> {
        self.store.count(schema, partition, filter).await
    }
    async fn facet(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        field: &'static str,
        filter: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        self.store.facet(schema, partition, field, filter).await
    }
}

async fn make_store() -> Option<Arc<dyn DocumentStore>> {
    Some(Arc::new(Scratch::new().await?))
}

mod store {
    openframe_data::document_store_conformance!(super::make_store);
}

// ---- MongoDB-specific checks ----

fn partition() -> Partition {
    Partition::tenant(&random_tenant())
}

/// The winning plan of a `find`, as compact JSON.
async fn plan(
    db: &::mongodb::Database,
    collection: &str,
    filter: Document,
    sort: Document,
) -> String {
    let explained = db
        .run_command(doc! {
            "explain": { "find": collection, "filter": filter, "sort": sort, "limit": 51 },
            "verbosity": "queryPlanner",
        })
        .await
        .expect("explain");
    let planner = explained
        .get_document("queryPlanner")
        .expect("queryPlanner");
    serde_json::to_string(planner.get("winningPlan").expect("winningPlan")).expect("plan as JSON")
}

/// Document `n` of a schema: every field set, a spread of repeated values, unique groups
/// distinct (boolean ones set only on the first document).
fn synthetic(schema: &Schema, n: usize) -> StoredDoc {
    let fields = schema
        .fields
        .iter()
        .map(|f| {
            let unique = schema.unique.iter().any(|g| g.contains(&f.name));
            match (f.kind, unique) {
                (FieldKind::Str, true) => Value::Str(format!("{}-{n}", f.name)),
                (FieldKind::Str, false) => Value::Str(format!("{}-{}", f.name, n % 5)),
                (FieldKind::Int, true) => Value::Int(n as i64),
                (FieldKind::Int, false) => Value::Int((n / 3) as i64),
                (FieldKind::Bool, true) => {
                    if n == 0 {
                        Value::Bool(true)
                    } else {
                        Value::Null
                    }
                }
                (FieldKind::Bool, false) => Value::Bool(n % 2 == 0),
                (FieldKind::StrList, _) => Value::StrList(vec![format!("v{}", n % 4)]),
            }
        })
        .collect();
    StoredDoc {
        id: format!("{n:05}"),
        version: 1,
        fields,
        search: String::new(),
        body: "{}".to_owned(),
    }
}

fn builtin(collection: &str) -> &'static Schema {
    openframe_data::builtin_schemas()
        .into_iter()
        .find(|s| s.collection == collection)
        .expect("built-in schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_queries_use_partition_first_indexes_in_sort_order() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let p = partition();
    for collection in ["machines", "users"] {
        let schema = builtin(collection);
        for n in 0..300 {
            scratch
                .store
                .insert(schema, &p, synthetic(schema, n))
                .await
                .expect("seed");
        }
    }
    let db = scratch.raw().await;
    let pk = p.as_str();
    for (collection, filter, sort, index, sorted_by_index) in [
        (
            "machines",
            doc! { "p": pk, "f.status": { "$in": ["status-1"], "$type": "string" } },
            doc! { "f.registered_at": -1, "id": -1 },
            "p_1_f.status_1_f.registered_at_1_id_1",
            true,
        ),
        (
            "machines",
            doc! { "p": pk },
            doc! { "f.registered_at": -1, "id": -1 },
            "p_1_f.registered_at_1_id_1",
            true,
        ),
        (
            // The keyset condition of a later page seeks the same index.
            "machines",
            doc! {
                "p": pk,
                "f.registered_at": { "$lte": 50_i64 },
                "$or": [{ "f.registered_at": { "$lt": 50_i64 } }, { "id": { "$lt": "00151" } }],
            },
            doc! { "f.registered_at": -1, "id": -1 },
            "p_1_f.registered_at_1_id_1",
            true,
        ),
        (
            "machines",
            doc! { "p": pk },
            doc! { "f.hostname": 1, "id": 1 },
            "p_1_f.hostname_1_id_1",
            true,
        ),
        (
            "machines",
            doc! { "p": pk },
            doc! { "id": 1 },
            "of_id",
            true,
        ),
        (
            "users",
            doc! { "p": pk, "f.email_key": { "$eq": "email_key-7", "$type": "string" } },
            doc! { "id": 1 },
            "of_unique.email_key",
            false,
        ),
    ] {
        let plan = plan(&db, collection, filter.clone(), sort.clone()).await;
        let what = format!("{collection} {filter} sorted by {sort}");
        assert!(
            !plan.contains("COLLSCAN"),
            "{what} scans the collection: {plan}"
        );
        assert!(plan.contains(index), "{what} should use {index}: {plan}");
        if sorted_by_index {
            assert!(
                !plan.contains("\"stage\":\"SORT\""),
                "{what} sorts in memory: {plan}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_name_the_colliding_field() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let store = &scratch.store;
    let p = partition();
    let mk = |id: &str, u: Value| probe_doc(id, Value::Null, Value::Null, Value::Null, &[], u, "");
    store
        .insert(&PROBE, &p, mk("a", Value::str("k")))
        .await
        .expect("insert");
    match store.insert(&PROBE, &p, mk("a", Value::Null)).await {
        Err(Error::AlreadyExists { entity, field }) => {
            assert_eq!((entity, field.as_ref()), ("probe", "id"))
        }
        other => panic!("duplicate id: {other:?}"),
    }
    match store.insert(&PROBE, &p, mk("b", Value::str("k"))).await {
        Err(Error::AlreadyExists { entity, field }) => {
            assert_eq!((entity, field.as_ref()), ("probe", "u"))
        }
        other => panic!("duplicate unique group: {other:?}"),
    }
    store
        .insert(&PROBE, &p, mk("b", Value::Null))
        .await
        .expect("insert");
    let mut steal = mk("b", Value::str("k"));
    steal.version = 2;
    match store.replace(&PROBE, &p, steal, 1).await {
        Err(Error::AlreadyExists { field, .. }) => assert_eq!(field.as_ref(), "u"),
        other => panic!("duplicate unique group on replace: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_round_trip_byte_for_byte() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let store = &scratch.store;
    let p = partition();
    let deep = format!("{}1{}", "{\"a\":".repeat(120), "}".repeat(120));
    let bodies = [
        r#"{"id":"x","n":-3,"f":1.5,"t":true,"z":null,"a":[1,"two",{"k":[]}],"o":{"b":2,"a":1},"u":"ä\u001f\u0000"}"#,
        "[1,2]",
        "\"text\"",
        r#"{"big":18446744073709551615}"#,
        r#"{ "spaced": 1 }"#,
        r#"{"$set":{"a":1}}"#,
        r#"{"a.b":1}"#,
        r#"{"k":{"$oid":"507f1f77bcf86cd799439011"}}"#,
        deep.as_str(),
    ];
    for (n, body) in bodies.iter().enumerate() {
        let mut d = probe_doc(
            &format!("b{n}"),
            Value::Null,
            Value::Null,
            Value::Null,
            &[],
            Value::Null,
            "",
        );
        d.body = (*body).to_owned();
        store.insert(&PROBE, &p, d.clone()).await.expect("insert");
        assert_eq!(
            store.get(&PROBE, &p, &d.id).await.expect("get"),
            Some(d.clone()),
            "{body}"
        );
        d.version = 2;
        store
            .replace(&PROBE, &p, d.clone(), 1)
            .await
            .expect("replace");
        assert_eq!(
            store.get(&PROBE, &p, &d.id).await.expect("get"),
            Some(d),
            "{body}"
        );
    }
    // Plain JSON objects are stored as documents, queryable from the shell.
    let raw = scratch.raw().await;
    let stored = raw
        .collection::<Document>(PROBE.collection)
        .find_one(doc! { "p": p.as_str(), "id": "b0" })
        .await
        .expect("find")
        .expect("stored");
    assert!(
        matches!(stored.get("b"), Some(Bson::Document(_))),
        "{stored}"
    );
    assert_eq!(
        stored.get_document("f").expect("f").get("s"),
        Some(&Bson::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_prefix_separates_deployments() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let prefixed = MongoDocumentStoreBuilder::new(scratch.url.clone(), scratch.database.clone())
        .with_collection_prefix("other_")
        .build()
        .await
        .expect("connect");
    let p = partition();
    let d = probe_doc(
        "same",
        Value::str("a"),
        Value::Int(1),
        Value::Bool(true),
        &["x"],
        Value::str("k"),
        "",
    );
    scratch
        .store
        .insert(&PROBE, &p, d.clone())
        .await
        .expect("insert");
    assert_eq!(prefixed.get(&PROBE, &p, "same").await.expect("get"), None);
    prefixed
        .insert(&PROBE, &p, d)
        .await
        .expect("same id and unique key under another prefix");
    let names = scratch
        .raw()
        .await
        .list_collection_names()
        .await
        .expect("list");
    assert!(
        names.iter().any(|n| n == "other_conformance_probe"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "other_machines"), "{names:?}");
}

// ---- Checks that need no server ----

#[tokio::test]
async fn bad_configuration_is_invalid_input() {
    for (url, database, prefix, field) in [
        ("http://localhost", "db", "", "url"),
        ("mongodb://", "db", "", "url"),
        ("mongodb://localhost", "", "", "database"),
        ("mongodb://localhost", "a.b", "", "database"),
        ("mongodb://localhost", "a/b", "", "database"),
        ("mongodb://localhost", &"x".repeat(64), "", "database"),
        ("mongodb://localhost", "db", "system.", "collection_prefix"),
        ("mongodb://localhost", "db", "a$", "collection_prefix"),
    ] {
        let err = MongoDocumentStoreBuilder::new(url, database)
            .with_collection_prefix(prefix)
            .build()
            .await
            .expect_err("invalid configuration");
        assert!(
            matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
            "{url} {database} {prefix}: {err:?}"
        );
    }
}

#[tokio::test]
async fn connect_errors_never_show_the_credentials() {
    // A URL that does not parse, and a port where nothing listens (short server selection).
    for url in [
        "mongodb://admin:pw-s3cret-42@",
        "mongodb://admin:pw-s3cret-42@127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200",
    ] {
        let err = MongoDocumentStore::connect(url, "db")
            .await
            .expect_err("cannot connect");
        assert!(
            matches!(
                err,
                Error::InvalidInput { .. }
                    | Error::Backend {
                        backend: "mongodb",
                        ..
                    }
            ),
            "{err:?}"
        );
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{:?}", std::error::Error::source(&err)),
        ] {
            assert!(!text.contains("pw-s3cret-42"), "{text}");
        }
    }
}

#[test]
fn builder_debug_redacts_the_url() {
    let builder = MongoDocumentStoreBuilder::new("mongodb://admin:pw-s3cret-42@db:27017", "of");
    let text = format!("{builder:?}");
    assert!(!text.contains("pw-s3cret-42"), "{text}");
    assert!(text.contains("\"of\""), "{text}");
}
