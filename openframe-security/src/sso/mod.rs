//! SSO federation: per-tenant upstream OpenID Connect providers (Google and Microsoft presets,
//! or any OIDC issuer).
//!
//! The flow is the authorization code flow with PKCE to the upstream: `begin` stores a
//! single-use state (with the PKCE verifier and nonce) and returns the upstream authorization
//! URL; `complete` consumes the state, redeems the code at the upstream token endpoint,
//! validates the upstream ID token against the upstream's JWKS (issuer, audience, expiry,
//! nonce, signature), requires a verified email in the provider's allowed domains, and
//! resolves the user: an invitation being accepted (the email must match it), an existing
//! user, or, when the provider allows it, a newly provisioned one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openframe_core::{
    Clock, Error, Result, Secret, TenantId, Timestamp, User, UserRole, UserStatus, validate,
};
use openframe_data::entity::Entity;
use openframe_data::store::{
    DocumentStore, FieldDef, FieldKind, IndexDef, Partition, Schema, Value,
};
use openframe_data::{DocumentRepository, Repositories};
use serde::{Deserialize, Serialize};

use crate::accounts::AccountService;
use crate::crypto::MasterKey;
use crate::oauth::grants::{new_opaque_token, token_hash};
use crate::oauth::pkce;

/// Which kind of upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProviderKind {
    /// Google (`https://accounts.google.com`).
    Google,
    /// Microsoft Entra ID (`https://login.microsoftonline.com/{tenant}/v2.0`).
    Microsoft,
    /// Any OpenID Connect issuer.
    Oidc,
}

/// An upstream identity provider of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoProvider {
    /// Path-safe id, e.g. `google` (used in `/sso/{id}/...`).
    pub id: String,
    /// Kind.
    pub kind: ProviderKind,
    /// Button label.
    pub display_name: String,
    /// The upstream issuer (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// Our client id at the upstream.
    pub client_id: String,
    /// Our client secret at the upstream, sealed with the master key (never returned).
    pub(crate) client_secret_sealed: Option<String>,
    /// Email domains allowed to sign in (empty: any domain of an existing user or invitation,
    /// and no auto-provisioning).
    pub allowed_domains: Vec<String>,
    /// Create unknown users whose email domain is allowed.
    pub auto_provision: bool,
    /// Roles of auto-provisioned users.
    pub provision_roles: Vec<UserRole>,
    /// Disabled providers are hidden and refused.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Version.
    pub version: u64,
}

impl SsoProvider {
    /// A Google provider.
    pub fn google(client_id: impl Into<String>, now: Timestamp) -> Self {
        Self::new(
            "google",
            ProviderKind::Google,
            "Google",
            "https://accounts.google.com",
            client_id,
            now,
        )
    }

    /// A Microsoft Entra ID provider for one directory (`tenant_id` or a verified domain).
    pub fn microsoft(directory: &str, client_id: impl Into<String>, now: Timestamp) -> Self {
        let issuer = format!("https://login.microsoftonline.com/{directory}/v2.0");
        Self::new(
            "microsoft",
            ProviderKind::Microsoft,
            "Microsoft",
            &issuer,
            client_id,
            now,
        )
    }

    /// Any OIDC issuer.
    pub fn oidc(
        id: &str,
        display_name: &str,
        issuer: &str,
        client_id: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self::new(id, ProviderKind::Oidc, display_name, issuer, client_id, now)
    }

