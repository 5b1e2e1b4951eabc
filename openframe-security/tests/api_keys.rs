//! API keys on the in-memory and SQLite stores: format, authentication, uniform refusals,
//! no secret at rest, regeneration, revocation and tenant isolation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openframe_core::{
    ApiKey, ApiKeyId, Clock, Error, ErrorCode, ManualClock, PageRequest, SortField, TenantId,
    UserId,
};
use openframe_data::entity::Entity;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::{DocumentStore, Filter, FindQuery, Partition, SortKey, StoredDoc};
use openframe_data::{ApiKeyFilter, ApiKeyRepository, ApiKeySort, Repositories};
use openframe_security::api_keys::{API_KEY_LEN, ApiKeyCredential, ApiKeyService, CreatedApiKey};
use sha2::Digest;

const HMAC_KEY: [u8; 32] = [0x5a; 32];

/// A service over one store, with the clock it follows.
struct Fixture {
    store: Arc<dyn DocumentStore>,
    repo: Arc<dyn ApiKeyRepository>,
    service: ApiKeyService,
    clock: Arc<ManualClock>,
    _file: Option<TempDb>,
}

impl Fixture {
    fn new(store: Arc<dyn DocumentStore>, file: Option<TempDb>) -> Self {
        let clock = Arc::new(ManualClock::default());
        let repo = Repositories::with_clock(store.clone(), clock.clone()).api_keys;
        let service = ApiKeyService::new(store.clone(), repo.clone(), HMAC_KEY, clock.clone());
        Self {
            store,
            repo,
            service,
            clock,
            _file: file,
        }
    }

    async fn create(&self, tenant: &TenantId, scopes: &[&str]) -> CreatedApiKey {
        self.service
            .create(
                tenant,
                UserId::generate(),
                "ci pipeline",
                scopes.iter().map(|s| (*s).to_owned()).collect(),
                None,
            )
            .await
            .expect("create")
    }

    /// Every stored document of both collections, across the platform and `tenants`.
    async fn all_docs(&self, tenants: &[&TenantId]) -> Vec<StoredDoc> {
        let query = FindQuery {
            filter: Filter::and(vec![]),
            sort: vec![(SortKey::Id, openframe_core::SortDirection::Asc)],
            limit: 10_000,
        };
        let mut docs = self
            .store
            .find(ApiKeyCredential::SCHEMA, &Partition::platform(), &query)
            .await
            .expect("find credentials");
        for t in tenants {
            docs.extend(
                self.store
                    .find(ApiKey::SCHEMA, &Partition::tenant(t), &query)
                    .await
                    .expect("find keys"),
            );
        }
        docs
    }

    async fn credential_doc(&self, id: &ApiKeyId) -> Option<StoredDoc> {
        self.store
            .get(
                ApiKeyCredential::SCHEMA,
                &Partition::platform(),
                id.as_str(),
            )
            .await
            .expect("get credential")
    }
}

/// A SQLite file in the target's temp dir, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn memory() -> Fixture {
    Fixture::new(Arc::new(InMemoryDocumentStore::new()), None)
}

async fn sqlite() -> Fixture {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("api-keys-{:016x}.sqlite", rand::random::<u64>()));
    let file = TempDb(path.clone());
    let store = SqliteDocumentStore::open(&path).await.expect("open sqlite");
    Fixture::new(Arc::new(store), Some(file))
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(format!("{name}{:08x}", rand::random::<u32>())).expect("tenant")
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Splits a full key into its id (`ak_...`) and secret hex (after `sk_`).
fn halves(full: &str) -> (&str, &str) {
    let (id, secret) = full.split_once(".sk_").expect("a dot and sk_");
    (id, secret)
}

// ---- checks, run on every store ----

async fn created_keys_have_the_original_format(f: Fixture) {
    let t = tenant("acme");
    let owner = UserId::generate();
    let expires = f.clock.now() + chrono::Duration::days(30);
    let created = f
        .service
        .create(
            &t,
            owner.clone(),
            "ci pipeline",
            vec!["devices:read".into(), "tools:*".into()],
            Some(expires),
        )
        .await
        .expect("create");
    let full = created.secret.expose();
    assert_eq!(full.len(), API_KEY_LEN);
    assert_eq!(full.len(), 55);
    let (id, secret) = halves(full);
    let id_hex = id.strip_prefix("ak_").expect("ak_ prefix");
    assert_eq!(id_hex.len(), 16);
    assert!(is_lower_hex(id_hex), "{id_hex}");
    assert_eq!(secret.len(), 32);
    assert!(is_lower_hex(secret));
    assert_eq!(created.key.id.as_str(), id);

    assert_eq!(created.key.name, "ci pipeline");
    assert_eq!(created.key.user_id, owner);
    assert_eq!(created.key.scopes, ["devices:read", "tools:*"]);
    assert_eq!(created.key.expires_at, Some(expires));
    assert!(created.key.enabled);
    let stored = f.repo.get(&t, &created.key.id).await.expect("get");
    assert_eq!(stored.as_ref(), Some(&created.key));

    let debug = format!("{created:?}");
    assert!(!debug.contains(secret), "{debug}");

    let other = f.create(&t, &[]).await;
    assert_ne!(other.key.id, created.key.id);
    assert_ne!(halves(other.secret.expose()).1, secret);
}

