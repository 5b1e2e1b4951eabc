//! The external REST API under `/api/v1`, for integrations.
//!
//! - Authenticated with `X-API-Key: ak_<16 hex>.sk_<32 hex>` ([`ApiKeyService`]); every
//!   refusal is the same 401 `UNAUTHORIZED`.
//! - Scoped: each route needs a scope of the key ([`scopes`]); a missing one is 403
//!   `INSUFFICIENT_SCOPE`.
//! - Rate-limited per key over the configured [`Quota`]s: every answer after authentication
//!   carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; over the
//!   limit the answer is 429 `RATE_LIMITED` with `Retry-After`.
//! - Paged with `limit` (1..=100, default 20; anything else is 400, never clamped) and
//!   `cursor` (the previous page's `pageInfo.endCursor`).
//! - Documented: the OpenAPI 3 document generated from this code is served at
//!   `/api/v1/openapi.json` and rendered at `/api/v1/docs` (both without a key).
//! - Counted: each answered request adds to its key's usage statistics through a batching
//!   [`UsageRecorder`] (one store write per key per flush, not per request); call
//!   [`ExternalApi::flush_usage`] (or flush the recorder) on shutdown.
//!
//! Every call is confined to the key's tenant.

mod devices;
mod docs;
pub mod dto;
mod events;
mod executions;
mod openapi;
mod organizations;
mod responses;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use openframe_agent::executions::ExecutionService;
use openframe_core::{Clock, Error};
use openframe_data::Repositories;
use openframe_data::store::DocumentStore;
use openframe_security::api_keys::{ApiKeyService, AuthenticatedKey, FlushReport, UsageRecorder};
use openframe_security::ratelimit::{Decision, Quota, RateLimitKey, RateLimiter};
use openframe_security::stack::SecurityStack;

pub use openapi::{ExternalApiDoc, openapi_document};

use super::error::{ApiError, render_errors};

/// The scopes the external API checks.
pub mod scopes {
    /// `GET /api/v1/devices...`
    pub const DEVICES_READ: &str = "devices:read";
    /// `GET /api/v1/organizations...`
    pub const ORGANIZATIONS_READ: &str = "organizations:read";
    /// `GET /api/v1/events...`
    pub const EVENTS_READ: &str = "events:read";
    /// `GET /api/v1/tools...`
    pub const TOOLS_READ: &str = "tools:read";
    /// `GET /api/v1/executions...`
    pub const EXECUTIONS_READ: &str = "executions:read";
    /// `POST /api/v1/executions`: run a command.
    pub const EXECUTIONS_WRITE: &str = "executions:write";
    /// Every scope above.
    pub const ALL: &[&str] = &[
        DEVICES_READ,
        ORGANIZATIONS_READ,
        EVENTS_READ,
        TOOLS_READ,
        EXECUTIONS_READ,
        EXECUTIONS_WRITE,
    ];
}

/// The header that carries the key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Largest accepted request body (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The default quotas per key: 100 per minute, 1,000 per hour, 10,000 per day (the
/// original's documented defaults).
pub const DEFAULT_QUOTAS: [Quota; 3] = [
    Quota::per_minute(100),
    Quota::per_hour(1_000),
    Quota::per_day(10_000),
];

/// The external API (cheap to clone: the parts are shared).
#[derive(Debug, Clone)]
pub struct ExternalApi {
    parts: Arc<ExternalApiParts>,
}

impl std::ops::Deref for ExternalApi {
    type Target = ExternalApiParts;

    fn deref(&self) -> &ExternalApiParts {
        &self.parts
    }
}

/// What every request of the external API reads (behind [`ExternalApi`]'s `Deref`).
#[derive(Debug)]
pub struct ExternalApiParts {
    repos: Repositories,
    api_keys: Arc<ApiKeyService>,
    limiter: Arc<dyn RateLimiter>,
    quotas: Arc<[Quota]>,
    executions: Option<executions::Executions>,
    events: Option<events::Events>,
    record_usage: bool,
    usage: UsageRecorder,
    clock: Arc<dyn Clock>,
}

/// Builds an [`ExternalApi`].
#[derive(Debug)]
pub struct ExternalApiBuilder {
    api: ExternalApiParts,
}

impl ExternalApi {
    /// A builder over the repositories, the key service, the limiter and the clock.
    pub fn builder(
        repos: Repositories,
        api_keys: Arc<ApiKeyService>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
    ) -> ExternalApiBuilder {
        ExternalApiBuilder {
            api: ExternalApiParts {
                repos,
                limiter,
                quotas: Arc::from(DEFAULT_QUOTAS.as_slice()),
                executions: None,
                events: None,
                record_usage: true,
                usage: api_keys.usage_recorder().clone(),
                api_keys,
                clock,
            },
        }
    }

    /// A builder over a [`SecurityStack`] (its repositories, keys and limiter).
    pub fn from_stack(stack: &SecurityStack, clock: Arc<dyn Clock>) -> ExternalApiBuilder {
        Self::builder(
            stack.repos.clone(),
            stack.api_keys.clone(),
            stack.limiter.clone(),
            clock,
        )
    }

    /// The recorder that counts key usage (by default the key service's shared
    /// [`ApiKeyService::usage_recorder`]).
    pub fn usage_recorder(&self) -> &UsageRecorder {
        &self.usage
    }

