//! Access and ID tokens: issuance, verification, the verified-token cache and revocation.
//!
//! [`TokenService`] signs tokens with the tenant's key from a [`KeyStore`] and verifies them
//! in an order that never lets an attacker choose the key: the unverified payload is read only
//! for `iss`; the issuer must map (through [`IssuerConfig`]) to an existing, active tenant
//! **before** any key lookup; the `kid` is looked up in that tenant's keys only; the header's
//! `alg` must equal that key's algorithm (so `none`, `HS256` and RS/EdDSA mix-ups fail); then
//! the signature, `exp`/`nbf` with leeway, the `tenant_id` claim, the audience and revocation.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_core::{Clock, SystemClock, Tenant, TenantId};
//! use openframe_data::{Repositories, memory::InMemoryDocumentStore};
//! use openframe_security::crypto::{MasterKey, SigningAlgorithm};
//! use openframe_security::keys::{DocumentKeyStore, KeyPolicy};
//! use openframe_security::token::*;
//!
//! let store = Arc::new(InMemoryDocumentStore::new());
//! let repos = Repositories::new(store.clone());
//! let acme = TenantId::parse("acme")?;
//! repos.tenants.insert(Tenant::new(acme.clone(), "Acme", "acme.example", SystemClock.now())).await?;
//! let policy = KeyPolicy { algorithm: SigningAlgorithm::EdDsa, ..KeyPolicy::default() };
//! let keys = Arc::new(DocumentKeyStore::new(store.clone(), MasterKey::generate()?, Arc::new(SystemClock), policy));
//! let issuers = IssuerConfig::new("https://id.example.com".parse().unwrap())?;
//! let tokens = TokenService::new(keys, repos.tenants, issuers, Arc::new(SystemClock), TokenConfig::default())
//!     .with_revocation_store(store);
//!
//! let mut request = AccessTokenRequest::new(acme.clone(), "alice@acme.example", "console");
//! request.audience = vec!["api".into()];
//! request.scope = vec!["openid".into(), "machines:read".into()];
//! let issued = tokens.issue_access_token(request).await?;
//! let verified = tokens.verify_access_token(&issued.token, Some("api")).await.unwrap();
//! assert_eq!(verified.tenant, acme);
//! assert!(verified.has_scope("machines:read"));
//! assert!(matches!(tokens.verify_access_token(&issued.token, Some("other")).await, Err(TokenError::WrongAudience)));
//! tokens.revoke_access_token(&issued.token).await?;
//! assert!(!tokens.introspect(&issued.token).await.active);
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

mod cache;
mod claims;
mod error;
mod issuer;
mod revocation;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openframe_core::{Clock, Error, MachineId, Result, TenantId, TenantStatus, Timestamp, UserId};
use openframe_data::TenantRepository;
use openframe_data::store::DocumentStore;

use crate::crypto::{SigningAlgorithm, jws};
use crate::keys::{KeyStore, add};

pub use cache::{TenantGeneration, VerifiedTokenCache};
pub use claims::{AccessClaims, IdClaims, Introspection, VerifiedToken};
pub use error::TokenError;
pub use issuer::{DEFAULT_PATH_TEMPLATE, IssuerConfig};

use cache::TokenDigest;
use claims::seconds;
use revocation::Revocations;

/// Lifetimes, leeway and cache sizes of a [`TokenService`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Default access-token lifetime (15 min).
    pub access_ttl: Duration,
    /// ID-token lifetime (30 min).
    pub id_ttl: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (30 s).
    pub leeway: Duration,
    /// Verified tokens kept in memory (100,000; 0 disables the cache).
    pub cache_capacity: usize,
    /// How long "this tenant exists and is active" (or not) is remembered (30 s).
    pub tenant_cache_ttl: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            id_ttl: Duration::from_secs(30 * 60),
            leeway: Duration::from_secs(30),
            cache_capacity: 100_000,
            tenant_cache_ttl: Duration::from_secs(30),
        }
    }
}

/// What to put in an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRequest {
    /// The issuing tenant (must exist and be active).
    pub tenant: TenantId,
    /// `sub`: the user's email, or the machine's client id (1-256 characters).
    pub subject: String,
    /// `aud` (at most 16).
    pub audience: Vec<String>,
    /// Scopes (RFC 6749 scope tokens, at most 64).
    pub scope: Vec<String>,
    /// `client_id`.
    pub client_id: String,
    /// `user_id`, for user tokens.
    pub user_id: Option<UserId>,
    /// `machine_id`, for agent tokens.
    pub machine_id: Option<MachineId>,
    /// Effective roles (at most 32).
    pub roles: Vec<String>,
    /// Lifetime; default [`TokenConfig::access_ttl`]. At most the key overlap minus leeway.
    pub ttl: Option<Duration>,
}

