//! The scheduled key rotation job: every tenant's active key is rotated once it is older than
//! the policy's rotation period, by one replica at a time.

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{PageRequest, Result};
use openframe_data::{DistributedLock, TenantRepository};

use super::KeyStore;

/// Rotates due keys of every tenant under a distributed lock.
///
/// ```no_run
/// # fn run(job: openframe_security::keys::KeyRotationJob) {
/// let handle = job.spawn(std::time::Duration::from_secs(3600));
/// # drop(handle); }
/// ```
#[derive(Debug, Clone)]
pub struct KeyRotationJob {
    keys: Arc<dyn KeyStore>,
    tenants: Arc<dyn TenantRepository>,
    lock: Arc<dyn DistributedLock>,
}

/// The lock name replicas share.
pub const ROTATION_LOCK: &str = "openframe:key-rotation";

impl KeyRotationJob {
    /// A job over `keys` for every tenant in `tenants`, serialized by `lock`.
    pub fn new(
        keys: Arc<dyn KeyStore>,
        tenants: Arc<dyn TenantRepository>,
        lock: Arc<dyn DistributedLock>,
    ) -> Self {
        Self {
            keys,
            tenants,
            lock,
        }
    }

    /// One pass: returns how many tenants were rotated, or `None` if another replica holds the
    /// lock. A failing tenant is logged and skipped; the others still rotate.
    pub async fn run_once(&self) -> Result<Option<usize>> {
        let Some(lease) = self
            .lock
            .try_acquire(ROTATION_LOCK, Duration::from_secs(600))
            .await?
        else {
            return Ok(None);
        };
        let mut rotated = 0;
        let mut request = PageRequest::first(100);
        let outcome: Result<()> = async {
            loop {
                let page = self.tenants.list(&request).await?;
                for tenant in page.nodes() {
                    match self.keys.rotate_if_due(&tenant.id).await {
                        Ok(true) => {
                            rotated += 1;
                            tracing::info!(tenant = %tenant.id, "signing key rotated");
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(tenant = %tenant.id, error = %e, "key rotation failed")
                        }
                    }
                }
                match (page.page_info.has_next_page, page.page_info.end_cursor) {
                    (true, Some(cursor)) => request = PageRequest::first(100).after(cursor),
                    _ => return Ok(()),
                }
            }
        }
        .await;
        // Hold the lock a minute at least, so a fast pass is not repeated at once elsewhere.
        self.lock.release(&lease, Duration::from_secs(60)).await?;
        outcome.map(|()| Some(rotated))
    }

    /// Runs [`run_once`](Self::run_once) every `interval` until the task is aborted.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                if let Err(e) = self.run_once().await {
                    tracing::warn!(error = %e, "key rotation pass failed");
                }
            }
        })
    }
}
