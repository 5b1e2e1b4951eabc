//! The Redis cache and lock against the shared conformance suites, plus Redis-specific checks.
//!
//! Runs when `OPENFRAME_TEST_REDIS_URL` is set (`scripts/test-services.sh` starts a throwaway
//! server and sets it); otherwise every test prints a `skipped:` line and passes. Each test
//! works in its own random key prefix and deletes its keys when done.

#![cfg(feature = "redis")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Clock, ManualClock, Result, SystemClock, TenantId};
use openframe_data::memory::{InMemoryCache, InMemoryLock};
use openframe_data::redis::{RedisCache, RedisLock};
use openframe_data::{Cache, CacheKey, DistributedLock, Lease};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const URL_VAR: &str = "OPENFRAME_TEST_REDIS_URL";

/// A random key namespace on the test server (keys deleted on drop).
#[derive(Debug)]
struct Namespace(openframe_data::testkit::RedisNamespace);

impl std::ops::Deref for Namespace {
    type Target = openframe_data::testkit::RedisNamespace;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Namespace {
    /// A fresh namespace, or `None` (after printing why) when no server is configured.
    fn new() -> Option<Self> {
        openframe_data::testkit::RedisNamespace::new("the Redis conformance suite").map(Self)
    }

    async fn cache(&self, clock: Arc<dyn Clock>) -> RedisCache {
        RedisCache::connect(&self.url, clock)
            .await
            .expect("connect to the test Redis")
            .with_key_prefix(self.prefix.as_str())
    }

    async fn lock(&self, clock: Arc<dyn Clock>) -> RedisLock {
        RedisLock::connect(&self.url, clock)
            .await
            .expect("connect to the test Redis")
            .with_key_prefix(self.prefix.as_str())
    }

    /// A raw connection, to inspect what the backends wrote.
    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("parse the test Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test Redis")
    }
}

/// A backend that owns its namespace, so the keys go when the suite drops it.
#[derive(Debug)]
struct Scoped<T> {
    inner: T,
    _namespace: Namespace,
}

#[async_trait]
impl Cache for Scoped<RedisCache> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &CacheKey, value: Vec<u8>, ttl: Duration) -> Result<()> {
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        self.inner.delete(key).await
    }
}

#[async_trait]
impl DistributedLock for Scoped<RedisLock> {
    async fn try_acquire(&self, name: &str, lock_at_most: Duration) -> Result<Option<Lease>> {
        self.inner.try_acquire(name, lock_at_most).await
    }
    async fn extend(&self, lease: &Lease, lock_at_most: Duration) -> Result<Option<Lease>> {
        self.inner.extend(lease, lock_at_most).await
    }
    async fn release(&self, lease: &Lease, lock_at_least: Duration) -> Result<bool> {
        self.inner.release(lease, lock_at_least).await
    }
}

async fn make_cache(clock: Arc<ManualClock>) -> Option<Arc<dyn Cache>> {
    let namespace = Namespace::new()?;
    let inner = namespace.cache(clock).await;
    Some(Arc::new(Scoped {
        inner,
        _namespace: namespace,
    }))
}

async fn make_lock(clock: Arc<ManualClock>) -> Option<Arc<dyn DistributedLock>> {
    let namespace = Namespace::new()?;
    let inner = namespace.lock(clock).await;
    Some(Arc::new(Scoped {
        inner,
        _namespace: namespace,
    }))
}

mod cache {
    openframe_data::cache_conformance!(super::make_cache);
}

mod lock {
    openframe_data::lock_conformance!(super::make_lock);
}

// ---- Redis-specific checks ----

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemClock.now()))
}

fn tenant() -> TenantId {
    TenantId::parse(format!("t{:012x}", rand::random::<u64>() >> 16)).expect("valid tenant")
}

async fn pttl(con: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(con)
        .await
        .expect("PTTL")
}

