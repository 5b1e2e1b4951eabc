//! One builder that wires every part of the security crate over one document store.
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use std::sync::Arc;
//! use openframe_data::memory::InMemoryDocumentStore;
//! use openframe_security::crypto::MasterKey;
//! use openframe_security::stack::SecurityStack;
//! let stack = SecurityStack::builder(
//!     Arc::new(InMemoryDocumentStore::new()),
//!     "https://msp.example".parse().unwrap(),
//!     MasterKey::generate()?,
//! )
//! .build()?;
//! let app = stack.router(); // /sas/... endpoints
//! # let _ = app; Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Clock, Result, SystemClock};
use openframe_data::Repositories;
use openframe_data::store::DocumentStore;
use url::Url;

use crate::accounts::{AccountConfig, AccountService};
use crate::api_keys::ApiKeyService;
use crate::auth::Authenticator;
use crate::crypto::MasterKey;
use crate::keys::{DocumentKeyStore, KeyPolicy, KeyStore};
use crate::oauth::{
    ClientRegistry, DisabledMailer, GrantStore, Mailer, OAuthConfig, OAuthServer, OAuthServerParts,
    SessionStore,
};
use crate::ratelimit::RateLimiter;
use crate::ratelimit::memory::InMemoryRateLimiter;
use crate::sso::SsoService;
use crate::token::{IssuerConfig, TokenConfig, TokenService};

/// Everything the security crate offers, wired together.
#[derive(Debug, Clone)]
pub struct SecurityStack {
    /// The repositories over the store.
    pub repos: Repositories,
    /// Per-tenant signing keys.
    pub keys: Arc<dyn KeyStore>,
    /// Token issuance and verification.
    pub tokens: TokenService,
    /// Tenants, users, passwords, invitations.
    pub accounts: AccountService,
    /// OAuth clients.
    pub clients: ClientRegistry,
    /// API keys.
    pub api_keys: Arc<ApiKeyService>,
    /// Upstream identity providers.
    pub sso: SsoService,
    /// The rate limiter (login throttling and API quotas).
    pub limiter: Arc<dyn RateLimiter>,
    /// The authorization server.
    pub oauth: OAuthServer,
}

/// Builds a [`SecurityStack`]; see [`SecurityStack::builder`].
#[derive(Debug)]
pub struct SecurityStackBuilder {
    store: Arc<dyn DocumentStore>,
    public_url: Url,
    master: MasterKey,
    clock: Arc<dyn Clock>,
    limiter: Option<Arc<dyn RateLimiter>>,
    mailer: Arc<dyn Mailer>,
    accounts: AccountConfig,
    tokens: TokenConfig,
    keys: KeyPolicy,
    session_ttl: Duration,
    api_key_cache_ttl: Duration,
}

impl SecurityStack {
    /// Starts a builder over `store`, serving issuers under `public_url`, sealing secrets
    /// with `master`.
    pub fn builder(
        store: Arc<dyn DocumentStore>,
        public_url: Url,
        master: MasterKey,
    ) -> SecurityStackBuilder {
        SecurityStackBuilder {
            store,
            public_url,
            master,
            clock: Arc::new(SystemClock),
            limiter: None,
            mailer: Arc::new(DisabledMailer),
            accounts: AccountConfig::default(),
            tokens: TokenConfig::default(),
            keys: KeyPolicy::default(),
            session_ttl: Duration::from_secs(12 * 3600),
            api_key_cache_ttl: crate::api_keys::DEFAULT_AUTH_CACHE_TTL,
        }
    }

    /// The axum router of the authorization server (`/sas/...`).
    pub fn router(&self) -> axum::Router {
        crate::oauth::router(self.oauth.clone())
    }

    /// An authenticator for bearer tokens and API keys.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(self.tokens.clone(), Some(self.api_keys.clone()))
    }
}

impl SecurityStackBuilder {
    /// Uses `clock` for every expiry.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `limiter` (default: in process).
    pub fn with_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Delivers invitation and reset mail with `mailer` (default: dropped with a warning).
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Account settings (password policy, argon2 cost, quotas).
    pub fn with_account_config(mut self, config: AccountConfig) -> Self {
        self.accounts = config;
        self
    }

    /// Token lifetimes and cache sizes.
    pub fn with_token_config(mut self, config: TokenConfig) -> Self {
        self.tokens = config;
        self
    }

    /// Key algorithm, rotation and overlap.
    pub fn with_key_policy(mut self, policy: KeyPolicy) -> Self {
        self.keys = policy;
        self
    }

    /// How long a login session lasts (default 12 h).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// How long a verified API key is trusted without reading storage again (default
    /// [`DEFAULT_AUTH_CACHE_TTL`](crate::api_keys::DEFAULT_AUTH_CACHE_TTL); see
    /// [`ApiKeyService::with_auth_cache_ttl`]).
    pub fn with_api_key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.api_key_cache_ttl = ttl;
        self
    }

    /// Wires everything.
    pub fn build(self) -> Result<SecurityStack> {
        let Self {
            store,
            public_url,
            master,
            clock,
            limiter,
            mailer,
            accounts,
            tokens,
            keys,
            session_ttl,
            api_key_cache_ttl,
        } = self;
        let repos = Repositories::with_clock(store.clone(), clock.clone());
        let issuers = IssuerConfig::new(public_url.clone())?;
        let limiter = limiter.unwrap_or_else(|| Arc::new(InMemoryRateLimiter::new(clock.clone())));
        let client_key = master.derive("oauth-client-secret");
        let api_key = master.derive("api-key-secret");
        let sso_master = MasterKey::from_base64(&master.to_base64())?;
        let keys: Arc<dyn KeyStore> = Arc::new(DocumentKeyStore::new(
            store.clone(),
            master,
            clock.clone(),
            keys,
        ));
        let tokens = TokenService::new(
            keys.clone(),
            repos.tenants.clone(),
            issuers.clone(),
            clock.clone(),
            tokens,
        )
        .with_revocation_store(store.clone());
        let accounts = AccountService::new(
            repos.clone(),
            store.clone(),
            limiter.clone(),
            clock.clone(),
            accounts,
        )?;
        let clients = ClientRegistry::new(store.clone(), client_key, clock.clone());
        let api_keys = Arc::new(
            ApiKeyService::new(
                store.clone(),
                repos.api_keys.clone(),
                api_key,
                clock.clone(),
            )
            .with_auth_cache_ttl(api_key_cache_ttl),
        );
        let sso = SsoService::new(
            store.clone(),
            repos.clone(),
            accounts.clone(),
            sso_master,
            clock.clone(),
            public_url,
        )?;
        let oauth = OAuthServer::new(OAuthServerParts {
            config: OAuthConfig::new(issuers),
            tokens: tokens.clone(),
            keys: keys.clone(),
            accounts: accounts.clone(),
            clients: clients.clone(),
            grants: GrantStore::new(store.clone(), clock.clone()),
            sessions: SessionStore::new(store, clock.clone(), session_ttl),
            tenants: repos.tenants.clone(),
            users: repos.users.clone(),
            mailer,
            sso: Some(sso.clone()),
            clock,
        });
        Ok(SecurityStack {
            repos,
            keys,
            tokens,
            accounts,
            clients,
            api_keys,
            sso,
            limiter,
            oauth,
        })
    }
}
