//! The event store: where normalized [`UnifiedEvent`]s land, and how the UI reads them back.
//!
//! [`EventStore`] is one tenant-scoped trait with three backends: [`memory`] (always built),
//! `sqlite` (feature `sqlite`) and `mongodb` (feature `mongodb`). Every backend runs the same
//! conformance suite (`testkit`, feature `testkit`).
//!
//! - Writes are idempotent on `(tenant, event id)`: replays and duplicate deliveries replace
//!   the stored event instead of adding a row. Every event must carry a tenant.
//! - Reads always name the tenant. Lists are newest first (`occurred_at` desc, id desc), paged
//!   with opaque keyset cursors ([`PageRequest`]); a malformed or foreign cursor is an error.
//! - Times are stored and compared at microsecond resolution.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use openframe_core::{PageRequest, TenantId};
//! use openframe_stream::store::{EventFilter, EventStore, memory::InMemoryEventStore};
//! let store = InMemoryEventStore::new();
//! let tenant = TenantId::parse("acme")?;
//! let page = store.query(&tenant, &EventFilter::default(), &PageRequest::first(50)).await?;
//! assert!(page.edges.is_empty());
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

mod filter;
mod histogram;
pub mod memory;
#[cfg(feature = "mongodb")]
pub mod mongodb;
mod paging;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "testkit")]
pub mod testkit;
mod validate;

use std::fmt::Debug;

use async_trait::async_trait;
use openframe_core::{FacetCount, Page, PageRequest, Result, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::UnifiedEvent;

pub use filter::{EventFilter, MAX_FILTER_VALUES, MAX_SEARCH_CHARS};
pub use histogram::{BucketWidth, EventGroup, HistogramBucket, MAX_HISTOGRAM_BUCKETS};
pub use paging::SORT_NAME;
pub use validate::MAX_APPEND_BATCH;

/// Most values returned per facet (the most frequent ones).
pub const MAX_FACET_VALUES: usize = 100;

/// What one [`EventStore::append`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// Events stored for the first time.
    pub inserted: u64,
    /// Events that replaced a stored event with the same tenant and id (including an earlier
    /// event of the same batch).
    pub replaced: u64,
}

/// A dimension that [`EventStore::facets`] can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventFacet {
    /// [`UnifiedEvent::event_type`].
    EventType,
    /// [`UnifiedEvent::severity`] (`INFO`, `ERROR`, ...).
    Severity,
    /// [`UnifiedEvent::tool`] (`MESHCENTRAL`, ...).
    Tool,
    /// [`UnifiedEvent::category`] (`AUTH`, ...).
    Category,
    /// [`UnifiedEvent::machine_id`]; events without a machine are not counted.
    MachineId,
    /// [`UnifiedEvent::organization_id`]; events without an organization are not counted.
    OrganizationId,
}

/// The counts of one facet: values by descending count, then ascending value, at most
/// [`MAX_FACET_VALUES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetGroup {
    /// The counted dimension.
    pub facet: EventFacet,
    /// Its values and counts.
    pub counts: Vec<FacetCount>,
}

