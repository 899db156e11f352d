//! Ward's certificate authority: a root and an online intermediate that turn
//! checked CSRs into X.509-SVIDs.
//!
//! The root signs only intermediates; the intermediate signs SVIDs. Both sign
//! through [`Signer`], so either key can move into a KMS or HSM. Issued
//! leaves follow the X.509-SVID specification: exactly one URI SAN, cA=false,
//! digitalSignature, serverAuth + clientAuth, a 128-bit random serial, and a
//! validity that never outlives the intermediate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use ward_core::{SpiffeId, TrustDomain};

use crate::csr::{self, CsrError};
use crate::keys::{KeyAlgorithm, KeyError, PrivateKey};
use crate::signer::{RcgenSigner, Signer};
use crate::svid::{self, Serial, SvidError, X509Svid};

/// Default lifetime of an X.509-SVID: short, so a leaked key is useful briefly.
pub const DEFAULT_SVID_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest SVID the CA issues, whatever is asked.
pub const MAX_SVID_TTL: Duration = Duration::from_secs(24 * 3600);
/// How far `not_before` is backdated to tolerate clock skew between hosts.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);

const ROOT_FILE: &str = "root.crt.pem";
const ROOT_KEY_FILE: &str = "root.key.pem";
const INTERMEDIATE_FILE: &str = "intermediate.crt.pem";
const INTERMEDIATE_KEY_FILE: &str = "intermediate.key.pem";

/// What went wrong in the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CSR was refused.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// A key could not be made, read or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A CA certificate on disk is unusable.
    #[error("CA certificate {path}: {source}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: SvidError,
    },
    /// Building or signing a certificate failed.
    #[error("certificate signing failed: {0}")]
    Signing(String),
    /// The requested identity cannot be issued here.
    #[error("{0}")]
    Refused(String),
    /// File I/O.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Lifetimes and algorithm for a new CA.
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// Key algorithm for root and intermediate.
    pub algorithm: KeyAlgorithm,
    /// Root validity.
    pub root_ttl: Duration,
    /// Intermediate validity.
    pub intermediate_ttl: Duration,
}

impl Default for CaOptions {
    fn default() -> Self {
        Self {
            algorithm: KeyAlgorithm::EcdsaP256,
            root_ttl: Duration::from_secs(10 * 365 * 24 * 3600),
            intermediate_ttl: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// Adapter so an `Issuer` can own its signer (rcgen's signer is borrowed).
struct SharedSigner(Arc<dyn Signer>);

impl rcgen::PublicKeyData for SharedSigner {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm().rcgen()
    }
}

impl rcgen::SigningKey for SharedSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        rcgen::SigningKey::sign(&RcgenSigner(self.0.as_ref()), msg)
    }
}

/// The CA that issues SVIDs for one trust domain.
pub struct CertificateAuthority {
    trust_domain: TrustDomain,
    root: CertificateDer<'static>,
    intermediate: CertificateDer<'static>,
    intermediate_not_before: OffsetDateTime,
    intermediate_not_after: OffsetDateTime,
    algorithm: KeyAlgorithm,
    issuer: Issuer<'static, SharedSigner>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .field("intermediate_not_after", &self.intermediate_not_after)
            .finish_non_exhaustive()
    }
}

/// A freshly generated CA with its keys, before they are stored.
pub struct GeneratedCa {
    /// The CA, ready to sign.
    pub ca: CertificateAuthority,
    /// The root key; keep it offline when you can.
    pub root_key: PrivateKey,
    /// The intermediate key, also held inside `ca` through its signer.
    pub intermediate_key: Arc<PrivateKey>,
}

impl CertificateAuthority {
    /// Creates a new root and intermediate for `trust_domain`.
    pub fn generate(
        trust_domain: &TrustDomain,
        options: &CaOptions,
    ) -> Result<GeneratedCa, CaError> {
        let now = OffsetDateTime::now_utc();
        let root_key = PrivateKey::generate(options.algorithm)?;
        let mut root_params = ca_params(trust_domain, "root", now, options.root_ttl)?;
        root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        let root_cert = root_params
            .self_signed(root_key.rcgen())
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let (ca, intermediate_key) =
            Self::new_intermediate(trust_domain, &root_cert.der().clone(), &root_key, options)?;
        Ok(GeneratedCa {
            ca,
            root_key,
            intermediate_key,
        })
    }

