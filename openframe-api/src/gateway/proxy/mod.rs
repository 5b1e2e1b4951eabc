//! The tool proxy: `ANY /tools/{toolKey}/{path...}` to the tenant's integrated tool.
//!
//! 1. The caller is authenticated by bearer token and needs the `ADMIN` role.
//! 2. The tool is looked up by key **in the caller's tenant** (another tenant's tool is a 404)
//!    and must be enabled (409 `TOOL_DISABLED`) with an `API` URL (409 `TOOL_NOT_CONFIGURED`).
//! 3. `/tools/{toolKey}` is stripped; the rest of the path must not contain `.`/`..`
//!    segments, encoded slashes or control characters (400). The query is kept, minus the
//!    caller's `authorization`/`access_token` parameters.
//! 4. Hop-by-hop headers and the caller's credentials (`Authorization`, `X-API-Key`, the
//!    `access_token` cookie) are removed; the tool's credential is injected as a header or a
//!    bearer token per its placement, marked sensitive, and never logged.
//! 5. Bodies stream both ways (nothing is buffered whole). TLS is always verified, against
//!    the public roots and/or the configured root CAs.
//! 6. Connect timeout (default 10 s) and response timeout (default 60 s): 504
//!    `UPSTREAM_TIMEOUT`; other upstream failures: 502 `UPSTREAM_UNAVAILABLE`.
//! 7. WebSocket upgrades are passed through (`ws://`/`wss://` to the tool's API URL).

mod forward;
mod headers;
pub mod target;
mod tls;
mod websocket;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use openframe_core::Result;
use openframe_data::IntegratedToolRepository;
use openframe_security::auth::{AuthLayer, Authenticator, Principal, RequireRoleLayer};

use super::ToolProxyConfig;
use crate::rest::internal::ADMIN_ROLE;
use crate::rest::{ApiError, ApiResult};

/// Code of a disabled tool (409).
pub const TOOL_DISABLED: &str = "TOOL_DISABLED";
/// Code of a tool without a usable API URL or credential (409).
pub const TOOL_NOT_CONFIGURED: &str = "TOOL_NOT_CONFIGURED";
/// Code of a tool that could not be reached (502).
pub const UPSTREAM_UNAVAILABLE: &str = "UPSTREAM_UNAVAILABLE";
/// Code of a tool that did not connect or answer in time (504).
pub const UPSTREAM_TIMEOUT: &str = "UPSTREAM_TIMEOUT";

/// The tool proxy (see the [module documentation](self)). Cheap to clone.
#[derive(Clone)]
pub struct ToolProxy {
    tools: Arc<dyn IntegratedToolRepository>,
    client: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl fmt::Debug for ToolProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolProxy")
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl ToolProxy {
    /// A proxy to the tools of `tools`, with the timeouts and TLS roots of `config`.
    pub fn new(tools: Arc<dyn IntegratedToolRepository>, config: &ToolProxyConfig) -> Result<Self> {
        config.validate()?;
        let tls = tls::client_config(config)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(config.connect_timeout())
            .read_timeout(config.response_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| {
                openframe_core::Error::Internal(format!("tool proxy client: {e}").into())
            })?;
        Ok(Self {
            tools,
            client,
            tls,
            connect_timeout: config.connect_timeout(),
            response_timeout: config.response_timeout(),
        })
    }

    /// The router: `/tools/{toolKey}[/...]`, any method, bearer token with role `ADMIN`.
    pub fn router(self, authenticator: Authenticator) -> Router {
        Router::new()
            .route("/tools/{tool_key}", any(handle))
            .route("/tools/{tool_key}/", any(handle))
            .route("/tools/{tool_key}/{*rest}", any(handle))
            .route_layer(RequireRoleLayer::any_of(&[ADMIN_ROLE]))
            .route_layer(AuthLayer::new(authenticator))
            .with_state(self)
    }

    async fn serve(&self, principal: Principal, request: Request) -> ApiResult<Response> {
        let path = request.uri().path().to_owned();
        let (key, tail) = target::split_path(&path)?;
        let tool = self
            .tools
            .find_by_key(principal.tenant(), key)
            .await?
            .ok_or_else(|| ApiError::not_found("integrated tool"))?;
        if !tool.enabled {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                TOOL_DISABLED,
                format!("the tool {key} is disabled"),
            ));
        }
        let base = target::api_base(&tool).ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                TOOL_NOT_CONFIGURED,
                format!("the tool {key} has no usable API URL"),
            )
        })?;
        let query = target::filtered_query(request.uri().query());
        let url = target::join(&base, tail, query.as_deref());
        let mut outbound = headers::outbound(request.headers());
        headers::inject_credential(&tool, &mut outbound)
            .map_err(|m| ApiError::new(StatusCode::CONFLICT, TOOL_NOT_CONFIGURED, m))?;
        if is_websocket_upgrade(&request) {
            return websocket::proxy(self, request, url, outbound, key).await;
        }
        forward::forward(self, request, url, outbound, key).await
    }
}

fn is_websocket_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn handle(
    State(proxy): State<ToolProxy>,
    principal: Principal,
    request: Request,
) -> Response {
    match proxy.serve(principal, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn timeout_error(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        UPSTREAM_TIMEOUT,
        format!("the tool {key} did not answer in time"),
    )
}

fn unavailable_error(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        UPSTREAM_UNAVAILABLE,
        format!("the tool {key} could not be reached"),
    )
}
