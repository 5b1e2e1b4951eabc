//! Pure translation of the filter language, sorts and facets into MongoDB query documents.
//!
//! Every function here is deterministic and needs no server, so the exact query shapes are
//! unit-tested below. The translations reproduce [`Filter::matches`] and
//! [`compare_docs`](crate::store::compare_docs) for documents whose index values have the kind
//! their [`Schema`] declares (the backend refuses to store anything else):
//!
//! - MongoDB orders null before every other type, which is "nulls first ascending, last
//!   descending"; without a collation it compares strings bytewise, like Rust.
//! - Comparisons never match null (type bracketing); values of another kind than the field's
//!   are resolved here, by the reference ordering of [`Value`] variants, so MongoDB never
//!   compares across types.
//! - Equality on a list field would match *elements* in MongoDB, so scalar values are dropped
//!   from `Eq`/`In`/`NotIn` on list fields (the reference never finds them equal).
//! - Search is an escaped, literal regular expression: no pattern syntax reaches the server.

use std::cmp::Ordering;

use bson::{Bson, Document, doc};
use openframe_core::{Error, Result, SortDirection};

use super::codec::{FIELDS, ID, PARTITION, SEARCH, kind_matches, scalar_type, value_to_bson};
use crate::store::{CmpOp, FieldKind, Filter, Partition, Schema, SortKey, Value};

/// The path of an index field inside a stored document.
pub(super) fn field_path(name: &str) -> String {
    format!("{FIELDS}.{name}")
}

/// A translated filter, before it is rendered: constant outcomes are kept apart so `And`/`Or`
/// can simplify and never emit an empty `$and`/`$or` (which MongoDB rejects).
#[derive(Debug, Clone, PartialEq)]
enum Tr {
    All,
    Nothing,
    Doc(Document),
}

/// A query document that matches no document (uses the `(p, id)` index).
fn nothing() -> Document {
    doc! { ID: { "$in": [] } }
}

/// The MongoDB query for `filter` (without the partition). `{}` matches every document.
pub(super) fn filter_doc(schema: &Schema, filter: &Filter) -> Result<Document> {
    Ok(render(translate(schema, filter)?))
}

/// The MongoDB query for `filter` confined to `partition`.
pub(super) fn query_doc(
    schema: &Schema,
    partition: &Partition,
    filter: &Filter,
) -> Result<Document> {
    let mut query = doc! { PARTITION: partition.as_str() };
    // A filter document's keys are field paths, `id`, `s`, `$and` or `$or`: never `p`.
    query.extend(filter_doc(schema, filter)?);
    Ok(query)
}

fn render(tr: Tr) -> Document {
    match tr {
        Tr::All => Document::new(),
        Tr::Nothing => nothing(),
        Tr::Doc(d) => d,
    }
}

fn op_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Gt => "$gt",
        CmpOp::Gte => "$gte",
        CmpOp::Lt => "$lt",
        CmpOp::Lte => "$lte",
    }
}

fn holds(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Gte => ord != Ordering::Less,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Lte => ord != Ordering::Greater,
    }
}

/// The position of a value's variant in the derived `Ord` of [`Value`].
fn value_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Str(_) => 3,
        Value::StrList(_) => 4,
    }
}

/// The rank of the non-null values a field of `kind` holds.
fn kind_rank(kind: FieldKind) -> u8 {
    match kind {
        FieldKind::Bool => 1,
        FieldKind::Int => 2,
        FieldKind::Str => 3,
        FieldKind::StrList => 4,
    }
}

/// `{path: {op: value}}`.
fn cond(path: String, op: &str, value: Bson) -> Document {
    let mut inner = Document::new();
    inner.insert(op, value);
    let mut d = Document::new();
    d.insert(path, inner);
    d
}

fn single(path: String, op: &str, value: Bson) -> Tr {
    Tr::Doc(cond(path, op, value))
}

/// An equality test that also states the field's BSON type (implied by the value), so the
/// planner can use the partial unique indexes, whose filter is exactly that type test.
fn equality(name: &str, kind: FieldKind, op: &str, value: Bson) -> Tr {
    let mut inner = Document::new();
    inner.insert(op, value);
    if let Some(t) = scalar_type(kind) {
        inner.insert("$type", t);
    }
    let mut d = Document::new();
    d.insert(field_path(name), inner);
    Tr::Doc(d)
}

