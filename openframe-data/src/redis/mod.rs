//! Redis backends: [`RedisCache`] and [`RedisLock`] (feature `redis`).
//!
//! Both follow the injected [`Clock`], not the Redis server's clock:
//! every entry stores its expiry (epoch milliseconds by the backend's clock) next to the data,
//! and entries whose expiry is at or before `clock.now()` count as absent. Each key also gets a
//! real Redis `PX` TTL of the same length, so Redis garbage-collects what nobody reads again.
//! Expiry has millisecond resolution. The real TTL counts Redis server time, so with a clock
//! that runs slower than real time (a paused test clock) an entry also vanishes once its TTL
//! has passed in real time; tests keep their real run time well below the TTLs they use.
//!
//! Every read-modify-write (cache get/delete, lock acquire/extend/release) runs as one Lua
//! script, so the free/held/expired/owner decisions are atomic across replicas.
//!
//! ```no_run
//! # async fn run() -> openframe_core::Result<()> {
//! use std::{sync::Arc, time::Duration};
//! use openframe_core::SystemClock;
//! use openframe_data::{DistributedLock, redis::RedisLock};
//!
//! let lock = RedisLock::connect("redis://127.0.0.1:6379/", Arc::new(SystemClock))
//!     .await?
//!     .with_key_prefix("prod:");
//! if let Some(lease) = lock.try_acquire("offline-sweep", Duration::from_secs(60)).await? {
//!     // ... run the job ...
//!     lock.release(&lease, Duration::from_secs(10)).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Keys: a cache entry lives at `{prefix}{CacheKey}` (a hash with fields `v`, the value, and
//! `e`, the expiry); a lock at `{prefix}of:lock:{name}` (a hash with fields `t`, the owner
//! token, and `e`, the expiry).

mod cache;
mod lock;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{FromRedisValue, ScriptInvocation};
use openframe_core::{Clock, Error, Result, Timestamp};

pub use cache::RedisCache;
pub use lock::RedisLock;

/// The backend name used in [`Error::Backend`].
const BACKEND: &str = "redis";
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Maps a driver error. The driver's messages never contain the connection URL.
fn backend_error(e: ::redis::RedisError) -> Error {
    Error::backend(BACKEND, e)
}

/// What both backends hold: a self-reconnecting connection, the clock and the key prefix.
#[derive(Clone)]
struct Connection {
    manager: ConnectionManager,
    clock: Arc<dyn Clock>,
    prefix: String,
}

impl Connection {
    /// Connects to `url`. The URL may hold a password, so it is never logged nor put in an
    /// error.
    async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let client = ::redis::Client::open(url).map_err(backend_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(backend_error)?;
        Ok(Self {
            manager,
            clock,
            prefix: String::new(),
        })
    }

    /// The clock's current time, in epoch milliseconds.
    fn now_ms(&self) -> i64 {
        epoch_ms(self.clock.now())
    }

    /// `prefix` followed by `parts`: the Redis key.
    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        parts.iter().for_each(|part| key.push_str(part));
        key
    }

    /// Runs a prepared script.
    async fn run<T: FromRedisValue>(&self, script: &ScriptInvocation<'_>) -> Result<T> {
        script
            .invoke_async(&mut self.manager.clone())
            .await
            .map_err(backend_error)
    }

    /// Writes the `Debug` form of a backend named `name`. The manager's own `Debug` would
    /// print the connection info, password included, so it is left out.
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("prefix", &self.prefix)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch of `at`.
fn epoch_ms(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

/// A Redis `PX`/`PEXPIRE` argument for `d`: whole milliseconds rounded up, at least 1.
fn px(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let ms = if d.subsec_nanos() % 1_000_000 == 0 {
        ms
    } else {
        ms.saturating_add(1)
    };
    ms.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn px_rounds_up_to_whole_milliseconds() {
        assert_eq!(px(Duration::from_nanos(1)), 1);
        assert_eq!(px(Duration::from_millis(1)), 1);
        assert_eq!(px(Duration::from_micros(1_500)), 2);
        assert_eq!(px(Duration::from_secs(60)), 60_000);
    }
}
