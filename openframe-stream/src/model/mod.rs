//! The unified event model: every tool's activity normalized into one [`UnifiedEvent`] shape.
//!
//! - [`ToolSource`], [`EventCategory`], [`Severity`], [`Outcome`]: the closed vocabularies.
//! - [`UnifiedEvent`]: one normalized event, with a deterministic id ([`UnifiedEvent::id_for`])
//!   so replays and duplicate deliveries collapse on upsert.
//! - [`MappingTable`]: the data-driven `{tool}:{source_type}` → (category, event type, severity)
//!   table; unmapped source types become `UNKNOWN` events instead of being dropped.
//!
//! ```
//! use openframe_stream::model::{MappingTable, Outcome, Severity, ToolSource};
//! let table = MappingTable::builtin();
//! let m = table.lookup(ToolSource::OpenframeAgent, "script_result");
//! assert_eq!(m.event_type(), "SCRIPT_EXECUTED");
//! assert_eq!(m.severity(Some(Outcome::Failure)), Severity::Error);
//! ```

mod mapping;

use std::fmt;

use openframe_core::{MachineId, OrganizationId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use mapping::{BUILTIN_MAPPINGS, Mapping, MappingEntry, MappingTable};

/// Longest [`UnifiedEvent::summary`], in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// Largest serialized [`UnifiedEvent::details`], in bytes.
pub const MAX_DETAILS_BYTES: usize = 16 * 1024;
/// Longest string kept inside oversized details before the whole value is replaced.
const MAX_DETAIL_STRING_CHARS: usize = 2048;

/// The namespace of every [`UnifiedEvent::id`] (UUIDv5). Never change it: ids are upsert keys.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f70_656e_6672_5a6d_8e5a_7374_7265_616d);

/// The tool an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ToolSource {
    /// MeshCentral (remote access; its Mongo `events` collection via Debezium).
    Meshcentral,
    /// FleetDM (osquery MDM; MySQL activities, query results, policy membership).
    FleetMdm,
    /// TacticalRMM (Postgres alerts, agent history and audit log via Debezium).
    TacticalRmm,
    /// Our own agents' command and script results.
    OpenframeAgent,
    /// OpenFrame's own domain events (agent plane).
    Openframe,
}

impl ToolSource {
    /// Every tool, in declaration order.
    pub const ALL: [ToolSource; 5] = [
        Self::Meshcentral,
        Self::FleetMdm,
        Self::TacticalRmm,
        Self::OpenframeAgent,
        Self::Openframe,
    ];

    /// The wire name (`MESHCENTRAL`, `FLEET_MDM`, ...), also the `{tool}` of mapping keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meshcentral => "MESHCENTRAL",
            Self::FleetMdm => "FLEET_MDM",
            Self::TacticalRmm => "TACTICAL_RMM",
            Self::OpenframeAgent => "OPENFRAME_AGENT",
            Self::Openframe => "OPENFRAME",
        }
    }
}

impl fmt::Display for ToolSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The coarse area an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum EventCategory {
    /// Logins, logouts, failed logins, tokens, passwords.
    Auth,
    /// Device lifecycle and state: registered, online, offline, updated, deleted, power.
    Device,
    /// Users, roles and user groups.
    Users,
    /// Script runs and script library changes.
    Scripts,
    /// Ad-hoc command runs.
    Commands,
    /// Policies and compliance.
    Policies,
    /// Saved and live queries and their results.
    Queries,
    /// Software inventory, installs and uninstalls.
    Software,
    /// Host security: disk encryption, lock, wipe.
    Security,
    /// Tool servers themselves: start, stop, statistics.
    System,
    /// Remote desktop, terminal and file-transfer sessions.
    RemoteAccess,
    /// Files moved to or from devices outside a session.
    Files,
    /// Alerts, checks and tasks.
    Monitoring,
    /// Configuration of the tool: teams, packs, profiles, agent options, generic object changes.
    Configuration,
    /// MDM enrollment and profiles.
    Mdm,
    /// A source type with no mapping; kept, never dropped.
    Unknown,
}

/// How much attention an event needs. Ordered: `Debug < Info < ... < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// Noise useful only when debugging.
    Debug,
    /// Normal activity.
    Info,
    /// Worth a look.
    Warning,
    /// Something failed.
    Error,
    /// Destructive or security-relevant; act now.
    Critical,
}

