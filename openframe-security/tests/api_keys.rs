//! API keys on the in-memory and SQLite stores: format, authentication, uniform refusals,
//! no secret at rest, regeneration, revocation and tenant isolation; batched usage recording.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openframe_core::{
    ApiKey, ApiKeyId, Clock, Error, ErrorCode, ManualClock, PageRequest, SortField, TenantId,
    UserId,
};
use openframe_data::entity::Entity;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::{DocumentStore, Filter, FindQuery, Partition, SortKey, StoredDoc};
use openframe_data::{ApiKeyFilter, ApiKeyRepository, ApiKeySort, Repositories, UsageDelta};
use openframe_security::api_keys::{
    API_KEY_LEN, ApiKeyCredential, ApiKeyService, CreatedApiKey, FlushReport, UsageRecorder,
};
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

/// A repository decorator that counts `get` and `add_usage` calls and can fail the next few
/// `add_usage` calls with a transient error; everything else goes to the real repository.
#[derive(Debug)]
struct CountingRepo {
    inner: Arc<dyn ApiKeyRepository>,
    get_calls: AtomicUsize,
    add_usage_calls: AtomicUsize,
    fail_next: AtomicUsize,
}

impl CountingRepo {
    fn new(inner: Arc<dyn ApiKeyRepository>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            get_calls: AtomicUsize::new(0),
            add_usage_calls: AtomicUsize::new(0),
            fail_next: AtomicUsize::new(0),
        })
    }

    fn writes(&self) -> usize {
        self.add_usage_calls.load(Ordering::SeqCst)
    }

    fn reads(&self) -> usize {
        self.get_calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ApiKeyRepository for CountingRepo {
    async fn insert(&self, tenant: &TenantId, key: ApiKey) -> openframe_core::Result<ApiKey> {
        self.inner.insert(tenant, key).await
    }
    async fn get(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
    ) -> openframe_core::Result<Option<ApiKey>> {
        self.get_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get(tenant, id).await
    }
    async fn update(&self, tenant: &TenantId, key: ApiKey) -> openframe_core::Result<ApiKey> {
        self.inner.update(tenant, key).await
    }
    async fn add_usage(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        delta: &UsageDelta,
    ) -> openframe_core::Result<ApiKey> {
        self.add_usage_calls.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(Error::Unavailable {
                reason: "injected outage".into(),
            });
        }
        self.inner.add_usage(tenant, id, delta).await
    }
    async fn delete(&self, tenant: &TenantId, id: &ApiKeyId) -> openframe_core::Result<()> {
        self.inner.delete(tenant, id).await
    }
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &ApiKeyFilter,
        sort: openframe_core::SortSpec<ApiKeySort>,
        page: &PageRequest,
    ) -> openframe_core::Result<openframe_core::Page<ApiKey>> {
        self.inner.list(tenant, filter, sort, page).await
    }
    async fn count(&self, tenant: &TenantId, filter: &ApiKeyFilter) -> openframe_core::Result<u64> {
        self.inner.count(tenant, filter).await
    }
}

/// Verified keys are trusted for the cache TTL: storage is read once per key and TTL, the
/// secret and expiry are still checked on every request, changes through the same service
/// apply at once, and changes made elsewhere apply when the TTL runs out.
async fn verified_keys_are_cached_for_the_ttl(f: Fixture) {
    let t = tenant("acme");
    let repo = CountingRepo::new(f.repo.clone());
    let cached = ApiKeyService::new(f.store.clone(), repo.clone(), HMAC_KEY, f.clock.clone())
        .with_auth_cache_ttl(Duration::from_secs(5));
    let key = f.create(&t, &["devices:read"]).await;
    let raw = key.secret.expose();
    for _ in 0..3 {
        let auth = cached.authenticate(raw).await.expect("authenticates");
        assert_eq!((&auth.tenant, &auth.key.id), (&t, &key.key.id));
    }
    assert_eq!(repo.reads(), 1, "one storage read for three requests");

    // A wrong secret for a cached key id is refused without a lookup.
    let (id, _) = halves(raw);
    let wrong = format!("{id}.sk_{}", "0".repeat(32));
    let err = cached.authenticate(&wrong).await.expect_err("wrong secret");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert!(
        cached.authenticate(raw).await.is_ok(),
        "the good entry stays"
    );

    // Disabled through another instance (another replica): seen once the TTL has run out.
    f.service
        .set_enabled(&t, &key.key.id, false)
        .await
        .expect("disable");
    f.clock.advance(Duration::from_secs(4));
    assert!(cached.authenticate(raw).await.is_ok(), "within the TTL");
    f.clock.advance(Duration::from_secs(1));
    let err = cached.authenticate(raw).await.expect_err("TTL over");
    assert_eq!(err.code(), ErrorCode::Unauthorized);

    // Enabled through the caching instance itself: at once, and so is a revocation.
    cached
        .set_enabled(&t, &key.key.id, true)
        .await
        .expect("enable");
    assert!(cached.authenticate(raw).await.is_ok());
    cached.revoke(&t, &key.key.id).await.expect("revoke");
    let err = cached.authenticate(raw).await.expect_err("revoked");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
}

