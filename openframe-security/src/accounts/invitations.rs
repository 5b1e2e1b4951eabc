//! Invitations: invite by email with roles, accept once (password or SSO), revoke.

use openframe_core::{
    Error, Page, PageRequest, Result, Secret, SortSpec, TenantId, User, UserId, UserRole,
    UserStatus, normalize_email,
};
use openframe_data::store::{Filter, Partition, Value};
use openframe_data::{UserFilter, UserSort};

use super::input;
use super::password::{self, TokenHash};
use super::records::{Invitation, InvitationId, InvitationSort, InvitationStatus};
use super::service::AccountService;

/// How many older pending invitations of one email are revoked when a new one is sent.
const SUPERSEDE_LIMIT: usize = 100;

/// The one error for an unknown, used, revoked or expired invitation token.
fn invalid_token() -> Error {
    Error::invalid(
        "token",
        "the invitation is invalid, already used or expired",
    )
}

/// The new member an accepted invitation turns into.
struct NewMember {
    first_name: Option<String>,
    last_name: Option<String>,
    /// A PHC string, or `None` for an SSO-only user.
    password_hash: Option<String>,
}

impl AccountService {
    /// Invites `email` to `tenant` with `roles` (at least one). Returns the invitation and
    /// its token, to be mailed; only the token's SHA-256 is stored. The token expires after
    /// [`invitation_ttl`](super::AccountConfig::invitation_ttl); older pending invitations
    /// for the same email are revoked, so only the newest link works.
    ///
    /// `AlreadyExists` (`field` `email`) if a user with that email exists in the tenant and
    /// is not deleted; `PermissionDenied` if `invited_by` is not an active user of the tenant.
    pub async fn invite(
        &self,
        tenant: &TenantId,
        email: &str,
        roles: Vec<UserRole>,
        invited_by: UserId,
    ) -> Result<(Invitation, Secret)> {
        let inner = &self.inner;
        let email = input::email(email)?;
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(Error::invalid("roles", "must name at least one role"));
        }
        let inviter = inner.repos.users.get(tenant, &invited_by).await?;
        if inviter.is_none_or(|u| u.status != UserStatus::Active) {
            return Err(Error::PermissionDenied);
        }
        if inner
            .repos
            .users
            .find_by_email(tenant, &email)
            .await?
            .is_some()
        {
            return Err(user_exists());
        }

        let now = inner.clock.now();
        let expires_at = now + chrono_duration(inner.config.invitation_ttl)?;
        let (token, token_hash) = password::new_token()?;
        let invitation = Invitation {
            id: InvitationId::generate(),
            email,
            roles,
            token_hash,
            status: InvitationStatus::Pending,
            invited_by,
            expires_at,
            accepted_by: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let p = Partition::tenant(tenant);
        let invitation = inner.invitations.insert(&p, invitation).await?;
        self.supersede(tenant, &invitation).await?;
        tracing::info!(tenant = %tenant, invitation = %invitation.id, "invitation created");
        Ok((invitation, token))
    }

    /// Revokes the other pending invitations of the same email.
    async fn supersede(&self, tenant: &TenantId, newest: &Invitation) -> Result<()> {
        let p = Partition::tenant(tenant);
        let filter = Filter::and(vec![
            Filter::Eq("email", Value::str(&newest.email)),
            Filter::Eq("status", Value::str(InvitationStatus::Pending.as_str())),
        ]);
        let older = self
            .inner
            .invitations
            .find_all(&p, filter, SUPERSEDE_LIMIT)
            .await?;
        for inv in older.into_iter().filter(|i| i.id != newest.id) {
            self.inner
                .invitations
                .modify(&p, inv.id.as_str(), |i, _| {
                    let pending = i.status == InvitationStatus::Pending;
                    if pending {
                        i.status = InvitationStatus::Revoked;
                    }
                    Ok(pending)
                })
                .await?;
        }
        Ok(())
    }

    /// A page of the tenant's invitations, newest first, optionally of one status. (A
    /// PENDING invitation may be expired: see [`Invitation::is_acceptable_at`].)
    pub async fn list_invitations(
        &self,
        tenant: &TenantId,
        status: Option<InvitationStatus>,
        page: &PageRequest,
    ) -> Result<Page<Invitation>> {
        let filter = status.map_or(Filter::All, |s| {
            Filter::Eq("status", Value::str(s.as_str()))
        });
        self.inner
            .invitations
            .page(
                &Partition::tenant(tenant),
                filter,
                SortSpec::<InvitationSort>::default(),
                page,
            )
            .await
    }

