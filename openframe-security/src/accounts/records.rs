//! The stored records of the accounts module: credentials, invitations and reset tokens.
//!
//! Each is an [`Entity`] in its own collection, in the tenant's partition.

use std::fmt;
use std::str::FromStr;

use openframe_core::{
    Error, Result, SortDirection, SortField, SortSpec, Timestamp, UserId, UserRole,
};
use openframe_data::Timestamped;
use openframe_data::entity::{Entity, serde_body, serde_from_body};
use openframe_data::store::{FieldDef, FieldKind, IndexDef, Schema, SortKey, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::password::TokenHash;

/// The parts of an [`Entity`] impl every record here shares: the version accessors and,
/// with `serde`, the default JSON body.
macro_rules! record_basics {
    () => {
        fn version(&self) -> u64 {
            self.version
        }
        fn set_version(&mut self, version: u64) {
            self.version = version;
        }
    };
    (serde $name:literal) => {
        record_basics!();
        fn to_body(&self) -> Result<String> {
            serde_body(self)
        }
        fn from_body(body: &str) -> Result<Self> {
            serde_from_body($name, body)
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// A user's password hash, keyed by the user id; the only place a hash is stored.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Credential {
    pub(crate) user_id: UserId,
    /// argon2id PHC string.
    pub(crate) password_hash: String,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    #[serde(skip)]
    pub(crate) version: u64,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("user_id", &self.user_id)
            .field("password_hash", &"***")
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

pub(crate) static CREDENTIALS: Schema = Schema {
    collection: "user_credentials",
    entity: "credential",
    fields: &[FieldDef::required("updated_at", FieldKind::Int)],
    indexes: &[],
    unique: &[],
};

impl Entity for Credential {
    const SCHEMA: &'static Schema = &CREDENTIALS;
    fn doc_id(&self) -> &str {
        self.user_id.as_str()
    }
    record_basics!(serde "credential");
    fn validate(&self) -> Result<()> {
        if !self.password_hash.starts_with("$argon2") || self.password_hash.len() > 512 {
            return Err(Error::Internal(
                "refusing to store a non-argon2 credential".into(),
            ));
        }
        Ok(())
    }
    fn index_values(&self) -> Vec<Value> {
        vec![Value::time(self.updated_at)]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl Timestamped for Credential {
    fn set_updated_at(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

// ---------------------------------------------------------------------------------------------
// Password-reset tokens

/// One outstanding password-reset token (stored as its SHA-256 only). Consumed by deleting it,
/// so exactly one confirmation can win.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResetToken {
    pub(crate) id: String,
    pub(crate) user_id: UserId,
    pub(crate) token_hash: TokenHash,
    pub(crate) expires_at: Timestamp,
    pub(crate) created_at: Timestamp,
    #[serde(skip)]
    pub(crate) version: u64,
}

pub(crate) static RESET_TOKENS: Schema = Schema {
    collection: "password_reset_tokens",
    entity: "password reset token",
    fields: &[
        FieldDef::required("user_id", FieldKind::Str),
        FieldDef::required("token_hash", FieldKind::Str),
        FieldDef::required("expires_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["token_hash"],
        },
        IndexDef {
            fields: &["user_id"],
        },
    ],
    unique: &[&["token_hash"]],
};

impl Entity for ResetToken {
    const SCHEMA: &'static Schema = &RESET_TOKENS;
    fn doc_id(&self) -> &str {
        &self.id
    }
    record_basics!(serde "password reset token");
    fn validate(&self) -> Result<()> {
        openframe_core::id::validate_id("id", &self.id)
    }
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::str(self.user_id.as_str()),
            Value::str(self.token_hash.to_hex()),
            Value::time(self.expires_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl Timestamped for ResetToken {
    fn set_updated_at(&mut self, _now: Timestamp) {}
}

// ---------------------------------------------------------------------------------------------
// Invitations

/// The id of an [`Invitation`]: validated like every OpenFrame id (1–64 of `[A-Za-z0-9_-]`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvitationId(String);

impl InvitationId {
    /// Parses and validates an id.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        openframe_core::id::validate_id("invitationId", &value)?;
        Ok(Self(value))
    }

    /// A new random, time-ordered id (UUIDv7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvitationId({})", self.0)
    }
}

impl fmt::Display for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for InvitationId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for InvitationId {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InvitationId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Lifecycle of an invitation. Expiry is not a status: a PENDING invitation past its
/// `expires_at` can no longer be accepted (see [`Invitation::is_acceptable_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InvitationStatus {
    /// `PENDING`: sent, not yet accepted or revoked.
    #[serde(rename = "PENDING")]
    Pending,
    /// `ACCEPTED`: used once; the token no longer works.
    #[serde(rename = "ACCEPTED")]
    Accepted,
    /// `REVOKED`: withdrawn by an admin (or replaced by a newer invitation).
    #[serde(rename = "REVOKED")]
    Revoked,
}

impl InvitationStatus {
    /// Every value.
    pub const ALL: &'static [Self] = &[Self::Pending, Self::Accepted, Self::Revoked];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Accepted => "ACCEPTED",
            Self::Revoked => "REVOKED",
        }
    }
}

impl fmt::Display for InvitationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvitationStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::invalid("status", "must be one of: PENDING, ACCEPTED, REVOKED"))
    }
}

/// An invitation to join a tenant with some roles.
///
/// The token itself is never stored, only its SHA-256 (kept in a private field that is
/// redacted in `Debug` and left out of the serde form), so an `Invitation` is safe to return
/// to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    /// The invitation id.
    pub id: InvitationId,
    /// The invited email, trimmed and lowercased.
    pub email: String,
    /// Roles the new user gets.
    pub roles: Vec<UserRole>,
    /// SHA-256 of the token; serialized only into the stored body.
    #[serde(skip_serializing, rename = "tokenHash")]
    pub(crate) token_hash: TokenHash,
    /// Lifecycle status.
    pub status: InvitationStatus,
    /// Who sent it.
    pub invited_by: UserId,
    /// After this instant it cannot be accepted.
    pub expires_at: Timestamp,
    /// The user who accepted it (set with [`InvitationStatus::Accepted`]).
    #[serde(default)]
    pub accepted_by: Option<UserId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    #[serde(default)]
    pub version: u64,
}

impl Invitation {
    /// Whether the invitation can be accepted at `now`: PENDING and not expired.
    pub fn is_acceptable_at(&self, now: Timestamp) -> bool {
        self.status == InvitationStatus::Pending && now < self.expires_at
    }

    fn validate(&self) -> Result<()> {
        openframe_core::validate::name("email", &self.email)?;
        openframe_core::validate::list("roles", &self.roles)
    }
}

pub(crate) static INVITATIONS: Schema = Schema {
    collection: "invitations",
    entity: "invitation",
    fields: &[
        FieldDef::required("status", FieldKind::Str),
        FieldDef::required("email", FieldKind::Str),
        FieldDef::required("token_hash", FieldKind::Str),
        FieldDef::required("created_at", FieldKind::Int),
    ],
    indexes: &[
        IndexDef {
            fields: &["token_hash"],
        },
        IndexDef {
            fields: &["email", "status"],
        },
        IndexDef {
            fields: &["created_at"],
        },
        IndexDef {
            fields: &["status", "created_at"],
        },
    ],
    unique: &[&["token_hash"]],
};

impl Entity for Invitation {
    const SCHEMA: &'static Schema = &INVITATIONS;
    fn doc_id(&self) -> &str {
        self.id.as_str()
    }
    record_basics!();
    fn validate(&self) -> Result<()> {
        Invitation::validate(self)
    }
    fn index_values(&self) -> Vec<Value> {
        vec![
            Value::str(self.status.as_str()),
            Value::str(&self.email),
            Value::str(self.token_hash.to_hex()),
            Value::time(self.created_at),
        ]
    }
    fn search_texts(&self) -> Vec<&str> {
        vec![self.email.as_str()]
    }
    /// The serde form leaves the token hash out; the stored body adds it explicitly.
    fn to_body(&self) -> Result<String> {
        let mut value = serde_json::to_value(self)
            .map_err(|_| Error::Internal("cannot encode an invitation".into()))?;
        let hash = serde_json::to_value(&self.token_hash)
            .map_err(|_| Error::Internal("cannot encode an invitation".into()))?;
        match value.as_object_mut() {
            Some(obj) => {
                obj.insert("tokenHash".into(), hash);
            }
            None => return Err(Error::Internal("cannot encode an invitation".into())),
        }
        serde_body(&value)
    }
    fn from_body(body: &str) -> Result<Self> {
        serde_from_body("invitation", body)
    }
}

impl Timestamped for Invitation {
    fn set_updated_at(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

/// Invitations list newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvitationSort;

impl SortField for InvitationSort {
    const ALL: &'static [Self] = &[InvitationSort];
    fn name(self) -> &'static str {
        "createdAt"
    }
    fn default_sort() -> SortSpec<Self> {
        SortSpec::new(InvitationSort, SortDirection::Desc)
    }
}

impl openframe_data::StoreSortField for InvitationSort {
    fn key(self) -> SortKey {
        SortKey::Field("created_at")
    }
}

/// The schemas of the accounts collections, for backends that create collections up front.
pub fn schemas() -> Vec<&'static Schema> {
    vec![&CREDENTIALS, &INVITATIONS, &RESET_TOKENS]
}

#[cfg(test)]
mod tests {
    use super::*;
    use openframe_data::entity::{from_doc, to_doc};

    #[test]
    fn invitation_json_has_no_token_hash_but_the_stored_body_does() {
        let now = Timestamp::default();
        let hash = TokenHash::of("a-token").unwrap();
        let inv = Invitation {
            id: InvitationId::generate(),
            email: "a@b.io".into(),
            roles: vec![UserRole::Admin],
            token_hash: hash.clone(),
            status: InvitationStatus::Pending,
            invited_by: UserId::generate(),
            expires_at: now,
            accepted_by: None,
            created_at: now,
            updated_at: now,
            version: 3,
        };
        let hex = hash.to_hex();
        let public = serde_json::to_string(&inv).unwrap();
        assert!(
            !public.contains(&hex) && !public.contains("tokenHash"),
            "{public}"
        );
        assert!(!format!("{inv:?}").contains(&hex));
        let doc = to_doc(&inv).unwrap();
        assert!(doc.body.contains(&hex));
        let back: Invitation = from_doc(&doc).unwrap();
        assert_eq!(back.token_hash, hash);
        assert_eq!(back.version, 3);
        assert_eq!(
            "pending".parse::<InvitationStatus>().unwrap(),
            InvitationStatus::Pending
        );
        assert!(InvitationId::parse("../x").is_err());
    }

    #[test]
    fn credential_debug_is_redacted() {
        let now = Timestamp::default();
        let c = Credential {
            user_id: UserId::generate(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        assert!(!format!("{c:?}").contains("argon2"));
    }
}
