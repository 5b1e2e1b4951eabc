//! The repositories: one trait per aggregate, each implemented once over a
//! [`DocumentStore`] by [`DocumentRepository`].

mod api_keys;
mod machines;
mod organizations;
mod scripts;
mod tags;
mod tenants;
mod tools;
mod users;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use openframe_core::{
    Clock, Error, FacetCount, Page, PageRequest, Result, SortField, SortSpec, SystemClock,
    Timestamp,
};

pub use api_keys::{ApiKeyFilter, ApiKeyRepository, ApiKeySort, UsageDelta};
pub use machines::{MachineFacet, MachineFilter, MachineRepository, MachineSort, StatusTransition};
pub use organizations::{
    OrganizationFacet, OrganizationFilter, OrganizationRepository, OrganizationSort,
};
pub use scripts::{ScriptFacet, ScriptFilter, ScriptRepository, ScriptSort};
pub use tags::{TagFilter, TagRepository, TagSort};
pub use tenants::TenantRepository;
pub use tools::{
    IntegratedToolFilter, IntegratedToolRepository, IntegratedToolSort, ToolConnectionFacet,
    ToolConnectionFilter, ToolConnectionRepository, ToolConnectionSort,
};
pub use users::{UserFacet, UserFilter, UserRepository, UserSort};

use crate::entity::{Entity, from_doc, to_doc};
use crate::paging::{self, StoreSort};
use crate::store::{DocumentStore, FacetSpec, Filter, Partition, SortKey};

/// How many times a read-modify-write is retried on a version conflict.
const MODIFY_ATTEMPTS: u32 = 16;

/// A sort field of an entity that maps to a stored index field.
pub trait StoreSortField: SortField {
    /// The index field (or the id) this sort uses.
    fn key(self) -> SortKey;
}

/// A facet dimension: an index field whose value counts are "filter options".
pub trait FacetDimension: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// The index field counted.
    fn field(self) -> &'static str;
}

/// A list filter split into its parts, so facets can leave out their own condition.
pub trait QueryFilter: Send + Sync {
    /// The facet dimensions of this entity.
    type Facet: FacetDimension;
    /// Conditions that belong to no facet (search, soft-delete guard, id restrictions).
    fn base(&self) -> Result<Filter>;
    /// The condition of each facet dimension the filter sets.
    fn conditions(&self) -> Result<Vec<(Self::Facet, Filter)>>;
    /// The whole filter.
    fn to_filter(&self) -> Result<Filter> {
        let mut parts = vec![self.base()?];
        parts.extend(self.conditions()?.into_iter().map(|(_, f)| f));
        Ok(Filter::and(parts))
    }
}

/// The outcome of a conditional read-modify-write.
#[derive(Debug, Clone, PartialEq)]
pub struct Modified<E> {
    /// The state before.
    pub before: E,
    /// The state after; equal to `before` when the change was not applied.
    pub after: E,
    /// Whether a write happened.
    pub applied: bool,
}

/// The generic repository over a [`DocumentStore`]: validation, versions, paging, counts
/// and facets for any [`Entity`]. Every aggregate repository delegates here.
pub struct DocumentRepository<E> {
    store: Arc<dyn DocumentStore>,
    clock: Arc<dyn Clock>,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Clone for DocumentRepository<E> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            clock: self.clock.clone(),
            _entity: PhantomData,
        }
    }
}

impl<E: Entity> fmt::Debug for DocumentRepository<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentRepository")
            .field("collection", &E::SCHEMA.collection)
            .field("store", &self.store.backend())
            .finish()
    }
}

/// An entity with an update timestamp the repository maintains.
pub trait Timestamped {
    /// Sets the last-change time.
    fn set_updated_at(&mut self, now: Timestamp);
}