async fn hget(
    con: &mut redis::aio::MultiplexedConnection,
    key: &str,
    field: &str,
) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(con)
        .await
        .expect("HGET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_keys_carry_the_clock_expiry_and_a_real_ttl() {
    let Some(ns) = Namespace::new() else { return };
    let clock = clock();
    let cache = ns.cache(clock.clone()).await;
    let mut raw = ns.raw().await;
    let key = CacheKey::new(&tenant(), "machines", "agent-1").expect("key");
    let redis_key = format!("{}{}", ns.prefix, key.as_str());

    cache
        .set(&key, b"v".to_vec(), Duration::from_secs(60))
        .await
        .expect("set");
    let ttl = pttl(&mut raw, &redis_key).await;
    assert!((50_000..=60_000).contains(&ttl), "PTTL {ttl}");
    let expiry = hget(&mut raw, &redis_key, "e")
        .await
        .expect("stored expiry");
    assert_eq!(
        expiry,
        (clock.now().timestamp_millis() + 60_000).to_string()
    );

    // Far past the clock expiry, a read removes the entry for good.
    clock.advance(Duration::from_secs(61));
    assert_eq!(cache.get(&key).await.expect("get"), None);
    assert_eq!(
        pttl(&mut raw, &redis_key).await,
        -2,
        "the expired key is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_keys_carry_a_real_ttl_through_acquire_extend_and_release() {
    let Some(ns) = Namespace::new() else { return };
    let clock = clock();
    let lock = ns.lock(clock.clone()).await;
    let mut raw = ns.raw().await;
    let redis_key = format!("{}of:lock:ttl-job", ns.prefix);

    let lease = lock
        .try_acquire("ttl-job", Duration::from_secs(30))
        .await
        .expect("acquire")
        .expect("free");
    let ttl = pttl(&mut raw, &redis_key).await;
    assert!(
        (20_000..=30_000).contains(&ttl),
        "after acquire: PTTL {ttl}"
    );

    let lease = lock
        .extend(&lease, Duration::from_secs(300))
        .await
        .expect("extend")
        .expect("ours");
    let ttl = pttl(&mut raw, &redis_key).await;
    assert!(
        (290_000..=300_000).contains(&ttl),
        "after extend: PTTL {ttl}"
    );

    clock.advance(Duration::from_secs(10));
    assert!(
        lock.release(&lease, Duration::from_secs(100))
            .await
            .expect("release")
    );
    let ttl = pttl(&mut raw, &redis_key).await;
    assert!(
        (80_000..=90_000).contains(&ttl),
        "kept until lock_at_least: PTTL {ttl}"
    );
    let expiry = hget(&mut raw, &redis_key, "e")
        .await
        .expect("stored expiry");
    assert_eq!(
        expiry,
        (lease.acquired_at.timestamp_millis() + 100_000).to_string()
    );

    clock.advance(Duration::from_secs(90));
    let again = lock
        .try_acquire("ttl-job", Duration::from_secs(30))
        .await
        .expect("acquire")
        .expect("free after lock_at_least");
    assert!(lock.release(&again, Duration::ZERO).await.expect("release"));
    assert_eq!(
        pttl(&mut raw, &redis_key).await,
        -2,
        "released without lock_at_least: deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_by_a_non_owner_leaves_the_owners_lock_intact() {
    let Some(ns) = Namespace::new() else { return };
    let clock = clock();
    // Two replicas: separate connections, same server and prefix.
    let (a, b) = (ns.lock(clock.clone()).await, ns.lock(clock.clone()).await);
    let mut raw = ns.raw().await;
    let redis_key = format!("{}of:lock:nightly", ns.prefix);

    let first = a
        .try_acquire("nightly", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free");
    clock.advance(Duration::from_secs(60));
    let owner = b
        .try_acquire("nightly", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("expired, so free");
    let ttl_before = pttl(&mut raw, &redis_key).await;

    let forged = Lease {
        token: "not-the-owner".into(),
        ..owner.clone()
    };
    assert!(!a.release(&forged, Duration::ZERO).await.expect("release"));
    assert!(
        !a.release(&first, Duration::from_secs(3600))
            .await
            .expect("release"),
        "expired holder"
    );
    assert!(
        a.extend(&first, Duration::from_secs(3600))
            .await
            .expect("extend")
            .is_none()
    );

    assert_eq!(
        hget(&mut raw, &redis_key, "t").await.as_deref(),
        Some(owner.token.as_str())
    );
    assert_eq!(
        hget(&mut raw, &redis_key, "e").await,
        Some(owner.expires_at.timestamp_millis().to_string())
    );
    let ttl_after = pttl(&mut raw, &redis_key).await;
    assert!(
        ttl_after > 0 && ttl_after <= ttl_before,
        "TTL untouched: {ttl_before} -> {ttl_after}"
    );
    assert!(
        a.try_acquire("nightly", Duration::from_secs(60))
            .await
            .expect("acquire")
            .is_none()
    );
    assert!(b.release(&owner, Duration::ZERO).await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquire_from_twenty_replicas_has_one_winner() {
    let Some(ns) = Namespace::new() else { return };
    let clock = clock();
    let mut replicas = Vec::new();
    for _ in 0..20 {
        replicas.push(ns.lock(clock.clone()).await);
    }
    for round in 0..5 {
        let name = format!("race-{round}");
        let tasks: Vec<_> = replicas
            .iter()
            .cloned()
            .map(|lock| {
                let name = name.clone();
                tokio::spawn(async move { lock.try_acquire(&name, Duration::from_secs(60)).await })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            if let Some(lease) = task.await.expect("task").expect("acquire") {
                winners.push(lease);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        let mut raw = ns.raw().await;
        let stored = hget(&mut raw, &format!("{}of:lock:{name}", ns.prefix), "t").await;
        assert_eq!(stored.as_deref(), Some(winners[0].token.as_str()));
    }
}

/// A clock step for the differential walks: around the millisecond boundaries of the 30 s and
/// 60 s durations they use. Those durations are also the real Redis TTLs, which keep running
/// while the test clock stands still, so a walk must finish (in real time) well within 30 s.
fn step_of_time(rng: &mut StdRng) -> Duration {
    Duration::from_millis([0, 1, 999, 1_000, 5_000, 29_999, 30_000][rng.random_range(0..7)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_matches_the_in_memory_backend_step_by_step() {
    let Some(ns) = Namespace::new() else { return };
    let clock = clock();
    let redis = ns.cache(clock.clone()).await;
    let memory = InMemoryCache::new(clock.clone());
    let t = tenant();
    let keys: Vec<CacheKey> = (0..4)
        .map(|i| CacheKey::new(&t, "diff", &format!("k{i}")).expect("key"))
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let mut seen = BTreeSet::new();
    for step in 0..400 {
        let key = &keys[rng.random_range(0..keys.len())];
        match rng.random_range(0..5) {
            0 | 1 => {
                let len = rng.random_range(0..16);
                let value: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                let ttl = Duration::from_millis([30_000, 30_001, 60_000][rng.random_range(0..3)]);
                let r = redis
                    .set(key, value.clone(), ttl)
                    .await
                    .map_err(|e| e.to_string());
                let m = memory.set(key, value, ttl).await.map_err(|e| e.to_string());
                assert_eq!(r, m, "step {step}: set");
            }
            2 => {
                let r = redis.get(key).await.expect("redis get");
                let m = memory.get(key).await.expect("memory get");
                assert_eq!(r, m, "step {step}: get");
                seen.insert(("get", r.is_some()));
            }
            3 => {
                let r = redis.delete(key).await.expect("redis delete");
                let m = memory.delete(key).await.expect("memory delete");
                assert_eq!(r, m, "step {step}: delete");
                seen.insert(("delete", r));
            }
            _ => clock.advance(step_of_time(&mut rng)),
        }
    }
    assert_eq!(seen.len(), 4, "the walk reached every outcome: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_matches_the_in_memory_backend_step_by_step() {
    let Some(ns) = Namespace::new() else { return };
    let clock = clock();
    let redis = ns.lock(clock.clone()).await;
    let memory = InMemoryLock::new(clock.clone());
    let names = ["a", "b", "c"];
    // Leases handed out so far, as (redis, memory) pairs.
    let mut leases: Vec<(Lease, Lease)> = Vec::new();
    let mut rng = StdRng::seed_from_u64(11);
    let mut seen = BTreeSet::new();
    let duration =
        |rng: &mut StdRng| Duration::from_millis([30_000, 30_001, 60_000][rng.random_range(0..3)]);
    for step in 0..600 {
        match rng.random_range(0..6) {
            0 | 1 => {
                let name = names[rng.random_range(0..names.len())];
                let at_most = duration(&mut rng);
                let r = redis
                    .try_acquire(name, at_most)
                    .await
                    .expect("redis acquire");
                let m = memory
                    .try_acquire(name, at_most)
                    .await
                    .expect("memory acquire");
                assert_eq!(r.is_some(), m.is_some(), "step {step}: acquire {name}");
                seen.insert(("acquire", r.is_some()));
                if let (Some(r), Some(m)) = (r, m) {
                    assert_eq!((r.acquired_at, r.expires_at), (m.acquired_at, m.expires_at));
                    leases.push((r, m));
                }
            }
            2 if !leases.is_empty() => {
                let i = rng.random_range(0..leases.len());
                let at_most = duration(&mut rng);
                let r = redis
                    .extend(&leases[i].0, at_most)
                    .await
                    .expect("redis extend");
                let m = memory
                    .extend(&leases[i].1, at_most)
                    .await
                    .expect("memory extend");
                assert_eq!(r.is_some(), m.is_some(), "step {step}: extend");
                seen.insert(("extend", r.is_some()));
                if let (Some(r), Some(m)) = (r, m) {
                    assert_eq!(r.expires_at, m.expires_at);
                    leases[i] = (r, m);
                }
            }
            3 if !leases.is_empty() => {
                let i = rng.random_range(0..leases.len());
                // Keep-until at, 1 ms before, or well after now (see `step_of_time`).
                let held_for = (clock.now() - leases[i].1.acquired_at)
                    .to_std()
                    .unwrap_or_default();
                let at_least = match rng.random_range(0..5) {
                    0 => Duration::ZERO,
                    1 => held_for.saturating_sub(Duration::from_millis(1)),
                    2 => held_for,
                    3 => held_for + Duration::from_secs(30),
                    _ => held_for + Duration::from_secs(60),
                };
                let r = redis
                    .release(&leases[i].0, at_least)
                    .await
                    .expect("redis release");
                let m = memory
                    .release(&leases[i].1, at_least)
                    .await
                    .expect("memory release");
                assert_eq!(r, m, "step {step}: release");
                seen.insert(("release", r));
            }
            _ => clock.advance(step_of_time(&mut rng)),
        }
    }
    assert_eq!(seen.len(), 6, "the walk reached every outcome: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_never_shows_the_password() {
    let Some(ns) = Namespace::new() else { return };
    // A server without a password accepts any password for the `default` user.
    let Some(rest) = ns.url.strip_prefix("redis://") else {
        println!("skipped: {URL_VAR} is not a plain redis:// URL");
        return;
    };
    if rest.contains('@') {
        println!("skipped: {URL_VAR} already carries credentials");
        return;
    }
    let url = format!("redis://default:pw-s3cret-42@{rest}");
    let cache = match RedisCache::connect(&url, clock()).await {
        Ok(cache) => cache,
        Err(e) => {
            assert!(!e.to_string().contains("pw-s3cret-42"), "{e}");
            println!("skipped: the test server rejects the probe password");
            return;
        }
    };
    let lock = RedisLock::connect(&url, clock()).await.expect("connect");
    for text in [format!("{cache:?}"), format!("{lock:?}")] {
        assert!(!text.contains("pw-s3cret-42"), "{text}");
    }
}

#[tokio::test]
async fn connect_errors_never_show_the_url() {
    // Needs no server: a URL that does not parse, and a port where nothing listens (the driver
    // retries with backoff for a few seconds before giving up).
    for url in [
        "http://admin:pw-s3cret-42@127.0.0.1:6379/",
        "redis://admin:pw-s3cret-42@127.0.0.1:1/",
    ] {
        let err = RedisCache::connect(url, clock())
            .await
            .expect_err("cannot connect");
        assert!(
            matches!(
                &err,
                openframe_core::Error::Backend {
                    backend: "redis",
                    ..
                }
            ),
            "{err:?}"
        );
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{:?}", std::error::Error::source(&err)),
        ] {
            assert!(!text.contains("pw-s3cret-42"), "{text}");
            assert!(!text.contains("admin"), "{text}");
        }
    }
    let err = RedisLock::connect("ftp://admin:pw-s3cret-42@127.0.0.1/", clock())
        .await
        .expect_err("not a redis URL");
    assert!(!format!("{err:?}").contains("pw-s3cret-42"), "{err:?}");
}
