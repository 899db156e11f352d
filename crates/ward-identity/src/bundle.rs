//! Trust bundles in the SPIFFE bundle format
//! (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md>):
//! a JWKS whose keys are X.509 authorities (`"use": "x509-svid"`, one `x5c`)
//! and JWT authorities (`"use": "jwt-svid"`, with `kid`).
//!
//! A bundle holds several authorities at once, which is how a CA rotates
//! without downtime: the new authority is published next to the old one
//! before anything is signed with it.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use ward_core::TrustDomain;
use x509_parser::public_key::PublicKey;

use crate::svid;

/// Largest bundle document accepted.
pub const MAX_BUNDLE_LEN: usize = 1024 * 1024;

/// Why a bundle document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// Not JSON of the expected shape.
    #[error("bundle is not a valid SPIFFE bundle document: {0}")]
    Json(String),
    /// Larger than [`MAX_BUNDLE_LEN`].
    #[error("bundle is {0} bytes; the limit is {MAX_BUNDLE_LEN}")]
    TooLarge(usize),
    /// A key entry is malformed.
    #[error("bundle key #{index}: {reason}")]
    BadKey {
        /// Position in `keys`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The bundle has no X.509 authority.
    #[error("bundle has no x509-svid authority, so it can verify nothing")]
    NoX509Authority,
    /// Reading the file failed.
    #[error("reading bundle {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
}

/// A JWT-SVID signing authority: an ES256 public key with its key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    /// The `kid` tokens name in their header.
    pub kid: String,
    /// Uncompressed P-256 point (`0x04 || x || y`).
    pub public_key: Vec<u8>,
}

impl JwtAuthority {
    /// Affine x and y coordinates of the key.
    pub(crate) fn coordinates(&self) -> Option<(&[u8], &[u8])> {
        match self.public_key.split_first() {
            Some((0x04, xy)) if xy.len() == 64 => Some(xy.split_at(32)),
            _ => None,
        }
    }
}

/// The authorities of one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundle {
    /// Whose bundle this is (not in the document; known from context).
    pub trust_domain: TrustDomain,
    /// Root certificates that X.509-SVID chains must lead to.
    pub x509_authorities: Vec<CertificateDer<'static>>,
    /// Keys that JWT-SVIDs may be signed with.
    pub jwt_authorities: Vec<JwtAuthority>,
    /// Increases with every change (`spiffe_sequence`).
    pub sequence: u64,
    /// Seconds after which consumers should re-fetch (`spiffe_refresh_hint`).
    pub refresh_hint: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Document {
    keys: Vec<Jwk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spiffe_sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spiffe_refresh_hint: Option<u64>,
}

#[derive(Serialize, Deserialize, Default)]
struct Jwk {
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x5c: Option<Vec<String>>,
}

impl TrustBundle {
    /// A bundle with the given authorities and sequence 1.
    pub fn new(
        trust_domain: TrustDomain,
        x509_authorities: Vec<CertificateDer<'static>>,
        jwt_authorities: Vec<JwtAuthority>,
    ) -> Self {
        Self {
            trust_domain,
            x509_authorities,
            jwt_authorities,
            sequence: 1,
            refresh_hint: None,
        }
    }

    /// The JWT authority with key id `kid`.
    pub fn jwt_authority(&self, kid: &str) -> Option<&JwtAuthority> {
        self.jwt_authorities.iter().find(|a| a.kid == kid)
    }

    /// Encodes the bundle as a SPIFFE bundle JSON document.
    pub fn to_json(&self) -> Result<String, BundleError> {
        let mut keys = Vec::new();
        for (index, cert) in self.x509_authorities.iter().enumerate() {
            let mut jwk =
                public_jwk(cert).map_err(|reason| BundleError::BadKey { index, reason })?;
            jwk.use_ = Some("x509-svid".to_owned());
            jwk.x5c = Some(vec![STANDARD.encode(cert.as_ref())]);
            keys.push(jwk);
        }
        for (i, authority) in self.jwt_authorities.iter().enumerate() {
            let (x, y) = authority.coordinates().ok_or_else(|| BundleError::BadKey {
                index: self.x509_authorities.len() + i,
                reason: "JWT authority is not an uncompressed P-256 point".to_owned(),
            })?;
            keys.push(Jwk {
                use_: Some("jwt-svid".to_owned()),
                kty: Some("EC".to_owned()),
                crv: Some("P-256".to_owned()),
                kid: Some(authority.kid.clone()),
                x: Some(URL_SAFE_NO_PAD.encode(x)),
                y: Some(URL_SAFE_NO_PAD.encode(y)),
                x5c: None,
            });
        }
        let doc = Document {
            keys,
            spiffe_sequence: Some(self.sequence),
            spiffe_refresh_hint: self.refresh_hint,
        };
        serde_json::to_string_pretty(&doc).map_err(|e| BundleError::Json(e.to_string()))
    }

