//! The KeyStore conformance kit against `DocumentKeyStore` on the in-memory and SQLite
//! document stores (a real file in WAL mode), plus the at-rest checks on each; and on MongoDB
//! (feature `mongodb`) when `OPENFRAME_TEST_MONGODB_URL` is set.

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

#[cfg(feature = "mongodb")]
async fn mongo_store() -> Option<Arc<dyn DocumentStore>> {
    let Ok(url) = std::env::var("OPENFRAME_TEST_MONGODB_URL") else {
        println!("skipped: set OPENFRAME_TEST_MONGODB_URL to run the KeyStore suite on MongoDB");
        return None;
    };
    let db = format!("openframe_test_{}", uuid::Uuid::new_v4().simple());
    Some(Arc::new(
        openframe_data::mongodb::MongoDocumentStore::connect(&url, &db)
            .await
            .expect("connect to MongoDB"),
    ))
}

#[cfg(feature = "mongodb")]
async fn mongo_keystore(clock: Arc<ManualClock>) -> Option<Arc<dyn KeyStore>> {
    Some(keystore(mongo_store().await?, clock))
}

#[cfg(feature = "mongodb")]
mod mongodb {
    openframe_security::keystore_conformance!(super::mongo_keystore);
    openframe_security::document_keystore_conformance!(super::mongo_store);
}

#[cfg(not(feature = "mongodb"))]
#[test]
fn mongodb() {
    println!(
        "skipped: build with --features mongodb and set OPENFRAME_TEST_MONGODB_URL to run the KeyStore suite on MongoDB"
    );
}

#[tokio::test]
async fn scheduled_rotation_rotates_due_tenants_once() {
    use openframe_core::{Clock, Tenant, TenantId};
    use openframe_data::DistributedLock;
    use openframe_data::Repositories;
    use openframe_data::memory::InMemoryLock;
    use openframe_security::keys::KeyRotationJob;

    let clock = Arc::new(ManualClock::new(openframe_core::SystemClock.now()));
    let store: Arc<dyn DocumentStore> = Arc::new(InMemoryDocumentStore::new());
    let repos = Repositories::with_clock(store.clone(), clock.clone());
    let keys = keystore(store, clock.clone());
    let mut tenants = Vec::new();
    for i in 0..3 {
        let id = TenantId::parse(format!("rot{i}")).unwrap();
        repos
            .tenants
            .insert(Tenant::new(
                id.clone(),
                "T",
                &format!("rot{i}.example"),
                clock.now(),
            ))
            .await
            .unwrap();
        tenants.push((id.clone(), keys.signing_key(&id).await.unwrap().kid.clone()));
    }
    let lock = Arc::new(InMemoryLock::new(clock.clone()));
    let job = KeyRotationJob::new(keys.clone(), repos.tenants.clone(), lock.clone());
    assert_eq!(job.run_once().await.unwrap(), Some(0), "nothing is due yet");
    clock.advance(std::time::Duration::from_secs(120));
    // Another replica holds the lock: this pass does nothing.
    let held = lock
        .try_acquire(
            openframe_security::keys::ROTATION_LOCK,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.run_once().await.unwrap(), None);
    lock.release(&held, std::time::Duration::ZERO)
        .await
        .unwrap();
    clock.advance(keys.policy().rotation_period);
    assert_eq!(
        job.run_once().await.unwrap(),
        Some(3),
        "every tenant rotates once"
    );
    for (tenant, old_kid) in &tenants {
        let new_kid = keys.signing_key(tenant).await.unwrap().kid.clone();
        assert_ne!(&new_kid, old_kid);
        assert!(
            keys.verification_key(tenant, old_kid)
                .await
                .unwrap()
                .is_some(),
            "the old key stays published"
        );
    }
    clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(job.run_once().await.unwrap(), Some(0), "not due again");
}
