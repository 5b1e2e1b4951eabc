//! The original agent's NATS connections, proxied to nats-server in operator mode.
//!
//! The original agent speaks NATS over a WebSocket to the server: `GET /ws/nats` with its
//! access token in `?authorization=` and a `CONNECT` with `user = "machine"`, `pass = ""`, and
//! `GET /ws/nats-logs` with the tenant's registration secret in `x-initial-key` (see
//! `upstream-agent-wire.md`). This module serves both and relays them to nats-server's
//! WebSocket listener, and confinement is enforced by nats-server itself:
//!
//! - [`NatsAuthority`] holds an operator and an account (NATS decentralized auth). It writes
//!   the nats-server configuration ([`NatsAuthority::server_config`]) and mints a user JWT per
//!   connection whose permissions only allow the agent's own subjects
//!   ([`UserPermissions::agent`]) or, for the log socket, `agents.logs`
//!   ([`UserPermissions::log_shipper`]).
//! - [`router`] admits `/ws/nats` only for a valid access token of a machine with role `AGENT`
//!   (`401` without or with an invalid token, `403` for another principal), before any
//!   upstream connection, and `/ws/nats-logs` only for an active registration secret. It then
//!   connects upstream, reads the server's `INFO` (for its `nonce`), passes it on, and replaces
//!   the credentials of the client's first `CONNECT` (`user`, `pass`, `auth_token`, `jwt`,
//!   `sig`, `nkey`) with the user JWT and the nonce signed with that user's seed. The agent never
//!   sees a credential nats-server would accept, so whatever it sends later is judged by
//!   nats-server under that user's permissions.
//!
//! - Inboxes are isolated: the user JWT may subscribe only to the session's own
//!   `_INBOX_<machineId>.>`, and the proxy parses the NATS protocol both ways to move the
//!   agent's default `_INBOX.` names there and back (see the `inbox` module), so one agent
//!   can never receive replies meant for another, while the unmodified agent keeps using
//!   `_INBOX.`.
//!
//! A `/ws/nats` session ends when the access token it was admitted with expires (on the
//! injected clock) or when its machine is uninstalled or disabled ([`crate::sessions`]): the
//! proxy sends `-ERR 'Authorization Violation'` (or `'User Authentication Expired'`) and
//! closes, and the agent reconnects with a fresh token or is refused. The user JWT also
//! expires with the access token (at most [`NatsProxyConfig::max_session`]), so nats-server
//! enforces the same bound itself. Tokens, seeds and JWTs are never logged.

mod authority;
mod inbox;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use openframe_core::{Clock, Timestamp};
use openframe_security::auth::{AuthRejection, Authenticator, Principal};
use url::Url;

pub use authority::{
    AuthoritySeeds, NatsAuthority, ServerConfigOptions, UserCredentials, UserPermissions,
    inbox_pattern,
};

use crate::enrollment::{AGENT_ROLE, RegistrationSecrets};
use crate::sessions::{AgentSessions, presented_token_expiry};
use inbox::Inbox;
use relay::Scope;

/// The agent's main NATS socket.
pub const NATS_PATH: &str = "/ws/nats";
/// The agent's log-shipping NATS socket.
pub const NATS_LOGS_PATH: &str = "/ws/nats-logs";
/// The header carrying the registration secret on the log socket.
pub const INITIAL_KEY_HEADER: &str = "x-initial-key";

/// Shortest user JWT lifetime the proxy mints (a token about to expire still gets a minute).
const MIN_SESSION: Duration = Duration::from_secs(60);

/// How the proxy reaches nats-server and whom it admits.
#[derive(Debug, Clone)]
pub struct NatsProxyConfig {
    /// nats-server's WebSocket listener, e.g. `ws://127.0.0.1:8080`.
    pub upstream: Url,
    /// Signs the per-connection user JWTs (its account must be preloaded in nats-server).
    pub authority: NatsAuthority,
    /// Verifies the agents' access tokens.
    pub authenticator: Authenticator,
    /// Resolves registration secrets for `/ws/nats-logs` (`None`: that route answers 404).
    pub secrets: Option<RegistrationSecrets>,
    /// The clock the access tokens are issued with (to compute how long one stays valid).
    pub clock: Arc<dyn Clock>,
    /// Longest lifetime of a user JWT (and so of a proxied connection without reconnecting).
    pub max_session: Duration,
    /// Largest WebSocket message accepted from a client (NATS default `max_payload` is 1 MiB).
    pub max_client_message_bytes: usize,
    /// Largest WebSocket message accepted from nats-server (it may batch several messages).
    pub max_upstream_message_bytes: usize,
    /// Time allowed to connect upstream and read its `INFO`, and for the client's `CONNECT`.
    pub handshake_timeout: Duration,
    /// Live agent sessions: a `/ws/nats` session ends when its token expires or its machine
    /// is uninstalled or disabled (see [`crate::sessions`]).
    pub sessions: AgentSessions,
}

