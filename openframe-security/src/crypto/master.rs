//! The master key: AES-256-GCM sealing of secrets at rest and HKDF sub-keys.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use openframe_core::{Error, Result};
use zeroize::Zeroizing;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// The format version byte at the start of every sealed value.
const SEAL_VERSION: u8 = 1;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Longest sealed value [`MasterKey::open`] accepts (encoded), so a hostile input cannot make
/// it allocate much.
const MAX_SEALED_LEN: usize = 1024 * 1024;
/// HKDF salt: fixed, so every replica derives the same sub-keys from the same master key.
const HKDF_SALT: &[u8] = b"openframe-security/master-key/v1";

/// The 32-byte key that protects secrets at rest (tenant signing keys, SSO client secrets, ...)
/// and from which purpose-bound sub-keys are derived.
///
/// `Debug` prints no key material and the bytes are zeroized on drop.
///
/// ```
/// use openframe_security::crypto::MasterKey;
/// let key = MasterKey::generate()?;
/// let sealed = key.seal(b"private key", b"tenant=acme")?;
/// assert_eq!(&key.open(&sealed, b"tenant=acme")?[..], b"private key");
/// assert!(key.open(&sealed, b"tenant=globex").is_err()); // bound to its context
/// assert_eq!(format!("{key:?}"), "MasterKey(***)");
/// # Ok::<(), openframe_core::Error>(())
/// ```
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl MasterKey {
    /// Parses a base64 key (standard or URL-safe alphabet, padded or not, surrounding
    /// whitespace ignored). It must decode to exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self> {
        let encoded = encoded.trim();
        let invalid = || {
            Error::invalid(
                "masterKey",
                "must be 32 random bytes in base64 (44 characters; generate one with `openssl rand -base64 32`)",
            )
        };
        if encoded.is_empty() || encoded.len() > 64 {
            return Err(invalid());
        }
        let mut buf = Zeroizing::new([0u8; 64]);
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            if let Ok(n) = engine.decode_slice(encoded, &mut buf[..]) {
                if n != MASTER_KEY_LEN {
                    return Err(invalid());
                }
                let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
                bytes.copy_from_slice(&buf[..MASTER_KEY_LEN]);
                return Ok(Self { bytes });
            }
        }
        Err(invalid())
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut bytes[..])
            .map_err(|_| Error::Internal("the random generator failed".into()))?;
        Ok(Self { bytes })
    }

    /// The key in standard, padded base64 (the format [`MasterKey::from_base64`] reads).
    /// The returned string is a secret: write it to a protected place only.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.bytes[..])
    }

    /// Encrypts `plaintext` with AES-256-GCM under a fresh random 96-bit nonce, authenticating
    /// `aad` (the context the value belongs to, e.g. tenant and key id) without storing it.
    ///
    /// The result is `base64url(version || nonce || ciphertext || tag)`, unpadded.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &self.bytes[..])
            .map_err(|_| Error::Internal("cannot initialize AES-256-GCM".into()))?;
        let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        buf.extend_from_slice(plaintext);
        let nonce = key
            .seal_in_place_append_tag(Aad::from(aad), &mut *buf)
            .map_err(|_| Error::Internal("AES-256-GCM sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts a value made by [`MasterKey::seal`] with the same `aad`.
    ///
    /// A wrong key, a wrong `aad`, any modified byte, a truncated or malformed value all give
    /// the same `InvalidInput` error on field `sealed` (it never panics and never says which).
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let refused = || {
            Error::invalid(
                "sealed",
                "cannot be opened: wrong key, wrong context, or modified",
            )
        };
        if sealed.len() > MAX_SEALED_LEN {
            return Err(refused());
        }
        let mut data = Zeroizing::new(URL_SAFE_NO_PAD.decode(sealed).map_err(|_| refused())?);
        if data.len() < 1 + NONCE_LEN + TAG_LEN || data[0] != SEAL_VERSION {
            return Err(refused());
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&data[1..=NONCE_LEN]).map_err(|_| refused())?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, &self.bytes[..])
            .map_err(|_| Error::Internal("cannot initialize AES-256-GCM".into()))?;
        let len = key
            .open_in_place(nonce, Aad::from(aad), &mut data[1 + NONCE_LEN..])
            .map_err(|_| refused())?
            .len();
        data.copy_within(1 + NONCE_LEN..1 + NONCE_LEN + len, 0);
        data.truncate(len);
        Ok(data)
    }

    /// A 32-byte sub-key for one `purpose` (e.g. `"api-key-hmac"`, `"csrf"`), derived with
    /// HKDF-SHA256 (fixed salt, `info = purpose`). Different purposes give independent keys;
    /// the same purpose always gives the same key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        // HKDF-Extract, then HKDF-Expand for L = 32 (a single block: T(1) = HMAC(PRK, info || 1)).
        let prk = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, HKDF_SALT),
            &self.bytes[..],
        );
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()));
        ctx.update(purpose.as_bytes());
        ctx.update(&[1]);
        let okm = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(&okm.as_ref()[..32]);
        out
    }

    /// Development only: reads the base64 key in `path`, or generates one and writes it there
    /// (owner-only `0600` permissions) when the file does not exist. Returns the key and
    /// whether it was created. Creating one logs a loud warning with the path (never the key):
    /// production deployments must provide their own key.
    pub fn load_or_create_dev(path: &Path) -> Result<(MasterKey, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_file_text(path, Zeroizing::new(text)).map(|k| (k, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                match write_new_private_file(path, key.to_base64().as_bytes()) {
                    Ok(()) => {
                        tracing::warn!(
                            path = %path.display(),
                            "DEV MODE: generated a new master key and stored it in {}; every secret at rest \
                             (tenant signing keys, SSO secrets) is encrypted with it. Do not use this in \
                             production: provide your own master key and keep it out of the data directory",
                            path.display()
                        );
                        Ok((key, true))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path)
                            .map_err(|e| io_error("read", path, &e))?;
                        Self::from_file_text(path, Zeroizing::new(text)).map(|k| (k, false))
                    }
                    Err(e) => Err(io_error("write", path, &e)),
                }
            }
            Err(e) => Err(io_error("read", path, &e)),
        }
    }

    fn from_file_text(path: &Path, text: Zeroizing<String>) -> Result<Self> {
        warn_if_readable_by_others(path);
        Self::from_base64(&text).map_err(|_| {
            Error::invalid(
                "masterKeyFile",
                format!(
                    "{} does not hold a base64-encoded 32-byte key",
                    path.display()
                ),
            )
        })
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::Internal(format!("cannot {what} the master key file {}: {e}", path.display()).into())
}

