//! Registration secrets ("initial keys"): one active per tenant, rotatable, and the tenant is
//! found from the secret itself.
//!
//! The original agent sends only `X-Initial-Key` to fixed paths, so the key must name its
//! tenant. Two records per secret:
//!
//! - in the **platform** partition, keyed by hex HMAC-SHA256 of the secret under a sub-key of
//!   the master key (`agent-registration-secret`): the tenant and the tenant record's id. The
//!   lookup by keyed hash *is* the comparison: no plaintext is ever compared, and a leaked
//!   table yields no usable key.
//! - in the **tenant** partition: the secret sealed with the master key (AES-256-GCM, the
//!   additional data binds it to the tenant and the record id) so administrators can read the
//!   active one, an `epoch` with a unique index (concurrent creation or rotation is one insert
//!   only one writer wins), and whether it is active.
//!
//! The tenant record is the source of truth: a key resolves only if its record is the
//! tenant's current active one (highest active epoch) and the tenant is active. Rotation
//! seals the new secret, commits it with the epoch insert, then deactivates the older records
//! (dropping their sealed value) and deletes their platform entries, so the old key stops
//! working at once.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_core::{Clock, SystemClock, Tenant, TenantId};
//! use openframe_data::Repositories;
//! use openframe_data::memory::InMemoryDocumentStore;
//! use openframe_security::crypto::MasterKey;
//! use openframe_agent::enrollment::{EnrollmentError, RegistrationSecrets};
//!
//! let store = Arc::new(InMemoryDocumentStore::new());
//! let acme = TenantId::parse("acme")?;
//! Repositories::new(store.clone())
//!     .tenants
//!     .insert(Tenant::new(acme.clone(), "Acme", "acme.example", SystemClock.now()))
//!     .await?;
//! let secrets = RegistrationSecrets::new(store, &MasterKey::generate()?, Arc::new(SystemClock));
//! let first = secrets.ensure(&acme).await?;
//! assert_eq!(secrets.resolve(first.expose()).await.ok(), Some(acme.clone()));
//! let second = secrets.rotate(&acme).await?;
//! assert!(matches!(secrets.resolve(first.expose()).await, Err(EnrollmentError::InitialKeyInvalid)));
//! assert_eq!(secrets.active(&acme).await?.expose(), second.expose());
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openframe_core::{Clock, Error, Result, Secret, Tenant, TenantId, TenantStatus, Timestamp};
use openframe_data::entity::Entity;
use openframe_data::store::{
    DocumentStore, FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, Value,
};
use openframe_data::{DocumentRepository, TenantRepository, Timestamped};
use openframe_security::crypto::MasterKey;
use serde::{Deserialize, Serialize};

use super::error::{EnrollmentError, EnrollmentResult};

/// The HKDF purpose of the HMAC sub-key.
const HMAC_PURPOSE: &str = "agent-registration-secret";
/// Longest presented key worth hashing; real keys are 43 characters.
const MAX_PRESENTED_LEN: usize = 256;
/// Attempts when concurrent writers race for the same epoch.
const EPOCH_ATTEMPTS: usize = 8;
/// Most active records read at once (normally one; more only after a failed rotation).
const MAX_ACTIVE_READ: usize = 64;

/// The tenant-side record of one registration secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretRecord {
    /// Record id (UUIDv7).
    id: String,
    /// 1, 2, 3, ... per tenant; unique, so one writer wins each rotation.
    epoch: i64,
    /// Whether this is the tenant's current secret.
    active: bool,
    /// The secret sealed with the master key (dropped when deactivated).
    sealed: Option<String>,
    /// The id of the platform lookup record (hex HMAC of the secret).
    key_hash: String,
    /// When it was created.
    created_at: Timestamp,
    /// When it was deactivated.
    deactivated_at: Option<Timestamp>,
    /// Last change.
    updated_at: Timestamp,
    /// Version.
    version: u64,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("id", &self.id)
            .field("epoch", &self.epoch)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

