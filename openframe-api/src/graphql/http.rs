//! The HTTP surface: POST/GET `/api/graphql`, WebSocket subscriptions at
//! `/api/graphql/ws` (graphql-transport-ws and the legacy graphql-ws), and GraphiQL at
//! `/api/graphiql`.

use std::sync::Arc;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Data, ErrorExtensions as _};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use openframe_core::{Clock, Error, ErrorCode};
use openframe_security::auth::Principal;

use super::context::{Caller, may_use_api};
use super::error::{fill_codes, to_gql};
use super::loaders::Loaders;
use super::schema::{self, GraphqlSchema};
use super::state::GraphqlState;

/// The GraphQL endpoint.
pub const GRAPHQL_PATH: &str = "/api/graphql";
/// The WebSocket endpoint for subscriptions.
pub const GRAPHQL_WS_PATH: &str = "/api/graphql/ws";
/// The GraphiQL explorer.
pub const GRAPHIQL_PATH: &str = "/api/graphiql";

#[derive(Clone)]
struct App {
    schema: GraphqlSchema,
    state: GraphqlState,
}

/// The GraphQL router. It expects `openframe_security::auth::AuthLayer` in front of it: the
/// tenant and user come only from the [`Principal`] that layer puts in the request
/// extensions. Without one, `/api/graphql` answers 401 (`UNAUTHORIZED`); principals without
/// the ADMIN role (agents, API keys, plain users) get 403. GraphiQL itself is a static page.
///
/// ```no_run
/// # fn wire(stack: openframe_security::stack::SecurityStack, state: openframe_api::graphql::GraphqlState) -> axum::Router {
/// use openframe_security::auth::AuthLayer;
/// openframe_api::graphql::router(state).layer(AuthLayer::new(stack.authenticator()))
/// # }
/// ```
pub fn router(state: GraphqlState) -> Router {
    let app = App {
        schema: schema::build(&state),
        state,
    };
    Router::new()
        .route(GRAPHQL_PATH, get(get_graphql).post(post_graphql))
        .route(GRAPHQL_WS_PATH, get(websocket))
        .route(GRAPHIQL_PATH, get(graphiql))
        .with_state(app)
}

/// A GraphQL-shaped error response with an HTTP status.
fn error_response(err: Error) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = async_graphql::Response::from_errors(vec![
        to_gql(err).into_server_error(async_graphql::Pos::default()),
    ]);
    (status, axum::Json(body)).into_response()
}

/// An error about the HTTP request itself (status not from the core mapping).
fn request_error(status: StatusCode, message: &str) -> Response {
    let err = async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", ErrorCode::ValidationError.as_str());
        ext.set("httpStatus", status.as_u16());
    });
    let body = async_graphql::Response::from_errors(vec![
        err.into_server_error(async_graphql::Pos::default()),
    ]);
    (status, axum::Json(body)).into_response()
}

/// The caller from the request extensions, or why not (answered 401/403).
fn authorize(principal: Option<&Principal>) -> Result<Caller, Error> {
    match principal {
        None => Err(Error::Unauthenticated),
        Some(p) if !may_use_api(p) => Err(Error::PermissionDenied),
        Some(p) => Ok(Caller {
            principal: p.clone(),
        }),
    }
}

async fn execute(app: &App, caller: Caller, request: async_graphql::Request) -> Response {
    let loaders = Loaders::new(caller.tenant(), &app.state);
    let request = request.data(caller).data(loaders);
    let mut response = app.schema.execute(request).await;
    fill_codes(&mut response, app.state.clock.now());
    axum::Json(response).into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("application/json")
                || v.eq_ignore_ascii_case("application/graphql-response+json")
        })
}

async fn post_graphql(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let caller = match authorize(parts.extensions.get::<Principal>()) {
        Ok(c) => c,
        Err(e) => return error_response(e),
    };
    // Only JSON: a form post cannot reach this endpoint from another site without CORS.
    if !is_json(&parts.headers) {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        );
    }
    let limit = app.state.limits.max_body_bytes;
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return request_error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"),
    };
    let request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(_) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "the body is not a GraphQL request in JSON",
            );
        }
    };
    execute(&app, caller, request).await
}

/// Whether the operation a request would run is a query (GET must not change state).
fn is_query(request: &async_graphql::Request) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        // The executor reports the syntax error.
        return true;
    };
    let ty = match &doc.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match &request.operation_name {
            Some(name) => ops.get(name.as_str()).map(|op| op.node.ty),
            None => ops.values().next().map(|op| op.node.ty),
        },
    };
    ty.is_none_or(|t| t == OperationType::Query)
}

async fn get_graphql(State(app): State<App>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let caller = match authorize(parts.extensions.get::<Principal>()) {
        Ok(c) => c,
        Err(e) => return error_response(e),
    };
    let query = parts.uri.query().unwrap_or_default();
    if query.len() > app.state.limits.max_body_bytes {
        return request_error(StatusCode::URI_TOO_LONG, "the query string is too long");
    }
    let request = match async_graphql::http::parse_query_string(query) {
        Ok(r) => r,
        Err(_) => return request_error(StatusCode::BAD_REQUEST, "malformed GraphQL GET request"),
    };
    if !is_query(&request) {
        return request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations and subscriptions need POST or WebSocket",
        );
    }
    execute(&app, caller, request).await
}

async fn websocket(
    State(app): State<App>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let caller = match authorize(parts.extensions.get::<Principal>()) {
        Ok(c) => c,
        Err(e) => return error_response(e),
    };
    // The socket lives no longer than the access token it was opened with (API keys and
    // tokens without `exp` are not bounded here).
    let expires = openframe_security::auth::presented_token_expiry(&parts);
    let clock = app.state.clock.clone();
    let schema = app.schema.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let mut data = Data::default();
            data.insert(caller);
            let serve = GraphQLWebSocket::new(socket, schema, protocol)
                .with_data(data)
                .serve();
            match expires {
                Some(at) => {
                    tokio::select! {
                        () = serve => {}
                        () = token_expired(clock, at) => {
                            tracing::debug!("GraphQL subscription socket closed: token expired");
                        }
                    }
                }
                None => serve.await,
            }
        })
}

/// Completes once `clock` reaches `at`, checking at least every second (so an injected clock
/// moved in a test is noticed).
async fn token_expired(clock: Arc<dyn Clock>, at: openframe_core::Timestamp) {
    loop {
        let left = (at - clock.now()).to_std().unwrap_or_default();
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(std::time::Duration::from_secs(1))).await;
    }
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint(GRAPHQL_PATH)
            .subscription_endpoint(GRAPHQL_WS_PATH)
            .title("OpenFrame GraphQL")
            .finish(),
    )
}
