//! Revoked access tokens: persisted in a small collection with an expiry (`revoked_tokens`,
//! platform partition) and mirrored in memory, so checking an unrevoked token is a map lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use openframe_core::{Clock, Error, Result, TenantId, Timestamp};
use openframe_data::entity::{Entity, serde_body, serde_from_body};
use openframe_data::store::{
    CmpOp, DocumentStore, FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, Value,
};
use openframe_data::{DocumentRepository, Timestamped};
use serde::{Deserialize, Serialize};

use crate::keys::sub;

/// How far back a refresh re-reads, to tolerate clock skew between replicas and writes that
/// commit after a refresh ran.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Page size of a refresh.
const PAGE: usize = 1000;
/// Expired records deleted per refresh.
const PURGE_BATCH: usize = 100;

static SCHEMA: Schema = Schema {
    collection: "revoked_tokens",
    entity: "revoked token",
    fields: &[
        FieldDef::required("revoked_at", FieldKind::Int),
        FieldDef::required("expires_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["revoked_at"],
        },
        IndexDef {
            fields: &["expires_at"],
        },
    ],
    unique: &[],
};

/// One revocation: a `jti`, or every token of a tenant issued up to `revoked_before`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevocationRecord {
    id: String,
    version: u64,
    tenant: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// Tokens with `iat <= revoked_before` (seconds) are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_before: Option<i64>,
    revoked_at: Timestamp,
    /// When every token it concerns has expired (then the record can go).
    expires_at: Timestamp,
    updated_at: Timestamp,
}

impl Entity for RevocationRecord {
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
        if self
            .jti
            .as_ref()
            .is_some_and(|j| j.is_empty() || j.len() > 128)
        {
            return Err(Error::invalid("jti", "must be 1-128 bytes"));
        }
        if self.jti.is_some() == self.revoked_before.is_some() {
            return Err(Error::invalid("revocation", "revokes a jti or a tenant"));
        }
        Ok(())
    }
    fn index_values(&self) -> Vec<Value> {
        vec![Value::time(self.revoked_at), Value::time(self.expires_at)]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
    fn to_body(&self) -> Result<String> {
        serde_body(self)
    }
    fn from_body(body: &str) -> Result<Self> {
        serde_from_body("revoked token", body)
    }
}