    /// Writes the usage counted so far (see [`UsageRecorder::flush`]).
    pub async fn flush_usage(&self) -> FlushReport {
        self.usage.flush().await
    }

    /// The router (paths include the `/api/v1` prefix).
    pub fn router(self) -> Router {
        let clock = self.clock.clone();
        let mut protected = Router::new()
            .route("/api/v1/devices", get(devices::list))
            .route("/api/v1/devices/filters", get(devices::filters))
            .route("/api/v1/devices/{machine_id}", get(devices::get_one))
            .route("/api/v1/organizations", get(organizations::list))
            .route(
                "/api/v1/organizations/{organization_id}",
                get(organizations::get_one),
            )
            .route("/api/v1/tools", get(tools::list))
            .route("/api/v1/tools/{tool_id}", get(tools::get_one));
        if self.executions.is_some() {
            protected = protected
                .route(
                    "/api/v1/executions",
                    get(executions::list).post(executions::run),
                )
                .route(
                    "/api/v1/executions/{execution_id}",
                    get(executions::get_one),
                );
        }
        if self.events.is_some() {
            protected = protected
                .route("/api/v1/events", get(events::list))
                .route("/api/v1/events/{event_id}", get(events::get_one));
        }
        let protected =
            protected.route_layer(axum::middleware::from_fn_with_state(self.clone(), gate));
        Router::new()
            .route("/api/v1/openapi.json", get(docs::openapi_json))
            .route("/api/v1/docs", get(docs::page))
            .merge(protected)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
            .layer(axum::middleware::map_response_with_state(
                clock,
                render_errors,
            ))
    }
}

impl ExternalApiBuilder {
    /// The quotas every key is held to (default [`DEFAULT_QUOTAS`]); 1 to 8 valid quotas.
    pub fn with_quotas(mut self, quotas: Vec<Quota>) -> Self {
        self.api.quotas = Arc::from(quotas);
        self
    }

    /// Serves `/api/v1/executions` over `service`, listing from `store` (where the service
    /// keeps its executions).
    pub fn with_executions(
        mut self,
        service: ExecutionService,
        store: Arc<dyn DocumentStore>,
    ) -> Self {
        self.api.executions = Some(executions::Executions::new(
            service,
            store,
            self.api.clock.clone(),
        ));
        self
    }

    /// Serves `/api/v1/events` from `store`.
    pub fn with_events(mut self, store: Arc<dyn openframe_stream::store::EventStore>) -> Self {
        self.api.events = Some(store);
        self
    }

    /// Whether each request is counted in the key's usage statistics (default on).
    pub fn with_usage_recording(mut self, on: bool) -> Self {
        self.api.record_usage = on;
        self
    }

    /// Counts usage with `recorder` instead of the key service's shared one (e.g. another
    /// flush interval). Whoever owns it flushes it on shutdown.
    pub fn with_usage_recorder(mut self, recorder: UsageRecorder) -> Self {
        self.api.usage = recorder;
        self
    }

    /// Checks the quotas and builds.
    pub fn build(self) -> openframe_core::Result<ExternalApi> {
        Quota::validate_all(&self.api.quotas)?;
        Ok(ExternalApi {
            parts: Arc::new(self.api),
        })
    }
}

/// The API key a request was authenticated with (an extractor).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<AuthenticatedKey>);

impl Caller {
    /// The tenant every call is confined to.
    pub fn tenant(&self) -> &openframe_core::TenantId {
        &self.0.tenant
    }

    /// 403 `INSUFFICIENT_SCOPE` unless the key grants `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(scope))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Error::Unauthenticated.into())
    }
}

fn unauthorized(message: &'static str) -> Response {
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        message,
    )
    .into_response()
}

fn add_rate_headers(response: &mut Response, decision: &Decision) {
    for (name, value) in decision.headers() {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// Authenticates the key, applies its rate limit and stamps the rate-limit headers.
async fn gate(State(api): State<ExternalApi>, mut request: Request, next: Next) -> Response {
    let Some(raw) = request.headers().get(API_KEY_HEADER) else {
        return unauthorized("an X-API-Key header is required");
    };
    let Ok(raw) = raw.to_str() else {
        return unauthorized("invalid API key");
    };
    let key = match api.api_keys.authenticate(raw).await {
        Ok(key) => key,
        Err(Error::Unauthenticated) => return unauthorized("invalid API key"),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let decision = match RateLimitKey::new("api-key", Some(&key.tenant), key.key.id.as_str()) {
        Ok(limit_key) => api.limiter.check(&limit_key, &api.quotas).await,
        Err(e) => Err(e),
    };
    let decision = match decision {
        Ok(d) => d,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (tenant, key_id) = (key.tenant.clone(), key.key.id.clone());
    let mut response = if decision.allowed {
        request.extensions_mut().insert(Caller(Arc::new(key)));
        next.run(request).await
    } else {
        tracing::info!(tenant = %tenant, key_id = %key_id, "api key over its rate limit");
        ApiError::from(Error::RateLimited {
            retry_after: decision.retry_after.unwrap_or_default(),
        })
        .into_response()
    };
    add_rate_headers(&mut response, &decision);
    if api.record_usage {
        let failed = response.status().is_client_error() || response.status().is_server_error();
        api.usage.record(&tenant, &key_id, failed, api.clock.now());
    }
    response
}
