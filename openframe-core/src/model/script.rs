use serde::{Deserialize, Serialize};

use super::{OsType, string_enum};
use crate::{Error, Result, ScriptId, TagId, Timestamp, UserId, validate};

string_enum!(
    /// The shell a command or script runs in.
    ScriptShell {
        Powershell = "POWERSHELL", Cmd = "CMD", Bash = "BASH", Python = "PYTHON",
        Nushell = "NUSHELL", Shell = "SHELL",
    }
);

string_enum!(
    /// The privilege a command or script runs with.
    PrivilegeLevel { User = "USER", Admin = "ADMIN" }
);

string_enum!(
    /// Lifecycle of a stored script (deleting is soft).
    ScriptStatus { Active = "ACTIVE", Archived = "ARCHIVED", Deleted = "DELETED" }
);

/// Longest script body, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;
/// Longest script timeout, seconds.
pub const MAX_SCRIPT_TIMEOUT_SECS: u32 = 3600;
/// The timeout a new script gets, seconds (the original agent's default is 900 s).
pub const DEFAULT_SCRIPT_TIMEOUT_SECS: u32 = 900;

/// A stored script of one tenant, run on machines by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Script {
    /// The script id.
    pub id: ScriptId,
    /// Display name, unique per tenant among non-deleted scripts (case-insensitive).
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// The shell it runs in.
    pub shell: ScriptShell,
    /// The privilege it runs with.
    pub privilege_level: PrivilegeLevel,
    /// The script body (the original's `scriptBody`), at most [`MAX_SCRIPT_BYTES`].
    pub code: String,
    /// Positional arguments used when a run gives none.
    pub default_args: Vec<String>,
    /// Timeout used when a run gives none, seconds (1 to [`MAX_SCRIPT_TIMEOUT_SECS`]).
    pub default_timeout_secs: u32,
    /// Operating systems it is written for (empty: any).
    pub supported_platforms: Vec<OsType>,
    /// Free-form category, e.g. `"Maintenance"`.
    pub category: Option<String>,
    /// Tags (script tags, by id).
    pub tags: Vec<TagId>,
    /// Lifecycle status.
    pub status: ScriptStatus,
    /// Who created it.
    pub author: Option<UserId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl Script {
    /// A new active script with the default timeout, run as administrator.
    pub fn new(
        name: impl Into<String>,
        shell: ScriptShell,
        code: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: ScriptId::generate(),
            name: name.into().trim().to_owned(),
            description: None,
            shell,
            privilege_level: PrivilegeLevel::Admin,
            code: code.into(),
            default_args: Vec::new(),
            default_timeout_secs: DEFAULT_SCRIPT_TIMEOUT_SECS,
            supported_platforms: Vec::new(),
            category: None,
            tags: Vec::new(),
            status: ScriptStatus::Active,
            author: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Whether it may be run (only active scripts are).
    pub fn is_runnable(&self) -> bool {
        self.status == ScriptStatus::Active
    }

    /// Checks input limits.
    pub fn validate(&self) -> Result<()> {
        validate::name("name", &self.name)?;
        if let Some(d) = &self.description {
            validate::max_chars("description", d, validate::MAX_TEXT_LEN)?;
        }
        validate::opt_name("category", self.category.as_deref())?;
        if self.code.trim().is_empty() {
            return Err(Error::invalid("code", "must not be blank"));
        }
        if self.code.len() > MAX_SCRIPT_BYTES {
            return Err(Error::invalid("code", "must be at most 256 KiB"));
        }
        if self.default_timeout_secs == 0 || self.default_timeout_secs > MAX_SCRIPT_TIMEOUT_SECS {
            return Err(Error::invalid(
                "defaultTimeoutSeconds",
                "must be between 1 and 3600",
            ));
        }
        validate::list("defaultArgs", &self.default_args)?;
        for arg in &self.default_args {
            validate::max_chars("defaultArgs", arg, validate::MAX_TEXT_LEN)?;
        }
        validate::list("supportedPlatforms", &self.supported_platforms)?;
        validate::list("tags", &self.tags)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, SystemClock};

    #[test]
    fn limits_are_checked() {
        let ok = Script::new(
            "Clean temp",
            ScriptShell::Bash,
            "rm -rf /tmp/x",
            SystemClock.now(),
        );
        assert!(ok.validate().is_ok());
        assert!(ok.is_runnable());
        let mut bad = ok.clone();
        bad.code = "  ".into();
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.code = "x".repeat(MAX_SCRIPT_BYTES + 1);
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.default_timeout_secs = 0;
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.name = String::new();
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.default_args = vec!["a".into(); 101];
        assert!(bad.validate().is_err());
        assert_eq!(
            "powershell".parse::<ScriptShell>().unwrap(),
            ScriptShell::Powershell
        );
        assert_eq!(
            serde_json::to_string(&PrivilegeLevel::Admin).unwrap(),
            "\"ADMIN\""
        );
    }
}
