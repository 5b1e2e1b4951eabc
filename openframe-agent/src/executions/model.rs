//! The execution record and the wire messages of commands and scripts.

use openframe_core::{Error, MachineId, Result, Timestamp, UserId};
use openframe_data::entity::Entity;
use openframe_data::store::{FieldDef, FieldKind, IndexDef, Schema, Value};
use serde::{Deserialize, Serialize};

/// Longest stored stdout or stderr, in bytes; longer output is cut at a character boundary and
/// flagged.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Longest accepted command or script body, in bytes.
pub const MAX_CODE_BYTES: usize = 256 * 1024;
/// Longest accepted timeout, seconds.
pub const MAX_TIMEOUT_SECS: u32 = 3600;

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Waiting for an offline machine to come back (until `queued_until`).
    Queued,
    /// Sent to the agent; waiting for its result.
    Running,
    /// Exit code 0.
    Success,
    /// Non-zero exit code or an agent-side error.
    Failed,
    /// No result within the timeout (reported by the agent or reaped by the watchdog).
    TimedOut,
    /// Cancelled by an operator.
    Cancelled,
    /// The machine did not come back before the queue expiry.
    Expired,
}

impl ExecutionStatus {
    /// Final states are never overwritten.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }
}

/// The shell a command or script runs in (the domain model's [`ScriptShell`](openframe_core::ScriptShell)).
pub use openframe_core::ScriptShell as Shell;

/// The privilege a command or script runs with.
pub use openframe_core::PrivilegeLevel;

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSpec {
    /// The stored script, for script runs.
    pub script_id: Option<String>,
    /// The code.
    pub code: String,
    /// The shell.
    pub shell: Shell,
    /// The privilege.
    pub privilege_level: PrivilegeLevel,
    /// Positional arguments (scripts).
    pub args: Vec<String>,
    /// Timeout, seconds (1 to 3600).
    pub timeout_secs: u32,
}

impl RunSpec {
    /// A command.
    pub fn command(code: impl Into<String>, shell: Shell, timeout_secs: u32) -> Self {
        Self {
            script_id: None,
            code: code.into(),
            shell,
            privilege_level: PrivilegeLevel::Admin,
            args: Vec::new(),
            timeout_secs,
        }
    }

    /// Checks sizes and the timeout.
    pub fn validate(&self) -> Result<()> {
        if self.code.trim().is_empty() {
            return Err(Error::invalid("code", "must not be blank"));
        }
        if self.code.len() > MAX_CODE_BYTES {
            return Err(Error::invalid("code", "must be at most 256 KiB"));
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return Err(Error::invalid(
                "timeoutSeconds",
                "must be between 1 and 3600",
            ));
        }
        openframe_core::validate::list("args", &self.args)?;
        for a in &self.args {
            openframe_core::validate::max_chars("args", a, openframe_core::validate::MAX_TEXT_LEN)?;
        }
        if let Some(id) = &self.script_id {
            openframe_core::id::validate_id("scriptId", id)?;
        }
        Ok(())
    }
}

/// One run of a command or script on one machine. Several share an `execution_id` when
/// dispatched as a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// `{execution_id}.{machine_id}`: unique per machine of a batch.
    pub id: String,
    /// The batch id shared by every machine of one dispatch.
    pub execution_id: String,
    /// The machine.
    pub machine_id: MachineId,
    /// What runs.
    pub spec: RunSpec,
    /// Status.
    pub status: ExecutionStatus,
    /// Who asked.
    pub initiated_by: Option<UserId>,
    /// When it was sent to the agent.
    pub dispatched_at: Option<Timestamp>,
    /// A queued execution expires at this time.
    pub queued_until: Option<Timestamp>,
    /// After this time a RUNNING execution is reaped by the watchdog.
    pub deadline: Option<Timestamp>,
    /// When it reached a final state.
    pub finished_at: Option<Timestamp>,
    /// Exit code.
    pub exit_code: Option<i64>,
    /// Standard output (at most 64 KiB).
    pub stdout: String,
    /// Standard error (at most 64 KiB).
    pub stderr: String,
    /// Whether stdout was cut.
    pub stdout_truncated: bool,
    /// Whether stderr was cut.
    pub stderr_truncated: bool,
    /// How long the agent ran it.
    pub execution_time_ms: Option<i64>,
    /// An agent-side or server-side error.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Version.
    pub version: u64,
}

