//! [`Failover`]: what to answer when the limiter's backend cannot decide.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openframe_core::{Error, Result};

use super::{Decision, Quota, RateLimitKey, RateLimiter};

/// How long a failing backend is refused by [`FailPolicy::Closed`] by default, matching the
/// original's `Retry-After: 60`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// While the backend keeps failing, at most one warning per this interval is logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What [`Failover`] answers while the inner limiter cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPolicy {
    /// Allow the request: availability over protection (the original's `fail-open`).
    Open,
    /// Deny the request with a `Retry-After`: protection over availability (for login and
    /// other brute-force targets).
    Closed,
}

/// A [`RateLimiter`] decorator that turns backend failures into decisions, so a Redis outage
/// never becomes an HTTP 500.
///
/// When the inner limiter fails with `Backend`, `Unavailable` or `Internal`, the failure is
/// logged with `tracing::warn!` (the error only: never the key, the URL or other input; at
/// most one warning per 10 s while failures continue, with the number left out) and the
/// [`FailPolicy`] decides:
/// - [`FailPolicy::Open`]: allowed; the decision is the one a fresh key would get under the
///   quota with the smallest limit.
/// - [`FailPolicy::Closed`]: denied with `retry_after` (default [`DEFAULT_RETRY_AFTER`]).
///
/// Invalid quotas (`InvalidInput`) are checked here first and always propagate, as do errors
/// of other kinds. A failing [`reset`](RateLimiter::reset) is logged and reported as done,
/// under either policy: the counts simply run out by themselves.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use openframe_core::SystemClock;
/// use openframe_security::ratelimit::{Quota, RateLimitKey, RateLimiter};
/// use openframe_security::ratelimit::fail_policy::{FailPolicy, Failover};
/// use openframe_security::ratelimit::memory::InMemoryRateLimiter;
///
/// let limiter = Failover::new(InMemoryRateLimiter::new(Arc::new(SystemClock)), FailPolicy::Open);
/// let key = RateLimitKey::new("ip", None, "203.0.113.7")?;
/// assert!(limiter.check(&key, &[Quota::per_minute(10)]).await?.allowed);
/// # Ok::<(), openframe_core::Error>(()) }).unwrap();
/// ```
pub struct Failover<L> {
    inner: L,
    policy: FailPolicy,
    retry_after: Duration,
    /// Whether the last call failed (so a success logs the recovery).
    failing: AtomicBool,
    /// When the last warning was logged.
    last_warning: Mutex<Option<Instant>>,
    /// Failures not logged since the last warning.
    unlogged: AtomicU64,
}

impl<L: RateLimiter> Failover<L> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: L, policy: FailPolicy) -> Self {
        Self {
            inner,
            policy,
            retry_after: DEFAULT_RETRY_AFTER,
            failing: AtomicBool::new(false),
            last_warning: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Sets the `Retry-After` of [`FailPolicy::Closed`] denials (at least 1 s).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after.max(Duration::from_secs(1));
        self
    }

    /// The policy.
    pub fn policy(&self) -> FailPolicy {
        self.policy
    }

    /// The wrapped limiter.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// Unwraps the decorator.
    pub fn into_inner(self) -> L {
        self.inner
    }

    /// The decision of the policy for `quotas` (valid and non-empty).
    fn fallback(&self, quotas: &[Quota]) -> Decision {
        let tightest = quotas.iter().min_by_key(|q| q.limit);
        let limit = tightest.map_or(0, |q| q.limit);
        match self.policy {
            FailPolicy::Open => Decision {
                allowed: true,
                limit,
                remaining: limit.saturating_sub(1),
                reset_after: tightest.map_or(Duration::ZERO, |q| q.period / q.limit.max(1)),
                retry_after: None,
            },
            FailPolicy::Closed => Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after: self.retry_after,
                retry_after: Some(self.retry_after),
            },
        }
    }

    /// Logs a backend failure, throttled.
    fn warn(&self, operation: &'static str, error: &Error) {
        self.failing.store(true, Ordering::Relaxed);
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        let cause = std::error::Error::source(error).map(ToString::to_string);
        tracing::warn!(
            operation,
            policy = ?self.policy,
            error = %error,
            cause = cause.as_deref().unwrap_or(""),
            unlogged_failures = unlogged,
            "rate limiter backend failed; applying the fail policy"
        );
    }

    /// Notes a success: logs the recovery after failures, and the next failure is logged at
    /// once. Costs one atomic load while healthy.
    fn recovered(&self) {
        if !self.failing.load(Ordering::Relaxed) || !self.failing.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = None;
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::info!(
            unlogged_failures = unlogged,
            "rate limiter backend recovered"
        );
    }
}

/// Whether `error` means "the limiter could not decide" (as opposed to bad input).
fn is_failure(error: &Error) -> bool {
    matches!(
        error,
        Error::Backend { .. } | Error::Unavailable { .. } | Error::Internal(_)
    )
}

#[async_trait]
impl<L: RateLimiter> RateLimiter for Failover<L> {
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision> {
        Quota::validate_all(quotas)?;
        match self.inner.check(key, quotas).await {
            Ok(decision) => {
                self.recovered();
                Ok(decision)
            }
            Err(e) if is_failure(&e) => {
                self.warn("check", &e);
                Ok(self.fallback(quotas))
            }
            Err(e) => Err(e),
        }
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<()> {
        match self.inner.reset(key).await {
            Ok(()) => {
                self.recovered();
                Ok(())
            }
            Err(e) if is_failure(&e) => {
                self.warn("reset", &e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl<L: fmt::Debug> fmt::Debug for Failover<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}
