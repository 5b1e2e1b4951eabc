//! FleetDM: activities (MySQL `activities` via Debezium, optionally joined with the host), and
//! query results and policy membership, as Debezium envelopes or native rows.
//!
//! The payload kind comes from the `message-type` header, else the topic, else the captured
//! table. The host id (`host_id`, `hostId`, `agentId`, or `details.host_id`) becomes
//! `tool_agent_id`; `team_id` (the tenant discriminator) is kept in `details`.

use serde_json::{Value, json};

use super::debezium::{ChangeEvent, Op};
use super::fields::{Row, first_time, parse_json};
use super::{AdapterError, RawRecord, SourceAdapter};
use crate::model::{MappingTable, Outcome, ToolSource, UnifiedEvent};

/// Activities (joined with host activities upstream, or raw).
pub const TOPIC_EVENTS: &str = "fleet-mdm-events";
/// Raw activities.
pub const TOPIC_ACTIVITIES: &str = "fleet-mdm-activities";
/// Scheduled query results.
pub const TOPIC_QUERY_RESULTS: &str = "fleet-mdm-query-result-events";
/// Policy membership.
pub const TOPIC_POLICY_MEMBERSHIP: &str = "fleet-mdm-policy-membership-events";

const TOOL: ToolSource = ToolSource::FleetMdm;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Activity,
    QueryResult,
    PolicyMembership,
}

impl Kind {
    /// The kind named by a `message-type` header (ASCII case ignored).
    fn from_message_type(t: &str) -> Option<Self> {
        const KINDS: [(&str, Kind); 4] = [
            ("FLEET_MDM_EVENT", Kind::Activity),
            ("FLEET_MDM_POLICY_ACTIVITY_EVENT", Kind::Activity),
            ("FLEET_MDM_QUERY_RESULT_EVENT", Kind::QueryResult),
            ("FLEET_MDM_POLICY_MEMBERSHIP_EVENT", Kind::PolicyMembership),
        ];
        KINDS
            .iter()
            .find(|(name, _)| t.eq_ignore_ascii_case(name))
            .map(|(_, kind)| *kind)
    }

    fn from_topic(record: &RawRecord) -> Option<Self> {
        if record.topic_is(TOPIC_EVENTS) || record.topic_is(TOPIC_ACTIVITIES) {
            Some(Self::Activity)
        } else if record.topic_is(TOPIC_QUERY_RESULTS) {
            Some(Self::QueryResult)
        } else if record.topic_is(TOPIC_POLICY_MEMBERSHIP) {
            Some(Self::PolicyMembership)
        } else {
            None
        }
    }

    fn from_table(table: &str) -> Option<Self> {
        match table {
            "activities" => Some(Self::Activity),
            "query_results" => Some(Self::QueryResult),
            "policy_membership" => Some(Self::PolicyMembership),
            _ => None,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Self::Activity => "activities",
            Self::QueryResult => "query_results",
            Self::PolicyMembership => "policy_membership",
        }
    }
}

table_adapter!(
    /// Adapts FleetDM activities, query results and policy membership.
    FleetDmAdapter
);

impl SourceAdapter for FleetDmAdapter {
    fn tool(&self) -> ToolSource {
        TOOL
    }

    fn accepts(&self, record: &RawRecord) -> bool {
        match record.message_type_str() {
            Some(t) => Kind::from_message_type(t).is_some(),
            None => Kind::from_topic(record).is_some(),
        }
    }

    fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError> {
        if record.payload.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let value = parse_json(TOOL, &record.payload)?;
        let (change, row_value) = if ChangeEvent::is_envelope(&value) {
            match ChangeEvent::from_value(TOOL, value)? {
                Some(mut c) if c.op != Op::Delete => {
                    let row = c.take_row();
                    (Some(c), row)
                }
                _ => return Ok(Vec::new()),
            }
        } else {
            (None, value)
        };
        let kind = record
            .message_type_str()
            .and_then(Kind::from_message_type)
            .or_else(|| Kind::from_topic(record))
            .or_else(|| {
                change
                    .as_ref()
                    .and_then(|c| c.table())
                    .and_then(Kind::from_table)
            })
            .ok_or_else(|| AdapterError::malformed(TOOL, "cannot tell the payload kind"))?;
        let ctx = Ctx {
            table: &self.table,
            record,
            change: change.as_ref(),
        };
        let what = if change.is_some() { "after" } else { "payload" };
        let row = Row::new(TOOL, what, &row_value)?;
        let event = match kind {
            Kind::Activity => ctx.activity(&row)?,
            Kind::QueryResult => ctx.query_result(&row)?,
            Kind::PolicyMembership => ctx.policy_membership(&row)?,
        };
        Ok(vec![event])
    }
}

struct Ctx<'a> {
    table: &'a MappingTable,
    record: &'a RawRecord,
    change: Option<&'a ChangeEvent>,
}

