use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Clock, Error, Result, Timestamp};

use crate::cache::{Cache, CacheKey, check_entry};
use crate::lock::add;

/// A [`Cache`] in process memory; expired entries are dropped on access and when the map grows.
#[derive(Debug)]
pub struct InMemoryCache {
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, (Vec<u8>, Timestamp)>>,
}

impl InMemoryCache {
    /// An empty cache on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Cache for InMemoryCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let now = self.clock.now();
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| Error::Internal("cache lock poisoned".into()))?;
        match entries.get(key.as_str()) {
            Some((value, expires)) if *expires > now => Ok(Some(value.clone())),
            Some(_) => {
                entries.remove(key.as_str());
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn set(&self, key: &CacheKey, value: Vec<u8>, ttl: Duration) -> Result<()> {
        check_entry(&value, ttl)?;
        let now = self.clock.now();
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| Error::Internal("cache lock poisoned".into()))?;
        if entries.len() >= 10_000 && entries.len().is_power_of_two() {
            entries.retain(|_, (_, exp)| *exp > now);
        }
        entries.insert(key.as_str().to_owned(), (value, add(now, ttl)));
        Ok(())
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let now = self.clock.now();
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| Error::Internal("cache lock poisoned".into()))?;
        Ok(entries
            .remove(key.as_str())
            .is_some_and(|(_, exp)| exp > now))
    }
}
