//! Slim parsing of Debezium envelopes: the same JSON acceptance as parsing into
//! [`serde_json::Value`], but only the keys [`ChangeEvent`](super::debezium::ChangeEvent) reads
//! are materialized; every other value (the `schema` block, most of `source`) is validated
//! without being allocated.
//!
//! Equivalence with the full parse, which the tests check:
//! - every value goes through `deserialize_any`, so syntax, UTF-8, escape, number-range and
//!   recursion-depth errors happen at the same byte, with the same category;
//! - kept keys hold the value the full parse would hold; a repeated key keeps its last value;
//! - a non-object where an object is expected is replaced by an empty value of the same JSON
//!   type (only its type is ever reported).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Keys of an envelope kept as parsed values.
const ENVELOPE_KEYS: [&str; 4] = ["op", "ts_ms", "before", "after"];
/// Keys of the `source` block that [`SourceInfo`](super::debezium::SourceInfo) is built from.
const SOURCE_KEYS: [&str; 12] = [
    "connector",
    "db",
    "schema",
    "table",
    "collection",
    "ts_ms",
    "snapshot",
    "file",
    "pos",
    "row",
    "lsn",
    "ord",
];

/// A Debezium envelope (bare or schema-wrapped) with only the keys a change event reads.
#[derive(Debug)]
pub(crate) struct SlimEnvelope(pub(crate) Value);

impl<'de> de::Deserialize<'de> for SlimEnvelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Level::Envelope.deserialize(d).map(SlimEnvelope)
    }
}

/// Which object is being read.
#[derive(Debug, Clone, Copy)]
enum Level {
    /// An envelope, or the `payload` of a schema-wrapped one.
    Envelope,
    /// The `source` block.
    Source,
}

