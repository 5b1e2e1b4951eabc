//! The data-driven `{tool}:{source_type}` → (category, event type, severity) table.

use std::collections::HashMap;

use super::{EventCategory, Outcome, Severity, ToolSource};

use EventCategory as C;
use Severity as S;
use ToolSource as T;

/// One row of the mapping table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingEntry {
    /// The tool.
    pub tool: ToolSource,
    /// The tool's own type name (exact, case-sensitive).
    pub source_type: &'static str,
    /// The category.
    pub category: EventCategory,
    /// The unified event type (`SCREAMING_SNAKE_CASE`).
    pub event_type: &'static str,
    /// The severity when the outcome is a success or unknown.
    pub severity: Severity,
    /// The severity when the outcome is a failure; `None` keeps `severity`.
    pub failure_severity: Option<Severity>,
}

const fn m(
    tool: ToolSource,
    source_type: &'static str,
    category: EventCategory,
    event_type: &'static str,
    severity: Severity,
) -> MappingEntry {
    MappingEntry {
        tool,
        source_type,
        category,
        event_type,
        severity,
        failure_severity: None,
    }
}

/// Like [`m`], with a severity for failures.
const fn mf(
    tool: ToolSource,
    source_type: &'static str,
    category: EventCategory,
    event_type: &'static str,
    severity: Severity,
    failure: Severity,
) -> MappingEntry {
    MappingEntry {
        tool,
        source_type,
        category,
        event_type,
        severity,
        failure_severity: Some(failure),
    }
}

