use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Clock, Error, Result, Timestamp};

use crate::lock::{DistributedLock, Lease, add, check_lock, new_token};

/// A [`DistributedLock`] within one process (for a single replica and for tests).
#[derive(Debug)]
pub struct InMemoryLock {
    clock: Arc<dyn Clock>,
    held: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl InMemoryLock {
    /// No locks held, on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            held: Mutex::new(HashMap::new()),
        }
    }
}

fn poisoned() -> Error {
    Error::Internal("lock table poisoned".into())
}

#[async_trait]
impl DistributedLock for InMemoryLock {
    async fn try_acquire(&self, name: &str, lock_at_most: Duration) -> Result<Option<Lease>> {
        check_lock(name, lock_at_most)?;
        let now = self.clock.now();
        let mut held = self.held.lock().map_err(|_| poisoned())?;
        if held.get(name).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let lease = Lease {
            name: name.to_owned(),
            token: new_token(),
            acquired_at: now,
            expires_at: add(now, lock_at_most),
        };
        held.insert(name.to_owned(), (lease.token.clone(), lease.expires_at));
        Ok(Some(lease))
    }

    async fn extend(&self, lease: &Lease, lock_at_most: Duration) -> Result<Option<Lease>> {
        check_lock(&lease.name, lock_at_most)?;
        let now = self.clock.now();
        let mut held = self.held.lock().map_err(|_| poisoned())?;
        match held.get_mut(&lease.name) {
            Some((token, until)) if *token == lease.token && *until > now => {
                *until = add(now, lock_at_most);
                Ok(Some(Lease {
                    expires_at: *until,
                    ..lease.clone()
                }))
            }
            _ => Ok(None),
        }
    }

    async fn release(&self, lease: &Lease, lock_at_least: Duration) -> Result<bool> {
        let now = self.clock.now();
        let mut held = self.held.lock().map_err(|_| poisoned())?;
        let ours = held
            .get(&lease.name)
            .is_some_and(|(token, until)| *token == lease.token && *until > now);
        if !ours {
            return Ok(false);
        }
        let keep_until = add(lease.acquired_at, lock_at_least);
        if keep_until > now {
            held.insert(lease.name.clone(), (lease.token.clone(), keep_until));
        } else {
            held.remove(&lease.name);
        }
        Ok(true)
    }
}
