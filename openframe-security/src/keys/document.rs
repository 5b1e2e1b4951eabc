//! [`DocumentKeyStore`]: tenant keys in any `openframe-data` document store.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use openframe_core::{Clock, Error, Result, SortDirection, TenantId, Timestamp};
use openframe_data::entity::{Entity, from_doc, serde_body, serde_from_body};
use openframe_data::store::{
    CmpOp, DocumentStore, FieldDef, FieldKind, Filter, FindQuery, IndexDef, Partition, Schema,
    SortKey, Value,
};
use openframe_data::{DocumentRepository, Timestamped};
use serde::{Deserialize, Serialize};

use super::{KeyPolicy, KeyStore, SigningKey, VerificationKey, add, new_kid, sub, valid_kid};
use crate::crypto::{Jwk, JwkSet, MasterKey, Signer, SigningAlgorithm, generate_pkcs8};

/// At most this many published keys are loaded per tenant.
const MAX_LOADED_KEYS: usize = 256;
/// Tenant lock stripes.
const LOCK_STRIPES: usize = 64;
/// Attempts of a rotation that keeps losing the race for the next epoch.
const ROTATE_ATTEMPTS: usize = 4;

/// The collection: one document per key in the tenant's partition. `epoch` numbers a tenant's
/// keys 1, 2, 3, ... and is unique per tenant: the active key is the highest epoch, so creating
/// the first key and rotating are both a single insert that exactly one writer can win (on any
/// backend, across replicas), and there is never a moment without an active key.
static SCHEMA: Schema = Schema {
    collection: "signing_keys",
    entity: "signing key",
    fields: &[
        FieldDef::required("epoch", FieldKind::Int),
        FieldDef::optional("retired_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef { fields: &["epoch"] },
        IndexDef {
            fields: &["retired_at"],
        },
    ],
    unique: &[&["epoch"]],
};

/// A stored key. The private key is present only while the key is active, and only sealed
/// with the master key (AAD = tenant and kid), never as PEM or DER.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyRecord {
    id: String,
    version: u64,
    epoch: i64,
    algorithm: SigningAlgorithm,
    public_key: Jwk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_private_key: Option<String>,
    created_at: Timestamp,
    #[serde(default)]
    retired_at: Option<Timestamp>,
    updated_at: Timestamp,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.id)
            .field("epoch", &self.epoch)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl Entity for KeyRecord {
    const SCHEMA: &'static Schema = &SCHEMA;
    fn doc_id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
    fn validate(&self) -> Result<()> {
        if !valid_kid(&self.id) || self.public_key.kid != self.id {
            return Err(Error::invalid("kid", "must be 1-64 of [A-Za-z0-9_-]"));
        }
        if self.epoch < 1 {
            return Err(Error::invalid("epoch", "must be at least 1"));
        }
        Ok(())
    }
    fn index_values(&self) -> Vec<Value> {
        vec![Value::Int(self.epoch), Value::opt_time(self.retired_at)]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
    fn to_body(&self) -> Result<String> {
        serde_body(self)
    }
    fn from_body(body: &str) -> Result<Self> {
        serde_from_body("signing key", body)
    }
}

impl Timestamped for KeyRecord {
    fn set_updated_at(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

/// The AAD that binds a sealed private key to its tenant and kid: a record copied to another
/// tenant or kid cannot be opened.
fn aad(tenant: &TenantId, kid: &str) -> Vec<u8> {
    format!("openframe-signing-key\0{tenant}\0{kid}").into_bytes()
}

/// The active key of a cached tenant: public parts parsed, private key opened on first use.
struct ActiveKey {
    kid: String,
    algorithm: SigningAlgorithm,
    created_at: Timestamp,
    public_key: Jwk,
    sealed: Option<String>,
    signing: OnceLock<Arc<SigningKey>>,
}

/// What is cached per tenant.
struct TenantKeys {
    loaded_at: Timestamp,
    active: Option<ActiveKey>,
    /// Newest first; the active key first.
    keys: Vec<Arc<VerificationKey>>,
}

impl TenantKeys {
    fn find(&self, kid: &str) -> Option<&Arc<VerificationKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// Tenant signing keys over an `openframe-data` [`DocumentStore`] (collection
/// `signing_keys`, one partition per tenant), so it runs on memory, SQLite and MongoDB.
///
/// - The private key is stored only as `MasterKey::seal(pkcs8, aad = tenant + kid)`; a retired
///   key's private part is deleted, only its public JWK stays.
/// - Parsed keys are cached per tenant for [`KeyPolicy::refresh`] (refreshed at once after a
///   rotation through this store); signing and verifying never decrypt or parse.
/// - The first use of a tenant, and a rotation, is one insert of the next `epoch`, unique per
///   tenant: concurrent first uses (any number of replicas) end with one active key.
/// - Key generation and parsing run on Tokio's blocking pool.
///
/// See the [module documentation](super) for an example.
#[derive(Clone)]
pub struct DocumentKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn DocumentStore>,
    repo: DocumentRepository<KeyRecord>,
    master: MasterKey,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    cache: RwLock<HashMap<TenantId, Arc<TenantKeys>>>,
    locks: Box<[tokio::sync::Mutex<()>]>,
}

impl fmt::Debug for DocumentKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentKeyStore")
            .field("store", &self.inner.store.backend())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl DocumentKeyStore {
    /// A key store over `store`, sealing private keys with `master`, on `clock`.
    pub fn new(
        store: Arc<dyn DocumentStore>,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                repo: DocumentRepository::new(store.clone(), clock.clone()),
                store,
                master,
                clock,
                policy,
                cache: RwLock::new(HashMap::new()),
                locks: (0..LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            }),
        }
    }

    /// The collection layout (for backends that create collections ahead of use).
    pub fn schema() -> &'static Schema {
        &SCHEMA
    }

    fn lock(&self, tenant: &TenantId) -> &tokio::sync::Mutex<()> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(tenant);
        &self.inner.locks[(hash % LOCK_STRIPES as u64) as usize]
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantKeys>> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
    }

    fn is_fresh(&self, keys: &TenantKeys, now: Timestamp) -> bool {
        now < add(keys.loaded_at, self.inner.policy.refresh)
    }

    /// The tenant's keys from the cache or the store; with `create`, makes sure there is an
    /// active key.
    async fn tenant_keys(&self, tenant: &TenantId, create: bool) -> Result<Arc<TenantKeys>> {
        let now = self.inner.clock.now();
        let cached = self.cached(tenant);
        if let Some(keys) = &cached {
            if !create || keys.active.is_some() {
                if self.is_fresh(keys, now) {
                    return Ok(keys.clone());
                }
                // Stale: one caller re-reads; the others keep using the cached keys meanwhile.
                return match self.lock(tenant).try_lock() {
                    Ok(_guard) => self.reload(tenant, create, None).await,
                    Err(_) => Ok(keys.clone()),
                };
            }
        }
        let _guard = self.lock(tenant).lock().await;
        if let Some(current) = self.cached(tenant) {
            let changed = cached.as_ref().is_none_or(|c| !Arc::ptr_eq(c, &current));
            if changed && (!create || current.active.is_some()) {
                return Ok(current);
            }
        }
        self.reload(tenant, create, None).await
    }

    /// Re-reads the tenant's published keys (creating the first one if asked) and caches them.
    /// The caller holds the tenant's lock. `fresh` is a just-created key, so it is not opened
    /// again.
    async fn reload(
        &self,
        tenant: &TenantId,
        create: bool,
        fresh: Option<Arc<SigningKey>>,
    ) -> Result<Arc<TenantKeys>> {
        let mut fresh = fresh;
        let mut records = self.published_records(tenant).await?;
        if create && records.is_empty() {
            let epoch = self.latest_record(tenant).await?.map_or(1, |r| r.epoch + 1);
            match self
                .create_key(tenant, epoch, self.inner.policy.algorithm)
                .await
            {
                Ok(key) => fresh = Some(key),
                // Another caller (another replica) created it first: use theirs.
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            records = self.published_records(tenant).await?;
            if records.is_empty() {
                return Err(Error::conflict(
                    "the tenant's first signing key is being created",
                ));
            }
        }
        let previous = self.cached(tenant);
        let keys = Arc::new(self.build(tenant, &records, previous.as_deref(), fresh)?);
        self.inner
            .cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone(), keys.clone());
        Ok(keys)
    }

    /// The active key and every key retired within `overlap`, newest first.
    async fn published_records(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>> {
        let horizon = sub(self.inner.clock.now(), self.inner.policy.overlap);
        let published = Filter::Or(vec![
            Filter::IsNull("retired_at"),
            Filter::Cmp("retired_at", CmpOp::Gt, Value::time(horizon)),
        ]);
        self.newest_first(tenant, published, MAX_LOADED_KEYS).await
    }

    /// The tenant's highest-epoch key (the active one), if any.
    async fn latest_record(&self, tenant: &TenantId) -> Result<Option<KeyRecord>> {
        Ok(self.newest_first(tenant, Filter::All, 1).await?.pop())
    }

    /// Up to `limit` keys matching `filter`, highest epoch first.
    async fn newest_first(
        &self,
        tenant: &TenantId,
        filter: Filter,
        limit: usize,
    ) -> Result<Vec<KeyRecord>> {
        let query = FindQuery {
            filter,
            sort: vec![
                (SortKey::Field("epoch"), SortDirection::Desc),
                (SortKey::Id, SortDirection::Desc),
            ],
            limit,
        };
        self.inner
            .store
            .find(&SCHEMA, &Partition::tenant(tenant), &query)
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }

    /// The cache entry for `records` (newest first), reusing parsed keys of `previous`.
    fn build(
        &self,
        tenant: &TenantId,
        records: &[KeyRecord],
        previous: Option<&TenantKeys>,
        fresh: Option<Arc<SigningKey>>,
    ) -> Result<TenantKeys> {
        let mut keys = Vec::with_capacity(records.len());
        let mut active = None;
        for (i, record) in records.iter().enumerate() {
            let retired_at = if i == 0 {
                None
            } else {
                // A key is retired when its successor is created; if writing `retired_at`
                // did not happen (a crash mid-rotation), the successor's creation time is it.
                let successor = &records[i - 1];
                Some(
                    record
                        .retired_at
                        .unwrap_or(if successor.epoch == record.epoch + 1 {
                            successor.created_at
                        } else {
                            Timestamp::MIN_UTC
                        }),
                )
            };
            let reused = previous
                .and_then(|p| p.find(&record.id))
                .filter(|k| k.jwk() == &record.public_key);
            let key = match reused {
                Some(k) if k.retired_at == retired_at => k.clone(),
                Some(k) => Arc::new(k.with_retired_at(retired_at)),
                None => match VerificationKey::new(
                    record.public_key.clone(),
                    record.created_at,
                    retired_at,
                ) {
                    Ok(k) => Arc::new(k),
                    Err(e) if i == 0 => {
                        return Err(Error::Internal(
                            format!(
                                "the active signing key {} of tenant {tenant} has an invalid public key: {e}",
                                record.id
                            )
                            .into(),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(%tenant, kid = %record.id, error = %e, "skipping a retired signing key with an invalid public key");
                        continue;
                    }
                },
            };
            if i == 0 {
                let signing = OnceLock::new();
                let opened = fresh.clone().filter(|k| k.kid == record.id).or_else(|| {
                    previous
                        .and_then(|p| p.active.as_ref())
                        .filter(|a| a.kid == record.id)
                        .and_then(|a| a.signing.get().cloned())
                });
                if let Some(k) = opened {
                    let _ = signing.set(k);
                }
                active = Some(ActiveKey {
                    kid: record.id.clone(),
                    algorithm: record.algorithm,
                    created_at: record.created_at,
                    public_key: record.public_key.clone(),
                    sealed: record.sealed_private_key.clone(),
                    signing,
                });
            }
            keys.push(key);
        }
        Ok(TenantKeys {
            loaded_at: self.inner.clock.now(),
            active,
            keys,
        })
    }

    /// Generates, seals and inserts the tenant's key number `epoch`. `AlreadyExists` when
    /// another writer took that epoch first.
    async fn create_key(
        &self,
        tenant: &TenantId,
        epoch: i64,
        algorithm: SigningAlgorithm,
    ) -> Result<Arc<SigningKey>> {
        let (pkcs8, signer) = tokio::task::spawn_blocking(move || {
            let pkcs8 = generate_pkcs8(algorithm)?;
            let signer = Signer::from_pkcs8(algorithm, &pkcs8)?;
            Ok::<_, Error>((pkcs8, signer))
        })
        .await
        .map_err(|e| Error::Internal(format!("key generation task failed: {e}").into()))??;
        let kid = new_kid();
        let sealed = self.inner.master.seal(&pkcs8, &aad(tenant, &kid))?;
        drop(pkcs8);
        let now = self.inner.clock.now();
        let record = KeyRecord {
            id: kid.clone(),
            version: 0,
            epoch,
            algorithm,
            public_key: signer.public_jwk(&kid),
            sealed_private_key: Some(sealed),
            created_at: now,
            retired_at: None,
            updated_at: now,
        };
        self.inner
            .repo
            .insert(&Partition::tenant(tenant), record)
            .await?;
        tracing::info!(%tenant, %kid, %algorithm, epoch, "created a signing key");
        Ok(Arc::new(SigningKey::new(kid, now, signer)))
    }

    /// Opens the active key's private key (once per key and replica).
    async fn open(&self, tenant: &TenantId, active: &ActiveKey) -> Result<Arc<SigningKey>> {
        if let Some(key) = active.signing.get() {
            return Ok(key.clone());
        }
        let kid = active.kid.clone();
        let unusable = |why: &str| {
            Error::Internal(
                format!("the signing key {kid} of tenant {tenant} cannot be used: {why}").into(),
            )
        };
        let sealed = active
            .sealed
            .as_deref()
            .ok_or_else(|| unusable("its private key is missing"))?;
        let pkcs8 = self
            .inner
            .master
            .open(sealed, &aad(tenant, &kid))
            .map_err(|_| unusable("wrong master key, or the record was modified or moved"))?;
        let algorithm = active.algorithm;
        let signer = tokio::task::spawn_blocking(move || Signer::from_pkcs8(algorithm, &pkcs8))
            .await
            .map_err(|e| Error::Internal(format!("key parsing task failed: {e}").into()))?
            .map_err(|_| unusable("the private key does not parse"))?;
        if signer.public_jwk(&kid) != active.public_key {
            return Err(unusable(
                "the private key does not match the stored public key",
            ));
        }
        let key = Arc::new(SigningKey::new(kid, active.created_at, signer));
        Ok(active.signing.get_or_init(|| key).clone())
    }

    /// Marks `kid` retired at `at` and deletes its private key. Best effort: readers derive
    /// the retirement time from the successor when this write is missing.
    async fn retire(&self, tenant: &TenantId, kid: &str, at: Timestamp) {
        let retired = self
            .inner
            .repo
            .modify(&Partition::tenant(tenant), kid, |record, _now| {
                if record.retired_at.is_some() && record.sealed_private_key.is_none() {
                    return Ok(false);
                }
                record.retired_at = Some(record.retired_at.unwrap_or(at));
                record.sealed_private_key = None;
                Ok(true)
            })
            .await;
        if let Err(e) = retired {
            tracing::warn!(%tenant, %kid, error = %e, "could not mark a rotated signing key as retired");
        }
    }

    /// Rotates under the tenant's lock. With `only_if_due`, rotates only a key at least
    /// `rotation_period` old. Returns the new key, or `None` when this call did not rotate.
    async fn rotate_locked(
        &self,
        tenant: &TenantId,
        algorithm: Option<SigningAlgorithm>,
        only_if_due: bool,
    ) -> Result<Option<Arc<SigningKey>>> {
        let _guard = self.lock(tenant).lock().await;
        let started = self.inner.clock.now();
        for _ in 0..ROTATE_ATTEMPTS {
            let latest = self.latest_record(tenant).await?;
            if only_if_due {
                let due = latest.as_ref().is_some_and(|l| {
                    self.inner.clock.now() >= add(l.created_at, self.inner.policy.rotation_period)
                });
                if !due {
                    self.reload(tenant, false, None).await?;
                    return Ok(None);
                }
            }
            let algorithm = algorithm
                .or(latest.as_ref().map(|l| l.algorithm))
                .unwrap_or(self.inner.policy.algorithm);
            let epoch = latest.as_ref().map_or(1, |l| l.epoch + 1);
            match self.create_key(tenant, epoch, algorithm).await {
                Ok(key) => {
                    if let Some(previous) = &latest {
                        self.retire(tenant, &previous.id, key.created_at).await;
                    }
                    self.reload(tenant, false, Some(key.clone())).await?;
                    return Ok(Some(key));
                }
                Err(Error::AlreadyExists { .. }) => {
                    // A concurrent rotation (another replica) took this epoch.
                    let winner = self.latest_record(tenant).await?;
                    let fresh_enough = winner
                        .as_ref()
                        .is_some_and(|w| w.created_at >= started && w.algorithm == algorithm);
                    if fresh_enough {
                        self.reload(tenant, false, None).await?;
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            "the signing key is being rotated concurrently",
        ))
    }

    async fn active_signing_key(&self, tenant: &TenantId) -> Result<Arc<SigningKey>> {
        let keys = self.tenant_keys(tenant, true).await?;
        let active = keys
            .active
            .as_ref()
            .ok_or_else(|| Error::Internal("no active signing key after creation".into()))?;
        self.open(tenant, active).await
    }
}

#[async_trait]
impl KeyStore for DocumentKeyStore {
    fn policy(&self) -> &KeyPolicy {
        &self.inner.policy
    }

    async fn signing_key(&self, tenant: &TenantId) -> Result<Arc<SigningKey>> {
        self.active_signing_key(tenant).await
    }

    async fn verification_key(
        &self,
        tenant: &TenantId,
        kid: &str,
    ) -> Result<Option<Arc<VerificationKey>>> {
        if !valid_kid(kid) {
            return Ok(None);
        }
        let overlap = self.inner.policy.overlap;
        let keys = self.tenant_keys(tenant, false).await?;
        let now = self.inner.clock.now();
        if let Some(key) = keys.find(kid) {
            return Ok(key.is_published(now, overlap).then(|| key.clone()));
        }
        // Unknown here: another replica may have rotated since we read the store.
        if now < add(keys.loaded_at, self.inner.policy.unknown_kid_refresh) {
            return Ok(None);
        }
        let keys = {
            let _guard = self.lock(tenant).lock().await;
            match self.cached(tenant) {
                Some(current) if !Arc::ptr_eq(&current, &keys) => current,
                _ => self.reload(tenant, false, None).await?,
            }
        };
        Ok(keys
            .find(kid)
            .filter(|k| k.is_published(self.inner.clock.now(), overlap))
            .cloned())
    }

    async fn jwks(&self, tenant: &TenantId) -> Result<Arc<JwkSet>> {
        let keys = self.tenant_keys(tenant, true).await?;
        let now = self.inner.clock.now();
        Ok(Arc::new(JwkSet {
            keys: keys
                .keys
                .iter()
                .filter(|k| k.is_published(now, self.inner.policy.overlap))
                .map(|k| k.jwk().clone())
                .collect(),
        }))
    }

    async fn rotate(
        &self,
        tenant: &TenantId,
        algorithm: Option<SigningAlgorithm>,
    ) -> Result<Arc<SigningKey>> {
        match self.rotate_locked(tenant, algorithm, false).await? {
            Some(key) => Ok(key),
            // A concurrent rotation won with a fresh key of the wanted algorithm.
            None => self.active_signing_key(tenant).await,
        }
    }

    async fn rotate_if_due(&self, tenant: &TenantId) -> Result<bool> {
        let keys = self.tenant_keys(tenant, false).await?;
        let Some(active) = &keys.active else {
            return Ok(false);
        };
        if self.inner.clock.now() < add(active.created_at, self.inner.policy.rotation_period) {
            return Ok(false);
        }
        Ok(self.rotate_locked(tenant, None, true).await?.is_some())
    }
}

#[cfg(feature = "testkit")]
impl DocumentKeyStore {
    /// The partition and schema the testkit reads raw documents from.
    pub(crate) fn raw_location(tenant: &TenantId) -> (&'static Schema, Partition) {
        (&SCHEMA, Partition::tenant(tenant))
    }

    /// Opens a stored sealed private key (testkit only: proves what is at rest).
    pub(crate) fn open_sealed_for_test(
        master: &MasterKey,
        tenant: &TenantId,
        kid: &str,
        sealed: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        master.open(sealed, &aad(tenant, kid))
    }
}
