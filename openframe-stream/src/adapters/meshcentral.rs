//! MeshCentral: rows of its MongoDB `events` collection, captured by Debezium.
//!
//! Source type `{etype}.{action}` (or either alone), refined for agent connectivity
//! (`node.nodeconnect` → `node.agentconnect` / `node.agentdisconnect` by the `conn` bitmask) and
//! relay sessions (`relay.relaylog` → `.desktop` / `.terminal` / `.files` by `protocol`).
//! `nodeid` → `tool_agent_id`; `domain` (the tenant discriminator) is kept in `details`.

use serde_json::Value;

use super::debezium::parse_log_change;
use super::fields::{Row, first_time, into_object};
use super::{AdapterError, RawRecord, SourceAdapter};
use crate::model::{ToolSource, UnifiedEvent};

/// The inbound topic.
pub const TOPIC: &str = "meshcentral-events";
/// The routing header value.
pub const MESSAGE_TYPE: &str = "MESHCENTRAL_EVENT";

const TOOL: ToolSource = ToolSource::Meshcentral;

table_adapter!(
    /// Adapts MeshCentral event rows.
    MeshCentralAdapter
);

impl SourceAdapter for MeshCentralAdapter {
    fn tool(&self) -> ToolSource {
        TOOL
    }

    fn accepts(&self, record: &RawRecord) -> bool {
        record
            .message_type_is(MESSAGE_TYPE)
            .unwrap_or_else(|| record.topic_is(TOPIC))
    }

    fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError> {
        let Some(mut change) = parse_log_change(TOOL, &record.payload)? else {
            return Ok(Vec::new());
        };
        // The row is moved out of the change: it becomes the details without a copy.
        let mut details = into_object(TOOL, "after", change.take_row())?;
        let row = Row::of(TOOL, "after", &details);
        let source_type = source_type(&row)?;
        let pk = row.req_id("_id")?;
        let table = change.table().unwrap_or("events");
        let occurred_at = first_time(
            TOOL,
            [row.time("time")?, change.captured_at(), record.timestamp],
        )?;
        let user = match row.str("username")? {
            Some(u) => Some(u),
            None => row.str("userid")?,
        };
        let summary = row.str("msg")?.unwrap_or(&source_type);
        let event = UnifiedEvent::new(
            &self.table,
            UnifiedEvent::id_for(TOOL, table, &pk, None),
            TOOL,
            &source_type,
            occurred_at,
            None,
        )
        .with_tool_agent_id(row.str("nodeid")?)
        .with_user(user)
        .with_summary(summary)
        .with_source_position(change.source.position.take().or(record.position.clone()));
        details.remove("_id");
        details.remove("ids");
        Ok(vec![event.with_details(Value::Object(details))])
    }
}

fn source_type(row: &Row<'_>) -> Result<String, AdapterError> {
    let etype = row.str("etype")?.filter(|s| !s.is_empty());
    let action = row.str("action")?.filter(|s| !s.is_empty());
    let base = match (etype, action) {
        (Some(e), Some(a)) => format!("{e}.{a}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => return Err(row.error("action", "and `etype` are both missing")),
    };
    Ok(match base.as_str() {
        "node.nodeconnect" => match row.i64("conn")? {
            Some(conn) if conn & 1 == 1 => "node.agentconnect".to_owned(),
            Some(_) => "node.agentdisconnect".to_owned(),
            None => base,
        },
        "relay.relaylog" => match row.i64("protocol")? {
            // MeshCentral relay protocols: 2 desktop; 1, 6, 8, 9 terminals and shells,
            // 11 web-SSH; 5 files, 13 web-SSH files.
            Some(2 | 10 | 12) => "relay.relaylog.desktop".to_owned(),
            Some(1 | 6 | 8 | 9 | 11) => "relay.relaylog.terminal".to_owned(),
            Some(5 | 13) => "relay.relaylog.files".to_owned(),
            _ => base,
        },
        _ => base,
    })
}
