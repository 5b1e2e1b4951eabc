//! A tenant-scoped cache with TTLs.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Error, Result, TenantId};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest accepted cached value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Longest accepted TTL.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A cache key, always prefixed with its tenant: `of:{tenant}:namespace:key`. The braces make
/// the tenant a Redis Cluster hash tag, so one tenant's keys live on one shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// Builds a key; `namespace` is `[a-z0-9_-]{1,64}`, `key` at most 512 bytes.
    ///
    /// ```
    /// use openframe_core::TenantId;
    /// use openframe_data::CacheKey;
    /// let key = CacheKey::new(&TenantId::parse("acme").unwrap(), "machine-by-agent", "node//x").unwrap();
    /// assert_eq!(key.as_str(), "of:{acme}:machine-by-agent:node//x");
    /// ```
    pub fn new(tenant: &TenantId, namespace: &str, key: &str) -> Result<Self> {
        let ns_ok = !namespace.is_empty()
            && namespace.len() <= 64
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ns_ok {
            return Err(Error::invalid("namespace", "must be 1-64 of [a-z0-9_-]"));
        }
        if key.is_empty() || key.len() > 512 {
            return Err(Error::invalid("key", "must be 1-512 bytes"));
        }
        Ok(Self(format!("of:{{{tenant}}}:{namespace}:{key}")))
    }

    /// The full key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A byte cache with per-entry TTL. Expiry follows the injected `Clock` of the backend.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::{sync::Arc, time::Duration};
/// use openframe_core::{ManualClock, TenantId};
/// use openframe_data::{CacheExt, CacheKey, memory::InMemoryCache};
/// let clock = Arc::new(ManualClock::default());
/// let cache = InMemoryCache::new(clock.clone());
/// let key = CacheKey::new(&TenantId::parse("acme").unwrap(), "orgs", "42").unwrap();
/// cache.set_json(&key, &"Acme Ltd", Duration::from_secs(60)).await.unwrap();
/// assert_eq!(cache.get_json::<String>(&key).await.unwrap().as_deref(), Some("Acme Ltd"));
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(cache.get_json::<String>(&key).await.unwrap(), None);
/// # });
/// ```
#[async_trait]
pub trait Cache: Send + Sync + Debug + 'static {
    /// The value, if present and not expired.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>>;
    /// Stores a value for `ttl` (1 ms to 30 days, at most 1 MiB).
    async fn set(&self, key: &CacheKey, value: Vec<u8>, ttl: Duration) -> Result<()>;
    /// Removes a value; `true` if one was present.
    async fn delete(&self, key: &CacheKey) -> Result<bool>;
}

/// Typed JSON helpers for any [`Cache`].
#[async_trait]
pub trait CacheExt: Cache {
    /// Reads a JSON value; an undecodable entry counts as a miss.
    async fn get_json<T: DeserializeOwned>(&self, key: &CacheKey) -> Result<Option<T>> {
        Ok(self
            .get(key)
            .await?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Stores a JSON value.
    async fn set_json<T: Serialize + Sync>(
        &self,
        key: &CacheKey,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| Error::invalid("value", e.to_string()))?;
        self.set(key, bytes, ttl).await
    }
}

impl<C: Cache + ?Sized> CacheExt for C {}

/// Checks the value size and TTL range shared by every backend.
pub fn check_entry(value: &[u8], ttl: Duration) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid("value", "must be at most 1 MiB"));
    }
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(Error::invalid("ttl", "must be between 1 ms and 30 days"));
    }
    Ok(())
}
