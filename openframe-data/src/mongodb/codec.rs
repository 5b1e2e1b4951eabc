//! The stored document layout, and the index specifications that serve it.
//!
//! One MongoDB collection per [`Schema::collection`]; each stored document is
//!
//! ```text
//! { _id: ObjectId, p: <partition>, id: <id>, v: <version as Int64>, s: <search text>,
//!   b: <body>, f: { <index field>: <value>, ... } }
//! ```
//!
//! Index values are BSON null, boolean, Int64, string or an array of strings. The body is the
//! JSON body as a BSON document when that converts back to the identical JSON string, and the
//! JSON string itself otherwise (non-object bodies, unsigned integers beyond `i64`, keys MongoDB
//! treats specially, ...): the body is the source of truth and always round-trips byte for byte.

use bson::{Bson, Document, doc};
use openframe_core::{Error, Result};

use super::translate::field_path;
use crate::store::{FieldKind, Partition, Schema, StoredDoc, Value};

/// The partition key.
pub(super) const PARTITION: &str = "p";
/// The document id.
pub(super) const ID: &str = "id";
/// The optimistic-concurrency version.
pub(super) const VERSION: &str = "v";
/// The lowercased search text.
pub(super) const SEARCH: &str = "s";
/// The body.
pub(super) const BODY: &str = "b";
/// The sub-document of index fields.
pub(super) const FIELDS: &str = "f";

/// The name of the unique `(p, id)` index.
pub(super) const ID_INDEX: &str = "of_id";

/// Bodies nested deeper than this are stored as a string (MongoDB caps nesting at 100).
const MAX_BODY_DEPTH: usize = 64;

/// Whether `v` is null or has the variant of `kind`.
pub(super) fn kind_matches(kind: FieldKind, v: &Value) -> bool {
    matches!(
        (kind, v),
        (FieldKind::Str, Value::Str(_))
            | (FieldKind::Int, Value::Int(_))
            | (FieldKind::Bool, Value::Bool(_))
            | (FieldKind::StrList, Value::StrList(_))
    )
}

/// The BSON type name (for `$type`) of the values of a scalar field kind; `None` for lists.
pub(super) fn scalar_type(kind: FieldKind) -> Option<&'static str> {
    match kind {
        FieldKind::Str => Some("string"),
        FieldKind::Int => Some("long"),
        FieldKind::Bool => Some("bool"),
        FieldKind::StrList => None,
    }
}

/// The BSON form of an index value.
pub(super) fn value_to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Int(i) => Bson::Int64(*i),
        Value::Str(s) => Bson::String(s.clone()),
        Value::StrList(items) => {
            Bson::Array(items.iter().map(|s| Bson::String(s.clone())).collect())
        }
    }
}

fn corrupt(schema: &Schema, what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("corrupt {} document in mongodb: {what}", schema.entity).into())
}

/// Reads an index value of `kind` back (`None`/null is [`Value::Null`]).
pub(super) fn bson_to_value(schema: &Schema, kind: FieldKind, b: Option<&Bson>) -> Result<Value> {
    Ok(match (kind, b) {
        (_, None | Some(Bson::Null)) => Value::Null,
        (FieldKind::Str, Some(Bson::String(s))) => Value::Str(s.clone()),
        (FieldKind::Int, Some(Bson::Int64(i))) => Value::Int(*i),
        (FieldKind::Int, Some(Bson::Int32(i))) => Value::Int(i64::from(*i)),
        (FieldKind::Bool, Some(Bson::Boolean(b))) => Value::Bool(*b),
        (FieldKind::StrList, Some(Bson::Array(items))) => Value::StrList(
            items
                .iter()
                .map(|i| match i {
                    Bson::String(s) => Ok(s.clone()),
                    other => Err(corrupt(schema, format!("list item {other}"))),
                })
                .collect::<Result<_>>()?,
        ),
        (kind, Some(other)) => return Err(corrupt(schema, format!("{other} is not a {kind:?}"))),
    })
}

