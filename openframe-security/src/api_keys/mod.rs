//! API keys for the external API: `ak_<16 hex>.sk_<32 hex>`, the original's format, so
//! existing integrations keep their header handling (`X-API-Key`).
//!
//! - The key id (`ak_...`) is public: it names the key in lists, logs and rate limits.
//! - The secret (`sk_...`, 128 random bits) is shown once, in [`CreatedApiKey::secret`], and
//!   stored only as a keyed hash: HMAC-SHA256 under a server key, over the key id and the
//!   secret. A high-entropy secret needs no slow password hash; the server key means a leaked
//!   database alone does not even allow an offline check, and binding the key id means a
//!   hash copied onto another key's record does not verify there.
//! - The metadata ([`ApiKey`]) lives in the owning tenant's partition, through the
//!   [`ApiKeyRepository`]. The hash lives in an [`ApiKeyCredential`] in the platform
//!   partition, keyed by the key id and naming the tenant, so an `X-API-Key` resolves to its
//!   tenant without knowing it first, and key ids are unique across all tenants.
//! - [`ApiKeyService::authenticate`] answers every refusal (malformed, unknown key, wrong
//!   secret, disabled, expired) with the same [`Error::Unauthenticated`] and does the same
//!   work (a lookup and an HMAC) for unknown keys as for wrong secrets, so responses do not
//!   reveal which key ids exist (the original answered "API key not found"). A key verified
//!   in the last few seconds is answered from a short-lived cache without the lookup
//!   ([`ApiKeyService::with_auth_cache_ttl`]), so a refusal may come faster for an id in
//!   recent use; key ids are public (they name keys in lists and logs), secrets are not.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_core::{SystemClock, TenantId, UserId};
//! use openframe_data::{Repositories, memory::InMemoryDocumentStore};
//! use openframe_security::api_keys::ApiKeyService;
//!
//! let store = Arc::new(InMemoryDocumentStore::new());
//! let repos = Repositories::new(store.clone());
//! let service = ApiKeyService::new(store, repos.api_keys, [7; 32], Arc::new(SystemClock));
//! let acme = TenantId::parse("acme")?;
//! let created = service
//!     .create(&acme, UserId::generate(), "ci", vec!["devices:read".into()], None)
//!     .await?;
//! // Hand `created.secret.expose()` to the user once; then, per request:
//! let auth = service.authenticate(created.secret.expose()).await?;
//! assert_eq!(auth.tenant, acme);
//! assert!(auth.has_scope("devices:read"));
//! assert!(!auth.has_scope("devices:write"));
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

mod cache;
mod usage;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::{constant_time, hmac, rand as lc_rand};
use openframe_core::{ApiKey, ApiKeyId, Clock, Error, Result, Secret, TenantId, Timestamp, UserId};
use openframe_data::entity::{Entity, serde_body, serde_from_body};
use openframe_data::store::{
    DocumentStore, FieldDef, FieldKind, IndexDef, Partition, Schema, Value,
};
use openframe_data::{ApiKeyRepository, DocumentRepository, Timestamped};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use cache::DEFAULT_AUTH_CACHE_TTL;
pub use usage::{DEFAULT_FLUSH_INTERVAL, FlushReport, UsageRecorder};

use cache::{CachedKey, KeyCache};

/// Length of a full key, `ak_<16 hex>.sk_<32 hex>`, in bytes.
pub const API_KEY_LEN: usize = 3 + ID_HEX + 4 + SECRET_HEX;
/// Hex digits of the key id after `ak_` (8 random bytes).
const ID_HEX: usize = 16;
/// Hex digits of the secret after `sk_` (16 random bytes).
const SECRET_HEX: usize = 32;
/// Longest accepted scope, in bytes.
pub const MAX_SCOPE_LEN: usize = 64;
/// The hash scheme of new credentials.
const SCHEME: &str = "hmac-sha256-v1";
/// Domain separation for the HMAC input.
const HMAC_CONTEXT: &[u8] = b"openframe-api-key-v1\0";
/// How many fresh ids to try when one is taken (at 64 random bits, practically never).
const ID_ATTEMPTS: usize = 3;
/// How many times `set_enabled` retries a version conflict.
const UPDATE_ATTEMPTS: usize = 8;

