//! The KeyStore conformance kit against `DocumentKeyStore` on the in-memory and SQLite
//! document stores (a real file in WAL mode), plus the at-rest checks on each.
//!
//! MongoDB: `openframe-security` has no `mongodb` feature, so `openframe_data::mongodb` is not
//! compiled into this test; the Mongo run is left to a feature added with the reference server.
//! The test below prints the usual `skipped:` line so the gap is visible.

use std::sync::Arc;

use openframe_core::ManualClock;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::DocumentStore;
use openframe_security::crypto::MasterKey;
use openframe_security::keys::{DocumentKeyStore, KeyPolicy, KeyStore};

fn keystore(store: Arc<dyn DocumentStore>, clock: Arc<ManualClock>) -> Arc<dyn KeyStore> {
    Arc::new(DocumentKeyStore::new(
        store,
        MasterKey::generate().expect("master key"),
        clock,
        KeyPolicy::default(),
    ))
}

async fn memory_store() -> Option<Arc<dyn DocumentStore>> {
    Some(Arc::new(InMemoryDocumentStore::new()))
}

async fn sqlite_store() -> Option<Arc<dyn DocumentStore>> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("keystore-{}.db", uuid::Uuid::new_v4().simple()));
    Some(Arc::new(
        SqliteDocumentStore::open(path).await.expect("open sqlite"),
    ))
}

async fn memory_keystore(clock: Arc<ManualClock>) -> Option<Arc<dyn KeyStore>> {
    Some(keystore(memory_store().await?, clock))
}

async fn sqlite_keystore(clock: Arc<ManualClock>) -> Option<Arc<dyn KeyStore>> {
    Some(keystore(sqlite_store().await?, clock))
}

mod memory {
    openframe_security::keystore_conformance!(super::memory_keystore);
    openframe_security::document_keystore_conformance!(super::memory_store);
}

mod sqlite {
    openframe_security::keystore_conformance!(super::sqlite_keystore);
    openframe_security::document_keystore_conformance!(super::sqlite_store);
}

#[test]
fn mongodb() {
    println!(
        "skipped: set OPENFRAME_TEST_MONGODB_URL and build openframe-data with its `mongodb` feature \
         (openframe-security has no `mongodb` feature yet) to run the KeyStore suite on MongoDB"
    );
}
