//! The filter language over index fields, and its reference evaluation in Rust.

use std::cmp::Ordering;

use openframe_core::{Result, SortDirection};

use super::{Schema, SortKey, StoredDoc, Value};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

impl CmpOp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Self::Gt => ord == Ordering::Greater,
            Self::Gte => ord != Ordering::Less,
            Self::Lt => ord == Ordering::Less,
            Self::Lte => ord != Ordering::Greater,
        }
    }
}

/// A predicate over a document's index fields.
///
/// Comparisons against a field never match a null field value (as in SQL and MongoDB);
/// null is tested with [`Filter::IsNull`].
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every document.
    All,
    /// Field equals a non-null value.
    Eq(&'static str, Value),
    /// Field is one of the values (none: matches nothing).
    In(&'static str, Vec<Value>),
    /// Field is none of the values (a null field matches).
    NotIn(&'static str, Vec<Value>),
    /// A list field contains at least one of the strings.
    HasAny(&'static str, Vec<String>),
    /// Field compares to a non-null value.
    Cmp(&'static str, CmpOp, Value),
    /// Field is null.
    IsNull(&'static str),
    /// Field is not null.
    NotNull(&'static str),
    /// Document id compares to a value.
    IdCmp(CmpOp, String),
    /// The pair `(field, id)` compares lexicographically to `(value, id)`; never matches a
    /// null field. The seekable keyset condition of cursor paging.
    KeysetCmp(&'static str, CmpOp, Value, String),
    /// Document id is one of.
    IdIn(Vec<String>),
    /// The search text contains this lowercased literal (no pattern syntax).
    Search(String),
    /// All of.
    And(Vec<Filter>),
    /// Any of.
    Or(Vec<Filter>),
}

impl Filter {
    /// `All` if `filters` is empty, the single filter if one, else `And`.
    pub fn and(filters: Vec<Filter>) -> Filter {
        let mut flat: Vec<Filter> = Vec::with_capacity(filters.len());
        for f in filters {
            match f {
                Filter::All => {}
                Filter::And(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Filter::All,
            1 => flat.pop().unwrap_or(Filter::All),
            _ => Filter::And(flat),
        }
    }

    /// Whether the filter (or any part of it) is a [`Filter::Search`].
    pub fn uses_search(&self) -> bool {
        match self {
            Filter::Search(_) => true,
            Filter::And(fs) | Filter::Or(fs) => fs.iter().any(Filter::uses_search),
            _ => false,
        }
    }

    /// Evaluates the filter against a document (the reference semantics every backend
    /// must reproduce).
    pub fn matches(&self, schema: &Schema, doc: &StoredDoc) -> Result<bool> {
        let field = |name: &str| -> Result<&Value> { Ok(&doc.fields[schema.position(name)?]) };
        Ok(match self {
            Filter::All => true,
            Filter::Eq(f, v) => {
                let x = field(f)?;
                *x != Value::Null && x == v
            }
            Filter::In(f, vs) => {
                let x = field(f)?;
                *x != Value::Null && vs.contains(x)
            }
            Filter::NotIn(f, vs) => !vs.contains(field(f)?),
            Filter::HasAny(f, vs) => match field(f)? {
                Value::StrList(items) => items.iter().any(|i| vs.contains(i)),
                _ => false,
            },
            Filter::Cmp(f, op, v) => {
                let x = field(f)?;
                *x != Value::Null && op.holds(x.cmp(v))
            }
            Filter::IsNull(f) => *field(f)? == Value::Null,
            Filter::NotNull(f) => *field(f)? != Value::Null,
            Filter::IdCmp(op, id) => op.holds(doc.id.as_str().cmp(id.as_str())),
            Filter::KeysetCmp(f, op, v, id) => {
                let x = field(f)?;
                *x != Value::Null
                    && *v != Value::Null
                    && op.holds(x.cmp(v).then_with(|| doc.id.as_str().cmp(id.as_str())))
            }
            Filter::IdIn(ids) => ids.contains(&doc.id),
            Filter::Search(needle) => doc.search.contains(needle.as_str()),
            Filter::And(fs) => {
                for f in fs {
                    if !f.matches(schema, doc)? {
                        return Ok(false);
                    }
                }
                true
            }
            Filter::Or(fs) => {
                for f in fs {
                    if f.matches(schema, doc)? {
                        return Ok(true);
                    }
                }
                false
            }
        })
    }
}

/// Orders two documents by `sort` (nulls first ascending, last descending). The reference
/// ordering every backend must reproduce.
pub fn compare_docs(
    schema: &Schema,
    sort: &[(SortKey, SortDirection)],
    a: &StoredDoc,
    b: &StoredDoc,
) -> Result<Ordering> {
    for (key, dir) in sort {
        let ord = match key {
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::Field(name) => {
                let i = schema.position(name)?;
                a.fields[i].cmp(&b.fields[i])
            }
        };
        let ord = match dir {
            SortDirection::Asc => ord,
            SortDirection::Desc => ord.reverse(),
        };
        if ord != Ordering::Equal {
            return Ok(ord);
        }
    }
    Ok(Ordering::Equal)
}
