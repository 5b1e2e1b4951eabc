//! Relay-style cursor pagination and sort specs.
//!
//! A page is asked for with [`PageRequest`] (`first`/`after` or `last`/`before`), validated into a
//! [`PageWindow`], and answered with a [`Page`] whose edge cursors equal its `pageInfo` cursors.
//! Cursors are opaque to clients: base64url of the sort field, direction, sort key and id. A
//! malformed cursor, or one minted for another sort, is an [`Error::InvalidInput`], never
//! "the first page".
//!
//! ```
//! use openframe_core::{PageRequest, SortDirection};
//! let window = PageRequest::first(50).window("hostname", SortDirection::Asc).unwrap();
//! assert_eq!(window.limit, 50);
//! assert!(PageRequest::first(101).window("hostname", SortDirection::Asc).is_err());
//! assert!(PageRequest::first(10).after("bogus").window("hostname", SortDirection::Asc).is_err());
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest accepted page size.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Longest accepted encoded cursor, in bytes.
pub const MAX_CURSOR_LEN: usize = 1024;

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SortDirection {
    /// Ascending; nulls first.
    Asc,
    /// Descending; nulls last.
    #[default]
    Desc,
}

impl SortDirection {
    /// The opposite direction.
    pub fn reversed(self) -> Self {
        match self {
            Self::Asc => Self::Desc,
            Self::Desc => Self::Asc,
        }
    }

    /// Parses `ASC`/`DESC`, case-insensitively.
    pub fn parse(value: &str) -> Result<Self> {
        if value.eq_ignore_ascii_case("asc") {
            Ok(Self::Asc)
        } else if value.eq_ignore_ascii_case("desc") {
            Ok(Self::Desc)
        } else {
            Err(Error::invalid("sortDirection", "must be ASC or DESC"))
        }
    }
}

/// The sortable fields of one entity: its allowlist. Implemented by a per-entity enum.
pub trait SortField: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// Every allowed field.
    const ALL: &'static [Self];
    /// The stable client-facing name (e.g. `"hostname"`).
    fn name(self) -> &'static str;
    /// The default sort of this entity.
    fn default_sort() -> SortSpec<Self>;

    /// Parses a client-facing name against the allowlist.
    fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let allowed: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
                Error::invalid(
                    "sortField",
                    format!("must be one of: {}", allowed.join(", ")),
                )
            })
    }
}

/// A sort on one allowlisted field; the id always breaks ties in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortSpec<F> {
    /// The field.
    pub field: F,
    /// The direction.
    pub direction: SortDirection,
}

impl<F: SortField> SortSpec<F> {
    /// A sort on `field` in `direction`.
    pub fn new(field: F, direction: SortDirection) -> Self {
        Self { field, direction }
    }

    /// Parses optional client input, falling back to the entity's default for what is missing.
    pub fn parse(field: Option<&str>, direction: Option<&str>) -> Result<Self> {
        let default = F::default_sort();
        let field = match field.map(str::trim).filter(|f| !f.is_empty()) {
            Some(name) => F::parse(name)?,
            None => default.field,
        };
        let direction = match direction.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => SortDirection::parse(d)?,
            None => default.direction,
        };
        Ok(Self { field, direction })
    }
}

impl<F: SortField> Default for SortSpec<F> {
    fn default() -> Self {
        F::default_sort()
    }
}

/// A position in a sorted list: the sort key and id of one row, plus the sort it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort field name the cursor was minted for.
    #[serde(rename = "s")]
    pub sort: String,
    /// The direction it was minted for.
    #[serde(rename = "d")]
    pub direction: SortDirection,
    /// The row's sort key (`null` when the row has none).
    #[serde(rename = "k")]
    pub key: serde_json::Value,
    /// The row's id: the tie-break.
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    /// Encodes the cursor as opaque base64url text.
    pub fn encode(&self) -> String {
        // Serializing a struct of strings and a JSON value cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a cursor that a client sent back; `field` names the argument in errors.
    pub fn decode(field: &'static str, encoded: &str) -> Result<Self> {
        if encoded.len() > MAX_CURSOR_LEN {
            return Err(Error::invalid(field, "cursor is too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| Error::invalid(field, "malformed cursor"))?;
        let cursor: Cursor = serde_json::from_slice(&bytes)
            .map_err(|_| Error::invalid(field, "malformed cursor"))?;
        if cursor.key.is_array() || cursor.key.is_object() || cursor.id.is_empty() {
            return Err(Error::invalid(field, "malformed cursor"));
        }
        Ok(cursor)
    }
}

/// Which way a page walks from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageDirection {
    /// `first`/`after`: rows after the cursor.
    Forward,
    /// `last`/`before`: rows before the cursor.
    Backward,
}

/// A client's page request, as received (GraphQL arguments or REST query).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Rows after `after`.
    pub first: Option<i64>,
    /// Cursor to page forward from.
    pub after: Option<String>,
    /// Rows before `before`.
    pub last: Option<i64>,
    /// Cursor to page backward from.
    pub before: Option<String>,
}

impl PageRequest {
    /// The first `n` rows.
    pub fn first(n: i64) -> Self {
        Self {
            first: Some(n),
            ..Self::default()
        }
    }

    /// The last `n` rows.
    pub fn last(n: i64) -> Self {
        Self {
            last: Some(n),
            ..Self::default()
        }
    }

    /// Continues after `cursor`.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }

    /// Continues before `cursor`.
    pub fn before(mut self, cursor: impl Into<String>) -> Self {
        self.before = Some(cursor.into());
        self
    }

    /// Validates the request for a list sorted by `sort_name` in `direction`.
    ///
    /// Page sizes outside 1..=100 are errors (not clamped); `first` with `last`, or `after`
    /// with `before`, is ambiguous and refused; a cursor must decode and match the sort.
    pub fn window(&self, sort_name: &str, direction: SortDirection) -> Result<PageWindow> {
        if self.first.is_some() && self.last.is_some() {
            return Err(Error::invalid(
                "last",
                "give either first or last, not both",
            ));
        }
        if self.after.is_some() && self.before.is_some() {
            return Err(Error::invalid(
                "before",
                "give either after or before, not both",
            ));
        }
        let backward = self.last.is_some() || self.before.is_some();
        if backward && (self.first.is_some() || self.after.is_some()) {
            return Err(Error::invalid(
                "last",
                "first/after and last/before cannot be combined",
            ));
        }
        let (size_field, size, cursor_field, cursor) = if backward {
            ("last", self.last, "before", self.before.as_deref())
        } else {
            ("first", self.first, "after", self.after.as_deref())
        };
        let limit = match size {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=i64::from(MAX_PAGE_SIZE)).contains(&n) => n as u32,
            Some(_) => return Err(Error::invalid(size_field, "must be between 1 and 100")),
        };
        let cursor = cursor
            .map(|raw| {
                let c = Cursor::decode(cursor_field, raw)?;
                if c.sort != sort_name || c.direction != direction {
                    return Err(Error::invalid(
                        cursor_field,
                        "cursor belongs to a different sort order",
                    ));
                }
                Ok(c)
            })
            .transpose()?;
        Ok(PageWindow {
            direction: if backward {
                PageDirection::Backward
            } else {
                PageDirection::Forward
            },
            limit: limit as usize,
            cursor,
        })
    }
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq)]
pub struct PageWindow {
    /// Forward (`first/after`) or backward (`last/before`).
    pub direction: PageDirection,
    /// How many rows, 1..=100.
    pub limit: usize,
    /// Where to start, exclusive.
    pub cursor: Option<Cursor>,
}

