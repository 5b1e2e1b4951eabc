//! Defensive JSON access shared by the adapters: size-checked parsing, typed field getters that
//! turn wrong types into [`AdapterError::Malformed`] with the field's name, and timestamp
//! parsing for the formats the tools emit.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use openframe_core::Timestamp;
use serde_json::{Map, Value};

use super::{AdapterError, MAX_PAYLOAD_BYTES};
use crate::model::ToolSource;

/// Parses `payload` as JSON after checking its size. Errors never quote the payload.
pub fn parse_json(tool: ToolSource, payload: &[u8]) -> Result<Value, AdapterError> {
    parse_json_as(tool, payload)
}

/// [`parse_json`] into any type (the size check and the error messages are the same).
pub(crate) fn parse_json_as<T: serde::de::DeserializeOwned>(
    tool: ToolSource,
    payload: &[u8],
) -> Result<T, AdapterError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(AdapterError::malformed(
            tool,
            format!(
                "payload of {} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit",
                payload.len()
            ),
        ));
    }
    serde_json::from_slice(payload).map_err(|e| {
        AdapterError::malformed(
            tool,
            format!(
                "invalid JSON ({:?}) at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}

/// A JSON object being read field by field; every error names `what` and the field.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    tool: ToolSource,
    what: &'static str,
    obj: &'a Map<String, Value>,
}

impl<'a> Row<'a> {
    /// `value` as an object, or Malformed (`what` names it in the error, e.g. `"after"`).
    pub fn new(
        tool: ToolSource,
        what: &'static str,
        value: &'a Value,
    ) -> Result<Self, AdapterError> {
        match value {
            Value::Object(obj) => Ok(Self { tool, what, obj }),
            other => Err(AdapterError::malformed(
                tool,
                format!("`{what}` must be an object, got {}", kind(other)),
            )),
        }
    }

    /// A row over `obj` (`what` names it in errors).
    pub fn of(tool: ToolSource, what: &'static str, obj: &'a Map<String, Value>) -> Self {
        Self { tool, what, obj }
    }

    /// The object.
    pub fn object(&self) -> &'a Map<String, Value> {
        self.obj
    }

    /// A Malformed error about `field`.
    pub fn error(&self, field: &str, reason: impl AsRef<str>) -> AdapterError {
        AdapterError::malformed(
            self.tool,
            format!("`{}.{field}` {}", self.what, reason.as_ref()),
        )
    }

    /// The field, treating `null` as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    /// An optional string field (wrong type → Malformed).
    pub fn str(&self, field: &str) -> Result<Option<&'a str>, AdapterError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.error(field, format!("must be a string, got {}", kind(other)))),
        }
    }

    /// A required, non-blank string field.
    pub fn req_str(&self, field: &str) -> Result<&'a str, AdapterError> {
        match self.str(field)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.error(field, "must not be blank")),
            None => Err(self.error(field, "is missing")),
        }
    }

    /// An optional identifier: a string, an integer, or a Mongo `{"$oid": "..."}`.
    pub fn id(&self, field: &str) -> Result<Option<String>, AdapterError> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let id = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            Value::Object(o) => match o.get("$oid").or_else(|| o.get("$numberLong")) {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(self.error(field, "must be a string, an integer or {\"$oid\"}")),
            },
            other => {
                return Err(self.error(
                    field,
                    format!("must be a string or an integer, got {}", kind(other)),
                ));
            }
        };
        if id.trim().is_empty() {
            return Err(self.error(field, "must not be blank"));
        }
        if id.len() > 256 {
            return Err(self.error(field, "is longer than 256 bytes"));
        }
        Ok(Some(id))
    }

    /// A required identifier (see [`Row::id`]).
    pub fn req_id(&self, field: &str) -> Result<String, AdapterError> {
        self.id(field)?
            .ok_or_else(|| self.error(field, "is missing"))
    }

    /// An optional integer (also from a numeric string or `{"$numberLong"}`).
    pub fn i64(&self, field: &str) -> Result<Option<i64>, AdapterError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => as_i64(v)
                .map(Some)
                .ok_or_else(|| self.error(field, format!("must be an integer, got {}", kind(v)))),
        }
    }

    /// An optional boolean (also `0`/`1`, as MySQL `tinyint(1)` arrives through Debezium).
    pub fn bool(&self, field: &str) -> Result<Option<bool>, AdapterError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(v) => Err(self.error(field, format!("must be a boolean, got {}", kind(v)))),
        }
    }

    /// An optional timestamp (see [`parse_time`]); unparsable → Malformed.
    pub fn time(&self, field: &str) -> Result<Option<Timestamp>, AdapterError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .ok_or_else(|| self.error(field, "is not a recognized timestamp")),
        }
    }

    /// An optional embedded JSON value: objects and arrays as they are, strings holding JSON
    /// (Debezium's rendering of MySQL `json` columns) parsed; other strings kept as strings.
    pub fn json(&self, field: &str) -> Option<Value> {
        match self.get(field)? {
            Value::String(s) => {
                let t = s.trim_start();
                if t.starts_with('{') || t.starts_with('[') {
                    serde_json::from_str(s)
                        .ok()
                        .or_else(|| Some(Value::String(s.clone())))
                } else {
                    Some(Value::String(s.clone()))
                }
            }
            other => Some(other.clone()),
        }
    }
}

