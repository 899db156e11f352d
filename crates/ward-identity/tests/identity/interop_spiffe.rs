//! Ward's SVIDs, JWT-SVIDs and bundles read by the `spiffe` crate, and the
//! bad cases refused there too.
//!
//! The `spiffe` crate checks X.509-SVID *structure* (URI SAN, CA flags, key
//! usage) and JWT-SVIDs fully, but does not verify X.509 chains or validity
//! periods; those cases are checked against OpenSSL in `interop_openssl`.

use base64::Engine;
use rcgen::KeyUsagePurpose;
use ward_identity::jwt::DEFAULT_JWT_TTL;
use ward_testkit::{LeafSpec, TestPki};

use crate::common::{TD, agent, fixture};

fn concat(chain: &[rustls_pki_types::CertificateDer<'_>]) -> Vec<u8> {
    chain.iter().flat_map(|c| c.as_ref().to_vec()).collect()
}

#[test]
fn our_x509_svid_parses_in_spiffe_crate() {
    let f = fixture();
    let (svid, key) = f.svid("planner");
    let theirs =
        spiffe::X509Svid::parse_from_der(&concat(svid.chain()), key.to_pkcs8_der().secret_der())
            .unwrap();
    assert_eq!(theirs.spiffe_id().to_string(), agent("planner").to_string());
    assert_eq!(theirs.cert_chain().len(), 2);
}

#[test]
fn our_bundle_parses_in_spiffe_crate() {
    let f = fixture();
    let json = f.bundle.to_json().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let td = spiffe::TrustDomain::new(TD).unwrap();
    // X.509 authorities: the x5c of every x509-svid key.
    let roots: Vec<u8> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["use"] == "x509-svid")
        .flat_map(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k["x5c"][0].as_str().unwrap())
                .unwrap()
        })
        .collect();
    let x509 = spiffe::X509Bundle::parse_from_der(td.clone(), &roots).unwrap();
    assert_eq!(x509.authorities().len(), 1);
    assert_eq!(x509.authorities()[0].as_ref(), f.ca.root().as_ref());
    // JWT authorities: the jwt-svid keys as a JWKS (how SPIFFE serves JWT bundles).
    let jwt_keys: Vec<_> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["use"] == "jwt-svid")
        .cloned()
        .collect();
    let jwks = serde_json::json!({ "keys": jwt_keys }).to_string();
    let bundle = spiffe::JwtBundle::from_jwt_authorities(td, jwks.as_bytes()).unwrap();
    assert!(bundle.find_jwt_authority(&f.jwt.authority().kid).is_some());
}

fn spiffe_jwt_bundle_set(f: &crate::common::Fixture) -> spiffe::JwtBundleSet {
    let json = f.bundle.to_json().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let jwt_keys: Vec<_> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["use"] == "jwt-svid")
        .cloned()
        .collect();
    let jwks = serde_json::json!({ "keys": jwt_keys }).to_string();
    let bundle = spiffe::JwtBundle::from_jwt_authorities(
        spiffe::TrustDomain::new(TD).unwrap(),
        jwks.as_bytes(),
    )
    .unwrap();
    let mut set = spiffe::JwtBundleSet::new();
    set.add_bundle(bundle);
    set
}

#[test]
fn our_jwt_svid_validates_in_spiffe_crate_and_bad_ones_do_not() {
    let f = fixture();
    let set = spiffe_jwt_bundle_set(&f);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = f
        .jwt
        .issue(&agent("planner"), &["tools"], DEFAULT_JWT_TTL, now)
        .unwrap();
    let svid = spiffe::JwtSvid::parse_and_validate(&token, &set, &["tools"]).unwrap();
    assert_eq!(svid.spiffe_id().to_string(), agent("planner").to_string());

    // Wrong audience.
    assert!(spiffe::JwtSvid::parse_and_validate(&token, &set, &["other"]).is_err());
    // Expired an hour ago.
    let old = f
        .jwt
        .issue(&agent("planner"), &["tools"], DEFAULT_JWT_TTL, now - 3600)
        .unwrap();
    assert!(spiffe::JwtSvid::parse_and_validate(&old, &set, &["tools"]).is_err());
    // Signed by an authority the bundle does not hold.
    let rogue = fixture();
    let forged = rogue
        .jwt
        .issue(&agent("planner"), &["tools"], DEFAULT_JWT_TTL, now)
        .unwrap();
    assert!(spiffe::JwtSvid::parse_and_validate(&forged, &set, &["tools"]).is_err());
    // Subject in another trust domain: no bundle for it.
    let foreign = ward_identity::SpiffeId::new("spiffe://evil.test/agent/a").unwrap();
    let token = f
        .jwt
        .issue(&foreign, &["tools"], DEFAULT_JWT_TTL, now)
        .unwrap();
    assert!(spiffe::JwtSvid::parse_and_validate(&token, &set, &["tools"]).is_err());
}

/// Structural bad cases: refused by Ward and by the `spiffe` crate alike.
#[test]
fn structural_bad_cases_fail_in_spiffe_crate_too() {
    let pki = TestPki::new(TD);
    let base = LeafSpec::svid(&agent("a").to_string());
    let cases = [
        (
            "CA as leaf",
            LeafSpec {
                is_ca: true,
                key_usages: vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                ],
                ..base.clone()
            },
        ),
        (
            "two URI SANs",
            LeafSpec {
                uris: vec![agent("a").to_string(), agent("b").to_string()],
                ..base.clone()
            },
        ),
        (
            "no URI SAN",
            LeafSpec {
                uris: vec![],
                dns: vec!["a.ward.test".into()],
                ..base.clone()
            },
        ),
        (
            "missing digitalSignature",
            LeafSpec {
                key_usages: vec![KeyUsagePurpose::KeyEncipherment],
                ..base.clone()
            },
        ),
    ];
    for (name, spec) in cases {
        let leaf = pki.leaf(&spec);
        assert!(
            ward_identity::svid::parse_leaf(&leaf.chain[0]).is_err(),
            "ward accepted {name}"
        );
        assert!(
            spiffe::X509Svid::parse_from_der(&concat(&leaf.chain), &leaf.key_pkcs8).is_err(),
            "spiffe crate accepted {name}"
        );
    }
    // And the good one passes both.
    let leaf = pki.leaf(&base);
    assert!(ward_identity::svid::parse_leaf(&leaf.chain[0]).is_ok());
    assert!(spiffe::X509Svid::parse_from_der(&concat(&leaf.chain), &leaf.key_pkcs8).is_ok());
}

#[test]
fn wrong_trust_domain_has_no_bundle_in_spiffe_crate() {
    let pki = TestPki::new("evil.test");
    let leaf = pki.leaf(&LeafSpec::svid("spiffe://evil.test/agent/a"));
    let theirs = spiffe::X509Svid::parse_from_der(&concat(&leaf.chain), &leaf.key_pkcs8).unwrap();
    let f = fixture();
    let mut set = spiffe::X509BundleSet::new();
    set.add_bundle(
        spiffe::X509Bundle::parse_from_der(
            spiffe::TrustDomain::new(TD).unwrap(),
            f.ca.root().as_ref(),
        )
        .unwrap(),
    );
    assert!(set.get(theirs.spiffe_id().trust_domain()).is_none());
}
