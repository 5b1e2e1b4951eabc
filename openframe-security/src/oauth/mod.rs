//! The per-tenant OAuth 2.0 / OpenID Connect authorization server.
//!
//! Every tenant is its own issuer, `{public_url}/sas/{tenant}` by default, with:
//!
//! | endpoint | path (under the issuer) |
//! |---|---|
//! | OIDC discovery / RFC 8414 metadata | `/.well-known/openid-configuration`, `/.well-known/oauth-authorization-server` |
//! | JWKS | `/oauth2/jwks` |
//! | authorize (code + mandatory PKCE S256) | `/oauth2/authorize` |
//! | token (`authorization_code`, `refresh_token`, `client_credentials`) | `/oauth2/token` |
//! | revocation (RFC 7009) | `/oauth2/revoke` |
//! | introspection (RFC 7662) | `/oauth2/introspect` |
//! | userinfo | `/userinfo` |
//! | logout (RP-initiated) | `/connect/logout` |
//! | login page (CSRF-protected form) | `/login` |
//! | invitation acceptance, password reset | `/invitations/accept`, `/password-reset/request`, `/password-reset/confirm` |
//! | SSO to an upstream provider | `/sso/{provider}/start`, `/sso/{provider}/callback` |
//!
//! plus tenant sign-up at `POST /sas/oauth/register`. Build the router with [`router`].

pub mod clients;
mod discovery;
pub mod error;
pub mod grants;
mod handlers;
pub mod html;
mod mailer;
pub mod pkce;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use openframe_core::Clock;
use openframe_data::{TenantRepository, UserRepository};

pub use clients::{ClientRegistry, ClientType, GrantType, NewClient, OAuthClient};
pub use error::{OAuthError, OAuthErrorCode};
pub use grants::GrantStore;
pub use handlers::{TokenResponse, router};
pub use mailer::{DisabledMailer, Mailer, OutgoingMail, RecordingMailer};
pub use session::SessionStore;

use crate::accounts::AccountService;
use crate::keys::KeyStore;
use crate::sso::SsoService;
use crate::token::{IssuerConfig, TokenService};

/// Settings of the authorization server.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Maps tenants to issuers and back.
    pub issuers: IssuerConfig,
    /// The audience every access token carries besides the client (the platform's API).
    pub api_audience: String,
    /// Authorization code lifetime (default 5 minutes).
    pub code_ttl: Duration,
    /// Refresh token lifetime (default 30 days).
    pub refresh_ttl: Duration,
    /// Set `Secure` on cookies (default: when the public URL is https).
    pub secure_cookies: bool,
}

impl OAuthConfig {
    /// Defaults for `issuers`.
    pub fn new(issuers: IssuerConfig) -> Self {
        let secure_cookies = issuers.public_url.scheme() == "https";
        Self {
            issuers,
            api_audience: "openframe-api".to_owned(),
            code_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            secure_cookies,
        }
    }
}

/// Everything the endpoints need; cheap to clone.
#[derive(Clone)]
pub struct OAuthServer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: OAuthConfig,
    pub(crate) tokens: TokenService,
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) accounts: AccountService,
    pub(crate) clients: ClientRegistry,
    pub(crate) grants: GrantStore,
    pub(crate) sessions: SessionStore,
    pub(crate) tenants: Arc<dyn TenantRepository>,
    pub(crate) users: Arc<dyn UserRepository>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) sso: Option<SsoService>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The parts an [`OAuthServer`] is built from.
#[derive(Debug, Clone)]
pub struct OAuthServerParts {
    /// Settings.
    pub config: OAuthConfig,
    /// Token issuance and verification.
    pub tokens: TokenService,
    /// Signing keys (for JWKS).
    pub keys: Arc<dyn KeyStore>,
    /// Tenants, users, passwords, invitations.
    pub accounts: AccountService,
    /// Registered clients.
    pub clients: ClientRegistry,
    /// Codes and refresh tokens.
    pub grants: GrantStore,
    /// Login sessions.
    pub sessions: SessionStore,
    /// Tenants.
    pub tenants: Arc<dyn TenantRepository>,
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Delivers invitation and password-reset mail.
    pub mailer: Arc<dyn Mailer>,
    /// Upstream identity providers (optional).
    pub sso: Option<SsoService>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl OAuthServer {
    /// Assembles the server.
    pub fn new(parts: OAuthServerParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: parts.config,
                tokens: parts.tokens,
                keys: parts.keys,
                accounts: parts.accounts,
                clients: parts.clients,
                grants: parts.grants,
                sessions: parts.sessions,
                tenants: parts.tenants,
                users: parts.users,
                mailer: parts.mailer,
                sso: parts.sso,
                clock: parts.clock,
            }),
        }
    }

    /// The client registry (to register the console, agents, ...).
    pub fn clients(&self) -> &ClientRegistry {
        &self.inner.clients
    }

    /// The token service.
    pub fn tokens(&self) -> &TokenService {
        &self.inner.tokens
    }

    /// The grant store (to revoke a client's tokens).
    pub fn grants(&self) -> &GrantStore {
        &self.inner.grants
    }

    /// The account service.
    pub fn accounts(&self) -> &AccountService {
        &self.inner.accounts
    }

    /// The settings.
    pub fn config(&self) -> &OAuthConfig {
        &self.inner.config
    }
}
