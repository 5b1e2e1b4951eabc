//! Accounts: sign-up, login throttling, credential storage, invitations, password reset and
//! tenant isolation, run on the in-memory and the SQLite document stores.

use std::fmt::Debug;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{
    Clock, Error, ManualClock, PageRequest, Result, Secret, SortDirection, TenantId, User, UserId,
    UserRole, UserStatus,
};
use openframe_data::entity::Entity;
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::{
    DocumentStore, Filter, FindQuery, Partition, Schema, SortKey, StoredDoc, Value,
};
use openframe_data::{OrganizationFilter, Repositories, UserFilter, builtin_schemas};
use openframe_security::accounts::{
    AGENT_ROLE, AccountConfig, AccountService, Argon2Params, Invitation, InvitationStatus, SignUp,
    roles_claim, schemas,
};
use openframe_security::ratelimit::memory::InMemoryRateLimiter;
use openframe_security::ratelimit::{Decision, Quota, RateLimitKey, RateLimiter};

const PW: &str = "correct Horse battery 1";
const PW2: &str = "another Fine passphrase 2";

// ---------------------------------------------------------------------------------------------
// Harness

/// The in-memory limiter, recording which keys were checked and reset.
#[derive(Debug)]
struct SpyLimiter {
    inner: InMemoryRateLimiter,
    checked: Mutex<Vec<String>>,
    resets: Mutex<Vec<String>>,
}

impl SpyLimiter {
    /// Whether `key` is in the `log` (`checked` or `resets`).
    fn saw(&self, log: &Mutex<Vec<String>>, key: &str) -> bool {
        log.lock().unwrap().iter().any(|k| k == key)
    }
}

#[async_trait]
impl RateLimiter for SpyLimiter {
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision> {
        self.checked.lock().unwrap().push(key.as_str().to_owned());
        self.inner.check(key, quotas).await
    }
    async fn reset(&self, key: &RateLimitKey) -> Result<()> {
        self.resets.lock().unwrap().push(key.as_str().to_owned());
        self.inner.reset(key).await
    }
}

/// A store that fails inserts into one chosen collection, to test that multi-step
/// operations undo their earlier writes.
#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn DocumentStore>,
    fail_inserts_into: Mutex<Option<&'static str>>,
}

impl FaultyStore {
    fn fail_inserts_into(&self, collection: Option<&'static str>) {
        *self.fail_inserts_into.lock().unwrap() = collection;
    }
}

#[async_trait]
impl DocumentStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn get(&self, s: &'static Schema, p: &Partition, id: &str) -> Result<Option<StoredDoc>> {
        self.inner.get(s, p, id).await
    }
    async fn get_many(
        &self,
        s: &'static Schema,
        p: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>> {
        self.inner.get_many(s, p, ids).await
    }
    async fn insert(&self, s: &'static Schema, p: &Partition, doc: StoredDoc) -> Result<()> {
        if *self.fail_inserts_into.lock().unwrap() == Some(s.collection) {
            return Err(Error::Unavailable {
                reason: "injected fault".into(),
            });
        }
        self.inner.insert(s, p, doc).await
    }
    async fn replace(
        &self,
        s: &'static Schema,
        p: &Partition,
        doc: StoredDoc,
        expected_version: u64,
    ) -> Result<()> {
        self.inner.replace(s, p, doc, expected_version).await
    }
    async fn delete(&self, s: &'static Schema, p: &Partition, id: &str) -> Result<bool> {
        self.inner.delete(s, p, id).await
    }
    async fn find(
        &self,
        s: &'static Schema,
        p: &Partition,
        q: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        self.inner.find(s, p, q).await
    }
    async fn count(&self, s: &'static Schema, p: &Partition, f: &Filter) -> Result<u64> {
        self.inner.count(s, p, f).await
    }
    async fn facet(
        &self,
        s: &'static Schema,
        p: &Partition,
        field: &'static str,
        f: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        self.inner.facet(s, p, field, f).await
    }
}

struct Env {
    svc: AccountService,
    repos: Repositories,
    store: Arc<dyn DocumentStore>,
    faults: Arc<FaultyStore>,
    clock: Arc<ManualClock>,
    limiter: Arc<SpyLimiter>,
    _file: Option<TempDb>,
}

/// Removes a test database file (and its WAL files) when dropped.
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

fn config() -> AccountConfig {
    AccountConfig {
        argon2: Argon2Params::fast_for_tests(),
        ..AccountConfig::default()
    }
}

impl Env {
    fn new(store: Arc<dyn DocumentStore>, file: Option<TempDb>) -> Self {
        let faults = Arc::new(FaultyStore {
            inner: store,
            fail_inserts_into: Mutex::default(),
        });
        let store: Arc<dyn DocumentStore> = faults.clone();
        let clock = Arc::new(ManualClock::default());
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let repos = Repositories::with_clock(store.clone(), dyn_clock.clone());
        let limiter = Arc::new(SpyLimiter {
            inner: InMemoryRateLimiter::new(dyn_clock),
            checked: Mutex::default(),
            resets: Mutex::default(),
        });
        let mut env = Self {
            svc: AccountService::new(
                repos.clone(),
                store.clone(),
                limiter.clone(),
                clock.clone(),
                config(),
            )
            .unwrap(),
            repos,
            store,
            faults,
            clock,
            limiter,
            _file: file,
        };
        env.svc = env.service(config());
        env
    }

    /// Another service over the same store, clock and limiter.
    fn service(&self, config: AccountConfig) -> AccountService {
        AccountService::new(
            self.repos.clone(),
            self.store.clone(),
            self.limiter.clone(),
            self.clock.clone(),
            config,
        )
        .unwrap()
    }

    async fn sign_up(&self, tenant: &str, domain: &str, email: &str) -> (TenantId, User) {
        let done = self
            .svc
            .sign_up(sign_up(Some(tenant), "Acme Corp", domain, email, PW))
            .await
            .unwrap();
        (done.tenant.id, done.owner)
    }

    /// Invites `email` as ADMIN on behalf of `by`.
    async fn invite(&self, tenant: &TenantId, by: &User, email: &str) -> (Invitation, Secret) {
        self.svc
            .invite(tenant, email, vec![UserRole::Admin], by.id.clone())
            .await
            .unwrap()
    }

