//! Our agents' command and script results: the snake_case `ResultMessage` of
//! `openframe-agent` (`execution_id`, `machine_id`, `stdout`, `stderr`, `exit_code`,
//! `execution_time_ms`, `timed_out`, `error`, `script_id`; unknown fields ignored).
//!
//! Accepted on the agent subjects `machine.{id}.command-execution.result` and
//! `machine.{id}.script-execution.result` (the subject's machine is authoritative), or on any
//! topic with `message-type: COMMAND_EXECUTED | SCRIPT_EXECUTED` (machine from the
//! `machine-id` header or the payload, tenant from `tenant-id`).
//!
//! Unlike the original, the outcome drives the severity: success (exit code 0, no timeout, no
//! error) is INFO, anything else ERROR. The id covers the execution, the machine and the script,
//! so several scripts of one execution never collide.

use openframe_core::{MachineId, TenantId};
use serde_json::json;

use super::fields::{Row, first_time, parse_json};
use super::{AdapterError, RawRecord, SourceAdapter};
use crate::model::{Outcome, ToolSource, UnifiedEvent, truncate_chars};

/// Header carrying the machine when the topic does not.
pub const MACHINE_HEADER: &str = "machine-id";
/// Header carrying the tenant.
pub const TENANT_HEADER: &str = "tenant-id";
/// Topic suffix for results relayed through the bus.
pub const TOPIC: &str = "agent-results";

const TOOL: ToolSource = ToolSource::OpenframeAgent;
const COMMAND_SUFFIX: &str = ".command-execution.result";
const SCRIPT_SUFFIX: &str = ".script-execution.result";
/// Longest stdout/stderr kept in details (the full output lives in the execution record).
const MAX_OUTPUT_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Command,
    Script,
}

impl Kind {
    /// The kind named by a `message-type` header (ASCII case ignored).
    fn from_message_type(t: &str) -> Option<Self> {
        if t.eq_ignore_ascii_case("COMMAND_EXECUTED") {
            Some(Self::Command)
        } else if t.eq_ignore_ascii_case("SCRIPT_EXECUTED") {
            Some(Self::Script)
        } else {
            None
        }
    }

    fn source_type(self) -> &'static str {
        match self {
            Self::Command => "command_result",
            Self::Script => "script_result",
        }
    }
}

/// The machine id and kind of an agent result subject.
fn parse_subject(topic: &str) -> Option<(&str, Kind)> {
    let (rest, kind) = if let Some(r) = topic.strip_suffix(COMMAND_SUFFIX) {
        (r, Kind::Command)
    } else {
        (topic.strip_suffix(SCRIPT_SUFFIX)?, Kind::Script)
    };
    let machine = rest.strip_prefix("machine.")?;
    (!machine.is_empty() && !machine.contains('.')).then_some((machine, kind))
}

table_adapter!(
    /// Adapts agent command and script results.
    OpenframeAgentAdapter
);

impl SourceAdapter for OpenframeAgentAdapter {
    fn tool(&self) -> ToolSource {
        TOOL
    }

    fn accepts(&self, record: &RawRecord) -> bool {
        match record.message_type_str() {
            Some(t) => Kind::from_message_type(t).is_some(),
            None => parse_subject(&record.topic).is_some() || record.topic_is(TOPIC),
        }
    }

    fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError> {
        let value = parse_json(TOOL, &record.payload)?;
        let row = Row::new(TOOL, "result", &value)?;
        let execution_id = row.req_str("execution_id")?;
        let script_id = row.str("script_id")?.filter(|s| !s.is_empty());
        let subject = parse_subject(&record.topic);
        let kind = match subject {
            Some((_, k)) => k,
            None => match record.message_type_str().and_then(Kind::from_message_type) {
                Some(k) => k,
                None if script_id.is_some() => Kind::Script,
                None => Kind::Command,
            },
        };
        let machine_raw = match subject {
            Some((m, _)) => m,
            None => match record.header(MACHINE_HEADER) {
                Some(m) => m,
                None => row.req_str("machine_id")?,
            },
        };
        let machine = MachineId::parse(machine_raw)
            .map_err(|_| AdapterError::malformed(TOOL, "the machine id is not a valid id"))?;
        let tenant = record
            .header(TENANT_HEADER)
            .map(TenantId::parse)
            .transpose()
            .map_err(|_| AdapterError::malformed(TOOL, "the tenant-id header is not a valid id"))?;
        let exit_code = row.i64("exit_code")?;
        let timed_out = row.bool("timed_out")?.unwrap_or(false);
        let error = row.str("error")?.filter(|e| !e.trim().is_empty());
        let success = exit_code == Some(0) && !timed_out && error.is_none();
        let outcome = if success {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let at = first_time(
            TOOL,
            [
                row.time("finished_at")?,
                row.time("event_timestamp")?,
                record.timestamp,
            ],
        )?;
        let what = match (kind, script_id) {
            (Kind::Script, Some(id)) => format!("Script {id}"),
            (Kind::Script, None) => "Script".to_owned(),
            (Kind::Command, _) => "Command".to_owned(),
        };
        let summary = if timed_out {
            format!("{what} timed out")
        } else if let Some(e) = error {
            format!("{what} failed: {e}")
        } else {
            match exit_code {
                Some(c) => format!("{what} finished (exit code {c})"),
                None => format!("{what} finished without an exit code"),
            }
        };
        let stdout = row.str("stdout")?.unwrap_or("");
        let stderr = row.str("stderr")?.unwrap_or("");
        let pk = format!("{execution_id}:{machine}");
        let event = UnifiedEvent::new(
            &self.table,
            UnifiedEvent::id_for(TOOL, kind.source_type(), &pk, script_id),
            TOOL,
            kind.source_type(),
            at,
            Some(outcome),
        )
        .with_tenant(tenant)
        .with_tool_agent_id(Some(machine.as_str()))
        .with_machine(Some(machine.clone()))
        .with_summary_string(summary)
        .with_details(json!({
            "executionId": execution_id,
            "scriptId": script_id,
            "exitCode": exit_code,
            "executionTimeMs": row.i64("execution_time_ms")?,
            "timedOut": timed_out,
            "error": error,
            "stdout": truncate_chars(stdout, MAX_OUTPUT_CHARS),
            "stderr": truncate_chars(stderr, MAX_OUTPUT_CHARS),
            "stdoutTruncated": longer_than(stdout, MAX_OUTPUT_CHARS),
            "stderrTruncated": longer_than(stderr, MAX_OUTPUT_CHARS),
        }))
        .with_source_position(record.position.clone());
        Ok(vec![event])
    }
}

/// Whether `s` has more than `max` characters (counted only when its bytes could be more).
fn longer_than(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().count() > max
}
