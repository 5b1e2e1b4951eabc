//! Users and invitations.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use openframe_core::{Error, Timestamp, User, UserId};
use openframe_data::{UserFilter, UserSort};
use openframe_security::accounts::{Invitation, InvitationId};

use super::connection::{SortInput, connection, list_complexity, listed, page_request, sort_spec};
use super::context::caller;
use super::error::{GqlResultExt as _, to_gql};
use super::ids::{NodeType, decode_as, encode};
use super::loaders::loaders;

/// A role in a tenant (OWNER implies ADMIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_core::UserRole")]
pub(crate) enum UserRole {
    /// Owns the tenant.
    Owner,
    /// Administers it.
    Admin,
}

/// User lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_core::UserStatus")]
pub(crate) enum UserStatus {
    /// Can sign in.
    Active,
    /// Cannot sign in.
    Disabled,
    /// Removed.
    Deleted,
}

/// Invitation lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "openframe_security::accounts::InvitationStatus")]
pub(crate) enum InvitationStatus {
    /// Sent, not yet used.
    Pending,
    /// Used.
    Accepted,
    /// Withdrawn or replaced.
    Revoked,
}

/// A person in the tenant.
#[derive(Debug, Clone)]
pub(crate) struct UserObject(pub(crate) User);

#[Object(name = "User")]
impl UserObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::User, self.0.id.as_str())
    }
    /// Email.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// Given name.
    async fn first_name(&self) -> Option<&str> {
        self.0.first_name.as_deref()
    }
    /// Family name.
    async fn last_name(&self) -> Option<&str> {
        self.0.last_name.as_deref()
    }
    /// Effective roles.
    async fn roles(&self) -> Vec<UserRole> {
        self.0
            .effective_roles()
            .into_iter()
            .map(Into::into)
            .collect()
    }
    /// Status.
    async fn status(&self) -> UserStatus {
        self.0.status.into()
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
}

/// An invitation to join the tenant.
#[derive(Debug, Clone)]
pub(crate) struct InvitationObject(pub(crate) Invitation);

#[Object(name = "Invitation")]
impl InvitationObject {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(NodeType::Invitation, self.0.id.as_str())
    }
    /// The invited email.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// Roles the new user gets.
    async fn roles(&self) -> Vec<UserRole> {
        self.0.roles.iter().map(|r| (*r).into()).collect()
    }
    /// Status (a PENDING invitation may be past `expiresAt`).
    async fn status(&self) -> InvitationStatus {
        self.0.status.into()
    }
    /// Expiry.
    async fn expires_at(&self) -> Timestamp {
        self.0.expires_at
    }
    /// Creation time.
    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
    /// Who sent it (batched).
    async fn invited_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<UserObject>> {
        let user = loaders(ctx)?
            .users
            .load_one(self.0.invited_by.clone())
            .await?;
        Ok(user.map(UserObject))
    }
}

/// A new invitation and its token, shown only in this response.
#[derive(SimpleObject)]
pub(crate) struct CreatedInvitation {
    /// The invitation.
    invitation: InvitationObject,
    /// The acceptance token to hand to the invitee (never shown again).
    token: String,
}

connection!(UserConnection, UserEdge, UserObject);
connection!(InvitationConnection, InvitationEdge, InvitationObject);

/// User list filter.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct UserFilterInput {
    /// Any of these statuses (default: all but DELETED).
    statuses: Option<Vec<UserStatus>>,
    /// Any of these roles.
    roles: Option<Vec<UserRole>>,
}

/// User and invitation queries.
#[derive(Debug, Default)]
pub(crate) struct UserQuery;

#[Object]
impl UserQuery {
    /// A page of users. Sort fields: id, email, createdAt.
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    #[allow(clippy::too_many_arguments)]
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilterInput>,
        search: Option<String>,
        sort: Option<SortInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let (caller, state) = caller(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = UserFilter {
            statuses: f.statuses.into_iter().flatten().map(Into::into).collect(),
            roles: f.roles.into_iter().flatten().map(Into::into).collect(),
            search,
            include_deleted: false,
        };
        let sort = sort_spec::<UserSort>(sort).gql()?;
        listed!(
            state.repos.users,
            caller.tenant(),
            filter,
            sort,
            page_request(first, after, last, before),
            UserConnection,
            UserObject
        )
    }

    /// One user by global id.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<UserObject>> {
        let (caller, state) = caller(ctx)?;
        let id = decode_as("id", NodeType::User, &id, UserId::parse).gql()?;
        Ok(state
            .repos
            .users
            .get(caller.tenant(), &id)
            .await
            .gql()?
            .map(UserObject))
    }

    /// A page of invitations, newest first (no `filteredCount`).
    #[graphql(complexity = "list_complexity(child_complexity, first, last)")]
    async fn invitations(
        &self,
        ctx: &Context<'_>,
        status: Option<InvitationStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<InvitationConnection> {
        let (caller, state) = caller(ctx)?;
        let page = state
            .accounts
            .list_invitations(
                caller.tenant(),
                status.map(Into::into),
                &page_request(first, after, last, before),
            )
            .await
            .gql()?;
        Ok(InvitationConnection::new(page, InvitationObject, None))
    }
}

/// A new invitation.
#[derive(Debug, InputObject)]
pub(crate) struct CreateInvitationInput {
    /// The invitee's email.
    email: String,
    /// Roles to grant (inviting an OWNER takes an OWNER).
    roles: Vec<UserRole>,
}

/// Invitation mutations.
#[derive(Debug, Default)]
pub(crate) struct UserMutation;

#[Object]
impl UserMutation {
    /// Invites someone; returns the token once. `ALREADY_EXISTS` if they are a member.
    async fn create_invitation(
        &self,
        ctx: &Context<'_>,
        input: CreateInvitationInput,
    ) -> async_graphql::Result<CreatedInvitation> {
        let (caller, state) = caller(ctx)?;
        let user = caller.require_user()?.clone();
        let roles: Vec<openframe_core::UserRole> =
            input.roles.into_iter().map(Into::into).collect();
        if roles.contains(&openframe_core::UserRole::Owner) && !caller.is_owner() {
            return Err(to_gql(Error::PermissionDenied));
        }
        let (invitation, token) = state
            .accounts
            .invite(caller.tenant(), &input.email, roles, user)
            .await
            .gql()?;
        Ok(CreatedInvitation {
            invitation: InvitationObject(invitation),
            token: token.expose().to_owned(),
        })
    }

    /// Revokes a pending invitation.
    async fn revoke_invitation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<InvitationObject> {
        let (caller, state) = caller(ctx)?;
        let id = decode_as("id", NodeType::Invitation, &id, InvitationId::parse).gql()?;
        state
            .accounts
            .revoke_invitation(caller.tenant(), &id)
            .await
            .map(InvitationObject)
            .gql()
    }
}
