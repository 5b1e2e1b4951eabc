//! Collection schemas: the index fields backends materialize as columns or indexed keys.

use openframe_core::{Error, Result};

/// The type of an index field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text.
    Str,
    /// 64-bit integer (timestamps as epoch milliseconds).
    Int,
    /// Boolean.
    Bool,
    /// A list of strings (filtered by "has any", unwound by facets).
    StrList,
}

/// One index field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Field name; `[a-z_]+`, used verbatim as a column or key name.
    pub name: &'static str,
    /// Field type.
    pub kind: FieldKind,
    /// Whether the value may be null. Sorting on a non-null field pages with a single
    /// seekable `(field, id)` comparison.
    pub nullable: bool,
}

impl FieldDef {
    /// A field that always has a value (checked on every write).
    pub const fn required(name: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            kind,
            nullable: false,
        }
    }

    /// A field that may be null.
    pub const fn optional(name: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            kind,
            nullable: true,
        }
    }
}

/// A secondary index: the partition is implicitly the first key and the id the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    /// Indexed fields in order.
    pub fields: &'static [&'static str],
}

/// A collection: its name, index fields, secondary indexes and unique groups.
#[derive(Debug, PartialEq, Eq)]
pub struct Schema {
    /// Collection name; `[a-z_]+`.
    pub collection: &'static str,
    /// The entity name used in errors (`"machine"`).
    pub entity: &'static str,
    /// Index fields.
    pub fields: &'static [FieldDef],
    /// Secondary indexes, one per list-query shape.
    pub indexes: &'static [IndexDef],
    /// Unique groups within a partition; a group is enforced only when all its values are
    /// non-null (so a soft-deleted row can null its key and free the name).
    pub unique: &'static [&'static [&'static str]],
}

impl Schema {
    /// Position of `field` in [`Schema::fields`].
    pub fn position(&self, field: &str) -> Result<usize> {
        self.fields
            .iter()
            .position(|f| f.name == field)
            .ok_or_else(|| {
                Error::Internal(format!("{}: unknown index field {field}", self.collection).into())
            })
    }

    /// The definition of `field`.
    pub fn field(&self, field: &str) -> Result<&FieldDef> {
        self.position(field).map(|i| &self.fields[i])
    }

    /// A short fingerprint of the layout, recorded by migrations.
    pub fn fingerprint(&self) -> String {
        let mut s = String::from(self.collection);
        for f in self.fields {
            s.push_str(&format!("|{}:{:?}:{}", f.name, f.kind, f.nullable));
        }
        for i in self.indexes {
            s.push_str(&format!("|i:{}", i.fields.join(",")));
        }
        for u in self.unique {
            s.push_str(&format!("|u:{}", u.join(",")));
        }
        s
    }
}
