//! The document store: SQLite (default), MongoDB or memory.

use std::sync::Arc;

use futures::FutureExt;
use openframe_core::{Clock, Error, PageRequest, Result};
use openframe_data::memory::InMemoryDocumentStore;
use openframe_data::sqlite::SqliteDocumentStore;
use openframe_data::store::DocumentStore;
use openframe_data::{Repositories, TenantRepository};

use super::Probe;
use crate::config::StorageBackend;

/// Opens the store and a probe that lists one tenant (a real round trip).
pub(super) async fn open(
    backend: &StorageBackend,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<dyn DocumentStore>, Probe)> {
    let store: Arc<dyn DocumentStore> = match backend {
        StorageBackend::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::Internal(format!("cannot create {}: {e}", parent.display()).into())
                })?;
            }
            Arc::new(SqliteDocumentStore::open(path).await?)
        }
        #[cfg(feature = "mongodb")]
        StorageBackend::Mongo { url, database } => Arc::new(
            openframe_data::mongodb::MongoDocumentStoreBuilder::new(
                url.expose(),
                database.as_str(),
            )
            .build()
            .await?,
        ),
        #[cfg(not(feature = "mongodb"))]
        StorageBackend::Mongo { .. } => {
            return Err(Error::invalid(
                "database.url",
                "this build has no MongoDB support (feature `mongodb` of openframe-server)",
            ));
        }
        StorageBackend::Memory => Arc::new(InMemoryDocumentStore::new()),
    };
    let probe = match backend {
        StorageBackend::Memory => Probe::in_process("database", backend.name()),
        _ => {
            let tenants: Arc<dyn TenantRepository> =
                Repositories::with_clock(store.clone(), clock).tenants;
            Probe::new("database", backend.name(), move || {
                let tenants = tenants.clone();
                async move { tenants.list(&PageRequest::first(1)).await.map(|_| ()) }.boxed()
            })
        }
    };
    Ok((store, probe))
}
