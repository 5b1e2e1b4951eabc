//! The agent registration secret: read the active one, rotate.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openframe_core::Secret;
use openframe_security::auth::Principal;

use super::InternalApi;
use crate::rest::error::ApiResult;

fn secret_response(status: StatusCode, secret: &Secret) -> Response {
    let mut response =
        (status, Json(serde_json::json!({ "key": secret.expose() }))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) async fn active(
    State(api): State<InternalApi>,
    principal: Principal,
) -> ApiResult<Response> {
    let secret = api.secrets.active(principal.tenant()).await?;
    Ok(secret_response(StatusCode::OK, &secret))
}

pub(super) async fn rotate(
    State(api): State<InternalApi>,
    principal: Principal,
) -> ApiResult<Response> {
    let secret = api.secrets.rotate(principal.tenant()).await?;
    tracing::info!(tenant = %principal.tenant(), "registration secret rotated through the API");
    Ok(secret_response(StatusCode::CREATED, &secret))
}