/// Checks that `fields` line up with the schema and each is null or of its field's kind.
pub(super) fn check_fields(schema: &Schema, fields: &[Value]) -> Result<()> {
    if fields.len() != schema.fields.len() {
        return Err(Error::Internal(
            format!(
                "{}: index values do not match the schema",
                schema.collection
            )
            .into(),
        ));
    }
    for (def, v) in schema.fields.iter().zip(fields) {
        if *v != Value::Null && !kind_matches(def.kind, v) {
            return Err(Error::Internal(
                format!(
                    "{}: field {} is a {:?} field, got {v:?}",
                    schema.collection, def.name, def.kind
                )
                .into(),
            ));
        }
    }
    Ok(())
}

/// The stored form of `doc` in `partition`.
pub(super) fn encode(schema: &Schema, partition: &Partition, doc: &StoredDoc) -> Result<Document> {
    check_fields(schema, &doc.fields)?;
    let version = i64::try_from(doc.version).map_err(|_| {
        Error::Internal(format!("{}: version out of range", schema.collection).into())
    })?;
    let mut fields = Document::new();
    for (def, v) in schema.fields.iter().zip(&doc.fields) {
        fields.insert(def.name, value_to_bson(v));
    }
    Ok(doc! {
        PARTITION: partition.as_str(),
        ID: doc.id.as_str(),
        VERSION: version,
        SEARCH: doc.search.as_str(),
        BODY: body_to_bson(&doc.body),
        FIELDS: fields,
    })
}

/// Reads a stored document back.
pub(super) fn decode(schema: &Schema, stored: &Document) -> Result<StoredDoc> {
    let id = stored
        .get_str(ID)
        .map_err(|e| corrupt(schema, e))?
        .to_owned();
    let version = match stored.get(VERSION) {
        Some(Bson::Int64(v)) => u64::try_from(*v).ok(),
        Some(Bson::Int32(v)) => u64::try_from(*v).ok(),
        _ => None,
    }
    .ok_or_else(|| corrupt(schema, format!("{id}: bad version")))?;
    let search = stored
        .get_str(SEARCH)
        .map_err(|e| corrupt(schema, e))?
        .to_owned();
    let body = body_from_bson(stored.get(BODY))
        .ok_or_else(|| corrupt(schema, format!("{id}: bad body")))?;
    let values = stored
        .get_document(FIELDS)
        .map_err(|e| corrupt(schema, e))?;
    let fields = schema
        .fields
        .iter()
        .map(|def| bson_to_value(schema, def.kind, values.get(def.name)))
        .collect::<Result<_>>()?;
    Ok(StoredDoc {
        id,
        version,
        fields,
        search,
        body,
    })
}

/// The stored form of a JSON body: a BSON document if it converts back to exactly `body`,
/// else the string itself.
pub(super) fn body_to_bson(body: &str) -> Bson {
    match serde_json::from_str::<Document>(body) {
        Ok(d) if plain_document(&d, 1) && serde_json::to_string(&d).is_ok_and(|s| s == body) => {
            Bson::Document(d)
        }
        _ => Bson::String(body.to_owned()),
    }
}

