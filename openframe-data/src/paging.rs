//! Keyset pagination over any [`DocumentStore`], written once.
//!
//! A page is a keyset query: `(sort key, id) > cursor` in the sort order, `limit + 1` rows to
//! know exactly whether another page follows. Walking backward (`last`/`before`) queries in
//! the reversed order and flips the result. Whether rows exist on the other side of the
//! cursor is answered exactly by one extra `limit 1` probe. No offsets: page 100 costs what
//! page 1 costs.

use openframe_core::{
    Cursor, Edge, Error, PageDirection, PageInfo, PageRequest, Result, SortDirection,
};

use crate::store::{
    CmpOp, DocumentStore, FieldKind, Filter, FindQuery, Partition, Schema, SortKey, StoredDoc,
    Value,
};

/// A resolved sort: an index field (or the id) and a direction, plus its client-facing name.
#[derive(Debug, Clone, Copy)]
pub struct StoreSort {
    /// The client-facing sort name recorded in cursors.
    pub name: &'static str,
    /// The key.
    pub key: SortKey,
    /// The direction.
    pub direction: SortDirection,
}

impl StoreSort {
    fn keys(&self, reversed: bool) -> Vec<(SortKey, SortDirection)> {
        let dir = if reversed {
            self.direction.reversed()
        } else {
            self.direction
        };
        match self.key {
            SortKey::Id => vec![(SortKey::Id, dir)],
            key => vec![(key, dir), (SortKey::Id, dir)],
        }
    }
}

/// A page of raw documents with exact page info.
#[derive(Debug)]
pub struct DocPage {
    /// Documents and their cursors, in sort order.
    pub edges: Vec<Edge<StoredDoc>>,
    /// Paging state.
    pub page_info: PageInfo,
}

/// Runs one page query.
pub async fn page(
    store: &dyn DocumentStore,
    schema: &'static Schema,
    partition: &Partition,
    base: Filter,
    sort: StoreSort,
    request: &PageRequest,
) -> Result<DocPage> {
    Ok(
        page_counted(store, schema, partition, base, sort, request, false)
            .await?
            .0,
    )
}

