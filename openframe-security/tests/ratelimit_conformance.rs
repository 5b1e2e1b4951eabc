//! Every rate limiter (and the `Failover` decorator) against the shared conformance suite,
//! plus backend-specific checks.
//!
//! The in-memory limiter always runs. The Redis limiter runs when `OPENFRAME_TEST_REDIS_URL`
//! is set (`scripts/test-services.sh` starts a throwaway server and sets it) and the crate is
//! built with `--features redis`; otherwise its tests print a `skipped:` line and pass. Each
//! Redis test works in its own random key prefix and deletes its keys when done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Error, ErrorCode, ManualClock, Result};
use openframe_security::ratelimit::fail_policy::{DEFAULT_RETRY_AFTER, FailPolicy, Failover};
use openframe_security::ratelimit::memory::InMemoryRateLimiter;
use openframe_security::ratelimit::{Decision, Quota, RateLimitKey, RateLimiter};

async fn make_memory(clock: Arc<ManualClock>) -> Option<Arc<dyn RateLimiter>> {
    Some(Arc::new(InMemoryRateLimiter::new(clock)))
}

async fn make_failover_open(clock: Arc<ManualClock>) -> Option<Arc<dyn RateLimiter>> {
    let inner = InMemoryRateLimiter::new(clock);
    Some(Arc::new(Failover::new(inner, FailPolicy::Open)))
}

async fn make_failover_closed(clock: Arc<ManualClock>) -> Option<Arc<dyn RateLimiter>> {
    let inner: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::new(clock));
    Some(Arc::new(Failover::new(inner, FailPolicy::Closed)))
}

mod memory {
    openframe_security::ratelimiter_conformance!(super::make_memory);
}

mod failover_open_over_memory {
    openframe_security::ratelimiter_conformance!(super::make_failover_open);
}

mod failover_closed_over_memory {
    openframe_security::ratelimiter_conformance!(super::make_failover_closed);
}

// ---- Failover with a failing limiter ----

/// A limiter whose backend is down while `down` is set (a test double for failure injection):
/// it answers with `error` then, and like a healthy limiter otherwise.
#[derive(Debug)]
struct Flaky {
    inner: InMemoryRateLimiter,
    down: AtomicBool,
    error: fn() -> Error,
    calls: AtomicUsize,
}

impl Flaky {
    fn new(error: fn() -> Error) -> Self {
        Self {
            inner: InMemoryRateLimiter::new(Arc::new(ManualClock::default())),
            down: AtomicBool::new(true),
            error,
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl RateLimiter for Flaky {
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err((self.error)());
        }
        self.inner.check(key, quotas).await
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err((self.error)());
        }
        self.inner.reset(key).await
    }
}

fn connection_refused() -> Error {
    Error::backend(
        "redis",
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"),
    )
}

fn unavailable() -> Error {
    Error::Unavailable {
        reason: "rate limiter unreachable".into(),
    }
}

fn key() -> RateLimitKey {
    RateLimitKey::new("api-key", None, "ak_0123456789abcdef").expect("key")
}

const QUOTAS: [Quota; 3] = [
    Quota::per_minute(100),
    Quota::per_hour(1000),
    Quota::per_day(20),
];

#[tokio::test]
async fn fail_open_allows_while_the_backend_is_down() {
    for error in [connection_refused as fn() -> Error, unavailable] {
        let limiter = Failover::new(Flaky::new(error), FailPolicy::Open);
        for _ in 0..50 {
            let d = limiter
                .check(&key(), &QUOTAS)
                .await
                .expect("never an error");
            assert!(d.allowed);
            assert_eq!(d.retry_after, None);
            assert_eq!((d.limit, d.remaining), (20, 19), "the smallest limit");
        }
        assert_eq!(limiter.inner().calls.load(Ordering::SeqCst), 50);
        limiter
            .reset(&key())
            .await
            .expect("a failed reset is not an error");
    }
}

