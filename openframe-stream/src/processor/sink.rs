//! Where processed events are written.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use openframe_core::Result;

use crate::model::UnifiedEvent;
use crate::store::{EventStore, MAX_APPEND_BATCH};

/// Receives enriched events. Writes must be idempotent on the event id (a record may be
/// processed again after a crash or a rebalance) and all-or-nothing per call where the
/// backend allows: a failed call is retried with the same events.
///
/// Errors: `Unavailable`/`Backend` (see `Error::is_retryable`) are retried with backoff;
/// anything else rejects the records (they go to the dead-letter topic).
#[async_trait]
pub trait EventSink: Send + Sync + Debug + 'static {
    /// Writes `events` (in order).
    async fn write(&self, events: &[UnifiedEvent]) -> Result<()>;
}

/// Makes any [`EventStore`] a sink: `append` in chunks of [`MAX_APPEND_BATCH`].
///
/// The processor's lanes write concurrently, one call each at a time. Stores with a single
/// writer should commit concurrent appends together, as the SQLite store does (its group
/// commit): that keeps each lane's encoding on the lane's thread and makes fewer, bigger
/// transactions. (Merging the calls here instead measured no faster, a little slower: the
/// merged batch was then encoded on one thread while the writer waited.)
#[derive(Debug, Clone)]
pub struct StoreSink {
    store: Arc<dyn EventStore>,
}

impl StoreSink {
    /// A sink appending to `store`.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl EventSink for StoreSink {
    async fn write(&self, events: &[UnifiedEvent]) -> Result<()> {
        for chunk in events.chunks(MAX_APPEND_BATCH) {
            self.store.append(chunk).await?;
        }
        Ok(())
    }
}

/// Keeps every written event in memory, in write order, duplicates included (so tests and
/// demos can see exactly what was written).
#[derive(Debug, Default)]
pub struct InMemoryEventSink {
    events: Mutex<Vec<UnifiedEvent>>,
}

impl InMemoryEventSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event written so far, in write order.
    pub fn events(&self) -> Vec<UnifiedEvent> {
        self.lock().clone()
    }

    /// How many events were written.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<UnifiedEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl EventSink for InMemoryEventSink {
    async fn write(&self, events: &[UnifiedEvent]) -> Result<()> {
        self.lock().extend_from_slice(events);
        Ok(())
    }
}
