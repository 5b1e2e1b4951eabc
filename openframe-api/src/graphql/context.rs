//! The per-request caller: tenant and user come only from the authenticated [`Principal`].

use async_graphql::Context;
use openframe_core::{Error, TenantId, UserId};
use openframe_security::auth::Principal;

use super::error::to_gql;
use super::state::GraphqlState;

/// The authenticated caller of one request (or one WebSocket connection).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) principal: Principal,
}

impl Caller {
    pub(crate) fn tenant(&self) -> &TenantId {
        self.principal.tenant()
    }

    /// The user behind the request, if it is a person or one of their API keys.
    pub(crate) fn user_id(&self) -> Option<&UserId> {
        match &self.principal {
            Principal::User { user_id, .. } | Principal::ApiKey { user_id, .. } => Some(user_id),
            _ => None,
        }
    }

    /// The user, or `PermissionDenied` for machine and service principals.
    pub(crate) fn require_user(&self) -> async_graphql::Result<&UserId> {
        self.user_id()
            .ok_or_else(|| to_gql(Error::PermissionDenied))
    }

    pub(crate) fn is_owner(&self) -> bool {
        self.principal.has_role("OWNER")
    }
}

/// Whether `principal` may use the GraphQL API at all: people and service clients with the
/// ADMIN role (OWNER tokens carry ADMIN too). Agents and API keys are refused.
pub(crate) fn may_use_api(principal: &Principal) -> bool {
    matches!(principal, Principal::User { .. } | Principal::Client { .. })
        && principal.has_role("ADMIN")
}

/// The caller and the state of a resolver.
pub(crate) fn caller<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a Caller, &'a GraphqlState)> {
    let caller = ctx
        .data_opt::<Caller>()
        .ok_or_else(|| to_gql(Error::Unauthenticated))?;
    if !may_use_api(&caller.principal) {
        return Err(to_gql(Error::PermissionDenied));
    }
    let state = ctx
        .data::<GraphqlState>()
        .map_err(|_| to_gql(Error::Internal("graphql state missing".into())))?;
    Ok((caller, state))
}
