//! Extractors whose rejections use the one JSON error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use openframe_core::{Cursor, Error, PageRequest};
use serde::de::DeserializeOwned;

use super::error::{ApiError, UNSUPPORTED_MEDIA_TYPE};

/// Longest accepted query string, in bytes.
pub const MAX_QUERY_LEN: usize = 8 * 1024;

/// A JSON request body; malformed JSON is 400 `VALIDATION_ERROR` (field `body`), a body over
/// the limit is 413 `PAYLOAD_TOO_LARGE`, a missing JSON content type is 415.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::invalid("body", format!("invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::invalid("body", "malformed JSON"),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            super::error::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        ),
        _ => ApiError::invalid("body", "unreadable request body"),
    }
}

/// One path parameter as a string; parse it into a typed id with [`parse_id`].
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|_| ApiError::invalid("path", "malformed path parameter"))
    }
}

/// Parses a typed id (`MachineId::parse`, ...) from a path segment.
pub fn parse_id<T>(
    parse: impl FnOnce(String) -> Result<T, Error>,
    raw: String,
) -> Result<T, ApiError> {
    parse(raw).map_err(ApiError::from)
}

/// The query string as ordered pairs. Lists may repeat a name (`statuses=A&statuses=B`) or
/// separate values with commas (`statuses=A,B`). Unknown names are refused so typos do not
/// silently widen a query.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        if raw.len() > MAX_QUERY_LEN {
            return Err(ApiError::invalid("query", "the query string is too long"));
        }
        Ok(Self(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl QueryParams {
    /// Refuses names outside `allowed` (400 `VALIDATION_ERROR`).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some(_) => Err(ApiError::invalid(
                "query",
                format!("unknown query parameter; allowed: {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// The single value of `name` (blank counts as absent); given twice is an error.
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(name, "must be given at most once"));
        }
        Ok(first)
    }

    /// Every value of `name`, repeated or comma-separated, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Every value of `name`, each parsed with `parse`.
    pub fn parsed_list<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, Error>,
    ) -> Result<Vec<T>, ApiError> {
        let values = self.list(name);
        if values.len() > openframe_core::validate::MAX_LIST_LEN {
            return Err(ApiError::invalid(name, "too many values"));
        }
        values
            .into_iter()
            .map(|v| parse(v).map_err(|e| ApiError::from(rename_field(e, name))))
            .collect()
    }

    /// A boolean (`true`/`false`).
    pub fn bool(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }

    /// The page request of `limit` (1..=100, default 20; never clamped) and `cursor`.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.get("limit")? {
            None => None,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=i64::from(openframe_core::MAX_PAGE_SIZE)).contains(&n) => Some(n),
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        "must be an integer between 1 and 100",
                    ));
                }
            },
        };
        let cursor = match self.get("cursor")? {
            None => None,
            Some(raw) => {
                Cursor::decode("cursor", raw)?;
                Some(raw.to_owned())
            }
        };
        Ok(PageRequest {
            first: limit,
            after: cursor,
            last: None,
            before: None,
        })
    }
}

/// Renames the field of an `InvalidInput` (e.g. `after` to `cursor`, `OsType` to `osTypes`).
pub fn rename_field(error: Error, field: &'static str) -> Error {
    match error {
        Error::InvalidInput { reason, .. } => Error::InvalidInput {
            field: field.into(),
            reason,
        },
        other => other,
    }
}

/// Runs a repository list call, reporting cursor problems on `cursor` rather than `after`.
pub fn cursor_errors(error: Error) -> ApiError {
    if error.field() == Some("after") {
        rename_field(error, "cursor").into()
    } else {
        error.into()
    }
}
