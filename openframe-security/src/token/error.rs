//! Why a token was refused.

/// Why an access token was refused. Every kind except [`TokenError::Unavailable`] is a 401
/// (`invalid_token`); the messages never contain the token or any secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed compact JWS with the expected claims (too long, wrong segments, bad
    /// base64url or JSON, missing claims).
    #[error("malformed token: {reason}")]
    Malformed {
        /// What is wrong, for logs.
        reason: &'static str,
    },
    /// The issuer is not one of ours, or its tenant does not exist or is not active.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// No published key of the issuer's tenant has this `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key (`none`, `HS*`, RS/EdDSA mix-ups).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Past `exp` (plus leeway).
    #[error("token expired")]
    Expired,
    /// Before `nbf` or `iat` (minus leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The expected audience is not in `aud`.
    #[error("wrong audience")]
    WrongAudience,
    /// The `tenant_id` claim is not the issuer's tenant.
    #[error("wrong tenant")]
    WrongTenant,
    /// Revoked (by `jti`, or all tokens of the tenant).
    #[error("token revoked")]
    Revoked,
    /// Verification could not be completed (a store failed); retrying may succeed. Not the
    /// client's fault: maps to 503, not 401.
    #[error("token verification is unavailable")]
    Unavailable(#[source] openframe_core::Error),
}

impl TokenError {
    /// A fixed, client-safe description for `WWW-Authenticate: Bearer error="invalid_token",
    /// error_description="..."`.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "The access token is malformed",
            Self::UnknownIssuer => "The access token issuer is not accepted",
            Self::UnknownKey => "The access token signing key is unknown",
            Self::AlgorithmNotAllowed => "The access token algorithm is not allowed",
            Self::BadSignature => "The access token signature is invalid",
            Self::Expired => "The access token expired",
            Self::NotYetValid => "The access token is not valid yet",
            Self::WrongAudience => "The access token is not intended for this audience",
            Self::WrongTenant => "The access token tenant does not match its issuer",
            Self::Revoked => "The access token has been revoked",
            Self::Unavailable(_) => "The access token cannot be verified right now",
        }
    }

    pub(crate) fn malformed(reason: &'static str) -> Self {
        Self::Malformed { reason }
    }
}

impl From<TokenError> for openframe_core::Error {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Unavailable(inner) => inner,
            _ => openframe_core::Error::Unauthenticated,
        }
    }
}