    /// Requests a password reset (not throttled away).
    async fn reset(&self, tenant: &TenantId, email: &str) -> Option<Secret> {
        self.svc
            .request_password_reset(tenant, email)
            .await
            .unwrap()
    }

    /// Changes a user's status behind the service's back (an admin screen would).
    async fn set_status(&self, tenant: &TenantId, user: &User, status: UserStatus) {
        let mut u = self
            .repos
            .users
            .get(tenant, &user.id)
            .await
            .unwrap()
            .unwrap();
        u.status = status;
        self.repos.users.update(tenant, u).await.unwrap();
    }

    /// A login from the harness's usual client address.
    async fn login(&self, tenant: &TenantId, email: &str, password: &str) -> Result<User> {
        self.svc
            .authenticate(tenant, email, password, ip("192.0.2.1"))
            .await
    }

    /// Invites and accepts `email` with [`PW`]; returns the new user.
    async fn member(&self, tenant: &TenantId, by: &User, email: &str) -> User {
        let (_, token) = self.invite(tenant, by, email).await;
        self.svc
            .accept_invitation(tenant, token.expose(), PW, "Mem", "Ber")
            .await
            .unwrap()
    }

    /// Every document body in a partition of a collection.
    async fn bodies(&self, schema: &'static Schema, p: &Partition) -> Vec<String> {
        let q = FindQuery {
            filter: Filter::All,
            sort: vec![(SortKey::Id, SortDirection::Asc)],
            limit: 10_000,
        };
        let docs = self.store.find(schema, p, &q).await.unwrap();
        docs.into_iter().map(|d| d.body).collect()
    }

    /// (tenants, users, organizations, credentials) of `tenant`.
    async fn counts(&self, tenant: &TenantId) -> (usize, u64, u64, usize) {
        let tenants = self
            .repos
            .tenants
            .list(&PageRequest::first(100))
            .await
            .unwrap()
            .edges
            .len();
        let users = self
            .repos
            .users
            .count(
                tenant,
                &UserFilter {
                    include_deleted: true,
                    ..UserFilter::default()
                },
            )
            .await
            .unwrap();
        let orgs = self
            .repos
            .organizations
            .count(
                tenant,
                &OrganizationFilter {
                    include_deleted: true,
                    ..OrganizationFilter::default()
                },
            )
            .await
            .unwrap();
        let creds = self
            .bodies(credentials_schema(), &Partition::tenant(tenant))
            .await
            .len();
        (tenants, users, orgs, creds)
    }

    async fn credential_body(&self, tenant: &TenantId, user: &UserId) -> String {
        self.store
            .get(
                credentials_schema(),
                &Partition::tenant(tenant),
                user.as_str(),
            )
            .await
            .unwrap()
            .expect("a credential")
            .body
    }
}

async fn memory() -> Env {
    Env::new(Arc::new(InMemoryDocumentStore::new()), None)
}

async fn sqlite(name: &str) -> Env {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "accounts-{name}-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let store = SqliteDocumentStore::open(&path).await.unwrap();
    Env::new(Arc::new(store), Some(TempDb(path)))
}

fn credentials_schema() -> &'static Schema {
    schemas()
        .into_iter()
        .find(|s| s.collection == "user_credentials")
        .expect("the credentials schema")
}

fn sign_up(tenant: Option<&str>, name: &str, domain: &str, email: &str, pw: &str) -> SignUp {
    SignUp {
        tenant_id: tenant.map(|t| TenantId::parse(t).unwrap()),
        tenant_name: name.into(),
        domain: domain.into(),
        email: email.into(),
        password: Secret::new(pw),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A distinct IPv4 address per `n`, so per-IP quotas stay out of per-account tests.
fn ip_n(n: u32) -> IpAddr {
    IpAddr::V4((0xc633_6400 + n).into())
}

#[track_caller]
fn assert_invalid<T: Debug>(r: Result<T>, field: &str) {
    match r {
        Err(Error::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("expected InvalidInput on {field}, got {other:?}"),
    }
}

#[track_caller]
fn assert_unauthenticated<T: Debug>(r: Result<T>) {
    match r {
        Err(e @ Error::Unauthenticated) => {
            assert_eq!(e.public_message(), "authentication required");
        }
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

#[track_caller]
fn assert_rate_limited<T: Debug>(r: Result<T>) -> Duration {
    match r {
        Err(Error::RateLimited { retry_after }) => {
            assert!(retry_after > Duration::ZERO);
            retry_after
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[track_caller]
fn assert_already_exists<T: Debug>(r: Result<T>, field: &str) {
    match r {
        Err(Error::AlreadyExists { field: f, .. }) if f == field => {}
        other => panic!("expected AlreadyExists on {field}, got {other:?}"),
    }
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::memory().await).await;
                }
            )*
        }
        mod sqlite_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite(stringify!($name)).await).await;
                }
            )*
        }
    };
}

on_every_store!(
    sign_up_creates_tenant_owner_and_default_organization,
    sign_up_validation_failures_write_nothing,
    duplicate_domain_or_tenant_id_is_refused_and_writes_nothing,
    failed_sign_up_leaves_no_half_tenant,
    authentication_failures_are_indistinguishable,
    brute_force_is_throttled_per_account_and_recovers,
    brute_force_is_throttled_per_ip_and_recovers,
    credentials_are_argon2id_and_nothing_stores_plaintext,
    changed_argon2_parameters_upgrade_the_hash_on_login,
    invitation_lifecycle,
    invitation_can_be_accepted_only_once_under_concurrency,
    failed_acceptance_gives_the_invitation_back,
    sso_invitation_acceptance_checks_the_email,
    password_reset,
    password_reset_is_throttled_and_clears_login_throttle,
    set_and_change_password,
    tenant_isolation,
);

// ---------------------------------------------------------------------------------------------
// Sign-up