/// Whether the action an event reports succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// It worked.
    Success,
    /// It failed (non-zero exit, timeout, error, failing policy, ...).
    Failure,
}

/// One normalized event.
///
/// Build it with [`UnifiedEvent::new`] (which applies the [`MappingTable`]) and the `with_*`
/// setters, which enforce the size bounds of `summary` and `details`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnifiedEvent {
    /// Deterministic UUIDv5 (see [`UnifiedEvent::id_for`]): the same source record always gives
    /// the same id.
    #[serde(with = "uuid_string")]
    pub id: Uuid,
    /// The tenant; usually `None` here and resolved later by enrichment.
    pub tenant: Option<TenantId>,
    /// The tool.
    pub tool: ToolSource,
    /// The tool's own type name (e.g. `user.login`, `ran_script`).
    pub source_type: String,
    /// The category from the mapping table.
    pub category: EventCategory,
    /// The unified type from the mapping table (e.g. `SCRIPT_EXECUTED`), or `UNKNOWN`.
    pub event_type: String,
    /// The severity, from the mapping table and the outcome.
    pub severity: Severity,
    /// Success or failure, where the source says.
    pub outcome: Option<Outcome>,
    /// When it happened (tool time, else the change-capture time).
    pub occurred_at: Timestamp,
    /// Our machine, when the source knows it (agent events); else set by enrichment.
    pub machine_id: Option<MachineId>,
    /// The machine's organization, set by enrichment.
    #[serde(default)]
    pub organization_id: Option<OrganizationId>,
    /// Set by enrichment when the event names a tool device or machine that could not be
    /// resolved to a known machine: the event is kept and flagged, never dropped.
    #[serde(default)]
    pub unknown_machine: bool,
    /// The tool's own device id (MeshCentral `nodeid`, Fleet host id, ...), for enrichment.
    pub tool_agent_id: Option<String>,
    /// The acting user as the tool names it.
    pub user: Option<String>,
    /// One human line, at most [`MAX_SUMMARY_CHARS`] characters.
    pub summary: String,
    /// Structured details, at most [`MAX_DETAILS_BYTES`] serialized.
    pub details: Value,
    /// Where in the source this came from (binlog position, LSN, offset), for tracing.
    pub source_position: Option<String>,
}

impl UnifiedEvent {
    /// The deterministic event id: UUIDv5 in [`EVENT_ID_NAMESPACE`] over the tool, the source
    /// table, the primary key and an optional extra discriminator (the script id of script
    /// results, the state of an alert, ...). Parts are length-prefixed, so no two different
    /// inputs share a name.
    ///
    /// ```
    /// use openframe_stream::model::{ToolSource, UnifiedEvent};
    /// let a = UnifiedEvent::id_for(ToolSource::OpenframeAgent, "script_result", "e1:m1", Some("s1"));
    /// let b = UnifiedEvent::id_for(ToolSource::OpenframeAgent, "script_result", "e1:m1", Some("s2"));
    /// assert_ne!(a, b);
    /// assert_eq!(a, UnifiedEvent::id_for(ToolSource::OpenframeAgent, "script_result", "e1:m1", Some("s1")));
    /// ```
    pub fn id_for(
        tool: ToolSource,
        source_table: &str,
        primary_key: &str,
        extra: Option<&str>,
    ) -> Uuid {
        use sha1::{Digest, Sha1};
        // UUIDv5 is SHA-1 over the namespace and the name, streamed here without building the
        // name (`Uuid::new_v5` gives the same id; see the tests).
        let mut hasher = Sha1::new();
        hasher.update(EVENT_ID_NAMESPACE.as_bytes());
        let mut digits = [0u8; 20];
        for part in [
            Some(tool.as_str()),
            Some(source_table),
            Some(primary_key),
            extra,
        ]
        .into_iter()
        .flatten()
        {
            hasher.update(decimal(&mut digits, part.len()));
            hasher.update(b":");
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_sha1_bytes(bytes).into_uuid()
    }

    /// A new event of `source_type`, classified through `table`; severity follows `outcome`.
    /// The summary defaults to the source type; details default to `null`.
    pub fn new(
        table: &MappingTable,
        id: Uuid,
        tool: ToolSource,
        source_type: &str,
        occurred_at: Timestamp,
        outcome: Option<Outcome>,
    ) -> Self {
        let mapping = table.lookup(tool, source_type);
        Self {
            id,
            tenant: None,
            tool,
            source_type: truncate_chars(source_type, 128),
            category: mapping.category(),
            event_type: mapping.event_type().to_owned(),
            severity: mapping.severity(outcome),
            outcome,
            occurred_at,
            machine_id: None,
            organization_id: None,
            unknown_machine: false,
            tool_agent_id: None,
            user: None,
            summary: truncate_chars(source_type, MAX_SUMMARY_CHARS),
            details: Value::Null,
            source_position: None,
        }
    }

    /// Whether the mapping table knew this event's source type.
    pub fn is_unknown(&self) -> bool {
        self.category == EventCategory::Unknown
    }

    /// Sets the summary, cut to [`MAX_SUMMARY_CHARS`] characters.
    pub fn with_summary(mut self, summary: impl AsRef<str>) -> Self {
        self.summary = truncate_chars(summary.as_ref(), MAX_SUMMARY_CHARS);
        self
    }

    /// [`UnifiedEvent::with_summary`] keeping the allocation of `summary` when it is short.
    pub(crate) fn with_summary_string(mut self, summary: String) -> Self {
        self.summary = truncate_owned(summary, MAX_SUMMARY_CHARS);
        self
    }

    /// Sets the details, bounded to [`MAX_DETAILS_BYTES`] (see [`bound_details`]).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = bound_details(details);
        self
    }