/// What to do with the value of one key.
#[derive(Debug, Clone, Copy)]
enum Field {
    /// Keep the full value under this key.
    Keep(&'static str),
    /// Keep a slim object of `Level` under this key.
    Nested(&'static str, Level),
    /// Validate and drop.
    Skip,
}

impl Level {
    fn field(self, key: &str) -> Field {
        match self {
            Self::Envelope => match key {
                "source" => Field::Nested("source", Self::Source),
                "payload" => Field::Nested("payload", Self::Envelope),
                _ => ENVELOPE_KEYS
                    .into_iter()
                    .find(|k| *k == key)
                    .map_or(Field::Skip, Field::Keep),
            },
            Self::Source => SOURCE_KEYS
                .into_iter()
                .find(|k| *k == key)
                .map_or(Field::Skip, Field::Keep),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Level {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(field) = map.next_key_seed(KeySeed(self))? {
            match field {
                Field::Keep(key) => {
                    out.insert(key.to_owned(), map.next_value::<Value>()?);
                }
                Field::Nested(key, level) => {
                    out.insert(key.to_owned(), map.next_value_seed(level)?);
                }
                Field::Skip => {
                    map.next_value::<Validated>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<Validated>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Bool(false))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Ok(Value::from(0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Ok(Value::from(0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value::from(0))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Ok(Value::String(String::new()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
}

/// Classifies a key without allocating it.
struct KeySeed(Level);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
        Ok(self.0.field(key))
    }
}

/// Any JSON value, fully parsed (strings decoded, numbers range-checked) but not kept.
/// Unlike [`IgnoredAny`] on `serde_json`, which skips strings without checking their UTF-8.
struct Validated;

impl<'de> de::Deserialize<'de> for Validated {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValidatedVisitor).map(|_| Validated)
    }
}

struct ValidatedVisitor;

impl<'de> Visitor<'de> for ValidatedVisitor {
    type Value = IgnoredAny;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IgnoredAny, A::Error> {
        // Keys are decoded as strings, as the full parse decodes them.
        while map.next_key_seed(KeySeed(Level::Source))?.is_some() {
            map.next_value::<Validated>()?;
        }
        Ok(IgnoredAny)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IgnoredAny, A::Error> {
        while seq.next_element::<Validated>()?.is_some() {}
        Ok(IgnoredAny)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<IgnoredAny, E> {
        Ok(IgnoredAny)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<IgnoredAny, E> {
        Ok(IgnoredAny)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<IgnoredAny, E> {
        Ok(IgnoredAny)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<IgnoredAny, E> {
        Ok(IgnoredAny)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<IgnoredAny, E> {
        Ok(IgnoredAny)
    }

    fn visit_unit<E: de::Error>(self) -> Result<IgnoredAny, E> {
        Ok(IgnoredAny)
    }

    fn visit_none<E: de::Error>(self) -> Result<IgnoredAny, E> {
        Ok(IgnoredAny)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<IgnoredAny, D::Error> {
        d.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::debezium::ChangeEvent;
    use super::*;
    use crate::model::ToolSource;

    const T: ToolSource = ToolSource::TacticalRmm;

    /// The slim parse and the full parse give the same change event or the same error.
    fn same(payload: &[u8]) {
        let full = super::super::fields::parse_json(T, payload)
            .and_then(|v| ChangeEvent::from_value(T, v));
        let slim = super::super::fields::parse_json_as::<SlimEnvelope>(T, payload)
            .and_then(|v| ChangeEvent::from_value(T, v.0));
        assert_eq!(full, slim, "{}", String::from_utf8_lossy(payload));
    }

    #[test]
    fn slim_envelopes_parse_like_full_values() {
        let cases: &[&[u8]] = &[
            br#"{"op":"c","after":{"id":1,"x":[1,{"y":null}]},"source":{"table":"t","lsn":5,"xmin":null,"version":"2"},"ts_ms":9,"extra":{"a":[1.5,-2,true]}}"#,
            br#"{"schema":{"type":"struct","fields":[{"a":1}]},"payload":{"op":"u","before":{"id":1},"after":"{\"id\":2}","source":{"file":"b.1","pos":4,"row":2}}}"#,
            br#"{"schema":{},"payload":null}"#,
            br#"{"schema":{},"payload":7}"#,
            br#"{"schema":{},"payload":"x"}"#,
            br#"{"op":null,"payload":{"op":"c","after":{}}}"#,
            br#"{"op":"c","op":"d","before":{"a":1},"after":null}"#,
            br#"{"op":"c","after":{"a":1},"source":[1,2]}"#,
            br#"{"op":"c","after":{"a":1},"source":"s"}"#,
            br#"{"op":"c","after":{"a":1},"source":{"table":1}}"#,
            br#"{"op":"c","after":{"a":1},"source":{"snapshot":"last","ord":1,"ts_ms":"2"},"source":{"ord":3,"ts_ms":4}}"#,
            br#"[1,2,{"a":"b"}]"#,
            br#""text""#,
            b"12",
            b"true",
            b"null",
            br#"{"op":"c","after":{"a":1},"schema":{"x":1e999}}"#,
            br#"{"op":"c","after":{"a":1},"schema":{"x":"\ud800"}}"#,
            br#"{"op":"c","after":{"a":1},"schema":{"x":"\q"}}"#,
            b"{\"op\":\"c\",\"after\":{\"a\":1},\"schema\":{\"x\":\"\xff\"}}",
            b"{\"op\":\"c\",\"after\":{\"a\":1},\"schema\":{\"\xff\":1}}",
            br#"{"op":"c","after":{"a":1},"schema":{"x":1}} x"#,
            br#"{"op":"c","after":{"a":1},"schema":{"x":[1,2}}"#,
            br#"{"op":"c","after":{"a":1},"sch\u0065ma":{},"\u006fp":"r"}"#,
        ];
        for payload in cases {
            same(payload);
        }
        let deep = format!(
            r#"{{"op":"c","after":{{}},"schema":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        same(deep.as_bytes());
        let shallow = format!(
            r#"{{"op":"c","after":{{}},"schema":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        same(shallow.as_bytes());
    }
}