    /// One invitation by id.
    pub async fn get_invitation(&self, tenant: &TenantId, id: &InvitationId) -> Result<Invitation> {
        self.inner
            .invitations
            .require(&Partition::tenant(tenant), id.as_str())
            .await
    }

    /// Revokes a pending invitation; its token stops working. Revoking a revoked invitation
    /// is a no-op; an accepted one is `Conflict`; an unknown one `NotFound`.
    pub async fn revoke_invitation(
        &self,
        tenant: &TenantId,
        id: &InvitationId,
    ) -> Result<Invitation> {
        let m = self
            .inner
            .invitations
            .modify(&Partition::tenant(tenant), id.as_str(), |i, _| {
                let pending = i.status == InvitationStatus::Pending;
                if pending {
                    i.status = InvitationStatus::Revoked;
                }
                Ok(pending)
            })
            .await?;
        match m.after.status {
            InvitationStatus::Revoked => {
                if m.applied {
                    tracing::info!(tenant = %tenant, invitation = %id, "invitation revoked");
                }
                Ok(m.after)
            }
            _ => Err(Error::conflict("the invitation was already accepted")),
        }
    }

    /// The invitation a token belongs to, if it can still be accepted (for rendering the
    /// accept page). An unknown, used, revoked or expired token is one `InvalidInput` on
    /// `token`.
    pub async fn find_invitation_by_token(
        &self,
        tenant: &TenantId,
        token: &str,
    ) -> Result<Invitation> {
        let hash = TokenHash::of(token).ok_or_else(invalid_token)?;
        let p = Partition::tenant(tenant);
        let filter = Filter::Eq("token_hash", Value::str(hash.to_hex()));
        let found = self.inner.invitations.find_all(&p, filter, 1).await?;
        found
            .into_iter()
            .next()
            .filter(|i| i.is_acceptable_at(self.inner.clock.now()))
            .ok_or_else(invalid_token)
    }

    /// Accepts an invitation with a password: creates the user (email verified, the
    /// invitation's roles, the password) or reactivates a DELETED user with that email.
    /// Single use; the names and the password are checked before the invitation is used up.
    pub async fn accept_invitation(
        &self,
        tenant: &TenantId,
        token: &str,
        password: &str,
        first_name: &str,
        last_name: &str,
    ) -> Result<User> {
        let invitation = self.find_invitation_by_token(tenant, token).await?;
        let first_name = input::person_name("firstName", first_name)?;
        let last_name = input::person_name("lastName", last_name)?;
        self.inner
            .config
            .password_policy
            .check(password, &invitation.email)?;
        let password_hash = self.hash(password).await?;
        self.accept(
            tenant,
            invitation,
            NewMember {
                first_name: Some(first_name),
                last_name: Some(last_name),
                password_hash: Some(password_hash),
            },
        )
        .await
    }

