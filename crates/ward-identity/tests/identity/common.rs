//! Shared fixtures: a Ward CA and SVIDs it issued.

use time::OffsetDateTime;
use ward_identity::ca::{CaOptions, CertificateAuthority, DEFAULT_SVID_TTL};
use ward_identity::jwt::JwtSigner;
use ward_identity::{KeyAlgorithm, PrivateKey, SpiffeId, TrustBundle, TrustDomain, X509Svid, csr};

pub const TD: &str = "ward.test";

pub struct Fixture {
    pub ca: CertificateAuthority,
    pub jwt: JwtSigner,
    pub bundle: TrustBundle,
}

pub fn td() -> TrustDomain {
    TrustDomain::new(TD).unwrap()
}

pub fn agent(name: &str) -> SpiffeId {
    SpiffeId::new(&format!("spiffe://{TD}/agent/{name}")).unwrap()
}

pub fn fixture() -> Fixture {
    let ca = CertificateAuthority::generate(&td(), &CaOptions::default())
        .unwrap()
        .ca;
    let jwt = JwtSigner::new(&PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()).unwrap();
    let bundle = TrustBundle::new(td(), vec![ca.root().clone()], vec![jwt.authority()]);
    Fixture { ca, jwt, bundle }
}

impl Fixture {
    /// An SVID for `name` issued through the real CSR path.
    pub fn svid(&self, name: &str) -> (X509Svid, PrivateKey) {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let id = agent(name);
        let request = csr::create(&key, &id).unwrap();
        let svid = self
            .ca
            .sign_csr(&request, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
            .unwrap();
        (svid, key)
    }
}
