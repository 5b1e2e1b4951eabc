//! The event store conformance suite on every backend: memory always, SQLite with the
//! `sqlite` feature (a fresh file per test), MongoDB with the `mongodb` feature when
//! `OPENFRAME_TEST_MONGODB_URL` is set (a fresh random database per test, dropped after).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use openframe_stream::store::EventStore;

mod memory {
    use super::*;
    use openframe_stream::store::memory::InMemoryEventStore;

    async fn make() -> Option<Arc<dyn EventStore>> {
        Some(Arc::new(InMemoryEventStore::new()))
    }

    openframe_stream::event_store_conformance!(make);
}

/// A store that cleans up after itself (removes its file, drops its database) when dropped.
#[cfg(any(feature = "sqlite", feature = "mongodb"))]
mod scratch {
    use std::fmt;
    use std::sync::Arc;

    use async_trait::async_trait;
    use openframe_core::{Page, PageRequest, Result, TenantId, Timestamp};
    use openframe_stream::model::UnifiedEvent;
    use openframe_stream::store::{
        AppendOutcome, BucketWidth, EventFacet, EventFilter, EventGroup, EventStore, FacetGroup,
        HistogramBucket,
    };
    use uuid::Uuid;

    pub(crate) struct Scratch<S> {
        pub(crate) store: Arc<S>,
        pub(crate) cleanup: Box<dyn Fn() + Send + Sync>,
    }

    impl<S> Drop for Scratch<S> {
        fn drop(&mut self) {
            (self.cleanup)();
        }
    }

    impl<S: fmt::Debug> fmt::Debug for Scratch<S> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Scratch")
                .field("store", &self.store)
                .finish_non_exhaustive()
        }
    }

    #[async_trait]
    impl<S: EventStore> EventStore for Scratch<S> {
        async fn append(&self, events: &[UnifiedEvent]) -> Result<AppendOutcome> {
            self.store.append(events).await
        }
        async fn get(&self, tenant: &TenantId, id: Uuid) -> Result<Option<UnifiedEvent>> {
            self.store.get(tenant, id).await
        }
        async fn query(
            &self,
            tenant: &TenantId,
            filter: &EventFilter,
            page: &PageRequest,
        ) -> Result<Page<UnifiedEvent>> {
            self.store.query(tenant, filter, page).await
        }
        async fn count(&self, tenant: &TenantId, filter: &EventFilter) -> Result<u64> {
            self.store.count(tenant, filter).await
        }
        async fn facets(
            &self,
            tenant: &TenantId,
            filter: &EventFilter,
            fields: &[EventFacet],
        ) -> Result<Vec<FacetGroup>> {
            self.store.facets(tenant, filter, fields).await
        }
        async fn histogram(
            &self,
            tenant: &TenantId,
            filter: &EventFilter,
            bucket: BucketWidth,
            group: EventGroup,
        ) -> Result<Vec<HistogramBucket>> {
            self.store.histogram(tenant, filter, bucket, group).await
        }
        async fn purge_before(&self, cutoff: Timestamp) -> Result<u64> {
            self.store.purge_before(cutoff).await
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use openframe_stream::store::sqlite::SqliteEventStore;

    async fn make() -> Option<Arc<dyn EventStore>> {
        let dir =
            std::env::temp_dir().join(format!("of-event-store-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteEventStore::open(dir.join("events.db")).await.unwrap();
        Some(Arc::new(scratch::Scratch {
            store: Arc::new(store),
            cleanup: Box::new(move || {
                std::fs::remove_dir_all(&dir).ok();
            }),
        }))
    }

    openframe_stream::event_store_conformance!(make);
}

#[cfg(feature = "mongodb")]
mod mongodb {
    use super::*;
    use openframe_stream::store::mongodb::{MongoEventStore, MongoEventStoreBuilder};

    const URL_VAR: &str = "OPENFRAME_TEST_MONGODB_URL";

    async fn make() -> Option<Arc<dyn EventStore>> {
        let url = match std::env::var(URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                println!("skipped: set {URL_VAR} to run the MongoDB event store suite");
                return None;
            }
        };
        let database = format!(
            "openframe_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        let store: Arc<MongoEventStore> = Arc::new(
            MongoEventStoreBuilder::new(url, database.clone())
                .with_retention(std::time::Duration::from_secs(90 * 86_400))
                .build()
                .await
                .expect("connect to the test MongoDB"),
        );
        let dropper = store.clone();
        Some(Arc::new(scratch::Scratch {
            store,
            cleanup: Box::new(move || {
                let handle = tokio::runtime::Handle::current();
                let dropped =
                    tokio::task::block_in_place(|| handle.block_on(dropper.drop_database()));
                if let Err(e) = dropped {
                    eprintln!("could not drop test database {database}: {e}");
                }
            }),
        }))
    }

    openframe_stream::event_store_conformance!(make);
}
