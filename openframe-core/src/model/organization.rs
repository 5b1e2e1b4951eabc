use serde::{Deserialize, Serialize};

use super::string_enum;
use crate::{Error, OrganizationId, Result, Timestamp, validate};

string_enum!(
    /// Lifecycle of an organization.
    OrganizationStatus { Active = "ACTIVE", Archived = "ARCHIVED", Deleted = "DELETED" }
);

/// A customer of the MSP; machines belong to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The organization id.
    pub id: OrganizationId,
    /// Display name, unique per tenant among non-deleted organizations.
    pub name: String,
    /// Free-form category, e.g. `"Healthcare"`.
    pub category: Option<String>,
    /// Whether this is the tenant's default organization (machines without one land here).
    pub is_default: bool,
    /// Lifecycle status.
    pub status: OrganizationStatus,
    /// Website.
    pub website_url: Option<String>,
    /// Head count.
    pub number_of_employees: Option<u32>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl Organization {
    /// A new active organization.
    pub fn new(name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            id: OrganizationId::generate(),
            name: name.into(),
            category: None,
            is_default: false,
            status: OrganizationStatus::Active,
            website_url: None,
            number_of_employees: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Checks input limits.
    pub fn validate(&self) -> Result<()> {
        validate::name("name", &self.name)?;
        validate::opt_name("category", self.category.as_deref())?;
        validate::opt_name("websiteUrl", self.website_url.as_deref())?;
        if self.is_default && self.status != OrganizationStatus::Active {
            return Err(Error::invalid(
                "status",
                "the default organization must stay ACTIVE",
            ));
        }
        Ok(())
    }
}