/// A new key: its metadata and the full key string, shown to the user once and never again.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The stored metadata.
    pub key: ApiKey,
    /// The full `ak_<16 hex>.sk_<32 hex>` string (redacted in `Debug`, never serialized).
    pub secret: Secret,
}

/// A request authenticated by an API key: the key's tenant and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatedKey {
    /// The tenant that owns the key.
    pub tenant: TenantId,
    /// The key's metadata (owner in [`ApiKey::user_id`], scopes, usage).
    pub key: ApiKey,
}

impl AuthenticatedKey {
    /// Whether the key grants `required` (e.g. `devices:read`): a granted scope equal to it,
    /// `*`, or a `prefix:*` where `required` starts with `prefix:`. An empty `required` is
    /// never granted.
    ///
    /// ```
    /// # use openframe_core::{ApiKey, TenantId, UserId, SystemClock, Clock};
    /// # use openframe_security::api_keys::AuthenticatedKey;
    /// let key = ApiKey::new("ci", UserId::generate(), vec!["devices:*".into()], SystemClock.now());
    /// let auth = AuthenticatedKey { tenant: TenantId::parse("acme").unwrap(), key };
    /// assert!(auth.has_scope("devices:read"));
    /// assert!(!auth.has_scope("devicesx:read"));
    /// assert!(!auth.has_scope("users:read"));
    /// ```
    pub fn has_scope(&self, required: &str) -> bool {
        !required.is_empty()
            && self
                .key
                .scopes
                .iter()
                .any(|granted| scope_grants(granted, required))
    }
}

/// Whether the granted scope `granted` covers `required`.
fn scope_grants(granted: &str, required: &str) -> bool {
    if granted == "*" || granted == required {
        return true;
    }
    granted.strip_suffix('*').is_some_and(|prefix| {
        prefix.ends_with(':') && required.len() > prefix.len() && required.starts_with(prefix)
    })
}

/// Checks a scope: `*`, or `:`-separated segments of `[a-z0-9_.-]` where the last may be
/// `*` (`devices:read`, `devices:*`), at most [`MAX_SCOPE_LEN`] bytes.
pub fn validate_scope(scope: &str) -> Result<()> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            })
    };
    let ok = scope.len() <= MAX_SCOPE_LEN
        && (scope == "*"
            || match scope.rsplit_once(':') {
                Some((head, last)) => {
                    head.split(':').all(segment_ok) && (last == "*" || segment_ok(last))
                }
                None => segment_ok(scope),
            });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "scopes",
            "each scope is `*` or segments of [a-z0-9_.-] separated by ':', the last may be `*`",
        ))
    }
}

/// The stored hash of one API key's secret, in the platform partition under the key id.
///
/// Holds the owning tenant (so a presented key resolves to its tenant) and the keyed hash;
/// never the secret. `Debug` leaves the hash out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCredential {
    /// The key id, `ak_<16 hex>`.
    pub id: ApiKeyId,
    /// The tenant that owns the key.
    pub tenant_id: TenantId,
    /// How `mac` was computed.
    scheme: String,
    /// Hex HMAC-SHA256 of the key id and secret under the service's key.
    mac: String,
    /// When the key was issued.
    pub created_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl fmt::Debug for ApiKeyCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyCredential")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("scheme", &self.scheme)
            .field("created_at", &self.created_at)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

static CREDENTIAL_SCHEMA: Schema = Schema {
    collection: "api_key_credentials",
    entity: "api key credential",
    fields: &[FieldDef::required("tenant_id", FieldKind::Str)],
    indexes: &[IndexDef {
        fields: &["tenant_id"],
    }],
    unique: &[],
};

impl Entity for ApiKeyCredential {
    const SCHEMA: &'static Schema = &CREDENTIAL_SCHEMA;