impl<E: Entity + Timestamped> DocumentRepository<E> {
    /// A repository over `store`, stamping times from `clock`.
    pub fn new(store: Arc<dyn DocumentStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            _entity: PhantomData,
        }
    }

    /// The clock used for `updated_at`.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The underlying store (for queries the generic operations do not cover).
    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }

    /// Inserts a new entity at version 1.
    pub async fn insert(&self, partition: &Partition, mut entity: E) -> Result<E> {
        entity.validate()?;
        entity.set_version(1);
        self.store
            .insert(E::SCHEMA, partition, to_doc(&entity)?)
            .await?;
        Ok(entity)
    }

    /// One entity by id.
    pub async fn get(&self, partition: &Partition, id: &str) -> Result<Option<E>> {
        self.store
            .get(E::SCHEMA, partition, id)
            .await?
            .map(|d| from_doc(&d))
            .transpose()
    }

    /// One entity by id, or `NotFound`.
    pub async fn require(&self, partition: &Partition, id: &str) -> Result<E> {
        self.get(partition, id)
            .await?
            .ok_or_else(|| Error::not_found(E::SCHEMA.entity))
    }

    /// Several entities, in the order of `ids`; missing ones are skipped.
    pub async fn get_many(&self, partition: &Partition, ids: &[String]) -> Result<Vec<E>> {
        if ids.len() > 1000 {
            return Err(Error::invalid("ids", "at most 1000 ids at once"));
        }
        let docs = self.store.get_many(E::SCHEMA, partition, ids).await?;
        let mut found: std::collections::HashMap<String, E> =
            std::collections::HashMap::with_capacity(docs.len());
        for d in &docs {
            found.insert(d.id.clone(), from_doc(d)?);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Writes `entity` if its `version` is still the stored one; returns it at the new version.
    pub async fn update(&self, partition: &Partition, mut entity: E) -> Result<E> {
        entity.validate()?;
        let expected = entity.version();
        entity.set_version(expected + 1);
        entity.set_updated_at(self.clock.now());
        self.store
            .replace(E::SCHEMA, partition, to_doc(&entity)?, expected)
            .await?;
        Ok(entity)
    }

    /// Atomic conditional read-modify-write: `change` sees the current state and returns
    /// whether to write. Version conflicts with concurrent writers are retried on fresh state,
    /// so the decision is always made on the state that is actually replaced.
    pub async fn modify(
        &self,
        partition: &Partition,
        id: &str,
        mut change: impl FnMut(&mut E, Timestamp) -> Result<bool> + Send,
    ) -> Result<Modified<E>> {
        for attempt in 0..MODIFY_ATTEMPTS {
            let before = self.require(partition, id).await?;
            let mut after = before.clone();
            if !change(&mut after, self.clock.now())? {
                return Ok(Modified {
                    after: before.clone(),
                    before,
                    applied: false,
                });
            }
            match self.update(partition, after).await {
                Ok(after) => {
                    return Ok(Modified {
                        before,
                        after,
                        applied: true,
                    });
                }
                Err(Error::Conflict { .. }) => backoff(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(format!(
            "{} is being changed by too many writers",
            E::SCHEMA.entity
        )))
    }

    /// Hard-deletes; `NotFound` if absent.
    pub async fn delete_hard(&self, partition: &Partition, id: &str) -> Result<()> {
        if self.store.delete(E::SCHEMA, partition, id).await? {
            Ok(())
        } else {
            Err(Error::not_found(E::SCHEMA.entity))
        }
    }

    /// One page of a filtered, sorted list.
    pub async fn page<S: StoreSortField>(
        &self,
        partition: &Partition,
        filter: Filter,
        sort: SortSpec<S>,
        request: &PageRequest,
    ) -> Result<Page<E>> {
        Ok(self
            .page_counted(partition, filter, sort, request, false)
            .await?
            .0)
    }

    /// One page of a filtered, sorted list and, with `count`, how many rows the filter
    /// matches in all: one store call ([`DocumentStore::find_many`]).
    pub async fn page_counted<S: StoreSortField>(
        &self,
        partition: &Partition,
        filter: Filter,
        sort: SortSpec<S>,
        request: &PageRequest,
        count: bool,
    ) -> Result<(Page<E>, Option<u64>)> {
        let sort = StoreSort {
            name: sort.field.name(),
            key: sort.field.key(),
            direction: sort.direction,
        };
        let (page, total) = paging::page_counted(
            self.store.as_ref(),
            E::SCHEMA,
            partition,
            filter,
            sort,
            request,
            count,
        )
        .await?;
        let edges = page
            .edges
            .into_iter()
            .map(|e| {
                Ok(openframe_core::Edge {
                    node: from_doc(&e.node)?,
                    cursor: e.cursor,
                })
            })
            .collect::<Result<_>>()?;
        let page = Page {
            edges,
            page_info: page.page_info,
        };
        Ok((page, total))
    }

    /// Counts matching rows.
    pub async fn count(&self, partition: &Partition, filter: &Filter) -> Result<u64> {
        self.store.count(E::SCHEMA, partition, filter).await
    }

    /// All matching rows, up to `limit`, in id order (for small lookups, not for lists).
    pub async fn find_all(
        &self,
        partition: &Partition,
        filter: Filter,
        limit: usize,
    ) -> Result<Vec<E>> {
        let query = crate::store::FindQuery {
            filter,
            sort: vec![(SortKey::Id, openframe_core::SortDirection::Asc)],
            limit,
        };
        self.store
            .find(E::SCHEMA, partition, &query)
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }

    /// Self-excluding facet counts: each dimension is counted under every filter except its
    /// own, so a UI can show how many rows each option would give.
    pub async fn facets<Q: QueryFilter>(
        &self,
        partition: &Partition,
        query: &Q,
        dimensions: &[Q::Facet],
    ) -> Result<Vec<(Q::Facet, Vec<FacetCount>)>> {
        let base = query.base()?;
        let conditions = query.conditions()?;
        let specs: Vec<FacetSpec> = dimensions
            .iter()
            .map(|&dim| FacetSpec {
                field: dim.field(),
                filter: Filter::and(
                    conditions
                        .iter()
                        .filter(|(d, _)| *d != dim)
                        .map(|(_, f)| f.clone())
                        .collect(),
                ),
            })
            .collect();
        let results = self
            .store
            .facet_many(E::SCHEMA, partition, &base, &specs)
            .await?;
        let out = dimensions
            .iter()
            .zip(results)
            .map(|(&dim, counts)| {
                let mut counts: Vec<FacetCount> = counts
                    .into_iter()
                    .filter_map(|(v, count)| v.to_label().map(|value| FacetCount { value, count }))
                    .collect();
                counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
                (dim, counts)
            })
            .collect();
        Ok(out)
    }
}

/// Sleeps a jittered, exponentially growing delay (1 ms doubling, capped at 50 ms).
async fn backoff(attempt: u32) {
    use rand::Rng as _;
    let cap = (1u64 << attempt.min(6)).min(50);
    let ms = rand::rng().random_range(0..=cap);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Normalizes free-text search input: trimmed, lowercased, at most 256 characters, no
/// control characters. `None` or blank means no search. The result is matched literally
/// (never as a pattern), so user input cannot build a regular expression.
pub fn search_filter(search: Option<&str>) -> Result<Filter> {
    let Some(raw) = search.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(Filter::All);
    };
    openframe_core::validate::max_chars("search", raw, openframe_core::validate::MAX_SEARCH_LEN)?;
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid(
            "search",
            "must not contain control characters",
        ));
    }
    Ok(Filter::Search(raw.to_lowercase()))
}

/// Validates a list filter's length.
pub(crate) fn filter_list<T>(field: &'static str, items: &[T]) -> Result<()> {
    openframe_core::validate::list(field, items)
}

/// The default clock.
pub(crate) fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
