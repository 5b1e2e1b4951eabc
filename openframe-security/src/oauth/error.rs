//! OAuth 2.0 error responses exactly as RFC 6749 §5.2 (and RFC 7009/7662) define them.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An RFC 6749 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// The request is missing a parameter, repeats one, or is otherwise malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (code, refresh token, PKCE verifier) is invalid, expired, revoked or reused.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The requested scope is invalid or exceeds what the client may ask for.
    InvalidScope,
    /// The response type is not supported (authorize endpoint).
    UnsupportedResponseType,
    /// The user or server denied the request (authorize endpoint).
    AccessDenied,
    /// The token is not a supported type (revocation endpoint).
    UnsupportedTokenType,
    /// The access token is invalid (resource endpoints, e.g. userinfo).
    InvalidToken,
    /// Too many requests.
    SlowDown,
    /// An unexpected server error.
    ServerError,
}

impl OAuthErrorCode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken => "invalid_token",
            Self::SlowDown => "slow_down",
            Self::ServerError => "server_error",
        }
    }
}

/// An OAuth error with an optional human-readable description (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The code.
    pub code: OAuthErrorCode,
    /// `error_description`.
    pub description: Option<String>,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: Some(description.into()),
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant` with a description.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }

    /// `invalid_client`.
    pub fn invalid_client() -> Self {
        Self::new(
            OAuthErrorCode::InvalidClient,
            "client authentication failed",
        )
    }

    /// `server_error`; the cause is logged, not returned.
    pub fn server(cause: &openframe_core::Error) -> Self {
        tracing::error!(error = %cause, "oauth endpoint failed");
        Self::new(
            OAuthErrorCode::ServerError,
            "the server could not complete the request",
        )
    }

    fn status(&self) -> StatusCode {
        match self.code {
            OAuthErrorCode::InvalidClient | OAuthErrorCode::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            OAuthErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthErrorCode::AccessDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Maps storage and validation errors from the layers below.
impl From<openframe_core::Error> for OAuthError {
    fn from(e: openframe_core::Error) -> Self {
        use openframe_core::Error as E;
        match &e {
            E::InvalidInput { field, reason } => {
                Self::invalid_request(format!("invalid {field}: {reason}"))
            }
            E::RateLimited { .. } => Self::new(OAuthErrorCode::SlowDown, "too many requests"),
            E::Unauthenticated => Self::invalid_client(),
            E::NotFound { .. } => Self::invalid_grant("unknown grant"),
            _ => Self::server(&e),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(Body {
                error: self.code.as_str(),
                error_description: self.description.as_deref(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match self.code {
            OAuthErrorCode::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"openframe\""),
                );
            }
            OAuthErrorCode::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        response
    }
}
