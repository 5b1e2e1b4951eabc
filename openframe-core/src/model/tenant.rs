use serde::{Deserialize, Serialize};

use super::string_enum;
use crate::{Result, TenantId, Timestamp, validate};

string_enum!(
    /// Lifecycle of a tenant.
    TenantStatus { Active = "ACTIVE", Inactive = "INACTIVE", Deleted = "DELETED" }
);

/// A tenant: one MSP, its own OIDC issuer, its own data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The tenant id (also its path segment in issuer URLs).
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Unique domain (lowercased), e.g. `acme.example`.
    pub domain: String,
    /// Lifecycle status.
    pub status: TenantStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl Tenant {
    /// A new active tenant; the domain is trimmed and lowercased.
    pub fn new(id: TenantId, name: impl Into<String>, domain: &str, now: Timestamp) -> Self {
        Self {
            id,
            name: name.into(),
            domain: domain.trim().to_lowercase(),
            status: TenantStatus::Active,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Checks input limits.
    pub fn validate(&self) -> Result<()> {
        validate::name("name", &self.name)?;
        validate::name("domain", &self.domain)
    }
}
