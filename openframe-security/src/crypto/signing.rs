//! Signing keys: generation, parsed signer and verifier handles, and JWK (public parts only).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ED25519, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openframe_core::{Error, Result};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A JWS signing algorithm supported for tenant keys.
///
/// ```
/// use openframe_security::crypto::SigningAlgorithm;
/// assert_eq!(SigningAlgorithm::default().as_str(), "RS256");
/// assert_eq!("EdDSA".parse::<SigningAlgorithm>()?, SigningAlgorithm::EdDsa);
/// assert!("HS256".parse::<SigningAlgorithm>().is_err());
/// # Ok::<(), openframe_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over an RSA-2048 key (JWA `RS256`, the default).
    #[default]
    #[serde(rename = "RS256")]
    Rs256,
    /// Ed25519 (JWA `EdDSA`).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    /// The JWA name (`"RS256"`, `"EdDSA"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm with this exact JWA name, if supported.
    pub fn from_jwa(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_jwa(s).ok_or_else(|| Error::invalid("algorithm", "must be RS256 or EdDSA"))
    }
}

/// Generates a new private key for `algorithm` (RSA-2048 or Ed25519) as PKCS#8 DER.
///
/// RSA generation takes tens to hundreds of milliseconds: call it off the async executor
/// (e.g. in `tokio::task::spawn_blocking`).
pub fn generate_pkcs8(algorithm: SigningAlgorithm) -> Result<Zeroizing<Vec<u8>>> {
    let failed = |_| Error::Internal(format!("{algorithm} key generation failed").into());
    match algorithm {
        SigningAlgorithm::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let der: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
            Ok(Zeroizing::new(der.as_ref().to_vec()))
        }
        SigningAlgorithm::EdDsa => {
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            let doc = pair.to_pkcs8().map_err(failed)?;
            Ok(Zeroizing::new(doc.as_ref().to_vec()))
        }
    }
}

enum SignerKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A parsed private key, ready to sign: parsing happens once, in [`Signer::from_pkcs8`].
/// Cheap to clone (shared). `Debug` shows only the algorithm.
#[derive(Clone)]
pub struct Signer {
    key: Arc<SignerKey>,
}

impl Signer {
    /// Parses a PKCS#8 DER private key for `algorithm` (validating it).
    pub fn from_pkcs8(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self> {
        let rejected =
            |_| Error::invalid("privateKey", format!("not a valid {algorithm} PKCS#8 key"));
        let key = match algorithm {
            SigningAlgorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                let bits = pair.public_modulus_len() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(Error::invalid(
                        "privateKey",
                        "RSA keys must have 2048 to 8192 bits",
                    ));
                }
                SignerKey::Rsa(pair)
            }
            SigningAlgorithm::EdDsa => {
                SignerKey::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?)
            }
        };
        Ok(Self { key: Arc::new(key) })
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        match &*self.key {
            SignerKey::Rsa(_) => SigningAlgorithm::Rs256,
            SignerKey::Ed25519(_) => SigningAlgorithm::EdDsa,
        }
    }

    /// Signs `message` (RS256: PKCS#1 v1.5 over SHA-256; EdDSA: Ed25519).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match &*self.key {
            SignerKey::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| Error::Internal("RS256 signing failed".into()))?;
                Ok(sig)
            }
            SignerKey::Ed25519(pair) => pair
                .try_sign(message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Internal("EdDSA signing failed".into())),
        }
    }

    /// The public key as a JWK with id `kid` (`use: sig`).
    pub fn public_jwk(&self, kid: &str) -> Jwk {
        match &*self.key {
            SignerKey::Rsa(pair) => {
                let public = pair.public_key();
                Jwk::rsa(
                    kid,
                    public.modulus().big_endian_without_leading_zero(),
                    public.exponent().big_endian_without_leading_zero(),
                )
            }
            SignerKey::Ed25519(pair) => Jwk::ed25519(kid, pair.public_key().as_ref()),
        }
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Result<Verifier> {
        Verifier::from_jwk(&self.public_jwk("-"))
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// A parsed public key, ready to verify: parsing happens once, in [`Verifier::from_jwk`].
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Verifier {
    algorithm: SigningAlgorithm,
    key: Arc<ParsedPublicKey>,
}

impl Verifier {
    /// Parses the public key of a JWK (`RSA` with `n`/`e` for RS256, 2048-8192 bits; `OKP` with
    /// `crv: Ed25519` and `x` for EdDSA). The JWK's `alg` must be one of these and match `kty`.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self> {
        let invalid = |reason: &'static str| Error::invalid("jwk", reason);
        let algorithm = SigningAlgorithm::from_jwa(&jwk.alg)
            .ok_or_else(|| invalid("alg must be RS256 or EdDSA"))?;
        let decode = |field: &Option<String>, name: &'static str| -> Result<Vec<u8>> {
            let value = field.as_deref().ok_or_else(|| invalid(name))?;
            if value.len() > 2048 {
                return Err(invalid("key component too long"));
            }
            URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| invalid("key component is not base64url"))
        };
        let key = match algorithm {
            SigningAlgorithm::Rs256 => {
                if jwk.kty != "RSA" {
                    return Err(invalid("RS256 needs kty RSA"));
                }
                let n = decode(&jwk.n, "RSA key needs n")?;
                let e = decode(&jwk.e, "RSA key needs e")?;
                let bits = n.len() * 8;
                if !(2048..=8192).contains(&bits) || n.first() == Some(&0) {
                    return Err(invalid("RSA modulus must have 2048 to 8192 bits"));
                }
                RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| invalid("not a valid RSA public key"))?
            }
            SigningAlgorithm::EdDsa => {
                if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(invalid("EdDSA needs kty OKP and crv Ed25519"));
                }
                let x = decode(&jwk.x, "Ed25519 key needs x")?;
                if x.len() != 32 {
                    return Err(invalid("Ed25519 public keys are 32 bytes"));
                }
                ParsedPublicKey::new(&ED25519, x)
                    .map_err(|_| invalid("not a valid Ed25519 public key"))?
            }
        };
        Ok(Self {
            algorithm,
            key: Arc::new(key),
        })
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Whether `signature` is a valid signature of `message` under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A public JSON Web Key (RFC 7517). Holds public parts only: there is no field for private
/// material, so a serialized `Jwk` can never leak a private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA` or `OKP`.
    pub kty: String,
    /// Key id.
    pub kid: String,
    /// Intended use: `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// JWA algorithm: `RS256` or `EdDSA`.
    pub alg: String,
    /// RSA modulus (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// OKP curve: `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// OKP public key (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
}