impl NatsProxyConfig {
    /// A configuration with the default limits: sessions of at most 1 h, client messages of
    /// at most 1 MiB + 64 KiB, upstream messages of at most 16 MiB, a 10 s handshake.
    pub fn new(
        upstream: Url,
        authority: NatsAuthority,
        authenticator: Authenticator,
        secrets: Option<RegistrationSecrets>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            upstream,
            authority,
            authenticator,
            secrets,
            max_session: Duration::from_secs(3600),
            max_client_message_bytes: (1 << 20) + (64 << 10),
            max_upstream_message_bytes: 16 << 20,
            handshake_timeout: Duration::from_secs(10),
            sessions: AgentSessions::new(clock.clone()),
            clock,
        }
    }

    /// Uses `sessions` (shared with the event sink that ends sessions on uninstall).
    pub fn with_sessions(mut self, sessions: AgentSessions) -> Self {
        self.sessions = sessions;
        self
    }
}

/// `GET /ws/nats` and `GET /ws/nats-logs` (see the [module documentation](self)).
pub fn router(config: NatsProxyConfig) -> Router {
    Router::new()
        .route(NATS_PATH, get(agent_socket))
        .route(NATS_LOGS_PATH, get(logs_socket))
        .with_state(Arc::new(config))
}

type Shared = Arc<NatsProxyConfig>;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = axum::Json(serde_json::json!({
        "code": code,
        "message": message,
        "timestamp": chrono::Utc::now(),
    }));
    (status, body).into_response()
}

fn unauthorized(description: &'static str) -> Response {
    AuthRejection {
        error: "invalid_token",
        description,
    }
    .into_response()
}

fn request_parts(uri: Uri, headers: HeaderMap) -> Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.uri = uri;
    parts.headers = headers;
    parts
}

/// When a session admitted now must end, in wall-clock time (nats-server checks `exp` against
/// its own clock): the token's remaining lifetime, within [`MIN_SESSION`, `max_session`].
fn session_expiry(config: &NatsProxyConfig, token_exp: Option<Timestamp>) -> Timestamp {
    let max = config.max_session.max(MIN_SESSION);
    let remaining = token_exp
        .map(|exp| {
            exp.timestamp()
                .saturating_sub(config.clock.now().timestamp())
        })
        .map_or(max, |secs| {
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        });
    let remaining = remaining.clamp(MIN_SESSION, max);
    chrono::Utc::now() + chrono::Duration::from_std(remaining).unwrap_or(chrono::Duration::zero())
}

async fn agent_socket(
    State(config): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let parts = request_parts(uri, headers);
    let principal = match config.authenticator.authenticate(&parts).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return unauthorized("an access token is required"),
        Err(rejection) => return rejection.into_response(),
    };
    let Principal::Machine {
        machine_id, tenant, ..
    } = &principal
    else {
        return error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "an agent token is required",
        );
    };
    if !principal.has_role(AGENT_ROLE) {
        return error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "an agent token is required",
        );
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let token_exp = presented_token_expiry(&parts);
    let Ok(session) = config.sessions.open(tenant, machine_id, token_exp) else {
        return unauthorized("the access token has expired");
    };
    let expires = session_expiry(&config, token_exp);
    let creds = match config.authority.user_jwt_for(machine_id, Some(expires)) {
        Ok(creds) => creds,
        Err(e) => {
            tracing::error!(error = %e, "could not mint a NATS user");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "internal error",
            );
        }
    };
    tracing::info!(tenant = %tenant, machine = %machine_id, "agent NATS connection admitted");
    let scope = Scope {
        inbox: Inbox::new(machine_id.as_str()),
        own_subjects: Some(format!("machine.{machine_id}.")),
        session: Some(session),
    };
    relay::open(config, ws, creds, scope, format!("machine {machine_id}")).await
}

async fn logs_socket(
    State(config): State<Shared>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(secrets) = &config.secrets else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found");
    };
    let presented = headers
        .get(INITIAL_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let tenant = match secrets.resolve(presented).await {
        Ok(tenant) => tenant,
        Err(e) => {
            tracing::debug!(code = e.code(), "agent log socket refused");
            return e.into_response_at(config.clock.now());
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let expires = session_expiry(&config, None);
    let inbox_tag = format!("~logs-{}", uuid::Uuid::new_v4().simple());
    let creds =
        match config
            .authority
            .log_shipper_jwt(&format!("logs-{tenant}"), &inbox_tag, Some(expires))
        {
            Ok(creds) => creds,
            Err(e) => {
                tracing::error!(error = %e, "could not mint a NATS user");
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "internal error",
                );
            }
        };
    tracing::info!(tenant = %tenant, "agent log connection admitted");
    let scope = Scope {
        inbox: Inbox::new(&inbox_tag),
        own_subjects: None,
        session: None,
    };
    relay::open(config, ws, creds, scope, format!("logs of {tenant}")).await
}