    /// Assembles a CA from its certificates and the intermediate's signer.
    pub fn from_parts(
        trust_domain: TrustDomain,
        root: CertificateDer<'static>,
        intermediate: CertificateDer<'static>,
        signer: Arc<dyn Signer>,
    ) -> Result<Self, CaError> {
        let cert_err = |source| CaError::Cert {
            path: PathBuf::from("<intermediate>"),
            source,
        };
        let parsed = svid::parse_one(&intermediate).map_err(cert_err)?;
        let validity = parsed.validity();
        let intermediate_not_before = validity.not_before.to_datetime();
        let intermediate_not_after = validity.not_after.to_datetime();
        let algorithm = signer.algorithm();
        let issuer = Issuer::from_ca_cert_der(&intermediate, SharedSigner(signer))
            .map_err(|e| CaError::Signing(e.to_string()))?;
        Ok(Self {
            trust_domain,
            root,
            intermediate,
            intermediate_not_before,
            intermediate_not_after,
            algorithm,
            issuer,
        })
    }

    /// Writes certificates and keys (keys 0600) into `dir`, creating it 0700.
    pub fn write(generated: &GeneratedCa, dir: &Path) -> Result<(), CaError> {
        use std::os::unix::fs::DirBuilderExt;
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| CaError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating", dir))?;
        let ca = &generated.ca;
        for (name, cert) in [(ROOT_FILE, &ca.root), (INTERMEDIATE_FILE, &ca.intermediate)] {
            let path = dir.join(name);
            crate::keys::write_file_atomic(
                &path,
                svid::certs_to_pem(std::slice::from_ref(cert)).as_bytes(),
                0o644,
            )
            .map_err(io("writing", &path))?;
        }
        generated.root_key.write_pem(&dir.join(ROOT_KEY_FILE))?;
        generated
            .intermediate_key
            .write_pem(&dir.join(INTERMEDIATE_KEY_FILE))?;
        Ok(())
    }

    /// Loads a CA written by [`CertificateAuthority::write`]. The root key is
    /// not read: only the intermediate signs SVIDs.
    pub fn load(dir: &Path, trust_domain: TrustDomain) -> Result<Self, CaError> {
        let root = read_cert(&dir.join(ROOT_FILE))?;
        let intermediate = read_cert(&dir.join(INTERMEDIATE_FILE))?;
        let key = PrivateKey::read_pem(&dir.join(INTERMEDIATE_KEY_FILE))?;
        Self::from_parts(trust_domain, root, intermediate, Arc::new(key))
    }

