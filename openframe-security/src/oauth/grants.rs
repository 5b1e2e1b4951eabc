//! Authorization codes and refresh tokens: opaque, random, stored only as SHA-256 hashes.
//!
//! Codes are single-use and live five minutes. Refresh tokens rotate on every use; each
//! belongs to a family (one login or one client-credentials grant), and presenting a rotated
//! token again is treated as theft: the whole family is revoked.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openframe_core::{Clock, Error, MachineId, Result, TenantId, Timestamp, UserId};
use openframe_data::DocumentRepository;
use openframe_data::entity::Entity;
use openframe_data::store::{
    DocumentStore, FieldDef, FieldKind, Filter, IndexDef, Partition, Schema, Value,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A new random opaque token: 256 bits, base64url.
pub fn new_opaque_token() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The storage key of an opaque token: hex SHA-256.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who a grant was issued to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantSubject {
    /// The `sub` claim (user email, or the client id for machines).
    pub subject: String,
    /// The user, for people.
    pub user_id: Option<UserId>,
    /// The machine, for agents.
    pub machine_id: Option<MachineId>,
    /// Roles for the token.
    pub roles: Vec<String>,
}

/// A pending authorization code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationCode {
    /// SHA-256 of the code.
    pub id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The exact redirect URI of the request.
    pub redirect_uri: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The user.
    pub subject: GrantSubject,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// The login session id (`sid`).
    pub sid: String,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Set when redeemed; a second redemption revokes `family_id`.
    pub redeemed: bool,
    /// The refresh family created when redeemed.
    pub family_id: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Version.
    pub version: u64,
}

/// Where a refresh token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefreshStatus {
    /// Usable once.
    Active,
    /// Already exchanged for a successor; using it again revokes the family.
    Rotated,
    /// Revoked.
    Revoked,
}

/// A refresh token record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub id: String,
    /// The family (one login or credentials grant).
    pub family_id: String,
    /// The client.
    pub client_id: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The subject.
    pub subject: GrantSubject,
    /// When the user authenticated (people).
    pub auth_time: Option<Timestamp>,
    /// Login session (people).
    pub sid: Option<String>,
    /// How many rotations led here (0 for the first token of the family).
    pub chain: u32,
    /// Status.
    pub status: RefreshStatus,
    /// Expiry.
    pub expires_at: Timestamp,
    /// The `jti` and expiry of the access token issued alongside, revoked with the family.
    pub access_jti: Option<(String, Timestamp)>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Version.
    pub version: u64,
}

static CODES: Schema = Schema {
    collection: "oauth_codes",
    entity: "authorization code",
    fields: &[FieldDef::required("expires_at", FieldKind::Int)],
    indexes: &[IndexDef {
        fields: &["expires_at"],
    }],
    unique: &[],
};

static REFRESH: Schema = Schema {
    collection: "oauth_refresh_tokens",
    entity: "refresh token",
    fields: &[
        FieldDef::required("family_id", FieldKind::Str),
        FieldDef::required("client_id", FieldKind::Str),
        FieldDef::required("expires_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["family_id"],
        },
        IndexDef {
            fields: &["client_id"],
        },
        IndexDef {
            fields: &["expires_at"],
        },
    ],
    unique: &[],
};

macro_rules! grant_entity {
    ($ty:ty, $schema:ident, $name:literal, |$s:ident| $values:expr) => {
        impl Entity for $ty {
            const SCHEMA: &'static Schema = &$schema;
            openframe_data::entity_basics!($name, serde, unvalidated);
            fn index_values(&$s) -> Vec<Value> {
                $values
            }
            fn search_texts(&self) -> Vec<&str> {
                Vec::new()
            }
        }
        openframe_data::timestamped!($ty);
    };
}

grant_entity!(AuthorizationCode, CODES, "authorization code", |self| vec![
    Value::time(self.expires_at)
]);
grant_entity!(RefreshToken, REFRESH, "refresh token", |self| vec![
    Value::str(&self.family_id),
    Value::str(&self.client_id),
    Value::time(self.expires_at),
]);

/// Access tokens (`jti`, expiry) issued within a revoked family, to revoke with it.
pub type RevokedAccess = Vec<(String, Timestamp)>;