/// The built-in table. Adding a mapping is adding a row here (or passing rows to
/// [`MappingTable::from_entries`]).
#[rustfmt::skip]
pub static BUILTIN_MAPPINGS: &[MappingEntry] = &[
    // ---- MeshCentral: `{etype}.{action}` from its `events` collection ----
    m(T::Meshcentral, "server.started", C::System, "SERVER_STARTED", S::Info),
    m(T::Meshcentral, "server.stopped", C::System, "SERVER_STOPPED", S::Warning),
    m(T::Meshcentral, "servertimelinestats", C::System, "SERVER_STATS", S::Debug),
    m(T::Meshcentral, "wssessioncount", C::System, "SESSION_COUNT", S::Debug),
    m(T::Meshcentral, "user.login", C::Auth, "LOGIN", S::Info),
    m(T::Meshcentral, "user.logout", C::Auth, "LOGOUT", S::Info),
    m(T::Meshcentral, "user.authfail", C::Auth, "LOGIN_FAILED", S::Warning),
    m(T::Meshcentral, "user.passchange", C::Auth, "PASSWORD_CHANGED", S::Info),
    m(T::Meshcentral, "user.loginTokenAdded", C::Auth, "LOGIN_TOKEN_ADDED", S::Info),
    m(T::Meshcentral, "user.loginTokenChanged", C::Auth, "LOGIN_TOKEN_CHANGED", S::Info),
    m(T::Meshcentral, "user.endsession", C::Auth, "SESSION_ENDED", S::Info),
    m(T::Meshcentral, "user.accountcreate", C::Users, "USER_CREATED", S::Info),
    m(T::Meshcentral, "user.accountchange", C::Users, "USER_UPDATED", S::Info),
    m(T::Meshcentral, "user.accountremove", C::Users, "USER_DELETED", S::Warning),
    m(T::Meshcentral, "user.uicustomevent", C::System, "UI_CUSTOM_EVENT", S::Debug),
    m(T::Meshcentral, "ugrp.createusergroup", C::Users, "USER_GROUP_CREATED", S::Info),
    m(T::Meshcentral, "ugrp.usergroupchange", C::Users, "USER_GROUP_UPDATED", S::Info),
    m(T::Meshcentral, "ugrp.deleteusergroup", C::Users, "USER_GROUP_DELETED", S::Warning),
    m(T::Meshcentral, "mesh.createmesh", C::Device, "DEVICE_GROUP_CREATED", S::Info),
    m(T::Meshcentral, "mesh.meshchange", C::Device, "DEVICE_GROUP_UPDATED", S::Info),
    m(T::Meshcentral, "mesh.deletemesh", C::Device, "DEVICE_GROUP_DELETED", S::Warning),
    m(T::Meshcentral, "node.addnode", C::Device, "DEVICE_REGISTERED", S::Info),
    m(T::Meshcentral, "node.changenode", C::Device, "DEVICE_UPDATED", S::Info),
    m(T::Meshcentral, "node.removenode", C::Device, "DEVICE_DELETED", S::Warning),
    m(T::Meshcentral, "node.agentconnect", C::Device, "DEVICE_ONLINE", S::Info),
    m(T::Meshcentral, "node.agentdisconnect", C::Device, "DEVICE_OFFLINE", S::Info),
    m(T::Meshcentral, "node.devicesessions", C::Device, "DEVICE_SESSIONS_UPDATED", S::Debug),
    m(T::Meshcentral, "node.sysinfohash", C::Device, "DEVICE_SYSINFO_UPDATED", S::Debug),
    m(T::Meshcentral, "node.amtactivate", C::Device, "DEVICE_OOB_ACTIVATION_REQUESTED", S::Info),
    m(T::Meshcentral, "node.diagnostic", C::Device, "DEVICE_DIAGNOSTIC", S::Info),
    m(T::Meshcentral, "node.agentlog", C::Device, "DEVICE_AGENT_LOG", S::Debug),
    m(T::Meshcentral, "node.poweraction", C::Device, "DEVICE_POWER_ACTION", S::Warning),
    m(T::Meshcentral, "node.wakedevices", C::Device, "DEVICE_WAKE_REQUESTED", S::Info),
    m(T::Meshcentral, "node.batchupload", C::Files, "FILE_BATCH_UPLOAD", S::Info),
    m(T::Meshcentral, "node.sessioncompression", C::RemoteAccess, "SESSION_COMPRESSION", S::Debug),
    m(T::Meshcentral, "scanamtdevice", C::Device, "DEVICE_DISCOVERY", S::Info),
    m(T::Meshcentral, "relay.relaylog", C::RemoteAccess, "REMOTE_SESSION", S::Info),
    m(T::Meshcentral, "relay.relaylog.desktop", C::RemoteAccess, "REMOTE_DESKTOP_SESSION", S::Info),
    m(T::Meshcentral, "relay.relaylog.terminal", C::RemoteAccess, "REMOTE_TERMINAL_SESSION", S::Info),
    m(T::Meshcentral, "relay.relaylog.files", C::RemoteAccess, "FILE_TRANSFER_SESSION", S::Info),
    m(T::Meshcentral, "relay.recording", C::RemoteAccess, "SESSION_RECORDED", S::Info),
    // ---- FleetDM activities (`activity_type`) ----
    m(T::FleetMdm, "user_logged_in", C::Auth, "LOGIN", S::Info),
    m(T::FleetMdm, "user_failed_login", C::Auth, "LOGIN_FAILED", S::Warning),
    m(T::FleetMdm, "user_added_by_sso", C::Users, "USER_CREATED", S::Info),
    m(T::FleetMdm, "created_user", C::Users, "USER_CREATED", S::Info),
    m(T::FleetMdm, "deleted_user", C::Users, "USER_DELETED", S::Warning),
    m(T::FleetMdm, "changed_user_global_role", C::Users, "USER_ROLE_CHANGED", S::Info),
    m(T::FleetMdm, "deleted_user_global_role", C::Users, "USER_ROLE_REMOVED", S::Info),
    m(T::FleetMdm, "changed_user_team_role", C::Users, "USER_ROLE_CHANGED", S::Info),
    m(T::FleetMdm, "deleted_user_team_role", C::Users, "USER_ROLE_REMOVED", S::Info),
    m(T::FleetMdm, "created_policy", C::Policies, "POLICY_CREATED", S::Info),
    m(T::FleetMdm, "edited_policy", C::Policies, "POLICY_UPDATED", S::Info),
    m(T::FleetMdm, "deleted_policy", C::Policies, "POLICY_DELETED", S::Warning),
    m(T::FleetMdm, "applied_spec_policy", C::Policies, "POLICY_APPLIED", S::Info),
    m(T::FleetMdm, "created_saved_query", C::Queries, "QUERY_CREATED", S::Info),
    m(T::FleetMdm, "edited_saved_query", C::Queries, "QUERY_UPDATED", S::Info),
    m(T::FleetMdm, "deleted_saved_query", C::Queries, "QUERY_DELETED", S::Info),
    m(T::FleetMdm, "live_query", C::Queries, "LIVE_QUERY_RUN", S::Info),
    m(T::FleetMdm, "created_pack", C::Configuration, "PACK_CREATED", S::Info),
    m(T::FleetMdm, "edited_pack", C::Configuration, "PACK_UPDATED", S::Info),
    m(T::FleetMdm, "deleted_pack", C::Configuration, "PACK_DELETED", S::Info),
    m(T::FleetMdm, "created_team", C::Configuration, "TEAM_CREATED", S::Info),
    m(T::FleetMdm, "deleted_team", C::Configuration, "TEAM_DELETED", S::Warning),
    m(T::FleetMdm, "transferred_hosts", C::Device, "DEVICES_TRANSFERRED", S::Info),
    m(T::FleetMdm, "edited_agent_options", C::Configuration, "AGENT_OPTIONS_UPDATED", S::Info),
    m(T::FleetMdm, "fleet_enrolled", C::Device, "DEVICE_REGISTERED", S::Info),
    m(T::FleetMdm, "mdm_enrolled", C::Mdm, "MDM_ENROLLED", S::Info),
    m(T::FleetMdm, "mdm_unenrolled", C::Mdm, "MDM_UNENROLLED", S::Warning),
    m(T::FleetMdm, "created_macos_profile", C::Mdm, "PROFILE_CREATED", S::Info),
    m(T::FleetMdm, "deleted_macos_profile", C::Mdm, "PROFILE_DELETED", S::Info),
    m(T::FleetMdm, "created_windows_profile", C::Mdm, "PROFILE_CREATED", S::Info),
    m(T::FleetMdm, "deleted_windows_profile", C::Mdm, "PROFILE_DELETED", S::Info),
    mf(T::FleetMdm, "ran_script", C::Scripts, "SCRIPT_EXECUTION_STARTED", S::Info, S::Error),
    m(T::FleetMdm, "added_script", C::Scripts, "SCRIPT_CREATED", S::Info),
    m(T::FleetMdm, "updated_script", C::Scripts, "SCRIPT_UPDATED", S::Info),
    m(T::FleetMdm, "deleted_script", C::Scripts, "SCRIPT_DELETED", S::Info),
    m(T::FleetMdm, "added_software", C::Software, "SOFTWARE_ADDED", S::Info),
    m(T::FleetMdm, "edited_software", C::Software, "SOFTWARE_UPDATED", S::Info),
    m(T::FleetMdm, "deleted_software", C::Software, "SOFTWARE_DELETED", S::Info),
    mf(T::FleetMdm, "installed_software", C::Software, "SOFTWARE_INSTALLED", S::Info, S::Error),
    mf(T::FleetMdm, "uninstalled_software", C::Software, "SOFTWARE_UNINSTALLED", S::Info, S::Error),
    m(T::FleetMdm, "enabled_macos_disk_encryption", C::Security, "DISK_ENCRYPTION_ENABLED", S::Info),
    m(T::FleetMdm, "disabled_macos_disk_encryption", C::Security, "DISK_ENCRYPTION_DISABLED", S::Warning),
    m(T::FleetMdm, "read_host_disk_encryption_key", C::Security, "DISK_ENCRYPTION_KEY_READ", S::Warning),
    m(T::FleetMdm, "locked_host", C::Security, "HOST_LOCKED", S::Warning),
    m(T::FleetMdm, "unlocked_host", C::Security, "HOST_UNLOCKED", S::Info),
    m(T::FleetMdm, "wiped_host", C::Security, "HOST_WIPED", S::Critical),
    // ---- FleetDM native payloads ----
    mf(T::FleetMdm, "execute_scheduled_query", C::Queries, "QUERY_RESULT", S::Info, S::Warning),
    m(T::FleetMdm, "policy_membership_pass", C::Policies, "POLICY_COMPLIANT", S::Info),
    m(T::FleetMdm, "policy_membership_fail", C::Policies, "POLICY_VIOLATION", S::Warning),
    // ---- TacticalRMM ----
    m(T::TacticalRmm, "alert.availability", C::Monitoring, "DEVICE_UNREACHABLE", S::Warning),
    m(T::TacticalRmm, "alert.check", C::Monitoring, "MONITORING_CHECK_FAILED", S::Error),
    m(T::TacticalRmm, "alert.task", C::Monitoring, "TASK_FAILED", S::Error),
    m(T::TacticalRmm, "alert.custom", C::Monitoring, "ALERT_RAISED", S::Warning),
    m(T::TacticalRmm, "alert.resolved", C::Monitoring, "ALERT_RESOLVED", S::Info),
    mf(T::TacticalRmm, "agent_history.cmd_run", C::Commands, "COMMAND_EXECUTED", S::Info, S::Error),
    mf(T::TacticalRmm, "agent_history.script_run", C::Scripts, "SCRIPT_EXECUTED", S::Info, S::Error),
    m(T::TacticalRmm, "audit.login", C::Auth, "LOGIN", S::Info),
    m(T::TacticalRmm, "audit.failed_login", C::Auth, "LOGIN_FAILED", S::Warning),
    m(T::TacticalRmm, "audit.remote_session", C::RemoteAccess, "REMOTE_SESSION", S::Info),
    m(T::TacticalRmm, "audit.execute_command", C::Commands, "COMMAND_RUN_STARTED", S::Info),
    m(T::TacticalRmm, "audit.execute_script", C::Scripts, "SCRIPT_EXECUTION_STARTED", S::Info),
    m(T::TacticalRmm, "audit.agent_install", C::Device, "DEVICE_REGISTERED", S::Info),
    m(T::TacticalRmm, "audit.bulk_action", C::Commands, "BULK_ACTION", S::Info),
    m(T::TacticalRmm, "audit.url_action", C::System, "URL_ACTION", S::Info),
    m(T::TacticalRmm, "audit.check_run", C::Monitoring, "CHECK_RUN", S::Debug),
    m(T::TacticalRmm, "audit.task_run", C::Scripts, "TASK_RUN", S::Info),
    m(T::TacticalRmm, "audit.add", C::Configuration, "OBJECT_CREATED", S::Info),
    m(T::TacticalRmm, "audit.modify", C::Configuration, "OBJECT_UPDATED", S::Info),
    m(T::TacticalRmm, "audit.delete", C::Configuration, "OBJECT_DELETED", S::Warning),
    // ---- our agents ----
    mf(T::OpenframeAgent, "command_result", C::Commands, "COMMAND_EXECUTED", S::Info, S::Error),
    mf(T::OpenframeAgent, "script_result", C::Scripts, "SCRIPT_EXECUTED", S::Info, S::Error),
    // ---- OpenFrame domain events ----
    m(T::Openframe, "REGISTERED", C::Device, "DEVICE_REGISTERED", S::Info),
    m(T::Openframe, "CAME_ONLINE", C::Device, "DEVICE_ONLINE", S::Info),
    m(T::Openframe, "WENT_OFFLINE", C::Device, "DEVICE_OFFLINE", S::Info),
    m(T::Openframe, "UNINSTALLED", C::Device, "DEVICE_UNINSTALLED", S::Warning),
];

