//! OpenFrame agent-plane domain events (`openframe-agent`'s `AgentEvent`, camelCase):
//! `{tenant, machineId, kind: REGISTERED | CAME_ONLINE | WENT_OFFLINE | UNINSTALLED,
//! previousStatus, status, at}` → DEVICE events. Unknown kinds become `UNKNOWN` events.

use openframe_core::{MachineId, TenantId};
use serde_json::json;

use super::fields::{Row, parse_json};
use super::{AdapterError, RawRecord, SourceAdapter};
use crate::model::{ToolSource, UnifiedEvent};

/// Topic suffix.
pub const TOPIC: &str = "agent-events";
/// Routing header value.
pub const MESSAGE_TYPE: &str = "AGENT_EVENT";

const TOOL: ToolSource = ToolSource::Openframe;

table_adapter!(
    /// Adapts agent-plane domain events.
    OpenframeEventsAdapter
);

impl SourceAdapter for OpenframeEventsAdapter {
    fn tool(&self) -> ToolSource {
        TOOL
    }

    fn accepts(&self, record: &RawRecord) -> bool {
        record
            .message_type_is(MESSAGE_TYPE)
            .unwrap_or_else(|| record.topic_is(TOPIC))
    }

    fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError> {
        let value = parse_json(TOOL, &record.payload)?;
        let row = Row::new(TOOL, "event", &value)?;
        let tenant = TenantId::parse(row.req_str("tenant")?)
            .map_err(|_| row.error("tenant", "is not a valid id"))?;
        let machine = MachineId::parse(row.req_str("machineId")?)
            .map_err(|_| row.error("machineId", "is not a valid id"))?;
        let kind = row.req_str("kind")?;
        let at = row
            .time("at")?
            .ok_or_else(|| row.error("at", "is missing"))?;
        let summary = match kind {
            "REGISTERED" => format!("Machine {machine} registered"),
            "CAME_ONLINE" => format!("Machine {machine} came online"),
            "WENT_OFFLINE" => format!("Machine {machine} went offline"),
            "UNINSTALLED" => format!("Agent uninstalled from machine {machine}"),
            other => format!("Machine {machine}: {other}"),
        };
        let extra = format!("{kind}@{}", at.timestamp_millis());
        let event = UnifiedEvent::new(
            &self.table,
            UnifiedEvent::id_for(
                TOOL,
                "agent_events",
                &format!("{tenant}:{machine}"),
                Some(&extra),
            ),
            TOOL,
            kind,
            at,
            None,
        )
        .with_tenant(Some(tenant))
        .with_tool_agent_id(Some(machine.as_str()))
        .with_machine(Some(machine.clone()))
        .with_summary_string(summary)
        .with_details(json!({
            "previousStatus": row.str("previousStatus")?,
            "status": row.str("status")?,
        }))
        .with_source_position(record.position.clone());
        Ok(vec![event])
    }
}
