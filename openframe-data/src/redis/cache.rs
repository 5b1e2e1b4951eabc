use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;
use openframe_core::{Clock, Result};

use super::{Connection, epoch_ms, px};
use crate::cache::{Cache, CacheKey, check_entry};
use crate::lock::add;

/// `GET`: the value if the entry expires after `now`; an expired entry is deleted.
/// KEYS: entry. ARGV: now (epoch ms).
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'v', 'e')
if not h[1] or not h[2] then return false end
if tonumber(h[2]) > tonumber(ARGV[1]) then return h[1] end
redis.call('DEL', KEYS[1])
return false
",
    )
});

/// `SET`: replaces the entry. KEYS: entry. ARGV: value, expiry (epoch ms), PX (ms).
static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// `DELETE`: removes the entry; 1 if it had not expired at `now`.
/// KEYS: entry. ARGV: now (epoch ms).
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(e) > tonumber(ARGV[1]) then return 1 end
return 0
",
    )
});

/// A [`Cache`] in Redis. Expiry follows the injected clock; keys also carry a real Redis TTL
/// of the same length.
///
/// ```no_run
/// # async fn run() -> openframe_core::Result<()> {
/// use std::{sync::Arc, time::Duration};
/// use openframe_core::{SystemClock, TenantId};
/// use openframe_data::{CacheExt, CacheKey, redis::RedisCache};
/// let cache = RedisCache::connect("redis://127.0.0.1:6379/", Arc::new(SystemClock)).await?;
/// let key = CacheKey::new(&TenantId::parse("acme")?, "orgs", "42")?;
/// cache.set_json(&key, &"Acme Ltd", Duration::from_secs(60)).await?;
/// assert_eq!(cache.get_json::<String>(&key).await?.as_deref(), Some("Acme Ltd"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisCache {
    conn: Connection,
}

impl RedisCache {
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
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.conn.debug("RedisCache", f)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let key = self.conn.key(&[key.as_str()]);
        self.conn.run(GET.key(key).arg(self.conn.now_ms())).await
    }

    async fn set(&self, key: &CacheKey, value: Vec<u8>, ttl: Duration) -> Result<()> {
        check_entry(&value, ttl)?;
        let key = self.conn.key(&[key.as_str()]);
        let expires = epoch_ms(add(self.conn.clock.now(), ttl));
        let _: i64 = self
            .conn
            .run(SET.key(key).arg(value).arg(expires).arg(px(ttl)))
            .await?;
        Ok(())
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let key = self.conn.key(&[key.as_str()]);
        let removed: i64 = self
            .conn
            .run(DELETE.key(key).arg(self.conn.now_ms()))
            .await?;
        Ok(removed == 1)
    }
}
