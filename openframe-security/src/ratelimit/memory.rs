//! [`InMemoryRateLimiter`]: GCRA in process memory, for one replica or for tests.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use openframe_core::{Clock, Result};

use super::gcra::{self, evaluate};
use super::{Decision, Quota, RateLimitKey, RateLimiter};

/// How many independently locked shards the keys are spread over.
const SHARDS: usize = 32;
/// A shard is swept for expired state once it holds at least this many keys.
const MIN_SWEEP: usize = 256;

/// The state of one key: the `TAT` (epoch µs) of each quota it was checked against.
type KeyState = Vec<(Quota, i64)>;

/// One lock's worth of keys.
#[derive(Debug, Default)]
struct Shard {
    keys: HashMap<String, KeyState>,
    /// Sweep expired state when `keys` reaches this size.
    sweep_at: usize,
}

impl Shard {
    /// Drops every quota state that is fully replenished at `now` (equivalent to no state),
    /// and keys left without state. Returns how many keys were dropped.
    fn sweep(&mut self, now: i64) -> usize {
        let before = self.keys.len();
        self.keys.retain(|_, states| {
            states.retain(|(_, tat)| *tat > now);
            !states.is_empty()
        });
        self.sweep_at = (self.keys.len() * 2).max(MIN_SWEEP);
        before - self.keys.len()
    }
}

/// A [`RateLimiter`] in process memory: GCRA per (key, quota), following the injected clock.
///
/// Keys are spread over lock shards, so concurrent checks of different keys rarely wait for
/// each other, while all quotas of one key are decided under one lock (a request is counted
/// in all of its quotas or in none). Memory stays bounded by the keys in active use: state
/// that has fully replenished is equivalent to no state and is dropped when its key is next
/// written, and a shard sweeps all such state whenever it has doubled since its last sweep.
///
/// Each replica has its own counts; use the Redis limiter (feature `redis`) to share them.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::SystemClock;
/// use openframe_security::ratelimit::{Quota, RateLimitKey, RateLimiter};
/// use openframe_security::ratelimit::memory::InMemoryRateLimiter;
///
/// let limiter = InMemoryRateLimiter::new(Arc::new(SystemClock));
/// let key = RateLimitKey::new("ip", None, "203.0.113.7")?;
/// let decision = limiter.check(&key, &[Quota::per_minute(60)]).await?;
/// assert!(decision.allowed);
/// assert_eq!(decision.remaining, 59);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct InMemoryRateLimiter {
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl InMemoryRateLimiter {
    /// An empty limiter on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        keys: HashMap::new(),
                        sweep_at: MIN_SWEEP,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// How many keys currently hold state (including state that has replenished but was not
    /// swept yet).
    pub fn tracked_keys(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock(i).keys.len())
            .sum()
    }

    /// Drops all fully replenished state now; returns how many keys were dropped. Not needed
    /// for bounded memory (shards sweep themselves as they grow), but useful before a
    /// [`tracked_keys`](Self::tracked_keys) reading.
    pub fn purge_expired(&self) -> usize {
        let now = gcra::micros(self.clock.now());
        (0..self.shards.len())
            .map(|i| self.lock(i).sweep(now))
            .sum()
    }

    /// The shard index of `key`.
    fn shard_of(&self, key: &RateLimitKey) -> usize {
        // Truncating the hash is fine: only its low bits pick the shard.
        self.hasher.hash_one(key.as_str()) as usize % self.shards.len()
    }

    /// Locks shard `i`. The state under the lock is consistent after every statement, so a
    /// panic elsewhere that poisoned the lock does not invalidate it.
    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision> {
        Quota::validate_all(quotas)?;
        let now = gcra::micros(self.clock.now());
        let mut shard = self.lock(self.shard_of(key));
        let stored: Vec<Option<i64>> = match shard.keys.get(key.as_str()) {
            Some(states) => quotas
                .iter()
                .map(|q| states.iter().find(|(s, _)| s == q).map(|(_, tat)| *tat))
                .collect(),
            None => vec![None; quotas.len()],
        };
        let outcome = evaluate(now, quotas, &stored);
        if let Some(new_tats) = outcome.new_tats {
            if !shard.keys.contains_key(key.as_str()) && shard.keys.len() >= shard.sweep_at {
                shard.sweep(now);
            }
            let states = shard.keys.entry(key.as_str().to_owned()).or_default();
            states.retain(|(q, tat)| *tat > now && !quotas.contains(q));
            states.extend(quotas.iter().copied().zip(new_tats));
        }
        Ok(outcome.decision)
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<()> {
        self.lock(self.shard_of(key)).keys.remove(key.as_str());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openframe_core::ManualClock;

    use super::*;

    #[tokio::test]
    async fn replenished_state_is_dropped_as_shards_grow() {
        let clock = Arc::new(ManualClock::default());
        let limiter = InMemoryRateLimiter::new(clock.clone());
        let quota = [Quota::per_minute(5)];
        for i in 0..5_000 {
            let key = RateLimitKey::new("ip", None, &format!("a{i}")).unwrap();
            limiter.check(&key, &quota).await.unwrap();
        }
        assert_eq!(limiter.tracked_keys(), 5_000);
        // One request on a 5/min quota is replenished after 12 s.
        clock.advance(Duration::from_secs(12));
        for i in 0..5_000 {
            let key = RateLimitKey::new("ip", None, &format!("b{i}")).unwrap();
            limiter.check(&key, &quota).await.unwrap();
        }
        let tracked = limiter.tracked_keys();
        assert!(tracked < 8_000, "expired keys were swept: {tracked}");
        assert!(tracked >= 5_000, "live keys are kept: {tracked}");
        clock.advance(Duration::from_secs(12));
        assert!(limiter.purge_expired() > 0);
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn a_key_keeps_only_live_quota_state() {
        let clock = Arc::new(ManualClock::default());
        let limiter = InMemoryRateLimiter::new(clock.clone());
        let key = RateLimitKey::new("ip", None, "x").unwrap();
        for limit in 1..=50 {
            limiter
                .check(&key, &[Quota::per_minute(limit)])
                .await
                .unwrap();
            clock.advance(Duration::from_secs(61));
        }
        let shard = limiter.lock(limiter.shard_of(&key));
        assert_eq!(shard.keys.get(key.as_str()).map(Vec::len), Some(1));
    }
}