/// Runs one page query and, with `count`, counts every row `base` matches, all in one
/// [`DocumentStore::find_many`] call (one snapshot on SQLite).
pub async fn page_counted(
    store: &dyn DocumentStore,
    schema: &'static Schema,
    partition: &Partition,
    base: Filter,
    sort: StoreSort,
    request: &PageRequest,
    count: bool,
) -> Result<(DocPage, Option<u64>)> {
    let window = request.window(sort.name, sort.direction)?;
    let position = window
        .cursor
        .as_ref()
        .map(|c| cursor_position(schema, sort, c, window.direction))
        .transpose()?;
    let backward = window.direction == PageDirection::Backward;

    // Rows strictly beyond the cursor, walking in the page's direction.
    let beyond = position
        .as_ref()
        .map(|(key, id)| keyset(schema, sort, key, id, backward, false))
        .transpose()?;
    let mut finds = vec![FindQuery {
        filter: Filter::and(vec![base.clone(), beyond.unwrap_or(Filter::All)]),
        sort: sort.keys(backward),
        limit: window.limit + 1,
    }];
    // Rows at or behind the cursor: is there anything on the other side?
    if let Some((key, id)) = &position {
        finds.push(FindQuery {
            filter: Filter::and(vec![
                base.clone(),
                keyset(schema, sort, key, id, !backward, true)?,
            ]),
            sort: sort.keys(!backward),
            limit: 1,
        });
    }
    let (mut found, total) = store
        .find_many(schema, partition, &finds, count.then_some(&base))
        .await?;
    if found.len() != finds.len() {
        return Err(Error::Internal(
            "the store answered a different number of finds".into(),
        ));
    }
    let more_behind = found.get(1).is_some_and(|probe| !probe.is_empty());
    let mut rows = found.swap_remove(0);
    let more_in_direction = rows.len() > window.limit;
    rows.truncate(window.limit);
    if backward {
        rows.reverse();
    }
    let (has_next_page, has_previous_page) = if backward {
        (more_behind, more_in_direction)
    } else {
        (more_in_direction, more_behind)
    };
    let edges: Vec<Edge<StoredDoc>> = rows
        .into_iter()
        .map(|doc| {
            let cursor = encode_cursor(schema, sort, &doc)?;
            Ok(Edge { node: doc, cursor })
        })
        .collect::<Result<_>>()?;
    let page = DocPage {
        page_info: PageInfo {
            has_next_page,
            has_previous_page,
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
    };
    Ok((page, total))
}

/// The cursor of a document under `sort`.
pub fn encode_cursor(schema: &Schema, sort: StoreSort, doc: &StoredDoc) -> Result<String> {
    let key = match sort.key {
        SortKey::Id => serde_json::Value::Null,
        SortKey::Field(f) => match &doc.fields[schema.position(f)?] {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Str(s) => s.clone().into(),
            Value::StrList(_) => return Err(Error::Internal("cannot sort on a list field".into())),
        },
    };
    Ok(Cursor {
        sort: sort.name.to_owned(),
        direction: sort.direction,
        key,
        id: doc.id.clone(),
    }
    .encode())
}

fn cursor_position(
    schema: &Schema,
    sort: StoreSort,
    cursor: &Cursor,
    direction: PageDirection,
) -> Result<(Value, String)> {
    let field = if direction == PageDirection::Forward {
        "after"
    } else {
        "before"
    };
    let bad = || Error::invalid(field, "malformed cursor");
    if cursor.id.len() > openframe_core::id::MAX_ID_LEN * 2 {
        return Err(bad());
    }
    let key = match sort.key {
        SortKey::Id => Value::Null,
        SortKey::Field(f) => match (schema.field(f)?.kind, &cursor.key) {
            (_, serde_json::Value::Null) if schema.field(f)?.nullable => Value::Null,
            (FieldKind::Str, serde_json::Value::String(s)) if s.len() <= 1024 => {
                Value::Str(s.clone())
            }
            (FieldKind::Int, serde_json::Value::Number(n)) => {
                Value::Int(n.as_i64().ok_or_else(bad)?)
            }
            (FieldKind::Bool, serde_json::Value::Bool(b)) => Value::Bool(*b),
            _ => return Err(bad()),
        },
    };
    Ok((key, cursor.id.clone()))
}

/// Rows after `(key, id)` when walking in the sort order (or, with `reversed`, in the
/// opposite order); `inclusive` also admits the cursor row itself.
fn keyset(
    schema: &Schema,
    sort: StoreSort,
    key: &Value,
    id: &str,
    reversed: bool,
    inclusive: bool,
) -> Result<Filter> {
    let dir = if reversed {
        sort.direction.reversed()
    } else {
        sort.direction
    };
    let op = match (dir, inclusive) {
        (SortDirection::Asc, false) => CmpOp::Gt,
        (SortDirection::Asc, true) => CmpOp::Gte,
        (SortDirection::Desc, false) => CmpOp::Lt,
        (SortDirection::Desc, true) => CmpOp::Lte,
    };
    let id_after = Filter::IdCmp(op, id.to_owned());
    let SortKey::Field(f) = sort.key else {
        return Ok(id_after);
    };
    let nullable = schema.field(f)?.nullable;
    // Nulls come first ascending and last descending.
    Ok(match (dir, key) {
        (SortDirection::Asc, Value::Null) => Filter::Or(vec![
            Filter::and(vec![Filter::IsNull(f), id_after]),
            Filter::NotNull(f),
        ]),
        (SortDirection::Asc, k) => Filter::KeysetCmp(f, op, k.clone(), id.to_owned()),
        (SortDirection::Desc, Value::Null) => Filter::and(vec![Filter::IsNull(f), id_after]),
        (SortDirection::Desc, k) if nullable => Filter::Or(vec![
            Filter::KeysetCmp(f, op, k.clone(), id.to_owned()),
            Filter::IsNull(f),
        ]),
        (SortDirection::Desc, k) => Filter::KeysetCmp(f, op, k.clone(), id.to_owned()),
    })
}