    /// A new intermediate under an existing root (CA rotation without a new
    /// root): same trust bundle, new issuing key. Its validity never
    /// outlives the root's.
    pub fn new_intermediate(
        trust_domain: &TrustDomain,
        root: &CertificateDer<'static>,
        root_key: &PrivateKey,
        options: &CaOptions,
    ) -> Result<(Self, Arc<PrivateKey>), CaError> {
        let now = OffsetDateTime::now_utc();
        let root_not_after = svid::parse_one(root)
            .map_err(|source| CaError::Cert {
                path: PathBuf::from("<root>"),
                source,
            })?
            .validity()
            .not_after
            .to_datetime();
        let root_issuer = Issuer::from_ca_cert_der(root, RcgenSigner(root_key))
            .map_err(|e| CaError::Signing(format!("root certificate: {e}")))?;
        let key = Arc::new(PrivateKey::generate(options.algorithm)?);
        let mut params = ca_params(trust_domain, "intermediate", now, options.intermediate_ttl)?;
        params.not_after = params.not_after.min(root_not_after);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(key.rcgen(), &root_issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let ca = Self::from_parts(
            trust_domain.clone(),
            root.clone(),
            cert.der().clone(),
            key.clone(),
        )?;
        Ok((ca, key))
    }

    /// Writes one authority into `dir` (created 0700): the root certificate,
    /// the root key only when given (a rotation that keeps the root leaves
    /// its key where it was), the intermediate and its key (0600).
    pub fn write_authority(
        &self,
        dir: &Path,
        root_key: Option<&PrivateKey>,
        intermediate_key: &PrivateKey,
    ) -> Result<(), CaError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| CaError::Io {
                action: "creating",
                path: dir.to_owned(),
                source,
            })?;
        for (name, cert) in [
            (ROOT_FILE, &self.root),
            (INTERMEDIATE_FILE, &self.intermediate),
        ] {
            let path = dir.join(name);
            crate::keys::write_file_atomic(
                &path,
                svid::certs_to_pem(std::slice::from_ref(cert)).as_bytes(),
                0o644,
            )
            .map_err(|source| CaError::Io {
                action: "writing",
                path,
                source,
            })?;
        }
        if let Some(key) = root_key {
            key.write_pem(&dir.join(ROOT_KEY_FILE))?;
        }
        intermediate_key.write_pem(&dir.join(INTERMEDIATE_KEY_FILE))?;
        Ok(())
    }

    /// The root certificate and, when present, the root key stored in `dir`
    /// (a CA directory or one authority's directory).
    pub fn read_root(dir: &Path) -> Result<(CertificateDer<'static>, Option<PrivateKey>), CaError> {
        let root = read_cert(&dir.join(ROOT_FILE))?;
        let key_path = dir.join(ROOT_KEY_FILE);
        let key = if key_path.exists() {
            Some(PrivateKey::read_pem(&key_path)?)
        } else {
            None
        };
        Ok((root, key))
    }

    /// When the root expires.
    pub fn root_not_after(&self) -> Result<OffsetDateTime, CaError> {
        Ok(svid::parse_one(&self.root)
            .map_err(|source| CaError::Cert {
                path: PathBuf::from("<root>"),
                source,
            })?
            .validity()
            .not_after
            .to_datetime())
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The root certificate (what goes in the trust bundle).
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// The intermediate certificate (sent with every SVID).
    pub fn intermediate(&self) -> &CertificateDer<'static> {
        &self.intermediate
    }

    /// The intermediate key's algorithm (a rotation keeps it).
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// When the intermediate expires; no SVID outlives it.
    pub fn intermediate_not_after(&self) -> OffsetDateTime {
        self.intermediate_not_after
    }

    /// Checks `csr_der` for a caller authorized as `authorized` and signs an
    /// X.509-SVID valid for `ttl` (capped at [`MAX_SVID_TTL`] and at the
    /// intermediate's own expiry) from `now`.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        authorized: &SpiffeId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<X509Svid, CaError> {
        if !authorized.is_member_of(&self.trust_domain) {
            return Err(CaError::Refused(format!(
                "{authorized} is not in trust domain {}; this CA issues only for {}",
                self.trust_domain, self.trust_domain
            )));
        }
        if authorized.path().is_empty() {
            return Err(CaError::Refused(format!(
                "{authorized} names only the trust domain; an SVID must name a workload"
            )));
        }
        let checked = csr::check(csr_der, authorized)?;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(&checked.public_key_spki)
            .map_err(|e| CaError::Signing(format!("CSR key: {e}")))?;
        if now >= self.intermediate_not_after || now < self.intermediate_not_before {
            return Err(CaError::Refused(
                "the intermediate CA is outside its validity; rotate the CA".to_owned(),
            ));
        }
        let ttl = ttl.min(MAX_SVID_TTL);
        let not_after = (now + ttl).min(self.intermediate_not_after);
        let not_before = (now - CLOCK_SKEW).max(self.intermediate_not_before);

        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        let mut serial = [0u8; 16];
        crate::provider::random(&mut serial)
            .map_err(|_| CaError::Signing("random serial generation failed".to_owned()))?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Ward");
        params.subject_alt_names = vec![san_uri(&checked.spiffe_id)?];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let leaf = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let svid = X509Svid::from_chain(vec![leaf.der().clone(), self.intermediate.clone()])
            .map_err(|source| CaError::Cert {
                path: PathBuf::from("<issued>"),
                source,
            })?;
        debug_assert_eq!(svid.leaf().serial, Serial::from_bytes(&serial));
        tracing::debug!(spiffe_id = %svid.spiffe_id(), serial = %svid.leaf().serial, "issued X.509-SVID");
        Ok(svid)
    }
}

/// The first certificate of a PEM file.
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>, CaError> {
    let pem = std::fs::read(path).map_err(|source| CaError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    let mut certs = svid::certs_from_pem(&pem, path).map_err(|source| CaError::Cert {
        path: path.to_owned(),
        source,
    })?;
    certs.truncate(1);
    certs.pop().ok_or(CaError::Cert {
        path: path.to_owned(),
        source: SvidError::EmptyChain,
    })
}

/// Names an authority by its intermediate: the first 16 hex digits of the
/// certificate's SHA-256. Proxies compare it with their SVID's issuer to
/// know they must re-enroll after a rotation.
pub fn authority_id(intermediate: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, intermediate);
    digest
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of a certificate, hex (how `ward ca status` names roots).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn san_uri(id: &SpiffeId) -> Result<SanType, CaError> {
    rcgen::string::Ia5String::try_from(id.as_str())
        .map(SanType::URI)
        .map_err(|e| CaError::Signing(e.to_string()))
}

fn ca_params(
    td: &TrustDomain,
    role: &str,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + ttl;
    let mut serial = [0u8; 16];
    crate::provider::random(&mut serial)
        .map_err(|_| CaError::Signing("random serial generation failed".to_owned()))?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Ward");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Ward {role} CA {td}"));
    // SPIFFE allows signing certificates to carry the trust domain's ID.
    params.subject_alt_names = vec![san_uri(&td.id())?];
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

#[cfg(test)]
mod tests;