impl Timestamped for RevocationRecord {
    fn set_updated_at(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

/// The revocation list of one token service.
pub(crate) struct Revocations {
    repo: OnceLock<DocumentRepository<RevocationRecord>>,
    /// jti → expiry (seconds).
    jtis: RwLock<HashMap<String, i64>>,
    /// tenant → (revoked_before, expiry) in seconds.
    tenants: RwLock<HashMap<TenantId, (i64, i64)>>,
    /// Whether anything is revoked (the common "no" skips both maps).
    any: AtomicBool,
    loaded: AtomicBool,
    cursor: Mutex<Option<Timestamp>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl Revocations {
    pub(crate) fn new() -> Self {
        Self {
            repo: OnceLock::new(),
            jtis: RwLock::new(HashMap::new()),
            tenants: RwLock::new(HashMap::new()),
            any: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
            cursor: Mutex::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Persists through `store` from now on; `false` if a store was already set.
    pub(crate) fn set_store(&self, store: Arc<dyn DocumentStore>, clock: Arc<dyn Clock>) -> bool {
        self.repo.set(DocumentRepository::new(store, clock)).is_ok()
    }

    pub(crate) fn is_persistent(&self) -> bool {
        self.repo.get().is_some()
    }

    /// Whether the mirror has never been filled from the store.
    pub(crate) fn needs_initial_load(&self) -> bool {
        self.is_persistent() && !self.loaded.load(Ordering::Acquire)
    }

    pub(crate) fn is_revoked(&self, tenant: &TenantId, jti: &str, iat: i64) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        if self
            .jtis
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti)
        {
            return true;
        }
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .is_some_and(|&(before, _)| iat <= before)
    }

    /// Mirrors a record; whether it added anything.
    fn apply(&self, record: &RevocationRecord) -> bool {
        let expires = record.expires_at.timestamp();
        let added = if let Some(jti) = &record.jti {
            self.jtis
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(jti.clone(), expires)
                .is_none()
        } else if let Some(before) = record.revoked_before {
            let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
            match tenants.get(&record.tenant) {
                Some(&(known, _)) if known >= before => false,
                _ => {
                    tenants.insert(record.tenant.clone(), (before, expires));
                    true
                }
            }
        } else {
            false
        };
        self.any.store(true, Ordering::Release);
        added
    }

    async fn persist(&self, record: RevocationRecord) -> Result<()> {
        if let Some(repo) = self.repo.get() {
            match repo.insert(&Partition::platform(), record).await {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Revokes `jti` of `tenant` until `expires_at`.
    pub(crate) async fn revoke_jti(
        &self,
        tenant: &TenantId,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let record = RevocationRecord {
            id: format!("j:{tenant}:{jti}"),
            version: 0,
            tenant: tenant.clone(),
            jti: Some(jti.to_owned()),
            revoked_before: None,
            revoked_at: now,
            expires_at,
            updated_at: now,
        };
        record.validate()?;
        self.persist(record.clone()).await?;
        self.apply(&record);
        Ok(())
    }

    /// Revokes every token of `tenant` issued at or before `revoked_before` (seconds).
    pub(crate) async fn revoke_tenant(
        &self,
        tenant: &TenantId,
        revoked_before: i64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let record = RevocationRecord {
            id: format!(
                "t:{tenant}:{revoked_before}:{}",
                uuid::Uuid::new_v4().simple()
            ),
            version: 0,
            tenant: tenant.clone(),
            jti: None,
            revoked_before: Some(revoked_before),
            revoked_at: now,
            expires_at,
            updated_at: now,
        };
        self.persist(record.clone()).await?;
        self.apply(&record);
        Ok(())
    }

    /// Reads revocations recorded since the last refresh (by any replica), drops expired
    /// ones, and deletes a batch of expired records. Returns the tenants whose tokens were
    /// newly revoked wholesale.
    pub(crate) async fn refresh(&self, now: Timestamp) -> Result<Vec<TenantId>> {
        let mut newly = Vec::new();
        if let Some(repo) = self.repo.get() {
            let _guard = self.refresh_lock.lock().await;
            let since = self
                .cursor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map_or(Timestamp::MIN_UTC, |c| sub(c, REFRESH_MARGIN));
            let base = Filter::and(vec![
                Filter::Cmp("revoked_at", CmpOp::Gte, Value::time(since)),
                Filter::Cmp("expires_at", CmpOp::Gt, Value::time(now)),
            ]);
            let mut after: Option<String> = None;
            loop {
                let filter = match &after {
                    Some(id) => {
                        Filter::and(vec![base.clone(), Filter::IdCmp(CmpOp::Gt, id.clone())])
                    }
                    None => base.clone(),
                };
                let page = repo.find_all(&Partition::platform(), filter, PAGE).await?;
                for record in &page {
                    if self.apply(record) && record.revoked_before.is_some() {
                        newly.push(record.tenant.clone());
                    }
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => after = Some(last.id.clone()),
                    _ => break,
                }
            }
            *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
            self.loaded.store(true, Ordering::Release);
            let expired = repo
                .find_all(
                    &Partition::platform(),
                    Filter::Cmp("expires_at", CmpOp::Lte, Value::time(now)),
                    PURGE_BATCH,
                )
                .await?;
            for record in expired {
                match repo.delete_hard(&Partition::platform(), &record.id).await {
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.prune(now.timestamp());
        Ok(newly)
    }

    /// Forgets mirrored revocations whose tokens have all expired.
    fn prune(&self, now: i64) {
        let mut jtis = self.jtis.write().unwrap_or_else(|e| e.into_inner());
        jtis.retain(|_, exp| *exp > now);
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        tenants.retain(|_, (_, exp)| *exp > now);
        self.any
            .store(!jtis.is_empty() || !tenants.is_empty(), Ordering::Release);
    }
}