async fn authenticate_resolves_tenant_key_and_scopes(f: Fixture) {
    let t = tenant("acme");
    let created = f.create(&t, &["devices:read", "tools:*"]).await;
    let auth = f
        .service
        .authenticate(created.secret.expose())
        .await
        .expect("authenticates");
    assert_eq!(auth.tenant, t);
    assert_eq!(auth.key.id, created.key.id);
    assert_eq!(auth.key.user_id, created.key.user_id);
    assert!(auth.has_scope("devices:read"));
    assert!(auth.has_scope("tools:install"));
    assert!(!auth.has_scope("devices:write"));
    assert!(!auth.has_scope("tools"));
    assert!(!auth.has_scope(""));

    let id = &created.key.id;
    let used = f.service.record_usage(&t, id, false).await.expect("usage");
    assert_eq!(
        (used.total_requests, used.failed_requests),
        (1, 0),
        "counted"
    );
    assert_eq!(used.last_used_at, Some(f.clock.now()));
    f.clock.advance(Duration::from_secs(5));
    let used = f.service.record_usage(&t, id, true).await.expect("usage");
    assert_eq!((used.total_requests, used.failed_requests), (2, 1));
    assert_eq!(
        used.last_used_at,
        Some(f.clock.now() - chrono::Duration::seconds(5)),
        "a failure is not a use"
    );
    let admin = f.create(&t, &["*"]).await;
    let auth = f
        .service
        .authenticate(admin.secret.expose())
        .await
        .expect("authenticates");
    assert!(auth.has_scope("anything:at-all"));
}

async fn stored_records_hold_no_secret(f: Fixture) {
    let t = tenant("acme");
    let created = f.create(&t, &["devices:read"]).await;
    let full = created.secret.expose().to_owned();
    let (id, secret) = halves(&full);
    let sha = format!("{:x}", sha2::Sha256::digest(secret.as_bytes()));
    let sha_full = format!("{:x}", sha2::Sha256::digest(full.as_bytes()));
    let needles = [
        full.as_str(),
        &format!("sk_{secret}"),
        secret,
        &secret[..16],
        &secret[16..],
        &sha,
        &sha_full,
    ];

    let docs = f.all_docs(&[&t]).await;
    assert_eq!(docs.len(), 2, "one credential and one metadata document");
    let credential = f
        .credential_doc(&created.key.id)
        .await
        .expect("credential stored under the key id");
    assert!(credential.body.contains(t.as_str()), "names the tenant");
    assert!(docs.iter().all(|d| d.id == id));
    for doc in &docs {
        let raw = format!("{doc:?}");
        for needle in needles {
            assert!(!raw.contains(needle), "{needle} found in {raw}");
        }
    }

    // The hash is keyed: a service with another HMAC key refuses the same key.
    let other = ApiKeyService::new(f.store.clone(), f.repo.clone(), [0x11; 32], f.clock.clone());
    let err = other.authenticate(&full).await.expect_err("another key");
    assert!(matches!(err, Error::Unauthenticated));
    // And the service's own Debug shows neither key material nor hashes.
    let debug = format!("{:?}", f.service);
    assert!(
        !debug.contains("5a5a") && !debug.contains("90, 90"),
        "{debug}"
    );
}

