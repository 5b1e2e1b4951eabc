//! The process-local first cache level of the [`Enricher`](super::Enricher): decoded answers
//! kept for a short, real-time age.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most entries kept; when full, the level is emptied (it refills from the shared cache).
const MAX_ENTRIES: usize = 100_000;

type Entry = (Instant, Arc<dyn Any + Send + Sync>);

/// Answers by cache key, each valid until its deadline. A zero `max_age` turns it off.
pub(super) struct LocalCache {
    max_age: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCache")
            .field("max_age", &self.max_age)
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl LocalCache {
    pub(super) fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer for `key`, if one of type `T` is still fresh.
    pub(super) fn get<T: Clone + 'static>(&self, key: &str) -> Option<T> {
        if self.max_age.is_zero() {
            return None;
        }
        let entries = self.lock();
        let (deadline, value) = entries.get(key)?;
        if Instant::now() >= *deadline {
            return None;
        }
        value.downcast_ref::<T>().cloned()
    }

    /// Keeps `value` for `key` for the shorter of `max_age` and `age`.
    pub(super) fn put<T: Send + Sync + 'static>(&self, key: &str, value: T, age: Duration) {
        if self.max_age.is_zero() {
            return;
        }
        let deadline = Instant::now() + self.max_age.min(age);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_owned(), (deadline, Arc::new(value)));
    }

    /// Forgets `key`.
    pub(super) fn remove(&self, key: &str) {
        if !self.max_age.is_zero() {
            self.lock().remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_fresh_typed_answers_and_forgets_on_demand() {
        let cache = LocalCache::new(Duration::from_secs(60));
        cache.put("k", Some(7u32), Duration::from_secs(60));
        assert_eq!(cache.get::<Option<u32>>("k"), Some(Some(7)));
        // Another type under the same key is a miss, never a wrong answer.
        assert_eq!(cache.get::<Option<String>>("k"), None);
        cache.remove("k");
        assert_eq!(cache.get::<Option<u32>>("k"), None);
    }

    #[test]
    fn expired_and_disabled_levels_answer_nothing() {
        let cache = LocalCache::new(Duration::from_secs(60));
        cache.put("k", 1u8, Duration::ZERO);
        assert_eq!(cache.get::<u8>("k"), None);
        let off = LocalCache::new(Duration::ZERO);
        off.put("k", 1u8, Duration::from_secs(60));
        assert_eq!(off.get::<u8>("k"), None);
    }
}
