//! Certificate chain verification input: arbitrary bytes as leaf and
//! intermediate must be refused cleanly, never panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rustls_pki_types::{CertificateDer, UnixTime};
use ward_identity::ca::{CaOptions, CertificateAuthority};
use ward_identity::verify::{AnyMember, ChainVerifier, Usage};
use ward_identity::{TrustBundle, TrustDomain};

static VERIFIER: LazyLock<ChainVerifier> = LazyLock::new(|| {
    let td = TrustDomain::new("fuzz.test").unwrap();
    let ca = CertificateAuthority::generate(&td, &CaOptions::default()).unwrap().ca;
    ChainVerifier::new(&TrustBundle::new(td, vec![ca.root().clone()], vec![])).unwrap()
});

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (leaf, rest) = data.split_at(split);
    let _ = ward_identity::svid::parse_leaf(leaf);
    let leaf = CertificateDer::from(leaf);
    let intermediate = [CertificateDer::from(rest)];
    let _ = VERIFIER.verify(&leaf, &intermediate, Usage::Client, UnixTime::now(), &AnyMember);
});
