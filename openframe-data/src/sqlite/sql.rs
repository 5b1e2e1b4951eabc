//! Translation of the filter language to SQLite SQL with bound parameters.

use openframe_core::{Error, Result, SortDirection};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Row, ToSql};

use crate::store::{
    CmpOp, FieldKind, Filter, FindQuery, Partition, Schema, SortKey, StoredDoc, Value,
};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    Null,
    Int(i64),
    Text(String),
}

impl Param {
    pub(super) fn from_value(v: &Value) -> Result<Self> {
        Ok(match v {
            Value::Null => Param::Null,
            Value::Bool(b) => Param::Int(i64::from(*b)),
            Value::Int(i) => Param::Int(*i),
            Value::Str(s) => Param::Text(s.clone()),
            Value::StrList(items) => Param::Text(
                serde_json::to_string(items)
                    .map_err(|e| Error::Internal(format!("list encoding: {e}").into()))?,
            ),
        })
    }
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn ident_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The table of a collection, validated as an identifier.
pub(super) fn table(schema: &Schema) -> Result<String> {
    if !ident_ok(schema.collection) {
        return Err(Error::Internal(
            format!("invalid collection name {:?}", schema.collection).into(),
        ));
    }
    Ok(format!("c_{}", schema.collection))
}

/// The column of an index field, validated as an identifier.
pub(super) fn column(field: &str) -> Result<String> {
    if !ident_ok(field) {
        return Err(Error::Internal(
            format!("invalid field name {field:?}").into(),
        ));
    }
    Ok(format!("f_{field}"))
}

pub(super) fn column_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Str | FieldKind::StrList => "TEXT",
        FieldKind::Int | FieldKind::Bool => "INTEGER",
    }
}

pub(super) fn select_list(schema: &Schema) -> Result<String> {
    let mut cols = vec![
        "id".to_owned(),
        "v".to_owned(),
        "s".to_owned(),
        "b".to_owned(),
    ];
    for f in schema.fields {
        cols.push(column(f.name)?);
    }
    Ok(cols.join(", "))
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    Error::backend("sqlite", e)
}

/// Reads one index value of `kind` from column `idx`.
pub(super) fn read_scalar(kind: FieldKind, row: &Row<'_>, idx: usize) -> Result<Value> {
    let raw = row.get_ref(idx).map_err(sqlite_err)?;
    Ok(match (kind, raw) {
        (_, ValueRef::Null) => Value::Null,
        (FieldKind::Int, ValueRef::Integer(i)) => Value::Int(i),
        (FieldKind::Bool, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (FieldKind::Str, ValueRef::Text(t)) => Value::Str(String::from_utf8_lossy(t).into_owned()),
        // Facets over list fields yield the unwound text items.
        (FieldKind::StrList, ValueRef::Text(t)) => {
            Value::Str(String::from_utf8_lossy(t).into_owned())
        }
        _ => {
            return Err(Error::Internal(
                "unexpected column type in sqlite row".into(),
            ));
        }
    })
}

/// Reads a row produced by [`SqlBuilder::scan_fields`]: id and index fields, no body.
pub(super) fn read_fields(schema: &Schema, row: &Row<'_>) -> Result<StoredDoc> {
    Ok(StoredDoc {
        id: row.get(0).map_err(sqlite_err)?,
        version: 0,
        fields: read_field_values(schema, row, 1)?,
        search: String::new(),
        body: String::new(),
    })
}

fn read_field_values(schema: &Schema, row: &Row<'_>, offset: usize) -> Result<Vec<Value>> {
    let mut fields = Vec::with_capacity(schema.fields.len());
    for (i, f) in schema.fields.iter().enumerate() {
        let v = if f.kind == FieldKind::StrList {
            match row.get_ref(offset + i).map_err(sqlite_err)? {
                ValueRef::Null => Value::Null,
                ValueRef::Text(t) => Value::StrList(
                    serde_json::from_slice(t)
                        .map_err(|_| Error::Internal("corrupt list column".into()))?,
                ),
                _ => return Err(Error::Internal("corrupt list column".into())),
            }
        } else {
            read_scalar(f.kind, row, offset + i)?
        };
        fields.push(v);
    }
    Ok(fields)
}

/// Reads a row produced with [`select_list`].
pub(super) fn read_doc(schema: &Schema, row: &Row<'_>) -> Result<StoredDoc> {
    let version: i64 = row.get(1).map_err(sqlite_err)?;
    let fields = read_field_values(schema, row, 4)?;
    Ok(StoredDoc {
        id: row.get(0).map_err(sqlite_err)?,
        version: u64::try_from(version).unwrap_or(0),
        search: row.get(2).map_err(sqlite_err)?,
        body: row.get(3).map_err(sqlite_err)?,
        fields,
    })
}

/// Builds one statement and collects its parameters in order.
pub(super) struct SqlBuilder<'a> {
    schema: &'a Schema,
    params: Vec<Param>,
}