#[tokio::test]
async fn fail_closed_denies_with_retry_after_while_the_backend_is_down() {
    for error in [connection_refused as fn() -> Error, unavailable] {
        let limiter = Failover::new(Flaky::new(error), FailPolicy::Closed);
        let d = limiter
            .check(&key(), &QUOTAS)
            .await
            .expect("never an error");
        assert_eq!(
            d,
            Decision {
                allowed: false,
                limit: 20,
                remaining: 0,
                reset_after: DEFAULT_RETRY_AFTER,
                retry_after: Some(DEFAULT_RETRY_AFTER),
            }
        );
        assert!(d.headers().contains(&("Retry-After", "60".to_owned())));

        let limiter = Failover::new(Flaky::new(error), FailPolicy::Closed)
            .with_retry_after(Duration::from_secs(5));
        let d = limiter
            .check(&key(), &QUOTAS)
            .await
            .expect("never an error");
        assert_eq!(d.retry_after, Some(Duration::from_secs(5)));
        limiter
            .reset(&key())
            .await
            .expect("a failed reset is not an error");
    }
}

#[tokio::test]
async fn failover_passes_decisions_through_once_the_backend_is_back() {
    for policy in [FailPolicy::Open, FailPolicy::Closed] {
        let limiter = Failover::new(Flaky::new(connection_refused), policy);
        let q = [Quota::per_minute(2)];
        let during = limiter.check(&key(), &q).await.expect("decision");
        assert_eq!(during.allowed, policy == FailPolicy::Open);
        limiter.inner().down.store(false, Ordering::SeqCst);
        // The real limiter decides again, and counted nothing during the outage.
        let allowed: Vec<bool> = sequential_checks(&limiter, &q, 3).await;
        assert_eq!(allowed, [true, true, false], "{policy:?}");
    }
}

async fn sequential_checks(limiter: &dyn RateLimiter, q: &[Quota], n: usize) -> Vec<bool> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(limiter.check(&key(), q).await.expect("decision").allowed);
    }
    out
}

#[tokio::test]
async fn failover_still_rejects_invalid_quotas() {
    for policy in [FailPolicy::Open, FailPolicy::Closed] {
        let limiter = Failover::new(Flaky::new(connection_refused), policy);
        for quotas in [vec![], vec![Quota::per_minute(0)]] {
            let err = limiter.check(&key(), &quotas).await.expect_err("invalid");
            assert_eq!(err.code(), ErrorCode::ValidationError);
        }
        assert_eq!(
            limiter.inner().calls.load(Ordering::SeqCst),
            0,
            "never reached the backend"
        );
    }
}

#[tokio::test]
async fn failover_propagates_errors_that_are_not_outages() {
    let limiter = Failover::new(Flaky::new(|| Error::invalid("id", "bad")), FailPolicy::Open);
    let err = limiter
        .check(&key(), &QUOTAS)
        .await
        .expect_err("propagates");
    assert_eq!(err.code(), ErrorCode::ValidationError);
    let err = limiter.reset(&key()).await.expect_err("propagates");
    assert_eq!(err.code(), ErrorCode::ValidationError);
}

#[tokio::test]
async fn failover_debug_shows_the_policy() {
    let limiter = Failover::new(Flaky::new(unavailable), FailPolicy::Closed);
    let text = format!("{limiter:?}");
    assert!(text.contains("Closed"), "{text}");
}

// ---- Redis ----

#[cfg(not(feature = "redis"))]
#[test]
fn redis_suite() {
    println!(
        "skipped: build with --features redis and set OPENFRAME_TEST_REDIS_URL to run the Redis rate limiter suite"
    );
}

