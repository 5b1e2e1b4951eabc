//! Login sessions of the authorization server: an opaque cookie per tenant, stored hashed.

use std::sync::Arc;
use std::time::Duration;

use openframe_core::{Clock, Result, TenantId, Timestamp, UserId};
use openframe_data::DocumentRepository;
use openframe_data::entity::Entity;
use openframe_data::store::{
    DocumentStore, FieldDef, FieldKind, IndexDef, Partition, Schema, Value,
};
use serde::{Deserialize, Serialize};

use super::grants::{new_opaque_token, token_hash};

/// A signed-in user at one tenant's issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginSession {
    /// SHA-256 of the cookie value.
    pub id: String,
    /// The public session id (`sid` claim).
    pub sid: String,
    /// The user.
    pub user_id: UserId,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// How (`pwd`, or the SSO provider id).
    pub method: String,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Version.
    pub version: u64,
}

static SCHEMA: Schema = Schema {
    collection: "oauth_sessions",
    entity: "session",
    fields: &[
        FieldDef::required("user_id", FieldKind::Str),
        FieldDef::required("expires_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["user_id"],
        },
        IndexDef {
            fields: &["expires_at"],
        },
    ],
    unique: &[],
};

impl Entity for LoginSession {
    const SCHEMA: &'static Schema = &SCHEMA;
    openframe_data::entity_basics!("session", serde, unvalidated);
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::str(self.user_id.as_str()),
            Value::time(self.expires_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
}

openframe_data::timestamped!(LoginSession);

/// Creates, finds and ends login sessions.
#[derive(Clone)]
pub struct SessionStore {
    repo: DocumentRepository<LoginSession>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Sessions over `store`, each valid for `ttl`.
    pub fn new(store: Arc<dyn DocumentStore>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            repo: DocumentRepository::new(store, clock.clone()),
            clock,
            ttl,
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session; returns the cookie value and the session.
    pub async fn create(
        &self,
        tenant: &TenantId,
        user_id: UserId,
        method: &str,
    ) -> Result<(String, LoginSession)> {
        let now = self.clock.now();
        let cookie = new_opaque_token();
        let session = LoginSession {
            id: token_hash(&cookie),
            sid: uuid::Uuid::new_v4().simple().to_string(),
            user_id,
            auth_time: now,
            method: method.to_owned(),
            expires_at: openframe_data::lock::add(now, self.ttl),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let session = self
            .repo
            .insert(&Partition::tenant(tenant), session)
            .await?;
        Ok((cookie, session))
    }

    /// The live session behind a cookie value.
    pub async fn get(&self, tenant: &TenantId, cookie: &str) -> Result<Option<LoginSession>> {
        if cookie.is_empty() || cookie.len() > 256 {
            return Ok(None);
        }
        let now = self.clock.now();
        Ok(self
            .repo
            .get(&Partition::tenant(tenant), &token_hash(cookie))
            .await?
            .filter(|s| s.expires_at > now))
    }

    /// Ends a session (idempotent).
    pub async fn end(&self, tenant: &TenantId, cookie: &str) -> Result<()> {
        if cookie.is_empty() || cookie.len() > 256 {
            return Ok(());
        }
        match self
            .repo
            .delete_hard(&Partition::tenant(tenant), &token_hash(cookie))
            .await
        {
            Ok(()) | Err(openframe_core::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
