//! Tower/axum layers that authenticate requests and check roles.
//!
//! [`AuthLayer`] reads, in order: `Authorization: Bearer <jwt>`, the `access_token` cookie,
//! the `authorization` query parameter (WebSocket upgrades only, since browsers cannot set
//! headers there), and `X-API-Key`. A valid credential puts a [`Principal`] in the request
//! extensions; an invalid one is answered `401` with `WWW-Authenticate`; no credential passes
//! the request on unauthenticated. [`RequireRoleLayer`] then demands a principal with one of
//! the given roles (`401` without one, `403` with the wrong one). Handlers take the
//! [`Principal`] as an extractor.
//!
//! ```no_run
//! # fn build(auth: openframe_security::auth::Authenticator) -> axum::Router {
//! use axum::{Router, routing::get};
//! use openframe_security::auth::{AuthLayer, Principal, RequireRoleLayer};
//! async fn me(principal: Principal) -> String { principal.tenant().to_string() }
//! Router::new()
//!     .route("/api/me", get(me))
//!     .layer(RequireRoleLayer::any_of(&["ADMIN"]))
//!     .layer(AuthLayer::new(auth))
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openframe_core::{ApiKeyId, MachineId, TenantId, UserId};
use tower::{Layer, Service};

use crate::api_keys::ApiKeyService;
use crate::token::TokenService;

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A person, through an access token.
    User {
        /// The tenant.
        tenant: TenantId,
        /// The user.
        user_id: UserId,
        /// Roles (effective: OWNER comes with ADMIN).
        roles: Vec<String>,
        /// Granted scopes.
        scopes: Vec<String>,
        /// The client the token was issued to.
        client_id: String,
    },
    /// A machine agent, through an access token with `machine_id`.
    Machine {
        /// The tenant.
        tenant: TenantId,
        /// The machine.
        machine_id: MachineId,
        /// Roles (`AGENT`).
        roles: Vec<String>,
        /// The agent's client.
        client_id: String,
    },
    /// A service client (client credentials, no machine).
    Client {
        /// The tenant.
        tenant: TenantId,
        /// The client.
        client_id: String,
        /// Roles configured for the client.
        roles: Vec<String>,
        /// Granted scopes.
        scopes: Vec<String>,
    },
    /// An integration, through `X-API-Key`.
    ApiKey {
        /// The tenant.
        tenant: TenantId,
        /// The key id.
        key_id: ApiKeyId,
        /// The key's owner.
        user_id: UserId,
        /// The key's scopes.
        scopes: Vec<String>,
    },
}

impl Principal {
    /// The tenant every request of this principal is confined to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::User { tenant, .. }
            | Self::Machine { tenant, .. }
            | Self::Client { tenant, .. }
            | Self::ApiKey { tenant, .. } => tenant,
        }
    }

    /// Whether the principal has `role` (API keys have no roles).
    pub fn has_role(&self, role: &str) -> bool {
        match self {
            Self::User { roles, .. } | Self::Machine { roles, .. } | Self::Client { roles, .. } => {
                roles.iter().any(|r| r == role)
            }
            Self::ApiKey { .. } => false,
        }
    }

    /// Whether the principal was granted `scope` (`*` and `prefix:*` wildcards honoured).
    pub fn has_scope(&self, scope: &str) -> bool {
        let scopes = match self {
            Self::User { scopes, .. }
            | Self::Client { scopes, .. }
            | Self::ApiKey { scopes, .. } => scopes,
            Self::Machine { .. } => return false,
        };
        scopes.iter().any(|s| {
            s == scope
                || s == "*"
                || s.strip_suffix(":*")
                    .is_some_and(|p| scope.split(':').next() == Some(p))
        })
    }
}

/// The `exp` of the JWT access token a request carries (`Authorization: Bearer` or
/// `?authorization=`), read without verification: call it only after the token was verified.
pub fn presented_token_expiry(parts: &Parts) -> Option<openframe_core::Timestamp> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned());
    let token = bearer.or_else(|| {
        url::form_urlencoded::parse(parts.uri.query()?.as_bytes())
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.trim_start_matches("Bearer ").to_owned())
    })?;
    let claims = token.split('.').nth(1)?;
    let claims: serde_json::Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .ok()?,
        )
        .ok()?
    };
    let exp = claims.get("exp")?.as_i64()?;
    chrono::DateTime::from_timestamp(exp, 0)
}