/// The classification of one source type (the result of [`MappingTable::lookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    category: EventCategory,
    event_type: &'static str,
    severity: Severity,
    failure_severity: Option<Severity>,
}

impl Mapping {
    /// The mapping of every unmapped source type: `UNKNOWN`, INFO, kept.
    pub const UNKNOWN: Mapping = Mapping {
        category: EventCategory::Unknown,
        event_type: "UNKNOWN",
        severity: Severity::Info,
        failure_severity: None,
    };

    /// The category.
    pub fn category(&self) -> EventCategory {
        self.category
    }

    /// The unified event type.
    pub fn event_type(&self) -> &'static str {
        self.event_type
    }

    /// The severity for `outcome`: the failure severity on [`Outcome::Failure`], else the base.
    pub fn severity(&self, outcome: Option<Outcome>) -> Severity {
        match outcome {
            Some(Outcome::Failure) => self.failure_severity.unwrap_or(self.severity),
            _ => self.severity,
        }
    }
}

impl From<&MappingEntry> for Mapping {
    fn from(e: &MappingEntry) -> Self {
        Self {
            category: e.category,
            event_type: e.event_type,
            severity: e.severity,
            failure_severity: e.failure_severity,
        }
    }
}

/// Lookup from `{tool}:{source_type}` to a [`Mapping`].
///
/// ```
/// use openframe_stream::model::{EventCategory, MappingTable, ToolSource};
/// let table = MappingTable::builtin();
/// assert_eq!(table.lookup(ToolSource::Meshcentral, "user.login").event_type(), "LOGIN");
/// let unknown = table.lookup(ToolSource::Meshcentral, "node.somethingnew");
/// assert_eq!(unknown.category(), EventCategory::Unknown);
/// ```
#[derive(Debug, Clone)]
pub struct MappingTable {
    entries: HashMap<(ToolSource, &'static str), Mapping>,
}

impl MappingTable {
    /// The table of [`BUILTIN_MAPPINGS`].
    pub fn builtin() -> Self {
        Self::from_entries(BUILTIN_MAPPINGS.iter().copied())
    }

