//! Certifies the custom backend with the same conformance kit every built-in backend runs,
//! and checks its own promise: every successful write is in the trail, failed ones are not.

use std::sync::Arc;

use example_custom_store::AuditedStore;
use openframe_core::{Clock, Machine, MachineId, OsType, SystemClock, TenantId};
use openframe_data::Repositories;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::store::DocumentStore;

async fn make_store() -> Option<Arc<dyn DocumentStore>> {
    Some(AuditedStore::new(InMemoryDocumentStore::new()))
}

mod kit {
    openframe_data::document_store_conformance!(super::make_store);
}

#[tokio::test]
async fn successful_writes_are_audited_and_failed_ones_are_not() {
    let store = AuditedStore::new(InMemoryDocumentStore::new());
    let repos = Repositories::new(store.clone());
    let tenant = TenantId::parse("acme").unwrap();
    let id = MachineId::generate();
    let machine = Machine::new(id.clone(), "web-01", OsType::Linux, SystemClock.now());
    repos
        .machines
        .insert(&tenant, machine.clone())
        .await
        .unwrap();
    // A duplicate insert fails and must not appear in the trail.
    assert!(repos.machines.insert(&tenant, machine).await.is_err());
    repos.machines.delete(&tenant, &id).await.unwrap(); // soft delete: a replace

    let trail = store.trail();
    let ops: Vec<_> = trail.iter().map(|e| (e.operation, e.collection)).collect();
    assert_eq!(ops, [("insert", "machines"), ("replace", "machines")]);
    assert!(
        trail
            .iter()
            .all(|e| e.partition == "acme" && e.id == id.as_str())
    );
    assert_eq!(trail[1].version, Some(2));
}
