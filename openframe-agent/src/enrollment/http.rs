//! The agent-facing HTTP endpoints, on the paths the original agent calls.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openframe_core::Error;
use openframe_security::auth::{AuthLayer, Principal, RequireRoleLayer};
use serde::Serialize;

use super::error::EnrollmentError;
use super::request::RegistrationRequest;
use super::service::{AGENT_ROLE, EnrollmentService, Registration};

/// Largest accepted request body (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The registration path.
pub const REGISTER_PATH: &str = "/clients/api/agents/register";
/// The reinstall path.
pub const REINSTALL_PATH: &str = "/clients/api/agents/reinstall";
/// The uninstall path.
pub const UNINSTALL_PATH: &str = "/clients/api/agents/uninstall";
/// The agent token path.
pub const TOKEN_PATH: &str = "/clients/oauth/token";
/// The path where an agent reads its tenant's active registration secret.
pub const ACTIVE_SECRET_PATH: &str = "/clients/agent/registration-secret/active";

/// The router of the agent enrollment endpoints:
///
/// | method | path | credentials | answer |
/// |---|---|---|---|
/// | POST | `/clients/api/agents/register` | `X-Initial-Key` | 200 `{machineId, clientId, clientSecret}` |
/// | POST | `/clients/api/agents/reinstall` | `X-Initial-Key`, `X-Machine-Id`, `X-Client-Secret` | 200 `{machineId, clientId, clientSecret}` |
/// | POST | `/clients/api/agents/uninstall` | `X-Machine-Id`, `X-Client-Secret` | 204 |
/// | POST | `/clients/oauth/token` | form `client_id`, `client_secret` | 200 `{accessToken, refreshToken, tokenType, expiresIn}` |
/// | GET | `/clients/agent/registration-secret/active` | bearer token with role `AGENT` | 200 `{key}` |
///
/// Bodies are limited to 64 KiB (413 `PAYLOAD_TOO_LARGE`); malformed JSON is 400
/// `VALIDATION_ERROR`; errors are `{code, message, timestamp, fieldErrors?}`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so initial-key throttling sees the
/// client address (without it every request counts as `0.0.0.0`).
pub fn router(service: EnrollmentService) -> Router {
    let agent_only = Router::new()
        .route(ACTIVE_SECRET_PATH, get(active_secret))
        .route_layer(RequireRoleLayer::any_of(&[AGENT_ROLE]))
        .route_layer(AuthLayer::new(service.authenticator().clone()));
    Router::new()
        .route(REGISTER_PATH, post(register))
        .route(REINSTALL_PATH, post(reinstall))
        .route(UNINSTALL_PATH, post(uninstall))
        .route(TOKEN_PATH, post(token))
        .merge(agent_only)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}

/// The camelCase body of a successful register or reinstall.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationBody<'a> {
    machine_id: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
}

fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn fail(service: &EnrollmentService, error: EnrollmentError) -> Response {
    error.into_response_at(service.clock().now())
}

fn registered(r: &Registration) -> Response {
    no_store(
        Json(RegistrationBody {
            machine_id: r.machine_id.as_str(),
            client_id: &r.client_id,
            client_secret: r.client_secret.expose(),
        })
        .into_response(),
    )
}

/// A header as text: absent is empty; a value that is not visible ASCII becomes a
/// placeholder that matches no key, id or secret (so it is "invalid", not "missing").
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    match headers.get(name) {
        None => "",
        Some(v) => v.to_str().unwrap_or("\u{fffd}"),
    }
}

fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Reads the whole body under [`MAX_BODY_BYTES`].
async fn read_body(body: Body) -> Result<Bytes, EnrollmentError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| EnrollmentError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        })
}

/// Parses a registration request; malformed JSON is a `VALIDATION_ERROR` on `body` that says
/// where, never echoing the input.
fn parse_request(bytes: &[u8]) -> Result<RegistrationRequest, EnrollmentError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "does not match the registration request (a field has the wrong type or a required key is missing)"
            }
            serde_json::error::Category::Eof => "is empty or ends early",
            _ => "is not valid JSON",
        };
        Error::invalid(
            "body",
            format!("{what} (line {}, column {})", e.line(), e.column()),
        )
        .into()
    })
}

async fn register(State(service): State<EnrollmentService>, request: Request) -> Response {
    let ip = client_ip(&request);
    let (parts, body) = request.into_parts();
    let result = async {
        let bytes = read_body(body).await?;
        let req = parse_request(&bytes)?;
        service
            .register(header_text(&parts.headers, "x-initial-key"), &req, ip)
            .await
    }
    .await;
    match result {
        Ok(r) => registered(&r),
        Err(e) => fail(&service, e),
    }
}

async fn reinstall(State(service): State<EnrollmentService>, request: Request) -> Response {
    let ip = client_ip(&request);
    let (parts, body) = request.into_parts();
    let h = &parts.headers;
    let result = async {
        let bytes = read_body(body).await?;
        let req = parse_request(&bytes)?;
        service
            .reinstall(
                header_text(h, "x-initial-key"),
                header_text(h, "x-machine-id"),
                header_text(h, "x-client-secret"),
                &req,
                ip,
            )
            .await
    }
    .await;
    match result {
        Ok(r) => registered(&r),
        Err(e) => fail(&service, e),
    }
}

async fn uninstall(State(service): State<EnrollmentService>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let h = &parts.headers;
    let result = async {
        // The agent sends a dummy body (load balancers refuse body-less POSTs); it is read
        // under the limit and ignored.
        read_body(body).await?;
        service
            .uninstall(
                header_text(h, "x-machine-id"),
                header_text(h, "x-client-secret"),
            )
            .await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => fail(&service, e),
    }
}

async fn token(State(service): State<EnrollmentService>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let bytes = read_body(body).await?;
        service.token(&parts.headers, &bytes).await
    }
    .await;
    match result {
        Ok(t) => no_store(Json(t).into_response()),
        Err(e) => fail(&service, e),
    }
}

#[derive(Serialize)]
struct KeyBody<'a> {
    key: &'a str,
}

async fn active_secret(State(service): State<EnrollmentService>, principal: Principal) -> Response {
    match service.active_secret(principal.tenant()).await {
        Ok(secret) => no_store(
            Json(KeyBody {
                key: secret.expose(),
            })
            .into_response(),
        ),
        Err(e) => fail(&service, e.into()),
    }
}
