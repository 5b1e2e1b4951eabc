//! [`GatewayBuilder`]: assembles the gateway router from the parts the server passes in.

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use openframe_core::{Clock, Result};
use openframe_security::auth::{AuthLayer, Authenticator, RequireRoleLayer};
use openframe_security::token::TokenService;

use super::body_limit::limit_body;
use super::config::GatewayConfig;
use super::proxy::ToolProxy;
use super::{cors, request_id};
use crate::rest::ApiError;
use crate::rest::error::render_errors;
use crate::rest::external::ExternalApi;
use crate::rest::internal::{ADMIN_ROLE, InternalApi};

/// Who may call an `/api` router added with [`GatewayBuilder::with_api`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiAccess {
    /// A bearer token with the `ADMIN` role (the original's rule for `/api/**`).
    Admin,
    /// The router authenticates and authorizes every route itself.
    SelfChecked,
}

/// Builds the gateway router (see the [module documentation](super)).
///
/// ```no_run
/// # fn build(stack: openframe_security::stack::SecurityStack, clock: std::sync::Arc<dyn openframe_core::Clock>) -> openframe_core::Result<axum::Router> {
/// use openframe_api::gateway::{GatewayBuilder, GatewayConfig};
/// let app = GatewayBuilder::new(GatewayConfig::default(), stack.tokens.clone(), clock)
///     .with_identity(stack.router())
///     .build()?;
/// # Ok(app) }
/// ```
#[derive(Debug)]
pub struct GatewayBuilder {
    config: GatewayConfig,
    authenticator: Authenticator,
    clock: Arc<dyn Clock>,
    limited: Vec<Router>,
    unlimited: Vec<Router>,
    tool_proxy: Option<ToolProxy>,
}

impl GatewayBuilder {
    /// A builder: `tokens` verifies the bearer tokens of `/api` and `/tools` (API keys are not
    /// accepted there), `clock` stamps error bodies.
    pub fn new(config: GatewayConfig, tokens: TokenService, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            authenticator: Authenticator::new(tokens, None),
            clock,
            limited: Vec::new(),
            unlimited: Vec::new(),
            tool_proxy: None,
        }
    }

    /// The identity provider (`SecurityStack::router()`: `/sas/{tenant}/...`).
    pub fn with_identity(mut self, router: Router) -> Self {
        self.limited.push(router);
        self
    }

    /// The internal REST API (`/api/me`, registration secret, API keys).
    pub fn with_internal_api(mut self, api: InternalApi) -> Self {
        self.limited.push(api.router());
        self
    }

    /// Another `/api` router (the GraphQL router), with the given access rule.
    pub fn with_api(mut self, router: Router, access: ApiAccess) -> Self {
        let router = match access {
            ApiAccess::Admin => router
                .route_layer(RequireRoleLayer::any_of(&[ADMIN_ROLE]))
                .route_layer(AuthLayer::new(self.authenticator.clone())),
            ApiAccess::SelfChecked => router,
        };
        self.limited.push(router);
        self
    }

    /// The external REST API (`/api/v1/...`).
    pub fn with_external_api(mut self, api: ExternalApi) -> Self {
        self.limited.push(api.router());
        self
    }

    /// Agent enrollment and tokens (`/clients/...`).
    pub fn with_enrollment(mut self, router: Router) -> Self {
        self.limited.push(router);
        self
    }

    /// The agent WebSocket gateway (`/ws/agent`).
    pub fn with_agent_gateway(mut self, router: Router) -> Self {
        self.unlimited.push(router);
        self
    }

    /// The agents' NATS WebSocket proxy (`/ws/nats`, `/ws/nats-logs`).
    pub fn with_nats_proxy(mut self, router: Router) -> Self {
        self.unlimited.push(router);
        self
    }

    /// The tool proxy (`/tools/{toolKey}/...`).
    pub fn with_tool_proxy(mut self, proxy: ToolProxy) -> Self {
        self.tool_proxy = Some(proxy);
        self
    }

    /// Checks the configuration and assembles the router.
    pub fn build(self) -> Result<Router> {
        self.config.validate()?;
        let cors = cors::layer(&self.config.cors_origins)?;
        let mut app = Router::new();
        for router in self.limited {
            app = app.merge(router.layer(axum::middleware::from_fn_with_state(
                self.config.max_body_bytes,
                limit_body,
            )));
        }
        for router in self.unlimited {
            app = app.merge(router);
        }
        if let Some(proxy) = self.tool_proxy {
            app = app.merge(proxy.router(self.authenticator.clone()).layer(
                axum::middleware::from_fn_with_state(
                    self.config.tool_proxy.max_body_bytes,
                    limit_body,
                ),
            ));
        }
        let app = app
            .fallback(|| async { ApiError::not_found("route").into_response() })
            .layer(axum::middleware::map_response_with_state(
                self.clock.clone(),
                render_errors,
            ));
        let app = match cors {
            Some(cors) => app.layer(cors),
            None => app,
        };
        Ok(app.layer(axum::middleware::from_fn(request_id::request_id)))
    }
}