    /// Sets the tool's device id (blank values are ignored).
    pub fn with_tool_agent_id(mut self, id: Option<impl Into<String>>) -> Self {
        self.tool_agent_id = id.map(Into::into).filter(|s: &String| !s.trim().is_empty());
        self
    }

    /// Sets the acting user (blank values are ignored).
    pub fn with_user(mut self, user: Option<impl Into<String>>) -> Self {
        self.user = user
            .map(Into::into)
            .filter(|s: &String| !s.trim().is_empty())
            .map(|s| truncate_owned(s, 256));
        self
    }

    /// Sets our machine id.
    pub fn with_machine(mut self, machine: Option<MachineId>) -> Self {
        self.machine_id = machine;
        self
    }

    /// Sets the organization.
    pub fn with_organization(mut self, organization: Option<OrganizationId>) -> Self {
        self.organization_id = organization;
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.tenant = tenant;
        self
    }

    /// Sets the source position.
    pub fn with_source_position(mut self, position: Option<String>) -> Self {
        self.source_position = position;
        self
    }

    /// Overrides the severity (e.g. an alert carrying its own).
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

/// Serde for [`Uuid`] as its hyphenated string (the crate's `uuid` dependency has no `serde`
/// feature).
mod uuid_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use uuid::Uuid;

    pub(super) fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&id.hyphenated())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Uuid::parse_str(&raw).map_err(D::Error::custom)
    }
}

/// `n` in decimal, written into `digits`.
fn decimal(digits: &mut [u8; 20], mut n: usize) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

/// `s` if it has at most `max` characters, else `s` cut (see [`truncate_chars`]); reuses the
/// allocation when nothing is cut.
fn truncate_owned(s: String, max: usize) -> String {
    if s.len() <= max {
        s
    } else {
        truncate_chars(&s, max)
    }
}

/// Cuts `s` to at most `max` characters, appending `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    // A string of at most `max` bytes has at most `max` characters.
    if s.len() <= max {
        return s.to_owned();
    }
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
            out.push('…');
            out
        }
    }
}

/// Bounds a details value to [`MAX_DETAILS_BYTES`] serialized: first long strings are cut to
/// 2048 characters; if still too large, the value is replaced by
/// `{"truncated": true, "originalBytes": n}`.
pub fn bound_details(details: Value) -> Value {
    // Most details are small: a cheap upper bound avoids serializing them at all.
    if serialized_len_upper_bound(&details) <= MAX_DETAILS_BYTES {
        return details;
    }
    let size = serialized_len(&details);
    if size <= MAX_DETAILS_BYTES {
        return details;
    }
    let shortened = shorten_strings(details);
    if serialized_len(&shortened) <= MAX_DETAILS_BYTES {
        return shortened;
    }
    serde_json::json!({ "truncated": true, "originalBytes": size })
}

