//! Per-tenant signing keys: created on first use, rotated with overlap, published as JWKS.
//!
//! Every tenant is its own OIDC issuer with its own key pair. The [`KeyStore`] trait hands out
//! the tenant's active [`SigningKey`] (a parsed, cached handle: no decryption or key parsing
//! per signature), the [`VerificationKey`] for a `kid` (active, or retired but still
//! published), and the tenant's [`JwkSet`]. Rotation retires the active key: it keeps
//! verifying and stays in the JWKS until `retired_at + overlap`, so tokens signed just before
//! a rotation stay valid until they expire.
//!
//! [`DocumentKeyStore`] is the backend over any `openframe-data` document store (memory,
//! SQLite, MongoDB). Private keys are stored only sealed with the [`MasterKey`].
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use openframe_core::{SystemClock, TenantId};
//! use openframe_data::memory::InMemoryDocumentStore;
//! use openframe_security::crypto::{MasterKey, SigningAlgorithm};
//! use openframe_security::keys::{DocumentKeyStore, KeyPolicy, KeyStore};
//!
//! let keys = DocumentKeyStore::new(
//!     Arc::new(InMemoryDocumentStore::new()),
//!     MasterKey::generate()?,
//!     Arc::new(SystemClock),
//!     KeyPolicy { algorithm: SigningAlgorithm::EdDsa, ..KeyPolicy::default() },
//! );
//! let acme = TenantId::parse("acme")?;
//! let key = keys.signing_key(&acme).await?; // created on first use
//! let signature = key.sign(b"message")?;
//! let public = keys.verification_key(&acme, &key.kid).await?.expect("published");
//! assert!(public.verify(b"message", &signature));
//! assert_eq!(keys.jwks(&acme).await?.keys[0].kid, key.kid);
//! # Ok::<(), openframe_core::Error>(()) }).unwrap();
//! ```
//!
//! [`MasterKey`]: crate::crypto::MasterKey

mod document;
mod rotation;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openframe_core::{Result, TenantId, Timestamp};

use crate::crypto::{Jwk, JwkSet, Signer, SigningAlgorithm, Verifier, jws};

pub use document::DocumentKeyStore;
pub use rotation::{KeyRotationJob, ROTATION_LOCK};

/// How keys are created, rotated, published and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Algorithm of a tenant's first key (default RS256). A rotation keeps the tenant's
    /// current algorithm unless told otherwise.
    pub algorithm: SigningAlgorithm,
    /// Age at which [`KeyStore::rotate_if_due`] rotates the active key (default 30 days).
    pub rotation_period: Duration,
    /// How long a retired key keeps verifying and stays in the JWKS (default 25 h: the longest
    /// token lifetime plus leeway). Tokens must not live longer than this.
    pub overlap: Duration,
    /// How long a tenant's parsed keys are served from memory before the store is read again,
    /// so rotations made by other replicas are seen (default 30 s).
    pub refresh: Duration,
    /// A `kid` this replica does not know re-reads the store at most this often per tenant
    /// (default 5 s): a key rotated in on another replica is found quickly, while a flood of
    /// made-up kids cannot turn into a flood of store reads.
    pub unknown_kid_refresh: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::Rs256,
            rotation_period: Duration::from_secs(30 * 86_400),
            overlap: Duration::from_secs(25 * 3600),
            refresh: Duration::from_secs(30),
            unknown_kid_refresh: Duration::from_secs(5),
        }
    }
}

/// A tenant's active private key, parsed once and shared.
pub struct SigningKey {
    /// The key id (`kid` header of every token it signs).
    pub kid: String,
    /// The algorithm it signs with.
    pub algorithm: SigningAlgorithm,
    /// When the key was created.
    pub created_at: Timestamp,
    signer: Signer,
}

impl SigningKey {
    /// A signing key with id `kid` over a parsed [`Signer`].
    pub fn new(kid: impl Into<String>, created_at: Timestamp, signer: Signer) -> Self {
        Self {
            kid: kid.into(),
            algorithm: signer.algorithm(),
            created_at,
            signer,
        }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.signer.sign(message)
    }

