//! A custom event source adapter: Tactical RMM's **alert webhooks** (the JSON its "Alert
//! action → webhook" feature POSTs), next to the built-in adapter that reads its database
//! through Debezium.
//!
//! Adding a source is one type implementing [`SourceAdapter`]:
//! - [`SourceAdapter::accepts`] decides from the topic and headers only (never the payload);
//! - [`SourceAdapter::adapt`] parses, rejects malformed input with [`AdapterError::Malformed`]
//!   (the processor dead-letters it), and builds events through the [`MappingTable`], so the
//!   event type, category and severity come from data, not code;
//! - ids come from [`UnifiedEvent::id_for`] over the source's own key, so a webhook delivered
//!   twice is one event.
//!
//! The mapping rows this source needs are appended to the built-in table ([`mapping_table`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use openframe_stream::adapters::{AdapterError, RawRecord, SourceAdapter};
use openframe_stream::model::{
    BUILTIN_MAPPINGS, EventCategory, MappingEntry, MappingTable, Outcome, Severity, ToolSource,
    UnifiedEvent,
};
use serde::Deserialize;

/// The `message-type` header this adapter accepts.
pub const MESSAGE_TYPE: &str = "TRMM_WEBHOOK";
/// Its topic, when the record carries no `message-type`.
pub const TOPIC: &str = "trmm-webhooks";

const TOOL: ToolSource = ToolSource::TacticalRmm;

/// The mapping rows for webhook alerts.
pub const WEBHOOK_MAPPINGS: [MappingEntry; 2] = [
    MappingEntry {
        tool: TOOL,
        source_type: "webhook.alert_failure",
        category: EventCategory::Monitoring,
        event_type: "ALERT_RAISED",
        severity: Severity::Warning,
        failure_severity: Some(Severity::Error),
    },
    MappingEntry {
        tool: TOOL,
        source_type: "webhook.alert_resolved",
        category: EventCategory::Monitoring,
        event_type: "ALERT_RESOLVED",
        severity: Severity::Info,
        failure_severity: None,
    },
];

/// The built-in mapping table plus [`WEBHOOK_MAPPINGS`].
pub fn mapping_table() -> Arc<MappingTable> {
    Arc::new(MappingTable::from_entries(
        BUILTIN_MAPPINGS.iter().copied().chain(WEBHOOK_MAPPINGS),
    ))
}

/// The webhook body (the fields this adapter needs; others are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
struct Webhook {
    alert_id: u64,
    /// `failure` or `resolved`.
    status: String,
    /// `error`, `warning` or `info`.
    severity: String,
    agent_id: String,
    hostname: String,
    message: String,
    alert_time: DateTime<Utc>,
}

/// Adapts Tactical RMM alert webhooks.
#[derive(Debug, Clone)]
pub struct TrmmWebhookAdapter {
    table: Arc<MappingTable>,
}

impl TrmmWebhookAdapter {
    /// An adapter classifying through `table` (use [`mapping_table`]).
    pub fn new(table: Arc<MappingTable>) -> Self {
        Self { table }
    }
}

impl SourceAdapter for TrmmWebhookAdapter {
    fn tool(&self) -> ToolSource {
        TOOL
    }

    fn accepts(&self, record: &RawRecord) -> bool {
        match record.message_type() {
            Some(t) => t == MESSAGE_TYPE,
            None => record.topic_is(TOPIC),
        }
    }

    fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError> {
        // The reason names the problem, never the payload's content.
        let hook: Webhook = serde_json::from_slice(&record.payload).map_err(|e| {
            AdapterError::malformed(TOOL, format!("webhook body: {}", e.classify_str()))
        })?;
        let (source_type, outcome) = match hook.status.as_str() {
            "failure" => ("webhook.alert_failure", Some(Outcome::Failure)),
            "resolved" => ("webhook.alert_resolved", Some(Outcome::Success)),
            _ => return Err(AdapterError::malformed(TOOL, "status: unknown value")),
        };
        let id = UnifiedEvent::id_for(
            TOOL,
            "alert_webhooks",
            &hook.alert_id.to_string(),
            Some(&hook.status),
        );
        let mut event =
            UnifiedEvent::new(&self.table, id, TOOL, source_type, hook.alert_time, outcome)
                .with_tool_agent_id(Some(hook.agent_id))
                .with_summary(format!("{}: {}", hook.hostname, hook.message))
                .with_details(
                    serde_json::json!({ "alertId": hook.alert_id, "hostname": hook.hostname }),
                )
                .with_source_position(record.position.clone());
        // A failure the tool itself rates `info` stays informational.
        if outcome == Some(Outcome::Failure) && hook.severity == "info" {
            event = event.with_severity(Severity::Info);
        }
        Ok(vec![event])
    }
}

/// Names a JSON error's kind without echoing input.
trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "missing or mistyped fields",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}
