//! The conformance kit against the in-memory backends.

use std::sync::Arc;

use openframe_core::ManualClock;
use openframe_data::memory::{InMemoryCache, InMemoryDocumentStore, InMemoryLock};
use openframe_data::store::DocumentStore;
use openframe_data::{Cache, DistributedLock};

async fn make_store() -> Option<Arc<dyn DocumentStore>> {
    Some(Arc::new(InMemoryDocumentStore::new()))
}

async fn make_cache(clock: Arc<ManualClock>) -> Option<Arc<dyn Cache>> {
    Some(Arc::new(InMemoryCache::new(clock)))
}

async fn make_lock(clock: Arc<ManualClock>) -> Option<Arc<dyn DistributedLock>> {
    Some(Arc::new(InMemoryLock::new(clock)))
}

mod store {
    openframe_data::document_store_conformance!(super::make_store);
}
mod cache {
    openframe_data::cache_conformance!(super::make_cache);
}
mod lock {
    openframe_data::lock_conformance!(super::make_lock);
}