impl<'a> SqlBuilder<'a> {
    pub(super) fn new(schema: &'a Schema, partition: &Partition) -> Self {
        Self {
            schema,
            params: vec![Param::Text(partition.as_str().to_owned())],
        }
    }

    pub(super) fn into_params(self) -> Vec<Param> {
        self.params
    }

    pub(super) fn find(&mut self, query: &FindQuery) -> Result<String> {
        let where_ = self.filter(&query.filter)?;
        let mut order = Vec::with_capacity(query.sort.len());
        for (key, dir) in &query.sort {
            let col = match key {
                SortKey::Id => "id".to_owned(),
                SortKey::Field(f) => {
                    if self.schema.field(f)?.kind == FieldKind::StrList {
                        return Err(Error::Internal("cannot sort on a list field".into()));
                    }
                    column(f)?
                }
            };
            order.push(format!(
                "{col} {}",
                if *dir == SortDirection::Asc {
                    "ASC"
                } else {
                    "DESC"
                }
            ));
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        self.params.push(Param::Int(limit));
        Ok(format!(
            "SELECT {} FROM {} WHERE p = ?1 AND {where_}{}{} LIMIT ?{}",
            select_list(self.schema)?,
            table(self.schema)?,
            if order.is_empty() { "" } else { " ORDER BY " },
            order.join(", "),
            self.params.len()
        ))
    }

    pub(super) fn count(&mut self, filter: &Filter) -> Result<String> {
        let where_ = self.filter(filter)?;
        Ok(format!(
            "SELECT COUNT(*) FROM {} WHERE p = ?1 AND {where_}",
            table(self.schema)?
        ))
    }

    /// Selects the id and every index field of the rows matching `filter` (no body).
    pub(super) fn scan_fields(&mut self, filter: &Filter) -> Result<String> {
        let where_ = self.filter(filter)?;
        let mut cols = vec!["id".to_owned()];
        for f in self.schema.fields {
            cols.push(column(f.name)?);
        }
        Ok(format!(
            "SELECT {} FROM {} WHERE p = ?1 AND {where_}",
            cols.join(", "),
            table(self.schema)?
        ))
    }

    pub(super) fn facet(&mut self, field: &str, filter: &Filter) -> Result<String> {
        let where_ = self.filter(filter)?;
        let col = column(field)?;
        let t = table(self.schema)?;
        Ok(if self.schema.field(field)?.kind == FieldKind::StrList {
            format!(
                "SELECT j.value, COUNT(*) FROM {t}, json_each({t}.{col}) AS j WHERE {t}.p = ?1 AND {where_} GROUP BY j.value"
            )
        } else {
            format!(
                "SELECT {col}, COUNT(*) FROM {t} WHERE p = ?1 AND {col} IS NOT NULL AND {where_} GROUP BY {col}"
            )
        })
    }

    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("?{}", self.params.len())
    }

    fn scalar_col(&self, field: &str) -> Result<String> {
        if self.schema.field(field)?.kind == FieldKind::StrList {
            return Err(Error::Internal(
                format!("{field} is a list field: use HasAny").into(),
            ));
        }
        // Qualified, so the facet join over json_each cannot shadow it.
        Ok(format!("{}.{}", table(self.schema)?, column(field)?))
    }

    fn list(&mut self, values: &[Value]) -> Result<String> {
        let marks: Vec<String> = values
            .iter()
            .map(|v| Param::from_value(v).map(|p| self.bind(p)))
            .collect::<Result<_>>()?;
        Ok(marks.join(", "))
    }

