//! [`RedisRateLimiter`]: GCRA in Redis, shared by every replica (feature `redis`).
//!
//! Each [`RateLimitKey`] is one Redis hash at `{prefix}{key}` (the key's `{tenant}` is a
//! cluster hash tag) with one field per quota, `{limit}/{period in µs}`, holding that quota's
//! theoretical arrival time in epoch microseconds. One Lua script reads every quota of a
//! request, decides, and (only when all allow) writes them, so concurrent requests from any
//! number of replicas are counted exactly. "Now" is the injected clock's, passed as an
//! argument, so replicas should keep their clocks in sync (NTP) and tests can move time.
//! The hash gets a real Redis TTL of the longest period among the quotas of the request
//! (never shortened by a request with shorter quotas), after which it would be fully
//! replenished anyway.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use async_trait::async_trait;
use openframe_core::{Clock, Error, Result};

use super::gcra::{self, Params, evaluate};
use super::{Decision, Quota, RateLimitKey, RateLimiter};

/// The backend name used in [`Error::Backend`].
const BACKEND: &str = "redis";
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnection attempts after the first one fails (each request waits for them while the
/// server is away, so they are few and short).
const RECONNECT_RETRIES: usize = 1;
/// The shortest and longest pause between reconnection attempts.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(250);
/// The most one `check` or `reset` may take, reconnection included: a limiter must answer
/// quickly, and [`Failover`](super::fail_policy::Failover) decides when it does not.
const CALL_DEADLINE: Duration = Duration::from_millis(1500);

/// `CHECK`: the GCRA of [`gcra::evaluate`] for all quotas of one request.
///
/// KEYS: the hash. ARGV: now (epoch µs), PEXPIRE (ms), then per quota its field, emission
/// interval (µs) and tolerance (µs). When every quota allows, writes every new TAT and makes
/// sure the TTL is at least the PEXPIRE argument. Returns `{allowed ('1' or '0'), stored TAT
/// or false per quota}`, the TATs as they were before the write.
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local n = (#ARGV - 2) / 3
local fields = {}
for i = 1, n do fields[i] = ARGV[3 * i] end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local allowed = true
local writes = {}
for i = 1, n do
  local interval = tonumber(ARGV[3 * i + 1])
  local tolerance = tonumber(ARGV[3 * i + 2])
  local tat = tonumber(stored[i]) or now
  if tat < now then tat = now end
  if tat > now + tolerance then tat = now + tolerance end
  local new_tat = tat + interval
  if new_tat - now > tolerance then allowed = false end
  writes[2 * i - 1] = fields[i]
  writes[2 * i] = string.format('%d', new_tat)
end
local out = {allowed and '1' or '0'}
for i = 1, n do out[i + 1] = stored[i] end
if allowed then
  redis.call('HSET', KEYS[1], unpack(writes))
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return out
",
    )
});

/// Maps a driver error. The driver's messages never contain the connection URL.
fn backend_error(e: ::redis::RedisError) -> Error {
    Error::backend(BACKEND, e)
}

/// A [`RateLimiter`] in Redis: GCRA per (key, quota), decided atomically by one Lua script per
/// request, shared by every replica that uses the same server and key prefix.
///
/// Built to fail fast: every call has a 1.5 s deadline, reconnection included, and a lost
/// connection is retried once before the call fails with `Backend` (or `Unavailable` at the
/// deadline), so a Redis outage costs each request milliseconds, not seconds. Wrap the
/// limiter in [`Failover`](super::fail_policy::Failover) to turn those errors into decisions.
///
/// ```no_run
/// # async fn run() -> openframe_core::Result<()> {
/// use std::sync::Arc;
/// use openframe_core::SystemClock;
/// use openframe_security::ratelimit::{Quota, RateLimitKey, RateLimiter};
/// use openframe_security::ratelimit::fail_policy::{FailPolicy, Failover};
/// use openframe_security::ratelimit::redis::RedisRateLimiter;
///
/// let redis = RedisRateLimiter::connect("redis://127.0.0.1:6379/", Arc::new(SystemClock))
///     .await?
///     .with_key_prefix("prod:");
/// // A Redis outage then allows requests instead of failing them.
/// let limiter = Failover::new(redis, FailPolicy::Open);
/// let key = RateLimitKey::new("api-key", None, "ak_0123456789abcdef")?;
/// let decision = limiter.check(&key, &[Quota::per_minute(100), Quota::per_day(10_000)]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRateLimiter {
    manager: ConnectionManager,
    clock: Arc<dyn Clock>,
    prefix: String,
}