async fn every_refusal_is_the_same_error(f: Fixture) {
    let t = tenant("acme");
    let good = f.create(&t, &[]).await;
    let full = good.secret.expose().to_owned();
    let (id, secret) = halves(&full);

    let disabled = f.create(&t, &[]).await;
    f.service
        .set_enabled(&t, &disabled.key.id, false)
        .await
        .expect("disable");
    let expiring = f
        .service
        .create(
            &t,
            UserId::generate(),
            "short-lived",
            vec![],
            Some(f.clock.now() + chrono::Duration::hours(1)),
        )
        .await
        .expect("create");
    let other = f.create(&t, &[]).await;
    let (other_id, other_secret) = halves(other.secret.expose());
    let other_id = other_id.to_owned();
    let other_secret = other_secret.to_owned();

    let mut wrong_secret = secret.to_owned();
    let last = if wrong_secret.ends_with('0') {
        "1"
    } else {
        "0"
    };
    wrong_secret.replace_range(31.., last);
    let mut cases: Vec<(&str, String)> = vec![
        ("wrong secret", format!("{id}.sk_{wrong_secret}")),
        (
            "unknown key",
            format!("ak_{:016x}.sk_{secret}", rand::random::<u64>()),
        ),
        ("another key's secret", format!("{id}.sk_{other_secret}")),
        ("my secret on another id", format!("{other_id}.sk_{secret}")),
        ("disabled", disabled.secret.expose().to_owned()),
        ("empty", String::new()),
        ("no dot", full.replace('.', "")),
        ("id only", id.to_owned()),
        ("secret only", format!("sk_{secret}")),
        ("wrong key prefix", full.replacen("ak_", "pk_", 1)),
        ("wrong secret prefix", full.replacen(".sk_", ".pk_", 1)),
        ("other separator", full.replacen(".sk_", ":sk_", 1)),
        ("non-hex", format!("{id}.sk_g{}", &secret[1..])),
        ("uppercase", full.to_uppercase()),
        (
            "uppercase hex",
            format!("{id}.sk_{}", secret.to_uppercase()),
        ),
        ("leading space", format!(" {full}")),
        ("trailing newline", format!("{full}\n")),
        ("bearer", format!("Bearer {full}")),
        (
            "too long (10 KB)",
            format!("{full}{}", "a".repeat(10 * 1024)),
        ),
        ("only 10 KB", "a".repeat(10 * 1024)),
        (
            "unicode, same length",
            format!("ak_{}é.sk_{secret}", &id[3..17]),
        ),
        ("unicode", format!("ключ_{full}")),
        ("nul byte", format!("{id}.sk_{}\0", &secret[..31])),
    ];
    // Expire the short-lived key only now, so the cases above were built while it was valid.
    assert!(
        f.service
            .authenticate(expiring.secret.expose())
            .await
            .is_ok()
    );
    f.clock.advance(Duration::from_secs(3600));
    cases.push(("expired", expiring.secret.expose().to_owned()));

    let reference = f
        .service
        .authenticate("")
        .await
        .expect_err("empty is refused");
    let now = f.clock.now();
    for (what, raw) in &cases {
        let err = f
            .service
            .authenticate(raw)
            .await
            .expect_err(&format!("{what} must be refused"));
        assert!(matches!(err, Error::Unauthenticated), "{what}: {err:?}");
        assert_eq!(err.code(), ErrorCode::Unauthorized, "{what}");
        assert_eq!(err.to_string(), reference.to_string(), "{what}");
        assert_eq!(format!("{err:?}"), format!("{reference:?}"), "{what}");
        assert_eq!(err.to_response(now), reference.to_response(now), "{what}");
    }
    // The good key still works after all that.
    assert!(f.service.authenticate(&full).await.is_ok());
}

async fn regenerate_replaces_the_key(f: Fixture) {
    let t = tenant("acme");
    let old = f.create(&t, &["devices:read"]).await;
    f.clock.advance(Duration::from_secs(60));
    let new = f
        .service
        .regenerate(&t, &old.key.id)
        .await
        .expect("regenerate");
    assert_ne!(new.key.id, old.key.id);
    assert_ne!(new.secret, old.secret);
    assert_eq!(new.key.name, old.key.name);
    assert_eq!(new.key.scopes, old.key.scopes);
    assert_eq!(new.key.user_id, old.key.user_id);
    assert_eq!(new.key.expires_at, old.key.expires_at);

    let err = f
        .service
        .authenticate(old.secret.expose())
        .await
        .expect_err("the old key stops working");
    assert!(matches!(err, Error::Unauthenticated));
    let auth = f
        .service
        .authenticate(new.secret.expose())
        .await
        .expect("the new key works");
    assert_eq!((auth.tenant, auth.key.id), (t.clone(), new.key.id.clone()));
    assert_eq!(f.repo.get(&t, &old.key.id).await.expect("get"), None);
    assert!(f.credential_doc(&old.key.id).await.is_none());
    assert_eq!(f.all_docs(&[&t]).await.len(), 2);
    // The old id cannot be regenerated again.
    let err = f
        .service
        .regenerate(&t, &old.key.id)
        .await
        .expect_err("gone");
    assert_eq!(err.code(), ErrorCode::NotFound);
}

