//! The one JSON error shape of every REST route: `{code, message, timestamp, fieldErrors?}`.
//!
//! Handlers return [`ApiError`]; the response carries the error in its extensions and the
//! [`render_errors`] middleware writes the body with the injected clock's time, so every error
//! of a router (handler errors, extractor rejections, 404/405/413 of the framework) has the
//! same shape and a testable timestamp.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openframe_core::{Clock, Error, ErrorResponse, FieldError, Timestamp};

/// Code of a request body over the size limit (413).
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
/// Code of a request body that is not JSON where JSON is required (415).
pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
/// Code of a route that exists without the requested method (405).
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
/// Code of an API key that lacks the scope a route needs (403).
pub const INSUFFICIENT_SCOPE: &str = "INSUFFICIENT_SCOPE";

/// An error answer of a REST route. Build it from an [`openframe_core::Error`] (`?` works) or
/// with [`ApiError::new`] for the HTTP-only codes.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    field_errors: Option<Vec<FieldError>>,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with an explicit status, stable code and secret-free message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            field_errors: None,
            retry_after: None,
        }
    }

    /// 404 `NOT_FOUND` for `entity`.
    pub fn not_found(entity: &'static str) -> Self {
        Error::not_found(entity).into()
    }

    /// 400 `VALIDATION_ERROR` on `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::invalid(field, reason.into()).into()
    }

    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            PAYLOAD_TOO_LARGE,
            format!("the request body exceeds {limit} bytes"),
        )
    }

    /// 403 `INSUFFICIENT_SCOPE`: the API key lacks `scope`.
    pub fn insufficient_scope(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            INSUFFICIENT_SCOPE,
            format!("the API key lacks the scope {scope}"),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The JSON body at `now`.
    pub fn body(&self, now: Timestamp) -> ErrorResponse {
        ErrorResponse {
            code: self.code.to_string(),
            message: self.message.clone(),
            timestamp: now,
            field_errors: self.field_errors.clone(),
        }
    }

    /// The complete response at `now` (JSON body, `Retry-After` where due).
    pub fn response_at(&self, now: Timestamp) -> Response {
        let mut response = (self.status, axum::Json(self.body(now))).into_response();
        if let Some(retry) = self.retry_after {
            let secs = retry.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        if matches!(error, Error::Backend { .. } | Error::Internal(_)) {
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
        }
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = match &error {
            Error::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        };
        let body = error.to_response(Timestamp::default());
        Self {
            status,
            code: Cow::Borrowed(error.code().as_str()),
            message: body.message,
            field_errors: body.field_errors,
            retry_after,
        }
    }
}

/// Marks a response passed through from elsewhere (the tool proxy's upstream answers), which
/// [`render_errors`] must leave exactly as it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Passthrough;

/// Marks a response whose body [`render_errors`] writes.
#[derive(Debug, Clone)]
struct PendingError(Arc<ApiError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response
            .extensions_mut()
            .insert(PendingError(Arc::new(self)));
        response
    }
}

/// Middleware (`axum::middleware::map_response_with_state`) that renders [`ApiError`]s with the
/// clock's time, and turns the framework's bare 404, 405 and 413 answers into the JSON shape.
pub async fn render_errors(
    State(clock): State<Arc<dyn Clock>>,
    mut response: Response,
) -> Response {
    if let Some(PendingError(error)) = response.extensions_mut().remove::<PendingError>() {
        let mut rendered = error.response_at(clock.now());
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                rendered.headers_mut().append(name.clone(), value.clone());
            }
        }
        return rendered;
    }
    if response.headers().contains_key(header::CONTENT_TYPE)
        || response.extensions().get::<Passthrough>().is_some()
    {
        return response;
    }
    let bare = match response.status() {
        StatusCode::NOT_FOUND => Some(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such route",
        )),
        StatusCode::METHOD_NOT_ALLOWED => Some(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            METHOD_NOT_ALLOWED,
            "method not allowed on this route",
        )),
        StatusCode::PAYLOAD_TOO_LARGE => Some(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            PAYLOAD_TOO_LARGE,
            "the request body is too large",
        )),
        _ => None,
    };
    match bare {
        Some(error) => {
            let mut rendered = error.response_at(clock.now());
            if let Some(allow) = response.headers().get(header::ALLOW) {
                rendered.headers_mut().insert(header::ALLOW, allow.clone());
            }
            rendered
        }
        None => response,
    }
}

/// `Result` of a REST handler.
pub type ApiResult<T> = Result<T, ApiError>;
