//! Cryptography: the [`MasterKey`] that seals secrets at rest (AES-256-GCM) and derives
//! sub-keys (HKDF-SHA256), tenant signing keys ([`Signer`], [`Verifier`], [`Jwk`]) on aws-lc-rs,
//! and compact [`jws`].

pub mod jws;
mod master;
mod signing;

pub use master::{MASTER_KEY_LEN, MasterKey, write_new_private_file};
pub use signing::{Jwk, JwkSet, Signer, SigningAlgorithm, Verifier, generate_pkcs8};