    fn doc_id(&self) -> &str {
        self.id.as_str()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn validate(&self) -> Result<()> {
        let mac_ok = self.mac.len() == 64 && is_lower_hex(self.mac.as_bytes());
        if self.scheme != SCHEME || !mac_ok {
            return Err(Error::Internal("malformed api key credential".into()));
        }
        Ok(())
    }
    fn index_values(&self) -> Vec<Value> {
        vec![Value::str(self.tenant_id.as_str())]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
    fn to_body(&self) -> Result<String> {
        serde_body(self)
    }
    fn from_body(body: &str) -> Result<Self> {
        serde_from_body(CREDENTIAL_SCHEMA.entity, body)
    }
}

impl Timestamped for ApiKeyCredential {
    /// Credentials are written once and never updated; there is nothing to stamp.
    fn set_updated_at(&mut self, _now: Timestamp) {}
}

/// Issues, authenticates, regenerates and revokes API keys.
///
/// Built over the document store that holds the credentials (platform partition), the
/// [`ApiKeyRepository`] that holds the metadata (tenant partitions; normally over the same
/// store), the 32-byte HMAC key (derive it from the master key; rotating it invalidates every
/// key) and the clock that decides expiry.
///
/// Verified keys are kept for [`DEFAULT_AUTH_CACHE_TTL`] (see
/// [`with_auth_cache_ttl`](Self::with_auth_cache_ttl)), so a busy key skips the two storage
/// lookups; the secret, enabled flag and expiry are still checked on every request.
pub struct ApiKeyService {
    keys: Arc<dyn ApiKeyRepository>,
    credentials: DocumentRepository<ApiKeyCredential>,
    hmac: hmac::Key,
    clock: Arc<dyn Clock>,
    usage: UsageRecorder,
    verified: KeyCache,
}

impl fmt::Debug for ApiKeyService {
    /// Leaves out the HMAC key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyService")
            .field("keys", &self.keys)
            .field("credentials", &self.credentials)
            .field("clock", &self.clock)
            .field("usage", &self.usage)
            .field("auth_cache", &self.verified.enabled())
            .finish_non_exhaustive()
    }
}

impl ApiKeyService {
    /// A service storing credentials in `store` and metadata through `repo`.
    pub fn new(
        store: Arc<dyn DocumentStore>,
        repo: Arc<dyn ApiKeyRepository>,
        hmac_key: [u8; 32],
        clock: Arc<dyn Clock>,
    ) -> Self {
        let hmac_key = Zeroizing::new(hmac_key);
        Self {
            usage: UsageRecorder::new(repo.clone()),
            keys: repo,
            credentials: DocumentRepository::new(store, clock.clone()),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, hmac_key.as_slice()),
            clock,
            verified: KeyCache::new(DEFAULT_AUTH_CACHE_TTL),
        }
    }

    /// How long [`authenticate`](Self::authenticate) trusts what it read from storage about a
    /// key (default [`DEFAULT_AUTH_CACHE_TTL`]; zero reads storage on every request).
    ///
    /// Revoking, regenerating, enabling or disabling a key through this service takes effect
    /// at once here. A change made through another service instance (another replica) or
    /// directly in the repository takes effect here within `ttl`: that is how long a revoked
    /// key can keep working on a replica that verified it just before.
    pub fn with_auth_cache_ttl(mut self, ttl: Duration) -> Self {
        self.verified = KeyCache::new(ttl);
        self
    }

    /// Issues a key for `user_id` in `tenant`. The returned [`CreatedApiKey::secret`] is the
    /// only time the full key is available.
    ///
    /// `InvalidInput` for a blank or overlong `name`, more than 100 scopes, a malformed scope
    /// (see [`validate_scope`]) or an `expires_at` that is not in the future.
    pub async fn create(
        &self,
        tenant: &TenantId,
        user_id: UserId,
        name: impl Into<String>,
        scopes: Vec<String>,
        expires_at: Option<Timestamp>,
    ) -> Result<CreatedApiKey> {
        let now = self.clock.now();
        scopes.iter().try_for_each(|s| validate_scope(s))?;
        if expires_at.is_some_and(|exp| exp <= now) {
            return Err(Error::invalid("expiresAt", "must be in the future"));
        }
        let mut key = ApiKey::new(name, user_id, scopes, now);
        key.expires_at = expires_at;
        key.validate()?;
        self.issue(tenant, key).await
    }

