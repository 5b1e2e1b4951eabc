//! TacticalRMM: Postgres rows captured by Debezium from `alerts_alert` (alerts with their own
//! severity; raised and resolved are distinct events), `agents_agenthistory` (command and script
//! runs with results) and `logs_auditlog` (audit entries).
//!
//! `agent_id` → `tool_agent_id` (the numeric agent row id for alerts and history, the agent's
//! string id for audit entries). Rows of other tables become `UNKNOWN` events.

use serde_json::{Value, json};

use super::debezium::{ChangeEvent, parse_log_change};
use super::fields::{Row, first_time};
use super::{AdapterError, RawRecord, SourceAdapter};
use crate::model::{MappingTable, Outcome, Severity, ToolSource, UnifiedEvent, truncate_chars};

/// Message-type header prefix (`TACTICAL_RMM_ALERT`, `TACTICAL_RMM_AGENT_HISTORY`, ...).
pub const MESSAGE_TYPE_PREFIX: &str = "TACTICAL_RMM";
/// Topic prefix of the Debezium connector (`tactical-rmm.public.alerts_alert`, ...).
pub const TOPIC_PREFIX: &str = "tactical-rmm";

const TOOL: ToolSource = ToolSource::TacticalRmm;
/// Longest command output kept in details.
const MAX_OUTPUT_CHARS: usize = 4096;

table_adapter!(
    /// Adapts TacticalRMM alerts, agent history and audit log rows.
    TacticalRmmAdapter
);

impl SourceAdapter for TacticalRmmAdapter {
    fn tool(&self) -> ToolSource {
        TOOL
    }

    fn accepts(&self, record: &RawRecord) -> bool {
        match record.message_type_str() {
            Some(t) => t
                .as_bytes()
                .get(..MESSAGE_TYPE_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(MESSAGE_TYPE_PREFIX.as_bytes())),
            None => record
                .topic
                .split(['.', '/'])
                .any(|seg| seg == TOPIC_PREFIX || seg == "tacticalrmm"),
        }
    }

    fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError> {
        let Some(change) = parse_log_change(TOOL, &record.payload)? else {
            return Ok(Vec::new());
        };
        let row = Row::new(TOOL, "after", change.row())?;
        let table = change
            .table()
            .or_else(|| record.topic.rsplit('.').next())
            .unwrap_or("unknown");
        let ctx = Ctx {
            mapping: &self.table,
            record,
            change: &change,
            table,
        };
        let event = match table {
            "alerts_alert" => ctx.alert(&row)?,
            "agents_agenthistory" => ctx.history(&row)?,
            "logs_auditlog" => ctx.audit(&row)?,
            other => {
                let pk = row.req_id("id")?;
                let at = ctx.time(None)?;
                ctx.event(other, &pk, None, at, None)
                    .with_details(Value::Object(row.object().clone()))
            }
        };
        Ok(vec![event])
    }
}

struct Ctx<'a> {
    mapping: &'a MappingTable,
    record: &'a RawRecord,
    change: &'a ChangeEvent,
    table: &'a str,
}

