use serde::{Deserialize, Serialize};

use super::string_enum;
use crate::{Error, Result, Timestamp, UserId, validate};

string_enum!(
    /// A person's role in a tenant. OWNER implies ADMIN.
    UserRole { Owner = "OWNER", Admin = "ADMIN" }
);
string_enum!(
    /// Lifecycle of a user.
    UserStatus { Active = "ACTIVE", Disabled = "DISABLED", Deleted = "DELETED" }
);

/// A person who signs in to a tenant. Credentials live in the security crate, never here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user id.
    pub id: UserId,
    /// Email, trimmed and lowercased; unique per tenant.
    pub email: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Assigned roles (see [`User::effective_roles`]).
    pub roles: Vec<UserRole>,
    /// Lifecycle status.
    pub status: UserStatus,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl User {
    /// A new active user with a normalized email.
    pub fn new(email: &str, roles: Vec<UserRole>, now: Timestamp) -> Self {
        Self {
            id: UserId::generate(),
            email: normalize_email(email),
            first_name: None,
            last_name: None,
            roles,
            status: UserStatus::Active,
            email_verified: false,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Roles with implications applied: OWNER also grants ADMIN.
    pub fn effective_roles(&self) -> Vec<UserRole> {
        let mut roles = self.roles.clone();
        if roles.contains(&UserRole::Owner) && !roles.contains(&UserRole::Admin) {
            roles.push(UserRole::Admin);
        }
        roles.sort();
        roles
    }

    /// Checks input limits and the email shape.
    pub fn validate(&self) -> Result<()> {
        validate::name("email", &self.email)?;
        let valid_email = self.email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        }) && !self.email.contains(char::is_whitespace);
        if !valid_email {
            return Err(Error::invalid("email", "must be an email address"));
        }
        validate::opt_name("firstName", self.first_name.as_deref())?;
        validate::opt_name("lastName", self.last_name.as_deref())?;
        validate::list("roles", &self.roles)
    }
}

/// Trims and lowercases an email address.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_implies_admin_and_email_is_normalized() {
        let now = Timestamp::default();
        let user = User::new("  Alice@Example.COM ", vec![UserRole::Owner], now);
        assert_eq!(user.email, "alice@example.com");
        assert_eq!(
            user.effective_roles(),
            vec![UserRole::Owner, UserRole::Admin]
        );
        assert!(user.validate().is_ok());
        assert!(User::new("not-an-email", vec![], now).validate().is_err());
    }
}