/// Turns request credentials into a [`Principal`].
#[derive(Clone)]
pub struct Authenticator {
    tokens: TokenService,
    api_keys: Option<Arc<ApiKeyService>>,
    audience: Option<Arc<str>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Why a credential was refused (safe to return in `WWW-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    /// `invalid_token` or `invalid_api_key`.
    pub error: &'static str,
    /// A short, secret-free reason.
    pub description: &'static str,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let challenge = format!(
            "Bearer error=\"{}\", error_description=\"{}\"",
            self.error, self.description
        );
        let body = axum::Json(serde_json::json!({
            "code": "UNAUTHORIZED",
            "message": self.description,
            "timestamp": chrono::Utc::now(),
        }));
        let mut r = (StatusCode::UNAUTHORIZED, body).into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.trim_start_matches("Bearer ").to_owned())
}

impl Authenticator {
    /// Authenticates bearer tokens with `tokens`, and `X-API-Key` with `api_keys` if given.
    pub fn new(tokens: TokenService, api_keys: Option<Arc<ApiKeyService>>) -> Self {
        Self {
            tokens,
            api_keys,
            audience: None,
        }
    }

    /// Requires access tokens to carry this audience.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(Arc::from(audience.into()));
        self
    }

    /// The principal behind the request's credentials: `Ok(None)` when there are none.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthRejection> {
        let token = bearer(&parts.headers)
            .map(str::to_owned)
            .or_else(|| cookie(&parts.headers, "access_token").map(str::to_owned))
            .or_else(|| {
                is_websocket_upgrade(&parts.headers)
                    .then(|| query_token(parts))
                    .flatten()
            });
        if let Some(token) = token {
            let verified = self
                .tokens
                .verify_access_token(&token, self.audience.as_deref())
                .await
                .map_err(|e| AuthRejection {
                    error: "invalid_token",
                    description: e.description(),
                })?;
            let c = &verified.claims;
            let scopes: Vec<String> = c
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let tenant = verified.tenant.clone();
            return Ok(Some(match (&c.user_id, &c.machine_id) {
                (Some(user_id), _) => Principal::User {
                    tenant,
                    user_id: user_id.clone(),
                    roles: c.roles.clone(),
                    scopes,
                    client_id: c.client_id.clone(),
                },
                (None, Some(machine_id)) => Principal::Machine {
                    tenant,
                    machine_id: machine_id.clone(),
                    roles: c.roles.clone(),
                    client_id: c.client_id.clone(),
                },
                (None, None) => Principal::Client {
                    tenant,
                    client_id: c.client_id.clone(),
                    roles: c.roles.clone(),
                    scopes,
                },
            }));
        }
        if let (Some(raw), Some(keys)) = (parts.headers.get("x-api-key"), &self.api_keys) {
            let raw = raw.to_str().map_err(|_| invalid_key())?;
            let key = keys.authenticate(raw).await.map_err(|_| invalid_key())?;
            return Ok(Some(Principal::ApiKey {
                tenant: key.tenant.clone(),
                key_id: key.key.id.clone(),
                user_id: key.key.user_id.clone(),
                scopes: key.key.scopes.clone(),
            }));
        }
        Ok(None)
    }
}

fn invalid_key() -> AuthRejection {
    AuthRejection {
        error: "invalid_api_key",
        description: "invalid API key",
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Authenticates every request (see the module docs).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Authenticator,
}

impl AuthLayer {
    /// A layer using `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    auth: Authenticator,
}

impl<S> Service<Request> for Auth<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let auth = self.auth.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match auth.authenticate(&parts).await {
                Ok(Some(principal)) => {
                    parts.extensions.insert(principal);
                }
                Ok(None) => {}
                Err(rejection) => return Ok(rejection.into_response()),
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}

/// Requires an authenticated principal with one of the given roles.
#[derive(Debug, Clone, Copy)]
pub struct RequireRoleLayer {
    roles: &'static [&'static str],
}

impl RequireRoleLayer {
    /// Any of `roles` (an empty list: any authenticated principal).
    pub fn any_of(roles: &'static [&'static str]) -> Self {
        Self { roles }
    }
}

impl<S> Layer<S> for RequireRoleLayer {
    type Service = RequireRole<S>;
    fn layer(&self, inner: S) -> RequireRole<S> {
        RequireRole {
            inner,
            roles: self.roles,
        }
    }
}

/// The service of [`RequireRoleLayer`].
#[derive(Debug, Clone)]
pub struct RequireRole<S> {
    inner: S,
    roles: &'static [&'static str],
}

fn forbidden() -> Response {
    let body = axum::Json(serde_json::json!({
        "code": "FORBIDDEN",
        "message": "permission denied",
        "timestamp": chrono::Utc::now(),
    }));
    (StatusCode::FORBIDDEN, body).into_response()
}

impl<S> Service<Request> for RequireRole<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let verdict = match request.extensions().get::<Principal>() {
            None => Some(
                AuthRejection {
                    error: "invalid_token",
                    description: "authentication required",
                }
                .into_response(),
            ),
            Some(p) if !self.roles.is_empty() && !self.roles.iter().any(|r| p.has_role(r)) => {
                Some(forbidden())
            }
            Some(_) => None,
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match verdict {
                Some(response) => Ok(response),
                None => inner.call(request).await,
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(AuthRejection {
                error: "invalid_token",
                description: "authentication required",
            })
    }
}