/// The JSON body of a stored body value (`None` if it is neither a document nor a string).
pub(super) fn body_from_bson(b: Option<&Bson>) -> Option<String> {
    match b? {
        Bson::Document(d) => serde_json::to_string(d).ok(),
        Bson::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Whether a parsed body holds only JSON types under keys MongoDB stores verbatim.
fn plain_document(d: &Document, depth: usize) -> bool {
    depth <= MAX_BODY_DEPTH
        && d.iter().all(|(k, v)| {
            !k.is_empty()
                && !k.starts_with('$')
                && !k.contains(['.', '\0'])
                && plain_value(v, depth)
        })
}

fn plain_value(v: &Bson, depth: usize) -> bool {
    match v {
        Bson::Null
        | Bson::Boolean(_)
        | Bson::Int32(_)
        | Bson::Int64(_)
        | Bson::Double(_)
        | Bson::String(_) => true,
        Bson::Array(items) => {
            depth < MAX_BODY_DEPTH && items.iter().all(|i| plain_value(i, depth + 1))
        }
        Bson::Document(d) => plain_document(d, depth + 1),
        _ => false,
    }
}

/// One index to create on a collection.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct IndexSpec {
    /// An explicit name (duplicate-key errors are mapped back by name), or the server's default.
    pub(super) name: Option<String>,
    /// The key pattern.
    pub(super) keys: Document,
    /// Whether the index is unique.
    pub(super) unique: bool,
    /// The partial filter expression of a unique group (only rows whose values are all
    /// non-null are indexed, so nulls never collide).
    pub(super) partial: Option<Document>,
}

/// The name of the unique index enforcing `group`.
pub(super) fn unique_index_name(group: &[&str]) -> String {
    format!("of_unique.{}", group.join("."))
}

/// The indexes `schema` needs: unique `(p, id)`, one per [`Schema::indexes`] entry as
/// `(p, fields..., id)`, and one unique partial index per [`Schema::unique`] group.
pub(super) fn index_specs(schema: &Schema) -> Result<Vec<IndexSpec>> {
    let mut specs = vec![IndexSpec {
        name: Some(ID_INDEX.to_owned()),
        keys: doc! { PARTITION: 1, ID: 1 },
        unique: true,
        partial: None,
    }];
    for index in schema.indexes {
        let mut keys = doc! { PARTITION: 1 };
        for name in index.fields {
            schema.field(name)?;
            keys.insert(field_path(name), 1);
        }
        keys.insert(ID, 1);
        // MongoDB refuses a second index on the same key pattern (an empty or repeated
        // definition would duplicate `(p, id)` or another entry).
        if specs.iter().all(|s| s.keys != keys) {
            specs.push(IndexSpec {
                name: None,
                keys,
                unique: false,
                partial: None,
            });
        }
    }
    for group in schema.unique {
        let mut keys = doc! { PARTITION: 1 };
        let mut partial = Document::new();
        for name in group.iter() {
            let Some(bson_type) = scalar_type(schema.field(name)?.kind) else {
                // A unique multikey index compares elements, not whole lists.
                return Err(Error::Internal(
                    format!(
                        "{}: mongodb cannot enforce a unique list field {name}",
                        schema.collection
                    )
                    .into(),
                ));
            };
            keys.insert(field_path(name), 1);
            partial.insert(field_path(name), doc! { "$type": bson_type });
        }
        if specs.iter().any(|s| s.keys == keys) {
            continue;
        }
        specs.push(IndexSpec {
            name: Some(unique_index_name(group)),
            keys,
            unique: true,
            partial: Some(partial),
        });
    }
    Ok(specs)
}

/// The field (or comma-joined unique group) a duplicate-key error message names, by index name.
pub(super) fn duplicate_field(schema: &Schema, message: &str) -> Option<String> {
    let (_, rest) = message.split_once("index: ")?;
    let index = rest.split_whitespace().next()?;
    if index == ID_INDEX || index == "_id_" {
        return Some(ID.to_owned());
    }
    schema
        .unique
        .iter()
        .find(|group| unique_index_name(group) == index)
        .map(|group| group.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FieldDef, IndexDef};

    static T: Schema = Schema {
        collection: "things",
        entity: "thing",
        fields: &[
            FieldDef::optional("s", FieldKind::Str),
            FieldDef::optional("i", FieldKind::Int),
            FieldDef::optional("b", FieldKind::Bool),
            FieldDef::optional("l", FieldKind::StrList),
        ],
        indexes: &[
            IndexDef {
                fields: &["s", "i"],
            },
            IndexDef { fields: &["l"] },
        ],
        unique: &[&["s"], &["i", "b"]],
    };

    fn sample(fields: Vec<Value>, body: &str) -> StoredDoc {
        StoredDoc {
            id: "d1".into(),
            version: 3,
            fields,
            search: "web-01\u{1f}acme".into(),
            body: body.into(),
        }
    }

    #[test]
    fn documents_round_trip() {
        let p = Partition::platform();
        for fields in [
            vec![
                Value::str("a"),
                Value::Int(-5),
                Value::Bool(true),
                Value::StrList(vec!["x".into(), "y".into()]),
            ],
            vec![Value::Null, Value::Null, Value::Null, Value::Null],
            vec![
                Value::str(""),
                Value::Int(i64::MAX),
                Value::Bool(false),
                Value::StrList(vec![]),
            ],
        ] {
            let doc = sample(fields, r#"{"id":"d1","n":1}"#);
            let stored = encode(&T, &p, &doc).unwrap();
            assert_eq!(stored.get_str("p").unwrap(), "_platform");
            assert_eq!(stored.get_str("id").unwrap(), "d1");
            assert_eq!(stored.get_i64("v").unwrap(), 3);
            assert_eq!(decode(&T, &stored).unwrap(), doc);
        }
    }

    #[test]
    fn index_values_are_stored_with_their_bson_types() {
        let doc = sample(
            vec![
                Value::str("a"),
                Value::Int(7),
                Value::Bool(true),
                Value::StrList(vec!["x".into()]),
            ],
            "{}",
        );
        let stored = encode(&T, &Partition::platform(), &doc).unwrap();
        assert_eq!(
            stored.get_document("f").unwrap(),
            &doc! { "s": "a", "i": 7_i64, "b": true, "l": ["x"] }
        );
        let nulls = sample(vec![Value::Null; 4], "{}");
        let stored = encode(&T, &Partition::platform(), &nulls).unwrap();
        assert_eq!(
            stored.get_document("f").unwrap(),
            &doc! { "s": null, "i": null, "b": null, "l": null }
        );
    }

    #[test]
    fn missing_index_fields_read_as_null_and_wrong_types_are_corrupt() {
        let mut stored = encode(
            &T,
            &Partition::platform(),
            &sample(vec![Value::Null; 4], "{}"),
        )
        .unwrap();
        stored.insert("f", doc! {});
        assert_eq!(decode(&T, &stored).unwrap().fields, vec![Value::Null; 4]);
        stored.insert("f", doc! { "i": "seven" });
        assert!(matches!(decode(&T, &stored), Err(Error::Internal(_))));
        stored.insert("f", doc! { "l": ["x", 1] });
        assert!(matches!(decode(&T, &stored), Err(Error::Internal(_))));
        stored.insert("f", doc! { "i": 7_i32 });
        assert_eq!(decode(&T, &stored).unwrap().fields[1], Value::Int(7));
        stored.insert("v", -1_i64);
        assert!(matches!(decode(&T, &stored), Err(Error::Internal(_))));
    }

    #[test]
    fn mismatched_index_values_are_refused() {
        let p = Partition::platform();
        let short = sample(vec![Value::Null; 3], "{}");
        assert!(matches!(encode(&T, &p, &short), Err(Error::Internal(_))));
        let wrong = sample(
            vec![Value::Int(1), Value::Null, Value::Null, Value::Null],
            "{}",
        );
        assert!(matches!(encode(&T, &p, &wrong), Err(Error::Internal(_))));
        let mut huge = sample(vec![Value::Null; 4], "{}");
        huge.version = u64::MAX;
        assert!(matches!(encode(&T, &p, &huge), Err(Error::Internal(_))));
    }

    #[test]
    fn plain_bodies_are_stored_as_documents() {
        let body = r#"{"id":"d1","s":"Str(\"alpha\")","n":-3,"f":1.5,"z":0.0,"t":true,"x":null,"a":[1,"two",{"k":[]}],"o":{"b":2,"a":1},"u":"ä\u001f"}"#;
        let b = body_to_bson(body);
        let Bson::Document(d) = &b else {
            panic!("{b:?}")
        };
        // Key order is kept.
        assert_eq!(
            d.keys().collect::<Vec<_>>(),
            ["id", "s", "n", "f", "z", "t", "x", "a", "o", "u"]
        );
        assert_eq!(body_from_bson(Some(&b)).unwrap(), body);
    }

    #[test]
    fn other_bodies_are_stored_verbatim() {
        for body in [
            "[1,2]",
            "\"text\"",
            "not json",
            r#"{"big":18446744073709551615}"#,
            r#"{"e":1e5}"#,
            r#"{ "spaced": 1 }"#,
            r#"{"$oid":"507f1f77bcf86cd799439011"}"#,
            r#"{"a":{"$date":"2020-01-01T00:00:00Z"}}"#,
            r#"{"$set":1}"#,
            r#"{"a.b":1}"#,
            r#"{"":1}"#,
            r#"{"a":1,"a":2}"#,
        ] {
            let b = body_to_bson(body);
            assert_eq!(b, Bson::String(body.to_owned()), "{body}");
            assert_eq!(body_from_bson(Some(&b)).unwrap(), body);
        }
        let deep = format!("{}1{}", "{\"a\":".repeat(80), "}".repeat(80));
        assert!(matches!(body_to_bson(&deep), Bson::String(_)));
        let shallow = format!("{}1{}", "{\"a\":".repeat(10), "}".repeat(10));
        assert!(matches!(body_to_bson(&shallow), Bson::Document(_)));
        assert_eq!(body_from_bson(Some(&Bson::Int32(1))), None);
        assert_eq!(body_from_bson(None), None);
    }

    #[test]
    fn index_specs_put_the_partition_first_and_the_id_last() {
        let specs = index_specs(&T).unwrap();
        assert_eq!(specs.len(), 5);
        assert_eq!(specs[0].name.as_deref(), Some("of_id"));
        assert_eq!(specs[0].keys, doc! { "p": 1, "id": 1 });
        assert!(specs[0].unique);
        assert_eq!(specs[1].keys, doc! { "p": 1, "f.s": 1, "f.i": 1, "id": 1 });
        assert!(!specs[1].unique && specs[1].name.is_none() && specs[1].partial.is_none());
        assert_eq!(specs[2].keys, doc! { "p": 1, "f.l": 1, "id": 1 });
        assert_eq!(specs[3].name.as_deref(), Some("of_unique.s"));
        assert_eq!(specs[3].keys, doc! { "p": 1, "f.s": 1 });
        assert_eq!(
            specs[3].partial,
            Some(doc! { "f.s": { "$type": "string" } })
        );
        assert!(specs[3].unique);
        assert_eq!(specs[4].name.as_deref(), Some("of_unique.i.b"));
        assert_eq!(specs[4].keys, doc! { "p": 1, "f.i": 1, "f.b": 1 });
        assert_eq!(
            specs[4].partial,
            Some(doc! { "f.i": { "$type": "long" }, "f.b": { "$type": "bool" } })
        );
    }

    #[test]
    fn index_specs_refuse_unknown_fields_and_unique_lists() {
        static BAD_INDEX: Schema = Schema {
            collection: "bad",
            entity: "bad",
            fields: &[FieldDef::optional("l", FieldKind::StrList)],
            indexes: &[IndexDef { fields: &["nope"] }],
            unique: &[],
        };
        static UNIQUE_LIST: Schema = Schema {
            collection: "bad",
            entity: "bad",
            fields: &[FieldDef::optional("l", FieldKind::StrList)],
            indexes: &[],
            unique: &[&["l"]],
        };
        assert!(matches!(index_specs(&BAD_INDEX), Err(Error::Internal(_))));
        assert!(matches!(index_specs(&UNIQUE_LIST), Err(Error::Internal(_))));
    }

    #[test]
    fn index_specs_skip_repeated_key_patterns() {
        static REPEATS: Schema = Schema {
            collection: "repeats",
            entity: "repeat",
            fields: &[FieldDef::optional("s", FieldKind::Str)],
            indexes: &[
                IndexDef { fields: &[] },
                IndexDef { fields: &["s"] },
                IndexDef { fields: &["s"] },
            ],
            unique: &[&["s"], &["s"]],
        };
        let keys: Vec<Document> = index_specs(&REPEATS)
            .unwrap()
            .into_iter()
            .map(|s| s.keys)
            .collect();
        assert_eq!(
            keys,
            vec![
                doc! { "p": 1, "id": 1 },
                doc! { "p": 1, "f.s": 1, "id": 1 },
                doc! { "p": 1, "f.s": 1 }
            ]
        );
    }

    #[test]
    fn builtin_schemas_have_index_specs() {
        for schema in crate::builtin_schemas() {
            let specs = index_specs(schema).unwrap();
            assert_eq!(
                specs.len(),
                1 + schema.indexes.len() + schema.unique.len(),
                "{}",
                schema.collection
            );
        }
    }

    #[test]
    fn duplicate_key_messages_name_the_field() {
        let msg = |index: &str| {
            format!(
                "E11000 duplicate key error collection: db.things index: {index} dup key: {{ p: \"t\", f.s: \"a\" }}"
            )
        };
        assert_eq!(duplicate_field(&T, &msg("of_id")).as_deref(), Some("id"));
        assert_eq!(duplicate_field(&T, &msg("_id_")).as_deref(), Some("id"));
        assert_eq!(
            duplicate_field(&T, &msg("of_unique.s")).as_deref(),
            Some("s")
        );
        assert_eq!(
            duplicate_field(&T, &msg("of_unique.i.b")).as_deref(),
            Some("i,b")
        );
        assert_eq!(duplicate_field(&T, &msg("other_1")), None);
        assert_eq!(duplicate_field(&T, "E11000 duplicate key error"), None);
    }
}
