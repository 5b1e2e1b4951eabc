//! Token claims, the verified token, and the RFC 7662 introspection answer.

use openframe_core::{MachineId, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

use crate::crypto::SigningAlgorithm;

/// The claims of an access token (RFC 9068 names plus the OpenFrame ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the tenant's issuer URL.
    pub iss: String,
    /// Subject: the user's email, or the machine's client id.
    pub sub: String,
    /// Audiences (always serialized as an array; a single string is accepted).
    #[serde(with = "aud_list")]
    pub aud: Vec<String>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds).
    pub nbf: i64,
    /// Expires (seconds).
    pub exp: i64,
    /// Unique token id (revocation key).
    pub jti: String,
    /// Granted scopes, space-separated (RFC 9068; a JSON list is accepted when reading).
    #[serde(deserialize_with = "scope_string")]
    pub scope: String,
    /// The tenant, equal to the issuer's tenant.
    pub tenant_id: TenantId,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// The user, for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The machine, for agent tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<MachineId>,
    /// Effective roles (e.g. `["OWNER", "ADMIN"]`, `["AGENT"]`).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The claims of an OIDC ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience: the client id.
    pub aud: String,
    /// Authorized party: the client id.
    pub azp: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires (seconds).
    pub exp: i64,
    /// When the user authenticated (seconds).
    pub auth_time: i64,
    /// Session id.
    pub sid: String,
    /// Unique token id.
    pub jti: String,
    /// The `nonce` of the authorization request, when one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the email was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An access token that passed every check: issuer, tenant, key, algorithm, signature,
/// time, tenant claim and revocation. Shared (`Arc`) between the cache and callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The issuer's tenant (equal to `claims.tenant_id`).
    pub tenant: TenantId,
    /// The key that signed it.
    pub kid: String,
    /// The algorithm it was signed with.
    pub algorithm: SigningAlgorithm,
    /// The claims.
    pub claims: AccessClaims,
}

impl VerifiedToken {
    /// When it was issued.
    pub fn issued_at(&self) -> Timestamp {
        seconds(self.claims.iat)
    }

    /// When it expires.
    pub fn expires_at(&self) -> Timestamp {
        seconds(self.claims.exp)
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scope.split(' ').any(|s| s == scope)
    }

    /// Whether the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.claims.roles.iter().any(|r| r == role)
    }

    /// Whether `audience` is one of the token's audiences.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.claims.aud.iter().any(|a| a == audience)
    }
}

/// An RFC 7662 introspection response (plus `tenant_id` and `roles`). An inactive token has
/// only `active: false`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token is currently valid.
    pub active: bool,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Audiences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Vec<String>>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl Introspection {
    /// `{"active": false}`.
    pub fn inactive() -> Self {
        Self::default()
    }

    /// The answer for a valid token.
    pub fn active(token: &VerifiedToken) -> Self {
        let c = &token.claims;
        Self {
            active: true,
            scope: Some(c.scope.clone()),
            client_id: Some(c.client_id.clone()),
            sub: Some(c.sub.clone()),
            exp: Some(c.exp),
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            aud: Some(c.aud.clone()),
            iss: Some(c.iss.clone()),
            jti: Some(c.jti.clone()),
            token_type: Some("Bearer".to_owned()),
            tenant_id: Some(token.tenant.to_string()),
            roles: Some(c.roles.clone()),
        }
    }
}

/// Seconds since the epoch as a timestamp (saturating).
pub(crate) fn seconds(s: i64) -> Timestamp {
    Timestamp::from_timestamp(s, 0).unwrap_or(if s < 0 {
        Timestamp::MIN_UTC
    } else {
        Timestamp::MAX_UTC
    })
}

/// Reads a string or a list of strings, without buffering; `join` joins a list with spaces
/// into one element.
fn string_or_list<'de, D: serde::Deserializer<'de>>(
    d: D,
    join: bool,
) -> Result<Vec<String>, D::Error> {
    struct Visitor {
        join: bool,
    }
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out: Vec<String> = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(if self.join { vec![out.join(" ")] } else { out })
        }
    }
    d.deserialize_any(Visitor { join })
}

/// `aud`: serialized as a list, read from a string or a list.
mod aud_list {
    use serde::{Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        super::string_or_list(d, false)
    }
}

/// `scope`: a space-separated string, or a list read as one.
fn scope_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(string_or_list(d, true)?.pop().unwrap_or_default())
}
