//! Batched API key usage: [`UsageRecorder`] counts requests in memory and writes one
//! aggregated [`UsageDelta`] per key per flush, instead of one store write per request.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use openframe_core::{ApiKeyId, Error, TenantId, Timestamp};
use openframe_data::{ApiKeyRepository, UsageDelta};

/// The default time between background flushes.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How many keys one flush writes at a time.
const FLUSH_CONCURRENCY: usize = 8;

/// Pending usage per tenant, then per key.
type Pending = HashMap<TenantId, HashMap<ApiKeyId, UsageDelta>>;

/// Aggregates API key usage in memory and writes it in batches.
///
/// [`record`](Self::record) only adds to an in-memory tally (no I/O, no await). A background
/// task, spawned on the first `record` made inside a Tokio runtime, flushes every interval;
/// [`flush`](Self::flush) writes everything pending on demand (call it on shutdown). Each
/// flush makes one [`ApiKeyRepository::add_usage`] per key. A transient failure
/// ([`Error::is_retryable`]) puts the key's delta back for the next flush; a key that no
/// longer exists (`NotFound`) has its delta dropped. Clones share one tally; the background
/// task stops when the last clone is dropped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::*;
/// use openframe_data::{Repositories, memory::InMemoryDocumentStore};
/// use openframe_security::api_keys::UsageRecorder;
///
/// let repos = Repositories::new(Arc::new(InMemoryDocumentStore::new()));
/// let acme = TenantId::parse("acme")?;
/// let key = ApiKey::new("ci", UserId::generate(), vec![], SystemClock.now());
/// let key = repos.api_keys.insert(&acme, key).await?;
/// let recorder = UsageRecorder::new(repos.api_keys.clone());
/// for _ in 0..3 {
///     recorder.record(&acme, &key.id, false, SystemClock.now());
/// }
/// let flushed = recorder.flush().await;
/// assert_eq!(flushed.written, 1);
/// assert_eq!(repos.api_keys.get(&acme, &key.id).await?.unwrap().total_requests, 3);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct UsageRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    repo: Arc<dyn ApiKeyRepository>,
    pending: Mutex<Pending>,
    /// Serializes flushes, so a finished `flush()` means earlier records are written.
    flushing: tokio::sync::Mutex<()>,
    interval: Duration,
    started: AtomicBool,
}

/// What one [`UsageRecorder::flush`] did, counted in keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Keys whose usage was written.
    pub written: usize,
    /// Keys whose usage failed transiently and was put back for the next flush.
    pub requeued: usize,
    /// Keys whose usage was dropped (the key is gone, or the write was refused).
    pub dropped: usize,
}

impl fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("repo", &self.inner.repo)
            .field("interval", &self.inner.interval)
            .field("pending_keys", &self.pending_keys())
            .finish()
    }
}

impl UsageRecorder {
    /// A recorder writing through `repo`, flushing every [`DEFAULT_FLUSH_INTERVAL`].
    pub fn new(repo: Arc<dyn ApiKeyRepository>) -> Self {
        Self::with_interval(repo, DEFAULT_FLUSH_INTERVAL)
    }

    /// A recorder flushing every `interval` in the background; `Duration::ZERO` means no
    /// background task: usage is written only by [`flush`](Self::flush).
    pub fn with_interval(repo: Arc<dyn ApiKeyRepository>, interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                repo,
                pending: Mutex::new(HashMap::new()),
                flushing: tokio::sync::Mutex::new(()),
                interval,
                started: AtomicBool::new(false),
            }),
        }
    }

    /// The background flush interval (`Duration::ZERO`: none).
    pub fn interval(&self) -> Duration {
        self.inner.interval
    }

    /// Counts one request made with key `key_id` of `tenant` at `at` (`failed` for requests
    /// that failed; successful ones stamp the last use). Memory only; written by the next
    /// flush.
    pub fn record(&self, tenant: &TenantId, key_id: &ApiKeyId, failed: bool, at: Timestamp) {
        let one = UsageDelta::one(failed, at);
        {
            let mut pending = self.inner.lock_pending();
            match pending
                .get_mut(tenant)
                .and_then(|keys| keys.get_mut(key_id))
            {
                Some(delta) => delta.merge(&one),
                None => {
                    pending
                        .entry(tenant.clone())
                        .or_default()
                        .insert(key_id.clone(), one);
                }
            }
        }
        if !self.inner.started.load(Ordering::Relaxed) {
            self.start();
        }
    }

    /// How many keys have usage waiting for a flush.
    pub fn pending_keys(&self) -> usize {
        self.inner.lock_pending().values().map(HashMap::len).sum()
    }

    /// Writes everything recorded so far: one [`ApiKeyRepository::add_usage`] per key.
    /// Waits for a flush already running, so when it returns, every earlier
    /// [`record`](Self::record) has been written, put back (transient failure) or dropped.
    pub async fn flush(&self) -> FlushReport {
        self.inner.flush().await
    }

    /// Spawns the background flusher if there is a runtime and an interval.
    fn start(&self) {
        if self.inner.interval.is_zero() {
            self.inner.started.store(true, Ordering::Relaxed);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // No runtime yet: the next `record` tries again.
        };
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(flush_periodically(weak, self.inner.interval));
    }
}

/// Flushes every `interval` until the recorder is dropped.
async fn flush_periodically(inner: Weak<Inner>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // The first tick is immediate.
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.flush().await;
    }
}

impl Inner {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn flush(&self) -> FlushReport {
        let _running = self.flushing.lock().await;
        let batch = std::mem::take(&mut *self.lock_pending());
        let writes = batch.into_iter().flat_map(|(tenant, keys)| {
            keys.into_iter()
                .map(move |(id, delta)| (tenant.clone(), id, delta))
        });
        let results: Vec<_> = futures::stream::iter(writes)
            .map(|(tenant, id, delta)| async move {
                let result = self.repo.add_usage(&tenant, &id, &delta).await;
                (tenant, id, delta, result)
            })
            .buffer_unordered(FLUSH_CONCURRENCY)
            .collect()
            .await;
        let mut report = FlushReport::default();
        for (tenant, id, delta, result) in results {
            match result {
                Ok(_) => report.written += 1,
                Err(Error::NotFound { .. }) => {
                    tracing::debug!(tenant = %tenant, key_id = %id, requests = delta.requests,
                        "api key usage dropped: the key no longer exists");
                    report.dropped += 1;
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(tenant = %tenant, key_id = %id, error = %e,
                        "api key usage kept for the next flush");
                    self.put_back(tenant, id, &delta);
                    report.requeued += 1;
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant, key_id = %id, error = %e,
                        requests = delta.requests, "api key usage dropped: the write was refused");
                    report.dropped += 1;
                }
            }
        }
        report
    }

    /// Adds `delta` back into the tally (merging with usage recorded meanwhile).
    fn put_back(&self, tenant: TenantId, id: ApiKeyId, delta: &UsageDelta) {
        self.lock_pending()
            .entry(tenant)
            .or_default()
            .entry(id)
            .or_default()
            .merge(delta);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let keys: usize = self.lock_pending().values().map(HashMap::len).sum();
        if keys > 0 {
            tracing::warn!(
                keys,
                "api key usage recorder dropped with unflushed usage; call flush() on shutdown"
            );
        }
    }
}
