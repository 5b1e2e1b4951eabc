//! CORS from [`GatewayConfig::cors_origins`](super::GatewayConfig::cors_origins).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use openframe_core::{Error, Result};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `origins`; `None` when the list is empty (same origin only).
pub(super) fn layer(origins: &[String]) -> Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    let allow_headers = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("x-request-id"),
    ];
    let expose_headers = [
        HeaderName::from_static("x-request-id"),
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderName::from_static("x-ratelimit-reset"),
        header::RETRY_AFTER,
    ];
    let base = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(allow_headers)
        .expose_headers(expose_headers)
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Ok(Some(base.allow_origin(AllowOrigin::any())));
    }
    let list = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o)
                .map_err(|_| Error::invalid("cors_origins", "not a valid origin"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(
        base.allow_origin(AllowOrigin::list(list))
            .allow_credentials(true),
    ))
}
