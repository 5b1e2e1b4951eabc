//! Rate limiting: quotas per API key, client, tenant, IP or account over minute/hour/day.
//!
//! The [`RateLimiter`] trait answers "may this key make one more request under these
//! quotas?" with everything the `X-RateLimit-*` headers and a 429 `Retry-After` need.
//!
//! | limiter | module | feature |
//! |---|---|---|
//! | in process, lock-sharded GCRA | [`memory`] | always |
//! | Redis, one atomic Lua script per request | `redis` | `redis` |
//! | fail open / fail closed decorator | [`fail_policy`] | always |
//! | conformance kit | `testkit` | `testkit` |
//!
//! Every limiter runs the same GCRA (generic cell rate algorithm, a token bucket kept as one
//! timestamp per key and quota): a quota of `limit` requests per `period` has the emission
//! interval `T = period / limit` (rounded up to whole microseconds, so the sustained rate never
//! exceeds the quota) and a burst of exactly `limit`. Each (key, quota) keeps a theoretical
//! arrival time `TAT`; a request is allowed when `max(TAT, now) + T - now <= limit * T`, and
//! then moves `TAT` by `T`. A denied request changes nothing.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::{sync::Arc, time::Duration};
//! use openframe_core::{ManualClock, TenantId};
//! use openframe_security::ratelimit::{Quota, RateLimitKey, RateLimiter};
//! use openframe_security::ratelimit::memory::InMemoryRateLimiter;
//!
//! let clock = Arc::new(ManualClock::default());
//! let limiter = InMemoryRateLimiter::new(clock.clone());
//! let tenant = TenantId::parse("acme")?;
//! let key = RateLimitKey::new("api-key", Some(&tenant), "ak_0123456789abcdef")?;
//! let quotas = [Quota::per_minute(2), Quota::per_day(1000)];
//! assert!(limiter.check(&key, &quotas).await?.allowed);
//! assert!(limiter.check(&key, &quotas).await?.allowed);
//! let denied = limiter.check(&key, &quotas).await?;
//! assert!(!denied.allowed);
//! assert_eq!(denied.retry_after, Some(Duration::from_secs(30)));
//! clock.advance(Duration::from_secs(30));
//! assert!(limiter.check(&key, &quotas).await?.allowed);
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

pub mod fail_policy;
mod gcra;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Error, Result, TenantId};

/// A limit of `limit` requests per `period` (a GCRA / token bucket with a burst of `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Requests allowed per period (at least 1).
    pub limit: u32,
    /// The period.
    pub period: Duration,
}

impl Quota {
    /// `limit` requests per minute.
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            period: Duration::from_secs(60),
        }
    }

    /// `limit` requests per hour.
    pub const fn per_hour(limit: u32) -> Self {
        Self {
            limit,
            period: Duration::from_secs(3600),
        }
    }

    /// `limit` requests per day.
    pub const fn per_day(limit: u32) -> Self {
        Self {
            limit,
            period: Duration::from_secs(86_400),
        }
    }

    /// Checks `limit >= 1` and a period between 1 s and 31 days.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 {
            return Err(Error::invalid("quota", "limit must be at least 1"));
        }
        if self.period < Duration::from_secs(1) || self.period > Duration::from_secs(31 * 86_400) {
            return Err(Error::invalid(
                "quota",
                "period must be between 1 s and 31 days",
            ));
        }
        Ok(())
    }

    /// Checks the quotas of one request: 1 to [`MAX_QUOTAS`] quotas, each valid
    /// ([`Quota::validate`]), no quota twice.
    pub fn validate_all(quotas: &[Quota]) -> Result<()> {
        if quotas.is_empty() {
            return Err(Error::invalid("quotas", "at least one quota is required"));
        }
        if quotas.len() > MAX_QUOTAS {
            return Err(Error::invalid(
                "quotas",
                format!("at most {MAX_QUOTAS} quotas per request"),
            ));
        }
        let mut seen = HashSet::with_capacity(quotas.len());
        for quota in quotas {
            quota.validate()?;
            if !seen.insert(quota) {
                return Err(Error::invalid("quotas", "the same quota is given twice"));
            }
        }
        Ok(())
    }
}

/// Most quotas one request may be checked against.
pub const MAX_QUOTAS: usize = 8;

/// What is being limited: a scope (`api-key`, `client`, `tenant`, `ip`, `login-account`, ...),
/// the tenant where there is one, and the id within the scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitKey(String);

impl RateLimitKey {
    /// Builds `rl:{tenant}:{scope}:{id}` (`rl:_:{scope}:{id}` without a tenant).
    /// `scope` is `[a-z0-9-]{1,32}`; `id` is at most 256 bytes.
    pub fn new(scope: &str, tenant: Option<&TenantId>, id: &str) -> Result<Self> {
        let scope_ok = !scope.is_empty()
            && scope.len() <= 32
            && scope
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !scope_ok {
            return Err(Error::invalid("scope", "must be 1-32 of [a-z0-9-]"));
        }
        if id.is_empty() || id.len() > 256 {
            return Err(Error::invalid("id", "must be 1-256 bytes"));
        }
        let tenant = tenant.map_or("_", |t| t.as_str());
        Ok(Self(format!("rl:{{{tenant}}}:{scope}:{id}")))
    }

    /// The full key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit of the most restrictive quota (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left under that quota after this one (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Until that quota is fully replenished (`X-RateLimit-Reset`, in seconds).
    pub reset_after: Duration,
    /// When denied: how long until a request would be allowed (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The response headers: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
    /// (seconds, rounded up) and, when denied, `Retry-After` (seconds, rounded up, at least 1).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| d.as_millis().div_ceil(1000);
        let mut h = vec![
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", secs(self.reset_after).to_string()),
        ];
        if let Some(retry) = self.retry_after {
            h.push(("Retry-After", secs(retry).max(1).to_string()));
        }
        h
    }
}

/// Decides whether a request fits its quotas. A denied request consumes nothing.
///
/// Implementations: in-process GCRA and Redis (an atomic Lua script), both following the
/// injected `Clock`.
#[async_trait]
pub trait RateLimiter: Send + Sync + Debug + 'static {
    /// Counts one request against every quota; it is allowed only if all quotas allow it
    /// (then it is counted in all of them). The decision reports the most restrictive quota.
    ///
    /// Fails with `InvalidInput` when `quotas` do not pass [`Quota::validate_all`], and with
    /// `Backend` or `Unavailable` when the limiter cannot decide (wrap it in
    /// [`Failover`](fail_policy::Failover) to turn those into a decision).
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision>;

    /// Forgets everything about `key` (e.g. after a successful login).
    async fn reset(&self, key: &RateLimitKey) -> Result<()>;
}

/// A shared limiter is a limiter, so decorators such as
/// [`Failover`](fail_policy::Failover) can wrap an `Arc<dyn RateLimiter>`.
#[async_trait]
impl<T: RateLimiter + ?Sized> RateLimiter for Arc<T> {
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision> {
        (**self).check(key, quotas).await
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<()> {
        (**self).reset(key).await
    }
}