async fn revoke_and_disable(f: Fixture) {
    let t = tenant("acme");
    let key = f.create(&t, &[]).await;
    let id = &key.key.id;

    let off = f.service.set_enabled(&t, id, false).await.expect("disable");
    assert!(!off.enabled);
    assert!(f.service.authenticate(key.secret.expose()).await.is_err());
    let on = f.service.set_enabled(&t, id, true).await.expect("enable");
    assert!(on.enabled);
    assert!(f.service.authenticate(key.secret.expose()).await.is_ok());

    let keep = f.create(&t, &[]).await;
    f.service.revoke(&t, id).await.expect("revoke");
    assert!(f.service.authenticate(key.secret.expose()).await.is_err());
    assert_eq!(f.repo.get(&t, id).await.expect("get"), None);
    assert!(f.credential_doc(id).await.is_none());
    let err = f.service.revoke(&t, id).await.expect_err("already revoked");
    assert_eq!(err.code(), ErrorCode::NotFound);
    let err = f
        .service
        .set_enabled(&t, id, true)
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(
        f.service.authenticate(keep.secret.expose()).await.is_ok(),
        "other keys are untouched"
    );
}

async fn tenants_are_isolated(f: Fixture) {
    let (a, b) = (tenant("a"), tenant("b"));
    let key_a = f.create(&a, &["*"]).await;
    let key_b = f.create(&b, &["*"]).await;
    let id = &key_a.key.id;

    let code = |e: Error| e.code();
    let refusals = [
        f.service.revoke(&b, id).await.err().map(code),
        f.service.regenerate(&b, id).await.err().map(code),
        f.service.set_enabled(&b, id, false).await.err().map(code),
        f.service.record_usage(&b, id, false).await.err().map(code),
    ];
    assert_eq!(
        refusals,
        [Some(ErrorCode::NotFound); 4],
        "revoke, regenerate, set_enabled, record_usage"
    );
    assert_eq!(f.repo.get(&b, id).await.expect("get"), None);
    let page = f
        .repo
        .list(
            &b,
            &ApiKeyFilter::default(),
            ApiKeySort::default_sort(),
            &PageRequest::default(),
        )
        .await
        .expect("list");
    assert_eq!(page.edges.len(), 1, "B sees only its own key");
    assert_eq!(page.edges[0].node.id, key_b.key.id);

    let auth = f
        .service
        .authenticate(key_a.secret.expose())
        .await
        .expect("A's key still works");
    assert_eq!(auth.tenant, a);
    assert!(auth.key.enabled, "B could not disable it");
    assert_eq!(auth.key.total_requests, 0, "B could not count on it");
    let auth = f
        .service
        .authenticate(key_b.secret.expose())
        .await
        .expect("B's key works");
    assert_eq!(auth.tenant, b);
}

async fn invalid_input_is_rejected_and_stores_nothing(f: Fixture) {
    let t = tenant("acme");
    let past = f.clock.now() - chrono::Duration::seconds(1);
    let now = f.clock.now();
    let user = UserId::generate;
    let long_name = "n".repeat(256);
    let too_many: Vec<String> = (0..101).map(|i| format!("s{i}:read")).collect();
    let cases: Vec<(&str, &str, Vec<String>, Option<openframe_core::Timestamp>)> = vec![
        ("name", "  ", vec![], None),
        ("name", &long_name, vec![], None),
        ("scopes", "ok", vec!["Devices:Read".into()], None),
        ("scopes", "ok", vec!["devices:*:read".into()], None),
        ("scopes", "ok", vec![String::new()], None),
        ("scopes", "ok", too_many, None),
        ("expiresAt", "ok", vec![], Some(past)),
        ("expiresAt", "ok", vec![], Some(now)),
    ];
    for (field, name, scopes, expires) in cases {
        let err = f
            .service
            .create(&t, user(), name, scopes, expires)
            .await
            .expect_err(field);
        assert_eq!(err.code(), ErrorCode::ValidationError, "{field}: {err:?}");
        assert_eq!(err.field(), Some(field));
    }
    assert!(
        f.all_docs(&[&t]).await.is_empty(),
        "nothing stored for refused input"
    );
}

async fn concurrent_authentication_and_usage(f: Fixture) {
    let t = tenant("acme");
    let key = f.create(&t, &[]).await;
    let service = Arc::new(f.service);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (service, t, secret) = (service.clone(), t.clone(), key.secret.clone());
            tokio::spawn(async move {
                let auth = service.authenticate(secret.expose()).await?;
                service.record_usage(&t, &auth.key.id, i % 4 == 0).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("authenticate and count");
    }
    let stored = f
        .repo
        .get(&t, &key.key.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((stored.total_requests, stored.failed_requests), (20, 5));
}

macro_rules! on_every_store {
    ($($check:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::memory().await).await;
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::sqlite().await).await;
                }
            )+
        }
    };
}

on_every_store!(
    created_keys_have_the_original_format,
    authenticate_resolves_tenant_key_and_scopes,
    stored_records_hold_no_secret,
    every_refusal_is_the_same_error,
    regenerate_replaces_the_key,
    revoke_and_disable,
    tenants_are_isolated,
    invalid_input_is_rejected_and_stores_nothing,
    concurrent_authentication_and_usage,
);