    fn new(
        id: &str,
        kind: ProviderKind,
        name: &str,
        issuer: &str,
        client_id: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: id.to_owned(),
            kind,
            display_name: name.to_owned(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret_sealed: None,
            allowed_domains: Vec::new(),
            auto_provision: false,
            provision_roles: vec![UserRole::Admin],
            enabled: true,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Checks the configuration: path-safe id, an https issuer (http only on loopback).
    pub fn validate(&self) -> Result<()> {
        openframe_core::id::validate_id("providerId", &self.id)?;
        validate::name("displayName", &self.display_name)?;
        validate::name("clientId", &self.client_id)?;
        validate::list("allowedDomains", &self.allowed_domains)?;
        let url = url::Url::parse(&self.issuer)
            .map_err(|_| Error::invalid("issuer", "must be an absolute URL"))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(Error::invalid("issuer", "must use https"));
        }
        if self.auto_provision && self.allowed_domains.is_empty() {
            return Err(Error::invalid(
                "allowedDomains",
                "auto-provisioning needs at least one allowed domain",
            ));
        }
        Ok(())
    }

    fn domain_allowed(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.allowed_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

static PROVIDERS: Schema = Schema {
    collection: "sso_providers",
    entity: "sso provider",
    fields: &[FieldDef::required("enabled", FieldKind::Bool)],
    indexes: &[IndexDef {
        fields: &["enabled"],
    }],
    unique: &[],
};

/// A pending upstream login (single use, ten minutes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingLogin {
    id: String,
    provider_id: String,
    code_verifier: String,
    nonce: String,
    return_to: String,
    invitation: Option<String>,
    expires_at: Timestamp,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: u64,
}

static PENDING: Schema = Schema {
    collection: "sso_pending",
    entity: "sso login",
    fields: &[FieldDef::required("expires_at", FieldKind::Int)],
    indexes: &[IndexDef {
        fields: &["expires_at"],
    }],
    unique: &[],
};

macro_rules! sso_entity {
    ($ty:ty, $schema:ident, $name:literal, |$s:ident| $values:expr, $validate:expr) => {
        impl Entity for $ty {
            const SCHEMA: &'static Schema = &$schema;
            fn doc_id(&self) -> &str {
                &self.id
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn set_version(&mut self, version: u64) {
                self.version = version;
            }
            fn validate(&$s) -> Result<()> {
                $validate
            }
            fn index_values(&$s) -> Vec<Value> {
                $values
            }
            fn search_texts(&self) -> Vec<&str> {
                Vec::new()
            }
            fn to_body(&self) -> Result<String> {
                openframe_data::entity::serde_body(self)
            }
            fn from_body(body: &str) -> Result<Self> {
                openframe_data::entity::serde_from_body($name, body)
            }
        }
        openframe_data::timestamped!($ty);
    };
}

sso_entity!(
    SsoProvider,
    PROVIDERS,
    "sso provider",
    |self| vec![Value::Bool(self.enabled)],
    SsoProvider::validate(self)
);
sso_entity!(
    PendingLogin,
    PENDING,
    "sso login",
    |self| vec![Value::time(self.expires_at)],
    Ok(())
);

/// The upstream's discovery document (the fields we use).
#[derive(Debug, Clone, Deserialize)]
struct UpstreamMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Debug, Clone)]
struct Upstream {
    metadata: UpstreamMetadata,
    jwks: jsonwebtoken::jwk::JwkSet,
    fetched_at: Timestamp,
}

/// Where a completed upstream login leads.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoOutcome {
    /// The signed-in user.
    pub user: User,
    /// The page to continue to (the authorize request that started the login).
    pub return_to: String,
}

#[derive(Debug, Deserialize)]
struct UpstreamTokens {
    id_token: String,
}

#[derive(Debug, Deserialize)]
struct UpstreamClaims {
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
    given_name: Option<String>,
    family_name: Option<String>,
}

/// Configures providers and runs upstream logins.
#[derive(Clone)]
pub struct SsoService {
    providers: DocumentRepository<SsoProvider>,
    pending: DocumentRepository<PendingLogin>,
    repos: Repositories,
    accounts: AccountService,
    master: Arc<MasterKey>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    upstreams: Arc<Mutex<HashMap<String, Upstream>>>,
    public_url: url::Url,
}

impl std::fmt::Debug for SsoService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoService")
            .field("public_url", &self.public_url.as_str())
            .finish_non_exhaustive()
    }
}

/// How long upstream metadata and keys are cached.
const UPSTREAM_CACHE: Duration = Duration::from_secs(600);

fn upstream_err(what: &'static str) -> Error {
    Error::Unavailable {
        reason: what.into(),
    }
}