impl RedisRateLimiter {
    /// Connects to `url` (`redis://[user:password@]host:port/db`), deciding with `clock`.
    ///
    /// Fails with [`Error::Backend`] when the URL does not parse or the server stays
    /// unreachable through the driver's retries. The URL is never logged nor put in an error,
    /// since it may hold a password. The connection reconnects by itself afterwards.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let client = ::redis::Client::open(url).map_err(backend_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(backend_error)?;
        Ok(Self {
            manager,
            clock,
            prefix: String::new(),
        })
    }

    /// Prepends `prefix` to every key (for example a deployment or test namespace).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The prefix prepended to every key.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of `key`.
    fn redis_key(&self, key: &RateLimitKey) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.as_str().len());
        k.push_str(&self.prefix);
        k.push_str(key.as_str());
        k
    }
}

impl fmt::Debug for RedisRateLimiter {
    /// Leaves out the connection, whose own `Debug` would print the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Runs one Redis call within [`CALL_DEADLINE`].
async fn within_deadline<T>(call: impl Future<Output = ::redis::RedisResult<T>>) -> Result<T> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(result) => result.map_err(backend_error),
        Err(_) => Err(Error::Unavailable {
            reason: "the Redis rate limiter did not answer in time".into(),
        }),
    }
}

/// Whole milliseconds of `micros`, rounded up, at least 1.
fn ceil_ms(micros: i64) -> i64 {
    (micros.saturating_add(999) / 1000).max(1)
}

/// Reads the script's reply: the allow flag and the stored TAT of each quota.
fn parse_reply(reply: Vec<Option<String>>, quotas: usize) -> Result<(bool, Vec<Option<i64>>)> {
    let corrupt = || Error::Internal("unexpected rate limit state in Redis".into());
    let mut items = reply.into_iter();
    let allowed = match items.next().flatten().as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(corrupt()),
    };
    let tats = items
        .map(|tat| {
            tat.map(|t| t.parse::<i64>().map_err(|_| corrupt()))
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    if tats.len() != quotas {
        return Err(corrupt());
    }
    Ok((allowed, tats))
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &RateLimitKey, quotas: &[Quota]) -> Result<Decision> {
        Quota::validate_all(quotas)?;
        let now = gcra::micros(self.clock.now());
        let params: Vec<Params> = quotas.iter().map(Params::of).collect();
        let ttl = params.iter().map(|p| p.tolerance).max().unwrap_or(0);
        let mut invocation = CHECK.key(self.redis_key(key));
        invocation.arg(now).arg(ceil_ms(ttl));
        for (quota, p) in quotas.iter().zip(&params) {
            invocation
                .arg(gcra::field(quota))
                .arg(p.interval)
                .arg(p.tolerance);
        }
        let mut conn = self.manager.clone();
        let reply: Vec<Option<String>> =
            within_deadline(invocation.invoke_async(&mut conn)).await?;
        let (allowed, stored) = parse_reply(reply, quotas.len())?;
        let outcome = evaluate(now, quotas, &stored);
        if outcome.decision.allowed != allowed {
            return Err(Error::Internal(
                "the Redis rate limit script and the GCRA disagree".into(),
            ));
        }
        Ok(outcome.decision)
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<()> {
        let mut conn = self.manager.clone();
        let cmd = ::redis::cmd("DEL").arg(self.redis_key(key)).to_owned();
        within_deadline(cmd.exec_async(&mut conn)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_strictly() {
        let ok = parse_reply(vec![Some("1".into()), None, Some("42".into())], 2).unwrap();
        assert_eq!(ok, (true, vec![None, Some(42)]));
        assert!(parse_reply(vec![Some("0".into()), None], 2).is_err());
        assert!(parse_reply(vec![Some("2".into()), None], 1).is_err());
        assert!(parse_reply(vec![Some("1".into()), Some("x".into())], 1).is_err());
        assert!(parse_reply(vec![], 0).is_err());
    }

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ceil_ms(1), 1);
        assert_eq!(ceil_ms(1_000), 1);
        assert_eq!(ceil_ms(1_001), 2);
        assert_eq!(ceil_ms(60_000_000), 60_000);
    }
}
