//! Tenants and users: sign-up, argon2id passwords, login throttling, invitations and
//! password reset. A service layer without HTTP: the router calls [`AccountService`].
//!
//! - [`AccountService::sign_up`] creates a tenant, its OWNER and its default organization,
//!   validating everything before the first write and undoing partial writes.
//! - [`AccountService::authenticate`] checks a password, throttled per account and per IP
//!   through a [`RateLimiter`](crate::ratelimit::RateLimiter), with one uniform
//!   `Unauthenticated` for every failure.
//! - Passwords are argon2id PHC strings in a separate `user_credentials` collection (tenant
//!   partition, keyed by user id), hashed on Tokio's blocking pool; a
//!   [`User`] never carries one.
//! - [`Invitation`]s (collection `invitations`) and password-reset tokens (collection
//!   `password_reset_tokens`) are 256-bit random tokens stored only as SHA-256 hashes,
//!   single use, with expiry from the injected clock.
//! - [`roles_claim`] gives the effective role names for tokens; machines use [`AGENT_ROLE`].

mod config;
mod input;
mod invitations;
mod password;
mod records;
mod reset;
mod service;

use openframe_core::User;

pub use config::{AccountConfig, Argon2Params, PasswordPolicy};
pub use input::RESERVED_TENANT_IDS;
pub use records::{Invitation, InvitationId, InvitationStatus, schemas};
pub use service::{
    AccountService, SignUp, SignedUp, login_account_key, login_ip_key, password_reset_key,
};

/// The role string of machine (agent) tokens.
pub const AGENT_ROLE: &str = "AGENT";

/// The effective role names of a user for the `roles` claim of tokens (OWNER implies ADMIN).
///
/// ```
/// use openframe_core::{SystemClock, Clock, User, UserRole};
/// use openframe_security::accounts::roles_claim;
/// let owner = User::new("o@acme.example", vec![UserRole::Owner], SystemClock.now());
/// assert_eq!(roles_claim(&owner), ["OWNER", "ADMIN"]);
/// ```
pub fn roles_claim(user: &User) -> Vec<String> {
    user.effective_roles()
        .into_iter()
        .map(|r| r.as_str().to_owned())
        .collect()
}