/// Expiry is checked against the clock on every request, cached or not.
async fn a_cached_key_expires_on_time(f: Fixture) {
    let t = tenant("acme");
    let cached = ApiKeyService::new(f.store.clone(), f.repo.clone(), HMAC_KEY, f.clock.clone())
        .with_auth_cache_ttl(Duration::from_secs(3600));
    let expires = f.clock.now() + chrono::Duration::seconds(10);
    let key = cached
        .create(&t, UserId::generate(), "short", vec![], Some(expires))
        .await
        .expect("create");
    assert!(cached.authenticate(key.secret.expose()).await.is_ok());
    f.clock.advance(Duration::from_secs(10));
    let err = cached
        .authenticate(key.secret.expose())
        .await
        .expect_err("expired");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
}

/// With a zero TTL every request reads storage.
async fn a_zero_auth_cache_ttl_reads_storage_every_time(f: Fixture) {
    let t = tenant("acme");
    let repo = CountingRepo::new(f.repo.clone());
    let uncached = ApiKeyService::new(f.store.clone(), repo.clone(), HMAC_KEY, f.clock.clone())
        .with_auth_cache_ttl(Duration::ZERO);
    let key = f.create(&t, &[]).await;
    for _ in 0..3 {
        assert!(uncached.authenticate(key.secret.expose()).await.is_ok());
    }
    assert_eq!(repo.reads(), 3);
    f.service.revoke(&t, &key.key.id).await.expect("revoke");
    assert!(uncached.authenticate(key.secret.expose()).await.is_err());
}

/// `(total, failed, last_used_at)` of a stored key.
async fn usage_of(
    repo: &dyn ApiKeyRepository,
    t: &TenantId,
    id: &ApiKeyId,
) -> (u64, u64, Option<openframe_core::Timestamp>) {
    let k = repo.get(t, id).await.expect("get").expect("exists");
    (k.total_requests, k.failed_requests, k.last_used_at)
}

