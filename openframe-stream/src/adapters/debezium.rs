//! Debezium change envelopes: `{before, after, op, ts_ms, source}`, bare or wrapped in the
//! schema form `{"schema": ..., "payload": {...}}`.
//!
//! `before`/`after` may be objects (relational connectors) or strings holding JSON (the MongoDB
//! connector); both are accepted. An empty payload or `null` is a Kafka tombstone and parses to
//! `None`.
//!
//! ```
//! use openframe_stream::adapters::debezium::{ChangeEvent, Op};
//! use openframe_stream::model::ToolSource;
//! let raw = br#"{"payload":{"op":"c","ts_ms":1740823200000,"before":null,
//!   "after":{"id":7},"source":{"db":"fleet","table":"activities","file":"binlog.000002","pos":4711}}}"#;
//! let change = ChangeEvent::parse(ToolSource::FleetMdm, raw).unwrap().unwrap();
//! assert_eq!(change.op, Op::Create);
//! assert_eq!(change.table(), Some("activities"));
//! assert_eq!(change.row()["id"], 7);
//! assert_eq!(change.source.position.as_deref(), Some("binlog:binlog.000002:4711"));
//! ```

use openframe_core::Timestamp;
use serde_json::Value;

use super::AdapterError;
use super::fields::{Row, as_i64, from_millis, into_object, kind, parse_json_as};
use super::slim::SlimEnvelope;
use crate::model::ToolSource;

/// The change operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `c`: a row was inserted.
    Create,
    /// `u`: a row was updated.
    Update,
    /// `d`: a row was deleted (`after` is null).
    Delete,
    /// `r`: a row read by a snapshot.
    Read,
}

impl Op {
    /// The wire code: `c`, `u`, `d` or `r`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Create => "c",
            Self::Update => "u",
            Self::Delete => "d",
            Self::Read => "r",
        }
    }

    /// Parses `c`, `u`, `d`, `r`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "c" => Some(Self::Create),
            "u" => Some(Self::Update),
            "d" => Some(Self::Delete),
            "r" => Some(Self::Read),
            _ => None,
        }
    }
}

/// The `source` block: where the change was captured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceInfo {
    /// Connector kind (`mysql`, `postgresql`, `mongodb`).
    pub connector: Option<String>,
    /// Database.
    pub db: Option<String>,
    /// Schema (Postgres).
    pub schema: Option<String>,
    /// Table (relational connectors).
    pub table: Option<String>,
    /// Collection (MongoDB).
    pub collection: Option<String>,
    /// When the change happened in the database, ms.
    pub ts_ms: Option<i64>,
    /// Whether this is a snapshot read.
    pub snapshot: bool,
    /// A stable position: `binlog:{file}:{pos}[:{row}]`, `lsn:{lsn}` or `oplog:{ts}:{ord}`.
    pub position: Option<String>,
}

/// One parsed change envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The operation.
    pub op: Op,
    /// The row before (updates, deletes).
    pub before: Option<Value>,
    /// The row after (creates, updates, reads).
    pub after: Option<Value>,
    /// When Debezium processed the change, ms.
    pub ts_ms: Option<i64>,
    /// Where it was captured.
    pub source: SourceInfo,
}

impl ChangeEvent {
    /// Parses raw bytes; `Ok(None)` for a tombstone.
    pub fn parse(tool: ToolSource, payload: &[u8]) -> Result<Option<Self>, AdapterError> {
        if payload.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        // Only the keys read below are materialized (same acceptance as `parse_json`).
        let envelope: SlimEnvelope = parse_json_as(tool, payload)?;
        Self::from_value(tool, envelope.0)
    }

    /// Whether `v` looks like an envelope (bare or schema-wrapped) rather than a native row.
    pub fn is_envelope(v: &Value) -> bool {
        let inner = unwrap_schema(v);
        inner.get("op").is_some() && (inner.get("after").is_some() || inner.get("before").is_some())
    }

    /// Parses a JSON value; `Ok(None)` for `null` (tombstone).
    pub fn from_value(tool: ToolSource, value: Value) -> Result<Option<Self>, AdapterError> {
        if value.is_null() {
            return Ok(None);
        }
        let mut value = value;
        if value.get("op").is_none() {
            match value.get_mut("payload").map(Value::take) {
                Some(Value::Null) => return Ok(None),
                Some(inner) => value = inner,
                None => {}
            }
        }
        let mut obj = into_object(tool, "envelope", value)?;
        let row = Row::of(tool, "envelope", &obj);
        let op_str = row.req_str("op")?;
        let op = Op::parse(op_str).ok_or_else(|| row.error("op", "must be one of c, u, d, r"))?;
        let ts_ms = row.i64("ts_ms")?;
        let source = match obj.remove("source") {
            None | Some(Value::Null) => SourceInfo::default(),
            Some(s) => parse_source(tool, s)?,
        };
        // The rows are moved out of the envelope, not cloned.
        let before = embedded(tool, "before", obj.remove("before"))?;
        let after = embedded(tool, "after", obj.remove("after"))?;
        match op {
            Op::Create | Op::Read | Op::Update if after.is_none() => {
                return Err(AdapterError::malformed(
                    tool,
                    format!("op `{}` without an `after` row", op.code()),
                ));
            }
            Op::Delete if before.is_none() => {
                return Err(AdapterError::malformed(
                    tool,
                    "op `d` without a `before` row",
                ));
            }
            _ => {}
        }
        Ok(Some(Self {
            op,
            before,
            after,
            ts_ms,
            source,
        }))
    }