fn not_null(name: &str) -> Tr {
    single(field_path(name), "$ne", Bson::Null)
}

fn translate(schema: &Schema, filter: &Filter) -> Result<Tr> {
    Ok(match filter {
        Filter::All => Tr::All,
        Filter::Eq(name, v) => {
            let kind = schema.field(name)?.kind;
            if kind_matches(kind, v) {
                equality(name, kind, "$eq", value_to_bson(v))
            } else {
                // Null never equals; another kind never equals.
                Tr::Nothing
            }
        }
        Filter::In(name, vs) => {
            let kind = schema.field(name)?.kind;
            let kept: Vec<Bson> = vs
                .iter()
                .filter(|v| kind_matches(kind, v))
                .map(value_to_bson)
                .collect();
            if kept.is_empty() {
                Tr::Nothing
            } else {
                equality(name, kind, "$in", Bson::Array(kept))
            }
        }
        Filter::NotIn(name, vs) => {
            let kind = schema.field(name)?.kind;
            let kept: Vec<Bson> = vs
                .iter()
                .filter(|v| **v == Value::Null || kind_matches(kind, v))
                .map(value_to_bson)
                .collect();
            if kept.is_empty() {
                Tr::All
            } else {
                single(field_path(name), "$nin", Bson::Array(kept))
            }
        }
        Filter::HasAny(name, vs) => {
            let kind = schema.field(name)?.kind;
            if kind != FieldKind::StrList || vs.is_empty() {
                Tr::Nothing
            } else {
                let items = vs.iter().map(|s| Bson::String(s.clone())).collect();
                single(field_path(name), "$in", Bson::Array(items))
            }
        }
        Filter::Cmp(name, op, v) => {
            let kind = schema.field(name)?.kind;
            if !kind_matches(kind, v) {
                // Every non-null field value has the field's kind, so it compares to `v` the
                // same way as the variants do; null never matches.
                if holds(*op, kind_rank(kind).cmp(&value_rank(v))) {
                    not_null(name)
                } else {
                    Tr::Nothing
                }
            } else if kind == FieldKind::StrList {
                // MongoDB compares arrays element-wise ("any element"), not lexicographically.
                return Err(Error::Internal(
                    format!(
                        "{}: mongodb cannot compare list field {name}",
                        schema.collection
                    )
                    .into(),
                ));
            } else {
                single(field_path(name), op_name(*op), value_to_bson(v))
            }
        }
        Filter::IsNull(name) => {
            schema.field(name)?;
            single(field_path(name), "$eq", Bson::Null)
        }
        Filter::NotNull(name) => {
            schema.field(name)?;
            not_null(name)
        }
        Filter::IdCmp(op, id) => single(ID.to_owned(), op_name(*op), Bson::String(id.clone())),
        Filter::KeysetCmp(name, op, v, id) => {
            let kind = schema.field(name)?.kind;
            if *v == Value::Null {
                Tr::Nothing
            } else if !kind_matches(kind, v) {
                // The field never equals `v`, so the id never decides: as `Cmp`.
                if holds(*op, kind_rank(kind).cmp(&value_rank(v))) {
                    not_null(name)
                } else {
                    Tr::Nothing
                }
            } else if kind == FieldKind::StrList {
                return Err(Error::Internal(
                    format!(
                        "{}: mongodb cannot compare list field {name}",
                        schema.collection
                    )
                    .into(),
                ));
            } else {
                keyset(name, *op, value_to_bson(v), id)
            }
        }
        Filter::IdIn(ids) => {
            if ids.is_empty() {
                Tr::Nothing
            } else {
                let ids = ids.iter().map(|s| Bson::String(s.clone())).collect();
                single(ID.to_owned(), "$in", Bson::Array(ids))
            }
        }
        Filter::Search(needle) => {
            if needle.is_empty() {
                Tr::All
            } else {
                single(
                    SEARCH.to_owned(),
                    "$regex",
                    Bson::String(escape_regex(needle)),
                )
            }
        }
        Filter::And(filters) => {
            let mut docs = Vec::new();
            let mut nothing = false;
            for f in filters {
                match translate(schema, f)? {
                    Tr::All => {}
                    Tr::Nothing => nothing = true,
                    Tr::Doc(d) => docs.push(d),
                }
            }
            if nothing {
                Tr::Nothing
            } else {
                combine("$and", docs, Tr::All)
            }
        }
        Filter::Or(filters) => {
            let mut docs = Vec::new();
            let mut all = false;
            for f in filters {
                match translate(schema, f)? {
                    Tr::All => all = true,
                    Tr::Nothing => {}
                    Tr::Doc(d) => docs.push(d),
                }
            }
            if all {
                Tr::All
            } else {
                combine("$or", docs, Tr::Nothing)
            }
        }
    })
}

