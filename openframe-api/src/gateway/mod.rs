//! The gateway: one axum router with the original's path layout, and the tool proxy.
//!
//! | path | from | credentials checked |
//! |---|---|---|
//! | `/sas/{tenant}/...` | [`GatewayBuilder::with_identity`] (the security stack's router) | by the router |
//! | `/api/...` | [`GatewayBuilder::with_internal_api`] and [`GatewayBuilder::with_api`] (GraphQL) | bearer token, role `ADMIN` |
//! | `/api/v1/...` | [`GatewayBuilder::with_external_api`] | `X-API-Key`, scopes, rate limit |
//! | `/clients/...` | [`GatewayBuilder::with_enrollment`] | by the router (initial key, client secret, agent token) |
//! | `/ws/agent` | [`GatewayBuilder::with_agent_gateway`] | by the router (agent token) |
//! | `/ws/nats`, `/ws/nats-logs` | [`GatewayBuilder::with_nats_proxy`] | by the router |
//! | `/tools/{toolKey}/...` | [`GatewayBuilder::with_tool_proxy`] | bearer token, role `ADMIN` |
//!
//! Around everything: request ids (`X-Request-Id`, see [`request_id`]), CORS from
//! [`GatewayConfig::cors_origins`], body limits answered with 413 `PAYLOAD_TOO_LARGE`, and a
//! fallback 404 `NOT_FOUND`, all in the JSON error shape.

mod body_limit;
mod builder;
mod config;
mod cors;
pub mod proxy;
pub mod request_id;

pub use builder::{ApiAccess, GatewayBuilder};
pub use config::{GatewayConfig, ToolProxyConfig};
pub use proxy::ToolProxy;
