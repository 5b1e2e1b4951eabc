//! SQL text for the SQLite event store: the schema migrations and the filter translation.
//!
//! Every value travels as a bound parameter; the only identifiers spliced into SQL are the
//! fixed column names below.

use openframe_core::TenantId;
use rusqlite::types::Value;

use crate::store::paging::EventKey;
use crate::store::{EventFacet, EventFilter, names};

/// The events table.
pub(super) const TABLE: &str = "of_events";

/// Versioned migrations, applied in order and recorded in `of_event_store_migrations`.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS of_events (
        seq INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        t INTEGER NOT NULL,
        machine_id TEXT,
        organization_id TEXT,
        event_type TEXT NOT NULL,
        severity TEXT NOT NULL,
        tool TEXT NOT NULL,
        category TEXT NOT NULL,
        search TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS ux_of_events_id ON of_events (tenant, id);
    CREATE INDEX IF NOT EXISTS ix_of_events_time ON of_events (tenant, t, id);
    CREATE INDEX IF NOT EXISTS ix_of_events_machine ON of_events (tenant, machine_id, t, id);
    CREATE INDEX IF NOT EXISTS ix_of_events_purge ON of_events (t);",
)];

/// The column holding a facet's value.
pub(super) fn facet_column(facet: EventFacet) -> &'static str {
    match facet {
        EventFacet::EventType => "event_type",
        EventFacet::Severity => "severity",
        EventFacet::Tool => "tool",
        EventFacet::Category => "category",
        EventFacet::MachineId => "machine_id",
        EventFacet::OrganizationId => "organization_id",
    }
}

/// A `WHERE` clause and its parameters, built from a tenant and a filter.
#[derive(Debug)]
pub(super) struct Where {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    /// The tenant's rows matching `filter` (which must be validated).
    pub(super) fn new(tenant: &TenantId, filter: &EventFilter) -> Self {
        let mut w = Self {
            clauses: Vec::new(),
            params: Vec::new(),
        };
        w.push("tenant = ?", [text(tenant.as_str())]);
        if let Some(from) = filter.start_micros() {
            w.push("t >= ?", [Value::Integer(from)]);
        }
        if let Some(to) = filter.end_micros() {
            w.push("t < ?", [Value::Integer(to)]);
        }
        w.any_of(
            "machine_id",
            filter.machine_ids.iter().map(|m| m.as_str().to_owned()),
        );
        w.any_of(
            "organization_id",
            filter
                .organization_ids
                .iter()
                .map(|o| o.as_str().to_owned()),
        );
        w.any_of("event_type", filter.event_types.iter().cloned());
        w.any_of(
            "severity",
            filter
                .severities
                .iter()
                .map(|s| names::severity(*s).to_owned()),
        );
        w.any_of("tool", filter.tools.iter().map(|t| t.as_str().to_owned()));
        w.any_of(
            "category",
            filter.categories.iter().map(|c| names::category(*c)),
        );
        if let Some(needle) = filter.needle() {
            // `instr` is a literal substring test: no wildcard to escape.
            w.push("instr(search, ?) > 0", [Value::Text(needle)]);
        }
        w
    }

    fn push(&mut self, clause: &str, params: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.to_owned());
        self.params.extend(params);
    }

    fn any_of(&mut self, column: &str, values: impl ExactSizeIterator<Item = String>) {
        match values.len() {
            0 => {}
            1 => self.push(&format!("{column} = ?"), values.map(Value::Text)),
            n => {
                let marks = vec!["?"; n].join(", ");
                self.push(&format!("{column} IN ({marks})"), values.map(Value::Text));
            }
        }
    }

    /// Adds a keyset condition `(t, id) <op> key` (`op` is one of `<`, `<=`, `>`, `>=`).
    pub(super) fn keyset(&mut self, op: &'static str, key: EventKey) {
        self.push(
            &format!("(t, id) {op} (?, ?)"),
            [
                Value::Integer(key.micros),
                Value::Text(key.id.hyphenated().to_string()),
            ],
        );
    }

    /// Adds `column IS NOT NULL`.
    pub(super) fn not_null(&mut self, column: &'static str) {
        self.clauses.push(format!("{column} IS NOT NULL"));
    }

    /// The ` WHERE ...` text.
    pub(super) fn sql(&self) -> String {
        format!(" WHERE {}", self.clauses.join(" AND "))
    }

    /// The parameters, in order, followed by `extra`.
    pub(super) fn params(mut self, extra: impl IntoIterator<Item = Value>) -> Vec<Value> {
        self.params.extend(extra);
        self.params
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}
