//! The API of `openframe-api` behind its gateway: identity (`/sas`), the internal REST API
//! (`/api`), GraphQL (`/api/graphql`, GraphiQL at `/api/graphiql`), the external REST API
//! (`/api/v1`), agent enrollment (`/clients`), the agent gateway (`/ws/agent`), the original
//! agent's NATS sockets (`/ws/nats`, `/ws/nats-logs`; see [`crate::nats_proxy`]) and the tool
//! proxy (`/tools/{toolKey}/...`), with CORS, body limits and request ids from
//! [`GatewayConfig`](openframe_api::gateway::GatewayConfig).

use axum::Router;
use openframe_agent::{enrollment, gateway as agent_gateway};
use openframe_api::gateway::{ApiAccess, GatewayBuilder, ToolProxy};
use openframe_api::graphql::{self, GraphqlParts, GraphqlState};
use openframe_api::rest::external::ExternalApi;
use openframe_api::rest::internal::InternalApi;
use openframe_core::Result;
use openframe_security::auth::AuthLayer;

use crate::config::ServerConfig;
use crate::platform::Platform;

/// Whether GraphQL (and GraphiQL) is served by this build.
pub const GRAPHQL_MOUNTED: bool = true;

/// Every API route of the platform, assembled by the gateway builder.
pub fn router(platform: &Platform, server: &ServerConfig) -> Result<Router> {
    let config = &server.gateway;
    let external = &server.external_api;
    let stack = &platform.stack;
    let clock = platform.clock.clone();
    let store = platform.backends.store.clone();
    let secrets = platform.enrollment.secrets().clone();
    let graphql = graphql::router(
        GraphqlState::new(GraphqlParts {
            repos: stack.repos.clone(),
            store: store.clone(),
            accounts: stack.accounts.clone(),
            api_keys: stack.api_keys.clone(),
            executions: platform.executions.clone(),
            registration: secrets.clone(),
            events: platform.graphql_events.clone(),
            clock: clock.clone(),
        })
        .with_event_store(platform.backends.event_store.clone()),
    )
    // Authenticates; the resolvers check the ADMIN role and answer in GraphQL's shape.
    .layer(AuthLayer::new(stack.authenticator()));
    let external = ExternalApi::from_stack(stack, clock.clone())
        .with_executions(platform.executions.clone(), store)
        .with_quotas(external.quotas())
        .with_events(platform.backends.event_store.clone())
        .with_usage_recording(external.record_usage)
        .build()?;
    GatewayBuilder::new(config.clone(), stack.tokens.clone(), clock.clone())
        .with_identity(stack.router())
        .with_internal_api(InternalApi::from_stack(stack, secrets, clock))
        .with_api(graphql, ApiAccess::SelfChecked)
        .with_external_api(external)
        .with_enrollment(enrollment::router(platform.enrollment.clone()))
        .with_agent_gateway(agent_gateway::router_with_sessions(
            platform.backends.agent_bus.clone(),
            platform.enrollment.authenticator().clone(),
            agent_gateway::GatewayConfig::default(),
            platform.sessions.clone(),
        ))
        .with_nats_proxy(nats_sockets(platform, server)?)
        .with_tool_proxy(ToolProxy::new(
            stack.repos.tools.clone(),
            &config.tool_proxy,
        )?)
        .build()
}

/// `/ws/nats` and `/ws/nats-logs`: the proxy when configured, else a 503 naming the setting.
fn nats_sockets(platform: &Platform, server: &ServerConfig) -> Result<Router> {
    #[cfg(feature = "nats")]
    if let Some(authority) = &platform.nats_authority {
        return crate::nats_proxy::router(platform, authority.clone(), server);
    }
    let _ = (platform, server);
    Ok(crate::nats_proxy::not_configured_router())
}