    /// A table of `entries`; a later row for the same key replaces an earlier one, so
    /// `builtin` rows can be overridden by chaining.
    pub fn from_entries(entries: impl IntoIterator<Item = MappingEntry>) -> Self {
        let entries = entries
            .into_iter()
            .map(|e| ((e.tool, e.source_type), Mapping::from(&e)))
            .collect();
        Self { entries }
    }

    /// The mapping of `source_type`, or [`Mapping::UNKNOWN`].
    pub fn lookup(&self, tool: ToolSource, source_type: &str) -> Mapping {
        self.entries
            .get(&(tool, source_type))
            .copied()
            .unwrap_or(Mapping::UNKNOWN)
    }

    /// Whether `source_type` is mapped.
    pub fn contains(&self, tool: ToolSource, source_type: &str) -> bool {
        self.entries.contains_key(&(tool, source_type))
    }

    /// The number of mapped keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mapped keys, as `{tool}:{source_type}` strings.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .keys()
            .map(|(tool, st)| format!("{}:{st}", tool.as_str()))
    }
}

impl Default for MappingTable {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_no_duplicate_keys() {
        assert_eq!(MappingTable::builtin().len(), BUILTIN_MAPPINGS.len());
    }

    #[test]
    fn event_types_are_screaming_snake_case() {
        for e in BUILTIN_MAPPINGS {
            assert!(
                e.event_type
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{}",
                e.event_type
            );
        }
    }
}
