//! Plain HTTP forwarding with streamed bodies.

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use http_body::Body as _;
use url::Url;

use super::{ToolProxy, headers, timeout_error, unavailable_error};
use crate::gateway::body_limit::is_length_limit;
use crate::rest::error::Passthrough;
use crate::rest::{ApiError, ApiResult};

pub(super) async fn forward(
    proxy: &ToolProxy,
    request: Request,
    url: Url,
    outbound: HeaderMap,
    key: &str,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let mut builder = proxy.client.request(parts.method, url).headers(outbound);
    if body.size_hint().exact() != Some(0) {
        builder = builder.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let upstream = match tokio::time::timeout(proxy.response_timeout, builder.send()).await {
        Err(_) => {
            tracing::warn!(tool = key, "tool proxy: no response in time");
            return Err(timeout_error(key));
        }
        Ok(Err(e)) => return Err(classify(e, key)),
        Ok(Ok(r)) => r,
    };
    let mut response = Response::builder()
        .status(upstream.status())
        .body(Body::empty())
        .map_err(|_| unavailable_error(key))?;
    *response.headers_mut() = headers::inbound(upstream.headers());
    *response.body_mut() = Body::from_stream(upstream.bytes_stream());
    response.extensions_mut().insert(Passthrough);
    Ok(response)
}

fn classify(error: reqwest::Error, key: &str) -> ApiError {
    let error = error.without_url();
    if is_length_limit(&error) {
        return ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            crate::rest::error::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        );
    }
    if error.is_timeout() {
        tracing::warn!(tool = key, error = %error, "tool proxy: timed out");
        return timeout_error(key);
    }
    tracing::warn!(tool = key, error = %error, "tool proxy: upstream failed");
    unavailable_error(key)
}
