use serde::{Deserialize, Serialize};

use super::string_enum;
use crate::{Error, MachineId, OrganizationId, Result, TagId, Timestamp, validate};

string_enum!(
    /// Lifecycle and presence of a machine.
    MachineStatus {
        /// Enrolled, never seen.
        Pending = "PENDING",
        /// Heard from recently.
        Online = "ONLINE",
        /// Silent past the offline threshold.
        Offline = "OFFLINE",
        /// Kept for history, not managed.
        Archived = "ARCHIVED",
        /// Soft-deleted: hidden from lists unless asked for.
        Deleted = "DELETED",
    }
);

string_enum!(
    /// Operating system family.
    OsType { Windows = "WINDOWS", MacOs = "MAC_OS", Linux = "LINUX" }
);

/// A managed machine (a "device" in the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// The machine id (the agent's UUID).
    pub id: MachineId,
    /// Hostname reported by the agent.
    pub hostname: String,
    /// Name shown in the UI, if different from the hostname.
    pub display_name: Option<String>,
    /// Operator-given nickname.
    pub nickname: Option<String>,
    /// Lifecycle and presence.
    pub status: MachineStatus,
    /// OS family.
    pub os_type: OsType,
    /// OS version string.
    pub os_version: Option<String>,
    /// IP addresses.
    pub ip_addresses: Vec<String>,
    /// MAC address.
    pub mac_address: Option<String>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Owning organization.
    pub organization_id: Option<OrganizationId>,
    /// Attached tags.
    pub tags: Vec<TagId>,
    /// Last contact, stamped by the server (never moves backwards).
    pub last_seen: Option<Timestamp>,
    /// Enrollment time.
    pub registered_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl Machine {
    /// A new PENDING machine.
    pub fn new(
        id: MachineId,
        hostname: impl Into<String>,
        os_type: OsType,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            hostname: hostname.into(),
            display_name: None,
            nickname: None,
            status: MachineStatus::Pending,
            os_type,
            os_version: None,
            ip_addresses: Vec::new(),
            mac_address: None,
            agent_version: None,
            serial_number: None,
            manufacturer: None,
            model: None,
            organization_id: None,
            tags: Vec::new(),
            last_seen: None,
            registered_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Checks input limits.
    pub fn validate(&self) -> Result<()> {
        validate::name("hostname", &self.hostname)?;
        validate::opt_name("displayName", self.display_name.as_deref())?;
        validate::opt_name("nickname", self.nickname.as_deref())?;
        validate::opt_name("osVersion", self.os_version.as_deref())?;
        validate::opt_name("macAddress", self.mac_address.as_deref())?;
        validate::opt_name("agentVersion", self.agent_version.as_deref())?;
        validate::opt_name("serialNumber", self.serial_number.as_deref())?;
        validate::opt_name("manufacturer", self.manufacturer.as_deref())?;
        validate::opt_name("model", self.model.as_deref())?;
        validate::list("ipAddresses", &self.ip_addresses)?;
        for ip in &self.ip_addresses {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::invalid("ipAddresses", "must be IP addresses"));
            }
        }
        validate::list("tags", &self.tags)
    }
}
