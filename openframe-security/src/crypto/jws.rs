//! Compact JWS (RFC 7515): encoding with a [`Signer`] and strict, bounded decoding.
//!
//! ```
//! use openframe_security::crypto::{generate_pkcs8, jws, Signer, SigningAlgorithm};
//! let signer = Signer::from_pkcs8(SigningAlgorithm::EdDsa, &generate_pkcs8(SigningAlgorithm::EdDsa)?)?;
//! let token = jws::encode(&signer, "kid-1", br#"{"sub":"alice"}"#)?;
//! let decoded = jws::decode(&token).unwrap();
//! assert_eq!(decoded.header.alg, "EdDSA");
//! assert_eq!(decoded.header.kid.as_deref(), Some("kid-1"));
//! assert!(signer.verifier()?.verify(decoded.signing_input.as_bytes(), &decoded.signature));
//! # Ok::<(), openframe_core::Error>(())
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openframe_core::{Error, Result};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::Signer;

/// Longest accepted compact token, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The protected header of a JWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    /// The algorithm the token claims to be signed with. Never trust it alone: compare it
    /// with the algorithm of the key found by `kid`.
    pub alg: String,
    /// Media type, `JWT` for tokens issued here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The signing key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// The wire form of a header, which also catches `crit` (extensions we must refuse).
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Why a compact JWS could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// Not exactly three non-empty `.`-separated segments (the signature may be empty).
    #[error("token must have three segments")]
    Segments,
    /// A segment is not unpadded base64url.
    #[error("token {0} is not unpadded base64url")]
    Base64(Segment),
    /// The header is not a JSON object with a string `alg`.
    #[error("token header is not a valid JOSE header")]
    Header,
    /// The header lists critical extensions (`crit`), none of which are supported.
    #[error("token header has unsupported critical extensions")]
    UnsupportedCritical,
}

/// A segment of a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The protected header.
    Header,
    /// The payload.
    Payload,
    /// The signature.
    Signature,
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

impl From<JwsError> for Error {
    fn from(e: JwsError) -> Self {
        Error::invalid("token", e.to_string())
    }
}

/// A decoded, **unverified** compact JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedJws<'a> {
    /// The protected header.
    pub header: JwsHeader,
    /// `header.payload` as it appeared in the token: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The decoded payload (unverified until the signature is checked).
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Encodes a compact JWS of `payload` with header `{alg, typ: "JWT", kid}`.
pub fn encode(signer: &Signer, kid: &str, payload: &[u8]) -> Result<String> {
    let header = JwsHeader {
        alg: signer.algorithm().as_str().to_owned(),
        typ: Some("JWT".to_owned()),
        kid: Some(kid.to_owned()),
    };
    let header = serde_json::to_vec(&header)
        .map_err(|e| Error::Internal(format!("cannot encode a JWS header: {e}").into()))?;
    let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 360);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let signature = signer.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    Ok(out)
}

/// Splits and decodes a compact JWS without verifying it: at most [`MAX_TOKEN_LEN`] bytes,
/// exactly three segments, canonical unpadded base64url, a JSON header with a string `alg`
/// and no `crit`.
pub fn decode(token: &str) -> Result<DecodedJws<'_>, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Segments);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(JwsError::Segments);
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwsError::Base64(Segment::Header))?;
    let raw: RawHeader = serde_json::from_slice(&header_bytes).map_err(|_| JwsError::Header)?;
    if raw.crit.is_some() {
        return Err(JwsError::UnsupportedCritical);
    }
    let payload_bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwsError::Base64(Segment::Payload))?;
    let signature_bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwsError::Base64(Segment::Signature))?;
    Ok(DecodedJws {
        header: JwsHeader {
            alg: raw.alg,
            typ: raw.typ,
            kid: raw.kid,
        },
        signing_input: &token[..header.len() + 1 + payload.len()],
        payload: payload_bytes,
        signature: signature_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{SigningAlgorithm, generate_pkcs8};

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn round_trip() {
        let signer = Signer::from_pkcs8(
            SigningAlgorithm::EdDsa,
            &generate_pkcs8(SigningAlgorithm::EdDsa).unwrap(),
        )
        .unwrap();
        let token = encode(&signer, "kid-x", b"{\"a\":1}").unwrap();
        let d = decode(&token).unwrap();
        assert_eq!(d.header.typ.as_deref(), Some("JWT"));
        assert_eq!(d.payload, b"{\"a\":1}");
        assert!(
            signer
                .verifier()
                .unwrap()
                .verify(d.signing_input.as_bytes(), &d.signature)
        );
    }

    #[test]
    fn hostile_inputs_have_clear_kinds() {
        let h = b64(r#"{"alg":"RS256","kid":"k"}"#);
        let p = b64("{}");
        let cases: Vec<(String, JwsError)> = vec![
            ("a".repeat(MAX_TOKEN_LEN + 1), JwsError::TooLong),
            (String::new(), JwsError::Segments),
            ("abc".into(), JwsError::Segments),
            (format!("{h}.{p}"), JwsError::Segments),
            (format!("{h}.{p}.AA.AA"), JwsError::Segments),
            (format!(".{p}.AA"), JwsError::Segments),
            (format!("{h}..AA"), JwsError::Segments),
            (format!("{h}=.{p}.AA"), JwsError::Base64(Segment::Header)),
            (format!("{h}.{p}=.AA"), JwsError::Base64(Segment::Payload)),
            (
                format!("{h}.{p}.A+/A"),
                JwsError::Base64(Segment::Signature),
            ),
            (format!("{h}.{p}.AB"), JwsError::Base64(Segment::Signature)), // non-canonical bits
            (format!("{}.{p}.AA", b64("[1]")), JwsError::Header),
            (format!("{}.{p}.AA", b64("{\"alg\":1}")), JwsError::Header),
            (format!("{}.{p}.AA", b64("not json")), JwsError::Header),
            (
                format!(
                    "{}.{p}.AA",
                    b64(r#"{"alg":"RS256","crit":["b64"],"b64":false}"#)
                ),
                JwsError::UnsupportedCritical,
            ),
        ];
        for (token, kind) in cases {
            assert_eq!(decode(&token).unwrap_err(), kind, "{token:.80}");
        }
        // `alg: none` with an empty signature decodes; refusing it is the verifier's job.
        let none = format!("{}.{p}.", b64(r#"{"alg":"none"}"#));
        assert_eq!(decode(&none).unwrap().header.alg, "none");
    }
}
