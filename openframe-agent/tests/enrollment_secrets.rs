//! Registration secrets: one active per tenant under concurrency, sealed and bound to their
//! tenant, resolvable only while current, and never printed.

mod support_enrollment;

use std::sync::Arc;

use futures::future::join_all;
use openframe_agent::enrollment::{EnrollmentError, RegistrationSecrets};
use openframe_core::{Error, TenantId, TenantStatus};
use openframe_data::store::Partition;
use openframe_security::crypto::MasterKey;
use serde_json::Value as Json;
use support_enrollment::{Server, schema};

async fn records(server: &Server, tenant: &TenantId) -> Vec<Json> {
    server
        .bodies(
            schema("agent_registration_secrets"),
            &Partition::tenant(tenant),
        )
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

fn active_count(records: &[Json]) -> usize {
    records.iter().filter(|r| r["active"] == true).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_use_agrees_on_one_secret() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    // A fresh tenant without a secret yet.
    let globex = TenantId::parse("globex").unwrap();
    server
        .stack
        .repos
        .tenants
        .insert(openframe_core::Tenant::new(
            globex.clone(),
            "Globex",
            "globex.example",
            openframe_core::Clock::now(server.clock.as_ref()),
        ))
        .await
        .unwrap();
    let secrets = server.service.secrets();
    assert!(matches!(
        secrets.active(&globex).await,
        Err(Error::NotFound { .. })
    ));
    let all = join_all((0..8).map(|_| {
        let (secrets, globex) = (secrets.clone(), globex.clone());
        tokio::spawn(async move { secrets.ensure(&globex).await.unwrap() })
    }))
    .await;
    let first = all[0].as_ref().unwrap().clone();
    for s in &all {
        assert_eq!(s.as_ref().unwrap(), &first);
    }
    assert_eq!(records(&server, &globex).await.len(), 1);
    assert_eq!(secrets.resolve(first.expose()).await.unwrap(), globex);
    // Its key is not acme's, and each resolves to its own tenant.
    assert_ne!(first, acme.key);
    assert_eq!(secrets.resolve(acme.key.expose()).await.unwrap(), acme.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_leave_exactly_one_working_key() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let secrets = server.service.secrets();
    let rotated: Vec<_> = join_all((0..4).map(|_| {
        let (secrets, tenant) = (secrets.clone(), acme.id.clone());
        tokio::spawn(async move { secrets.rotate(&tenant).await.unwrap() })
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let active = secrets.active(&acme.id).await.unwrap();
    assert!(rotated.contains(&active));
    let recs = records(&server, &acme.id).await;
    assert_eq!(recs.len(), 5);
    assert_eq!(active_count(&recs), 1);
    let mut working = 0;
    for key in rotated.iter().chain([&acme.key]) {
        if secrets.resolve(key.expose()).await.is_ok() {
            working += 1;
            assert_eq!(key, &active);
        }
    }
    assert_eq!(working, 1);
    assert_eq!(
        server
            .count(
                schema("agent_registration_secret_lookup"),
                &Partition::platform()
            )
            .await,
        1,
        "retired lookups are deleted"
    );
}

#[tokio::test]
async fn an_interrupted_rotation_still_has_one_valid_key() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let secrets = server.service.secrets();
    // The new secret commits but retiring the old one fails.
    server
        .store
        .fail_replaces_into(Some("agent_registration_secrets"));
    assert!(secrets.rotate(&acme.id).await.is_err());
    server.store.fail_replaces_into(None);
    assert_eq!(active_count(&records(&server, &acme.id).await), 2);
    let current = secrets.active(&acme.id).await.unwrap();
    assert_ne!(current, acme.key);
    assert!(matches!(
        secrets.resolve(acme.key.expose()).await,
        Err(EnrollmentError::InitialKeyInvalid)
    ));
    assert_eq!(secrets.resolve(current.expose()).await.unwrap(), acme.id);
    // The next rotation cleans up.
    let next = secrets.rotate(&acme.id).await.unwrap();
    assert_eq!(active_count(&records(&server, &acme.id).await), 1);
    assert_eq!(secrets.resolve(next.expose()).await.unwrap(), acme.id);
    assert!(secrets.resolve(current.expose()).await.is_err());
}

#[tokio::test]
async fn sealed_secrets_are_bound_to_their_tenant_and_master_key() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let secrets = server.service.secrets();

    // Nothing stored holds the plaintext.
    for (s, p) in [
        ("agent_registration_secrets", Partition::tenant(&acme.id)),
        ("agent_registration_secret_lookup", Partition::platform()),
    ] {
        for body in server.bodies(schema(s), &p).await {
            assert!(!body.contains(acme.key.expose()), "{s}");
        }
    }

    // Acme's sealed record copied into globex's partition (as newest) does not open there.
    let mut doc = server
        .docs(
            schema("agent_registration_secrets"),
            &Partition::tenant(&acme.id),
        )
        .await
        .remove(0);
    let mut body: Json = serde_json::from_str(&doc.body).unwrap();
    body["epoch"] = 99.into();
    doc.body = body.to_string();
    doc.fields[0] = openframe_data::store::Value::Int(99);
    server
        .store
        .put(
            schema("agent_registration_secrets"),
            &Partition::tenant(&globex.id),
            doc,
        )
        .await;
    let leaked = secrets.active(&globex.id).await;
    assert!(matches!(leaked, Err(Error::Internal(_))), "{leaked:?}");
    // ... and acme's key still resolves to acme only.
    assert_eq!(secrets.resolve(acme.key.expose()).await.unwrap(), acme.id);
    // globex's own key is no longer the newest record, so it stops resolving (fail closed).
    assert!(secrets.resolve(globex.key.expose()).await.is_err());

    // Another master key over the same store resolves nothing and opens nothing.
    let other = RegistrationSecrets::new(
        server.store.clone(),
        &MasterKey::generate().unwrap(),
        server.clock.clone(),
    );
    assert!(matches!(
        other.resolve(acme.key.expose()).await,
        Err(EnrollmentError::InitialKeyInvalid)
    ));
    assert!(other.active(&acme.id).await.is_err());
}

#[tokio::test]
async fn unknown_and_inactive_tenants() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let secrets = server.service.secrets();
    let ghost = TenantId::parse("ghost").unwrap();
    assert!(matches!(
        secrets.ensure(&ghost).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        secrets.rotate(&ghost).await,
        Err(Error::NotFound { .. })
    ));
    for blank in ["", "  "] {
        assert!(matches!(
            secrets.resolve(blank).await,
            Err(EnrollmentError::InitialKeyEmpty)
        ));
    }
    server
        .set_tenant_status(&acme.id, TenantStatus::Deleted)
        .await;
    assert!(matches!(
        secrets.resolve(acme.key.expose()).await,
        Err(EnrollmentError::InitialKeyInvalid)
    ));
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let server = Server::start().await;
    let acme = server.tenant("acme").await;
    let c = server.register(&acme, "vm").await;
    let secrets: Arc<RegistrationSecrets> = Arc::new(server.service.secrets().clone());
    let registration = server
        .service
        .reinstall(
            acme.key.expose(),
            c.machine_id.as_str(),
            &c.secret,
            &serde_json::from_value(support_enrollment::agent_body("vm")).unwrap(),
            "127.0.0.1".parse().unwrap(),
        )
        .await
        .unwrap();
    let printed = format!(
        "{:?} {:?} {:?} {:?}",
        secrets,
        server.service,
        registration,
        server.service.secrets().active(&acme.id).await.unwrap()
    );
    assert!(!printed.contains(acme.key.expose()), "{printed}");
    assert!(!printed.contains(&c.secret), "{printed}");
    let err = server
        .service
        .reinstall(
            acme.key.expose(),
            c.machine_id.as_str(),
            "wrong",
            &Default::default(),
            "127.0.0.1".parse().unwrap(),
        )
        .await
        .unwrap_err();
    let shown = format!("{err:?} {err}");
    assert!(
        !shown.contains("wrong") && !shown.contains(acme.key.expose()),
        "{shown}"
    );
}

/// The same lifecycle on SQLite (unique epoch index, epoch sort, platform partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_on_sqlite() {
    use openframe_core::{Clock, SystemClock, Tenant};
    use openframe_data::Repositories;
    use openframe_data::sqlite::SqliteDocumentStore;

    let dir = std::env::temp_dir().join(format!("of-enroll-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(
        SqliteDocumentStore::open(dir.join("db.sqlite"))
            .await
            .unwrap(),
    );
    let repos = Repositories::new(store.clone());
    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    for t in [&acme, &globex] {
        repos
            .tenants
            .insert(Tenant::new(
                t.clone(),
                "T",
                &format!("{t}.example"),
                SystemClock.now(),
            ))
            .await
            .unwrap();
    }
    let secrets = RegistrationSecrets::new(
        store,
        &MasterKey::generate().unwrap(),
        Arc::new(SystemClock),
    );
    let first = secrets.ensure(&acme).await.unwrap();
    let g = secrets.ensure(&globex).await.unwrap();
    let rotated: Vec<_> = join_all((0..4).map(|_| {
        let (secrets, tenant) = (secrets.clone(), acme.clone());
        tokio::spawn(async move { secrets.rotate(&tenant).await.unwrap() })
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let active = secrets.active(&acme).await.unwrap();
    assert!(rotated.contains(&active));
    assert_eq!(secrets.resolve(active.expose()).await.unwrap(), acme);
    assert!(secrets.resolve(first.expose()).await.is_err());
    for old in rotated.iter().filter(|s| **s != active) {
        assert!(secrets.resolve(old.expose()).await.is_err());
    }
    assert_eq!(secrets.resolve(g.expose()).await.unwrap(), globex);
    assert_eq!(secrets.ensure(&globex).await.unwrap(), g);
    let _ = std::fs::remove_dir_all(&dir);
}