async fn sign_up_creates_tenant_owner_and_default_organization(env: Env) {
    let done = env
        .svc
        .sign_up(sign_up(
            None,
            "Acme Corp",
            " Acme.Example ",
            " Ops@Acme.Example ",
            PW,
        ))
        .await
        .unwrap();
    assert_eq!(done.tenant.id.as_str(), "acme-corp");
    assert_eq!(done.tenant.domain, "acme.example");
    assert_eq!(done.tenant.name, "Acme Corp");
    assert_eq!(done.owner.email, "ops@acme.example");
    assert_eq!(done.owner.roles, vec![UserRole::Owner]);
    assert_eq!(done.owner.status, UserStatus::Active);
    assert!(!done.owner.email_verified);
    assert_eq!(done.owner.first_name.as_deref(), Some("Ada"));
    assert_eq!(done.default_organization.name, "Default");
    assert!(done.default_organization.is_default);

    let t = &done.tenant.id;
    assert_eq!(
        env.repos.tenants.get(t).await.unwrap(),
        Some(done.tenant.clone())
    );
    assert_eq!(
        env.repos.users.get(t, &done.owner.id).await.unwrap(),
        Some(done.owner.clone())
    );
    assert_eq!(
        env.repos.organizations.find_default(t).await.unwrap(),
        Some(done.default_organization.clone())
    );
    assert_eq!(env.counts(t).await, (1, 1, 1, 1));
    assert_eq!(roles_claim(&done.owner), ["OWNER", "ADMIN"]);
    assert_eq!(AGENT_ROLE, "AGENT");
    assert!(env.svc.has_password(t, &done.owner.id).await.unwrap());

    let user = env.login(t, "ops@acme.example", PW).await.unwrap();
    assert_eq!(user.id, done.owner.id);

    // The same name again: the slug is taken, so a random suffix is added.
    let second = env
        .svc
        .sign_up(sign_up(
            None,
            "Acme Corp",
            "acme2.example",
            "ops@acme2.example",
            PW,
        ))
        .await
        .unwrap();
    let id = second.tenant.id.as_str();
    assert!(
        id.starts_with("acme-corp-") && id.len() == "acme-corp-".len() + 6,
        "{id}"
    );

    // An explicit tenant id is used as given.
    let third = env
        .svc
        .sign_up(sign_up(
            Some("globex"),
            "Globex",
            "globex.example",
            "hank@globex.example",
            PW,
        ))
        .await
        .unwrap();
    assert_eq!(third.tenant.id.as_str(), "globex");
}

async fn sign_up_validation_failures_write_nothing(env: Env) {
    let ok = || {
        sign_up(
            Some("acme"),
            "Acme Corp",
            "acme.example",
            "ops@acme.example",
            PW,
        )
    };
    let cases: Vec<(SignUp, &str)> = vec![
        (
            SignUp {
                password: Secret::new("Sh0rt!"),
                ..ok()
            },
            "password",
        ),
        (
            SignUp {
                password: Secret::new("alllowercaseletters"),
                ..ok()
            },
            "password",
        ),
        (
            SignUp {
                password: Secret::new("Ops.Acme 12345"),
                ..ok()
            },
            "password",
        ),
        (
            SignUp {
                password: Secret::new("Aa1!".repeat(33)),
                ..ok()
            },
            "password",
        ),
        (
            SignUp {
                email: "not-an-email".into(),
                ..ok()
            },
            "email",
        ),
        (
            SignUp {
                email: "ops@localhost".into(),
                ..ok()
            },
            "email",
        ),
        (
            SignUp {
                tenant_name: "  ".into(),
                ..ok()
            },
            "tenantName",
        ),
        (
            SignUp {
                domain: "acme".into(),
                ..ok()
            },
            "domain",
        ),
        (
            SignUp {
                domain: "-acme.example".into(),
                ..ok()
            },
            "domain",
        ),
        (
            SignUp {
                first_name: " ".into(),
                ..ok()
            },
            "firstName",
        ),
        (
            SignUp {
                last_name: "<script>".into(),
                ..ok()
            },
            "lastName",
        ),
        (
            SignUp {
                tenant_id: Some(TenantId::parse("login").unwrap()),
                ..ok()
            },
            "tenantId",
        ),
    ];
    let acme = TenantId::parse("acme").unwrap();
    let login = TenantId::parse("login").unwrap();
    for (req, field) in cases {
        let shown = format!("{req:?}");
        let err = env.svc.sign_up(req).await;
        assert_invalid(err, field);
        assert_eq!(
            env.counts(&acme).await,
            (0, 0, 0, 0),
            "after a {field} error"
        );
        assert_eq!(env.counts(&login).await, (0, 0, 0, 0));
        assert!(!shown.contains(PW) && !shown.contains("Sh0rt!"), "{shown}");
    }
    // The password error lists what is missing, without echoing the password.
    match env
        .svc
        .sign_up(SignUp {
            password: Secret::new("alllowercaseletters"),
            ..ok()
        })
        .await
    {
        Err(e @ Error::InvalidInput { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("missing: uppercase letters, digits, symbols"),
                "{msg}"
            );
            assert!(!msg.contains("alllowercaseletters"));
        }
        other => panic!("{other:?}"),
    }
    // The valid request still works afterwards.
    env.svc.sign_up(ok()).await.unwrap();
    assert_eq!(env.counts(&acme).await, (1, 1, 1, 1));
}

async fn duplicate_domain_or_tenant_id_is_refused_and_writes_nothing(env: Env) {
    let (acme, _) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let other = TenantId::parse("acme2").unwrap();

    let r = env
        .svc
        .sign_up(sign_up(
            Some("acme2"),
            "Acme Two",
            "ACME.example",
            "x@acme2.example",
            PW,
        ))
        .await;
    assert_already_exists(r, "domain");
    assert_eq!(env.counts(&other).await, (1, 0, 0, 0));

    let r = env
        .svc
        .sign_up(sign_up(
            Some("acme"),
            "Acme Two",
            "acme2.example",
            "x@acme2.example",
            PW,
        ))
        .await;
    assert_already_exists(r, "tenantId");
    assert_eq!(env.counts(&acme).await, (1, 1, 1, 1));

    // A derived id never collides with an existing tenant; the domain still must be free.
    let r = env
        .svc
        .sign_up(sign_up(None, "Acme", "acme.example", "x@acme2.example", PW))
        .await;
    assert_already_exists(r, "domain");
    assert_eq!(env.counts(&acme).await, (1, 1, 1, 1));
}

