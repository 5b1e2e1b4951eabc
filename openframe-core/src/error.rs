//! The error type shared by the storage layer and the HTTP/GraphQL surfaces.
//!
//! Every error has a stable [`ErrorCode`] (the string clients branch on), an HTTP status, and a
//! message that is safe to show: backend details stay in the `source` chain for logs and are
//! never part of [`ErrorResponse`].

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// A boxed error source from a backend driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `Result<T, openframe_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The addressed entity does not exist in this tenant (or the caller may not know it does).
    #[error("{entity} not found")]
    NotFound {
        /// The kind of entity, e.g. `"machine"`.
        entity: &'static str,
    },
    /// A unique key (id, name, email, ...) is already taken in this tenant.
    #[error("{entity} already exists ({field} is taken)")]
    AlreadyExists {
        /// The kind of entity.
        entity: &'static str,
        /// The unique field that collided.
        field: Cow<'static, str>,
    },
    /// A concurrent change won: the expected version or state no longer holds.
    #[error("conflict: {reason}")]
    Conflict {
        /// Why the write was refused.
        reason: Cow<'static, str>,
    },
    /// The input is malformed or out of range.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field, as the client named it.
        field: Cow<'static, str>,
        /// What is wrong with it.
        reason: Cow<'static, str>,
    },
    /// No valid credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    /// The credentials are valid but do not allow this.
    #[error("permission denied")]
    PermissionDenied,
    /// Too many requests; retry after the given delay.
    #[error("rate limit exceeded")]
    RateLimited {
        /// How long to wait before retrying.
        retry_after: Duration,
    },
    /// A dependency is temporarily unavailable; retrying may succeed.
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// A safe, secret-free description.
        reason: Cow<'static, str>,
    },
    /// A storage or messaging backend failed. The source is for logs only.
    #[error("{backend} backend error")]
    Backend {
        /// The backend name (`"sqlite"`, `"mongodb"`, `"redis"`, ...).
        backend: &'static str,
        /// The driver error.
        #[source]
        source: BoxError,
    },
    /// A bug or broken invariant; the message is for logs, clients see a generic text.
    #[error("internal error: {0}")]
    Internal(Cow<'static, str>),
}

impl Error {
    /// An [`Error::InvalidInput`] for `field`.
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::NotFound`] for `entity`.
    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }

    /// An [`Error::Conflict`].
    pub fn conflict(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Conflict {
            reason: reason.into(),
        }
    }

    /// An [`Error::Backend`] wrapping a driver error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::InvalidInput { .. } => ErrorCode::ValidationError,
            Self::Unauthenticated => ErrorCode::Unauthorized,
            Self::PermissionDenied => ErrorCode::Forbidden,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::Backend { .. } => ErrorCode::DatabaseError,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// The HTTP status this error maps to.
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// The field an [`Error::InvalidInput`] or [`Error::AlreadyExists`] is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidInput { field, .. } | Self::AlreadyExists { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. }
                | Self::Unavailable { .. }
                | Self::Backend { .. }
                | Self::RateLimited { .. }
        )
    }

    /// A message safe to show to clients: no backend detail, no secrets.
    pub fn public_message(&self) -> String {
        match self {
            Self::Backend { .. } => "A storage backend failed. Please try again later.".to_owned(),
            Self::Internal(_) => "An unexpected error occurred. Please try again later.".to_owned(),
            other => other.to_string(),
        }
    }

    /// The JSON body for this error at `timestamp`.
    pub fn to_response(&self, timestamp: Timestamp) -> ErrorResponse {
        let field_errors = match self {
            Self::InvalidInput { field, reason } => Some(vec![FieldError {
                field: field.to_string(),
                message: reason.to_string(),
            }]),
            _ => None,
        };
        ErrorResponse {
            code: self.code().as_str().to_owned(),
            message: self.public_message(),
            timestamp,
            field_errors,
        }
    }
}

/// Stable, machine-readable error codes. Their strings never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 404 `NOT_FOUND`.
    NotFound,
    /// 409 `ALREADY_EXISTS`.
    AlreadyExists,
    /// 409 `CONFLICT`.
    Conflict,
    /// 400 `VALIDATION_ERROR`.
    ValidationError,
    /// 401 `UNAUTHORIZED`.
    Unauthorized,
    /// 403 `FORBIDDEN`.
    Forbidden,
    /// 429 `RATE_LIMITED`.
    RateLimited,
    /// 503 `UNAVAILABLE`.
    Unavailable,
    /// 503 `DATABASE_ERROR`.
    DatabaseError,
    /// 500 `INTERNAL_ERROR`.
    InternalError,
}

impl ErrorCode {
    /// The wire string, e.g. `"VALIDATION_ERROR"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::Conflict => "CONFLICT",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::RateLimited => "RATE_LIMITED",
            Self::Unavailable => "UNAVAILABLE",
            Self::DatabaseError => "DATABASE_ERROR",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Conflict => 409,
            Self::ValidationError => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::RateLimited => 429,
            Self::Unavailable | Self::DatabaseError => 503,
            Self::InternalError => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON error body of every HTTP endpoint: `{code, message, timestamp, fieldErrors?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// The stable [`ErrorCode`] string.
    pub code: String,
    /// A human-readable, secret-free message.
    pub message: String,
    /// When the error happened (RFC 3339).
    pub timestamp: Timestamp,
    /// Per-field validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_errors: Option<Vec<FieldError>>,
}

/// One invalid field in an [`ErrorResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field name as the client sent it.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_stable() {
        let cases = [
            (Error::not_found("machine"), "NOT_FOUND", 404),
            (Error::conflict("version"), "CONFLICT", 409),
            (
                Error::invalid("first", "must be 1-100"),
                "VALIDATION_ERROR",
                400,
            ),
            (Error::Unauthenticated, "UNAUTHORIZED", 401),
            (Error::PermissionDenied, "FORBIDDEN", 403),
            (
                Error::RateLimited {
                    retry_after: Duration::from_secs(1),
                },
                "RATE_LIMITED",
                429,
            ),
            (
                Error::backend("sqlite", "disk I/O error at /secret/path"),
                "DATABASE_ERROR",
                503,
            ),
            (Error::Internal("boom".into()), "INTERNAL_ERROR", 500),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code().as_str(), code);
            assert_eq!(err.http_status(), status);
        }
    }

    #[test]
    fn response_json_has_field_errors_and_hides_backend_detail() {
        let now = Timestamp::from_timestamp(0, 0).unwrap();
        let json =
            serde_json::to_value(Error::invalid("after", "malformed cursor").to_response(now))
                .unwrap();
        assert_eq!(json["code"], "VALIDATION_ERROR");
        assert_eq!(json["fieldErrors"][0]["field"], "after");
        assert_eq!(json["timestamp"], "1970-01-01T00:00:00Z");

        let json = serde_json::to_value(
            Error::backend("sqlite", "disk I/O error at /secret/path").to_response(now),
        )
        .unwrap();
        assert!(!json.to_string().contains("/secret/path"));
        assert!(json.get("fieldErrors").is_none());
    }
}