    /// Accepts an invitation after an SSO login: `verified_email` (the identity provider's
    /// verified email) must equal the invited email, case-insensitively, or the call is
    /// `PermissionDenied`. The user is created (or reactivated) without a password.
    pub async fn accept_invitation_sso(
        &self,
        tenant: &TenantId,
        token: &str,
        verified_email: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<User> {
        let invitation = self.find_invitation_by_token(tenant, token).await?;
        if normalize_email(verified_email) != invitation.email {
            tracing::warn!(
                tenant = %tenant,
                invitation = %invitation.id,
                "SSO email does not match the invitation"
            );
            return Err(Error::PermissionDenied);
        }
        let first_name = input::upstream_name("firstName", first_name)?;
        let last_name = input::upstream_name("lastName", last_name)?;
        self.accept(
            tenant,
            invitation,
            NewMember {
                first_name,
                last_name,
                password_hash: None,
            },
        )
        .await
    }

    /// Uses up the invitation and creates the member; gives the invitation back if the
    /// member cannot be written.
    async fn accept(
        &self,
        tenant: &TenantId,
        invitation: Invitation,
        member: NewMember,
    ) -> Result<User> {
        let inner = &self.inner;
        let p = Partition::tenant(tenant);
        if inner
            .repos
            .users
            .find_by_email(tenant, &invitation.email)
            .await?
            .is_some()
        {
            return Err(user_exists());
        }
        let deleted = self.find_deleted_user(tenant, &invitation.email).await?;
        let user_id = deleted
            .as_ref()
            .map_or_else(UserId::generate, |u| u.id.clone());

        // Claim: exactly one caller moves it from PENDING to ACCEPTED.
        let expected = invitation.token_hash.clone();
        let claimed = inner
            .invitations
            .modify(&p, invitation.id.as_str(), |i, now| {
                let ok = i.is_acceptable_at(now) && i.token_hash == expected;
                if ok {
                    i.status = InvitationStatus::Accepted;
                    i.accepted_by = Some(user_id.clone());
                }
                Ok(ok)
            })
            .await?;
        if !claimed.applied {
            return Err(invalid_token());
        }
        let invitation = claimed.after;

        match self
            .write_member(tenant, &invitation, deleted, &user_id, member)
            .await
        {
            Ok(user) => {
                tracing::info!(
                    tenant = %tenant,
                    invitation = %invitation.id,
                    user = %user.id,
                    "invitation accepted"
                );
                Ok(user)
            }
            Err(e) => {
                self.unclaim(tenant, &invitation.id, &user_id).await;
                Err(e)
            }
        }
    }

    async fn write_member(
        &self,
        tenant: &TenantId,
        invitation: &Invitation,
        deleted: Option<User>,
        user_id: &UserId,
        member: NewMember,
    ) -> Result<User> {
        let inner = &self.inner;
        match member.password_hash {
            Some(phc) => self.put_credential(tenant, user_id, phc).await?,
            None => self.delete_credential(tenant, user_id).await?,
        }
        let written = match deleted {
            Some(mut user) => {
                user.status = UserStatus::Active;
                user.roles = invitation.roles.clone();
                user.email_verified = true;
                if member.first_name.is_some() || member.last_name.is_some() {
                    user.first_name = member.first_name;
                    user.last_name = member.last_name;
                }
                inner.repos.users.update(tenant, user).await
            }
            None => {
                let mut user = User::new(
                    &invitation.email,
                    invitation.roles.clone(),
                    inner.clock.now(),
                );
                user.id = user_id.clone();
                user.email_verified = true;
                user.first_name = member.first_name;
                user.last_name = member.last_name;
                inner.repos.users.insert(tenant, user).await
            }
        };
        match written {
            Ok(user) => {
                // A reactivated user's reset links from before the deletion must not work.
                self.delete_reset_tokens(tenant, user_id).await?;
                Ok(user)
            }
            Err(e) => {
                if let Err(undo) = self.delete_credential(tenant, user_id).await {
                    tracing::error!(tenant = %tenant, user = %user_id, error = %undo, "could not remove the credential of a failed acceptance");
                }
                Err(e)
            }
        }
    }

    /// Gives an invitation back after its member could not be written.
    async fn unclaim(&self, tenant: &TenantId, id: &InvitationId, user_id: &UserId) {
        let result = self
            .inner
            .invitations
            .modify(&Partition::tenant(tenant), id.as_str(), |i, _| {
                let ours = i.status == InvitationStatus::Accepted
                    && i.accepted_by.as_ref() == Some(user_id);
                if ours {
                    i.status = InvitationStatus::Pending;
                    i.accepted_by = None;
                }
                Ok(ours)
            })
            .await;
        if let Err(e) = result {
            tracing::error!(tenant = %tenant, invitation = %id, error = %e, "could not give back an invitation");
        }
    }

    /// The most recently created DELETED user with this email, if any.
    async fn find_deleted_user(&self, tenant: &TenantId, email: &str) -> Result<Option<User>> {
        let filter = UserFilter {
            statuses: vec![UserStatus::Deleted],
            search: Some(email.to_owned()),
            ..UserFilter::default()
        };
        let page = self
            .inner
            .repos
            .users
            .list(
                tenant,
                &filter,
                SortSpec::<UserSort>::default(),
                &PageRequest::first(openframe_core::MAX_PAGE_SIZE as i64),
            )
            .await?;
        Ok(page
            .edges
            .into_iter()
            .map(|e| e.node)
            .find(|u| u.email == email))
    }
}

fn user_exists() -> Error {
    Error::AlreadyExists {
        entity: "user",
        field: "email".into(),
    }
}

/// A std duration as a chrono one (saturating far in the future is refused).
pub(super) fn chrono_duration(d: std::time::Duration) -> Result<chrono::Duration> {
    chrono::Duration::from_std(d).map_err(|_| Error::invalid("ttl", "is too long"))
}
