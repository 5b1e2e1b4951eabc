//! Run with: cargo run -p example-custom-store
//!
//! Puts the repositories on a custom backend ([`AuditedStore`] over SQLite) and prints the
//! audit trail of a few writes.

use example_custom_store::AuditedStore;
use openframe_core::{Clock, Machine, MachineId, Organization, OsType, SystemClock, TenantId};
use openframe_data::Repositories;
use openframe_data::sqlite::SqliteDocumentStore;

#[tokio::main]
async fn main() -> openframe_core::Result<()> {
    let path = std::env::temp_dir().join(format!("example-custom-store-{}.db", std::process::id()));
    let store = AuditedStore::new(SqliteDocumentStore::open(&path).await?);
    let repos = Repositories::new(store.clone());

    let tenant = TenantId::parse("acme")?;
    let now = SystemClock.now();
    let org = repos
        .organizations
        .insert(&tenant, Organization::new("Acme HQ", now))
        .await?;
    let mut machine = Machine::new(MachineId::generate(), "web-01", OsType::Linux, now);
    machine.organization_id = Some(org.id.clone());
    let machine = repos.machines.insert(&tenant, machine).await?;
    // A soft delete: the repository marks the machine DELETED (a versioned replace).
    repos.machines.delete(&tenant, &machine.id).await?;

    for entry in store.trail() {
        println!(
            "{:<8} {:<14} tenant={:<6} id={} version={:?}",
            entry.operation, entry.collection, entry.partition, entry.id, entry.version
        );
    }
    drop(repos);
    let _ = std::fs::remove_file(&path);
    Ok(())
}