/// Durable, tenant-scoped storage of normalized events.
///
/// Pass it around as `Arc<dyn EventStore>`. Every read takes the tenant explicitly; no read
/// ever returns, counts or pages another tenant's events.
#[async_trait]
pub trait EventStore: Send + Sync + Debug + 'static {
    /// Stores `events`, idempotently on `(tenant, id)`: an event whose id is already stored
    /// for its tenant replaces the stored one. Every event must carry a tenant and respect
    /// the model's size bounds, otherwise the call fails with `InvalidInput` and nothing of the
    /// batch is written. At most [`MAX_APPEND_BATCH`] events per call.
    async fn append(&self, events: &[UnifiedEvent]) -> Result<AppendOutcome>;

    /// The event `id` of `tenant`, if stored.
    async fn get(&self, tenant: &TenantId, id: Uuid) -> Result<Option<UnifiedEvent>>;

    /// One page of `tenant`'s events matching `filter`, newest first (`occurred_at` desc, id
    /// desc), with exact `hasNextPage`/`hasPreviousPage`.
    async fn query(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<UnifiedEvent>>;

    /// How many of `tenant`'s events match `filter`.
    async fn count(&self, tenant: &TenantId, filter: &EventFilter) -> Result<u64>;

    /// Counts per value of each of `fields` (in the order asked, duplicates ignored) over
    /// `tenant`'s events matching `filter` (the whole filter, including the faceted field).
    async fn facets(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        fields: &[EventFacet],
    ) -> Result<Vec<FacetGroup>>;

    /// Counts per `group` value per time bucket of `bucket` width (aligned to the Unix epoch)
    /// over `tenant`'s events matching `filter`, which must bound the time range (`from` and
    /// `to`) to at most [`MAX_HISTOGRAM_BUCKETS`] buckets. Only non-empty buckets are
    /// returned, by bucket start, then group value.
    async fn histogram(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        bucket: BucketWidth,
        group: EventGroup,
    ) -> Result<Vec<HistogramBucket>>;

    /// Retention: deletes every tenant's events that occurred before `cutoff`; returns how many.
    async fn purge_before(&self, cutoff: Timestamp) -> Result<u64>;
}

/// The stable string of a facet or group value, as stored in backends' index columns.
pub(crate) fn facet_value(event: &UnifiedEvent, facet: EventFacet) -> Option<String> {
    match facet {
        EventFacet::EventType => Some(event.event_type.clone()),
        EventFacet::Severity => Some(names::severity(event.severity).to_owned()),
        EventFacet::Tool => Some(event.tool.as_str().to_owned()),
        EventFacet::Category => Some(names::category(event.category)),
        EventFacet::MachineId => event.machine_id.as_ref().map(|m| m.as_str().to_owned()),
        EventFacet::OrganizationId => event
            .organization_id
            .as_ref()
            .map(|o| o.as_str().to_owned()),
    }
}

/// Dedups the asked facets, keeping the first occurrence's position.
pub(crate) fn distinct_facets(fields: &[EventFacet]) -> Vec<EventFacet> {
    let mut out: Vec<EventFacet> = Vec::with_capacity(fields.len());
    for f in fields {
        if !out.contains(f) {
            out.push(*f);
        }
    }
    out
}

/// Orders counted values (count desc, value asc) and keeps the top [`MAX_FACET_VALUES`].
pub(crate) fn rank_counts(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<FacetCount> {
    let mut out: Vec<FacetCount> = counts
        .into_iter()
        .map(|(value, count)| FacetCount { value, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out.truncate(MAX_FACET_VALUES);
    out
}

/// The wire names of the model's vocabularies.
pub(crate) mod names {
    use crate::model::{EventCategory, Severity};

    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`.
    pub(crate) fn severity(s: Severity) -> &'static str {
        match s {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
        }
    }

    /// The serde name of a category (`AUTH`, `REMOTE_ACCESS`, ...).
    pub(crate) fn category(c: EventCategory) -> String {
        match serde_json::to_value(c) {
            Ok(serde_json::Value::String(s)) => s,
            _ => format!("{c:?}").to_uppercase(),
        }
    }
}

/// The lower-cased text that [`EventFilter::text`] searches: summary, source type and user,
/// separated by a control character that a search text can never contain.
pub(crate) fn search_text(event: &UnifiedEvent) -> String {
    let mut s = String::with_capacity(event.summary.len() + event.source_type.len() + 16);
    s.push_str(&event.summary.to_lowercase());
    s.push('\u{1f}');
    s.push_str(&event.source_type.to_lowercase());
    s.push('\u{1f}');
    if let Some(user) = &event.user {
        s.push_str(&user.to_lowercase());
    }
    s
}
