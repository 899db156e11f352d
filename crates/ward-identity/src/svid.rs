//! X.509-SVIDs: the certificate chains that carry a SPIFFE ID, read by the
//! rules of the X.509-SVID specification
//! (<https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md>).
//!
//! [`parse_leaf`] is the one place Ward reads identity out of a certificate;
//! chain trust is [`crate::verify`]'s job.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use ward_core::{IdError, SpiffeId};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// Why a certificate is not a valid X.509-SVID leaf, or a chain not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SvidError {
    /// The DER did not parse as one X.509 certificate.
    #[error("certificate does not parse as X.509: {0}")]
    Malformed(String),
    /// No URI SAN.
    #[error("certificate has no URI SAN, so it carries no SPIFFE ID")]
    NoUriSan,
    /// More than one URI SAN.
    #[error("certificate has {0} URI SANs; an X.509-SVID must have exactly one")]
    MultipleUriSans(usize),
    /// The URI SAN is not a SPIFFE ID.
    #[error("URI SAN {uri:?} is not a valid SPIFFE ID: {source}")]
    BadSpiffeId {
        /// The SAN as found.
        uri: String,
        /// Which rule it broke.
        source: IdError,
    },
    /// The SPIFFE ID names only a trust domain.
    #[error("leaf SPIFFE ID {0} has no path; workload SVIDs must name a workload")]
    NoPath(SpiffeId),
    /// A CA certificate presented as a leaf.
    #[error("certificate is a CA (basicConstraints cA=true) and cannot be used as a leaf SVID")]
    CaAsLeaf,
    /// Missing the digitalSignature key usage.
    #[error("leaf lacks the digitalSignature key usage")]
    MissingDigitalSignature,
    /// The leaf may sign certificates or CRLs.
    #[error("leaf has keyCertSign or cRLSign key usage, which X.509-SVID leaves must not")]
    SigningUsageOnLeaf,
    /// An empty chain.
    #[error("certificate chain is empty")]
    EmptyChain,
    /// PEM input had no certificates or did not parse.
    #[error("{path}: {reason}")]
    Pem {
        /// The file (or `<input>`).
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// A certificate serial number, as lowercase hex without separators.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Serial(String);

impl Serial {
    /// From the serial's big-endian bytes. Leading zero bytes (DER's sign
    /// padding) are dropped so one serial has one spelling.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        use std::fmt::Write;
        let start = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        let bytes = bytes.get(start..).unwrap_or_default();
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What Ward reads from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    /// The SPIFFE ID from the single URI SAN.
    pub spiffe_id: SpiffeId,
    /// Serial number.
    pub serial: Serial,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Parses a DER certificate and applies the X.509-SVID leaf rules: exactly
/// one URI SAN holding a SPIFFE ID with a path; not a CA; digitalSignature
/// and neither keyCertSign nor cRLSign.
pub fn parse_leaf(der: &[u8]) -> Result<LeafInfo, SvidError> {
    let cert = parse_one(der)?;
    let spiffe_id = leaf_spiffe_id(&cert)?;
    let bc = cert
        .basic_constraints()
        .map_err(|e| SvidError::Malformed(e.to_string()))?;
    if bc.is_some_and(|bc| bc.value.ca) {
        return Err(SvidError::CaAsLeaf);
    }
    let ku = cert
        .key_usage()
        .map_err(|e| SvidError::Malformed(e.to_string()))?
        .ok_or(SvidError::MissingDigitalSignature)?;
    if !ku.value.digital_signature() {
        return Err(SvidError::MissingDigitalSignature);
    }
    if ku.value.key_cert_sign() || ku.value.crl_sign() {
        return Err(SvidError::SigningUsageOnLeaf);
    }
    let validity = cert.validity();
    Ok(LeafInfo {
        spiffe_id,
        serial: Serial::from_bytes(cert.raw_serial()),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// The trust domain a CA certificate names in its URI SAN (`spiffe://<td>`,
/// as SPIFFE recommends and Ward's CA writes), so a trust bundle file alone
/// tells a new proxy which trust domain it joins.
pub fn authority_trust_domain(der: &[u8]) -> Result<ward_core::TrustDomain, SvidError> {
    let cert = parse_one(der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| SvidError::Malformed(e.to_string()))?
        .ok_or(SvidError::NoUriSan)?;
    let uri = san
        .value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .ok_or(SvidError::NoUriSan)?;
    let id = SpiffeId::new(uri).map_err(|source| SvidError::BadSpiffeId {
        uri: uri.to_owned(),
        source,
    })?;
    Ok(id.trust_domain().clone())
}

/// When a certificate expires (unix seconds).
pub fn not_after(der: &[u8]) -> Result<i64, SvidError> {
    Ok(parse_one(der)?.validity().not_after.timestamp())
}

pub(crate) fn parse_one(der: &[u8]) -> Result<X509Certificate<'_>, SvidError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| SvidError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SvidError::Malformed(format!(
            "{} bytes of trailing data after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

fn leaf_spiffe_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| SvidError::Malformed(e.to_string()))?
        .ok_or(SvidError::NoUriSan)?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let uri = uris.next().ok_or(SvidError::NoUriSan)?;
    let extra = uris.count();
    if extra > 0 {
        return Err(SvidError::MultipleUriSans(extra + 1));
    }
    let id = SpiffeId::new(uri).map_err(|source| SvidError::BadSpiffeId {
        uri: uri.to_owned(),
        source,
    })?;
    if id.path().is_empty() {
        return Err(SvidError::NoPath(id));
    }
    Ok(id)
}

/// An X.509-SVID: a leaf certificate and the intermediates up to (not
/// including) a trust-bundle root. The private key is kept separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Svid {
    chain: Vec<CertificateDer<'static>>,
    leaf: LeafInfo,
}

impl X509Svid {
    /// Builds an SVID from a DER chain, leaf first, checking the leaf rules.
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Result<Self, SvidError> {
        let leaf = parse_leaf(chain.first().ok_or(SvidError::EmptyChain)?)?;
        Ok(Self { chain, leaf })
    }

    /// Parses PEM text holding the chain, leaf first.
    pub fn from_pem(pem: &str) -> Result<Self, SvidError> {
        Self::from_chain(certs_from_pem(pem.as_bytes(), Path::new("<input>"))?)
    }

    /// Reads a PEM chain file.
    pub fn read_pem(path: &Path) -> Result<Self, SvidError> {
        let bytes = std::fs::read(path).map_err(|e| SvidError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_chain(certs_from_pem(&bytes, path)?)
    }

    /// The chain as PEM text, leaf first.
    pub fn to_pem(&self) -> String {
        certs_to_pem(&self.chain)
    }

    /// The DER chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.leaf.spiffe_id
    }

    /// What the leaf says.
    pub fn leaf(&self) -> &LeafInfo {
        &self.leaf
    }
}

/// Parses every `CERTIFICATE` block in PEM input; at least one is required.
pub fn certs_from_pem(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, SvidError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SvidError::Pem {
            path: path.to_owned(),
            reason: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(SvidError::Pem {
            path: path.to_owned(),
            reason: "no `BEGIN CERTIFICATE` block found".to_owned(),
        });
    }
    Ok(certs)
}

/// Encodes certificates as concatenated PEM blocks.
pub fn certs_to_pem(certs: &[CertificateDer<'_>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for cert in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
