//! The in-memory document store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use openframe_core::{Error, Result};

use crate::store::{
    DocumentStore, Filter, FindQuery, Partition, Schema, SortKey, StoredDoc, Value, compare_docs,
};

type Rows = BTreeMap<String, Arc<StoredDoc>>;

/// A [`DocumentStore`] in process memory: fast, not durable. For tests and embedding.
///
/// ```
/// use std::sync::Arc;
/// use openframe_data::{Repositories, memory::InMemoryDocumentStore};
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// # let _ = repos;
/// ```
#[derive(Debug, Default)]
pub struct InMemoryDocumentStore {
    collections: RwLock<HashMap<(&'static str, Partition), Rows>>,
}

impl InMemoryDocumentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read<T>(
        &self,
        schema: &Schema,
        partition: &Partition,
        f: impl FnOnce(Option<&Rows>) -> Result<T>,
    ) -> Result<T> {
        let guard = self.collections.read().map_err(|_| poisoned())?;
        f(guard.get(&(schema.collection, partition.clone())))
    }

    fn write<T>(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        f: impl FnOnce(&mut Rows) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.collections.write().map_err(|_| poisoned())?;
        f(guard
            .entry((schema.collection, partition.clone()))
            .or_default())
    }
}

fn poisoned() -> Error {
    Error::Internal("in-memory store lock poisoned".into())
}

/// Fails with `AlreadyExists` if another row holds the same non-null unique group values.
fn check_unique(schema: &Schema, rows: &Rows, doc: &StoredDoc) -> Result<()> {
    for group in schema.unique {
        let positions: Vec<usize> = group
            .iter()
            .map(|f| schema.position(f))
            .collect::<Result<_>>()?;
        if positions.iter().any(|&p| doc.fields[p] == Value::Null) {
            continue;
        }
        let taken = rows.values().any(|other| {
            other.id != doc.id && positions.iter().all(|&p| other.fields[p] == doc.fields[p])
        });
        if taken {
            return Err(Error::AlreadyExists {
                entity: schema.entity,
                field: group.join(",").into(),
            });
        }
    }
    Ok(())
}

fn select<'a>(schema: &Schema, rows: &'a Rows, filter: &Filter) -> Result<Vec<&'a Arc<StoredDoc>>> {
    let mut out = Vec::new();
    for doc in rows.values() {
        if filter.matches(schema, doc)? {
            out.push(doc);
        }
    }
    Ok(out)
}

#[async_trait]
impl DocumentStore for InMemoryDocumentStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<Option<StoredDoc>> {
        self.read(schema, partition, |rows| {
            Ok(rows.and_then(|r| r.get(id)).map(|d| (**d).clone()))
        })
    }

    async fn get_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>> {
        self.read(schema, partition, |rows| {
            Ok(rows
                .map(|r| {
                    ids.iter()
                        .filter_map(|id| r.get(id))
                        .map(|d| (**d).clone())
                        .collect()
                })
                .unwrap_or_default())
        })
    }

    async fn insert(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
    ) -> Result<()> {
        self.write(schema, partition, |rows| {
            if rows.contains_key(&doc.id) {
                return Err(Error::AlreadyExists {
                    entity: schema.entity,
                    field: "id".into(),
                });
            }
            check_unique(schema, rows, &doc)?;
            rows.insert(doc.id.clone(), Arc::new(doc));
            Ok(())
        })
    }

    async fn replace(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
        expected_version: u64,
    ) -> Result<()> {
        self.write(schema, partition, |rows| {
            let current = rows
                .get(&doc.id)
                .ok_or_else(|| Error::not_found(schema.entity))?;
            if current.version != expected_version {
                return Err(Error::conflict(format!(
                    "{} was changed concurrently",
                    schema.entity
                )));
            }
            check_unique(schema, rows, &doc)?;
            rows.insert(doc.id.clone(), Arc::new(doc));
            Ok(())
        })
    }

    async fn delete(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<bool> {
        self.write(schema, partition, |rows| Ok(rows.remove(id).is_some()))
    }

    async fn find(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        query: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        self.read(schema, partition, |rows| {
            let Some(rows) = rows else {
                return Ok(Vec::new());
            };
            // Fast path: id order is the map's order, so stop at the limit.
            if let [(SortKey::Id, dir)] = query.sort.as_slice() {
                let mut out = Vec::with_capacity(query.limit.min(rows.len()));
                let iter: Box<dyn Iterator<Item = &Arc<StoredDoc>>> = match dir {
                    openframe_core::SortDirection::Asc => Box::new(rows.values()),
                    openframe_core::SortDirection::Desc => Box::new(rows.values().rev()),
                };
                for doc in iter {
                    if out.len() == query.limit {
                        break;
                    }
                    if query.filter.matches(schema, doc)? {
                        out.push((**doc).clone());
                    }
                }
                return Ok(out);
            }
            let mut hits = select(schema, rows, &query.filter)?;
            let mut err = None;
            hits.sort_by(|a, b| {
                compare_docs(schema, &query.sort, a, b).unwrap_or_else(|e| {
                    err.get_or_insert(e);
                    std::cmp::Ordering::Equal
                })
            });
            if let Some(e) = err {
                return Err(e);
            }
            Ok(hits
                .into_iter()
                .take(query.limit)
                .map(|d| (**d).clone())
                .collect())
        })
    }

    async fn count(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        filter: &Filter,
    ) -> Result<u64> {
        self.read(schema, partition, |rows| {
            Ok(rows
                .map(|r| select(schema, r, filter).map(|v| v.len() as u64))
                .transpose()?
                .unwrap_or(0))
        })
    }

    async fn facet(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        field: &'static str,
        filter: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        let pos = schema.position(field)?;
        self.read(schema, partition, |rows| {
            let mut counts: BTreeMap<Value, u64> = BTreeMap::new();
            if let Some(rows) = rows {
                for doc in select(schema, rows, filter)? {
                    match &doc.fields[pos] {
                        Value::Null => {}
                        Value::StrList(items) => {
                            let mut seen: Vec<&String> = Vec::new();
                            for item in items {
                                if !seen.contains(&item) {
                                    seen.push(item);
                                    *counts.entry(Value::Str(item.clone())).or_default() += 1;
                                }
                            }
                        }
                        v => *counts.entry(v.clone()).or_default() += 1,
                    }
                }
            }
            Ok(counts.into_iter().collect())
        })
    }
}