async fn recorder_writes_one_delta_per_key_per_flush(f: Fixture) {
    let (a, b) = (tenant("acme"), tenant("beta"));
    let (ka, kb) = (
        f.create(&a, &[]).await.key.id,
        f.create(&b, &[]).await.key.id,
    );
    let counting = CountingRepo::new(f.repo.clone());
    let recorder = UsageRecorder::with_interval(counting.clone(), Duration::ZERO);
    let base = f.clock.now();
    // 4 concurrent recorders (clones), 250 requests each on each key; every 5th fails.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (recorder, a, b, ka, kb) = (
                recorder.clone(),
                a.clone(),
                b.clone(),
                ka.clone(),
                kb.clone(),
            );
            tokio::spawn(async move {
                for j in 0..250 {
                    let at = base + chrono::Duration::seconds(j);
                    recorder.record(&a, &ka, j % 5 == 0, at);
                    recorder.record(&b, &kb, j % 5 == 4, at);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(counting.writes(), 0, "recording does not write");
    assert_eq!(recorder.pending_keys(), 2);
    assert_eq!(usage_of(&*f.repo, &a, &ka).await, (0, 0, None));

    let report = recorder.flush().await;
    assert_eq!(
        report,
        FlushReport {
            written: 2,
            requeued: 0,
            dropped: 0
        }
    );
    assert_eq!(counting.writes(), 2, "one write per key per flush");
    let at = |s: i64| Some(base + chrono::Duration::seconds(s));
    // Key A's last success is at 249; key B's 249th request failed, so its last use is 248.
    assert_eq!(usage_of(&*f.repo, &a, &ka).await, (1000, 200, at(249)));
    assert_eq!(usage_of(&*f.repo, &b, &kb).await, (1000, 200, at(248)));

    assert_eq!(recorder.flush().await, FlushReport::default());
    assert_eq!(counting.writes(), 2, "nothing pending, nothing written");
    recorder.record(&a, &ka, false, base);
    recorder.flush().await;
    assert_eq!(counting.writes(), 3);
    assert_eq!(
        usage_of(&*f.repo, &a, &ka).await,
        (1001, 200, at(249)),
        "an older use does not move last_used_at back"
    );
}

async fn recorder_keeps_usage_on_transient_errors(f: Fixture) {
    let t = tenant("acme");
    let id = f.create(&t, &[]).await.key.id;
    let counting = CountingRepo::new(f.repo.clone());
    let recorder = UsageRecorder::with_interval(counting.clone(), Duration::ZERO);
    let now = f.clock.now();
    for i in 0..3 {
        recorder.record(&t, &id, i == 0, now);
    }
    counting.fail_next.store(1, Ordering::SeqCst);
    let report = recorder.flush().await;
    assert_eq!(
        report,
        FlushReport {
            written: 0,
            requeued: 1,
            dropped: 0
        }
    );
    assert_eq!(usage_of(&*f.repo, &t, &id).await, (0, 0, None));
    assert_eq!(recorder.pending_keys(), 1, "put back for the next flush");
    f.clock.advance(Duration::from_secs(5));
    recorder.record(&t, &id, false, f.clock.now());
    recorder.record(&t, &id, true, f.clock.now());
    let report = recorder.flush().await;
    assert_eq!(report.written, 1);
    assert_eq!(counting.writes(), 2);
    assert_eq!(
        usage_of(&*f.repo, &t, &id).await,
        (5, 2, Some(f.clock.now())),
        "nothing lost across the outage"
    );
}

async fn recorder_drops_usage_of_deleted_and_foreign_keys(f: Fixture) {
    let (a, b) = (tenant("acme"), tenant("beta"));
    let (ka, gone) = (
        f.create(&a, &[]).await.key.id,
        f.create(&a, &[]).await.key.id,
    );
    let recorder = UsageRecorder::with_interval(f.repo.clone(), Duration::ZERO);
    let now = f.clock.now();
    recorder.record(&a, &ka, false, now);
    recorder.record(&a, &gone, false, now);
    // Tenant B naming A's key: NotFound in B, so dropped; A's key is untouched by it.
    recorder.record(&b, &ka, false, now);
    f.service.revoke(&a, &gone).await.expect("revoke");
    let report = recorder.flush().await;
    assert_eq!(
        report,
        FlushReport {
            written: 1,
            requeued: 0,
            dropped: 2
        }
    );
    assert_eq!(recorder.pending_keys(), 0);
    assert_eq!(usage_of(&*f.repo, &a, &ka).await, (1, 0, Some(now)));
    assert_eq!(f.repo.get(&b, &ka).await.expect("get"), None);
}

async fn recorder_flushes_in_the_background(f: Fixture) {
    let t = tenant("acme");
    let id = f.create(&t, &[]).await.key.id;
    let recorder = UsageRecorder::with_interval(f.repo.clone(), Duration::from_millis(20));
    for _ in 0..10 {
        recorder.record(&t, &id, false, f.clock.now());
    }
    let repo = f.repo.clone();
    // Waits for the background task (real time: the flusher's timer, not an expiry).
    tokio::time::timeout(Duration::from_secs(10), async {
        while usage_of(&*repo, &t, &id).await.0 < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the background task flushed");
    assert_eq!(
        usage_of(&*f.repo, &t, &id).await,
        (10, 0, Some(f.clock.now()))
    );
    assert_eq!(recorder.pending_keys(), 0);
}

async fn service_recorder_counts_authenticated_use(f: Fixture) {
    let t = tenant("acme");
    let key = f.create(&t, &[]).await;
    let recorder = f.service.usage_recorder().clone();
    for i in 0..7 {
        let auth = f
            .service
            .authenticate(key.secret.expose())
            .await
            .expect("auth");
        recorder.record(&auth.tenant, &auth.key.id, i == 6, f.clock.now());
    }
    f.service.usage_recorder().flush().await;
    assert_eq!(
        usage_of(&*f.repo, &t, &key.key.id).await,
        (7, 1, Some(f.clock.now()))
    );
}

/// Built and fed outside any runtime (no background task yet), flushed inside one.
#[test]
fn recorder_works_outside_a_runtime() {
    let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
    let recorder = UsageRecorder::new(repos.api_keys.clone());
    let t = tenant("acme");
    let key = ApiKey::new(
        "ci",
        UserId::generate(),
        vec![],
        ManualClock::default().now(),
    );
    recorder.record(&t, &key.id, false, key.created_at);
    recorder.record(&t, &key.id, true, key.created_at);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        repos
            .api_keys
            .insert(&t, key.clone())
            .await
            .expect("insert");
        assert_eq!(recorder.flush().await.written, 1);
        assert_eq!(
            usage_of(&*repos.api_keys, &t, &key.id).await,
            (2, 1, Some(key.created_at))
        );
    });
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
    recorder_writes_one_delta_per_key_per_flush,
    recorder_keeps_usage_on_transient_errors,
    recorder_drops_usage_of_deleted_and_foreign_keys,
    recorder_flushes_in_the_background,
    service_recorder_counts_authenticated_use,
    verified_keys_are_cached_for_the_ttl,
    a_cached_key_expires_on_time,
    a_zero_auth_cache_ttl_reads_storage_every_time,
);
