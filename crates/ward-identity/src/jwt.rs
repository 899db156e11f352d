//! JWT-SVIDs (<https://github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md>):
//! ES256 tokens whose `sub` is a SPIFFE ID, with a required audience, a short
//! expiry, a unique `jti`, and a `kid` naming a key in the trust bundle.
//!
//! jsonwebtoken (aws-lc-rs backend) does the JWS encoding and signature
//! check; the SPIFFE claim rules and the clock are ours, so time is
//! injectable in tests and every rule has a precise error.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use ward_core::SpiffeId;

use crate::bundle::{JwtAuthority, TrustBundle};
use crate::keys::{KeyAlgorithm, PrivateKey};

/// Default JWT-SVID lifetime.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(5 * 60);
/// Tolerated clock skew when checking `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// Largest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a JWT-SVID was refused (or could not be issued).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Not a compact JWS, or claims of the wrong shape.
    #[error("token is malformed: {0}")]
    Malformed(String),
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token is {0} bytes; the limit is {MAX_TOKEN_LEN}")]
    TooLarge(usize),
    /// `alg` other than ES256 (including `none`).
    #[error("token algorithm {0} is not allowed; JWT-SVIDs here are ES256")]
    Algorithm(String),
    /// No `kid` header.
    #[error("token header has no kid")]
    MissingKid,
    /// `kid` not in the bundle.
    #[error("token kid {0:?} is not an authority of the trust bundle")]
    UnknownKid(String),
    /// Signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// `sub` missing or not a SPIFFE ID.
    #[error("token sub is not a valid SPIFFE ID: {0}")]
    BadSubject(String),
    /// `sub` outside the bundle's trust domain.
    #[error("token sub {sub} is not in trust domain {trust_domain}")]
    WrongTrustDomain {
        /// The subject.
        sub: SpiffeId,
        /// The bundle's trust domain.
        trust_domain: String,
    },
    /// `aud` missing or without the expected audience.
    #[error("token audience {found:?} does not include {expected:?}")]
    Audience {
        /// What the verifier requires.
        expected: String,
        /// What the token has.
        found: Vec<String>,
    },
    /// `exp` in the past (beyond leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// `nbf` or `iat` in the future (beyond leeway).
    #[error("token is not valid yet (valid from {from}, now {now})")]
    NotYetValid {
        /// The token's `nbf` or `iat`.
        from: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// Issuing failed.
    #[error("issuing token failed: {0}")]
    Issue(String),
}

/// Claims of a verified JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSvidClaims {
    /// The SPIFFE ID the token asserts.
    pub sub: SpiffeId,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, if present.
    pub iat: Option<i64>,
    /// Unique token id, if present.
    pub jti: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize, Deserialize)]
struct RawClaims {
    sub: Option<String>,
    aud: Option<OneOrMany>,
    exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// Signs JWT-SVIDs with an ES256 key.
pub struct JwtSigner {
    kid: String,
    key: EncodingKey,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtSigner(kid={}, <redacted>)", self.kid)
    }
}

impl JwtSigner {
    /// Wraps an ECDSA P-256 key. The `kid` is derived from the public key, so
    /// every holder of the bundle computes the same one.
    pub fn new(key: &PrivateKey) -> Result<Self, JwtError> {
        if key.algorithm() != KeyAlgorithm::EcdsaP256 {
            return Err(JwtError::Issue(format!(
                "JWT-SVID keys must be ecdsa-p256, not {}",
                key.algorithm()
            )));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.public_key_raw());
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref().get(..18).unwrap_or_default());
        let pkcs8 = key.to_pkcs8_der();
        Ok(Self {
            kid,
            key: EncodingKey::from_ec_der(pkcs8.secret_der()),
            public_key: key.public_key_raw().to_vec(),
        })
    }

    /// The authority to publish in the trust bundle.
    pub fn authority(&self) -> JwtAuthority {
        JwtAuthority {
            kid: self.kid.clone(),
            public_key: self.public_key.clone(),
        }
    }

    /// Issues a token for `sub` to `audiences`, valid for `ttl` from `now`.
    pub fn issue(
        &self,
        sub: &SpiffeId,
        audiences: &[&str],
        ttl: Duration,
        now: i64,
    ) -> Result<String, JwtError> {
        if audiences.is_empty() {
            return Err(JwtError::Issue(
                "at least one audience is required".to_owned(),
            ));
        }
        let mut jti = [0u8; 16];
        crate::provider::random(&mut jti)
            .map_err(|_| JwtError::Issue("random jti failed".to_owned()))?;
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = RawClaims {
            sub: Some(sub.to_string()),
            aud: Some(OneOrMany::Many(
                audiences.iter().map(|a| (*a).to_owned()).collect(),
            )),
            exp: Some(now.saturating_add(ttl)),
            nbf: None,
            iat: Some(now),
            jti: Some(URL_SAFE_NO_PAD.encode(jti)),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| JwtError::Issue(e.to_string()))
    }
}

/// Verifies a JWT-SVID against `bundle` for `audience` at time `now`.
pub fn verify(
    token: &str,
    bundle: &TrustBundle,
    audience: &str,
    now: i64,
) -> Result<JwtSvidClaims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge(token.len()));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::ES256 {
        return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.ok_or(JwtError::MissingKid)?;
    let authority = bundle
        .jwt_authority(&kid)
        .ok_or_else(|| JwtError::UnknownKid(kid.clone()))?;
    let (x, y) = authority
        .coordinates()
        .ok_or_else(|| JwtError::UnknownKid(kid.clone()))?;
    let key =
        DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y))
            .map_err(|e| JwtError::Malformed(e.to_string()))?;
    let mut validation = Validation::new(Algorithm::ES256);
    // Time and audience rules are checked below against our clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = std::collections::HashSet::new();
    let data = jsonwebtoken::decode::<RawClaims>(token, &key, &validation).map_err(|e| match e
        .kind()
    {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtError::BadSignature,
        _ => JwtError::Malformed(e.to_string()),
    })?;
    let claims = data.claims;
    let sub = claims
        .sub
        .ok_or_else(|| JwtError::BadSubject("missing".to_owned()))?;
    let sub = SpiffeId::new(&sub).map_err(|e| JwtError::BadSubject(format!("{sub:?}: {e}")))?;
    if !sub.is_member_of(&bundle.trust_domain) {
        return Err(JwtError::WrongTrustDomain {
            sub,
            trust_domain: bundle.trust_domain.to_string(),
        });
    }
    let aud: Vec<String> = match claims.aud {
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(a)) => a,
        None => Vec::new(),
    };
    if !aud.iter().any(|a| a == audience) {
        return Err(JwtError::Audience {
            expected: audience.to_owned(),
            found: aud,
        });
    }
    let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(0);
    let exp = claims
        .exp
        .ok_or_else(|| JwtError::Malformed("exp is required".to_owned()))?;
    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired { exp, now });
    }
    for from in [claims.nbf, claims.iat].into_iter().flatten() {
        if from > now.saturating_add(leeway) {
            return Err(JwtError::NotYetValid { from, now });
        }
    }
    Ok(JwtSvidClaims {
        sub,
        aud,
        exp,
        iat: claims.iat,
        jti: claims.jti,
    })
}