impl SsoService {
    /// An SSO service; `public_url` is this server's external base URL (for callback URLs).
    pub fn new(
        store: Arc<dyn DocumentStore>,
        repos: Repositories,
        accounts: AccountService,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        public_url: url::Url,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}").into()))?;
        Ok(Self {
            providers: DocumentRepository::new(store.clone(), clock.clone()),
            pending: DocumentRepository::new(store, clock.clone()),
            repos,
            accounts,
            master: Arc::new(master),
            http,
            clock,
            upstreams: Arc::new(Mutex::new(HashMap::new())),
            public_url,
        })
    }

    fn aad(tenant: &TenantId, provider: &str) -> Vec<u8> {
        format!("sso:{tenant}:{provider}").into_bytes()
    }

    /// Adds or replaces a provider; the client secret is sealed with the master key.
    pub async fn save_provider(
        &self,
        tenant: &TenantId,
        mut provider: SsoProvider,
        client_secret: Option<&Secret>,
    ) -> Result<SsoProvider> {
        provider.validate()?;
        if let Some(secret) = client_secret {
            validate::max_chars("clientSecret", secret.expose(), validate::MAX_TEXT_LEN)?;
            provider.client_secret_sealed = Some(
                self.master
                    .seal(secret.expose().as_bytes(), &Self::aad(tenant, &provider.id))?,
            );
        }
        let p = Partition::tenant(tenant);
        match self.providers.get(&p, &provider.id).await? {
            Some(existing) => {
                provider.version = existing.version;
                provider.created_at = existing.created_at;
                if provider.client_secret_sealed.is_none() {
                    provider.client_secret_sealed = existing.client_secret_sealed;
                }
                self.providers.update(&p, provider).await
            }
            None => self.providers.insert(&p, provider).await,
        }
    }

    /// The tenant's enabled providers (for the login page).
    pub async fn enabled_providers(&self, tenant: &TenantId) -> Result<Vec<SsoProvider>> {
        self.providers
            .find_all(
                &Partition::tenant(tenant),
                openframe_data::store::Filter::Eq("enabled", Value::Bool(true)),
                50,
            )
            .await
    }

    fn callback_url(&self, tenant: &TenantId, provider: &str) -> String {
        format!(
            "{}/sas/{tenant}/sso/{provider}/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }

    async fn provider(&self, tenant: &TenantId, id: &str) -> Result<SsoProvider> {
        if openframe_core::id::validate_id("providerId", id).is_err() {
            return Err(Error::not_found("sso provider"));
        }
        match self.providers.get(&Partition::tenant(tenant), id).await? {
            Some(p) if p.enabled => Ok(p),
            _ => Err(Error::not_found("sso provider")),
        }
    }

    async fn upstream(&self, provider: &SsoProvider, refresh_keys: bool) -> Result<Upstream> {
        let now = self.clock.now();
        if !refresh_keys {
            let cached = self
                .upstreams
                .lock()
                .map_err(|_| Error::Internal("sso cache poisoned".into()))?
                .get(&provider.issuer)
                .cloned();
            if let Some(u) = cached.filter(|u| {
                now - u.fetched_at < chrono::Duration::from_std(UPSTREAM_CACHE).unwrap_or_default()
            }) {
                return Ok(u);
            }
        }
        let url = format!("{}/.well-known/openid-configuration", provider.issuer);
        let metadata: UpstreamMetadata = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|_| upstream_err("the identity provider's discovery document is unreachable"))?
            .json()
            .await
            .map_err(|_| upstream_err("the identity provider's discovery document is malformed"))?;
        if metadata.issuer.trim_end_matches('/') != provider.issuer {
            return Err(upstream_err("the identity provider reports another issuer"));
        }
        let jwks: jsonwebtoken::jwk::JwkSet = self
            .http
            .get(&metadata.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|_| upstream_err("the identity provider's keys are unreachable"))?
            .json()
            .await
            .map_err(|_| upstream_err("the identity provider's keys are malformed"))?;
        let upstream = Upstream {
            metadata,
            jwks,
            fetched_at: now,
        };
        self.upstreams
            .lock()
            .map_err(|_| Error::Internal("sso cache poisoned".into()))?
            .insert(provider.issuer.clone(), upstream.clone());
        Ok(upstream)
    }

    /// Starts an upstream login; returns the upstream authorization URL to redirect to.
    /// `invitation` is an invitation token being accepted through this provider.
    pub async fn begin(
        &self,
        tenant: &TenantId,
        provider_id: &str,
        return_to: &str,
        invitation: Option<&str>,
    ) -> Result<String> {
        let provider = self.provider(tenant, provider_id).await?;
        if invitation.is_some_and(|i| i.len() > 512) || return_to.len() > 4096 {
            return Err(Error::invalid("request", "too long"));
        }
        let upstream = self.upstream(&provider, false).await?;
        let state = new_opaque_token();
        let verifier = format!("{}{}", new_opaque_token(), new_opaque_token());
        let nonce = new_opaque_token();
        let now = self.clock.now();
        let pending = PendingLogin {
            id: token_hash(&state),
            provider_id: provider.id.clone(),
            code_verifier: verifier.clone(),
            nonce: nonce.clone(),
            return_to: return_to.to_owned(),
            invitation: invitation.map(str::to_owned),
            expires_at: openframe_data::lock::add(now, Duration::from_secs(600)),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.pending
            .insert(&Partition::tenant(tenant), pending)
            .await?;
        let mut url = url::Url::parse(&upstream.metadata.authorization_endpoint).map_err(|_| {
            upstream_err("the identity provider's authorization endpoint is malformed")
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", &self.callback_url(tenant, &provider.id))
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce::challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.to_string())
    }

    /// Completes an upstream login from the callback's `code` and `state`.
    pub async fn complete(
        &self,
        tenant: &TenantId,
        provider_id: &str,
        code: &str,
        state: &str,
    ) -> Result<SsoOutcome> {
        let denied = || Error::PermissionDenied;
        if code.is_empty() || code.len() > 2048 || state.is_empty() || state.len() > 256 {
            return Err(Error::invalid("state", "malformed callback"));
        }
        let p = Partition::tenant(tenant);
        let id = token_hash(state);
        let pending = self
            .pending
            .get(&p, &id)
            .await?
            .ok_or_else(|| Error::invalid("state", "unknown or used login"))?;
        // Single use: the state is consumed before anything else happens.
        match self.pending.delete_hard(&p, &id).await {
            Ok(()) => {}
            Err(Error::NotFound { .. }) => {
                return Err(Error::invalid("state", "unknown or used login"));
            }
            Err(e) => return Err(e),
        }
        if pending.expires_at <= self.clock.now() || pending.provider_id != provider_id {
            return Err(Error::invalid("state", "expired login"));
        }
        let provider = self.provider(tenant, provider_id).await?;
        let upstream = self.upstream(&provider, false).await?;
        let secret = match &provider.client_secret_sealed {
            Some(sealed) => Some(self.master.open(sealed, &Self::aad(tenant, &provider.id))?),
            None => None,
        };
        let secret = secret.map(|s| String::from_utf8_lossy(&s).into_owned());
        let redirect_uri = self.callback_url(tenant, &provider.id);
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", pending.code_verifier.as_str()),
        ];
        if secret.is_none() {
            form.push(("client_id", provider.client_id.as_str()));
        }
        let mut request = self
            .http
            .post(&upstream.metadata.token_endpoint)
            .form(&form);
        if let Some(s) = &secret {
            request = request.basic_auth(&provider.client_id, Some(s));
        }
        let response = request
            .send()
            .await
            .map_err(|_| upstream_err("the identity provider is unreachable"))?;
        if !response.status().is_success() {
            tracing::warn!(tenant = %tenant, provider = %provider.id, status = %response.status(), "upstream token exchange refused");
            return Err(denied());
        }
        let tokens: UpstreamTokens = response
            .json()
            .await
            .map_err(|_| upstream_err("the identity provider answered malformed tokens"))?;
        let claims = self
            .validate_id_token(&provider, &upstream, &tokens.id_token)
            .await?;
        if claims.nonce.as_deref() != Some(pending.nonce.as_str()) {
            return Err(denied());
        }
        let verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        let Some(email) = claims
            .email
            .filter(|_| verified)
            .map(|e| e.trim().to_lowercase())
        else {
            return Err(denied());
        };
        if !provider.allowed_domains.is_empty() && !provider.domain_allowed(&email) {
            return Err(denied());
        }
        let user = if let Some(invitation) = &pending.invitation {
            self.accounts
                .accept_invitation_sso(
                    tenant,
                    invitation,
                    &email,
                    claims.given_name.as_deref(),
                    claims.family_name.as_deref(),
                )
                .await?
        } else {
            match self.repos.users.find_by_email(tenant, &email).await? {
                Some(u) if u.status == UserStatus::Active => u,
                Some(_) => return Err(denied()),
                None if provider.auto_provision && provider.domain_allowed(&email) => {
                    let mut user =
                        User::new(&email, provider.provision_roles.clone(), self.clock.now());
                    user.email_verified = true;
                    user.first_name = claims.given_name.clone();
                    user.last_name = claims.family_name.clone();
                    self.repos.users.insert(tenant, user).await?
                }
                None => return Err(denied()),
            }
        };
        Ok(SsoOutcome {
            user,
            return_to: pending.return_to,
        })
    }

    async fn validate_id_token(
        &self,
        provider: &SsoProvider,
        upstream: &Upstream,
        id_token: &str,
    ) -> Result<UpstreamClaims> {
        if id_token.len() > 16 * 1024 {
            return Err(Error::PermissionDenied);
        }
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| Error::PermissionDenied)?;
        let kid = header.kid.clone().ok_or(Error::PermissionDenied)?;
        let mut upstream = upstream.clone();
        if upstream.jwks.find(&kid).is_none() {
            // A rotated upstream key: refresh once.
            upstream = self.upstream(provider, true).await?;
        }
        let jwk = upstream.jwks.find(&kid).ok_or(Error::PermissionDenied)?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| Error::PermissionDenied)?;
        let allowed = [
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::Algorithm::RS384,
            jsonwebtoken::Algorithm::RS512,
            jsonwebtoken::Algorithm::PS256,
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::EdDSA,
        ];
        if !allowed.contains(&header.alg) {
            return Err(Error::PermissionDenied);
        }
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[
            provider.issuer.as_str(),
            format!("{}/", provider.issuer).as_str(),
        ]);
        validation.set_audience(&[provider.client_id.as_str()]);
        validation.leeway = 60;
        let data =
            jsonwebtoken::decode::<UpstreamClaims>(id_token, &key, &validation).map_err(|e| {
                tracing::warn!(provider = %provider.id, error = %e, "upstream ID token refused");
                Error::PermissionDenied
            })?;
        Ok(data.claims)
    }
}