    /// A compact JWS of `payload` with header `{alg, typ: "JWT", kid}`.
    pub fn sign_jws(&self, payload: &[u8]) -> Result<String> {
        jws::encode(&self.signer, &self.kid, payload)
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        self.signer.public_jwk(&self.kid)
    }
}

impl Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A tenant's public key (active or retired), parsed once and shared.
#[derive(Debug, Clone)]
pub struct VerificationKey {
    /// The key id.
    pub kid: String,
    /// The algorithm tokens signed by this key must declare.
    pub algorithm: SigningAlgorithm,
    /// When the key was created.
    pub created_at: Timestamp,
    /// When it stopped signing (`None` while active).
    pub retired_at: Option<Timestamp>,
    verifier: Verifier,
    jwk: Jwk,
}

impl VerificationKey {
    /// Parses the public key of `jwk`.
    pub fn new(jwk: Jwk, created_at: Timestamp, retired_at: Option<Timestamp>) -> Result<Self> {
        let verifier = Verifier::from_jwk(&jwk)?;
        Ok(Self {
            kid: jwk.kid.clone(),
            algorithm: verifier.algorithm(),
            created_at,
            retired_at,
            verifier,
            jwk,
        })
    }

    /// Whether `signature` is a valid signature of `message` under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(message, signature)
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Until when a retired key stays published (`retired_at + overlap`); `None` while active.
    pub fn published_until(&self, overlap: Duration) -> Option<Timestamp> {
        self.retired_at.map(|r| add(r, overlap))
    }

    /// Whether the key verifies tokens and appears in the JWKS at `now`.
    pub fn is_published(&self, now: Timestamp, overlap: Duration) -> bool {
        self.published_until(overlap)
            .is_none_or(|until| now < until)
    }

    /// The same key with another retirement time (no re-parsing).
    pub(crate) fn with_retired_at(&self, retired_at: Option<Timestamp>) -> Self {
        Self {
            retired_at,
            ..self.clone()
        }
    }
}

/// Per-tenant signing keys.
///
/// Implementations create a tenant's key on first use (concurrent first uses, on any number of
/// replicas, end with exactly one active key), cache parsed keys, rotate with overlap, and
/// follow an injected clock. The conformance kit is [`testkit`] (feature `testkit`).
#[async_trait]
pub trait KeyStore: Send + Sync + Debug + 'static {
    /// The policy this store follows (token services read `overlap` to cap token lifetimes).
    fn policy(&self) -> &KeyPolicy;

    /// The tenant's active signing key, created on first use.
    async fn signing_key(&self, tenant: &TenantId) -> Result<Arc<SigningKey>>;

    /// The tenant's key `kid` if it is active or retired but still published; `None` for an
    /// unknown, malformed or expired kid (and for other tenants' kids).
    async fn verification_key(
        &self,
        tenant: &TenantId,
        kid: &str,
    ) -> Result<Option<Arc<VerificationKey>>>;

    /// The tenant's published keys: the active one first (created on first use), then every
    /// retired key whose tokens can still be alive.
    async fn jwks(&self, tenant: &TenantId) -> Result<Arc<JwkSet>>;

    /// Replaces the active key now (e.g. after a suspected compromise, or to switch algorithm
    /// with `Some(algorithm)`; `None` keeps the tenant's current algorithm). The old key is
    /// retired and stays published until `retired_at + overlap`.
    async fn rotate(
        &self,
        tenant: &TenantId,
        algorithm: Option<SigningAlgorithm>,
    ) -> Result<Arc<SigningKey>>;

    /// For the scheduled job: rotates when the active key is at least `rotation_period` old.
    /// Returns whether this call rotated (a tenant without keys is not rotated).
    async fn rotate_if_due(&self, tenant: &TenantId) -> Result<bool>;
}

/// Whether `kid` can be one of ours: 1-64 ASCII letters, digits, `-`, `_`.
pub(crate) fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 64
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new random key id, `kid-<uuid v4>`.
pub(crate) fn new_kid() -> String {
    format!("kid-{}", uuid::Uuid::new_v4())
}

/// `t + d`, saturating.
pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(Timestamp::MAX_UTC)
}

/// `t - d`, saturating.
pub(crate) fn sub(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(Timestamp::MIN_UTC)
}
