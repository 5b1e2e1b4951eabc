//! Maps [`openframe_core::Error`] to GraphQL errors with `extensions {code, httpStatus}`.
//!
//! Resolvers never use `?` on a core error directly (that would expose its `Display` text
//! without a code): they go through [`GqlResultExt::gql`], which keeps only the public message
//! and logs backend details.

use async_graphql::ErrorExtensions as _;
use openframe_core::{Error, ErrorCode};

/// Turns a core error into a GraphQL error carrying `code` and `httpStatus` (plus `field`
/// for invalid input; the HTTP layer adds `timestamp`). Backend and internal details are logged, not returned.
pub(crate) fn to_gql(err: Error) -> async_graphql::Error {
    if matches!(err, Error::Backend { .. } | Error::Internal(_)) {
        tracing::error!(error = %err, source = ?std::error::Error::source(&err), "graphql resolver failed");
    }
    let code = err.code();
    let field = err.field().map(str::to_owned);
    async_graphql::Error::new(err.public_message()).extend_with(|_, ext| {
        ext.set("code", code.as_str());
        ext.set("httpStatus", code.http_status());
        if let Some(field) = &field {
            ext.set("field", field.as_str());
        }
    })
}

/// Converts core results for resolvers.
pub(crate) trait GqlResultExt<T> {
    /// The result with a core error mapped by [`to_gql`].
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResultExt<T> for openframe_core::Result<T> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_gql)
    }
}

/// Stamps every error with `timestamp` (from the injected clock) and gives those without a
/// `code` (parse and validation errors, depth and complexity limits raised by the engine)
/// `VALIDATION_ERROR` / 400.
pub(crate) fn fill_codes(response: &mut async_graphql::Response, now: openframe_core::Timestamp) {
    for err in &mut response.errors {
        let ext = err.extensions.get_or_insert_with(Default::default);
        ext.set("timestamp", now.to_rfc3339());
        if ext.get("code").is_none() {
            ext.set("code", ErrorCode::ValidationError.as_str());
            ext.set("httpStatus", ErrorCode::ValidationError.http_status());
        }
    }
}
