//! Chain and validity checks cross-examined by OpenSSL's verifier: what Ward
//! accepts OpenSSL accepts, and the expired / not-yet-valid / unknown-authority
//! chains both refuse.

use std::path::Path;
use std::process::Command;

use rustls_pki_types::{CertificateDer, UnixTime};
use time::Duration;
use ward_identity::TrustBundle;
use ward_identity::svid::certs_to_pem;
use ward_identity::verify::{AnyMember, ChainVerifier, Usage};
use ward_testkit::{LeafSpec, TestPki};

use crate::common::{TD, agent, fixture, td};

fn openssl_verifies(dir: &Path, root: &CertificateDer<'_>, chain: &[CertificateDer<'_>]) -> bool {
    let write = |name: &str, certs: &[CertificateDer<'_>]| {
        let path = dir.join(name);
        std::fs::write(&path, certs_to_pem(certs)).unwrap();
        path
    };
    let root = write("root.pem", std::slice::from_ref(root));
    let untrusted = write("untrusted.pem", &chain[1..]);
    let leaf = write("leaf.pem", &chain[..1]);
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&untrusted)
        .arg(&leaf)
        .output()
        .expect("openssl must be installed (Debian package openssl)");
    if !out.status.success() {
        eprintln!(
            "openssl verify: {}",
            String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

fn ward_verifies(root: &CertificateDer<'static>, chain: &[CertificateDer<'_>]) -> bool {
    let verifier = ChainVerifier::new(&TrustBundle::new(td(), vec![root.clone()], vec![])).unwrap();
    verifier
        .verify(
            &chain[0],
            &chain[1..],
            Usage::Client,
            UnixTime::now(),
            &AnyMember,
        )
        .is_ok()
}

#[test]
fn ward_issued_svid_verifies_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    let (svid, _) = f.svid("a");
    assert!(openssl_verifies(dir.path(), f.ca.root(), svid.chain()));
    assert!(ward_verifies(f.ca.root(), svid.chain()));
}

#[test]
fn time_and_authority_cases_agree_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(TD);
    let rogue = TestPki::new(TD);
    let now = time::OffsetDateTime::now_utc();
    let base = LeafSpec::svid(&agent("a").to_string());
    let good = pki.leaf(&base);
    let expired = pki.leaf(&LeafSpec {
        not_before: now - Duration::hours(2),
        not_after: now - Duration::hours(1),
        ..base.clone()
    });
    let future = pki.leaf(&LeafSpec {
        not_before: now + Duration::hours(1),
        not_after: now + Duration::hours(2),
        ..base.clone()
    });
    let unknown = rogue.leaf(&base);
    for (name, chain, want) in [
        ("good", &good.chain, true),
        ("expired", &expired.chain, false),
        ("not yet valid", &future.chain, false),
        ("unknown authority", &unknown.chain, false),
    ] {
        assert_eq!(
            openssl_verifies(dir.path(), pki.root(), chain),
            want,
            "openssl: {name}"
        );
        assert_eq!(ward_verifies(pki.root(), chain), want, "ward: {name}");
    }
}