async fn failed_sign_up_leaves_no_half_tenant(env: Env) {
    let acme = TenantId::parse("acme").unwrap();
    for collection in ["user_credentials", "users", "organizations", "tenants"] {
        env.faults.fail_inserts_into(Some(collection));
        let r = env
            .svc
            .sign_up(sign_up(
                Some("acme"),
                "Acme",
                "acme.example",
                "ops@acme.example",
                PW,
            ))
            .await;
        assert!(
            matches!(r, Err(Error::Unavailable { .. })),
            "{collection}: {r:?}"
        );
        assert_eq!(
            env.counts(&acme).await,
            (0, 0, 0, 0),
            "after failing {collection}"
        );
    }
    // Derived ids too, and the domain is free again afterwards.
    env.faults.fail_inserts_into(Some("organizations"));
    assert!(
        env.svc
            .sign_up(sign_up(
                None,
                "Acme",
                "acme.example",
                "ops@acme.example",
                PW
            ))
            .await
            .is_err()
    );
    assert_eq!(env.counts(&acme).await, (0, 0, 0, 0));
    env.faults.fail_inserts_into(None);
    env.sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    assert_eq!(env.counts(&acme).await, (1, 1, 1, 1));
}

// ---------------------------------------------------------------------------------------------
// Login

async fn authentication_failures_are_indistinguishable(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let disabled = env.member(&t, &owner, "dave@acme.example").await;
    env.set_status(&t, &disabled, UserStatus::Disabled).await;
    let deleted = env.member(&t, &owner, "erin@acme.example").await;
    env.repos.users.delete(&t, &deleted.id).await.unwrap();
    let (_, sso_token) = env.invite(&t, &owner, "carol@acme.example").await;
    env.svc
        .accept_invitation_sso(&t, sso_token.expose(), "carol@acme.example", None, None)
        .await
        .unwrap();

    let attempts = [
        ("ops@acme.example", "wrong Password 99"),
        ("ops@acme.example", ""),
        ("nobody@acme.example", PW),
        ("", PW),
        ("dave@acme.example", PW),
        ("erin@acme.example", PW),
        ("carol@acme.example", PW),
        ("carol@acme.example", ""),
    ];
    for (n, (email, pw)) in attempts.into_iter().enumerate() {
        let r = env.svc.authenticate(&t, email, pw, ip_n(n as u32)).await;
        if let Err(e) = &r {
            let text = format!("{e} {e:?} {}", e.public_message());
            assert!(!text.contains(PW), "{text}");
            assert!(email.is_empty() || !text.contains(email), "{text}");
        }
        assert_unauthenticated(r);
    }

    let user = env.login(&t, "  OPS@acme.EXAMPLE ", PW).await.unwrap();
    assert_eq!(user.id, owner.id);
}

