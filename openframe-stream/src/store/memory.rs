//! The in-memory event store: for tests, examples and single-process development.
//!
//! Per tenant, events sit in a `BTreeMap` ordered by `EventKey`, so pages walk the map from
//! the cursor; an id index makes appends idempotent. Nothing survives a restart.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use openframe_core::{Page, PageRequest, Result, TenantId, Timestamp};
use uuid::Uuid;

use super::histogram::{Buckets, histogram_rows};
use super::paging::{EventKey, PagePlan};
use super::{
    AppendOutcome, BucketWidth, EventFacet, EventFilter, EventGroup, EventStore, FacetGroup,
    HistogramBucket, distinct_facets, facet_value, rank_counts, search_text, validate,
};
use crate::model::UnifiedEvent;

/// An [`EventStore`] in process memory.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use openframe_stream::store::{EventStore, memory::InMemoryEventStore};
/// let store = InMemoryEventStore::new();
/// assert_eq!(store.append(&[]).await?.inserted, 0);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryEventStore {
    tenants: RwLock<HashMap<TenantId, Partition>>,
}

/// One tenant's events.
#[derive(Debug, Default)]
struct Partition {
    /// Event id → its current key.
    keys: HashMap<Uuid, EventKey>,
    /// Events in sort order, with their lower-cased search text.
    events: BTreeMap<EventKey, Stored>,
}

#[derive(Debug)]
struct Stored {
    event: UnifiedEvent,
    search: String,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on `tenant`'s partition (an empty one if the tenant has no events).
    fn read<T>(&self, tenant: &TenantId, f: impl FnOnce(&Partition) -> T) -> T {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        match tenants.get(tenant) {
            Some(p) => f(p),
            None => f(&Partition::default()),
        }
    }
}

impl Partition {
    /// Events matching `filter` in `range`, in ascending key order.
    fn matching<'a>(
        &'a self,
        filter: &'a EventFilter,
        range: (Bound<EventKey>, Bound<EventKey>),
    ) -> impl DoubleEndedIterator<Item = &'a UnifiedEvent> + 'a {
        let needle = filter.needle();
        self.events
            .range(range)
            .filter(move |(_, s)| {
                filter.matches_fields(&s.event)
                    && needle.as_deref().is_none_or(|n| s.search.contains(n))
            })
            .map(|(_, s)| &s.event)
    }

    /// The key range a filter's time bounds allow.
    fn time_range(filter: &EventFilter) -> (Bound<EventKey>, Bound<EventKey>) {
        let at = |micros| EventKey {
            micros,
            id: Uuid::nil(),
        };
        (
            filter
                .start_micros()
                .map_or(Bound::Unbounded, |m| Bound::Included(at(m))),
            filter
                .end_micros()
                .map_or(Bound::Unbounded, |m| Bound::Excluded(at(m))),
        )
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(&self, events: &[UnifiedEvent]) -> Result<AppendOutcome> {
        let tenants = validate::batch(events)?;
        let mut outcome = AppendOutcome::default();
        let mut map = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        for (event, tenant) in events.iter().zip(tenants) {
            let partition = map.entry(tenant.clone()).or_default();
            let key = EventKey::of(event);
            match partition.keys.insert(event.id, key) {
                Some(old) => {
                    partition.events.remove(&old);
                    outcome.replaced += 1;
                }
                None => outcome.inserted += 1,
            }
            partition.events.insert(
                key,
                Stored {
                    search: search_text(event),
                    event: event.clone(),
                },
            );
        }
        Ok(outcome)
    }

    async fn get(&self, tenant: &TenantId, id: Uuid) -> Result<Option<UnifiedEvent>> {
        Ok(self.read(tenant, |p| {
            let key = p.keys.get(&id)?;
            p.events.get(key).map(|s| s.event.clone())
        }))
    }

    async fn query(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<UnifiedEvent>> {
        filter.validate()?;
        let plan = PagePlan::new(page)?;
        Ok(self.read(tenant, |p| {
            // Time bounds are checked by the filter; the range only picks where to start.
            let rows: Vec<UnifiedEvent> = match (plan.cursor, plan.backward) {
                (None, false) => p
                    .matching(filter, Partition::time_range(filter))
                    .rev()
                    .take(plan.fetch())
                    .cloned()
                    .collect(),
                (None, true) => p
                    .matching(filter, Partition::time_range(filter))
                    .take(plan.fetch())
                    .cloned()
                    .collect(),
                (Some(c), false) => p
                    .matching(filter, (Bound::Unbounded, Bound::Excluded(c)))
                    .rev()
                    .take(plan.fetch())
                    .cloned()
                    .collect(),
                (Some(c), true) => p
                    .matching(filter, (Bound::Excluded(c), Bound::Unbounded))
                    .take(plan.fetch())
                    .cloned()
                    .collect(),
            };
            let behind = match (plan.cursor, plan.backward) {
                (None, _) => false,
                (Some(c), false) => p
                    .matching(filter, (Bound::Included(c), Bound::Unbounded))
                    .next()
                    .is_some(),
                (Some(c), true) => p
                    .matching(filter, (Bound::Unbounded, Bound::Included(c)))
                    .next_back()
                    .is_some(),
            };
            plan.assemble(rows, behind)
        }))
    }

    async fn count(&self, tenant: &TenantId, filter: &EventFilter) -> Result<u64> {
        filter.validate()?;
        Ok(self.read(tenant, |p| {
            p.matching(filter, Partition::time_range(filter)).count() as u64
        }))
    }

    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        fields: &[EventFacet],
    ) -> Result<Vec<FacetGroup>> {
        filter.validate()?;
        let fields = distinct_facets(fields);
        Ok(self.read(tenant, |p| {
            let mut counts: Vec<HashMap<String, u64>> = vec![HashMap::new(); fields.len()];
            for e in p.matching(filter, Partition::time_range(filter)) {
                for (facet, counts) in fields.iter().zip(counts.iter_mut()) {
                    if let Some(v) = facet_value(e, *facet) {
                        *counts.entry(v).or_default() += 1;
                    }
                }
            }
            fields
                .iter()
                .zip(counts)
                .map(|(facet, counts)| FacetGroup {
                    facet: *facet,
                    counts: rank_counts(counts),
                })
                .collect()
        }))
    }

    async fn histogram(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        bucket: BucketWidth,
        group: EventGroup,
    ) -> Result<Vec<HistogramBucket>> {
        let plan = Buckets::plan(filter, bucket)?;
        let counts = self.read(tenant, |p| {
            let mut counts: HashMap<(i64, String), u64> = HashMap::new();
            for e in p.matching(filter, Partition::time_range(filter)) {
                let start = plan.start_of(EventKey::of(e).micros);
                let value = facet_value(e, group.facet()).unwrap_or_default();
                *counts.entry((start, value)).or_default() += 1;
            }
            counts
        });
        histogram_rows(
            counts
                .into_iter()
                .map(|((start, group), count)| (start, group, count)),
        )
    }

    async fn purge_before(&self, cutoff: Timestamp) -> Result<u64> {
        let boundary = EventKey {
            micros: cutoff.timestamp_micros(),
            id: Uuid::nil(),
        };
        let mut map = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let mut purged = 0u64;
        for partition in map.values_mut() {
            let kept = partition.events.split_off(&boundary);
            let old = std::mem::replace(&mut partition.events, kept);
            for key in old.keys() {
                partition.keys.remove(&key.id);
            }
            purged += old.len() as u64;
        }
        map.retain(|_, p| !p.events.is_empty());
        Ok(purged)
    }
}
