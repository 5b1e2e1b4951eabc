//! Password reset: a single-use, short-lived token mailed to an active user.

use openframe_core::{Error, Result, Secret, TenantId, UserStatus, normalize_email};
use openframe_data::entity::Entity as _;
use openframe_data::store::{Filter, Partition, Value};

use super::invitations::chrono_duration;
use super::password::{self, TokenHash};
use super::records::ResetToken;
use super::service::{AccountService, login_account_key, password_reset_key, plausible_email};

/// The one error for an unknown, used or expired reset token.
fn invalid_token() -> Error {
    Error::invalid(
        "token",
        "the reset link is invalid, already used or expired",
    )
}

impl AccountService {
    /// Starts a password reset for `email` in `tenant`.
    ///
    /// Returns the token (to be mailed) only if an ACTIVE user has that email; otherwise
    /// `None`, and the HTTP layer must answer the same either way. The token is 256 random
    /// bits, stored only as its SHA-256, valid for
    /// [`reset_ttl`](super::AccountConfig::reset_ttl) and usable once. Throttled per
    /// account (scope `password-reset`), whether or not the account exists.
    pub async fn request_password_reset(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> Result<Option<Secret>> {
        let inner = &self.inner;
        let email = normalize_email(email);
        self.throttle(
            &password_reset_key(tenant, &email)?,
            &inner.config.reset_quota_per_account,
        )
        .await?;
        if !plausible_email(&email) {
            return Ok(None);
        }
        let Some(user) = inner.repos.users.find_by_email(tenant, &email).await? else {
            return Ok(None);
        };
        if user.status != UserStatus::Active {
            return Ok(None);
        }
        let now = inner.clock.now();
        self.purge_expired_resets(tenant, &user.id, now).await?;
        let (token, token_hash) = password::new_token()?;
        let record = ResetToken {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.id.clone(),
            token_hash,
            expires_at: now + chrono_duration(inner.config.reset_ttl)?,
            created_at: now,
            version: 0,
        };
        inner
            .resets
            .insert(&Partition::tenant(tenant), record)
            .await?;
        tracing::info!(tenant = %tenant, user = %user.id, "password reset requested");
        Ok(Some(token))
    }

    /// Sets a new password with a reset token. The password is checked against the policy
    /// before the token is used up (a refused password can be retried with the same link).
    /// An unknown, used or expired token, or one whose user is no longer active, is one
    /// `InvalidInput` on `token`. Success invalidates every other reset token of the user
    /// and clears the user's login throttle.
    pub async fn confirm_password_reset(
        &self,
        tenant: &TenantId,
        token: &str,
        new_password: &str,
    ) -> Result<()> {
        let inner = &self.inner;
        let p = Partition::tenant(tenant);
        let hash = TokenHash::of(token).ok_or_else(invalid_token)?;
        let filter = Filter::Eq("token_hash", Value::str(hash.to_hex()));
        let record = inner
            .resets
            .find_all(&p, filter, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(invalid_token)?;
        if inner.clock.now() >= record.expires_at {
            inner
                .store
                .delete(ResetToken::SCHEMA, &p, &record.id)
                .await?;
            return Err(invalid_token());
        }
        let user = inner
            .repos
            .users
            .get(tenant, &record.user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active)
            .ok_or_else(invalid_token)?;
        inner
            .config
            .password_policy
            .check(new_password, &user.email)?;
        let phc = self.hash(new_password).await?;
        // Claim: deleting the record succeeds for exactly one caller.
        if !inner
            .store
            .delete(ResetToken::SCHEMA, &p, &record.id)
            .await?
        {
            return Err(invalid_token());
        }
        self.put_credential(tenant, &user.id, phc).await?;
        self.delete_reset_tokens(tenant, &user.id).await?;
        if let Err(e) = inner
            .limiter
            .reset(&login_account_key(tenant, &user.email)?)
            .await
        {
            tracing::warn!(tenant = %tenant, error = %e, "could not reset the login counter");
        }
        tracing::info!(tenant = %tenant, user = %user.id, "password reset");
        Ok(())
    }

    /// Deletes the user's expired reset tokens (housekeeping on each new request).
    async fn purge_expired_resets(
        &self,
        tenant: &TenantId,
        user: &openframe_core::UserId,
        now: openframe_core::Timestamp,
    ) -> Result<()> {
        let p = Partition::tenant(tenant);
        let filter = Filter::and(vec![
            Filter::Eq("user_id", Value::str(user.as_str())),
            Filter::Cmp(
                "expires_at",
                openframe_data::store::CmpOp::Lte,
                Value::time(now),
            ),
        ]);
        for t in self.inner.resets.find_all(&p, filter, 1000).await? {
            self.inner
                .store
                .delete(ResetToken::SCHEMA, &p, &t.id)
                .await?;
        }
        Ok(())
    }
}
