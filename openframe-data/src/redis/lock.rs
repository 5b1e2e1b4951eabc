use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;
use openframe_core::{Clock, Result};

use super::{Connection, epoch_ms, px};
use crate::lock::{DistributedLock, Lease, add, check_lock, new_token};

/// `ACQUIRE`: takes the lock if it is absent or its expiry is at or before `now`.
/// KEYS: lock. ARGV: token, now, expiry (epoch ms), PX (ms). Returns 1 if taken.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 't', ARGV[1], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
",
    )
});

/// `EXTEND`: moves the expiry if the lock is held by `token` and not expired at `now`.
/// KEYS: lock. ARGV: token, now, new expiry (epoch ms), PX (ms). Returns 1 if extended.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 't', 'e')
if h[1] ~= ARGV[1] or not h[2] or tonumber(h[2]) <= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
",
    )
});

/// `RELEASE`: if the lock is held by `token` and not expired at `now`, keeps it until
/// `keep_until` when that is after `now`, else deletes it.
/// KEYS: lock. ARGV: token, now, keep_until (epoch ms), PX to keep_until (ms).
/// Returns 1 if it was ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 't', 'e')
if h[1] ~= ARGV[1] or not h[2] or tonumber(h[2]) <= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'e', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
",
    )
});

/// A [`DistributedLock`] in Redis, shared by every replica using the same server and prefix.
/// Expiry follows the injected clock (keep replica clocks in sync); keys also carry a real
/// Redis TTL of the same length, so a crashed holder's key is eventually removed.
///
/// ```no_run
/// # async fn run() -> openframe_core::Result<()> {
/// use std::{sync::Arc, time::Duration};
/// use openframe_core::SystemClock;
/// use openframe_data::{DistributedLock, redis::RedisLock};
/// let lock = RedisLock::connect("redis://127.0.0.1:6379/", Arc::new(SystemClock)).await?;
/// if let Some(lease) = lock.try_acquire("offline-sweep", Duration::from_secs(60)).await? {
///     lock.release(&lease, Duration::ZERO).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisLock {
    conn: Connection,
}

impl RedisLock {
    /// Connects to `url` (`redis://[user:password@]host:port/db`), with expiry on `clock`.
    ///
    /// Fails with [`Error::Backend`](openframe_core::Error::Backend) when the URL does not
    /// parse or the server stays unreachable through the driver's retries (about 10 s). The
    /// URL is never logged nor put in an error, since it may hold a password.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        Ok(Self {
            conn: Connection::open(url, clock).await?,
        })
    }

    /// Prepends `prefix` to every key (for example a deployment or test namespace).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.conn.prefix = prefix.into();
        self
    }

    /// The prefix prepended to every key.
    pub fn key_prefix(&self) -> &str {
        &self.conn.prefix
    }

    /// The Redis key of the lock `name`.
    fn key(&self, name: &str) -> String {
        self.conn.key(&["of:lock:", name])
    }
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.conn.debug("RedisLock", f)
    }
}

#[async_trait]
impl DistributedLock for RedisLock {
    async fn try_acquire(&self, name: &str, lock_at_most: Duration) -> Result<Option<Lease>> {
        check_lock(name, lock_at_most)?;
        let now = self.conn.clock.now();
        let lease = Lease {
            name: name.to_owned(),
            token: new_token(),
            acquired_at: now,
            expires_at: add(now, lock_at_most),
        };
        let taken: i64 = self
            .conn
            .run(
                ACQUIRE
                    .key(self.key(name))
                    .arg(&lease.token)
                    .arg(epoch_ms(now))
                    .arg(epoch_ms(lease.expires_at))
                    .arg(px(lock_at_most)),
            )
            .await?;
        Ok((taken == 1).then_some(lease))
    }

    async fn extend(&self, lease: &Lease, lock_at_most: Duration) -> Result<Option<Lease>> {
        check_lock(&lease.name, lock_at_most)?;
        let now = self.conn.clock.now();
        let expires_at = add(now, lock_at_most);
        let extended: i64 = self
            .conn
            .run(
                EXTEND
                    .key(self.key(&lease.name))
                    .arg(&lease.token)
                    .arg(epoch_ms(now))
                    .arg(epoch_ms(expires_at))
                    .arg(px(lock_at_most)),
            )
            .await?;
        Ok((extended == 1).then(|| Lease {
            expires_at,
            ..lease.clone()
        }))
    }

    async fn release(&self, lease: &Lease, lock_at_least: Duration) -> Result<bool> {
        let now = self.conn.now_ms();
        let keep_until = epoch_ms(add(lease.acquired_at, lock_at_least));
        // Only used when `keep_until > now`, so it is at least 1 ms.
        let keep_px = keep_until.saturating_sub(now).max(1);
        let released: i64 = self
            .conn
            .run(
                RELEASE
                    .key(self.key(&lease.name))
                    .arg(&lease.token)
                    .arg(now)
                    .arg(keep_until)
                    .arg(keep_px),
            )
            .await?;
        Ok(released == 1)
    }
}
