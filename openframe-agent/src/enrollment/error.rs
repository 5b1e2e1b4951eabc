//! The errors of enrollment, with the stable codes the original agent branches on.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openframe_core::{ErrorResponse, Timestamp};
use openframe_security::oauth::OAuthErrorCode;

/// What went wrong while enrolling an agent or issuing its tokens.
///
/// The four credential errors carry the codes of the original agent protocol
/// (`INITIAL_KEY_EMPTY`, `INITIAL_KEY_INVALID`, `CLIENT_SECRET_EMPTY`, `CLIENT_SECRET_INVALID`,
/// all HTTP 401): the agent falls back to a fresh registration when a reinstall answers a code
/// starting with `CLIENT_SECRET_`. Everything else wraps [`openframe_core::Error`] and keeps
/// its code and status. No variant ever carries a secret, a hash or a sealed value.
///
/// ```
/// use openframe_agent::enrollment::EnrollmentError;
/// let e = EnrollmentError::ClientSecretInvalid;
/// assert_eq!((e.code(), e.http_status()), ("CLIENT_SECRET_INVALID", 401));
/// let e = EnrollmentError::from(openframe_core::Error::invalid("osType", "must be one of ..."));
/// assert_eq!((e.code(), e.http_status()), ("VALIDATION_ERROR", 400));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollmentError {
    /// No `X-Initial-Key` (or a blank one) was presented.
    #[error("the initial key (registration secret) is required")]
    InitialKeyEmpty,
    /// The initial key is not the active registration secret of any active tenant.
    #[error("the initial key (registration secret) is invalid")]
    InitialKeyInvalid,
    /// No `X-Client-Secret` (or a blank one) was presented.
    #[error("the client secret is required")]
    ClientSecretEmpty,
    /// The machine's client did not authenticate: wrong secret, unknown machine, another
    /// tenant's machine or an uninstalled one (one error, so machine ids cannot be probed).
    #[error("the client secret is invalid")]
    ClientSecretInvalid,
    /// The machine's tenant no longer exists or is not active (HTTP 410, which the original
    /// agent understands as "tenant gone").
    #[error("the tenant no longer exists")]
    TenantGone,
    /// The request body exceeds the limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The token endpoint refused the grant (an RFC 6749 error other than `invalid_client`).
    #[error("{message}")]
    Grant {
        /// The OAuth error code (`invalid_grant`, `unsupported_grant_type`, ...).
        code: OAuthErrorCode,
        /// A secret-free description.
        message: String,
    },
    /// Any other error (validation, rate limiting, storage, ...), with its own code.
    #[error(transparent)]
    Core(#[from] openframe_core::Error),
}

impl EnrollmentError {
    /// The stable code of this error, e.g. `INITIAL_KEY_INVALID`, `VALIDATION_ERROR`, or the
    /// OAuth error code for [`EnrollmentError::Grant`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::InitialKeyEmpty => "INITIAL_KEY_EMPTY",
            Self::InitialKeyInvalid => "INITIAL_KEY_INVALID",
            Self::ClientSecretEmpty => "CLIENT_SECRET_EMPTY",
            Self::ClientSecretInvalid => "CLIENT_SECRET_INVALID",
            Self::TenantGone => "TENANT_GONE",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::Grant { code, .. } => code.as_str(),
            Self::Core(e) => e.code().as_str(),
        }
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InitialKeyEmpty
            | Self::InitialKeyInvalid
            | Self::ClientSecretEmpty
            | Self::ClientSecretInvalid => 401,
            Self::TenantGone => 410,
            Self::PayloadTooLarge { .. } => 413,
            Self::Grant { code, .. } => match code {
                OAuthErrorCode::InvalidClient | OAuthErrorCode::InvalidToken => 401,
                OAuthErrorCode::SlowDown => 429,
                OAuthErrorCode::ServerError => 500,
                _ => 400,
            },
            Self::Core(e) => e.http_status(),
        }
    }

    /// How long to wait before retrying, for rate-limited requests.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Core(openframe_core::Error::RateLimited { retry_after }) => Some(*retry_after),
            _ => None,
        }
    }

    /// A message safe to show to clients (no backend detail, no secret).
    pub fn public_message(&self) -> String {
        match self {
            Self::Core(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    /// The JSON body `{code, message, timestamp, fieldErrors?}` at `timestamp`.
    pub fn to_response(&self, timestamp: Timestamp) -> ErrorResponse {
        match self {
            Self::Core(e) => e.to_response(timestamp),
            other => ErrorResponse {
                code: other.code().to_owned(),
                message: other.public_message(),
                timestamp,
                field_errors: None,
            },
        }
    }

    /// The HTTP response at `timestamp`: status, JSON body, `Cache-Control: no-store`, and
    /// `Retry-After` when rate limited. Server-side failures are logged here.
    pub fn into_response_at(self, timestamp: Timestamp) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            match &self {
                Self::Core(e) => {
                    let source = std::error::Error::source(e).map(ToString::to_string);
                    tracing::error!(error = %e, source = ?source, "agent enrollment request failed");
                }
                other => tracing::error!(error = %other, "agent enrollment request failed"),
            }
        }
        let mut response = (status, Json(self.to_response(timestamp))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(retry) = self.retry_after() {
            let secs = retry.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Shorthand for results of this module.
pub type EnrollmentResult<T> = std::result::Result<T, EnrollmentError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_codes_are_the_original_ones() {
        let cases = [
            (EnrollmentError::InitialKeyEmpty, "INITIAL_KEY_EMPTY"),
            (EnrollmentError::InitialKeyInvalid, "INITIAL_KEY_INVALID"),
            (EnrollmentError::ClientSecretEmpty, "CLIENT_SECRET_EMPTY"),
            (
                EnrollmentError::ClientSecretInvalid,
                "CLIENT_SECRET_INVALID",
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.http_status(), 401);
        }
    }

    #[test]
    fn core_errors_keep_code_status_and_field_errors() {
        let now = Timestamp::from_timestamp(0, 0).unwrap();
        let e = EnrollmentError::from(openframe_core::Error::invalid("osType", "bad"));
        let json = serde_json::to_value(e.to_response(now)).unwrap();
        assert_eq!(json["code"], "VALIDATION_ERROR");
        assert_eq!(json["fieldErrors"][0]["field"], "osType");
        let e = EnrollmentError::from(openframe_core::Error::RateLimited {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(e.http_status(), 429);
        let response = e.into_response_at(now);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