impl Jwk {
    /// An RS256 signing JWK from the big-endian modulus and exponent.
    pub fn rsa(kid: &str, n: &[u8], e: &[u8]) -> Self {
        Self {
            kty: "RSA".to_owned(),
            kid: kid.to_owned(),
            key_use: "sig".to_owned(),
            alg: SigningAlgorithm::Rs256.as_str().to_owned(),
            n: Some(URL_SAFE_NO_PAD.encode(n)),
            e: Some(URL_SAFE_NO_PAD.encode(e)),
            crv: None,
            x: None,
        }
    }

    /// An EdDSA (Ed25519) signing JWK from the 32-byte public key.
    pub fn ed25519(kid: &str, x: &[u8]) -> Self {
        Self {
            kty: "OKP".to_owned(),
            kid: kid.to_owned(),
            key_use: "sig".to_owned(),
            alg: SigningAlgorithm::EdDsa.as_str().to_owned(),
            n: None,
            e: None,
            crv: Some("Ed25519".to_owned()),
            x: Some(URL_SAFE_NO_PAD.encode(x)),
        }
    }
}

/// A JWK Set (`{"keys": [...]}`), as served at a tenant's `jwks_uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, the active one first.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The key with this id.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_sign_verify_both_algorithms() {
        for alg in [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa] {
            let der = generate_pkcs8(alg).unwrap();
            let signer = Signer::from_pkcs8(alg, &der).unwrap();
            assert_eq!(signer.algorithm(), alg);
            let sig = signer.sign(b"hello").unwrap();
            let jwk = signer.public_jwk("kid-1");
            assert_eq!(jwk.alg, alg.as_str());
            let verifier = Verifier::from_jwk(&jwk).unwrap();
            assert!(verifier.verify(b"hello", &sig));
            assert!(!verifier.verify(b"hellO", &sig));
            assert!(!verifier.verify(b"hello", &sig[1..]));
            assert!(!verifier.verify(b"hello", b""));
            let json = serde_json::to_string(&jwk).unwrap();
            assert!(!json.contains("\"d\""), "{json}");
            // The other algorithm's parser refuses this key.
            let other = match alg {
                SigningAlgorithm::Rs256 => SigningAlgorithm::EdDsa,
                SigningAlgorithm::EdDsa => SigningAlgorithm::Rs256,
            };
            assert!(Signer::from_pkcs8(other, &der).is_err());
            assert!(format!("{signer:?}").contains(&format!("{alg:?}")));
        }
    }

    #[test]
    fn jwk_validation() {
        let der = generate_pkcs8(SigningAlgorithm::EdDsa).unwrap();
        let jwk = Signer::from_pkcs8(SigningAlgorithm::EdDsa, &der)
            .unwrap()
            .public_jwk("k");
        let mut bad = jwk.clone();
        bad.alg = "HS256".into();
        assert!(Verifier::from_jwk(&bad).is_err());
        let mut bad = jwk.clone();
        bad.alg = "RS256".into();
        assert!(Verifier::from_jwk(&bad).is_err());
        let mut bad = jwk.clone();
        bad.x = Some("AAAA".into());
        assert!(Verifier::from_jwk(&bad).is_err());
        let small = Jwk::rsa("k", &[0xc5; 128], &[1, 0, 1]);
        assert!(Verifier::from_jwk(&small).is_err(), "RSA-1024 refused");
        assert!(Signer::from_pkcs8(SigningAlgorithm::Rs256, b"garbage").is_err());
    }
}