    /// Parses a SPIFFE bundle document for `trust_domain`. Keys with an
    /// unknown `use` are ignored, as the specification requires.
    pub fn from_json(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        if json.len() > MAX_BUNDLE_LEN {
            return Err(BundleError::TooLarge(json.len()));
        }
        let doc: Document =
            serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        let mut x509_authorities = Vec::new();
        let mut jwt_authorities = Vec::new();
        for (index, key) in doc.keys.into_iter().enumerate() {
            let bad = |reason: &str| BundleError::BadKey {
                index,
                reason: reason.to_owned(),
            };
            match key.use_.as_deref() {
                Some("x509-svid") => {
                    let x5c = key.x5c.as_deref().unwrap_or_default();
                    let [cert_b64] = x5c else {
                        return Err(bad("x509-svid key must have exactly one x5c certificate"));
                    };
                    let der = STANDARD
                        .decode(cert_b64)
                        .map_err(|_| bad("x5c is not base64"))?;
                    let cert = svid::parse_one(&der).map_err(|e| bad(&e.to_string()))?;
                    if !cert.is_ca() {
                        return Err(bad("x509-svid authority is not a CA certificate"));
                    }
                    x509_authorities.push(CertificateDer::from(der));
                }
                Some("jwt-svid") => {
                    let kid = key
                        .kid
                        .filter(|k| !k.is_empty())
                        .ok_or_else(|| bad("jwt-svid key has no kid"))?;
                    if key.kty.as_deref() != Some("EC") || key.crv.as_deref() != Some("P-256") {
                        return Err(bad("only EC P-256 (ES256) JWT authorities are supported"));
                    }
                    let coord = |c: Option<String>| {
                        c.and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
                            .filter(|c| c.len() == 32)
                            .ok_or_else(|| bad("x and y must be 32-byte base64url coordinates"))
                    };
                    let mut public_key = vec![0x04];
                    public_key.extend(coord(key.x)?);
                    public_key.extend(coord(key.y)?);
                    jwt_authorities.push(JwtAuthority { kid, public_key });
                }
                _ => {}
            }
        }
        Ok(Self {
            trust_domain,
            x509_authorities,
            jwt_authorities,
            sequence: doc.spiffe_sequence.unwrap_or(0),
            refresh_hint: doc.spiffe_refresh_hint,
        })
    }

    /// Reads a bundle document from a file.
    pub fn read(trust_domain: TrustDomain, path: &Path) -> Result<Self, BundleError> {
        let bytes = std::fs::read(path).map_err(|e| BundleError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json(trust_domain, &bytes)
    }
}

/// The JWK public-key members for a certificate's key.
fn public_jwk(cert: &CertificateDer<'_>) -> Result<Jwk, String> {
    let parsed = svid::parse_one(cert).map_err(|e| e.to_string())?;
    match parsed.public_key().parsed() {
        Ok(PublicKey::EC(point)) if point.data().len() == 65 => {
            let (x, y) = point.data().get(1..).unwrap_or_default().split_at(32);
            Ok(Jwk {
                kty: Some("EC".to_owned()),
                crv: Some("P-256".to_owned()),
                x: Some(URL_SAFE_NO_PAD.encode(x)),
                y: Some(URL_SAFE_NO_PAD.encode(y)),
                ..Jwk::default()
            })
        }
        _ if parsed.public_key().algorithm.algorithm.to_id_string() == "1.3.101.112" => Ok(Jwk {
            kty: Some("OKP".to_owned()),
            crv: Some("Ed25519".to_owned()),
            x: Some(URL_SAFE_NO_PAD.encode(parsed.public_key().subject_public_key.data.as_ref())),
            ..Jwk::default()
        }),
        _ => Err("authority key is neither EC P-256 nor Ed25519".to_owned()),
    }
}
