//! Test support for Ward. Never a dependency of production code.
//!
//! [`TestPki`] builds certificate chains straight from rcgen, independently
//! of Ward's own CA, so tests can hand Ward's verifiers exactly the broken
//! certificates an attacker would: expired, not yet valid, CA-as-leaf, two
//! URI SANs, no URI SAN, from an unknown authority, for another trust domain.
//! [`postgres_url`] gives each PostgreSQL test its own empty schema.
//! [`published_files`] reads a running server's file-backed log.
//! Harnesses for in-process servers and proxies join as those parts land.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failure here is a broken test setup"
)]

mod files;
mod postgres;

pub use files::published_files;
pub use postgres::{postgres_url, postgres_url_blocking};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A root and intermediate made directly with rcgen.
pub struct TestPki {
    root: CertificateDer<'static>,
    intermediate: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// What a leaf made by [`TestPki::leaf`] looks like. Start from
/// [`LeafSpec::svid`] (a valid X.509-SVID) and break one thing.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// URI SANs, in order.
    pub uris: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// Whether basicConstraints says cA=true.
    pub is_ca: bool,
    /// Key usages.
    pub key_usages: Vec<KeyUsagePurpose>,
    /// Extended key usages.
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    /// Validity start.
    pub not_before: OffsetDateTime,
    /// Validity end.
    pub not_after: OffsetDateTime,
}

impl LeafSpec {
    /// A valid X.509-SVID for `id`, valid from a minute ago for an hour.
    pub fn svid(id: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            uris: vec![id.to_owned()],
            dns: Vec::new(),
            is_ca: false,
            key_usages: vec![KeyUsagePurpose::DigitalSignature],
            extended_key_usages: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::hours(1),
        }
    }
}

/// A leaf chain and its private key.
pub struct TestLeaf {
    /// Leaf first, then the intermediate.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER of the leaf key.
    pub key_pkcs8: Vec<u8>,
}

impl TestLeaf {
    /// The key in the form rustls takes.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

impl TestPki {
    /// A fresh root and intermediate for `trust_domain`.
    pub fn new(trust_domain: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        let root_key = KeyPair::generate().expect("root key");
        let mut root_params = ca_params(&format!("test root {trust_domain}"), now);
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root = root_params.self_signed(&root_key).expect("root cert");
        let root_issuer = Issuer::new(root_params, root_key);

        let int_key = KeyPair::generate().expect("intermediate key");
        let mut int_params = ca_params(&format!("test intermediate {trust_domain}"), now);
        int_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        int_params.use_authority_key_identifier_extension = true;
        let intermediate = int_params
            .signed_by(&int_key, &root_issuer)
            .expect("intermediate cert");
        Self {
            root: root.der().clone(),
            intermediate: intermediate.der().clone(),
            issuer: Issuer::new(int_params, int_key),
        }
    }

    /// The root certificate.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// The intermediate certificate.
    pub fn intermediate(&self) -> &CertificateDer<'static> {
        &self.intermediate
    }

    /// Issues a leaf as `spec` says, signed by the intermediate.
    pub fn leaf(&self, spec: &LeafSpec) -> TestLeaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Ward test");
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.subject_alt_names = spec
            .uris
            .iter()
            .map(|u| SanType::URI(u.as_str().try_into().expect("ia5 uri")))
            .chain(
                spec.dns
                    .iter()
                    .map(|d| SanType::DnsName(d.as_str().try_into().expect("ia5 dns"))),
            )
            .collect();
        params.is_ca = if spec.is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = spec.key_usages.clone();
        params.extended_key_usages = spec.extended_key_usages.clone();
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        TestLeaf {
            chain: vec![cert.der().clone(), self.intermediate.clone()],
            key_pkcs8: key.serialize_der(),
        }
    }
}

fn ca_params(cn: &str, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(30);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}
