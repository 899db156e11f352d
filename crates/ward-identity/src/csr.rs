//! Certificate signing requests: made where the key lives, checked by the CA.
//!
//! The CA takes exactly two things from a CSR — the public key and, if
//! present, the SPIFFE ID it asks for — and only after the CSR's signature
//! proves possession of the key. Everything else in the certificate comes
//! from the CA's own template, so a CSR cannot smuggle in extensions.

use rcgen::{CertificateParams, SanType};
use rustls_pki_types::CertificateSigningRequestDer;
use ward_core::SpiffeId;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::keys::PrivateKey;

/// Smallest RSA modulus accepted in a CSR.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest CSR accepted, in bytes; real ones are well under 1 KiB.
pub const MAX_CSR_LEN: usize = 16 * 1024;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// Why a CSR was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    /// Not a parseable PKCS#10 request.
    #[error("CSR does not parse as PKCS#10: {0}")]
    Malformed(String),
    /// Larger than [`MAX_CSR_LEN`].
    #[error("CSR is {0} bytes; the limit is {MAX_CSR_LEN}")]
    TooLarge(usize),
    /// The self-signature does not verify: the requester may not hold the key.
    #[error("CSR signature does not verify against its own public key")]
    BadSignature,
    /// The key is of a weak or unsupported type.
    #[error(
        "CSR key is weak or unsupported ({0}); use ECDSA P-256/P-384, Ed25519, or RSA >= 2048 bits"
    )]
    WeakKey(String),
    /// The CSR names a SPIFFE ID other than the one this caller may get.
    #[error("CSR asks for {requested} but this caller is authorized only for {authorized}")]
    IdentityMismatch {
        /// What the CSR asked for.
        requested: String,
        /// What the token or current SVID allows.
        authorized: SpiffeId,
    },
    /// More than one URI SAN, or a SAN type Ward does not issue.
    #[error("CSR asks for {0}; Ward issues exactly one URI SAN (the SPIFFE ID) and nothing else")]
    UnsupportedSan(String),
    /// The CSR asks for a CA certificate or certificate-signing key usage.
    #[error("CSR asks for a CA certificate ({0}); SVIDs are leaf certificates only")]
    CaRequested(&'static str),
    /// Building the CSR failed (caller side).
    #[error("building CSR failed: {0}")]
    Build(String),
}

/// A CSR that passed every check: its key, and the ID to issue.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    /// DER SubjectPublicKeyInfo of the requester's key.
    pub public_key_spki: Vec<u8>,
    /// The SPIFFE ID the certificate will carry.
    pub spiffe_id: SpiffeId,
}

/// Builds a CSR for `id`, signed by `key`. Used by proxies when enrolling
/// and renewing; the key never leaves the caller.
pub fn create(
    key: &PrivateKey,
    id: &SpiffeId,
) -> Result<CertificateSigningRequestDer<'static>, CsrError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let uri = rcgen::string::Ia5String::try_from(id.as_str())
        .map_err(|e| CsrError::Build(e.to_string()))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params
        .serialize_request(key.rcgen())
        .map_err(|e| CsrError::Build(e.to_string()))?;
    Ok(CertificateSigningRequestDer::from(csr.der().to_vec()))
}

/// Parses and checks a CSR for a caller authorized as `authorized`.
pub fn check(der: &[u8], authorized: &SpiffeId) -> Result<CheckedCsr, CsrError> {
    if der.len() > MAX_CSR_LEN {
        return Err(CsrError::TooLarge(der.len()));
    }
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    check_key(&csr)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let mut requested: Option<&str> = None;
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(uri) if requested.is_none() => requested = Some(uri),
                        GeneralName::URI(_) => {
                            return Err(CsrError::UnsupportedSan("several URI SANs".to_owned()));
                        }
                        other => return Err(CsrError::UnsupportedSan(format!("SAN {other}"))),
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err(CsrError::CaRequested("basicConstraints cA=true"));
            }
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                return Err(CsrError::CaRequested("keyCertSign or cRLSign key usage"));
            }
            _ => {}
        }
    }
    if let Some(uri) = requested
        && uri != authorized.as_str()
    {
        return Err(CsrError::IdentityMismatch {
            requested: uri.to_owned(),
            authorized: authorized.clone(),
        });
    }
    Ok(CheckedCsr {
        public_key_spki: csr.certification_request_info.subject_pki.raw.to_vec(),
        spiffe_id: authorized.clone(),
    })
}

fn check_key(csr: &X509CertificationRequest<'_>) -> Result<(), CsrError> {
    let spki = &csr.certification_request_info.subject_pki;
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_P256 | OID_P384 => Ok(()),
                other => Err(CsrError::WeakKey(format!("EC curve {other}"))),
            }
        }
        OID_ED25519 => Ok(()),
        OID_RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= MIN_RSA_BITS => Ok(()),
            Ok(PublicKey::RSA(rsa)) => {
                Err(CsrError::WeakKey(format!("RSA {} bits", rsa.key_size())))
            }
            _ => Err(CsrError::WeakKey("unparseable RSA key".to_owned())),
        },
        other => Err(CsrError::WeakKey(format!("key algorithm {other}"))),
    }
}