/// The exact serialized length, counted without building the bytes.
fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// An upper bound of the serialized length: every string byte escaped as `\uXXXX`, every
/// number at its longest.
fn serialized_len_upper_bound(value: &Value) -> usize {
    fn string(s: &str) -> usize {
        s.len().saturating_mul(6).saturating_add(2)
    }
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => string(s),
        Value::Array(items) => items.iter().fold(2 + items.len(), |acc, v| {
            acc.saturating_add(serialized_len_upper_bound(v))
        }),
        Value::Object(map) => map.iter().fold(2 + 2 * map.len(), |acc, (k, v)| {
            acc.saturating_add(string(k))
                .saturating_add(serialized_len_upper_bound(v))
        }),
    }
}

fn shorten_strings(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(truncate_chars(&s, MAX_DETAIL_STRING_CHARS)),
        Value::Array(items) => Value::Array(items.into_iter().map(shorten_strings).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, shorten_strings(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original construction: the length-prefixed name hashed by `Uuid::new_v5`.
    fn reference_id(parts: &[&str]) -> Uuid {
        let mut name = String::new();
        for part in parts {
            name.push_str(&part.len().to_string());
            name.push(':');
            name.push_str(part);
        }
        Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
    }

    #[test]
    fn ids_match_uuid_v5_of_the_length_prefixed_name() {
        let long = "k".repeat(1234);
        let cases: [(&str, &str, Option<&str>); 5] = [
            ("activities", "7", None),
            ("events", "65f1c2a9e4b0a1d2c3f40001", Some("x")),
            ("", "", Some("")),
            ("alerts_alert", long.as_str(), Some("raised")),
            ("tbl", "é:ü", None),
        ];
        for tool in ToolSource::ALL {
            for (table, pk, extra) in cases {
                let mut parts = vec![tool.as_str(), table, pk];
                parts.extend(extra);
                let id = UnifiedEvent::id_for(tool, table, pk, extra);
                assert_eq!(id, reference_id(&parts), "{tool} {table} {extra:?}");
                assert_eq!(id.get_version_num(), 5);
            }
        }
        assert_eq!(decimal(&mut [0; 20], 0), b"0");
        assert_eq!(
            decimal(&mut [0; 20], usize::MAX),
            usize::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn truncation_fast_paths_agree_with_counting() {
        for (s, max) in [
            ("", 0),
            ("ab", 2),
            ("abc", 2),
            ("éé", 2),
            ("ééé", 2),
            ("éé", 3),
            ("x", 0),
        ] {
            let want = if s.chars().count() <= max {
                s.to_owned()
            } else {
                let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
                out.push('…');
                out
            };
            assert_eq!(truncate_chars(s, max), want, "{s:?} {max}");
            assert_eq!(truncate_owned(s.to_owned(), max), want, "{s:?} {max}");
        }
    }

    #[test]
    fn ids_are_stable_and_unambiguous() {
        let t = ToolSource::FleetMdm;
        assert_eq!(
            UnifiedEvent::id_for(t, "activities", "1", None),
            UnifiedEvent::id_for(t, "activities", "1", None)
        );
        // Length prefixes keep "a"+"bc" apart from "ab"+"c".
        assert_ne!(
            UnifiedEvent::id_for(t, "a", "bc", None),
            UnifiedEvent::id_for(t, "ab", "c", None)
        );
        assert_ne!(
            UnifiedEvent::id_for(t, "x", "1", None),
            UnifiedEvent::id_for(t, "x", "1", Some(""))
        );
        assert_eq!(UnifiedEvent::id_for(t, "x", "1", None).get_version_num(), 5);
    }

    #[test]
    fn summary_and_details_are_bounded() {
        let s = truncate_chars(&"é".repeat(2000), MAX_SUMMARY_CHARS);
        assert_eq!(s.chars().count(), MAX_SUMMARY_CHARS);
        let big = serde_json::json!({ "out": "x".repeat(100_000), "code": 1 });
        let bounded = bound_details(big);
        assert_eq!(bounded["code"], 1);
        assert!(serialized_len(&bounded) <= MAX_DETAILS_BYTES);
        let small = serde_json::json!({ "a": [1, 2.5e300, null, true], "é\n": "\u{1}\"" });
        assert!(serialized_len_upper_bound(&small) >= serialized_len(&small));
        assert_eq!(bound_details(small.clone()), small);
        let many: Vec<String> = (0..100).map(|_| "y".repeat(3000)).collect();
        let bounded = bound_details(serde_json::json!(many));
        assert_eq!(bounded["truncated"], true);
    }
}