/// Relay page information. Edge cursors and these cursors are the same strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// More rows exist after `end_cursor` (exact).
    pub has_next_page: bool,
    /// More rows exist before `start_cursor` (exact).
    pub has_previous_page: bool,
    /// Cursor of the first edge.
    pub start_cursor: Option<String>,
    /// Cursor of the last edge.
    pub end_cursor: Option<String>,
}

/// One row of a page and its cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge<T> {
    /// The row.
    pub node: T,
    /// The row's cursor.
    pub cursor: String,
}

/// A page of rows, in the requested sort order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The rows.
    pub edges: Vec<Edge<T>>,
    /// Paging state.
    pub page_info: PageInfo,
}

impl<T> Page<T> {
    /// The rows without cursors.
    pub fn nodes(&self) -> impl Iterator<Item = &T> {
        self.edges.iter().map(|e| &e.node)
    }

    /// Consumes the page into its rows.
    pub fn into_nodes(self) -> Vec<T> {
        self.edges.into_iter().map(|e| e.node).collect()
    }

    /// Maps each row, keeping cursors and page info.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            edges: self
                .edges
                .into_iter()
                .map(|e| Edge {
                    node: f(e.node),
                    cursor: e.cursor,
                })
                .collect(),
            page_info: self.page_info,
        }
    }
}

/// Counts of rows per value of one dimension ("filter options").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCount {
    /// The value (e.g. `"ONLINE"`), as a string.
    pub value: String,
    /// How many rows have it.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            sort: "hostname".into(),
            direction: SortDirection::Asc,
            key: serde_json::json!("web-01"),
            id: "abc".into(),
        }
    }

    #[test]
    fn cursor_round_trips_and_is_url_safe() {
        let encoded = cursor().encode();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Cursor::decode("after", &encoded).unwrap(), cursor());
    }

    #[test]
    fn malformed_cursors_are_errors_not_first_page() {
        for bad in ["", "!!!", "bm90IGpzb24", "e30", &"A".repeat(2000)] {
            let err = PageRequest::first(5)
                .after(bad)
                .window("hostname", SortDirection::Asc)
                .unwrap_err();
            assert_eq!(err.field(), Some("after"), "{bad:?}");
        }
    }

    #[test]
    fn cursor_from_another_sort_is_refused() {
        let encoded = cursor().encode();
        assert!(
            PageRequest::first(5)
                .after(&encoded)
                .window("status", SortDirection::Asc)
                .is_err()
        );
        assert!(
            PageRequest::first(5)
                .after(&encoded)
                .window("hostname", SortDirection::Desc)
                .is_err()
        );
    }

    #[test]
    fn sizes_are_validated_not_clamped() {
        let w = PageRequest::default()
            .window("id", SortDirection::Desc)
            .unwrap();
        assert_eq!((w.limit, w.direction), (20, PageDirection::Forward));
        let w = PageRequest::last(100)
            .window("id", SortDirection::Desc)
            .unwrap();
        assert_eq!((w.limit, w.direction), (100, PageDirection::Backward));
        for bad in [0, -1, 101] {
            assert!(
                PageRequest::first(bad)
                    .window("id", SortDirection::Desc)
                    .is_err()
            );
            assert!(
                PageRequest::last(bad)
                    .window("id", SortDirection::Desc)
                    .is_err()
            );
        }
        let both = PageRequest {
            first: Some(1),
            last: Some(1),
            ..Default::default()
        };
        assert!(both.window("id", SortDirection::Desc).is_err());
    }
}
