//! [`AccountService`]: sign-up, login and passwords. Invitations and password reset add
//! their methods in sibling modules.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openframe_core::{
    Clock, Error, Organization, Result, Secret, Tenant, TenantId, User, UserId, UserRole,
    UserStatus, normalize_email,
};
use openframe_data::store::{DocumentStore, Filter, Partition, Value};
use openframe_data::{DocumentRepository, Repositories};
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, Semaphore};

use super::config::AccountConfig;
use super::input;
use super::password::{self, Verified};
use super::records::{Credential, Invitation, ResetToken};
use crate::ratelimit::{Quota, RateLimitKey, RateLimiter};

/// How many random suffixes are tried when a derived tenant id is taken.
const TENANT_ID_ATTEMPTS: usize = 8;
/// How many read-modify-write rounds a credential write tries before giving up.
const CREDENTIAL_ATTEMPTS: usize = 4;

/// A tenant sign-up request. `Debug` redacts the password.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignUp {
    /// The tenant id to claim; derived from `tenant_name` (a slug, plus a random suffix if
    /// taken) when absent.
    #[serde(default)]
    pub tenant_id: Option<TenantId>,
    /// Display name of the tenant (2–100 characters).
    pub tenant_name: String,
    /// The tenant's unique domain, e.g. `acme.example`.
    pub domain: String,
    /// The owner's email.
    pub email: String,
    /// The owner's password (checked against the [`PasswordPolicy`](super::PasswordPolicy)).
    pub password: Secret,
    /// The owner's given name.
    pub first_name: String,
    /// The owner's family name.
    pub last_name: String,
}

/// What [`AccountService::sign_up`] created.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedUp {
    /// The new tenant.
    pub tenant: Tenant,
    /// Its OWNER (email not yet verified).
    pub owner: User,
    /// Its default organization (`"Default"`).
    pub default_organization: Organization,
}

/// Tenants, users, passwords, login throttling, invitations and password reset, over the
/// `openframe-data` repositories. Cheap to clone (one `Arc`).
///
/// Password hashes live only in a separate `user_credentials` collection (argon2id PHC
/// strings, keyed by user id), so a [`User`] never carries one and nothing this service
/// returns contains one. Invitation and reset tokens are 256-bit random values stored only as
/// SHA-256 hashes. Errors never contain a password, token or hash.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::{Clock, ManualClock, Secret};
/// use openframe_data::{Repositories, memory::InMemoryDocumentStore, store::DocumentStore};
/// use openframe_security::accounts::{AccountConfig, AccountService, Argon2Params, SignUp};
/// use openframe_security::ratelimit::memory::InMemoryRateLimiter;
///
/// let clock: Arc<dyn Clock> = Arc::new(ManualClock::default());
/// let store: Arc<dyn DocumentStore> = Arc::new(InMemoryDocumentStore::new());
/// let repos = Repositories::with_clock(store.clone(), clock.clone());
/// let limiter = Arc::new(InMemoryRateLimiter::new(clock.clone()));
/// let config = AccountConfig { argon2: Argon2Params::fast_for_tests(), ..Default::default() };
/// let accounts = AccountService::new(repos, store, limiter, clock, config)?;
///
/// let signed_up = accounts.sign_up(SignUp {
///     tenant_id: None,
///     tenant_name: "Acme Corp".into(),
///     domain: "acme.example".into(),
///     email: "Ops@Acme.example".into(),
///     password: Secret::new("correct Horse battery 1"),
///     first_name: "Ada".into(),
///     last_name: "Lovelace".into(),
/// }).await?;
/// assert_eq!(signed_up.tenant.id.as_str(), "acme-corp");
///
/// let ip = "203.0.113.7".parse().unwrap();
/// let user = accounts
///     .authenticate(&signed_up.tenant.id, "ops@acme.example", "correct Horse battery 1", ip)
///     .await?;
/// assert_eq!(openframe_security::accounts::roles_claim(&user), ["OWNER", "ADMIN"]);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct AccountService {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) repos: Repositories,
    pub(super) store: Arc<dyn DocumentStore>,
    pub(super) limiter: Arc<dyn RateLimiter>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: AccountConfig,
    pub(super) credentials: DocumentRepository<Credential>,
    pub(super) invitations: DocumentRepository<Invitation>,
    pub(super) resets: DocumentRepository<ResetToken>,
    /// A hash of a random password, verified against when there is no real hash, so a
    /// failed login costs the same whether or not the account exists.
    dummy_hash: OnceCell<String>,
    /// Bounds concurrent argon2 runs (each holds `memory_kib` of RAM on the blocking pool).
    hash_slots: Semaphore,
}

