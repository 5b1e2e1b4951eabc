//! A short-lived cache of what [`ApiKeyService::authenticate`](super::ApiKeyService::authenticate)
//! read from storage, so a busy key does not cost two storage lookups on every request.
//!
//! - An entry holds the credential's MAC, the owning tenant and the key's metadata, stamped
//!   with the (injected) clock's time it was read.
//! - A hit skips only the lookups: the presented secret is still checked against the MAC in
//!   constant time, and enabled/expiry against the clock, on every request.
//! - An entry lives at most the TTL. Revoking, regenerating or enabling/disabling a key
//!   through the same service drops its entry at once; a change made elsewhere (another
//!   replica, or a direct repository write) is seen when the entry expires. The TTL therefore
//!   bounds how long a revoked or disabled key can keep working on another replica.
//! - Only successful lookups are cached: unknown ids and wrong secrets always reach storage,
//!   and a wrong secret never replaces a good entry.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openframe_core::{ApiKey, TenantId, Timestamp};

/// How long a verified key is trusted without reading storage again, unless configured:
/// five seconds.
pub const DEFAULT_AUTH_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most keys held at once; beyond it, expired entries are dropped first, then all.
const CAPACITY: usize = 10_000;

/// One key as storage had it.
#[derive(Clone)]
pub(super) struct CachedKey {
    /// The credential's HMAC of the key id and secret.
    pub(super) mac: [u8; 32],
    /// The tenant that owns the key.
    pub(super) tenant: TenantId,
    /// The key's metadata (usage counters as of `read_at`).
    pub(super) key: ApiKey,
    /// When storage was read.
    pub(super) read_at: Timestamp,
}

/// Verified keys by key id, for at most `ttl`.
pub(super) struct KeyCache {
    ttl: Option<chrono::Duration>,
    entries: RwLock<HashMap<String, CachedKey>>,
    /// Bumped by every [`forget`](Self::forget): a read that started before a change must not
    /// cache what it read.
    generation: AtomicU64,
}

impl KeyCache {
    /// A cache keeping entries for `ttl`; zero disables it.
    pub(super) fn new(ttl: Duration) -> Self {
        let ttl = chrono::Duration::from_std(ttl)
            .ok()
            .filter(|ttl| *ttl > chrono::Duration::zero());
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation to pass to [`put`](Self::put), taken before reading storage.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether entries are kept at all.
    pub(super) fn enabled(&self) -> bool {
        self.ttl.is_some()
    }

    /// The entry for `id` if it was read less than the TTL before `now`.
    pub(super) fn get(&self, id: &str, now: Timestamp) -> Option<CachedKey> {
        let ttl = self.ttl?;
        let entries = self.entries.read().ok()?;
        entries.get(id).filter(|e| fresh(e, now, ttl)).cloned()
    }

    /// Keeps `entry` for key `id`, read from storage after [`generation`](Self::generation)
    /// returned `seen`; dropped if some key was forgotten since.
    pub(super) fn put(&self, id: &str, entry: CachedKey, seen: u64) {
        let Some(ttl) = self.ttl else { return };
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != seen {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(id) {
            let now = entry.read_at;
            entries.retain(|_, e| fresh(e, now, ttl));
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(id.to_owned(), entry);
    }

    /// Forgets key `id` (it was revoked, regenerated, enabled or disabled).
    pub(super) fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.remove(id);
        }
    }
}

/// Read less than `ttl` before `now` (and not in `now`'s future, should the clock step back).
fn fresh(entry: &CachedKey, now: Timestamp, ttl: chrono::Duration) -> bool {
    entry.read_at <= now && now - entry.read_at < ttl
}

#[cfg(test)]
mod tests {
    use super::*;
    use openframe_core::UserId;

    fn entry(read_at: Timestamp) -> CachedKey {
        CachedKey {
            mac: [1; 32],
            tenant: TenantId::parse("acme").unwrap(),
            key: ApiKey::new(
                "ci",
                UserId::generate(),
                vec!["devices:read".into()],
                read_at,
            ),
            read_at,
        }
    }

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn an_entry_lives_exactly_the_ttl() {
        let cache = KeyCache::new(Duration::from_secs(5));
        cache.put("ak_1", entry(at(0)), 0);
        assert!(cache.get("ak_1", at(0)).is_some());
        assert!(cache.get("ak_1", at(4)).is_some());
        assert!(cache.get("ak_1", at(5)).is_none());
        assert!(cache.get("ak_2", at(0)).is_none());
    }

    #[test]
    fn a_clock_stepping_back_misses() {
        let cache = KeyCache::new(Duration::from_secs(5));
        cache.put("ak_1", entry(at(10)), 0);
        assert!(cache.get("ak_1", at(9)).is_none());
    }

    #[test]
    fn forget_drops_the_entry() {
        let cache = KeyCache::new(Duration::from_secs(5));
        cache.put("ak_1", entry(at(0)), 0);
        cache.forget("ak_1");
        assert!(cache.get("ak_1", at(0)).is_none());
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = KeyCache::new(Duration::from_secs(5));
        let seen = cache.generation();
        cache.forget("ak_1");
        cache.put("ak_1", entry(at(0)), seen);
        assert!(cache.get("ak_1", at(0)).is_none());
        cache.put("ak_1", entry(at(0)), cache.generation());
        assert!(cache.get("ak_1", at(0)).is_some());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = KeyCache::new(Duration::ZERO);
        assert!(!cache.enabled());
        cache.put("ak_1", entry(at(0)), 0);
        assert!(cache.get("ak_1", at(0)).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let cache = KeyCache::new(Duration::from_secs(5));
        for i in 0..CAPACITY {
            cache.put(&format!("ak_{i}"), entry(at(0)), 0);
        }
        cache.put("ak_new", entry(at(10)), 0);
        assert!(cache.get("ak_new", at(10)).is_some());
        assert_eq!(cache.entries.read().unwrap().len(), 1);
    }

    #[test]
    fn a_full_cache_of_fresh_entries_starts_over() {
        let cache = KeyCache::new(Duration::from_secs(5));
        for i in 0..CAPACITY {
            cache.put(&format!("ak_{i}"), entry(at(0)), 0);
        }
        cache.put("ak_new", entry(at(1)), 0);
        assert!(cache.get("ak_new", at(1)).is_some());
        assert!(cache.get("ak_0", at(1)).is_none());
    }
}