static RECORD_SCHEMA: Schema = Schema {
    collection: "agent_registration_secrets",
    entity: "registration secret",
    fields: &[
        FieldDef::required("epoch", FieldKind::Int),
        FieldDef::required("active", FieldKind::Bool),
    ],
    indexes: &[IndexDef {
        fields: &["active"],
    }],
    unique: &[&["epoch"]],
};

impl SecretRecord {
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl Entity for SecretRecord {
    const SCHEMA: &'static Schema = &RECORD_SCHEMA;
    openframe_data::entity_basics!("registration secret", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![Value::Int(self.epoch), Value::Bool(self.active)]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl Timestamped for SecretRecord {
    fn set_updated_at(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

/// The platform-side lookup record: keyed hash of a secret → its tenant.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretLookup {
    /// Hex HMAC-SHA256 of the secret.
    id: String,
    /// The tenant the secret belongs to.
    tenant_id: TenantId,
    /// The tenant record.
    record_id: String,
    /// Creation time.
    created_at: Timestamp,
    /// Last change.
    updated_at: Timestamp,
    /// Version.
    version: u64,
}

impl std::fmt::Debug for SecretLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretLookup")
            .field("tenant_id", &self.tenant_id)
            .field("record_id", &self.record_id)
            .finish_non_exhaustive()
    }
}

static LOOKUP_SCHEMA: Schema = Schema {
    collection: "agent_registration_secret_lookup",
    entity: "registration secret",
    fields: &[FieldDef::required("tenant_id", FieldKind::Str)],
    indexes: &[IndexDef {
        fields: &["tenant_id"],
    }],
    unique: &[],
};

impl SecretLookup {
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl Entity for SecretLookup {
    const SCHEMA: &'static Schema = &LOOKUP_SCHEMA;
    openframe_data::entity_basics!("registration secret", serde);
    fn index_values(&self) -> Vec<Value> {
        vec![Value::str(self.tenant_id.as_str())]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl Timestamped for SecretLookup {
    fn set_updated_at(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

/// The collections of registration secrets (for backends that create tables up front).
pub fn schemas() -> Vec<&'static Schema> {
    vec![&RECORD_SCHEMA, &LOOKUP_SCHEMA]
}

/// Creates, rotates, reads and resolves per-tenant registration secrets (see the
/// [module documentation](self)). Cheap to clone.
#[derive(Clone)]
pub struct RegistrationSecrets {
    records: DocumentRepository<SecretRecord>,
    lookup: DocumentRepository<SecretLookup>,
    tenants: DocumentRepository<Tenant>,
    master: MasterKey,
    hmac: Arc<hmac::Key>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RegistrationSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationSecrets")
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new secret: 32 random bytes, base64url without padding.
fn generate() -> Secret {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

fn aad(tenant: &TenantId, record_id: &str) -> Vec<u8> {
    format!("agent-registration-secret\u{1f}{tenant}\u{1f}{record_id}").into_bytes()
}

fn ignore_not_found(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}

impl RegistrationSecrets {
    /// Secrets over `store`, sealed with `master` and looked up under a sub-key derived from
    /// it, with time from `clock`.
    pub fn new(store: Arc<dyn DocumentStore>, master: &MasterKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            records: DocumentRepository::new(store.clone(), clock.clone()),
            lookup: DocumentRepository::new(store.clone(), clock.clone()),
            tenants: DocumentRepository::new(store, clock.clone()),
            master: master.clone(),
            hmac: Arc::new(hmac::Key::new(
                hmac::HMAC_SHA256,
                &master.derive(HMAC_PURPOSE),
            )),
            clock,
        }
    }

    fn key_hash(&self, secret: &str) -> String {
        hex(hmac::sign(&self.hmac, secret.as_bytes()).as_ref())
    }

    async fn require_tenant(&self, tenant: &TenantId) -> Result<()> {
        match TenantRepository::get(&self.tenants, tenant).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found("tenant")),
        }
    }

    /// The tenant's active records, newest epoch first.
    async fn active_records(&self, tenant: &TenantId) -> Result<Vec<SecretRecord>> {
        let mut active = self
            .records
            .find_all(
                &Partition::tenant(tenant),
                Filter::Eq("active", Value::Bool(true)),
                MAX_ACTIVE_READ,
            )
            .await?;
        active.sort_by_key(|r| std::cmp::Reverse(r.epoch));
        Ok(active)
    }

    async fn current(&self, tenant: &TenantId) -> Result<Option<SecretRecord>> {
        Ok(self.active_records(tenant).await?.into_iter().next())
    }

    fn open(&self, tenant: &TenantId, record: &SecretRecord) -> Result<Secret> {
        let sealed = record.sealed.as_deref().ok_or_else(|| {
            Error::Internal("an active registration secret has no sealed value".into())
        })?;
        let plain = self
            .master
            .open(sealed, &aad(tenant, &record.id))
            .map_err(|_| {
                Error::Internal(
                    "a registration secret cannot be opened (was the master key changed?)".into(),
                )
            })?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| Error::Internal("a registration secret is not UTF-8".into()))?;
        Ok(Secret::new(text))
    }

    /// Creates and commits a new active secret at `epoch`; `AlreadyExists` if another writer
    /// took the epoch first (nothing of this attempt remains then).
    async fn create(&self, tenant: &TenantId, epoch: i64) -> Result<(SecretRecord, Secret)> {
        let now = self.clock.now();
        let secret = generate();
        let record_id = uuid::Uuid::now_v7().to_string();
        let key_hash = self.key_hash(secret.expose());
        let sealed = self
            .master
            .seal(secret.expose().as_bytes(), &aad(tenant, &record_id))?;
        let platform = Partition::platform();
        // The lookup first: without its tenant record it resolves to nothing.
        self.lookup
            .insert(
                &platform,
                SecretLookup {
                    id: key_hash.clone(),
                    tenant_id: tenant.clone(),
                    record_id: record_id.clone(),
                    created_at: now,
                    updated_at: now,
                    version: 0,
                },
            )
            .await?;
        let record = SecretRecord {
            id: record_id,
            epoch,
            active: true,
            sealed: Some(sealed),
            key_hash: key_hash.clone(),
            created_at: now,
            deactivated_at: None,
            updated_at: now,
            version: 0,
        };
        match self
            .records
            .insert(&Partition::tenant(tenant), record)
            .await
        {
            Ok(record) => Ok((record, secret)),
            Err(e) => {
                if let Err(cleanup) =
                    ignore_not_found(self.lookup.delete_hard(&platform, &key_hash).await)
                {
                    tracing::warn!(tenant = %tenant, error = %cleanup, "could not remove an uncommitted registration secret lookup");
                }
                Err(e)
            }
        }
    }

    /// Deactivates every active record of `tenant` older than `epoch`: drops the sealed value
    /// and the platform lookup. Newer records (a concurrent rotation that won later) stay.
    async fn retire_older(&self, tenant: &TenantId, epoch: i64) -> Result<()> {
        let p = Partition::tenant(tenant);
        for old in self.active_records(tenant).await? {
            if old.epoch >= epoch {
                continue;
            }
            self.records
                .modify(&p, &old.id, |r, now| {
                    let changed = r.active || r.sealed.is_some();
                    r.active = false;
                    r.sealed = None;
                    r.deactivated_at.get_or_insert(now);
                    Ok(changed)
                })
                .await?;
            ignore_not_found(
                self.lookup
                    .delete_hard(&Partition::platform(), &old.key_hash)
                    .await,
            )?;
        }
        Ok(())
    }

    /// The tenant's active secret, creating the first one if it has none. Concurrent calls
    /// agree on one secret. `NotFound` for an unknown tenant.
    pub async fn ensure(&self, tenant: &TenantId) -> Result<Secret> {
        self.require_tenant(tenant).await?;
        for _ in 0..EPOCH_ATTEMPTS {
            if let Some(record) = self.current(tenant).await? {
                return self.open(tenant, &record);
            }
            match self.create(tenant, 1).await {
                Ok((_, secret)) => {
                    tracing::info!(tenant = %tenant, "agent registration secret created");
                    return Ok(secret);
                }
                // A concurrent first use, or a tenant whose history has no active record.
                Err(Error::AlreadyExists { .. }) => {
                    if self.current(tenant).await?.is_none() {
                        return self.rotate(tenant).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            "the registration secret is being changed by too many writers",
        ))
    }

    /// The tenant's active secret; `NotFound` if it has none yet (see
    /// [`RegistrationSecrets::ensure`]).
    pub async fn active(&self, tenant: &TenantId) -> Result<Secret> {
        match self.current(tenant).await? {
            Some(record) => self.open(tenant, &record),
            None => Err(Error::not_found("registration secret")),
        }
    }

    /// Replaces the tenant's secret with a new one; the old one stops resolving at once.
    /// Concurrent rotations each take their own epoch (the last one wins). `NotFound` for
    /// an unknown tenant.
    pub async fn rotate(&self, tenant: &TenantId) -> Result<Secret> {
        self.require_tenant(tenant).await?;
        for _ in 0..EPOCH_ATTEMPTS {
            let next = match self.current(tenant).await? {
                Some(r) => r.epoch + 1,
                None => self.max_epoch(tenant).await? + 1,
            };
            match self.create(tenant, next).await {
                Ok((record, secret)) => {
                    self.retire_older(tenant, record.epoch).await?;
                    tracing::info!(tenant = %tenant, epoch = next, "agent registration secret rotated");
                    return Ok(secret);
                }
                Err(Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(
            "the registration secret is being changed by too many writers",
        ))
    }

    /// The highest epoch ever used by `tenant` (0 if none), active or not.
    async fn max_epoch(&self, tenant: &TenantId) -> Result<i64> {
        let query = openframe_data::store::FindQuery {
            filter: Filter::All,
            sort: vec![(
                openframe_data::store::SortKey::Field("epoch"),
                openframe_core::SortDirection::Desc,
            )],
            limit: 1,
        };
        let docs = self
            .records
            .store()
            .find(&RECORD_SCHEMA, &Partition::tenant(tenant), &query)
            .await?;
        match docs.first() {
            Some(doc) => Ok(openframe_data::entity::from_doc::<SecretRecord>(doc)?.epoch),
            None => Ok(0),
        }
    }

    /// The tenant whose active registration secret is `presented`.
    ///
    /// Blank is [`EnrollmentError::InitialKeyEmpty`]; a key that is unknown, rotated out, or
    /// belongs to a tenant that is not active is [`EnrollmentError::InitialKeyInvalid`].
    /// The lookup is by keyed hash (no plaintext comparison); throttling is the caller's job.
    pub async fn resolve(&self, presented: &str) -> EnrollmentResult<TenantId> {
        if presented.trim().is_empty() {
            return Err(EnrollmentError::InitialKeyEmpty);
        }
        if presented.len() > MAX_PRESENTED_LEN {
            return Err(EnrollmentError::InitialKeyInvalid);
        }
        let hash = self.key_hash(presented);
        let Some(lookup) = self.lookup.get(&Partition::platform(), &hash).await? else {
            return Err(EnrollmentError::InitialKeyInvalid);
        };
        let tenant = lookup.tenant_id;
        match self.current(&tenant).await? {
            Some(r) if r.id == lookup.record_id && r.key_hash == hash => {}
            _ => return Err(EnrollmentError::InitialKeyInvalid),
        }
        match TenantRepository::get(&self.tenants, &tenant).await? {
            Some(t) if t.status == TenantStatus::Active => Ok(tenant),
            _ => Err(EnrollmentError::InitialKeyInvalid),
        }
    }
}
