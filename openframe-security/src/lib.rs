//! # openframe-security
//!
//! Identity and security for OpenFrame-rs. Every tenant is a complete OIDC issuer
//! (`{public_url}/sas/{tenant}`) with its own signing keys.
//!
//! - [`crypto`]: the master key (AES-256-GCM sealing), signing keys, compact JWS.
//! - [`keys`]: the [`keys::KeyStore`] trait: per-tenant keys created on first use, rotated with
//!   overlap, published as JWKS; backed by any `openframe-data` document store.
//! - [`token`]: the [`token::TokenService`]: access and ID tokens, verification with the issuer
//!   checked first, and the verified-token cache.
//! - [`accounts`]: tenant sign-up, users with argon2id passwords, login throttling,
//!   invitations and password reset.
//! - [`api_keys`]: `ak_<16 hex>.sk_<32 hex>` keys stored as keyed hashes.
//! - [`ratelimit`]: the [`ratelimit::RateLimiter`] trait (GCRA in process, Redis).
//! - [`oauth`]: the per-tenant OAuth2/OIDC authorization server and its axum router.
//! - [`sso`]: per-tenant upstream OIDC providers (Google, Microsoft, any issuer).
//! - [`auth`]: tower/axum layers that authenticate requests and check roles.
//! - [`stack`]: one builder that wires all of the above over one document store.

pub mod accounts;
pub mod api_keys;
pub mod auth;
pub mod crypto;
pub mod keys;
pub mod oauth;
pub mod ratelimit;
pub mod sso;
pub mod stack;
pub mod token;