    /// Resolves a presented `X-API-Key` value to its tenant and key.
    ///
    /// Every refusal is the same [`Error::Unauthenticated`]: malformed input (anything but
    /// exactly `ak_<16 lowercase hex>.sk_<32 lowercase hex>`), an unknown key id, a wrong
    /// secret, a disabled or an expired key. Unknown ids and wrong secrets cost the same
    /// work (one lookup, one HMAC, one constant-time comparison); malformed input skips the
    /// lookup but still computes an HMAC. Storage failures are returned as they are (a 503,
    /// not a 401).
    pub async fn authenticate(&self, raw: &str) -> Result<AuthenticatedKey> {
        let Some((id, secret)) = parse(raw) else {
            // Same HMAC work as a real check; the answer is fixed.
            let _ = self.matches(DUMMY_ID, DUMMY_SECRET, &[0; 32]);
            return Err(Error::Unauthenticated);
        };
        let now = self.clock.now();
        let entry = match self.verified.get(id, now) {
            Some(entry) if self.matches(id, secret, &entry.mac) => entry,
            Some(_) => {
                tracing::debug!(key_id = id, "api key refused: wrong secret");
                return Err(Error::Unauthenticated);
            }
            // `read_key` checked the secret.
            None => match self.read_key(id, secret).await? {
                Some((entry, generation)) => {
                    self.verified.put(id, entry.clone(), generation);
                    entry
                }
                None => return Err(Error::Unauthenticated),
            },
        };
        if !entry.key.is_active(now) {
            tracing::debug!(key_id = id, "api key refused: disabled or expired");
            return Err(Error::Unauthenticated);
        }
        Ok(AuthenticatedKey {
            tenant: entry.tenant,
            key: entry.key,
        })
    }

    /// Reads key `id` from storage and checks `secret` against its credential: `None` for an
    /// unknown id, a wrong secret or missing metadata (the same HMAC work for each). Also
    /// returns the cache generation seen before reading, so a key changed meanwhile is not
    /// cached.
    async fn read_key(&self, id: &str, secret: &str) -> Result<Option<(CachedKey, u64)>> {
        let generation = self.verified.generation();
        let read_at = self.clock.now();
        let credential = self.credentials.get(&Partition::platform(), id).await?;
        let stored = credential
            .as_ref()
            .and_then(|c| decode_hex32(&c.mac))
            .unwrap_or([0; 32]);
        let secret_ok = self.matches(id, secret, &stored);
        let (Some(credential), true) = (credential, secret_ok) else {
            tracing::debug!(key_id = id, "api key refused: unknown key or wrong secret");
            return Ok(None);
        };
        let Some(key) = self.keys.get(&credential.tenant_id, &credential.id).await? else {
            tracing::debug!(key_id = id, "api key refused: no metadata");
            return Ok(None);
        };
        let entry = CachedKey {
            mac: stored,
            tenant: credential.tenant_id,
            key,
            read_at,
        };
        Ok(Some((entry, generation)))
    }

