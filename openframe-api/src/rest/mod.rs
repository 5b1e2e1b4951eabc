//! The REST APIs.
//!
//! - [`internal`]: `/api/...` for the web console (bearer tokens, role `ADMIN`): the caller
//!   (`/api/me`), the agent registration secret and API key management.
//! - [`external`]: `/api/v1/...` for integrations (`X-API-Key`, scopes, per-key rate limits),
//!   with its OpenAPI 3 document at `/api/v1/openapi.json` and a docs page at `/api/v1/docs`.
//!
//! Every error is `{code, message, timestamp, fieldErrors?}` ([`error::ApiError`]).

pub mod error;
pub mod external;
pub mod extract;
pub mod internal;

pub use error::{ApiError, ApiResult};