#[cfg(feature = "redis")]
mod redis_limiter {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use openframe_core::{Clock, ManualClock, Result, SystemClock};
    use openframe_security::ratelimit::fail_policy::{FailPolicy, Failover};
    use openframe_security::ratelimit::memory::InMemoryRateLimiter;
    use openframe_security::ratelimit::redis::RedisRateLimiter;
    use openframe_security::ratelimit::testkit::random_tenant;
    use openframe_security::ratelimit::{Decision, Quota, RateLimitKey, RateLimiter};
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
            openframe_data::testkit::RedisNamespace::new("the Redis rate limiter suite").map(Self)
        }

        async fn limiter(&self, clock: Arc<dyn Clock>) -> RedisRateLimiter {
            RedisRateLimiter::connect(&self.url, clock)
                .await
                .expect("connect to the test Redis")
                .with_key_prefix(self.prefix.as_str())
        }

        /// A raw connection, to inspect what the limiter wrote.
        async fn raw(&self) -> redis::aio::MultiplexedConnection {
            redis::Client::open(self.url.as_str())
                .expect("parse the test Redis URL")
                .get_multiplexed_async_connection()
                .await
                .expect("connect to the test Redis")
        }
    }

    /// A limiter that owns its namespace, so the keys go when the suite drops it.
    #[derive(Debug)]
    struct Scoped {
        inner: RedisRateLimiter,
        _namespace: Namespace,
    }

    #[async_trait]
    impl RateLimiter for Scoped {
        async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision> {
            self.inner.check(key, quotas).await
        }
        async fn reset(&self, key: &RateLimitKey) -> Result<()> {
            self.inner.reset(key).await
        }
    }

    async fn make_redis(clock: Arc<ManualClock>) -> Option<Arc<dyn RateLimiter>> {
        let namespace = Namespace::new()?;
        let inner = namespace.limiter(clock).await;
        Some(Arc::new(Scoped {
            inner,
            _namespace: namespace,
        }))
    }

    async fn make_failover_redis(clock: Arc<ManualClock>) -> Option<Arc<dyn RateLimiter>> {
        let scoped = make_redis(clock).await?;
        Some(Arc::new(Failover::new(scoped, FailPolicy::Closed)))
    }

    mod suite {
        openframe_security::ratelimiter_conformance!(super::make_redis);
    }

    mod failover_suite {
        openframe_security::ratelimiter_conformance!(super::make_failover_redis);
    }

    // ---- Redis-specific checks ----

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(SystemClock.now()))
    }

    fn fresh_key() -> RateLimitKey {
        RateLimitKey::new("api-key", Some(&random_tenant()), "ak_0123456789abcdef").expect("key")
    }

    async fn pttl(con: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(con)
            .await
            .expect("PTTL")
    }

    async fn hgetall(
        con: &mut redis::aio::MultiplexedConnection,
        key: &str,
    ) -> std::collections::BTreeMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(con)
            .await
            .expect("HGETALL")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_is_one_hash_per_key_with_a_field_per_quota_and_the_longest_ttl() {
        let Some(ns) = Namespace::new() else { return };
        let clock = clock();
        let limiter = ns.limiter(clock.clone()).await;
        let mut raw = ns.raw().await;
        let key = fresh_key();
        let redis_key = format!("{}{}", ns.prefix, key.as_str());
        assert!(
            redis_key.contains(":{t"),
            "the tenant is a hash tag: {redis_key}"
        );

        let now_us = clock.now().timestamp_micros();
        let q = [Quota::per_minute(10), Quota::per_hour(100)];
        assert!(limiter.check(&key, &q).await.expect("check").allowed);
        let fields = hgetall(&mut raw, &redis_key).await;
        let expected: std::collections::BTreeMap<String, String> = [
            ("10/60000000".to_owned(), (now_us + 6_000_000).to_string()),
            (
                "100/3600000000".to_owned(),
                (now_us + 36_000_000).to_string(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(fields, expected);
        let ttl = pttl(&mut raw, &redis_key).await;
        assert!((3_590_000..=3_600_000).contains(&ttl), "PTTL {ttl}");

        // A later request with only the minute quota never shortens the TTL, so the hour
        // state survives.
        assert!(
            limiter
                .check(&key, &[Quota::per_minute(10)])
                .await
                .expect("check")
                .allowed
        );
        let ttl = pttl(&mut raw, &redis_key).await;
        assert!((3_590_000..=3_600_000).contains(&ttl), "PTTL {ttl}");

        // A denied request writes nothing.
        let before = hgetall(&mut raw, &redis_key).await;
        let tiny = [Quota::per_day(1)];
        assert!(limiter.check(&key, &tiny).await.expect("check").allowed);
        let with_day = hgetall(&mut raw, &redis_key).await;
        assert_eq!(with_day.len(), before.len() + 1);
        assert!(!limiter.check(&key, &tiny).await.expect("check").allowed);
        assert_eq!(hgetall(&mut raw, &redis_key).await, with_day);
        let ttl = pttl(&mut raw, &redis_key).await;
        assert!((86_390_000..=86_400_000).contains(&ttl), "PTTL {ttl}");

        limiter.reset(&key).await.expect("reset");
        assert_eq!(
            pttl(&mut raw, &redis_key).await,
            -2,
            "reset deletes the hash"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_counts_exactly() {
        let Some(ns) = Namespace::new() else { return };
        let clock = clock();
        let mut replicas = Vec::new();
        for _ in 0..5 {
            replicas.push(ns.limiter(clock.clone()).await);
        }
        let key = fresh_key();
        let q = [Quota::per_minute(10), Quota::per_hour(25)];
        for round in 0..3 {
            let tasks: Vec<_> = (0..60)
                .map(|i| {
                    let limiter = replicas[i % replicas.len()].clone();
                    let key = key.clone();
                    tokio::spawn(async move { limiter.check(&key, &q).await })
                })
                .collect();
            let mut allowed = 0;
            for task in tasks {
                if task.await.expect("task").expect("check").allowed {
                    allowed += 1;
                }
            }
            // 10 per minute; in the third minute the hour (25, 144 s per request) has 5 left.
            let expected = [10, 10, 5][round];
            assert_eq!(allowed, expected, "round {round}");
            clock.advance(Duration::from_secs(60));
        }
    }

    /// Random walk against the in-memory limiter: every decision must be identical.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn decisions_match_the_in_memory_limiter_step_by_step() {
        let Some(ns) = Namespace::new() else { return };
        let clock = clock();
        let redis = ns.limiter(clock.clone()).await;
        let memory = InMemoryRateLimiter::new(clock.clone());
        let keys: Vec<RateLimitKey> = (0..3).map(|_| fresh_key()).collect();
        let quota_sets = [
            vec![Quota::per_minute(3)],
            vec![Quota::per_minute(4), Quota::per_hour(10)],
            vec![
                Quota::per_minute(5),
                Quota::per_hour(7),
                Quota {
                    limit: 7,
                    period: Duration::from_secs(90),
                },
            ],
        ];
        let mut rng = StdRng::seed_from_u64(17);
        let mut seen = BTreeSet::new();
        for step in 0..800 {
            let key = &keys[rng.random_range(0..keys.len())];
            match rng.random_range(0..10) {
                0..=6 => {
                    let q = &quota_sets[rng.random_range(0..quota_sets.len())];
                    let r = redis.check(key, q).await.expect("redis check");
                    let m = memory.check(key, q).await.expect("memory check");
                    assert_eq!(r, m, "step {step}");
                    seen.insert(r.allowed);
                }
                7 => {
                    redis.reset(key).await.expect("redis reset");
                    memory.reset(key).await.expect("memory reset");
                }
                _ => {
                    let by = [1, 999, 1_000, 5_000, 12_857, 30_000][rng.random_range(0..6)];
                    clock.advance(Duration::from_millis(by));
                }
            }
        }
        assert_eq!(seen.len(), 2, "the walk saw both outcomes");
    }

    /// A TCP proxy to the test server that can be cut, to take Redis away from a limiter.
    struct Proxy {
        port: u16,
        accept: tokio::task::JoinHandle<()>,
        connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    }

    impl Proxy {
        /// Listens on `port` (0: any free port) and forwards to `target`.
        async fn start(target: String, port: u16) -> Self {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind the proxy");
            let port = listener.local_addr().expect("proxy address").port();
            let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
            let tasks = connections.clone();
            let accept = tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    tasks.lock().expect("proxy tasks").push(task);
                }
            });
            Self {
                port,
                accept,
                connections,
            }
        }

        /// Closes the port and every proxied connection.
        fn cut(&self) {
            self.accept.abort();
            for task in self.connections.lock().expect("proxy tasks").drain(..) {
                task.abort();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failover_answers_by_policy_when_redis_goes_away() {
        let Some(ns) = Namespace::new() else { return };
        let Ok(mut via) = url::Url::parse(&ns.url) else {
            println!("skipped: {URL_VAR} does not parse as a URL");
            return;
        };
        let (Some(host), "redis") = (via.host_str(), via.scheme()) else {
            println!("skipped: {URL_VAR} is not a plain redis:// URL");
            return;
        };
        let target = format!("{host}:{}", via.port().unwrap_or(6379));
        let proxy = Proxy::start(target.clone(), 0).await;
        via.set_host(Some("127.0.0.1")).expect("set host");
        via.set_port(Some(proxy.port)).expect("set port");
        let clock = clock();
        let connect = |policy| {
            let (url, clock, prefix) = (via.to_string(), clock.clone(), ns.prefix.clone());
            async move {
                let limiter = RedisRateLimiter::connect(&url, clock)
                    .await
                    .expect("connect through the proxy")
                    .with_key_prefix(prefix);
                Failover::new(limiter, policy).with_retry_after(Duration::from_secs(5))
            }
        };
        let open = connect(FailPolicy::Open).await;
        let closed = connect(FailPolicy::Closed).await;
        let key = fresh_key();
        let q = [Quota::per_minute(1)];

        // While Redis is there, both decide for real.
        assert!(open.check(&key, &q).await.expect("check").allowed);
        for limiter in [&open, &closed] {
            let d = limiter.check(&key, &q).await.expect("check");
            assert_eq!(
                d.retry_after,
                Some(Duration::from_secs(60)),
                "a real denial"
            );
        }

        proxy.cut();
        let err = open
            .inner()
            .check(&key, &q)
            .await
            .expect_err("Redis is gone");
        assert!(
            matches!(
                err,
                openframe_core::Error::Backend {
                    backend: "redis",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!format!("{err:?}").contains(&proxy.port.to_string()));
        for _ in 0..3 {
            let d = open.check(&key, &q).await.expect("never an error");
            assert!(d.allowed, "fail open");
            let d = closed.check(&key, &q).await.expect("never an error");
            assert_eq!(
                (d.allowed, d.retry_after),
                (false, Some(Duration::from_secs(5))),
                "fail closed"
            );
        }
        open.reset(&key)
            .await
            .expect("a failed reset is not an error");

        // Redis comes back on the same address: the connection recovers by itself (within a
        // few reconnection rounds) and real decisions resume. The outage counted nothing.
        let _back = Proxy::start(target, proxy.port).await;
        for limiter in [&open, &closed] {
            let mut recovered = None;
            for _ in 0..100 {
                if let Ok(d) = limiter.inner().check(&key, &q).await {
                    recovered = Some(d);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let d = recovered.expect("reconnected within 5 s");
            assert_eq!(
                d.retry_after,
                Some(Duration::from_secs(60)),
                "the real state"
            );
            let d = limiter.check(&key, &q).await.expect("check");
            assert_eq!(
                d.retry_after,
                Some(Duration::from_secs(60)),
                "the real state"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn debug_output_never_shows_the_password() {
        let Some(ns) = Namespace::new() else { return };
        let Some(rest) = ns.url.strip_prefix("redis://") else {
            println!("skipped: {URL_VAR} is not a plain redis:// URL");
            return;
        };
        if rest.contains('@') {
            println!("skipped: {URL_VAR} already carries credentials");
            return;
        }
        // A server without a password accepts any password for the `default` user.
        let url = format!("redis://default:pw-s3cret-42@{rest}");
        match RedisRateLimiter::connect(&url, clock()).await {
            Ok(limiter) => {
                let text = format!("{limiter:?}");
                assert!(!text.contains("pw-s3cret-42"), "{text}");
                let text = format!("{:?}", Failover::new(limiter, FailPolicy::Open));
                assert!(!text.contains("pw-s3cret-42"), "{text}");
            }
            Err(e) => {
                assert!(!format!("{e:?}").contains("pw-s3cret-42"), "{e:?}");
                println!("skipped: the test server rejects the probe password");
            }
        }
    }

    #[tokio::test]
    async fn connect_errors_never_show_the_url() {
        // Needs no server: a URL that does not parse, and a port where nothing listens.
        for url in [
            "http://admin:pw-s3cret-42@127.0.0.1:6379/",
            "redis://admin:pw-s3cret-42@127.0.0.1:1/",
        ] {
            let err = RedisRateLimiter::connect(url, clock())
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
    }
}