async fn brute_force_is_throttled_per_account_and_recovers(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let bob = env.member(&t, &owner, "bob@acme.example").await;

    // Five failures from five addresses: the sixth attempt is refused even with the right
    // password.
    for n in 0..5 {
        assert_unauthenticated(
            env.svc
                .authenticate(&t, "ops@acme.example", "wrong", ip_n(n))
                .await,
        );
    }
    let retry = assert_rate_limited(
        env.svc
            .authenticate(&t, "ops@acme.example", PW, ip_n(9))
            .await,
    );
    assert!(retry <= Duration::from_secs(60), "{retry:?}");
    // Other accounts are not affected.
    assert_eq!(
        env.svc
            .authenticate(&t, "bob@acme.example", PW, ip_n(10))
            .await
            .unwrap()
            .id,
        bob.id
    );
    assert!(env.limiter.saw(
        &env.limiter.checked,
        "rl:{acme}:login-account:ops@acme.example"
    ));

    // Time heals.
    env.clock.advance(Duration::from_secs(61));
    env.svc
        .authenticate(&t, "ops@acme.example", PW, ip_n(11))
        .await
        .unwrap();
    assert!(env.limiter.saw(
        &env.limiter.resets,
        "rl:{acme}:login-account:ops@acme.example"
    ));

    // Success reset the account counter: five more failures are all counted as failures.
    for n in 0..5 {
        assert_unauthenticated(
            env.svc
                .authenticate(&t, "ops@acme.example", "wrong", ip_n(20 + n))
                .await,
        );
    }
    assert_rate_limited(
        env.svc
            .authenticate(&t, "ops@acme.example", "wrong", ip_n(30))
            .await,
    );

    // An admin unlock clears it at once.
    env.svc.unlock_login(&t, "OPS@acme.example").await.unwrap();
    env.svc
        .authenticate(&t, "ops@acme.example", PW, ip_n(31))
        .await
        .unwrap();

    // The hourly quota: a slow attacker pausing a minute between bursts (which refills the
    // per-minute quota) is still stopped after about 20 guesses.
    let mut allowed = 0;
    let mut hourly_retry = None;
    'outer: for round in 0..8 {
        env.clock.advance(Duration::from_secs(61));
        for n in 0..5 {
            match env
                .svc
                .authenticate(&t, "bob@acme.example", "wrong", ip_n(100 + round * 5 + n))
                .await
            {
                Err(Error::Unauthenticated) => allowed += 1,
                Err(Error::RateLimited { retry_after }) if n == 0 => {
                    hourly_retry = Some(retry_after);
                    break 'outer;
                }
                Err(Error::RateLimited { .. }) => break,
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(
        (20..=25).contains(&allowed),
        "{allowed} attempts got through"
    );
    assert!(hourly_retry.is_some(), "never refused right after a pause");
}

async fn brute_force_is_throttled_per_ip_and_recovers(env: Env) {
    let (t, _) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let attacker = ip("198.51.100.7");
    // Thirty guesses at thirty different accounts from one address.
    for n in 0..30 {
        let email = format!("user{n}@acme.example");
        assert_unauthenticated(env.svc.authenticate(&t, &email, PW, attacker).await);
    }
    assert_rate_limited(
        env.svc
            .authenticate(&t, "ops@acme.example", PW, attacker)
            .await,
    );
    // Another address (the harness's usual one) is fine.
    env.login(&t, "ops@acme.example", PW).await.unwrap();
    // An IPv6 client is limited by its /64, not by each address.
    for n in 0..30u16 {
        let addr = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, n));
        let email = format!("v6user{n}@acme.example");
        assert_unauthenticated(env.svc.authenticate(&t, &email, PW, addr).await);
    }
    let same_64 = ip("2001:db8:1:2::ffff");
    assert_rate_limited(
        env.svc
            .authenticate(&t, "ops@acme.example", PW, same_64)
            .await,
    );
    assert!(
        env.limiter
            .saw(&env.limiter.checked, "rl:{_}:login-ip:198.51.100.7")
    );

    env.clock.advance(Duration::from_secs(61));
    env.svc
        .authenticate(&t, "ops@acme.example", PW, attacker)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Credential storage

async fn credentials_are_argon2id_and_nothing_stores_plaintext(env: Env) {
    let signed_up = env
        .svc
        .sign_up(sign_up(
            Some("acme"),
            "Acme",
            "acme.example",
            "ops@acme.example",
            PW,
        ))
        .await
        .unwrap();
    let t = signed_up.tenant.id.clone();
    let owner = signed_up.owner.clone();
    let (invitation, inv_token) = env.invite(&t, &owner, "bob@acme.example").await;
    let reset_token = env.reset(&t, "ops@acme.example").await.unwrap();

    let body = env.credential_body(&t, &owner.id).await;
    assert!(body.contains("$argon2id$v=19$m=8,t=1,p=1$"), "{body}");
    assert!(!body.contains(PW));

    // Scan every stored document of every collection.
    let secrets = [PW, inv_token.expose(), reset_token.expose()];
    let mut all = builtin_schemas();
    all.extend(schemas());
    for schema in all {
        for p in [Partition::tenant(&t), Partition::platform()] {
            for body in env.bodies(schema, &p).await {
                for s in secrets {
                    assert!(!body.contains(s), "{} stores a secret", schema.collection);
                }
                if schema.collection != "user_credentials" {
                    assert!(
                        !body.contains("argon2"),
                        "{} holds a hash",
                        schema.collection
                    );
                }
            }
        }
    }

    // What goes to clients carries no hash, token or token hash.
    let json = serde_json::to_string(&signed_up).unwrap()
        + &serde_json::to_string(&invitation).unwrap()
        + &format!("{invitation:?}{inv_token:?}{reset_token:?}{:?}", env.svc);
    use sha2::Digest;
    let token_hash: String = sha2::Sha256::digest(inv_token.expose().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for needle in [
        PW,
        "$argon2",
        inv_token.expose(),
        reset_token.expose(),
        token_hash.as_str(),
    ] {
        assert!(!json.contains(needle), "leaked {needle}");
    }
    // The token hash is what the invitation document stores.
    let stored = env
        .bodies(<Invitation as Entity>::SCHEMA, &Partition::tenant(&t))
        .await;
    assert!(stored.iter().any(|b| b.contains(&token_hash)));
}

async fn changed_argon2_parameters_upgrade_the_hash_on_login(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let stronger = env.service(AccountConfig {
        argon2: Argon2Params::new(16, 2, 1).unwrap(),
        ..AccountConfig::default()
    });
    // The old hash still verifies (the PHC string carries its parameters) ...
    stronger
        .authenticate(&t, "ops@acme.example", PW, ip("192.0.2.1"))
        .await
        .unwrap();
    // ... and was replaced by one with the current parameters.
    let body = env.credential_body(&t, &owner.id).await;
    assert!(body.contains("$argon2id$v=19$m=16,t=2,p=1$"), "{body}");
    // A failed login changes nothing.
    let _ = env.login(&t, "ops@acme.example", "wrong").await;
    assert_eq!(env.credential_body(&t, &owner.id).await, body);
    env.login(&t, "ops@acme.example", PW).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Invitations

async fn invitation_lifecycle(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let now = env.clock.now();

    let (inv, token) = env
        .svc
        .invite(
            &t,
            " Bob@Acme.example ",
            vec![UserRole::Admin, UserRole::Admin],
            owner.id.clone(),
        )
        .await
        .unwrap();
    assert_eq!(inv.email, "bob@acme.example");
    assert_eq!(inv.roles, vec![UserRole::Admin]);
    assert_eq!(inv.status, InvitationStatus::Pending);
    assert_eq!(inv.invited_by, owner.id);
    assert_eq!(inv.created_at, now);
    assert_eq!(inv.expires_at, now + chrono::Duration::days(7));
    assert_eq!(token.expose().len(), 43);
    assert_eq!(
        env.svc
            .find_invitation_by_token(&t, token.expose())
            .await
            .unwrap()
            .id,
        inv.id
    );
    let pending = env
        .svc
        .list_invitations(&t, Some(InvitationStatus::Pending), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(pending.edges.len(), 1);

    // A refused password or name does not use the invitation up.
    assert_invalid(
        env.svc
            .accept_invitation(&t, token.expose(), "weak", "Bob", "Builder")
            .await,
        "password",
    );
    assert_invalid(
        env.svc
            .accept_invitation(&t, token.expose(), "bob@acme.example", "Bob", "Builder")
            .await,
        "password",
    );
    assert_invalid(
        env.svc
            .accept_invitation(&t, token.expose(), PW, "", "Builder")
            .await,
        "firstName",
    );
    let bob = env
        .svc
        .accept_invitation(&t, token.expose(), PW, "Bob", "Builder")
        .await
        .unwrap();
    assert_eq!(bob.email, "bob@acme.example");
    assert_eq!(bob.roles, vec![UserRole::Admin]);
    assert!(bob.email_verified);
    assert_eq!(bob.status, UserStatus::Active);
    assert_eq!(bob.first_name.as_deref(), Some("Bob"));
    assert_eq!(roles_claim(&bob), ["ADMIN"]);
    env.login(&t, "bob@acme.example", PW).await.unwrap();

    // Single use.
    assert_invalid(
        env.svc
            .accept_invitation(&t, token.expose(), PW2, "Bob", "Again")
            .await,
        "token",
    );
    assert_invalid(
        env.svc.find_invitation_by_token(&t, token.expose()).await,
        "token",
    );
    let accepted = env.svc.get_invitation(&t, &inv.id).await.unwrap();
    assert_eq!(accepted.status, InvitationStatus::Accepted);
    assert_eq!(accepted.accepted_by, Some(bob.id.clone()));
    // Bob's password did not change.
    env.login(&t, "bob@acme.example", PW).await.unwrap();

    // An active user cannot be invited again.
    assert_already_exists(
        env.svc
            .invite(
                &t,
                "BOB@acme.example",
                vec![UserRole::Admin],
                owner.id.clone(),
            )
            .await,
        "email",
    );
    // Only active users of the tenant can invite; at least one role is needed.
    assert!(matches!(
        env.svc
            .invite(
                &t,
                "x@acme.example",
                vec![UserRole::Admin],
                UserId::generate()
            )
            .await,
        Err(Error::PermissionDenied)
    ));
    assert_invalid(
        env.svc
            .invite(&t, "x@acme.example", vec![], owner.id.clone())
            .await,
        "roles",
    );
    assert_invalid(
        env.svc
            .invite(&t, "not an email", vec![UserRole::Admin], owner.id.clone())
            .await,
        "email",
    );

    // Revoked.
    let (carol_inv, carol_token) = env.invite(&t, &owner, "carol@acme.example").await;
    let revoked = env.svc.revoke_invitation(&t, &carol_inv.id).await.unwrap();
    assert_eq!(revoked.status, InvitationStatus::Revoked);
    assert_invalid(
        env.svc
            .accept_invitation(&t, carol_token.expose(), PW, "Carol", "C")
            .await,
        "token",
    );
    env.svc.revoke_invitation(&t, &carol_inv.id).await.unwrap();
    assert!(matches!(
        env.svc.revoke_invitation(&t, &inv.id).await,
        Err(Error::Conflict { .. })
    ));

    // Expired: the last instant before expiry still works, the expiry instant does not.
    let (_, dave_token) = env.invite(&t, &owner, "dave@acme.example").await;
    let (_, erin_token) = env.invite(&t, &owner, "erin@acme.example").await;
    env.clock.advance(Duration::from_secs(7 * 86_400 - 1));
    env.svc
        .accept_invitation(&t, erin_token.expose(), PW, "Erin", "E")
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(1));
    assert_invalid(
        env.svc
            .accept_invitation(&t, dave_token.expose(), PW, "Dave", "D")
            .await,
        "token",
    );
    assert_invalid(
        env.svc
            .find_invitation_by_token(&t, dave_token.expose())
            .await,
        "token",
    );

    // A newer invitation for the same email replaces the older one.
    let (first, frank1) = env.invite(&t, &owner, "frank@acme.example").await;
    let (_, frank2) = env
        .svc
        .invite(
            &t,
            "frank@acme.example",
            vec![UserRole::Owner],
            owner.id.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        env.svc.get_invitation(&t, &first.id).await.unwrap().status,
        InvitationStatus::Revoked
    );
    assert_invalid(
        env.svc
            .accept_invitation(&t, frank1.expose(), PW, "Frank", "F")
            .await,
        "token",
    );
    let frank = env
        .svc
        .accept_invitation(&t, frank2.expose(), PW, "Frank", "F")
        .await
        .unwrap();
    assert_eq!(roles_claim(&frank), ["OWNER", "ADMIN"]);

    // A deleted user is reactivated (same id, the new password, verified, new roles).
    env.repos.users.delete(&t, &bob.id).await.unwrap();
    let (_, again) = env
        .svc
        .invite(
            &t,
            "bob@acme.example",
            vec![UserRole::Owner],
            owner.id.clone(),
        )
        .await
        .unwrap();
    let bob2 = env
        .svc
        .accept_invitation(&t, again.expose(), PW2, "Robert", "Builder")
        .await
        .unwrap();
    assert_eq!(bob2.id, bob.id);
    assert_eq!(bob2.status, UserStatus::Active);
    assert_eq!(bob2.roles, vec![UserRole::Owner]);
    assert_eq!(bob2.first_name.as_deref(), Some("Robert"));
    assert_unauthenticated(env.login(&t, "bob@acme.example", PW).await);
    env.login(&t, "bob@acme.example", PW2).await.unwrap();

    // Garbage tokens.
    for bad in ["", "x", &"y".repeat(500)] {
        assert_invalid(
            env.svc.accept_invitation(&t, bad, PW, "A", "B").await,
            "token",
        );
    }
    let all = env
        .svc
        .list_invitations(&t, None, &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(all.edges.len(), 7);
    assert!(
        all.edges
            .windows(2)
            .all(|w| w[0].node.created_at >= w[1].node.created_at)
    );
}

async fn invitation_can_be_accepted_only_once_under_concurrency(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let (_, token) = env.invite(&t, &owner, "bob@acme.example").await;
    let mut tasks = Vec::new();
    for n in 0..4 {
        let svc = env.svc.clone();
        let t = t.clone();
        let token = token.clone();
        let pw = if n % 2 == 0 { PW } else { PW2 };
        tasks.push(tokio::spawn(async move {
            svc.accept_invitation(&t, token.expose(), pw, "Bob", "B")
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::InvalidInput { field, .. } | Error::AlreadyExists { field, .. })
                if field == "token" || field == "email" => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    let users = env
        .repos
        .users
        .count(&t, &UserFilter::default())
        .await
        .unwrap();
    assert_eq!(users, 2);
}

async fn failed_acceptance_gives_the_invitation_back(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let (inv, token) = env.invite(&t, &owner, "bob@acme.example").await;
    env.faults.fail_inserts_into(Some("users"));
    let r = env
        .svc
        .accept_invitation(&t, token.expose(), PW, "Bob", "B")
        .await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    let back = env.svc.get_invitation(&t, &inv.id).await.unwrap();
    assert_eq!(back.status, InvitationStatus::Pending);
    assert_eq!(back.accepted_by, None);
    // No orphan credential: only the owner's.
    assert_eq!(env.counts(&t).await, (1, 1, 1, 1));

    env.faults.fail_inserts_into(None);
    let bob = env
        .svc
        .accept_invitation(&t, token.expose(), PW, "Bob", "B")
        .await
        .unwrap();
    assert_eq!(
        env.svc
            .get_invitation(&t, &inv.id)
            .await
            .unwrap()
            .accepted_by,
        Some(bob.id)
    );
}

async fn sso_invitation_acceptance_checks_the_email(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let (inv, token) = env.invite(&t, &owner, "gina@acme.example").await;
    assert!(matches!(
        env.svc
            .accept_invitation_sso(&t, token.expose(), "mallory@evil.example", Some("M"), None)
            .await,
        Err(Error::PermissionDenied)
    ));
    // Still pending.
    assert_eq!(
        env.svc.get_invitation(&t, &inv.id).await.unwrap().status,
        InvitationStatus::Pending
    );
    let gina = env
        .svc
        .accept_invitation_sso(
            &t,
            token.expose(),
            " GINA@Acme.Example",
            Some(" Gina "),
            Some("G."),
        )
        .await
        .unwrap();
    assert!(gina.email_verified);
    assert_eq!(gina.first_name.as_deref(), Some("Gina"));
    assert!(!env.svc.has_password(&t, &gina.id).await.unwrap());
    assert_unauthenticated(env.login(&t, "gina@acme.example", "").await);
    assert_invalid(
        env.svc
            .accept_invitation_sso(&t, token.expose(), "gina@acme.example", None, None)
            .await,
        "token",
    );

    // Reactivating a deleted user by SSO removes the old password.
    let bob = env.member(&t, &owner, "bob@acme.example").await;
    env.repos.users.delete(&t, &bob.id).await.unwrap();
    let (_, token) = env.invite(&t, &owner, "bob@acme.example").await;
    let bob2 = env
        .svc
        .accept_invitation_sso(&t, token.expose(), "bob@acme.example", None, None)
        .await
        .unwrap();
    assert_eq!(bob2.id, bob.id);
    assert_eq!(bob2.first_name.as_deref(), Some("Mem"));
    assert!(!env.svc.has_password(&t, &bob.id).await.unwrap());
    assert_unauthenticated(env.login(&t, "bob@acme.example", PW).await);
}

// ---------------------------------------------------------------------------------------------
// Password reset

async fn password_reset(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let login = |pw: &'static str| env.login(&t, "ops@acme.example", pw);

    // Unknown, deleted and disabled users get the same outward result: nothing to mail.
    assert!(env.reset(&t, "nobody@acme.example").await.is_none());
    assert!(env.reset(&t, "").await.is_none());
    let gone = env.member(&t, &owner, "gone@acme.example").await;
    env.repos.users.delete(&t, &gone.id).await.unwrap();
    assert!(env.reset(&t, "gone@acme.example").await.is_none());
    let off = env.member(&t, &owner, "off@acme.example").await;
    env.set_status(&t, &off, UserStatus::Disabled).await;
    assert!(env.reset(&t, "off@acme.example").await.is_none());

    let token = env
        .reset(&t, " OPS@acme.example")
        .await
        .expect("a token for an active user");
    assert_eq!(token.expose().len(), 43);

    // A refused password keeps the token usable.
    assert_invalid(
        env.svc
            .confirm_password_reset(&t, token.expose(), "weak")
            .await,
        "password",
    );
    env.svc
        .confirm_password_reset(&t, token.expose(), PW2)
        .await
        .unwrap();
    assert_unauthenticated(login(PW).await);
    login(PW2).await.unwrap();

    // Single use.
    assert_invalid(
        env.svc.confirm_password_reset(&t, token.expose(), PW).await,
        "token",
    );
    login(PW2).await.unwrap();

    // A successful reset invalidates the user's other outstanding tokens.
    let t1 = env.reset(&t, "ops@acme.example").await.unwrap();
    let t2 = env.reset(&t, "ops@acme.example").await.unwrap();
    assert_ne!(t1, t2);
    env.svc
        .confirm_password_reset(&t, t2.expose(), PW)
        .await
        .unwrap();
    assert_invalid(
        env.svc.confirm_password_reset(&t, t1.expose(), PW2).await,
        "token",
    );
    login(PW).await.unwrap();

    // Expiry: 30 minutes.
    env.clock.advance(Duration::from_secs(3600));
    let t3 = env.reset(&t, "ops@acme.example").await.unwrap();
    env.clock.advance(Duration::from_secs(30 * 60));
    assert_invalid(
        env.svc.confirm_password_reset(&t, t3.expose(), PW2).await,
        "token",
    );
    login(PW).await.unwrap();
    let t4 = env.reset(&t, "ops@acme.example").await.unwrap();
    env.clock.advance(Duration::from_secs(30 * 60 - 1));
    env.svc
        .confirm_password_reset(&t, t4.expose(), PW2)
        .await
        .unwrap();

    // A token of a user deleted since is dead.
    env.clock.advance(Duration::from_secs(3600));
    let t5 = env.reset(&t, "ops@acme.example").await.unwrap();
    env.repos.users.delete(&t, &owner.id).await.unwrap();
    assert_invalid(
        env.svc.confirm_password_reset(&t, t5.expose(), PW).await,
        "token",
    );

    for bad in ["", "nope", &"z".repeat(1000)] {
        assert_invalid(env.svc.confirm_password_reset(&t, bad, PW).await, "token");
    }
}

async fn password_reset_is_throttled_and_clears_login_throttle(env: Env) {
    let (t, _) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    // Unknown and known emails are throttled alike.
    for _ in 0..5 {
        assert!(env.reset(&t, "nobody@acme.example").await.is_none());
    }
    assert_rate_limited(
        env.svc
            .request_password_reset(&t, "nobody@acme.example")
            .await,
    );
    for _ in 0..5 {
        assert!(env.reset(&t, "ops@acme.example").await.is_some());
    }
    assert_rate_limited(env.svc.request_password_reset(&t, "ops@acme.example").await);
    assert!(env.limiter.saw(
        &env.limiter.checked,
        "rl:{acme}:password-reset:ops@acme.example"
    ));
    env.clock.advance(Duration::from_secs(3600));
    let token = env.reset(&t, "ops@acme.example").await.unwrap();

    // Locked out by failed logins, the owner resets the password and can log in at once.
    for n in 0..5 {
        assert_unauthenticated(
            env.svc
                .authenticate(&t, "ops@acme.example", "wrong", ip_n(n))
                .await,
        );
    }
    assert_rate_limited(
        env.svc
            .authenticate(&t, "ops@acme.example", PW, ip_n(6))
            .await,
    );
    env.svc
        .confirm_password_reset(&t, token.expose(), PW2)
        .await
        .unwrap();
    env.svc
        .authenticate(&t, "ops@acme.example", PW2, ip_n(7))
        .await
        .unwrap();
}

async fn set_and_change_password(env: Env) {
    let (t, owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let login = |pw: &'static str| env.login(&t, "ops@acme.example", pw);

    assert_invalid(
        env.svc.set_password(&t, &owner.id, "short").await,
        "password",
    );
    assert_invalid(
        env.svc
            .set_password(&t, &owner.id, "OPS@acme.example")
            .await,
        "password",
    );
    let pending = env.reset(&t, "ops@acme.example").await.unwrap();
    env.svc.set_password(&t, &owner.id, PW2).await.unwrap();
    assert_unauthenticated(login(PW).await);
    login(PW2).await.unwrap();
    // Setting a password invalidates outstanding reset links.
    assert_invalid(
        env.svc
            .confirm_password_reset(&t, pending.expose(), PW)
            .await,
        "token",
    );
    assert!(matches!(
        env.svc.set_password(&t, &UserId::generate(), PW).await,
        Err(Error::NotFound { .. })
    ));

    assert_invalid(
        env.svc
            .change_password(&t, &owner.id, PW, "Third Passw0rd!")
            .await,
        "currentPassword",
    );
    assert_invalid(
        env.svc.change_password(&t, &owner.id, PW2, PW2).await,
        "password",
    );
    assert_invalid(
        env.svc.change_password(&t, &owner.id, PW2, "weak").await,
        "password",
    );
    env.svc
        .change_password(&t, &owner.id, PW2, "Third Passw0rd!")
        .await
        .unwrap();
    assert_unauthenticated(login(PW2).await);
    login("Third Passw0rd!").await.unwrap();

    // Guessing the current password is throttled too.
    for _ in 0..5 {
        let _ = env.svc.change_password(&t, &owner.id, "guess", PW).await;
    }
    assert_rate_limited(
        env.svc
            .change_password(&t, &owner.id, "Third Passw0rd!", PW)
            .await,
    );

    // An SSO-only user has no current password to give.
    let (_, token) = env.invite(&t, &owner, "sso@acme.example").await;
    let sso = env
        .svc
        .accept_invitation_sso(&t, token.expose(), "sso@acme.example", None, None)
        .await
        .unwrap();
    assert_invalid(
        env.svc.change_password(&t, &sso.id, "", PW).await,
        "currentPassword",
    );
    // An admin can give them one.
    env.svc.set_password(&t, &sso.id, PW).await.unwrap();
    env.login(&t, "sso@acme.example", PW).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tenant isolation

async fn tenant_isolation(env: Env) {
    let (a, a_owner) = env
        .sign_up("acme", "acme.example", "ops@acme.example")
        .await;
    let (b, b_owner) = env
        .sign_up("globex", "globex.example", "hank@globex.example")
        .await;

    // B cannot authenticate A's user.
    assert_unauthenticated(env.login(&b, "ops@acme.example", PW).await);

    // B cannot see, accept or revoke A's invitation.
    let (inv, token) = env.invite(&a, &a_owner, "bob@acme.example").await;
    assert_invalid(
        env.svc.find_invitation_by_token(&b, token.expose()).await,
        "token",
    );
    assert_invalid(
        env.svc
            .accept_invitation(&b, token.expose(), PW, "Bob", "B")
            .await,
        "token",
    );
    assert_invalid(
        env.svc
            .accept_invitation_sso(&b, token.expose(), "bob@acme.example", None, None)
            .await,
        "token",
    );
    assert!(matches!(
        env.svc.revoke_invitation(&b, &inv.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        env.svc.get_invitation(&b, &inv.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        env.svc
            .list_invitations(&b, None, &PageRequest::first(10))
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    // A's user cannot invite into B.
    assert!(matches!(
        env.svc
            .invite(
                &b,
                "x@globex.example",
                vec![UserRole::Admin],
                a_owner.id.clone()
            )
            .await,
        Err(Error::PermissionDenied)
    ));
    assert_eq!(
        env.repos
            .users
            .count(&b, &UserFilter::default())
            .await
            .unwrap(),
        1
    );

    // B cannot reset A's password.
    assert!(env.reset(&b, "ops@acme.example").await.is_none());
    let reset = env.reset(&a, "ops@acme.example").await.unwrap();
    assert_invalid(
        env.svc
            .confirm_password_reset(&b, reset.expose(), PW2)
            .await,
        "token",
    );
    assert!(matches!(
        env.svc.set_password(&b, &a_owner.id, PW2).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        env.svc.change_password(&b, &a_owner.id, PW, PW2).await,
        Err(Error::NotFound { .. })
    ));
    env.login(&a, "ops@acme.example", PW).await.unwrap();

    // In A, all of it still works.
    env.svc
        .accept_invitation(&a, token.expose(), PW, "Bob", "B")
        .await
        .unwrap();
    env.svc
        .confirm_password_reset(&a, reset.expose(), PW2)
        .await
        .unwrap();
    env.login(&a, "ops@acme.example", PW2).await.unwrap();
    // Throttling is per tenant: failures in A do not lock the same email in B.
    for n in 0..5 {
        let _ = env
            .svc
            .authenticate(&a, "hank@globex.example", "x", ip_n(n))
            .await;
    }
    env.svc
        .authenticate(&b, "hank@globex.example", PW, ip_n(50))
        .await
        .unwrap();
    assert_eq!(b_owner.email, "hank@globex.example");
}