/// `(field, id) op (value, id)`, as `field >= value` (or `<=`), which seeks the
/// `(p, field, id)` index straight to the key, and an `$or` that drops the rows equal to the
/// key on the wrong side of the id. Type bracketing keeps nulls out.
fn keyset(name: &str, op: CmpOp, value: Bson, id: &str) -> Tr {
    let (bound, strict) = match op {
        CmpOp::Gt | CmpOp::Gte => ("$gte", "$gt"),
        CmpOp::Lt | CmpOp::Lte => ("$lte", "$lt"),
    };
    let beyond = cond(field_path(name), strict, value.clone());
    let past_id = cond(ID.to_owned(), op_name(op), Bson::String(id.to_owned()));
    let mut seek = Document::new();
    seek.insert(bound, value);
    let mut d = Document::new();
    d.insert(field_path(name), seek);
    d.insert("$or", vec![beyond, past_id]);
    Tr::Doc(d)
}

/// `$and`/`$or` of `docs`; the single document itself if only one; `empty` if none.
fn combine(op: &str, mut docs: Vec<Document>, empty: Tr) -> Tr {
    match docs.len() {
        0 => empty,
        1 => docs.pop().map_or(empty, Tr::Doc),
        _ => {
            let mut d = Document::new();
            d.insert(op, docs.into_iter().map(Bson::Document).collect::<Vec<_>>());
            Tr::Doc(d)
        }
    }
}

/// Escapes `needle` into a regular expression that matches exactly that text, as a substring.
///
/// ASCII letters, digits and non-ASCII characters stand for themselves; every other ASCII
/// character is escaped: printable punctuation with a backslash (in PCRE a backslash before a
/// non-alphanumeric character is always that literal character), control characters as
/// `\x{hh}` (so no NUL ever reaches the server). The result has no quantifiers, groups,
/// classes or anchors, so matching is linear: no ReDoS.
pub(super) fn escape_regex(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() * 2);
    for c in needle.chars() {
        if c.is_ascii_alphanumeric() || !c.is_ascii() {
            out.push(c);
        } else if c.is_ascii_graphic() || c == ' ' {
            out.push('\\');
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:x}}}", u32::from(c)));
        }
    }
    out
}

/// The MongoDB sort document for `sort`: index fields and the id, with the id appended
/// ascending when absent (the reference sorts stably over id-ordered rows).
pub(super) fn sort_doc(schema: &Schema, sort: &[(SortKey, SortDirection)]) -> Result<Document> {
    let mut out = Document::new();
    for (key, dir) in sort {
        let path = match key {
            SortKey::Id => ID.to_owned(),
            SortKey::Field(name) => {
                if schema.field(name)?.kind == FieldKind::StrList {
                    return Err(Error::Internal(
                        format!("{}: cannot sort on list field {name}", schema.collection).into(),
                    ));
                }
                field_path(name)
            }
        };
        if out.contains_key(&path) {
            // A repeated key cannot reorder rows its first occurrence found equal.
            continue;
        }
        let order = match dir {
            SortDirection::Asc => 1,
            SortDirection::Desc => -1,
        };
        out.insert(path, order);
        if *key == SortKey::Id {
            // Ids are unique: later keys never matter.
            return Ok(out);
        }
    }
    out.insert(ID, 1);
    Ok(out)
}