/// Why a refresh token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRefusal {
    /// Unknown, expired or revoked.
    Invalid,
    /// A rotated token was presented again: the family is now revoked, and these access tokens
    /// with it.
    Reused(RevokedAccess),
    /// The family reached its rotation limit.
    ChainExhausted,
    /// Issued to another client.
    WrongClient,
}

/// The outcome of redeeming an authorization code.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// First redemption of a live code.
    Redeemed(Box<AuthorizationCode>),
    /// Unknown or expired.
    Invalid,
    /// Already redeemed: the tokens issued from it are revoked (these access tokens too).
    Reused(RevokedAccess),
}

/// Stores codes and refresh tokens.
#[derive(Clone)]
pub struct GrantStore {
    codes: DocumentRepository<AuthorizationCode>,
    refresh: DocumentRepository<RefreshToken>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for GrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantStore").finish_non_exhaustive()
    }
}

impl GrantStore {
    /// A grant store over `store`.
    pub fn new(store: Arc<dyn DocumentStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            codes: DocumentRepository::new(store.clone(), clock.clone()),
            refresh: DocumentRepository::new(store, clock.clone()),
            clock,
        }
    }

    /// Stores a new code and returns it (the only time it exists in clear).
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_code(
        &self,
        tenant: &TenantId,
        client_id: &str,
        redirect_uri: &str,
        scopes: Vec<String>,
        subject: GrantSubject,
        nonce: Option<String>,
        code_challenge: String,
        auth_time: Timestamp,
        sid: String,
        ttl: std::time::Duration,
    ) -> Result<String> {
        let now = self.clock.now();
        let code = new_opaque_token();
        let record = AuthorizationCode {
            id: token_hash(&code),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            subject,
            nonce,
            code_challenge,
            auth_time,
            sid,
            expires_at: openframe_data::lock::add(now, ttl),
            redeemed: false,
            family_id: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.codes
            .insert(&Partition::tenant(tenant), record)
            .await?;
        Ok(code)
    }

    /// Redeems a code once, atomically. A second redemption revokes the family issued from
    /// the first one.
    pub async fn redeem_code(
        &self,
        tenant: &TenantId,
        code: &str,
        family_id: &str,
    ) -> Result<Redemption> {
        if code.is_empty() || code.len() > 512 {
            return Ok(Redemption::Invalid);
        }
        let id = token_hash(code);
        let p = Partition::tenant(tenant);
        let now = self.clock.now();
        let outcome = match self
            .codes
            .modify(&p, &id, |c, _| {
                if c.redeemed {
                    return Ok(false);
                }
                c.redeemed = true;
                c.family_id = Some(family_id.to_owned());
                Ok(true)
            })
            .await
        {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(Redemption::Invalid),
            Err(e) => return Err(e),
        };
        if !outcome.applied {
            let revoked = match &outcome.before.family_id {
                Some(family) => self.revoke_family(tenant, family).await?,
                None => Vec::new(),
            };
            return Ok(Redemption::Reused(revoked));
        }
        if outcome.after.expires_at <= now {
            return Ok(Redemption::Invalid);
        }
        Ok(Redemption::Redeemed(Box::new(outcome.after)))
    }

    /// Stores a new refresh token of `family_id` and returns it.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_refresh(
        &self,
        tenant: &TenantId,
        family_id: &str,
        client_id: &str,
        scopes: Vec<String>,
        subject: GrantSubject,
        auth_time: Option<Timestamp>,
        sid: Option<String>,
        chain: u32,
        ttl: std::time::Duration,
        access_jti: Option<(String, Timestamp)>,
    ) -> Result<String> {
        let now = self.clock.now();
        let token = new_opaque_token();
        let record = RefreshToken {
            id: token_hash(&token),
            family_id: family_id.to_owned(),
            client_id: client_id.to_owned(),
            scopes,
            subject,
            auth_time,
            sid,
            chain,
            status: RefreshStatus::Active,
            expires_at: openframe_data::lock::add(now, ttl),
            access_jti,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.refresh
            .insert(&Partition::tenant(tenant), record)
            .await?;
        Ok(token)
    }

    /// Marks a refresh token rotated (exactly once, atomically) and returns its record, or why
    /// it was refused. Reuse of a rotated token revokes its whole family.
    pub async fn rotate_refresh(
        &self,
        tenant: &TenantId,
        token: &str,
        client_id: &str,
        max_chain: Option<u32>,
    ) -> Result<std::result::Result<RefreshToken, RefreshRefusal>> {
        if token.is_empty() || token.len() > 512 {
            return Ok(Err(RefreshRefusal::Invalid));
        }
        let p = Partition::tenant(tenant);
        let now = self.clock.now();
        let id = token_hash(token);
        let outcome = match self
            .refresh
            .modify(&p, &id, |r, _| {
                if r.status != RefreshStatus::Active
                    || r.client_id != client_id
                    || r.expires_at <= now
                {
                    return Ok(false);
                }
                if max_chain.is_some_and(|max| r.chain >= max) {
                    return Ok(false);
                }
                r.status = RefreshStatus::Rotated;
                Ok(true)
            })
            .await
        {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(Err(RefreshRefusal::Invalid)),
            Err(e) => return Err(e),
        };
        if outcome.applied {
            return Ok(Ok(outcome.after));
        }
        let r = outcome.before;
        if r.client_id != client_id {
            return Ok(Err(RefreshRefusal::WrongClient));
        }
        if r.status == RefreshStatus::Rotated {
            let revoked = self.revoke_family(tenant, &r.family_id).await?;
            return Ok(Err(RefreshRefusal::Reused(revoked)));
        }
        if r.status == RefreshStatus::Active
            && max_chain.is_some_and(|max| r.chain >= max)
            && r.expires_at > now
        {
            return Ok(Err(RefreshRefusal::ChainExhausted));
        }
        Ok(Err(RefreshRefusal::Invalid))
    }

    /// A refresh token's record if it is active and unexpired (introspection).
    pub async fn find_active_refresh(
        &self,
        tenant: &TenantId,
        token: &str,
    ) -> Result<Option<RefreshToken>> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        let now = self.clock.now();
        Ok(self
            .refresh
            .get(&Partition::tenant(tenant), &token_hash(token))
            .await?
            .filter(|r| r.status == RefreshStatus::Active && r.expires_at > now))
    }

    /// Revokes every token of a family; returns the access-token jtis to revoke with it.
    pub async fn revoke_family(
        &self,
        tenant: &TenantId,
        family_id: &str,
    ) -> Result<Vec<(String, Timestamp)>> {
        let p = Partition::tenant(tenant);
        let members = self
            .refresh
            .find_all(&p, Filter::Eq("family_id", Value::str(family_id)), 10_000)
            .await?;
        let mut jtis = Vec::new();
        for member in members {
            jtis.extend(member.access_jti.clone());
            if member.status != RefreshStatus::Revoked {
                self.refresh
                    .modify(&p, &member.id, |r, _| {
                        let changed = r.status != RefreshStatus::Revoked;
                        r.status = RefreshStatus::Revoked;
                        Ok(changed)
                    })
                    .await?;
            }
        }
        Ok(jtis)
    }

    /// Revokes the family of a refresh token presented to the revocation endpoint (only if it
    /// belongs to `client_id`); returns the access-token jtis to revoke.
    pub async fn revoke_refresh(
        &self,
        tenant: &TenantId,
        token: &str,
        client_id: &str,
    ) -> Result<Vec<(String, Timestamp)>> {
        if token.is_empty() || token.len() > 512 {
            return Ok(Vec::new());
        }
        match self
            .refresh
            .get(&Partition::tenant(tenant), &token_hash(token))
            .await?
        {
            Some(r) if r.client_id == client_id => self.revoke_family(tenant, &r.family_id).await,
            _ => Ok(Vec::new()),
        }
    }

    /// Revokes every refresh family of a client (e.g. an uninstalled agent).
    pub async fn revoke_client(
        &self,
        tenant: &TenantId,
        client_id: &str,
    ) -> Result<Vec<(String, Timestamp)>> {
        let p = Partition::tenant(tenant);
        let members = self
            .refresh
            .find_all(&p, Filter::Eq("client_id", Value::str(client_id)), 10_000)
            .await?;
        let mut families: Vec<String> = members.into_iter().map(|m| m.family_id).collect();
        families.sort();
        families.dedup();
        let mut jtis = Vec::new();
        for family in families {
            jtis.extend(self.revoke_family(tenant, &family).await?);
        }
        Ok(jtis)
    }
}
