//! argon2id hashing and verification on Tokio's blocking pool, and single-use tokens.

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openframe_core::{Error, Result, Secret};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::config::Argon2Params;

/// Random bytes in a salt.
const SALT_BYTES: usize = 16;
/// Random bytes in an invitation or reset token (256 bits).
const TOKEN_BYTES: usize = 32;
/// Longest token string accepted from a client (a real one has 43 characters).
const MAX_TOKEN_LEN: usize = 128;

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut buf = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(buf.as_mut_slice())
        .map_err(|_| Error::Internal("the system random generator failed".into()))?;
    Ok(buf)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Internal("password hashing task failed".into()))?
}

/// Hashes `password` with argon2id into a PHC string (`$argon2id$v=19$m=...`).
pub(crate) async fn hash_password(params: Argon2Params, password: &str) -> Result<String> {
    let password = Zeroizing::new(password.as_bytes().to_vec());
    let salt = random_bytes::<SALT_BYTES>()?;
    blocking(move || {
        let salt = SaltString::encode_b64(salt.as_slice())
            .map_err(|_| Error::Internal("cannot encode a password salt".into()))?;
        let argon2_params = params
            .to_argon2()
            .map_err(|_| Error::Internal("invalid argon2 parameters".into()))?;
        Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params)
            .hash_password(&password, &salt)
            .map(|hash| hash.to_string())
            .map_err(|_| Error::Internal("password hashing failed".into()))
    })
    .await
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verified {
    /// The password matches; `rehash` when the hash is not argon2id with the current costs.
    Match {
        /// Whether to store a fresh hash with the current parameters.
        rehash: bool,
    },
    /// Wrong password (or an unreadable stored hash, which is logged).
    Mismatch,
}

/// Checks `password` against a PHC string, with the parameters the PHC string records.
pub(crate) async fn verify_password(
    phc: String,
    password: &str,
    current: Argon2Params,
) -> Result<Verified> {
    let password = Zeroizing::new(password.as_bytes().to_vec());
    let phc = Zeroizing::new(phc);
    blocking(move || {
        let Ok(hash) = PasswordHash::new(&phc) else {
            tracing::error!("a stored password hash is not a PHC string; refusing the login");
            return Ok(Verified::Mismatch);
        };
        match Argon2::default().verify_password(&password, &hash) {
            Ok(()) => Ok(Verified::Match {
                rehash: needs_rehash(&hash, current),
            }),
            Err(argon2::password_hash::Error::Password) => Ok(Verified::Mismatch),
            Err(_) => {
                tracing::error!(
                    "a stored password hash has unusable parameters; refusing the login"
                );
                Ok(Verified::Mismatch)
            }
        }
    })
    .await
}

fn needs_rehash(hash: &PasswordHash<'_>, current: Argon2Params) -> bool {
    if hash.algorithm != argon2::ARGON2ID_IDENT || hash.version != Some(Version::V0x13.into()) {
        return true;
    }
    match argon2::Params::try_from(hash) {
        Ok(p) => {
            p.m_cost() != current.memory_kib()
                || p.t_cost() != current.iterations()
                || p.p_cost() != current.parallelism()
        }
        Err(_) => true,
    }
}

/// The SHA-256 of a single-use token: what is stored instead of the token. Redacted in
/// `Debug`; serialized as lowercase hex for storage only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`, or `None` for input that cannot be a token (empty or too long).
    pub(crate) fn of(token: &str) -> Option<Self> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return None;
        }
        Some(Self(Sha256::digest(token.as_bytes()).into()))
    }

    /// Lowercase hex, the stored and indexed form.
    pub(crate) fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(***)")
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        Self::from_hex(&hex).ok_or_else(|| serde::de::Error::custom("malformed token hash"))
    }
}

/// A new 256-bit random token (base64url, 43 characters) and its hash.
pub(crate) fn new_token() -> Result<(Secret, TokenHash)> {
    let bytes = random_bytes::<TOKEN_BYTES>()?;
    let token = URL_SAFE_NO_PAD.encode(bytes.as_slice());
    let hash = TokenHash::of(&token)
        .ok_or_else(|| Error::Internal("generated token has an unexpected length".into()))?;
    Ok((Secret::new(token), hash))
}

/// A random value for a dummy hash nobody can match.
pub(crate) fn random_password() -> Result<Zeroizing<String>> {
    let bytes = random_bytes::<TOKEN_BYTES>()?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_slice())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify_roundtrip() {
        let fast = Argon2Params::fast_for_tests();
        let phc = hash_password(fast, "Correct horse 1").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("Correct horse 1"));
        assert_eq!(
            verify_password(phc.clone(), "Correct horse 1", fast)
                .await
                .unwrap(),
            Verified::Match { rehash: false }
        );
        assert_eq!(
            verify_password(phc.clone(), "Correct horse 2", fast)
                .await
                .unwrap(),
            Verified::Mismatch
        );
        let stronger = Argon2Params::new(16, 2, 1).unwrap();
        assert_eq!(
            verify_password(phc, "Correct horse 1", stronger)
                .await
                .unwrap(),
            Verified::Match { rehash: true }
        );
        assert_eq!(
            verify_password("not a hash".into(), "x", fast)
                .await
                .unwrap(),
            Verified::Mismatch
        );
        // Two hashes of one password differ (random salt).
        let a = hash_password(fast, "same").await.unwrap();
        let b = hash_password(fast, "same").await.unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn tokens_are_random_and_hashes_redacted() {
        let (t1, h1) = new_token().unwrap();
        let (t2, h2) = new_token().unwrap();
        assert_eq!(t1.expose().len(), 43);
        assert_ne!(t1, t2);
        assert_ne!(h1, h2);
        assert_eq!(TokenHash::of(t1.expose()), Some(h1.clone()));
        assert_eq!(format!("{h1:?}"), "TokenHash(***)");
        let json = serde_json::to_string(&h1).unwrap();
        assert_eq!(serde_json::from_str::<TokenHash>(&json).unwrap(), h1);
        assert!(TokenHash::of("").is_none());
        assert!(TokenHash::of(&"x".repeat(129)).is_none());
        assert!(serde_json::from_str::<TokenHash>("\"zz\"").is_err());
    }
}