impl Ctx<'_> {
    fn time(
        &self,
        row_time: Option<openframe_core::Timestamp>,
    ) -> Result<openframe_core::Timestamp, AdapterError> {
        first_time(
            TOOL,
            [row_time, self.change.captured_at(), self.record.timestamp],
        )
    }

    fn event(
        &self,
        source_type: &str,
        pk: &str,
        extra: Option<&str>,
        at: openframe_core::Timestamp,
        outcome: Option<Outcome>,
    ) -> UnifiedEvent {
        UnifiedEvent::new(
            self.mapping,
            UnifiedEvent::id_for(TOOL, self.table, pk, extra),
            TOOL,
            source_type,
            at,
            outcome,
        )
        .with_source_position(
            self.change
                .source
                .position
                .clone()
                .or_else(|| self.record.position.clone()),
        )
    }

    fn alert(&self, row: &Row<'_>) -> Result<UnifiedEvent, AdapterError> {
        let pk = row.req_id("id")?;
        let alert_type = row.req_str("alert_type")?;
        let resolved = row.bool("resolved")?.unwrap_or(false);
        let (source_type, state, at) = if resolved {
            (
                "alert.resolved".to_owned(),
                "resolved",
                row.time("resolved_on")?,
            )
        } else {
            (
                format!("alert.{alert_type}"),
                "raised",
                row.time("alert_time")?,
            )
        };
        let at = self.time(at)?;
        let severity = match row.str("severity")? {
            Some("info") => Some(Severity::Info),
            Some("warning") => Some(Severity::Warning),
            Some("error") => Some(Severity::Error),
            Some(_) | None => None,
        };
        let message = row.str("message")?;
        let mut event = self
            .event(&source_type, &pk, Some(state), at, None)
            .with_tool_agent_id(row.id("agent_id")?)
            .with_summary(message.unwrap_or(&source_type))
            .with_details(json!({
                "alertId": pk,
                "alertType": alert_type,
                "severity": row.str("severity")?,
                "resolved": resolved,
                "checkId": row.id("assigned_check_id")?,
                "taskId": row.id("assigned_task_id")?,
            }));
        if let (Some(s), false) = (severity, resolved) {
            event = event.with_severity(s);
        }
        Ok(event)
    }

    fn history(&self, row: &Row<'_>) -> Result<UnifiedEvent, AdapterError> {
        let pk = row.req_id("id")?;
        let kind = row.req_str("type")?;
        let at = self.time(row.time("time")?)?;
        let script_results = row.json("script_results").unwrap_or(Value::Null);
        let retcode = script_results.get("retcode").and_then(Value::as_i64);
        let outcome = retcode.map(|c| {
            if c == 0 {
                Outcome::Success
            } else {
                Outcome::Failure
            }
        });
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(|s| truncate_chars(s, MAX_OUTPUT_CHARS))
        };
        let command = row
            .str("command")?
            .map(|c| truncate_chars(c, MAX_OUTPUT_CHARS));
        let summary = match (kind, retcode) {
            ("script_run", Some(c)) => format!("Script finished (exit code {c})"),
            ("script_run", None) => "Script run".to_owned(),
            ("cmd_run", _) => format!(
                "Command run: {}",
                truncate_chars(command.as_deref().unwrap_or(""), 200)
            ),
            (other, _) => format!("Agent history: {other}"),
        };
        Ok(self
            .event(&format!("agent_history.{kind}"), &pk, None, at, outcome)
            .with_tool_agent_id(row.id("agent_id")?)
            .with_user(row.str("username")?)
            .with_summary_string(summary)
            .with_details(json!({
                "command": command,
                "scriptId": row.id("script_id")?,
                "exitCode": retcode,
                "results": row.str("results")?.map(|r| truncate_chars(r, MAX_OUTPUT_CHARS)),
                "stdout": text(script_results.get("stdout")),
                "stderr": text(script_results.get("stderr")),
                "executionTime": script_results.get("execution_time"),
            })))
    }

    fn audit(&self, row: &Row<'_>) -> Result<UnifiedEvent, AdapterError> {
        let pk = row.req_id("id")?;
        let action = row.req_str("action")?;
        let at = self.time(row.time("entry_time")?)?;
        let object_type = row.str("object_type")?;
        let username = row.str("username")?;
        let summary = match row.str("message")? {
            Some(m) if !m.trim().is_empty() => m.to_owned(),
            _ => format!(
                "{} {action} {}",
                username.unwrap_or("someone"),
                object_type.unwrap_or("")
            ),
        };
        // before_value/after_value may hold secrets (API keys, passwords): not copied.
        Ok(self
            .event(&format!("audit.{action}"), &pk, None, at, None)
            .with_tool_agent_id(row.id("agent_id")?)
            .with_user(username)
            .with_summary_string(summary)
            .with_details(json!({
                "action": action,
                "objectType": object_type,
                "agent": row.str("agent")?,
                "ipAddress": row.str("ip_address")?,
            })))
    }
}
