//! The internal REST API under `/api`, for the web console.
//!
//! | method | path | role | answer |
//! |---|---|---|---|
//! | GET | `/api/me` | any signed-in principal | `{authenticated, user?, tenantId, roles, kind}` |
//! | GET | `/api/agent/registration-secret/active` | ADMIN | `{key}` (404 when none yet) |
//! | POST | `/api/agent/registration-secret/generate` | ADMIN | 201 `{key}`; the old secret stops working |
//! | GET | `/api/api-keys` | ADMIN | the caller's keys, paged (`limit`, `cursor`) |
//! | POST | `/api/api-keys` | ADMIN | 201 `{apiKey, fullKey}`: the only time the secret is shown |
//! | GET | `/api/api-keys/{keyId}` | ADMIN | the key's metadata |
//! | PATCH | `/api/api-keys/{keyId}` | ADMIN | `{enabled}`: enable or disable |
//! | DELETE | `/api/api-keys/{keyId}` | ADMIN | 204; the key stops working |
//! | POST | `/api/api-keys/{keyId}/regenerate` | ADMIN | 201 `{apiKey, fullKey}`: new id and secret, the old key is deleted |
//!
//! Credentials: `Authorization: Bearer <access token>` (or the `access_token` cookie), verified
//! by the security crate's [`AuthLayer`]. Every call is confined to the token's tenant. API keys
//! are not accepted here (they carry no role).

mod api_keys;
mod me;
mod secrets;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use openframe_agent::enrollment::RegistrationSecrets;
use openframe_core::Clock;
use openframe_data::Repositories;
use openframe_security::api_keys::ApiKeyService;
use openframe_security::auth::{AuthLayer, Authenticator, RequireRoleLayer};
use openframe_security::stack::SecurityStack;

use super::error::render_errors;

/// The role the internal API requires for everything but `/api/me`.
pub const ADMIN_ROLE: &str = "ADMIN";
/// Largest accepted request body of the internal API (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The parts the internal API works with.
#[derive(Debug, Clone)]
pub struct InternalApi {
    repos: Repositories,
    api_keys: Arc<ApiKeyService>,
    secrets: RegistrationSecrets,
    authenticator: Authenticator,
    clock: Arc<dyn Clock>,
}

impl InternalApi {
    /// The internal API over explicit parts.
    pub fn new(
        repos: Repositories,
        api_keys: Arc<ApiKeyService>,
        secrets: RegistrationSecrets,
        authenticator: Authenticator,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repos,
            api_keys,
            secrets,
            authenticator,
            clock,
        }
    }

    /// The internal API over a [`SecurityStack`] and the registration secrets; it accepts
    /// bearer tokens only (never `X-API-Key`).
    pub fn from_stack(
        stack: &SecurityStack,
        secrets: RegistrationSecrets,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(
            stack.repos.clone(),
            stack.api_keys.clone(),
            secrets,
            Authenticator::new(stack.tokens.clone(), None),
            clock,
        )
    }

    /// The router (paths include the `/api` prefix).
    pub fn router(self) -> Router {
        let clock = self.clock.clone();
        let auth = AuthLayer::new(self.authenticator.clone());
        let admin = Router::new()
            .route(
                "/api/agent/registration-secret/active",
                get(secrets::active),
            )
            .route(
                "/api/agent/registration-secret/generate",
                post(secrets::rotate),
            )
            .route("/api/api-keys", get(api_keys::list).post(api_keys::create))
            .route(
                "/api/api-keys/{key_id}",
                get(api_keys::get_one)
                    .patch(api_keys::set_enabled)
                    .delete(api_keys::revoke),
            )
            .route(
                "/api/api-keys/{key_id}/regenerate",
                post(api_keys::regenerate),
            )
            .route_layer(RequireRoleLayer::any_of(&[ADMIN_ROLE]));
        let signed_in = Router::new()
            .route("/api/me", get(me::me))
            .route_layer(RequireRoleLayer::any_of(&[]));
        admin
            .merge(signed_in)
            .route_layer(auth)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
            .layer(axum::middleware::map_response_with_state(
                clock,
                render_errors,
            ))
    }
}