/// The aggregation pipeline counting matching documents per value of `field`. List fields are
/// de-duplicated per document and unwound; the caller drops the null group. Each result
/// document is `{_id: <value>, n: <count>}`.
pub(super) fn facet_pipeline(
    schema: &Schema,
    partition: &Partition,
    field: &str,
    filter: &Filter,
) -> Result<Vec<Document>> {
    let kind = schema.field(field)?.kind;
    let path = format!("${}", field_path(field));
    let mut pipeline = vec![doc! { "$match": query_doc(schema, partition, filter)? }];
    if kind == FieldKind::StrList {
        pipeline.push(doc! { "$project": { "_id": 0, "v": { "$setUnion": [path, []] } } });
        pipeline.push(doc! { "$unwind": "$v" });
        pipeline.push(doc! { "$group": { "_id": "$v", "n": { "$sum": 1 } } });
    } else {
        pipeline.push(doc! { "$group": { "_id": path, "n": { "$sum": 1 } } });
    }
    Ok(pipeline)
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
        indexes: &[IndexDef {
            fields: &["s", "i"],
        }],
        unique: &[&["s"]],
    };

    fn f(filter: Filter) -> Document {
        filter_doc(&T, &filter).unwrap()
    }

    fn none() -> Document {
        doc! { "id": { "$in": [] } }
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn all_is_the_empty_query() {
        assert_eq!(f(Filter::All), doc! {});
    }

    #[test]
    fn eq_translates_per_kind() {
        assert_eq!(
            f(Filter::Eq("s", s("a"))),
            doc! { "f.s": { "$eq": "a", "$type": "string" } }
        );
        assert_eq!(
            f(Filter::Eq("i", Value::Int(7))),
            doc! { "f.i": { "$eq": 7_i64, "$type": "long" } }
        );
        assert_eq!(
            f(Filter::Eq("b", Value::Bool(false))),
            doc! { "f.b": { "$eq": false, "$type": "bool" } }
        );
        assert_eq!(
            f(Filter::Eq(
                "l",
                Value::StrList(vec!["x".into(), "y".into()])
            )),
            doc! { "f.l": { "$eq": ["x", "y"] } }
        );
        // The stored Int64 type is what is compared against.
        let d = f(Filter::Eq("i", Value::Int(7)));
        assert_eq!(
            d.get_document("f.i").unwrap().get("$eq"),
            Some(&Bson::Int64(7))
        );
    }

    #[test]
    fn equality_states_the_type_the_unique_indexes_filter_on() {
        // `s` is a unique group of T: its partial index filter must be implied, literally, by
        // an equality lookup, or the planner cannot use the index.
        let specs = crate::mongodb::codec::index_specs(&T).unwrap();
        let partial = specs.iter().find_map(|s| s.partial.clone()).unwrap();
        let eq = f(Filter::Eq("s", s("k")));
        assert_eq!(
            eq.get_document("f.s").unwrap().get("$type"),
            partial.get_document("f.s").unwrap().get("$type")
        );
        let r#in = f(Filter::In("s", vec![s("k")]));
        assert_eq!(
            r#in.get_document("f.s").unwrap().get("$type"),
            Some(&Bson::from("string"))
        );
    }

    #[test]
    fn eq_null_or_other_kind_matches_nothing() {
        assert_eq!(f(Filter::Eq("s", Value::Null)), none());
        assert_eq!(f(Filter::Eq("i", s("7"))), none());
        // MongoDB would match list *elements*; the reference never finds a Str equal to a list.
        assert_eq!(f(Filter::Eq("l", s("x"))), none());
    }

    #[test]
    fn in_drops_nulls_and_other_kinds() {
        assert_eq!(
            f(Filter::In(
                "s",
                vec![s("a"), Value::Null, Value::Int(1), s("b")]
            )),
            doc! { "f.s": { "$in": ["a", "b"], "$type": "string" } }
        );
        assert_eq!(f(Filter::In("s", vec![])), none());
        assert_eq!(f(Filter::In("s", vec![Value::Null])), none());
        assert_eq!(f(Filter::In("l", vec![s("x")])), none());
    }

    #[test]
    fn not_in_keeps_null_and_matches_null_fields() {
        assert_eq!(
            f(Filter::NotIn("s", vec![s("a")])),
            doc! { "f.s": { "$nin": ["a"] } }
        );
        assert_eq!(
            f(Filter::NotIn("b", vec![Value::Bool(true), Value::Null])),
            doc! { "f.b": { "$nin": [true, null] } }
        );
        assert_eq!(f(Filter::NotIn("s", vec![])), doc! {});
        assert_eq!(f(Filter::NotIn("l", vec![s("x")])), doc! {});
        assert_eq!(f(Filter::NotIn("i", vec![s("1")])), doc! {});
    }

    #[test]
    fn has_any_only_on_lists() {
        assert_eq!(
            f(Filter::HasAny("l", vec!["x".into(), "y".into()])),
            doc! { "f.l": { "$in": ["x", "y"] } }
        );
        assert_eq!(f(Filter::HasAny("l", vec![])), none());
        assert_eq!(f(Filter::HasAny("s", vec!["x".into()])), none());
    }

    #[test]
    fn cmp_translates_every_operator() {
        assert_eq!(
            f(Filter::Cmp("i", CmpOp::Gt, Value::Int(0))),
            doc! { "f.i": { "$gt": 0_i64 } }
        );
        assert_eq!(
            f(Filter::Cmp("i", CmpOp::Gte, Value::Int(0))),
            doc! { "f.i": { "$gte": 0_i64 } }
        );
        assert_eq!(
            f(Filter::Cmp("s", CmpOp::Lt, s("b"))),
            doc! { "f.s": { "$lt": "b" } }
        );
        assert_eq!(
            f(Filter::Cmp("b", CmpOp::Lte, Value::Bool(true))),
            doc! { "f.b": { "$lte": true } }
        );
    }

    #[test]
    fn cmp_against_null_or_other_kinds_follows_the_value_order() {
        // Every non-null value is greater than null; null fields never match.
        assert_eq!(
            f(Filter::Cmp("i", CmpOp::Gt, Value::Null)),
            doc! { "f.i": { "$ne": null } }
        );
        assert_eq!(
            f(Filter::Cmp("i", CmpOp::Gte, Value::Null)),
            doc! { "f.i": { "$ne": null } }
        );
        assert_eq!(f(Filter::Cmp("i", CmpOp::Lt, Value::Null)), none());
        assert_eq!(f(Filter::Cmp("i", CmpOp::Lte, Value::Null)), none());
        // Bool < Int < Str in the reference order.
        assert_eq!(
            f(Filter::Cmp("i", CmpOp::Lt, s("x"))),
            doc! { "f.i": { "$ne": null } }
        );
        assert_eq!(f(Filter::Cmp("i", CmpOp::Gt, s("x"))), none());
        assert_eq!(
            f(Filter::Cmp("s", CmpOp::Gte, Value::Bool(true))),
            doc! { "f.s": { "$ne": null } }
        );
    }

    #[test]
    fn cmp_on_a_list_field_is_refused() {
        let err = filter_doc(&T, &Filter::Cmp("l", CmpOp::Gt, Value::StrList(vec![]))).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err:?}");
    }

    #[test]
    fn null_tests() {
        assert_eq!(f(Filter::IsNull("s")), doc! { "f.s": { "$eq": null } });
        assert_eq!(f(Filter::NotNull("l")), doc! { "f.l": { "$ne": null } });
    }

    #[test]
    fn id_filters() {
        assert_eq!(
            f(Filter::IdCmp(CmpOp::Gt, "d050".into())),
            doc! { "id": { "$gt": "d050" } }
        );
        assert_eq!(
            f(Filter::IdCmp(CmpOp::Lte, "d020".into())),
            doc! { "id": { "$lte": "d020" } }
        );
        assert_eq!(
            f(Filter::IdIn(vec!["a".into(), "b".into()])),
            doc! { "id": { "$in": ["a", "b"] } }
        );
        assert_eq!(f(Filter::IdIn(vec![])), none());
    }

    #[test]
    fn search_is_an_escaped_literal() {
        assert_eq!(
            f(Filter::Search("acme".into())),
            doc! { "s": { "$regex": "acme" } }
        );
        assert_eq!(
            f(Filter::Search("mail.(corp)".into())),
            doc! { "s": { "$regex": "mail\\.\\(corp\\)" } }
        );
        assert_eq!(f(Filter::Search(String::new())), doc! {});
    }

    #[test]
    fn regex_escaping_covers_every_metacharacter() {
        assert_eq!(
            escape_regex(".*+?()[]{}|^$\\"),
            "\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\\\"
        );
        assert_eq!(escape_regex("[a-z]*+?"), "\\[a\\-z\\]\\*\\+\\?");
        assert_eq!(escape_regex("back\\slash"), "back\\\\slash");
        assert_eq!(escape_regex("100% a_b #x/y"), "100\\%\\ a\\_b\\ \\#x\\/y");
        assert_eq!(escape_regex("ähnlich"), "ähnlich");
        assert_eq!(
            escape_regex("a\u{0}b\u{1f}\n\u{7f}"),
            "a\\x{0}b\\x{1f}\\x{a}\\x{7f}"
        );
        assert_eq!(escape_regex(""), "");
    }

    #[test]
    fn escaped_patterns_contain_no_unescaped_metacharacter() {
        // Every ASCII character, escaped: each metacharacter is preceded by a backslash that
        // is itself not escaped, and nothing outside `[A-Za-z0-9]` appears bare.
        let all: String = (0u8..128).map(char::from).collect();
        let escaped = escape_regex(&all);
        let mut chars = escaped.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let next = chars.next().unwrap();
                if next == 'x' {
                    assert_eq!(chars.next(), Some('{'));
                    let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let code = u32::from_str_radix(&hex, 16).unwrap();
                    assert!(
                        code < 0x20 || code == 0x7f,
                        "only controls are hex-escaped: {code:x}"
                    );
                } else {
                    assert!(
                        !next.is_ascii_alphanumeric(),
                        "a backslash before {next} is an escape sequence"
                    );
                }
            } else {
                assert!(c.is_ascii_alphanumeric(), "bare {c:?}");
            }
        }
    }

    #[test]
    fn and_or_nest_and_simplify() {
        let and = f(Filter::And(vec![
            Filter::Eq("s", s("a")),
            Filter::Cmp("i", CmpOp::Gte, Value::Int(0)),
        ]));
        assert_eq!(
            and,
            doc! { "$and": [{ "f.s": { "$eq": "a", "$type": "string" } }, { "f.i": { "$gte": 0_i64 } }] }
        );

        let nested = f(Filter::Or(vec![
            Filter::IsNull("s"),
            Filter::And(vec![
                Filter::Eq("b", Value::Bool(true)),
                Filter::HasAny("l", vec!["z".into()]),
            ]),
        ]));
        assert_eq!(
            nested,
            doc! { "$or": [
                { "f.s": { "$eq": null } },
                { "$and": [{ "f.b": { "$eq": true, "$type": "bool" } }, { "f.l": { "$in": ["z"] } }] },
            ] }
        );

        // Empty groups never reach the server.
        assert_eq!(f(Filter::And(vec![])), doc! {});
        assert_eq!(f(Filter::Or(vec![])), none());
        // Constants fold.
        assert_eq!(
            f(Filter::And(vec![Filter::All, Filter::IsNull("s")])),
            doc! { "f.s": { "$eq": null } }
        );
        assert_eq!(
            f(Filter::And(vec![
                Filter::IsNull("s"),
                Filter::In("s", vec![])
            ])),
            none()
        );
        assert_eq!(
            f(Filter::Or(vec![Filter::IsNull("s"), Filter::All])),
            doc! {}
        );
        assert_eq!(
            f(Filter::Or(vec![
                Filter::In("s", vec![]),
                Filter::IsNull("s")
            ])),
            doc! { "f.s": { "$eq": null } }
        );
    }

    #[test]
    fn keyset_shaped_filters() {
        // Ascending after a non-null key: (s > k) or (s = k and id > c).
        let asc = Filter::Or(vec![
            Filter::Cmp("s", CmpOp::Gt, s("k")),
            Filter::And(vec![
                Filter::Eq("s", s("k")),
                Filter::IdCmp(CmpOp::Gt, "c".into()),
            ]),
        ]);
        assert_eq!(
            f(asc),
            doc! { "$or": [
                { "f.s": { "$gt": "k" } },
                { "$and": [{ "f.s": { "$eq": "k", "$type": "string" } }, { "id": { "$gt": "c" } }] },
            ] }
        );
        // Ascending after a null key: (s is null and id > c) or s is not null.
        let asc_null = Filter::Or(vec![
            Filter::And(vec![
                Filter::IsNull("s"),
                Filter::IdCmp(CmpOp::Gt, "c".into()),
            ]),
            Filter::NotNull("s"),
        ]);
        assert_eq!(
            f(asc_null),
            doc! { "$or": [
                { "$and": [{ "f.s": { "$eq": null } }, { "id": { "$gt": "c" } }] },
                { "f.s": { "$ne": null } },
            ] }
        );
        // Descending after a non-null key also admits the nulls (they come last).
        let desc = Filter::Or(vec![
            Filter::Cmp("i", CmpOp::Lt, Value::Int(5)),
            Filter::IsNull("i"),
            Filter::And(vec![
                Filter::Eq("i", Value::Int(5)),
                Filter::IdCmp(CmpOp::Lt, "c".into()),
            ]),
        ]);
        assert_eq!(
            f(desc),
            doc! { "$or": [
                { "f.i": { "$lt": 5_i64 } },
                { "f.i": { "$eq": null } },
                { "$and": [{ "f.i": { "$eq": 5_i64, "$type": "long" } }, { "id": { "$lt": "c" } }] },
            ] }
        );
    }

    #[test]
    fn keyset_comparisons_seek_then_skip_by_id() {
        assert_eq!(
            f(Filter::KeysetCmp("s", CmpOp::Gt, s("k"), "c".into())),
            doc! { "f.s": { "$gte": "k" }, "$or": [{ "f.s": { "$gt": "k" } }, { "id": { "$gt": "c" } }] }
        );
        assert_eq!(
            f(Filter::KeysetCmp(
                "i",
                CmpOp::Gte,
                Value::Int(0),
                "c".into()
            )),
            doc! { "f.i": { "$gte": 0_i64 }, "$or": [{ "f.i": { "$gt": 0_i64 } }, { "id": { "$gte": "c" } }] }
        );
        assert_eq!(
            f(Filter::KeysetCmp(
                "b",
                CmpOp::Lt,
                Value::Bool(true),
                "c".into()
            )),
            doc! { "f.b": { "$lte": true }, "$or": [{ "f.b": { "$lt": true } }, { "id": { "$lt": "c" } }] }
        );
        assert_eq!(
            f(Filter::KeysetCmp(
                "i",
                CmpOp::Lte,
                Value::Int(7),
                "c".into()
            )),
            doc! { "f.i": { "$lte": 7_i64 }, "$or": [{ "f.i": { "$lt": 7_i64 } }, { "id": { "$lte": "c" } }] }
        );
        // A null key matches nothing; another kind never ties, so it is a plain comparison.
        assert_eq!(
            f(Filter::KeysetCmp("i", CmpOp::Gt, Value::Null, "c".into())),
            none()
        );
        assert_eq!(
            f(Filter::KeysetCmp("i", CmpOp::Lt, Value::Null, "c".into())),
            none()
        );
        assert_eq!(
            f(Filter::KeysetCmp("i", CmpOp::Lt, s("x"), "c".into())),
            doc! { "f.i": { "$ne": null } }
        );
        assert_eq!(
            f(Filter::KeysetCmp("i", CmpOp::Gt, s("x"), "c".into())),
            none()
        );
        let err = filter_doc(
            &T,
            &Filter::KeysetCmp("l", CmpOp::Gt, Value::StrList(vec![]), "c".into()),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err:?}");
        // Nested in paging's descending shape, and confined to the partition.
        let desc = Filter::Or(vec![
            Filter::KeysetCmp("i", CmpOp::Lt, Value::Int(5), "c".into()),
            Filter::IsNull("i"),
        ]);
        assert_eq!(
            query_doc(&T, &Partition::platform(), &desc).unwrap(),
            doc! { "p": "_platform", "$or": [
                { "f.i": { "$lte": 5_i64 }, "$or": [{ "f.i": { "$lt": 5_i64 } }, { "id": { "$lt": "c" } }] },
                { "f.i": { "$eq": null } },
            ] }
        );
        assert_eq!(
            query_doc(
                &T,
                &Partition::platform(),
                &Filter::KeysetCmp("s", CmpOp::Gt, s("k"), "c".into())
            )
            .unwrap(),
            doc! { "p": "_platform", "f.s": { "$gte": "k" }, "$or": [{ "f.s": { "$gt": "k" } }, { "id": { "$gt": "c" } }] }
        );
    }

    #[test]
    fn unknown_fields_are_internal_errors() {
        for filter in [
            Filter::Eq("nope", s("a")),
            Filter::In("nope", vec![]),
            Filter::NotIn("nope", vec![]),
            Filter::HasAny("nope", vec![]),
            Filter::Cmp("nope", CmpOp::Gt, Value::Int(1)),
            Filter::KeysetCmp("nope", CmpOp::Gt, Value::Int(1), "c".into()),
            Filter::IsNull("nope"),
            Filter::NotNull("nope"),
            Filter::And(vec![Filter::All, Filter::IsNull("nope")]),
            Filter::Or(vec![Filter::All, Filter::IsNull("nope")]),
        ] {
            let err = filter_doc(&T, &filter).unwrap_err();
            assert!(matches!(err, Error::Internal(_)), "{filter:?}: {err:?}");
        }
        let err = sort_doc(&T, &[(SortKey::Field("nope"), SortDirection::Asc)]).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err:?}");
        let err = facet_pipeline(&T, &Partition::platform(), "nope", &Filter::All).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err:?}");
    }

    #[test]
    fn queries_are_confined_to_the_partition() {
        let p = Partition::platform();
        assert_eq!(
            query_doc(&T, &p, &Filter::All).unwrap(),
            doc! { "p": "_platform" }
        );
        assert_eq!(
            query_doc(&T, &p, &Filter::Eq("s", s("a"))).unwrap(),
            doc! { "p": "_platform", "f.s": { "$eq": "a", "$type": "string" } }
        );
        assert_eq!(
            query_doc(&T, &p, &Filter::Or(vec![])).unwrap(),
            doc! { "p": "_platform", "id": { "$in": [] } }
        );
        let or = query_doc(
            &T,
            &p,
            &Filter::Or(vec![Filter::IsNull("s"), Filter::IsNull("i")]),
        )
        .unwrap();
        assert_eq!(or.get_str("p").unwrap(), "_platform");
        assert_eq!(or.len(), 2);
    }

    #[test]
    fn sorts_map_to_paths_and_end_with_the_id() {
        use SortDirection::{Asc, Desc};
        assert_eq!(sort_doc(&T, &[]).unwrap(), doc! { "id": 1 });
        assert_eq!(
            sort_doc(&T, &[(SortKey::Field("s"), Asc), (SortKey::Id, Asc)]).unwrap(),
            doc! { "f.s": 1, "id": 1 }
        );
        // Descending: MongoDB puts nulls last descending and first ascending, as required.
        assert_eq!(
            sort_doc(&T, &[(SortKey::Field("i"), Desc), (SortKey::Id, Desc)]).unwrap(),
            doc! { "f.i": -1, "id": -1 }
        );
        // Without an id key, the id breaks ties ascending (the reference's stable order).
        assert_eq!(
            sort_doc(&T, &[(SortKey::Field("b"), Desc)]).unwrap(),
            doc! { "f.b": -1, "id": 1 }
        );
        // Keys after the id, and repeated keys, cannot change the order.
        assert_eq!(
            sort_doc(&T, &[(SortKey::Id, Desc), (SortKey::Field("s"), Asc)]).unwrap(),
            doc! { "id": -1 }
        );
        assert_eq!(
            sort_doc(
                &T,
                &[(SortKey::Field("s"), Asc), (SortKey::Field("s"), Desc)]
            )
            .unwrap(),
            doc! { "f.s": 1, "id": 1 }
        );
        let err = sort_doc(&T, &[(SortKey::Field("l"), Asc)]).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err:?}");
    }

    #[test]
    fn facet_pipelines() {
        let p = Partition::platform();
        assert_eq!(
            facet_pipeline(&T, &p, "s", &Filter::Eq("b", Value::Bool(true))).unwrap(),
            vec![
                doc! { "$match": { "p": "_platform", "f.b": { "$eq": true, "$type": "bool" } } },
                doc! { "$group": { "_id": "$f.s", "n": { "$sum": 1 } } },
            ]
        );
        assert_eq!(
            facet_pipeline(&T, &p, "l", &Filter::All).unwrap(),
            vec![
                doc! { "$match": { "p": "_platform" } },
                doc! { "$project": { "_id": 0, "v": { "$setUnion": ["$f.l", []] } } },
                doc! { "$unwind": "$v" },
                doc! { "$group": { "_id": "$v", "n": { "$sum": 1 } } },
            ]
        );
    }
}