    /// Deletes key `id` of `tenant` (its credential first, so it stops working at once, then
    /// its metadata). `NotFound` if `tenant` has no such key.
    pub async fn revoke(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<()> {
        if self.keys.get(tenant, id).await?.is_none() {
            return Err(Error::not_found("api key"));
        }
        self.retire(tenant, id).await
    }

    /// Replaces key `id` of `tenant` by a new key (new id and secret) with the same name,
    /// description, owner, scopes, enabled flag and expiry; the old key stops working. Usage
    /// counters start again at zero. `NotFound` if `tenant` has no such key.
    pub async fn regenerate(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<CreatedApiKey> {
        let old = self
            .keys
            .get(tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("api key"))?;
        let mut key = ApiKey::new(
            old.name.clone(),
            old.user_id.clone(),
            old.scopes.clone(),
            self.clock.now(),
        );
        key.description = old.description.clone();
        key.enabled = old.enabled;
        key.expires_at = old.expires_at;
        let created = self.issue(tenant, key).await?;
        if let Err(e) = self.retire(tenant, id).await {
            // Keep exactly one working key: undo the new one, report the failure.
            if let Err(undo) = self.retire(tenant, &created.key.id).await {
                tracing::warn!(error = %undo, "could not undo a half-done api key regeneration");
            }
            return Err(e);
        }
        Ok(created)
    }

    /// Enables or disables key `id` of `tenant`; disabled keys are refused by
    /// [`authenticate`](Self::authenticate). Returns the updated metadata; `NotFound` if
    /// `tenant` has no such key.
    pub async fn set_enabled(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        enabled: bool,
    ) -> Result<ApiKey> {
        for _ in 0..UPDATE_ATTEMPTS {
            let mut key = self
                .keys
                .get(tenant, id)
                .await?
                .ok_or_else(|| Error::not_found("api key"))?;
            if key.enabled == enabled {
                return Ok(key);
            }
            key.enabled = enabled;
            let updated = self.keys.update(tenant, key).await;
            self.verified.forget(id.as_str());
            match updated {
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::conflict("api key is being changed concurrently"))
    }

    /// Counts one request made with key `id` of `tenant` (`failed` for requests that failed),
    /// stamping the last use on success, with one conditional write
    /// ([`ApiKeyRepository::record_usage`]) that never loses a concurrent increment. On a
    /// hot path use the batching [`usage_recorder`](Self::usage_recorder) instead.
    pub async fn record_usage(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        failed: bool,
    ) -> Result<ApiKey> {
        self.keys
            .record_usage(tenant, id, failed, self.clock.now())
            .await
    }

    /// The service's shared [`UsageRecorder`] (over the same repository, flushing every
    /// [`DEFAULT_FLUSH_INTERVAL`]): counts requests in memory and writes one delta per key
    /// per flush. Flush it on shutdown.
    pub fn usage_recorder(&self) -> &UsageRecorder {
        &self.usage
    }

    /// Stores a credential and the metadata for `key` under a fresh id; returns the full key.
    async fn issue(&self, tenant: &TenantId, mut key: ApiKey) -> Result<CreatedApiKey> {
        let platform = Partition::platform();
        for _ in 0..ID_ATTEMPTS {
            let id = ApiKeyId::parse(format!("ak_{}", random_hex::<{ ID_HEX / 2 }>()?.as_str()))?;
            let secret = random_hex::<{ SECRET_HEX / 2 }>()?;
            let credential = ApiKeyCredential {
                id: id.clone(),
                tenant_id: tenant.clone(),
                scheme: SCHEME.to_owned(),
                mac: hex(self.mac(id.as_str(), secret.as_str()).as_ref()),
                created_at: key.created_at,
                version: 0,
            };
            match self.credentials.insert(&platform, credential).await {
                Ok(_) => {}
                Err(Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
            key.id = id.clone();
            return match self.keys.insert(tenant, key).await {
                Ok(key) => Ok(CreatedApiKey {
                    secret: Secret::new(format!("{}.sk_{}", id.as_str(), secret.as_str())),
                    key,
                }),
                Err(e) => {
                    if let Err(undo) = self.credentials.delete_hard(&platform, id.as_str()).await {
                        tracing::warn!(error = %undo, "could not remove the credential of a failed api key");
                    }
                    Err(e)
                }
            };
        }
        Err(Error::Internal(
            "could not allocate an unused api key id".into(),
        ))
    }

    /// Deletes the credential (if it belongs to `tenant`) and the metadata of key `id`;
    /// already missing parts are fine.
    async fn retire(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<()> {
        let platform = Partition::platform();
        if let Some(credential) = self.credentials.get(&platform, id.as_str()).await? {
            if credential.tenant_id == *tenant {
                ignore_not_found(self.credentials.delete_hard(&platform, id.as_str()).await)?;
            }
        }
        let deleted = ignore_not_found(self.keys.delete(tenant, id).await);
        self.verified.forget(id.as_str());
        deleted
    }

    /// HMAC-SHA256 over the context, the key id and the secret.
    fn mac(&self, id: &str, secret: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.hmac);
        ctx.update(HMAC_CONTEXT);
        ctx.update(id.as_bytes());
        ctx.update(b"\0");
        ctx.update(secret.as_bytes());
        ctx.sign()
    }

    /// Whether `secret` hashes to `expected`, compared in constant time.
    fn matches(&self, id: &str, secret: &str, expected: &[u8; 32]) -> bool {
        constant_time::verify_slices_are_equal(self.mac(id, secret).as_ref(), expected).is_ok()
    }
}

/// Placeholders hashed for malformed input, so it costs an HMAC like a real check.
const DUMMY_ID: &str = "ak_0000000000000000";
const DUMMY_SECRET: &str = "00000000000000000000000000000000";

/// Splits `ak_<16 hex>.sk_<32 hex>` into the key id and the secret hex; `None` for anything
/// else (other lengths, uppercase hex, whitespace, non-ASCII).
fn parse(raw: &str) -> Option<(&str, &str)> {
    let b = raw.as_bytes();
    let ok = b.len() == API_KEY_LEN
        && b.starts_with(b"ak_")
        && is_lower_hex(&b[3..3 + ID_HEX])
        && &b[3 + ID_HEX..7 + ID_HEX] == b".sk_"
        && is_lower_hex(&b[7 + ID_HEX..]);
    // Only ASCII was accepted, so the byte offsets are char boundaries.
    ok.then(|| (&raw[..3 + ID_HEX], &raw[7 + ID_HEX..]))
}

fn is_lower_hex(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Decodes 64 lowercase hex digits.
fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// `N` bytes from the system CSPRNG, as lowercase hex (wiped on drop).
fn random_hex<const N: usize>() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; N]);
    lc_rand::fill(bytes.as_mut_slice())
        .map_err(|_| Error::Internal("the system random generator failed".into()))?;
    Ok(Zeroizing::new(hex(bytes.as_slice())))
}

fn ignore_not_found(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_strict() {
        let good = "ak_0123456789abcdef.sk_0123456789abcdef0123456789abcdef";
        assert_eq!(good.len(), API_KEY_LEN);
        assert_eq!(
            parse(good),
            Some(("ak_0123456789abcdef", "0123456789abcdef0123456789abcdef"))
        );
        for bad in [
            "",
            "ak_0123456789abcdef",
            "ak_0123456789ABCDEF.sk_0123456789abcdef0123456789abcdef",
            "ak_0123456789abcdef.sk_0123456789abcdef0123456789abcdeg",
            "ak_0123456789abcdef:sk_0123456789abcdef0123456789abcdef",
            "xk_0123456789abcdef.sk_0123456789abcdef0123456789abcdef",
            "ak_0123456789abcdef.sk_0123456789abcdef0123456789abcdef ",
            " ak_0123456789abcdef.sk_0123456789abcdef0123456789abcde",
            "ak_0123456789abcdé.sk_0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(decode_hex32(&hex(&bytes)), Some(bytes));
        assert_eq!(decode_hex32(&"A".repeat(64)), None);
        assert_eq!(decode_hex32("00"), None);
    }

    #[test]
    fn scopes_and_wildcards() {
        for ok in [
            "*",
            "devices:read",
            "devices:*",
            "org.devices:read-all",
            "a:b:c",
        ] {
            assert!(validate_scope(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Devices:read",
            "dev*ces",
            "devices:*:read",
            "a::b",
            ":a",
            "a:",
            "*:read",
            &"a".repeat(65),
        ] {
            assert!(validate_scope(bad).is_err(), "{bad}");
        }
        assert!(scope_grants("*", "devices:read"));
        assert!(scope_grants("devices:*", "devices:read"));
        assert!(scope_grants("devices:*", "devices:read:own"));
        assert!(!scope_grants("devices:*", "devices:"));
        assert!(!scope_grants("devices:*", "devices"));
        assert!(!scope_grants("devices:*", "devicesx:read"));
        assert!(!scope_grants("devices:read", "devices:write"));
        assert!(!scope_grants("dev*", "devices:read"));
    }
}
