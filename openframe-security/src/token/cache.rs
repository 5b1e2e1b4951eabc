//! The verified-token cache: a token verified once is served from memory until it expires.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openframe_core::TenantId;
use sha2::{Digest as _, Sha256};

use super::VerifiedToken;

/// Most shards; each is a map behind its own lock.
const MAX_SHARDS: usize = 64;

/// The SHA-256 of a token: the cache key (the token itself is never stored).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub(crate) fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    fn prefix(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly distributed: the first 8 bytes are the hash.
        state.write_u64(self.prefix());
    }
}

/// A hasher that passes a `write_u64` through (keys are SHA-256 digests).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Shard = HashMap<TokenDigest, Entry, BuildHasherDefault<DigestHasher>>;

struct Entry {
    token: Arc<VerifiedToken>,
    /// Served while `valid_from <= now < valid_until` (seconds; leeway included).
    valid_from: i64,
    valid_until: i64,
    generation: TenantGeneration,
}

impl Entry {
    fn is_live(&self, now: i64) -> bool {
        self.valid_from <= now && now < self.valid_until && self.generation.is_current()
    }
}

/// A snapshot of a tenant's cache generation, taken before a token is verified: if
/// [`VerifiedTokenCache::forget_tenant`] runs in between, the entry is stale on arrival.
#[derive(Clone)]
pub struct TenantGeneration {
    cell: Arc<AtomicU64>,
    at: u64,
}

impl TenantGeneration {
    fn is_current(&self) -> bool {
        self.cell.load(Ordering::Acquire) == self.at
    }
}

impl fmt::Debug for TenantGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantGeneration")
            .field("at", &self.at)
            .finish()
    }
}

/// Verified access tokens by SHA-256 of the token, so a repeated token costs one hash and one
/// sharded map lookup instead of a signature check.
///
/// - Bounded: a full shard first drops expired and forgotten entries, then arbitrary ones.
/// - Entries expire with the token (`exp` plus leeway) and are not served before `nbf`/`iat`
///   (minus leeway).
/// - [`forget`](Self::forget) drops one token; [`forget_tenant`](Self::forget_tenant) bumps the
///   tenant's generation so all its entries become misses at once.
/// - Capacity 0 disables it.
///
/// Revocation is checked by the [`TokenService`](super::TokenService) on every hit.
pub struct VerifiedTokenCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    leeway: i64,
    generations: RwLock<HashMap<TenantId, Arc<AtomicU64>>>,
}

impl fmt::Debug for VerifiedTokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedTokenCache")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl VerifiedTokenCache {
    /// A cache of at most about `capacity` tokens, serving each within `leeway` of its
    /// validity window.
    pub fn new(capacity: usize, leeway: Duration) -> Self {
        let shards = (capacity / 1024).clamp(1, MAX_SHARDS).next_power_of_two();
        let shards = if capacity == 0 {
            0
        } else {
            shards.min(MAX_SHARDS)
        };
        Self {
            shards: (0..shards).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard: if shards == 0 {
                0
            } else {
                capacity.div_ceil(shards)
            },
            leeway: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
            generations: RwLock::new(HashMap::new()),
        }
    }

    /// Whether the cache stores anything (capacity above 0).
    pub fn is_enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// Entries held (including ones not yet evicted after expiry).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, digest: &TokenDigest) -> Option<&RwLock<Shard>> {
        if self.shards.is_empty() {
            return None;
        }
        // Bits 32.. of the prefix pick the shard; the map uses the whole prefix.
        let i = (digest.prefix() >> 32) as usize & (self.shards.len() - 1);
        self.shards.get(i)
    }

    /// The verified token for `token` if cached and valid at `now` (seconds since the epoch).
    pub fn get(&self, token: &str, now: i64) -> Option<Arc<VerifiedToken>> {
        if !self.is_enabled() {
            return None;
        }
        self.get_digest(&TokenDigest::of(token), now)
    }

    pub(crate) fn get_digest(&self, digest: &TokenDigest, now: i64) -> Option<Arc<VerifiedToken>> {
        let shard = self
            .shard(digest)?
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(digest)?;
        entry.is_live(now).then(|| entry.token.clone())
    }

    /// The current generation of `tenant`; take it before verifying a token to cache.
    pub fn generation(&self, tenant: &TenantId) -> TenantGeneration {
        let known = self
            .generations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned();
        let cell = match known {
            Some(cell) => cell,
            None => self
                .generations
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(AtomicU64::new(0)))
                .clone(),
        };
        let at = cell.load(Ordering::Acquire);
        TenantGeneration { cell, at }
    }

    /// Caches a verified `token` until it expires. `generation` was taken before verifying;
    /// `now` (seconds) decides which entries are expired when room must be made.
    pub fn insert(
        &self,
        token: &str,
        verified: Arc<VerifiedToken>,
        generation: TenantGeneration,
        now: i64,
    ) {
        if self.is_enabled() {
            self.insert_digest(TokenDigest::of(token), verified, generation, now);
        }
    }

    pub(crate) fn insert_digest(
        &self,
        digest: TokenDigest,
        verified: Arc<VerifiedToken>,
        generation: TenantGeneration,
        now: i64,
    ) {
        let Some(shard) = self.shard(&digest) else {
            return;
        };
        let claims = &verified.claims;
        let entry = Entry {
            valid_from: claims.nbf.max(claims.iat).saturating_sub(self.leeway),
            valid_until: claims.exp.saturating_add(self.leeway),
            generation,
            token: verified,
        };
        let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&digest) {
            shard.retain(|_, e| e.valid_until > now && e.generation.is_current());
            if shard.len() >= self.per_shard {
                // Still full of live entries: drop an arbitrary eighth (keys are random).
                let excess = (self.per_shard / 8).max(1);
                let victims: Vec<TokenDigest> = shard.keys().take(excess).copied().collect();
                for victim in victims {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(digest, entry);
    }

    /// Drops `token`; whether it was cached.
    pub fn forget(&self, token: &str) -> bool {
        self.forget_digest(&TokenDigest::of(token))
    }

    pub(crate) fn forget_digest(&self, digest: &TokenDigest) -> bool {
        self.shard(digest).is_some_and(|s| {
            s.write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(digest)
                .is_some()
        })
    }

    /// Makes every cached token of `tenant` a miss (they are evicted lazily).
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.generation(tenant).cell.fetch_add(1, Ordering::AcqRel);
    }
}