impl Execution {
    /// The record id of `machine` in batch `execution_id`.
    pub fn record_id(execution_id: &str, machine: &MachineId) -> String {
        format!("{execution_id}.{machine}")
    }

    fn validate(&self) -> Result<()> {
        self.spec.validate()
    }
}

static SCHEMA: Schema = Schema {
    collection: "executions",
    entity: "execution",
    fields: &[
        FieldDef::required("execution_id", FieldKind::Str),
        FieldDef::required("machine_id", FieldKind::Str),
        FieldDef::required("status", FieldKind::Str),
        FieldDef::required("created_at", FieldKind::Int),
        FieldDef::optional("deadline", FieldKind::Int),
        FieldDef::optional("queued_until", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["execution_id"],
        },
        IndexDef {
            fields: &["machine_id", "status", "created_at"],
        },
        IndexDef {
            fields: &["status", "deadline"],
        },
        IndexDef {
            fields: &["status", "queued_until"],
        },
        IndexDef {
            fields: &["created_at"],
        },
    ],
    unique: &[],
};

impl Entity for Execution {
    const SCHEMA: &'static Schema = &SCHEMA;
    openframe_data::entity_basics!("execution", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::str(&self.execution_id),
            Value::str(self.machine_id.as_str()),
            Value::str(self.status.as_str()),
            Value::time(self.created_at),
            Value::opt_time(self.deadline),
            Value::opt_time(self.queued_until),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        vec![
            self.execution_id.as_str(),
            self.stdout.as_str(),
            self.stderr.as_str(),
        ]
    }
}

openframe_data::timestamped!(Execution);

/// The command message the agent expects on `machine.{id}.command-execution` (camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandMessage {
    /// The batch id.
    pub execution_id: String,
    /// The code.
    pub code: String,
    /// The shell.
    pub shell: Shell,
    /// The privilege.
    pub privilege_level: PrivilegeLevel,
    /// Timeout, seconds.
    pub timeout: u32,
}

/// The script message the agent expects on `machine.{id}.script-execution` (camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptMessage {
    /// The batch id.
    pub execution_id: String,
    /// Schedule (unused for ad-hoc runs).
    pub schedule_id: Option<String>,
    /// The script.
    pub script_id: Option<String>,
    /// The machine.
    pub machine_id: String,
    /// The code.
    pub code: String,
    /// The shell.
    pub shell: Shell,
    /// The privilege.
    pub privilege_level: PrivilegeLevel,
    /// Arguments.
    pub args: Vec<String>,
    /// Timeout, seconds.
    pub timeout_seconds: u32,
}

/// The cancel message on `machine.{id}.command-cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelMessage {
    /// The batch id.
    pub execution_id: String,
}

/// A result the agent reports (snake_case, unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMessage {
    /// The batch id.
    pub execution_id: String,
    /// The machine (the subject's machine is authoritative).
    #[serde(default)]
    pub machine_id: Option<String>,
    /// Standard output.
    #[serde(default)]
    pub stdout: String,
    /// Standard error.
    #[serde(default)]
    pub stderr: String,
    /// Exit code.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Duration.
    #[serde(default)]
    pub execution_time_ms: Option<i64>,
    /// Whether the agent hit the timeout.
    #[serde(default)]
    pub timed_out: bool,
    /// An agent-side error.
    #[serde(default)]
    pub error: Option<String>,
    /// The script (script results).
    #[serde(default)]
    pub script_id: Option<String>,
}

/// Cuts `s` to at most `max` bytes at a character boundary; returns whether it was cut.
pub fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "ä".repeat(10);
        assert!(truncate(&mut s, 5));
        assert_eq!(s, "ää");
        let mut short = "ok".to_owned();
        assert!(!truncate(&mut short, 5));
    }

    #[test]
    fn results_tolerate_unknown_fields() {
        let r: ResultMessage =
            serde_json::from_str(r#"{"execution_id":"e","exit_code":0,"stdout":"x","extra":1}"#)
                .unwrap();
        assert_eq!(r.exit_code, Some(0));
    }
}
