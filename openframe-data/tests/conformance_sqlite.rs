//! The conformance kit against the SQLite document store (a real file in WAL mode, so the
//! reader connections are exercised) and against a private in-memory database.

#![cfg(feature = "sqlite")]

use std::sync::Arc;

use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::DocumentStore;

async fn make_store() -> Option<Arc<dyn DocumentStore>> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("conformance-{}.db", uuid::Uuid::new_v4().simple()));
    Some(Arc::new(
        SqliteDocumentStore::open(path).await.expect("open sqlite"),
    ))
}

async fn make_memory_store() -> Option<Arc<dyn DocumentStore>> {
    Some(Arc::new(
        SqliteDocumentStore::open_in_memory()
            .await
            .expect("open sqlite"),
    ))
}

mod file {
    openframe_data::document_store_conformance!(super::make_store);
}
mod in_memory {
    openframe_data::document_store_conformance!(super::make_memory_store);
}

#[tokio::test]
async fn data_survives_reopen_and_migrations_are_idempotent() {
    use openframe_core::*;
    use openframe_data::{MachineFilter, Repositories};
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("reopen-{}.db", uuid::Uuid::new_v4().simple()));
    let tenant = TenantId::parse("acme").unwrap();
    let id = MachineId::generate();
    {
        let repos = Repositories::new(Arc::new(SqliteDocumentStore::open(&path).await.unwrap()));
        repos
            .machines
            .insert(
                &tenant,
                Machine::new(id.clone(), "db-01", OsType::Linux, SystemClock.now()),
            )
            .await
            .unwrap();
    }
    let repos = Repositories::new(Arc::new(SqliteDocumentStore::open(&path).await.unwrap()));
    assert_eq!(
        repos
            .machines
            .get(&tenant, &id)
            .await
            .unwrap()
            .unwrap()
            .hostname,
        "db-01"
    );
    assert_eq!(
        repos
            .machines
            .count(&tenant, &MachineFilter::default())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn list_queries_use_indexes() {
    // Every list query shape must be served by an index with the partition first.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("plan-{}.db", uuid::Uuid::new_v4().simple()));
    drop(SqliteDocumentStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.join(" | ")
    };
    for (sql, index) in [
        (
            "SELECT id FROM c_machines WHERE p = 'a' AND f_status IN ('ONLINE') ORDER BY f_registered_at DESC, id DESC LIMIT 51",
            "ix_machines_status_registered_at",
        ),
        (
            "SELECT id FROM c_machines WHERE p = 'a' ORDER BY f_registered_at DESC, id DESC LIMIT 51",
            "ix_machines_registered_at",
        ),
        (
            "SELECT id FROM c_machines WHERE p = 'a' ORDER BY f_hostname ASC, id ASC LIMIT 51",
            "ix_machines_hostname",
        ),
        (
            "SELECT id FROM c_machines WHERE p = 'a' AND f_status = 'ONLINE' AND f_last_seen < 5",
            "ix_machines_status_last_seen",
        ),
        (
            "SELECT id FROM c_users WHERE p = 'a' AND f_email_key = 'x'",
            "ux_users_email_key",
        ),
        (
            "SELECT id FROM c_tool_connections WHERE p = 'a' AND f_tool_type = 'X' AND f_agent_tool_id = 'y'",
            "ix_tool_connections_tool_type_agent_tool_id",
        ),
    ] {
        let p = plan(sql);
        assert!(p.contains(index), "{sql}\n  plan: {p}");
        assert!(!p.contains("SCAN c_"), "{sql} scans the table: {p}");
    }
}