/// `value` as an owned object, or the Malformed error [`Row::new`] gives for it.
pub fn into_object(
    tool: ToolSource,
    what: &'static str,
    value: Value,
) -> Result<Map<String, Value>, AdapterError> {
    match value {
        Value::Object(obj) => Ok(obj),
        other => Err(AdapterError::malformed(
            tool,
            format!("`{what}` must be an object, got {}", kind(&other)),
        )),
    }
}

/// The JSON type name of `v`, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An integer from a number, a numeric string or `{"$numberLong": "..."}`.
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(o) => o.get("$numberLong").and_then(as_i64),
        _ => None,
    }
}

/// A timestamp from: RFC 3339 (`2025-03-01T10:00:00Z`), a zone-less `2025-03-01 10:00:00[.fff]`
/// or `2025-03-01T10:00:00[.fff]` (taken as UTC), epoch numbers (seconds, milliseconds or
/// microseconds, told apart by magnitude), or Mongo extended JSON `{"$date": ...}`.
pub fn parse_time(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                    return Some(t.and_utc());
                }
            }
            s.parse::<i64>().ok().and_then(from_epoch)
        }
        Value::Number(n) => n.as_i64().and_then(from_epoch),
        Value::Object(o) => match o.get("$date") {
            Some(inner) => parse_time(inner),
            None => as_i64(v).and_then(from_epoch),
        },
        _ => None,
    }
}

/// An epoch number in seconds, milliseconds or microseconds (by magnitude).
pub fn from_epoch(n: i64) -> Option<Timestamp> {
    if n < 0 {
        return None;
    }
    if n >= 100_000_000_000_000 {
        Utc.timestamp_micros(n).single()
    } else if n >= 100_000_000_000 {
        Utc.timestamp_millis_opt(n).single()
    } else {
        Utc.timestamp_opt(n, 0).single()
    }
}

/// The first known time of `candidates` (tool time, capture time, broker time), or Malformed.
pub fn first_time(
    tool: ToolSource,
    candidates: impl IntoIterator<Item = Option<Timestamp>>,
) -> Result<Timestamp, AdapterError> {
    candidates
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| AdapterError::malformed(tool, "no event time in the payload or the record"))
}

/// Epoch milliseconds.
pub fn from_millis(ms: i64) -> Option<Timestamp> {
    Utc.timestamp_millis_opt(ms).single()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_every_format() {
        let want = Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap();
        for v in [
            json!("2025-03-01T10:00:00Z"),
            json!("2025-03-01T11:00:00+01:00"),
            json!("2025-03-01 10:00:00"),
            json!("2025-03-01T10:00:00.000"),
            json!(1_740_823_200),
            json!(1_740_823_200_000_i64),
            json!(1_740_823_200_000_000_i64),
            json!({"$date": 1_740_823_200_000_i64}),
            json!({"$date": {"$numberLong": "1740823200000"}}),
            json!({"$date": "2025-03-01T10:00:00Z"}),
        ] {
            assert_eq!(parse_time(&v), Some(want), "{v}");
        }
        assert_eq!(parse_time(&json!("yesterday")), None);
        assert_eq!(parse_time(&json!(-5)), None);
    }
}
