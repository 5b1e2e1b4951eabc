//! Distributed leases for jobs that one replica at a time must run.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Error, Result, Timestamp};

/// A held lock. Dropping it does not release it: call [`DistributedLock::release`], or let it
/// expire after `lock_at_most`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lock name.
    pub name: String,
    /// The owner token; only its holder can extend or release.
    pub token: String,
    /// When it was acquired (by the backend's clock).
    pub acquired_at: Timestamp,
    /// When it expires unless extended.
    pub expires_at: Timestamp,
}

/// A named lease with ShedLock semantics: held at most `lock_at_most` (a crashed holder
/// cannot block forever), and on release kept until `lock_at_least` has passed since
/// acquisition (so a fast job on one replica is not immediately re-run by another).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::{sync::Arc, time::Duration};
/// use openframe_core::ManualClock;
/// use openframe_data::{DistributedLock, memory::InMemoryLock};
/// let lock = InMemoryLock::new(Arc::new(ManualClock::default()));
/// let lease = lock.try_acquire("offline-sweep", Duration::from_secs(60)).await.unwrap().unwrap();
/// assert!(lock.try_acquire("offline-sweep", Duration::from_secs(60)).await.unwrap().is_none());
/// assert!(lock.release(&lease, Duration::ZERO).await.unwrap());
/// assert!(lock.try_acquire("offline-sweep", Duration::from_secs(60)).await.unwrap().is_some());
/// # });
/// ```
#[async_trait]
pub trait DistributedLock: Send + Sync + Debug + 'static {
    /// Takes the lock for at most `lock_at_most`, or `None` if someone else holds it.
    async fn try_acquire(&self, name: &str, lock_at_most: Duration) -> Result<Option<Lease>>;
    /// Extends a held lease to `now + lock_at_most`; `false` if it was lost.
    async fn extend(&self, lease: &Lease, lock_at_most: Duration) -> Result<Option<Lease>>;
    /// Releases a held lease, keeping it until `acquired_at + lock_at_least`; `false` if it was
    /// no longer ours (expired and maybe taken by another owner, which is left untouched).
    async fn release(&self, lease: &Lease, lock_at_least: Duration) -> Result<bool>;
}

/// Validates a lock name and duration shared by every backend.
pub fn check_lock(name: &str, lock_at_most: Duration) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'));
    if !ok {
        return Err(Error::invalid("name", "must be 1-200 of [A-Za-z0-9-_:.]"));
    }
    if lock_at_most.is_zero() || lock_at_most > Duration::from_secs(24 * 3600) {
        return Err(Error::invalid(
            "lockAtMost",
            "must be between 1 ms and 24 h",
        ));
    }
    Ok(())
}

/// A fresh random owner token.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `at + d`, saturating at the latest representable time instead of overflowing.
pub fn add(at: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}