/// Creates `path` (and its parent directories) with `contents` and a final newline, failing
/// if it exists (`AlreadyExists`); the file is readable by its owner only.
pub fn write_new_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the master key file is readable by other users; restrict it to its owner (chmod 600)"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_forms_and_lengths() {
        let key = MasterKey::generate().unwrap();
        let std = key.to_base64();
        assert_eq!(std.len(), 44);
        let raw = STANDARD.decode(&std).unwrap();
        for form in [
            std.clone(),
            format!("  {std}\n"),
            STANDARD_NO_PAD.encode(&raw),
            URL_SAFE.encode(&raw),
            URL_SAFE_NO_PAD.encode(&raw),
        ] {
            let parsed = MasterKey::from_base64(&form).unwrap();
            assert_eq!(parsed.to_base64(), std, "{form}");
        }
        for bad in [
            String::new(),
            "not base64 !!".to_owned(),
            STANDARD.encode([7u8; 16]),
            STANDARD.encode([7u8; 33]),
            STANDARD.encode([7u8; 64]),
        ] {
            let err = MasterKey::from_base64(&bad).unwrap_err();
            assert_eq!(err.field(), Some("masterKey"), "{bad}");
            assert!(!err.to_string().contains(&bad) || bad.is_empty());
        }
    }

    #[test]
    fn seal_open_round_trip_and_refusals() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let sealed = key.seal(b"secret bytes", b"ctx").unwrap();
        assert_eq!(&key.open(&sealed, b"ctx").unwrap()[..], b"secret bytes");
        assert_ne!(
            key.seal(b"secret bytes", b"ctx").unwrap(),
            sealed,
            "fresh nonce"
        );
        assert!(key.open(&sealed, b"ctx2").is_err());
        assert!(other.open(&sealed, b"ctx").is_err());
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            assert!(
                key.open(&URL_SAFE_NO_PAD.encode(&t), b"ctx").is_err(),
                "byte {i}"
            );
        }
        for n in 0..raw.len() {
            assert!(
                key.open(&URL_SAFE_NO_PAD.encode(&raw[..n]), b"ctx")
                    .is_err()
            );
        }
        for garbage in ["", "!!!", "AA", &"A".repeat(MAX_SEALED_LEN + 1)] {
            assert!(key.open(garbage, b"ctx").is_err());
        }
        let empty = key.seal(b"", b"").unwrap();
        assert!(key.open(&empty, b"").unwrap().is_empty());
    }

    #[test]
    fn derive_is_hkdf_sha256() {
        let key = MasterKey::from_base64(&STANDARD.encode([42u8; 32])).unwrap();
        let ours = key.derive("api-key-hmac");
        // Reference: aws-lc-rs HKDF.
        use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
        let mut expected = [0u8; 32];
        Salt::new(HKDF_SHA256, HKDF_SALT)
            .extract(&[42u8; 32])
            .expand(&[b"api-key-hmac"], HKDF_SHA256)
            .unwrap()
            .fill(&mut expected)
            .unwrap();
        assert_eq!(ours, expected);
        assert_ne!(key.derive("csrf"), ours);
        assert_eq!(key.derive("csrf"), key.derive("csrf"));
    }

    #[test]
    fn dev_key_file_is_created_once_with_owner_only_permissions() {
        let dir = std::env::temp_dir().join(format!("of-mk-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("nested").join("master.key");
        let (k1, created) = MasterKey::load_or_create_dev(&path).unwrap();
        assert!(created);
        let (k2, created) = MasterKey::load_or_create_dev(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.to_base64(), k2.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").unwrap();
        let err = MasterKey::load_or_create_dev(&path).unwrap_err();
        assert_eq!(err.field(), Some("masterKeyFile"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_is_redacted() {
        let key = MasterKey::generate().unwrap();
        let text = format!("{key:?}");
        assert_eq!(text, "MasterKey(***)");
        assert!(!text.contains(&key.to_base64()));
    }
}