impl Ctx<'_> {
    fn source_table(&self, kind: Kind) -> String {
        self.change
            .and_then(ChangeEvent::table)
            .unwrap_or(kind.table())
            .to_owned()
    }

    fn time(
        &self,
        row_time: Option<openframe_core::Timestamp>,
    ) -> Result<openframe_core::Timestamp, AdapterError> {
        first_time(
            TOOL,
            [
                row_time,
                self.change.and_then(ChangeEvent::captured_at),
                self.record.timestamp,
            ],
        )
    }

    fn position(&self) -> Option<String> {
        self.change
            .and_then(|c| c.source.position.clone())
            .or_else(|| self.record.position.clone())
    }

    fn activity(&self, row: &Row<'_>) -> Result<UnifiedEvent, AdapterError> {
        let pk = row.req_id("id")?;
        let activity_type = row.req_str("activity_type")?;
        let details = row.json("details").unwrap_or(Value::Null);
        let host = match first_id(row, &["host_id", "hostId", "agentId"])? {
            Some(h) => Some(h),
            None => detail_host(&details),
        };
        let user = match row.str("user_name")? {
            Some(u) => Some(u.to_owned()),
            None => row.str("user_email")?.map(str::to_owned),
        };
        let outcome = details.get("status").and_then(Value::as_str).and_then(|s| {
            if s.contains("fail") {
                Some(Outcome::Failure)
            } else if s == "installed" || s == "uninstalled" {
                Some(Outcome::Success)
            } else {
                None
            }
        });
        let occurred_at = self.time(row.time("created_at")?)?;
        let summary = activity_summary(activity_type, &details, user.as_deref());
        let team_id = row.id("team_id")?;
        Ok(UnifiedEvent::new(
            self.table,
            UnifiedEvent::id_for(TOOL, &self.source_table(Kind::Activity), &pk, None),
            TOOL,
            activity_type,
            occurred_at,
            outcome,
        )
        .with_tool_agent_id(host)
        .with_user(user)
        .with_summary_string(summary)
        .with_details(json!({ "activityId": pk, "teamId": team_id, "details": details }))
        .with_source_position(self.position()))
    }

    fn query_result(&self, row: &Row<'_>) -> Result<UnifiedEvent, AdapterError> {
        let query_id = row.req_id("query_id")?;
        let host_id = row.req_id("host_id")?;
        let error = row.str("error")?.filter(|e| !e.trim().is_empty());
        let occurred_at = self.time(
            row.time("last_fetched")?
                .or(row.time("updated_at")?)
                .or(row.time("created_at")?),
        )?;
        let (pk, extra) = match row.id("id")? {
            Some(id) => (id, None),
            None => (
                format!("{query_id}:{host_id}"),
                Some(occurred_at.timestamp_millis().to_string()),
            ),
        };
        let outcome = if error.is_some() {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let summary = match error {
            Some(e) => format!("Query {query_id} failed on host {host_id}: {e}"),
            None => format!("Query {query_id} returned results from host {host_id}"),
        };
        Ok(UnifiedEvent::new(
            self.table,
            UnifiedEvent::id_for(
                TOOL,
                &self.source_table(Kind::QueryResult),
                &pk,
                extra.as_deref(),
            ),
            TOOL,
            "execute_scheduled_query",
            occurred_at,
            Some(outcome),
        )
        .with_tool_agent_id(Some(host_id))
        .with_summary_string(summary)
        .with_details(json!({
            "queryId": query_id,
            "error": error,
            "data": row.json("data"),
            "osqueryVersion": row.str("osquery_version")?,
        }))
        .with_source_position(self.position()))
    }

    fn policy_membership(&self, row: &Row<'_>) -> Result<UnifiedEvent, AdapterError> {
        let policy_id = row.req_id("policy_id")?;
        let host_id = row.req_id("host_id")?;
        let passes = row.bool("passes")?;
        let occurred_at = self.time(row.time("updated_at")?.or(row.time("created_at")?))?;
        let (source_type, outcome, verb) = match passes {
            Some(true) => ("policy_membership_pass", Some(Outcome::Success), "passes"),
            Some(false) => ("policy_membership_fail", Some(Outcome::Failure), "fails"),
            None => ("policy_membership_pending", None, "has not yet reported"),
        };
        let pk = format!("{policy_id}:{host_id}");
        let at = occurred_at.timestamp_millis().to_string();
        Ok(UnifiedEvent::new(
            self.table,
            UnifiedEvent::id_for(
                TOOL,
                &self.source_table(Kind::PolicyMembership),
                &pk,
                Some(&at),
            ),
            TOOL,
            source_type,
            occurred_at,
            outcome,
        )
        .with_tool_agent_id(Some(host_id.clone()))
        .with_summary_string(format!("Host {host_id} {verb} policy {policy_id}"))
        .with_details(json!({
            "policyId": policy_id,
            "passes": passes,
            "automationIteration": row.i64("automation_iteration")?,
        }))
        .with_source_position(self.position()))
    }
}

fn first_id(row: &Row<'_>, fields: &[&str]) -> Result<Option<String>, AdapterError> {
    for f in fields {
        if let Some(id) = row.id(f)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// `details.host_id`, or the only element of `details.host_ids`.
fn detail_host(details: &Value) -> Option<String> {
    let id = |v: &Value| match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    if let Some(h) = details.get("host_id").and_then(id) {
        return Some(h);
    }
    match details.get("host_ids").and_then(Value::as_array) {
        Some(ids) if ids.len() == 1 => id(&ids[0]),
        _ => None,
    }
}

/// `ran_script 'disk-cleanup.sh' on web-01 by Jane`.
fn activity_summary(activity_type: &str, details: &Value, user: Option<&str>) -> String {
    let mut s = activity_type.replace('_', " ");
    let name = [
        "policy_name",
        "script_name",
        "query_name",
        "software_title",
        "pack_name",
        "team_name",
        "profile_name",
        "user_name",
    ]
    .iter()
    .find_map(|k| details.get(*k).and_then(Value::as_str));
    if let Some(name) = name {
        s.push_str(&format!(" '{name}'"));
    }
    if let Some(host) = details.get("host_display_name").and_then(Value::as_str) {
        s.push_str(&format!(" on {host}"));
    }
    if let Some(user) = user {
        s.push_str(&format!(" by {user}"));
    }
    s
}
