use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, Result, Timestamp, UserId, validate};

/// API key metadata. The secret is shown once at creation and stored only as a keyed hash by
/// the security crate; it is never part of this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// The public key id, `ak_<16 hex>`.
    pub id: ApiKeyId,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The user who owns the key.
    pub user_id: UserId,
    /// Granted scopes, e.g. `devices:read`.
    pub scopes: Vec<String>,
    /// Disabled keys are refused.
    pub enabled: bool,
    /// Optional expiry.
    pub expires_at: Option<Timestamp>,
    /// Last successful use.
    pub last_used_at: Option<Timestamp>,
    /// Requests made with the key.
    pub total_requests: u64,
    /// Requests that failed.
    pub failed_requests: u64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl ApiKey {
    /// New enabled key metadata with a fresh `ak_` id.
    pub fn new(
        name: impl Into<String>,
        user_id: UserId,
        scopes: Vec<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: ApiKeyId::generate_key_id(),
            name: name.into(),
            description: None,
            user_id,
            scopes,
            enabled: true,
            expires_at: None,
            last_used_at: None,
            total_requests: 0,
            failed_requests: 0,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Enabled and not expired at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.enabled && self.expires_at.is_none_or(|exp| exp > now)
    }

    /// Checks input limits.
    pub fn validate(&self) -> Result<()> {
        validate::name("name", &self.name)?;
        if let Some(d) = &self.description {
            validate::max_chars("description", d, validate::MAX_TEXT_LEN)?;
        }
        validate::list("scopes", &self.scopes)?;
        self.scopes
            .iter()
            .try_for_each(|s| validate::name("scopes", s))
    }
}