    /// The row the change is about: `after`, or `before` for deletes.
    pub fn row(&self) -> &Value {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .unwrap_or(&Value::Null)
    }

    /// Moves the row the change is about out of the event (see [`ChangeEvent::row`]), leaving
    /// `after` and `before` empty; `null` when there is none.
    pub fn take_row(&mut self) -> Value {
        self.after
            .take()
            .or_else(|| self.before.take())
            .unwrap_or(Value::Null)
    }

    /// The table or collection.
    pub fn table(&self) -> Option<&str> {
        self.source
            .table
            .as_deref()
            .or(self.source.collection.as_deref())
    }

    /// When the change happened: the source's `ts_ms`, else the envelope's.
    pub fn captured_at(&self) -> Option<Timestamp> {
        self.source.ts_ms.or(self.ts_ms).and_then(from_millis)
    }
}

/// The change of a log-like table (rows are appended, never meaningfully deleted): `Ok(None)`
/// for tombstones and deletes (retention purges), which carry no event.
pub fn parse_log_change(
    tool: ToolSource,
    payload: &[u8],
) -> Result<Option<ChangeEvent>, AdapterError> {
    Ok(ChangeEvent::parse(tool, payload)?.filter(|c| c.op != Op::Delete))
}

/// The payload of a schema-wrapped envelope, or `v` itself.
fn unwrap_schema(v: &Value) -> &Value {
    match v.get("payload") {
        Some(inner) if v.get("op").is_none() && inner.is_object() => inner,
        _ => v,
    }
}

/// `before`/`after`: an object, or a string of JSON (MongoDB connector); `null` is absent.
fn embedded(tool: ToolSource, what: &str, v: Option<Value>) -> Result<Option<Value>, AdapterError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(Value::Object(o))),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(o)) => Ok(Some(Value::Object(o))),
            Ok(other) => Err(AdapterError::malformed(
                tool,
                format!("`{what}` must hold an object, got {}", kind(&other)),
            )),
            Err(e) => Err(AdapterError::malformed(
                tool,
                format!(
                    "`{what}` is a string but not JSON (line {} column {})",
                    e.line(),
                    e.column()
                ),
            )),
        },
        Some(other) => Err(AdapterError::malformed(
            tool,
            format!("`{what}` must be an object, got {}", kind(&other)),
        )),
    }
}

fn parse_source(tool: ToolSource, v: Value) -> Result<SourceInfo, AdapterError> {
    let mut obj = into_object(tool, "source", v)?;
    let row = Row::of(tool, "source", &obj);
    let position =
        if let (Some(file), Some(pos)) = (row.str("file")?, obj.get("pos").and_then(as_i64)) {
            match obj.get("row").and_then(as_i64) {
                Some(r) if r > 0 => Some(format!("binlog:{file}:{pos}:{r}")),
                _ => Some(format!("binlog:{file}:{pos}")),
            }
        } else if let Some(lsn) = obj.get("lsn").and_then(as_i64) {
            Some(format!("lsn:{lsn}"))
        } else {
            match (
                obj.get("ord").and_then(as_i64),
                obj.get("ts_ms").and_then(as_i64),
            ) {
                (Some(ord), Some(ts)) => Some(format!("oplog:{ts}:{ord}")),
                _ => None,
            }
        };
    let snapshot = match obj.get("snapshot") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "last" || s == "first",
        _ => false,
    };
    const TEXT: [&str; 5] = ["connector", "db", "schema", "table", "collection"];
    // Type-check every text field first (same errors, same order), then move the strings out.
    for field in TEXT {
        row.str(field)?;
    }
    let ts_ms = row.i64("ts_ms")?;
    let [connector, db, schema, table, collection] = TEXT.map(|f| match obj.remove(f) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    });
    Ok(SourceInfo {
        connector,
        db,
        schema,
        table,
        collection,
        ts_ms,
        snapshot,
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ToolSource = ToolSource::FleetMdm;

    #[test]
    fn tombstones_and_bad_ops() {
        assert_eq!(ChangeEvent::parse(T, b"").unwrap(), None);
        assert_eq!(ChangeEvent::parse(T, b"null").unwrap(), None);
        assert_eq!(
            ChangeEvent::parse(T, br#"{"schema":{},"payload":null}"#).unwrap(),
            None
        );
        let e = ChangeEvent::parse(T, br#"{"op":"x","after":{}}"#).unwrap_err();
        assert!(e.to_string().contains("one of c, u, d, r"), "{e}");
        let e = ChangeEvent::parse(T, br#"{"op":"d","after":null}"#).unwrap_err();
        assert!(e.is_poison());
    }

    #[test]
    fn mongo_string_rows_and_positions() {
        let raw = br#"{"op":"r","after":"{\"_id\":{\"$oid\":\"a1\"}}","source":{"connector":"mongodb","collection":"events","ts_ms":5,"ord":2,"snapshot":"true"}}"#;
        let c = ChangeEvent::parse(T, raw).unwrap().unwrap();
        assert_eq!(c.row()["_id"]["$oid"], "a1");
        assert_eq!(c.table(), Some("events"));
        assert!(c.source.snapshot);
        assert_eq!(c.source.position.as_deref(), Some("oplog:5:2"));
    }
}