    /// The SQL condition for `filter`.
    pub(super) fn filter(&mut self, filter: &Filter) -> Result<String> {
        Ok(match filter {
            Filter::All => "1".to_owned(),
            Filter::Eq(f, v)
            | Filter::Cmp(f, CmpOp::Gte | CmpOp::Gt | CmpOp::Lt | CmpOp::Lte, v)
                if *v == Value::Null =>
            {
                let _ = self.scalar_col(f)?;
                "0".to_owned()
            }
            Filter::Eq(f, v) => {
                let col = self.scalar_col(f)?;
                format!("{col} = {}", self.bind(Param::from_value(v)?))
            }
            Filter::In(f, vs) => {
                let col = self.scalar_col(f)?;
                if vs.is_empty() {
                    "0".to_owned()
                } else {
                    format!("{col} IN ({})", self.list(vs)?)
                }
            }
            Filter::NotIn(f, vs) => {
                let col = self.scalar_col(f)?;
                if vs.is_empty() {
                    "1".to_owned()
                } else {
                    format!("({col} IS NULL OR {col} NOT IN ({}))", self.list(vs)?)
                }
            }
            Filter::HasAny(f, items) => {
                if self.schema.field(f)?.kind != FieldKind::StrList {
                    return Err(Error::Internal(format!("{f} is not a list field").into()));
                }
                if items.is_empty() {
                    "0".to_owned()
                } else {
                    let col = format!("{}.{}", table(self.schema)?, column(f)?);
                    let values: Vec<Value> = items.iter().map(Value::str).collect();
                    format!(
                        "EXISTS (SELECT 1 FROM json_each({col}) AS h WHERE h.value IN ({}))",
                        self.list(&values)?
                    )
                }
            }
            Filter::Cmp(f, op, v) => {
                let col = self.scalar_col(f)?;
                format!("{col} {} {}", sql_op(*op), self.bind(Param::from_value(v)?))
            }
            Filter::IsNull(f) => format!("{} IS NULL", self.scalar_col(f)?),
            Filter::NotNull(f) => format!("{} IS NOT NULL", self.scalar_col(f)?),
            Filter::IdCmp(op, id) => {
                let t = table(self.schema)?;
                format!(
                    "{t}.id {} {}",
                    sql_op(*op),
                    self.bind(Param::Text(id.clone()))
                )
            }
            Filter::KeysetCmp(f, op, v, id) => {
                let col = self.scalar_col(f)?;
                if *v == Value::Null {
                    "0".to_owned()
                } else {
                    // A row-value comparison: SQLite seeks the (p, field, id) index to it.
                    let t = table(self.schema)?;
                    let key = self.bind(Param::from_value(v)?);
                    let id = self.bind(Param::Text(id.clone()));
                    format!("({col}, {t}.id) {} ({key}, {id})", sql_op(*op))
                }
            }
            Filter::IdIn(ids) => {
                if ids.is_empty() {
                    "0".to_owned()
                } else {
                    let t = table(self.schema)?;
                    let values: Vec<Value> = ids.iter().map(Value::str).collect();
                    format!("{t}.id IN ({})", self.list(&values)?)
                }
            }
            Filter::Search(needle) => {
                // instr() is a literal substring test: no pattern characters, no escaping.
                let t = table(self.schema)?;
                format!(
                    "instr({t}.s, {}) > 0",
                    self.bind(Param::Text(needle.clone()))
                )
            }
            Filter::And(fs) => self.join(fs, " AND ", "1")?,
            Filter::Or(fs) => self.join(fs, " OR ", "0")?,
        })
    }

    fn join(&mut self, filters: &[Filter], sep: &str, empty: &str) -> Result<String> {
        if filters.is_empty() {
            return Ok(empty.to_owned());
        }
        let parts: Vec<String> = filters
            .iter()
            .map(|f| self.filter(f))
            .collect::<Result<_>>()?;
        Ok(format!("({})", parts.join(sep)))
    }
}

fn sql_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Gt => ">",
        CmpOp::Gte => ">=",
        CmpOp::Lt => "<",
        CmpOp::Lte => "<=",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::probe::PROBE;

    fn sql(filter: &Filter) -> (String, Vec<Param>) {
        let mut b = SqlBuilder::new(&PROBE, &Partition::platform());
        let s = b.filter(filter).unwrap();
        (s, b.into_params())
    }

    #[test]
    fn values_are_bound_never_inlined() {
        let (s, params) = sql(&Filter::Eq("s", Value::str("x' OR 1=1 --")));
        assert_eq!(s, "c_conformance_probe.f_s = ?2");
        assert_eq!(params[1], Param::Text("x' OR 1=1 --".into()));
    }

    #[test]
    fn not_in_admits_null_and_empty_lists_are_constant() {
        assert_eq!(
            sql(&Filter::NotIn("s", vec![Value::str("a")])).0,
            "(c_conformance_probe.f_s IS NULL OR c_conformance_probe.f_s NOT IN (?2))"
        );
        assert_eq!(sql(&Filter::In("s", vec![])).0, "0");
        assert_eq!(sql(&Filter::Or(vec![])).0, "0");
        assert_eq!(sql(&Filter::And(vec![])).0, "1");
    }

    #[test]
    fn unknown_fields_are_internal_errors() {
        let mut b = SqlBuilder::new(&PROBE, &Partition::platform());
        assert!(matches!(
            b.filter(&Filter::IsNull("nope")),
            Err(Error::Internal(_))
        ));
        assert!(matches!(
            b.filter(&Filter::Eq("l", Value::str("x"))),
            Err(Error::Internal(_))
        ));
    }
}
