//! A random key namespace on the test Redis server, shared by every Redis-backed suite.

use std::fmt;

/// The variable naming the test Redis server.
pub const REDIS_URL_VAR: &str = "OPENFRAME_TEST_REDIS_URL";

/// A random key prefix on the test server (`OPENFRAME_TEST_REDIS_URL`); every key under it is
/// deleted when the namespace is dropped. `Debug` never shows the URL (it may hold a password).
pub struct RedisNamespace {
    /// The server URL.
    pub url: String,
    /// The key prefix, `oftest:<16 hex>:`.
    pub prefix: String,
}

impl RedisNamespace {
    /// A fresh namespace, or `None` after printing `skipped: set OPENFRAME_TEST_REDIS_URL to run
    /// {suite}` when no server is configured.
    pub fn new(suite: &str) -> Option<Self> {
        match std::env::var(REDIS_URL_VAR) {
            Ok(url) if !url.is_empty() => Some(Self {
                url,
                prefix: format!("oftest:{:016x}:", rand::random::<u64>()),
            }),
            _ => {
                println!("skipped: set {REDIS_URL_VAR} to run {suite}");
                None
            }
        }
    }

    /// Deletes every key under the prefix.
    pub fn clean(&self) -> redis::RedisResult<()> {
        let mut con = redis::Client::open(self.url.as_str())?.get_connection()?;
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(&keys).query::<()>(&mut con)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        if let Err(e) = self.clean() {
            eprintln!("could not clean Redis test prefix {}: {e}", self.prefix);
        }
    }
}

impl fmt::Debug for RedisNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNamespace")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