impl AccessTokenRequest {
    /// A request with no audience, scopes, roles or ids, and the default lifetime.
    pub fn new(tenant: TenantId, subject: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            tenant,
            subject: subject.into(),
            audience: Vec::new(),
            scope: Vec::new(),
            client_id: client_id.into(),
            user_id: None,
            machine_id: None,
            roles: Vec::new(),
            ttl: None,
        }
    }
}

/// What to put in an OIDC ID token (lifetime [`TokenConfig::id_ttl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenRequest {
    /// The issuing tenant.
    pub tenant: TenantId,
    /// `sub`.
    pub subject: String,
    /// The client: `aud` and `azp`.
    pub client_id: String,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// The session id (`sid`).
    pub sid: String,
    /// The authorization request's `nonce`, if any.
    pub nonce: Option<String>,
    /// `email`, when the `email` scope was granted.
    pub email: Option<String>,
    /// `email_verified`.
    pub email_verified: Option<bool>,
    /// `name`, when the `profile` scope was granted.
    pub name: Option<String>,
}

/// A signed token and its metadata. `Debug` leaves the token out (it is a bearer credential).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// `iat`.
    pub issued_at: Timestamp,
    /// `exp`.
    pub expires_at: Timestamp,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The claims every issued token shares.
struct Stamp {
    iss: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Most entries per tenant-existence cache before it is cleared.
const MAX_KNOWN_TENANTS: usize = 100_000;
const MAX_UNKNOWN_TENANTS: usize = 10_000;

/// "Does this tenant exist and is it active?", remembered for a short while.
struct TenantCache {
    ttl: i64,
    known: RwLock<HashMap<TenantId, i64>>,
    unknown: RwLock<HashMap<TenantId, i64>>,
}

impl TenantCache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            known: RwLock::new(HashMap::new()),
            unknown: RwLock::new(HashMap::new()),
        }
    }

    fn lookup(&self, tenant: &TenantId, now: i64) -> Option<bool> {
        let fresh = |map: &RwLock<HashMap<TenantId, i64>>| {
            map.read()
                .unwrap_or_else(|e| e.into_inner())
                .get(tenant)
                .is_some_and(|&until| now < until)
        };
        if fresh(&self.known) {
            Some(true)
        } else if fresh(&self.unknown) {
            Some(false)
        } else {
            None
        }
    }

    fn remember(&self, tenant: &TenantId, active: bool, now: i64) {
        let (map, other, max) = if active {
            (&self.known, &self.unknown, MAX_KNOWN_TENANTS)
        } else {
            (&self.unknown, &self.known, MAX_UNKNOWN_TENANTS)
        };
        other
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
        let mut map = map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= max {
            map.retain(|_, until| now < *until);
            if map.len() >= max {
                map.clear();
            }
        }
        map.insert(tenant.clone(), now.saturating_add(self.ttl));
    }

    fn forget(&self, tenant: &TenantId) {
        for map in [&self.known, &self.unknown] {
            map.write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(tenant);
        }
    }
}

