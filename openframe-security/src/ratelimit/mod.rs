//! Rate limiting: quotas per API key, client, tenant, IP or account over minute/hour/day.
//!
//! The [`RateLimiter`] trait answers "may this key make one more request under these
//! quotas?" with everything the `X-RateLimit-*` headers and a 429 `Retry-After` need.

use std::fmt::Debug;
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
        Self { limit, period: Duration::from_secs(60) }
    }

    /// `limit` requests per hour.
    pub const fn per_hour(limit: u32) -> Self {
        Self { limit, period: Duration::from_secs(3600) }
    }

    /// `limit` requests per day.
    pub const fn per_day(limit: u32) -> Self {
        Self { limit, period: Duration::from_secs(86_400) }
    }

    /// Checks `limit >= 1` and a period between 1 s and 31 days.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 {
            return Err(Error::invalid("quota", "limit must be at least 1"));
        }
        if self.period < Duration::from_secs(1) || self.period > Duration::from_secs(31 * 86_400) {
            return Err(Error::invalid("quota", "period must be between 1 s and 31 days"));
        }
        Ok(())
    }
}

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
            && scope.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
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
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision>;

    /// Forgets everything about `key` (e.g. after a successful login).
    async fn reset(&self, key: &RateLimitKey) -> Result<()>;
}
