//! Cache, distributed locks and rate limits: Redis when configured, else in process.

use std::sync::Arc;

use openframe_core::{Clock, Result};
use openframe_data::memory::{InMemoryCache, InMemoryLock};
use openframe_data::{Cache, DistributedLock};
use openframe_security::ratelimit::RateLimiter;
use openframe_security::ratelimit::memory::InMemoryRateLimiter;

use super::Probe;
use crate::config::CoordinationBackend;

/// The three shared-state services.
pub(super) struct Coordination {
    pub(super) cache: Arc<dyn Cache>,
    pub(super) lock: Arc<dyn DistributedLock>,
    pub(super) limiter: Arc<dyn RateLimiter>,
}

/// Opens them; with Redis, probes for the cache and the locks.
pub(super) async fn open(
    backend: &CoordinationBackend,
    clock: Arc<dyn Clock>,
) -> Result<(Coordination, Vec<Probe>)> {
    match backend {
        CoordinationBackend::InProcess => Ok((
            Coordination {
                cache: Arc::new(InMemoryCache::new(clock.clone())),
                lock: Arc::new(InMemoryLock::new(clock.clone())),
                limiter: Arc::new(InMemoryRateLimiter::new(clock)),
            },
            vec![Probe::in_process("redis", "in-process")],
        )),
        #[cfg(feature = "redis")]
        CoordinationBackend::Redis { url, key_prefix } => {
            redis(url.expose(), key_prefix, clock).await
        }
        #[cfg(not(feature = "redis"))]
        CoordinationBackend::Redis { .. } => Err(openframe_core::Error::invalid(
            "redis.url",
            "this build has no Redis support (feature `redis` of openframe-server)",
        )),
    }
}

/// Redis cache, lock and rate limiter (each with its own reconnecting connection).
#[cfg(feature = "redis")]
async fn redis(
    url: &str,
    key_prefix: &str,
    clock: Arc<dyn Clock>,
) -> Result<(Coordination, Vec<Probe>)> {
    use futures::FutureExt;
    use openframe_core::TenantId;
    use openframe_data::CacheKey;
    use openframe_data::redis::{RedisCache, RedisLock};
    use openframe_security::ratelimit::fail_policy::{FailPolicy, Failover};
    use openframe_security::ratelimit::redis::RedisRateLimiter;
    use std::time::Duration;

    let cache = Arc::new(
        RedisCache::connect(url, clock.clone())
            .await?
            .with_key_prefix(key_prefix),
    );
    let lock = Arc::new(
        RedisLock::connect(url, clock.clone())
            .await?
            .with_key_prefix(key_prefix),
    );
    // A Redis outage must not turn every request into a 500: allow (fail open) and log.
    // Login throttling stays effective through the argon2 cost.
    let limiter = Arc::new(Failover::new(
        RedisRateLimiter::connect(url, clock.clone())
            .await?
            .with_key_prefix(key_prefix),
        FailPolicy::Open,
    ));
    let probe_cache: Arc<dyn Cache> = cache.clone();
    let probe = Probe::new("redis", "redis", move || {
        let cache = probe_cache.clone();
        async move {
            let key = CacheKey::new(&TenantId::parse("openframe")?, "readyz", "ping")?;
            cache.get(&key).await.map(|_| ())
        }
        .boxed()
    });
    let probe_lock: Arc<dyn DistributedLock> = lock.clone();
    let lock_probe = Probe::new("locks", "redis", move || {
        let lock = probe_lock.clone();
        async move {
            // Held by another replica's probe is fine: Redis answered.
            if let Some(lease) = lock
                .try_acquire("openframe:readyz", Duration::from_secs(5))
                .await?
            {
                lock.release(&lease, Duration::ZERO).await?;
            }
            Ok(())
        }
        .boxed()
    });
    Ok((
        Coordination {
            cache,
            lock,
            limiter,
        },
        vec![probe, lock_probe],
    ))
}