/// Issues and verifies a tenant's tokens. Cheap to clone (shared state).
///
/// See the [module documentation](self) for the verification order and an example.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Arc<dyn KeyStore>,
    tenants: Arc<dyn TenantRepository>,
    issuers: IssuerConfig,
    clock: Arc<dyn Clock>,
    config: TokenConfig,
    leeway: i64,
    tenant_cache: TenantCache,
    cache: VerifiedTokenCache,
    revocations: Revocations,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("issuers", &self.inner.issuers)
            .field("config", &self.inner.config)
            .field("keys", &self.inner.keys)
            .field("cache", &self.inner.cache)
            .field(
                "persistent_revocations",
                &self.inner.revocations.is_persistent(),
            )
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A token service over `keys`, checking issuers against `tenants`.
    ///
    /// Revocations are kept in this process only until
    /// [`with_revocation_store`](Self::with_revocation_store) is called; production
    /// deployments with more than one replica must call it.
    pub fn new(
        keys: Arc<dyn KeyStore>,
        tenants: Arc<dyn TenantRepository>,
        issuers: IssuerConfig,
        clock: Arc<dyn Clock>,
        config: TokenConfig,
    ) -> Self {
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        Self {
            inner: Arc::new(Inner {
                keys,
                tenants,
                issuers,
                tenant_cache: TenantCache::new(config.tenant_cache_ttl),
                cache: VerifiedTokenCache::new(config.cache_capacity, config.leeway),
                revocations: Revocations::new(),
                leeway,
                clock,
                config,
            }),
        }
    }

    /// Persists revocations in `store` (collection `revoked_tokens`) and reads other replicas'
    /// revocations from it (see [`refresh_revocations`](Self::refresh_revocations)). Only the
    /// first call has an effect.
    pub fn with_revocation_store(self, store: Arc<dyn DocumentStore>) -> Self {
        if !self
            .inner
            .revocations
            .set_store(store, self.inner.clock.clone())
        {
            tracing::warn!("the token service already has a revocation store; ignoring another");
        }
        self
    }

    /// The issuer configuration.
    pub fn issuers(&self) -> &IssuerConfig {
        &self.inner.issuers
    }

    /// The configuration.
    pub fn config(&self) -> &TokenConfig {
        &self.inner.config
    }

    /// The verified-token cache.
    pub fn cache(&self) -> &VerifiedTokenCache {
        &self.inner.cache
    }

    /// The longest token lifetime: tokens must not outlive their key's publication.
    fn max_ttl(&self) -> Duration {
        self.inner
            .keys
            .policy()
            .overlap
            .saturating_sub(self.inner.config.leeway)
    }

    /// Whether `tenant` exists and is active (cached for `tenant_cache_ttl`).
    async fn tenant_is_active(&self, tenant: &TenantId, now: i64) -> Result<bool> {
        if let Some(known) = self.inner.tenant_cache.lookup(tenant, now) {
            return Ok(known);
        }
        let active = self
            .inner
            .tenants
            .get(tenant)
            .await?
            .is_some_and(|t| t.status == TenantStatus::Active);
        self.inner.tenant_cache.remember(tenant, active, now);
        Ok(active)
    }

    async fn require_active_tenant(&self, tenant: &TenantId, now: i64) -> Result<()> {
        if self.tenant_is_active(tenant, now).await? {
            Ok(())
        } else {
            Err(Error::invalid("tenant", "unknown or inactive tenant"))
        }
    }

    fn ttl(&self, requested: Option<Duration>, default: Duration) -> Result<i64> {
        let ttl = requested.unwrap_or(default);
        let max = self.max_ttl();
        if ttl < Duration::from_secs(1) || ttl > max {
            return Err(Error::invalid(
                "ttl",
                format!(
                    "must be between 1 s and {} s (the key overlap minus leeway)",
                    max.as_secs()
                ),
            ));
        }
        Ok(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// Checks the tenant, stamps `iat`/`exp`/`jti` into the claims `build` makes, and signs
    /// them with the tenant's active key.
    async fn issue<C: serde::Serialize>(
        &self,
        tenant: &TenantId,
        ttl: i64,
        build: impl FnOnce(Stamp) -> C,
    ) -> Result<IssuedToken> {
        let now = self.inner.clock.now().timestamp();
        self.require_active_tenant(tenant, now).await?;
        let stamp = Stamp {
            iss: self.inner.issuers.issuer(tenant),
            iat: now,
            exp: now.saturating_add(ttl),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let issued = IssuedToken {
            token: String::new(),
            jti: stamp.jti.clone(),
            issued_at: seconds(stamp.iat),
            expires_at: seconds(stamp.exp),
        };
        let payload = serde_json::to_vec(&build(stamp))
            .map_err(|e| Error::Internal(format!("cannot encode token claims: {e}").into()))?;
        let token = self
            .inner
            .keys
            .signing_key(tenant)
            .await?
            .sign_jws(&payload)?;
        Ok(IssuedToken { token, ..issued })
    }

    /// Issues an access token signed with the tenant's active key.
    pub async fn issue_access_token(&self, req: AccessTokenRequest) -> Result<IssuedToken> {
        validate_access_request(&req)?;
        let ttl = self.ttl(req.ttl, self.inner.config.access_ttl)?;
        let tenant = req.tenant.clone();
        self.issue(&tenant, ttl, |s| AccessClaims {
            iss: s.iss,
            sub: req.subject,
            aud: req.audience,
            iat: s.iat,
            nbf: s.iat,
            exp: s.exp,
            jti: s.jti,
            scope: req.scope.join(" "),
            tenant_id: req.tenant,
            client_id: req.client_id,
            user_id: req.user_id,
            machine_id: req.machine_id,
            roles: req.roles,
        })
        .await
    }

    /// Issues an OIDC ID token (`iss sub aud azp iat exp auth_time sid jti`, plus `nonce`,
    /// `email`, `email_verified`, `name` when given).
    pub async fn issue_id_token(&self, req: IdTokenRequest) -> Result<IssuedToken> {
        validate_id_request(&req)?;
        let ttl = self.ttl(None, self.inner.config.id_ttl)?;
        let tenant = req.tenant.clone();
        self.issue(&tenant, ttl, |s| IdClaims {
            iss: s.iss,
            sub: req.subject,
            aud: req.client_id.clone(),
            azp: req.client_id,
            iat: s.iat,
            exp: s.exp,
            auth_time: req.auth_time.timestamp(),
            sid: req.sid,
            jti: s.jti,
            nonce: req.nonce,
            email: req.email,
            email_verified: req.email_verified,
            name: req.name,
        })
        .await
    }

    /// Verifies an access token, optionally requiring `audience` in `aud`.
    ///
    /// A token seen before is answered from the [`VerifiedTokenCache`] (revocation and
    /// audience are still checked); otherwise the full check runs in the order described in
    /// the [module documentation](self), with no store round trip once the tenant and its
    /// keys are cached.
    pub async fn verify_access_token(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        if token.len() > jws::MAX_TOKEN_LEN {
            return Err(TokenError::malformed("token too long"));
        }
        if self.inner.revocations.needs_initial_load() {
            self.refresh_revocations()
                .await
                .map_err(TokenError::Unavailable)?;
        }
        let now = self.inner.clock.now().timestamp();
        let digest = self
            .inner
            .cache
            .is_enabled()
            .then(|| TokenDigest::of(token));
        let verified = match digest
            .as_ref()
            .and_then(|d| self.inner.cache.get_digest(d, now))
        {
            Some(hit) => {
                if self.is_revoked(&hit) {
                    return Err(TokenError::Revoked);
                }
                hit
            }
            None => {
                let (verified, generation) = self.verify_uncached(token, now).await?;
                if self.is_revoked(&verified) {
                    return Err(TokenError::Revoked);
                }
                if let Some(digest) = digest {
                    self.inner
                        .cache
                        .insert_digest(digest, verified.clone(), generation, now);
                }
                verified
            }
        };
        if let Some(audience) = audience {
            if !verified.has_audience(audience) {
                return Err(TokenError::WrongAudience);
            }
        }
        Ok(verified)
    }

    fn is_revoked(&self, token: &VerifiedToken) -> bool {
        self.inner
            .revocations
            .is_revoked(&token.tenant, &token.claims.jti, token.claims.iat)
    }

    /// Every check except revocation and audience, without the cache.
    async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Arc<VerifiedToken>, TenantGeneration), TokenError> {
        let decoded = jws::decode(token).map_err(|e| {
            TokenError::malformed(match e {
                jws::JwsError::TooLong => "token too long",
                jws::JwsError::Segments => "not three segments",
                jws::JwsError::Base64(_) => "not base64url",
                jws::JwsError::Header => "invalid header",
                _ => "unsupported header",
            })
        })?;
        // Unverified: only `iss` is used before the signature is checked.
        let claims: AccessClaims = serde_json::from_slice(&decoded.payload)
            .map_err(|_| TokenError::malformed("invalid access token claims"))?;
        let tenant = self
            .inner
            .issuers
            .tenant_of(&claims.iss)
            .ok_or(TokenError::UnknownIssuer)?;
        if !self
            .tenant_is_active(&tenant, now)
            .await
            .map_err(TokenError::Unavailable)?
        {
            return Err(TokenError::UnknownIssuer);
        }
        let generation = self.inner.cache.generation(&tenant);
        let alg = SigningAlgorithm::from_jwa(&decoded.header.alg)
            .ok_or(TokenError::AlgorithmNotAllowed)?;
        let kid = decoded
            .header
            .kid
            .as_deref()
            .ok_or(TokenError::UnknownKey)?;
        let key = self
            .inner
            .keys
            .verification_key(&tenant, kid)
            .await
            .map_err(TokenError::Unavailable)?
            .ok_or(TokenError::UnknownKey)?;
        if key.algorithm != alg {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        if !key.verify(decoded.signing_input.as_bytes(), &decoded.signature) {
            return Err(TokenError::BadSignature);
        }
        if claims.tenant_id != tenant {
            return Err(TokenError::WrongTenant);
        }
        let leeway = self.inner.leeway;
        if now >= claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if claims.nbf.max(claims.iat) > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        Ok((
            Arc::new(VerifiedToken {
                tenant,
                kid: key.kid.clone(),
                algorithm: key.algorithm,
                claims,
            }),
            generation,
        ))
    }

    /// RFC 7662 introspection: `active` with the token's fields when it verifies (from the
    /// cache and in-memory revocations, no store round trip), else only `active: false`.
    pub async fn introspect(&self, token: &str) -> Introspection {
        match self.verify_access_token(token, None).await {
            Ok(verified) => Introspection::active(&verified),
            Err(TokenError::Unavailable(e)) => {
                tracing::warn!(error = %e, "token introspection could not verify; answering inactive");
                Introspection::inactive()
            }
            Err(_) => Introspection::inactive(),
        }
    }

    /// Revokes a valid access token by its `jti` until it expires (persisted, mirrored, and
    /// dropped from the cache). Returns `false` (and does nothing) for a token that is not
    /// valid anyway (malformed, expired, foreign, already revoked).
    pub async fn revoke_access_token(&self, token: &str) -> Result<bool> {
        let verified = match self.verify_access_token(token, None).await {
            Ok(v) => v,
            Err(TokenError::Unavailable(e)) => return Err(e),
            Err(_) => return Ok(false),
        };
        self.revoke_jti(
            &verified.tenant,
            &verified.claims.jti,
            verified.expires_at(),
        )
        .await?;
        self.inner.cache.forget(token);
        tracing::info!(tenant = %verified.tenant, jti = %verified.claims.jti, "access token revoked");
        Ok(true)
    }

    /// Revokes the access token `jti` of `tenant` (e.g. the tokens of a revoked refresh-token
    /// family), kept until `expires_at` plus leeway.
    pub async fn revoke_jti(
        &self,
        tenant: &TenantId,
        jti: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        let now = self.inner.clock.now();
        let keep_until = add(expires_at, self.inner.config.leeway);
        if keep_until <= now {
            return Ok(());
        }
        self.inner
            .revocations
            .revoke_jti(tenant, jti, keep_until, now)
            .await
    }

    /// Revokes every access token of `tenant` issued up to now (including the current second)
    /// and empties the cache for it.
    pub async fn revoke_tenant_tokens(&self, tenant: &TenantId) -> Result<()> {
        let now = self.inner.clock.now();
        let keep_until = add(now, self.max_ttl() + self.inner.config.leeway * 2);
        self.inner
            .revocations
            .revoke_tenant(tenant, now.timestamp(), keep_until, now)
            .await?;
        self.inner.cache.forget_tenant(tenant);
        self.inner.tenant_cache.forget(tenant);
        tracing::info!(%tenant, "all access tokens of the tenant revoked");
        Ok(())
    }

    /// Reads revocations made by other replicas since the last call (one indexed query of
    /// recent records; cheap), drops expired ones and deletes a batch of expired records.
    /// Call it periodically (e.g. every 10 s); the first verification calls it once.
    pub async fn refresh_revocations(&self) -> Result<()> {
        let now = self.inner.clock.now();
        for tenant in self.inner.revocations.refresh(now).await? {
            self.inner.cache.forget_tenant(&tenant);
        }
        Ok(())
    }

    /// Forgets cached tenant status and verified tokens of `tenant` (e.g. after it was
    /// deactivated), so the next verification reads the tenant again.
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.inner.tenant_cache.forget(tenant);
        self.inner.cache.forget_tenant(tenant);
    }
}

fn text(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("must be 1-{max} characters without control characters"),
        ));
    }
    Ok(())
}

