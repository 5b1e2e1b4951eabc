//! The [`RateLimiter`] conformance kit (feature `testkit`): every limiter and every decorator
//! runs the same `check_*` suite.
//!
//! Each check takes the limiter and the [`ManualClock`] it follows; time only moves when a
//! check advances the clock, nothing sleeps. Checks use random tenants, so one server may be
//! shared by concurrent suites. They panic on failure, like assertions in a test.
//!
//! ```text
//! async fn make(clock: Arc<ManualClock>) -> Option<Arc<dyn RateLimiter>> {
//!     Some(Arc::new(InMemoryRateLimiter::new(clock)))
//! }
//! openframe_security::ratelimiter_conformance!(make);
//! ```
//!
//! A factory returns `None` (after printing a `skipped: ...` line) when its service is not
//! configured. The quotas used are a minute or longer (except where a check needs a short
//! one and finishes at once), so a backend's real TTLs never run out while the test clock
//! stands still.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Clock, ErrorCode, SystemClock, TenantId};

use super::{Decision, Quota, RateLimitKey, RateLimiter};

pub use openframe_core::ManualClock;

/// Expands the [`RateLimiter`] suite into `#[tokio::test]`s for `$factory`, an
/// `async fn(Arc<ManualClock>) -> Option<Arc<dyn RateLimiter>>`.
#[macro_export]
macro_rules! ratelimiter_conformance {
    ($factory:path) => {
        $crate::__ratelimiter_checks!($factory:
            check_burst_then_deny, check_replenishes_as_clock_advances,
            check_multiple_quotas_tightest_wins, check_denials_take_the_longest_retry,
            check_keys_tenants_and_quotas_are_independent, check_reset,
            check_concurrent_checks_count_exactly, check_concurrent_multi_quota_checks,
            check_headers, check_invalid_quotas_are_rejected, check_extreme_quotas,
            check_clock_moving_backwards);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __ratelimiter_checks {
    ($factory:path: $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let clock = ::std::sync::Arc::new($crate::ratelimit::testkit::ManualClock::new(
                    $crate::ratelimit::testkit::start_time(),
                ));
                if let Some(limiter) = $factory(clock.clone()).await {
                    $crate::ratelimit::testkit::$check(limiter, clock).await;
                }
            }
        )+
    };
}