// SsoProvider carries the sealed secret in its body; expose only what is safe.
impl SsoProvider {
    /// Whether a client secret is configured (safe to show).
    pub fn has_client_secret(&self) -> bool {
        self.client_secret_sealed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_except_loopback() {
        let now = Timestamp::default();
        assert!(
            SsoProvider::oidc("corp", "Corp", "http://idp.example", "c", now)
                .validate()
                .is_err()
        );
        assert!(
            SsoProvider::oidc("corp", "Corp", "http://127.0.0.1:8080/sas/x", "c", now)
                .validate()
                .is_ok()
        );
        assert!(SsoProvider::google("c", now).validate().is_ok());
        assert!(
            SsoProvider::microsoft("contoso.onmicrosoft.com", "c", now)
                .validate()
                .is_ok()
        );
        let mut p = SsoProvider::google("c", now);
        p.auto_provision = true;
        assert!(p.validate().is_err(), "auto-provisioning without domains");
        assert!(
            SsoProvider::oidc("../x", "X", "https://idp.example", "c", now)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn domain_allow_list_is_exact() {
        let mut p = SsoProvider::google("c", Timestamp::default());
        p.allowed_domains = vec!["acme.example".into()];
        assert!(p.domain_allowed("a@acme.example"));
        assert!(p.domain_allowed("a@ACME.example"));
        assert!(!p.domain_allowed("a@evil-acme.example"));
        assert!(!p.domain_allowed("a@acme.example.evil"));
    }
}