fn list(field: &'static str, items: &[String], max_items: usize, max_len: usize) -> Result<()> {
    if items.len() > max_items {
        return Err(Error::invalid(
            field,
            format!("must have at most {max_items} items"),
        ));
    }
    items.iter().try_for_each(|i| text(field, i, max_len))
}

fn validate_access_request(req: &AccessTokenRequest) -> Result<()> {
    text("subject", &req.subject, 256)?;
    text("clientId", &req.client_id, 256)?;
    list("audience", &req.audience, 16, 256)?;
    list("roles", &req.roles, 32, 64)?;
    list("scope", &req.scope, 64, 128)?;
    // RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E (no spaces, quotes or backslashes).
    let scope_token = |s: &String| {
        s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    };
    if !req.scope.iter().all(scope_token) {
        return Err(Error::invalid("scope", "must be RFC 6749 scope tokens"));
    }
    Ok(())
}

fn validate_id_request(req: &IdTokenRequest) -> Result<()> {
    text("subject", &req.subject, 256)?;
    text("clientId", &req.client_id, 256)?;
    text("sid", &req.sid, 256)?;
    if let Some(nonce) = &req.nonce {
        text("nonce", nonce, 512)?;
    }
    if let Some(email) = &req.email {
        text("email", email, 320)?;
    }
    if let Some(name) = &req.name {
        text("name", name, 256)?;
    }
    Ok(())
}
