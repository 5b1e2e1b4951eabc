//! The agent registration secret of the caller's tenant.

use async_graphql::{Context, Object};

use super::context::caller;
use super::error::GqlResultExt as _;

/// Registration secret queries.
#[derive(Debug, Default)]
pub(crate) struct RegistrationQuery;

#[Object]
impl RegistrationQuery {
    /// The active registration secret agents enroll with (created on first use).
    async fn registration_secret(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let (caller, state) = caller(ctx)?;
        let secret = state.registration.ensure(caller.tenant()).await.gql()?;
        Ok(secret.expose().to_owned())
    }
}

/// Registration secret mutations.
#[derive(Debug, Default)]
pub(crate) struct RegistrationMutation;

#[Object]
impl RegistrationMutation {
    /// Replaces the registration secret; the previous one stops enrolling new agents.
    async fn rotate_registration_secret(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let (caller, state) = caller(ctx)?;
        let secret = state.registration.rotate(caller.tenant()).await.gql()?;
        Ok(secret.expose().to_owned())
    }
}