impl fmt::Debug for AccountService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountService")
            .field("store", &self.inner.store.backend())
            .field("limiter", &self.inner.limiter)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl AccountService {
    /// A service over `repos` and the same `store` they were built on (the accounts
    /// collections live next to the built-in ones), throttling through `limiter`, with time
    /// from `clock`. Fails if `config` does not [validate](AccountConfig::validate).
    pub fn new(
        repos: Repositories,
        store: Arc<dyn DocumentStore>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        config: AccountConfig,
    ) -> Result<Self> {
        config.validate()?;
        let hash_slots = Semaphore::new(config.max_concurrent_hashes);
        Ok(Self {
            inner: Arc::new(Inner {
                credentials: DocumentRepository::new(store.clone(), clock.clone()),
                invitations: DocumentRepository::new(store.clone(), clock.clone()),
                resets: DocumentRepository::new(store.clone(), clock.clone()),
                repos,
                store,
                limiter,
                clock,
                config,
                dummy_hash: OnceCell::new(),
                hash_slots,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &AccountConfig {
        &self.inner.config
    }

    // -----------------------------------------------------------------------------------------
    // Sign-up

    /// Creates a tenant with its OWNER user (email not verified, with the password) and its
    /// default organization. Every input is validated and the domain and tenant id are
    /// checked before anything is written; a taken domain or tenant id is `AlreadyExists`
    /// (`field` `domain` or `tenantId`). If a later write fails, the earlier ones are undone.
    pub async fn sign_up(&self, req: SignUp) -> Result<SignedUp> {
        let inner = &self.inner;
        let now = inner.clock.now();

        // Validate everything first.
        let tenant_name = input::tenant_name(&req.tenant_name)?;
        let domain = input::domain(&req.domain)?;
        let email = input::email(&req.email)?;
        let first_name = input::person_name("firstName", &req.first_name)?;
        let last_name = input::person_name("lastName", &req.last_name)?;
        inner
            .config
            .password_policy
            .check(req.password.expose(), &email)?;
        if let Some(id) = &req.tenant_id {
            input::tenant_id_not_reserved(id)?;
        }
        let mut owner = User::new(&email, vec![UserRole::Owner], now);
        owner.first_name = Some(first_name);
        owner.last_name = Some(last_name);
        owner.email_verified = false;
        owner.validate()?;
        let mut org = Organization::new("Default", now);
        org.is_default = true;
        org.validate()?;

        // Availability.
        if inner.repos.tenants.find_by_domain(&domain).await?.is_some() {
            return Err(tenant_taken("domain"));
        }
        if let Some(id) = &req.tenant_id {
            if inner.repos.tenants.get(id).await?.is_some() {
                return Err(tenant_taken("tenantId"));
            }
        }

        // The slow part, still before any write.
        let phc = self.hash(req.password.expose()).await?;

        let tenant = self
            .insert_tenant(req.tenant_id, &tenant_name, &domain, now)
            .await?;
        let tenant_id = tenant.id.clone();
        let owner_id = owner.id.clone();
        let org_id = org.id.clone();
        let rest = async {
            self.put_credential(&tenant_id, &owner_id, phc).await?;
            let owner = inner.repos.users.insert(&tenant_id, owner).await?;
            let org = inner.repos.organizations.insert(&tenant_id, org).await?;
            Ok::<_, Error>((owner, org))
        }
        .await;
        match rest {
            Ok((owner, default_organization)) => {
                tracing::info!(tenant = %tenant.id, owner = %owner.id, "tenant signed up");
                Ok(SignedUp {
                    tenant,
                    owner,
                    default_organization,
                })
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant_id, error = %e, "sign-up failed; undoing its writes");
                self.undo_sign_up(&tenant_id, &owner_id, org_id.as_str())
                    .await;
                Err(e)
            }
        }
    }

    /// Inserts the tenant under the requested id, or under a derived one (retrying with a
    /// random suffix while taken).
    async fn insert_tenant(
        &self,
        requested: Option<TenantId>,
        name: &str,
        domain: &str,
        now: openframe_core::Timestamp,
    ) -> Result<Tenant> {
        let tenants = &self.inner.repos.tenants;
        let map_taken = |e: Error| match e {
            Error::AlreadyExists { field, .. } if field == "domain" => tenant_taken("domain"),
            Error::AlreadyExists { .. } => tenant_taken("tenantId"),
            other => other,
        };
        if let Some(id) = requested {
            return tenants
                .insert(Tenant::new(id, name, domain, now))
                .await
                .map_err(map_taken);
        }
        let base = input::slug(name);
        for attempt in 0..TENANT_ID_ATTEMPTS {
            let candidate = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{}", random_suffix()?)
            };
            let id = TenantId::parse(candidate)?;
            if tenants.get(&id).await?.is_some() {
                continue;
            }
            match tenants.insert(Tenant::new(id, name, domain, now)).await {
                Ok(t) => return Ok(t),
                Err(Error::AlreadyExists { field, .. }) if field != "domain" => continue,
                Err(e) => return Err(map_taken(e)),
            }
        }
        Err(Error::Unavailable {
            reason: "could not find a free tenant id; please choose one".into(),
        })
    }

    /// Best-effort removal of everything a failed sign-up wrote.
    async fn undo_sign_up(&self, tenant: &TenantId, owner: &UserId, org: &str) {
        use openframe_data::entity::Entity as _;
        let store = &self.inner.store;
        let p = Partition::tenant(tenant);
        let steps = [
            (Organization::SCHEMA, p.clone(), org.to_owned()),
            (User::SCHEMA, p.clone(), owner.to_string()),
            (Credential::SCHEMA, p, owner.to_string()),
            (Tenant::SCHEMA, Partition::platform(), tenant.to_string()),
        ];
        for (schema, partition, id) in steps {
            if let Err(e) = store.delete(schema, &partition, &id).await {
                tracing::error!(
                    tenant = %tenant,
                    collection = schema.collection,
                    error = %e,
                    "could not undo a failed sign-up write"
                );
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Login

    /// Checks an email and password in `tenant`.
    ///
    /// Throttled per client IP (`login-ip`, IPv6 per /64) and per account (`login-account`,
    /// tenant + email) through the [`RateLimiter`]; over quota is `RateLimited`. A wrong
    /// password, unknown email, disabled or deleted user, or a user without a password
    /// (SSO-only) are all the same `Unauthenticated`, and each runs one argon2 verification
    /// (against a dummy hash when there is no real one). Success resets the account counter
    /// and upgrades a hash made with other argon2 parameters.
    pub async fn authenticate(
        &self,
        tenant: &TenantId,
        email: &str,
        password: &str,
        client_ip: IpAddr,
    ) -> Result<User> {
        let inner = &self.inner;
        let email = normalize_email(email);
        self.throttle(&login_ip_key(client_ip)?, &inner.config.login_quota_per_ip)
            .await?;
        let account_key = login_account_key(tenant, &email)?;
        self.throttle(&account_key, &inner.config.login_quota_per_account)
            .await?;

        let user = if plausible_email(&email) {
            inner.repos.users.find_by_email(tenant, &email).await?
        } else {
            None
        };
        let credential = match &user {
            Some(u) => self.credential(tenant, &u.id).await?,
            None => None,
        };
        let (user, credential) = match (user, credential) {
            (Some(user), Some(credential)) => (user, credential),
            _ => {
                self.verify_dummy(password).await?;
                tracing::debug!(tenant = %tenant, "login refused: no such account or no password");
                return Err(Error::Unauthenticated);
            }
        };
        let verified = self
            .verify(credential.password_hash.clone(), password)
            .await?;
        match verified {
            Verified::Match { rehash } if user.status == UserStatus::Active => {
                if let Err(e) = inner.limiter.reset(&account_key).await {
                    tracing::warn!(tenant = %tenant, error = %e, "could not reset the login counter");
                }
                if rehash {
                    self.upgrade_hash(tenant, &user.id, password).await;
                }
                Ok(user)
            }
            _ => {
                tracing::debug!(tenant = %tenant, user = %user.id, "login refused");
                Err(Error::Unauthenticated)
            }
        }
    }

    /// Forgets the login attempts of an account (an admin "unlock").
    pub async fn unlock_login(&self, tenant: &TenantId, email: &str) -> Result<()> {
        self.inner
            .limiter
            .reset(&login_account_key(tenant, &normalize_email(email))?)
            .await
    }

    async fn upgrade_hash(&self, tenant: &TenantId, user: &UserId, password: &str) {
        let result = async {
            let phc = self.hash(password).await?;
            self.put_credential(tenant, user, phc).await
        }
        .await;
        match result {
            Ok(()) => tracing::info!(tenant = %tenant, user = %user, "password hash upgraded"),
            Err(e) => {
                tracing::warn!(tenant = %tenant, user = %user, error = %e, "could not upgrade a password hash")
            }
        }
    }

    /// Runs one verification against the dummy hash (the result is always a mismatch).
    pub(super) async fn verify_dummy(&self, password: &str) -> Result<()> {
        let dummy = self
            .inner
            .dummy_hash
            .get_or_try_init(|| async {
                let random = password::random_password()?;
                self.hash(&random).await
            })
            .await?
            .clone();
        self.verify(dummy, password).await?;
        Ok(())
    }

    /// Hashes a password with the configured argon2id costs, at most
    /// [`max_concurrent_hashes`](AccountConfig::max_concurrent_hashes) at a time.
    pub(super) async fn hash(&self, password: &str) -> Result<String> {
        let _slot = self.hash_slot().await?;
        password::hash_password(self.inner.config.argon2, password).await
    }

    /// Verifies a password against a PHC string, sharing the hashing slots.
    pub(super) async fn verify(&self, phc: String, password: &str) -> Result<Verified> {
        let _slot = self.hash_slot().await?;
        password::verify_password(phc, password, self.inner.config.argon2).await
    }

    async fn hash_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.inner
            .hash_slots
            .acquire()
            .await
            .map_err(|_| Error::Internal("password hashing is shut down".into()))
    }

    // -----------------------------------------------------------------------------------------
    // Passwords

    /// Sets a user's password (an admin action, or after another proof of identity). The
    /// password is checked against the policy; outstanding reset tokens stop working.
    /// `NotFound` for an unknown or deleted user.
    pub async fn set_password(
        &self,
        tenant: &TenantId,
        user_id: &UserId,
        new_password: &str,
    ) -> Result<()> {
        let user = self.live_user(tenant, user_id).await?;
        self.inner
            .config
            .password_policy
            .check(new_password, &user.email)?;
        let phc = self.hash(new_password).await?;
        self.put_credential(tenant, &user.id, phc).await?;
        self.delete_reset_tokens(tenant, &user.id).await?;
        tracing::info!(tenant = %tenant, user = %user.id, "password set");
        Ok(())
    }

    /// Changes a user's own password after checking the current one.
    ///
    /// Throttled per user (scope `password-change`, the per-account login quotas). A wrong
    /// (or absent) current password is `InvalidInput` on `currentPassword`; a new password
    /// equal to the current one or against the policy is `InvalidInput` on `password`.
    /// `NotFound` for an unknown or deleted user, `PermissionDenied` for a disabled one.
    pub async fn change_password(
        &self,
        tenant: &TenantId,
        user_id: &UserId,
        current_password: &str,
        new_password: &str,
    ) -> Result<()> {
        let inner = &self.inner;
        let key = RateLimitKey::new("password-change", Some(tenant), user_id.as_str())?;
        self.throttle(&key, &inner.config.login_quota_per_account)
            .await?;
        let user = self.live_user(tenant, user_id).await?;
        if user.status != UserStatus::Active {
            return Err(Error::PermissionDenied);
        }
        inner
            .config
            .password_policy
            .check(new_password, &user.email)?;
        let current_ok = match self.credential(tenant, &user.id).await? {
            Some(c) => matches!(
                self.verify(c.password_hash, current_password).await?,
                Verified::Match { .. }
            ),
            None => {
                self.verify_dummy(current_password).await?;
                false
            }
        };
        if !current_ok {
            return Err(Error::invalid("currentPassword", "is incorrect"));
        }
        if current_password == new_password {
            return Err(Error::invalid(
                "password",
                "must differ from the current password",
            ));
        }
        let phc = self.hash(new_password).await?;
        self.put_credential(tenant, &user.id, phc).await?;
        self.delete_reset_tokens(tenant, &user.id).await?;
        if let Err(e) = inner.limiter.reset(&key).await {
            tracing::warn!(tenant = %tenant, error = %e, "could not reset the password-change counter");
        }
        tracing::info!(tenant = %tenant, user = %user.id, "password changed");
        Ok(())
    }

    /// Whether the user has a password (SSO-only users do not).
    pub async fn has_password(&self, tenant: &TenantId, user_id: &UserId) -> Result<bool> {
        Ok(self.credential(tenant, user_id).await?.is_some())
    }

    // -----------------------------------------------------------------------------------------
    // Shared helpers

    /// The user, unless unknown or deleted (`NotFound`).
    async fn live_user(&self, tenant: &TenantId, user_id: &UserId) -> Result<User> {
        self.inner
            .repos
            .users
            .get(tenant, user_id)
            .await?
            .filter(|u| u.status != UserStatus::Deleted)
            .ok_or_else(|| Error::not_found("user"))
    }

    pub(super) async fn credential(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Option<Credential>> {
        self.inner
            .credentials
            .get(&Partition::tenant(tenant), user.as_str())
            .await
    }

    /// Inserts or replaces the user's credential.
    pub(super) async fn put_credential(
        &self,
        tenant: &TenantId,
        user: &UserId,
        password_hash: String,
    ) -> Result<()> {
        let p = Partition::tenant(tenant);
        let repo = &self.inner.credentials;
        for _ in 0..CREDENTIAL_ATTEMPTS {
            let written = match repo.get(&p, user.as_str()).await? {
                Some(mut c) => {
                    c.password_hash = password_hash.clone();
                    repo.update(&p, c).await.map(drop)
                }
                None => {
                    let now = self.inner.clock.now();
                    let c = Credential {
                        user_id: user.clone(),
                        password_hash: password_hash.clone(),
                        created_at: now,
                        updated_at: now,
                        version: 0,
                    };
                    repo.insert(&p, c).await.map(drop)
                }
            };
            match written {
                Ok(()) => return Ok(()),
                Err(Error::Conflict { .. } | Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            "the credential is being changed concurrently",
        ))
    }

    /// Removes the user's credential, if any.
    pub(super) async fn delete_credential(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        use openframe_data::entity::Entity as _;
        self.inner
            .store
            .delete(
                Credential::SCHEMA,
                &Partition::tenant(tenant),
                user.as_str(),
            )
            .await
            .map(drop)
    }

    /// Removes every outstanding reset token of the user.
    pub(super) async fn delete_reset_tokens(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        use openframe_data::entity::Entity as _;
        let p = Partition::tenant(tenant);
        let filter = Filter::Eq("user_id", Value::str(user.as_str()));
        let tokens = self.inner.resets.find_all(&p, filter, 1000).await?;
        for t in tokens {
            self.inner
                .store
                .delete(ResetToken::SCHEMA, &p, &t.id)
                .await?;
        }
        Ok(())
    }

    /// Counts one request under `quotas`; `RateLimited` when over.
    pub(super) async fn throttle(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<()> {
        if quotas.is_empty() {
            return Ok(());
        }
        let decision = self.inner.limiter.check(key, quotas).await?;
        if decision.allowed {
            return Ok(());
        }
        let retry_after = decision
            .retry_after
            .unwrap_or(decision.reset_after)
            .max(Duration::from_secs(1));
        tracing::info!(
            scope = key_scope(key),
            retry_after_secs = retry_after.as_secs(),
            "throttled"
        );
        Err(Error::RateLimited { retry_after })
    }
}

/// The scope part of a rate-limit key, for logs (the id may be an email).
fn key_scope(key: &RateLimitKey) -> &str {
    key.as_str().split(':').nth(2).unwrap_or("?")
}

fn tenant_taken(field: &'static str) -> Error {
    Error::AlreadyExists {
        entity: "tenant",
        field: field.into(),
    }
}

fn random_suffix() -> Result<String> {
    let mut bytes = [0u8; 3];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::Internal("the system random generator failed".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a (normalized) email is worth looking up.
pub(super) fn plausible_email(email: &str) -> bool {
    !email.is_empty() && email.len() <= 254 && email.contains('@')
}

/// A rate-limit id for an email: the normalized email when it fits (1–256 bytes), else its
/// SHA-256 in hex.
fn email_id(email: &str) -> String {
    let email = normalize_email(email);
    if !email.is_empty() && email.len() <= 256 {
        return email;
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(email.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256-{hex}")
}

/// The per-account login key: scope `login-account`, the tenant, the normalized email.
pub fn login_account_key(tenant: &TenantId, email: &str) -> Result<RateLimitKey> {
    RateLimitKey::new("login-account", Some(tenant), &email_id(email))
}

/// The per-IP login key: scope `login-ip`, no tenant; IPv4 addresses (and IPv4-mapped IPv6)
/// as they are, other IPv6 addresses by their /64 network, since one client usually holds a
/// whole /64.
pub fn login_ip_key(ip: IpAddr) -> Result<RateLimitKey> {
    RateLimitKey::new("login-ip", None, &ip_id(ip))
}

/// The per-account password-reset key: scope `password-reset`, the tenant, the email.
pub fn password_reset_key(tenant: &TenantId, email: &str) -> Result<RateLimitKey> {
    RateLimitKey::new("password-reset", Some(tenant), &email_id(email))
}

fn ip_id(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(
            login_account_key(&t, " Ops@Acme.example ")
                .unwrap()
                .as_str(),
            "rl:{acme}:login-account:ops@acme.example"
        );
        let long = format!("{}@x.io", "a".repeat(300));
        assert!(
            login_account_key(&t, &long)
                .unwrap()
                .as_str()
                .contains("sha256-")
        );
        assert!(login_account_key(&t, "").is_ok());
        let ip = |s: &str| {
            login_ip_key(s.parse().unwrap())
                .unwrap()
                .as_str()
                .to_owned()
        };
        assert_eq!(ip("203.0.113.9"), "rl:{_}:login-ip:203.0.113.9");
        assert_eq!(ip("::ffff:203.0.113.9"), "rl:{_}:login-ip:203.0.113.9");
        assert_eq!(ip("2001:db8:1:2:3:4:5:6"), ip("2001:db8:1:2:ffff::1"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        let k = password_reset_key(&t, "a@b.io").unwrap();
        assert_eq!(key_scope(&k), "password-reset");
    }
}