/// The start of every check's clock: the current time, in whole seconds.
#[doc(hidden)]
pub fn start_time() -> openframe_core::Timestamp {
    let now = SystemClock.now();
    chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// A random tenant, so concurrent suites on one shared server never meet.
pub fn random_tenant() -> TenantId {
    TenantId::parse(format!("t{:016x}", rand::random::<u64>())).expect("valid tenant id")
}

/// A fresh key in a random tenant.
fn fresh_key(scope: &str) -> RateLimitKey {
    RateLimitKey::new(scope, Some(&random_tenant()), "ak_0123456789abcdef").expect("valid key")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

async fn check(limiter: &dyn RateLimiter, key: &RateLimitKey, quotas: &[Quota]) -> Decision {
    limiter.check(key, quotas).await.expect("check")
}

/// Asserts an allowed decision with the given reported quota state.
#[track_caller]
fn assert_allowed(d: &Decision, limit: u32, remaining: u32, reset_after: Duration) {
    let expected = Decision {
        allowed: true,
        limit,
        remaining,
        reset_after,
        retry_after: None,
    };
    assert_eq!(d, &expected);
}

/// Asserts a denial with the given reported quota state.
#[track_caller]
fn assert_denied(d: &Decision, limit: u32, reset_after: Duration, retry_after: Duration) {
    let expected = Decision {
        allowed: false,
        limit,
        remaining: 0,
        reset_after,
        retry_after: Some(retry_after),
    };
    assert_eq!(d, &expected);
}

/// Allowed requests up to the burst, then a denial with the exact `retry_after`; denials
/// consume nothing.
pub async fn check_burst_then_deny(limiter: Arc<dyn RateLimiter>, clock: Arc<ManualClock>) {
    let key = fresh_key("api-key");
    let q = [Quota::per_minute(10)];
    for i in 0..10u32 {
        let d = check(&*limiter, &key, &q).await;
        assert_allowed(&d, 10, 9 - i, secs(6 * u64::from(i + 1)));
    }
    for _ in 0..5 {
        let d = check(&*limiter, &key, &q).await;
        assert_denied(&d, 10, secs(60), secs(6));
    }
    clock.advance(secs(3));
    let d = check(&*limiter, &key, &q).await;
    assert_denied(&d, 10, secs(57), secs(3));
}

/// Requests become allowed again exactly as the clock advances, and idle time never banks
/// more than the burst.
pub async fn check_replenishes_as_clock_advances(
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<ManualClock>,
) {
    let key = fresh_key("api-key");
    let q = [Quota::per_minute(10)];
    for _ in 0..10 {
        assert!(check(&*limiter, &key, &q).await.allowed);
    }
    clock.advance(ms(5_999));
    let d = check(&*limiter, &key, &q).await;
    assert_denied(&d, 10, ms(54_001), ms(1));
    clock.advance(ms(1));
    let d = check(&*limiter, &key, &q).await;
    assert_allowed(&d, 10, 0, secs(60));
    assert!(!check(&*limiter, &key, &q).await.allowed);

    clock.advance(secs(30));
    for remaining in (0..5).rev() {
        let d = check(&*limiter, &key, &q).await;
        assert!(d.allowed, "replenished after 30 s");
        assert_eq!(d.remaining, remaining);
    }
    assert!(!check(&*limiter, &key, &q).await.allowed);

    clock.advance(Duration::from_secs(86_400));
    let allowed = count_allowed(&*limiter, &key, &q, 25).await;
    assert_eq!(allowed, 10, "a day of idling still allows only the burst");
}

async fn count_allowed(
    limiter: &dyn RateLimiter,
    key: &RateLimitKey,
    q: &[Quota],
    tries: usize,
) -> usize {
    let mut allowed = 0;
    for _ in 0..tries {
        if check(limiter, key, q).await.allowed {
            allowed += 1;
        }
    }
    allowed
}

/// Minute, hour and day quotas together: every quota counts each allowed request, the
/// tightest one is reported, and denied requests consume nothing in any quota.
pub async fn check_multiple_quotas_tightest_wins(
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<ManualClock>,
) {
    let key = fresh_key("api-key");
    // Emission intervals: 12 s, 450 s, 8640 s.
    let q = [Quota::per_minute(5), Quota::per_hour(8), Quota::per_day(10)];
    let d = check(&*limiter, &key, &q).await;
    assert_allowed(&d, 5, 4, secs(12));
    for _ in 0..4 {
        assert!(check(&*limiter, &key, &q).await.allowed);
    }
    // The minute quota is exhausted; hour and day have room.
    for _ in 0..20 {
        let d = check(&*limiter, &key, &q).await;
        assert_denied(&d, 5, secs(60), secs(12));
    }

    // A minute later the minute quota is full again; the hour quota (5 used, 60 s of 450 s
    // regained) now has 3 left and is the tightest.
    clock.advance(secs(60));
    let d = check(&*limiter, &key, &q).await;
    assert_allowed(&d, 8, 2, secs(2640));
    assert_allowed(&check(&*limiter, &key, &q).await, 8, 1, secs(3090));
    assert_allowed(&check(&*limiter, &key, &q).await, 8, 0, secs(3540));
    // The hour quota denies, though the minute quota would allow: nothing is counted.
    for _ in 0..20 {
        let d = check(&*limiter, &key, &q).await;
        assert_denied(&d, 8, secs(3540), secs(390));
    }

    clock.advance(secs(390));
    // t = 450 s: one more fits the hour; the day quota (9 used) now has 1 left.
    let d = check(&*limiter, &key, &q).await;
    assert_allowed(&d, 8, 0, secs(3600));
    clock.advance(secs(450));
    // t = 900 s: the tenth request of the day leaves the day quota empty: it is the tightest.
    let d = check(&*limiter, &key, &q).await;
    assert_allowed(&d, 10, 0, secs(85_500));
    // Both deny now (the hour for 450 s): the longest wait is reported.
    let d = check(&*limiter, &key, &q).await;
    assert_denied(&d, 10, secs(85_500), secs(7740));
}

/// When several quotas deny, `retry_after` is the longest of their waits, and the quota
/// reported is the one left with the fewest requests (ties: the longest until replenished).
pub async fn check_denials_take_the_longest_retry(
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<ManualClock>,
) {
    let key = fresh_key("login-account");
    // Emission intervals: 30 s and 1200 s.
    let q = [Quota::per_minute(2), Quota::per_hour(3)];
    assert_allowed(&check(&*limiter, &key, &q).await, 2, 1, secs(30));
    assert_allowed(&check(&*limiter, &key, &q).await, 2, 0, secs(60));
    assert_denied(&check(&*limiter, &key, &q).await, 2, secs(60), secs(30));
    clock.advance(secs(30));
    // Both quotas are now empty; the hour is replenished last.
    assert_allowed(&check(&*limiter, &key, &q).await, 3, 0, secs(3570));
    // Both deny: the minute for 30 s, the hour for 1170 s.
    assert_denied(&check(&*limiter, &key, &q).await, 3, secs(3570), secs(1170));
    clock.advance(secs(30));
    assert_denied(&check(&*limiter, &key, &q).await, 3, secs(3540), secs(1140));
    clock.advance(secs(1140));
    assert_allowed(&check(&*limiter, &key, &q).await, 3, 0, secs(3600));
}

/// Tenants, scopes, ids and quotas each have their own state.
pub async fn check_keys_tenants_and_quotas_are_independent(
    limiter: Arc<dyn RateLimiter>,
    _clock: Arc<ManualClock>,
) {
    let (a, b) = (random_tenant(), random_tenant());
    let key = |scope: &str, tenant: Option<&TenantId>, id: &str| {
        RateLimitKey::new(scope, tenant, id).expect("valid key")
    };
    let exhausted = key("api-key", Some(&a), "k1");
    let q = [Quota::per_minute(3)];
    for _ in 0..3 {
        assert!(check(&*limiter, &exhausted, &q).await.allowed);
    }
    assert!(!check(&*limiter, &exhausted, &q).await.allowed);
    let others = [
        key("api-key", Some(&b), "k1"),
        key("api-key", Some(&a), "k2"),
        key("client", Some(&a), "k1"),
        key("api-key", None, &format!("k1-{}", a.as_str())),
    ];
    for other in &others {
        assert_allowed(&check(&*limiter, other, &q).await, 3, 2, secs(20));
        assert_eq!(count_allowed(&*limiter, other, &q, 5).await, 2);
    }
    // Another quota of the same key has its own state...
    let hourly = [Quota::per_hour(5)];
    assert_allowed(
        &check(&*limiter, &exhausted, &hourly).await,
        5,
        4,
        secs(720),
    );
    // ... and did not touch the exhausted one.
    assert_denied(
        &check(&*limiter, &exhausted, &q).await,
        3,
        secs(60),
        secs(20),
    );
}

/// `reset` forgets one key (every quota of it) and nothing else.
pub async fn check_reset(limiter: Arc<dyn RateLimiter>, _clock: Arc<ManualClock>) {
    let (key, other) = (fresh_key("login-account"), fresh_key("login-account"));
    let q = [Quota::per_minute(2), Quota::per_day(3)];
    for k in [&key, &other] {
        assert_eq!(count_allowed(&*limiter, k, &q, 4).await, 2);
    }
    limiter.reset(&key).await.expect("reset");
    assert_allowed(&check(&*limiter, &key, &q).await, 2, 1, secs(30));
    assert_eq!(count_allowed(&*limiter, &key, &q, 3).await, 1);
    assert!(
        !check(&*limiter, &other, &q).await.allowed,
        "another key is untouched"
    );
    limiter
        .reset(&fresh_key("never-seen"))
        .await
        .expect("resetting an unknown key is fine");
    limiter.reset(&key).await.expect("reset");
    limiter.reset(&key).await.expect("reset twice");
}

/// 50 concurrent checks against a limit of 10: exactly 10 are allowed.
pub async fn check_concurrent_checks_count_exactly(
    limiter: Arc<dyn RateLimiter>,
    _clock: Arc<ManualClock>,
) {
    for round in 0..3 {
        let key = fresh_key("api-key");
        let allowed = concurrent(&limiter, &key, &[Quota::per_minute(10)], 50).await;
        assert_eq!(allowed, 10, "round {round}");
    }
}

/// Concurrent checks against several quotas: a request counts in all of them or in none.
pub async fn check_concurrent_multi_quota_checks(
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<ManualClock>,
) {
    let key = fresh_key("api-key");
    let q = [Quota::per_minute(10), Quota::per_hour(12)];
    assert_eq!(concurrent(&limiter, &key, &q, 50).await, 10);
    clock.advance(secs(60));
    // The minute is full again; the hour regained 60 s of 300 s: 2 left.
    assert_eq!(concurrent(&limiter, &key, &q, 50).await, 2);
    assert!(!check(&*limiter, &key, &q).await.allowed);
}

/// Runs `n` checks at once; returns how many were allowed.
async fn concurrent(
    limiter: &Arc<dyn RateLimiter>,
    key: &RateLimitKey,
    q: &[Quota],
    n: usize,
) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (limiter, key, q) = (limiter.clone(), key.clone(), q.to_vec());
            tokio::spawn(async move { limiter.check(&key, &q).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.expect("task").expect("check").allowed {
            allowed += 1;
        }
    }
    allowed
}

/// The `X-RateLimit-*` and `Retry-After` headers, seconds rounded up.
pub async fn check_headers(limiter: Arc<dyn RateLimiter>, clock: Arc<ManualClock>) {
    let key = fresh_key("api-key");
    let q = [Quota::per_minute(10)];
    let header = |d: &Decision, name: &str| {
        d.headers()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    };
    let d = check(&*limiter, &key, &q).await;
    assert_eq!(
        d.headers(),
        vec![
            ("X-RateLimit-Limit", "10".to_owned()),
            ("X-RateLimit-Remaining", "9".to_owned()),
            ("X-RateLimit-Reset", "6".to_owned()),
        ]
    );
    for _ in 0..9 {
        check(&*limiter, &key, &q).await;
    }
    let d = check(&*limiter, &key, &q).await;
    assert_eq!(header(&d, "X-RateLimit-Remaining").as_deref(), Some("0"));
    assert_eq!(header(&d, "X-RateLimit-Reset").as_deref(), Some("60"));
    assert_eq!(header(&d, "Retry-After").as_deref(), Some("6"));
    clock.advance(ms(500));
    let d = check(&*limiter, &key, &q).await;
    assert_eq!(header(&d, "X-RateLimit-Reset").as_deref(), Some("60"));
    assert_eq!(header(&d, "Retry-After").as_deref(), Some("6"));
    clock.advance(ms(5_499));
    let d = check(&*limiter, &key, &q).await;
    assert_eq!(d.retry_after, Some(ms(1)));
    assert_eq!(header(&d, "Retry-After").as_deref(), Some("1"));
    clock.advance(ms(1));
    let d = check(&*limiter, &key, &q).await;
    assert!(d.allowed);
    assert_eq!(header(&d, "Retry-After"), None);
}

/// Invalid quota lists are `InvalidInput` and count nothing.
pub async fn check_invalid_quotas_are_rejected(
    limiter: Arc<dyn RateLimiter>,
    _clock: Arc<ManualClock>,
) {
    let key = fresh_key("api-key");
    let quota = |limit: u32, period: Duration| Quota { limit, period };
    let nine: Vec<Quota> = (1..=9).map(Quota::per_minute).collect();
    let bad: Vec<(&str, Vec<Quota>)> = vec![
        ("no quota", vec![]),
        ("zero limit", vec![quota(0, secs(60))]),
        ("sub-second period", vec![quota(5, ms(999))]),
        ("zero period", vec![quota(5, Duration::ZERO)]),
        ("period over 31 days", vec![quota(5, secs(31 * 86_400 + 1))]),
        (
            "one bad among good",
            vec![Quota::per_minute(5), quota(0, secs(3600))],
        ),
        (
            "a quota twice",
            vec![Quota::per_minute(5), Quota::per_minute(5)],
        ),
        ("too many quotas", nine),
    ];
    for (what, quotas) in bad {
        let err = limiter
            .check(&key, &quotas)
            .await
            .expect_err(&format!("{what} must be rejected"));
        assert_eq!(err.code(), ErrorCode::ValidationError, "{what}: {err:?}");
    }
    let d = check(&*limiter, &key, &[Quota::per_minute(5)]).await;
    assert_allowed(&d, 5, 4, secs(12));
}

/// The widest valid quotas neither overflow nor misbehave.
pub async fn check_extreme_quotas(limiter: Arc<dyn RateLimiter>, clock: Arc<ManualClock>) {
    let key = fresh_key("ip");
    let huge = [Quota {
        limit: u32::MAX,
        period: secs(1),
    }];
    let d = check(&*limiter, &key, &huge).await;
    assert!(d.allowed);
    assert_eq!((d.limit, d.remaining), (u32::MAX, u32::MAX - 1));

    let month = [Quota {
        limit: 1,
        period: secs(31 * 86_400),
    }];
    assert_allowed(
        &check(&*limiter, &key, &month).await,
        1,
        0,
        secs(31 * 86_400),
    );
    assert_denied(
        &check(&*limiter, &key, &month).await,
        1,
        secs(31 * 86_400),
        secs(31 * 86_400),
    );
    clock.advance(secs(31 * 86_400));
    assert!(check(&*limiter, &key, &month).await.allowed);

    // A limit that does not divide the period: the interval is rounded up, the burst is exact.
    let odd = [Quota {
        limit: 7,
        period: secs(60),
    }];
    let key = fresh_key("ip");
    assert_eq!(count_allowed(&*limiter, &key, &odd, 10).await, 7);
}

/// A clock that steps backwards grants no extra requests and blocks for at most one interval
/// more than it would have.
pub async fn check_clock_moving_backwards(limiter: Arc<dyn RateLimiter>, clock: Arc<ManualClock>) {
    let key = fresh_key("api-key");
    let q = [Quota::per_minute(10)];
    let start = clock.now();
    assert_eq!(count_allowed(&*limiter, &key, &q, 12).await, 10);
    clock.set(start - chrono::Duration::hours(1));
    assert_denied(&check(&*limiter, &key, &q).await, 10, secs(60), secs(6));
    clock.set(start + chrono::Duration::seconds(6));
    assert_allowed(&check(&*limiter, &key, &q).await, 10, 0, secs(60));
}
