//! The chain verifier refuses every kind of bad peer certificate, each for
//! the right reason. Bad certificates come from `ward-testkit`, which builds
//! them with rcgen directly, not through Ward's CA.

use std::collections::HashSet;
use std::sync::Arc;

use rcgen::KeyUsagePurpose;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::Duration;
use ward_identity::svid::SvidError;
use ward_identity::verify::{AnyMember, ChainVerifier, ExactIds, TrustDomains, Usage, VerifyError};
use ward_identity::{TrustBundle, TrustDomain};
use ward_testkit::{LeafSpec, TestPki};

use crate::common::{TD, agent, fixture, td};

fn verify_with(
    pki: &TestPki,
    chain: &[CertificateDer<'static>],
) -> Result<ward_identity::PeerIdentity, VerifyError> {
    let bundle = TrustBundle::new(td(), vec![pki.root().clone()], vec![]);
    let verifier = ChainVerifier::new(&bundle).unwrap();
    verifier.verify(
        &chain[0],
        &chain[1..],
        Usage::Client,
        UnixTime::now(),
        &AnyMember,
    )
}

fn id(name: &str) -> String {
    agent(name).to_string()
}

#[test]
fn accepts_a_valid_svid_from_either_issuer() {
    let pki = TestPki::new(TD);
    let leaf = pki.leaf(&LeafSpec::svid(&id("a")));
    let peer = verify_with(&pki, &leaf.chain).unwrap();
    assert_eq!(peer.spiffe_id, agent("a"));

    let f = fixture();
    let (svid, _key) = f.svid("b");
    let verifier = ChainVerifier::new(&f.bundle).unwrap();
    let chain = svid.chain();
    for usage in [Usage::Client, Usage::Server] {
        let peer = verifier
            .verify(&chain[0], &chain[1..], usage, UnixTime::now(), &AnyMember)
            .unwrap();
        assert_eq!(peer.spiffe_id, agent("b"));
        assert_eq!(peer.serial, svid.leaf().serial);
    }
}

/// Recognises the refusal a case must produce.
type Expect = fn(&VerifyError) -> bool;

#[test]
fn refuses_each_bad_certificate_for_its_reason() {
    let pki = TestPki::new(TD);
    let now = time::OffsetDateTime::now_utc();
    let base = LeafSpec::svid(&id("a"));
    let cases: Vec<(&str, LeafSpec, Expect)> = vec![
        (
            "expired",
            LeafSpec {
                not_before: now - Duration::hours(2),
                not_after: now - Duration::hours(1),
                ..base.clone()
            },
            |e| {
                matches!(
                    e,
                    VerifyError::Chain {
                        source: webpki::Error::CertExpired { .. },
                        ..
                    }
                )
            },
        ),
        (
            "not yet valid",
            LeafSpec {
                not_before: now + Duration::hours(1),
                not_after: now + Duration::hours(2),
                ..base.clone()
            },
            |e| {
                matches!(
                    e,
                    VerifyError::Chain {
                        source: webpki::Error::CertNotValidYet { .. },
                        ..
                    }
                )
            },
        ),
        (
            "CA certificate as leaf",
            LeafSpec {
                is_ca: true,
                key_usages: vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                ],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::CaAsLeaf)),
        ),
        (
            "two URI SANs",
            LeafSpec {
                uris: vec![id("a"), id("b")],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::MultipleUriSans(2))),
        ),
        (
            "no URI SAN",
            LeafSpec {
                uris: vec![],
                dns: vec!["a.ward.test".into()],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::NoUriSan)),
        ),
        (
            "URI SAN that is not a SPIFFE ID",
            LeafSpec {
                uris: vec!["https://ward.test/agent/a".into()],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::BadSpiffeId { .. })),
        ),
        (
            "SPIFFE ID with dot segment",
            LeafSpec {
                uris: vec![format!("spiffe://{TD}/agent/../admin")],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::BadSpiffeId { .. })),
        ),
        (
            "trust-domain-only ID",
            LeafSpec {
                uris: vec![format!("spiffe://{TD}")],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::NoPath(_))),
        ),
        (
            "wrong trust domain",
            LeafSpec {
                uris: vec!["spiffe://evil.test/agent/a".into()],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::ForeignTrustDomain { .. }),
        ),
        (
            "missing digitalSignature",
            LeafSpec {
                key_usages: vec![KeyUsagePurpose::KeyEncipherment],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::MissingDigitalSignature)),
        ),
        (
            "leaf that may sign certificates",
            LeafSpec {
                key_usages: vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                ],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Svid(SvidError::SigningUsageOnLeaf)),
        ),
        (
            "server-only EKU used as client",
            LeafSpec {
                extended_key_usages: vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
                ..base.clone()
            },
            |e| matches!(e, VerifyError::Chain { .. }),
        ),
    ];
    for (name, spec, expected) in cases {
        let leaf = pki.leaf(&spec);
        let err = verify_with(&pki, &leaf.chain).expect_err(name);
        assert!(expected(&err), "{name}: wrong refusal: {err}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn refuses_chain_from_unknown_authority() {
    let trusted = TestPki::new(TD);
    let rogue = TestPki::new(TD);
    let leaf = rogue.leaf(&LeafSpec::svid(&id("a")));
    // The rogue CA has the same names as the trusted one, so webpki finds a
    // candidate issuer and the signature check is what fails.
    let err = verify_with(&trusted, &leaf.chain).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Chain {
                source: webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey,
                ..
            }
        ),
        "{err}"
    );
    // Dropping the intermediate does not help either.
    let err = verify_with(&trusted, &leaf.chain[..1]).unwrap_err();
    assert!(matches!(err, VerifyError::Chain { .. }), "{err}");
    // A leaf whose intermediate is presented but whose root we lack.
    let f = fixture();
    let (svid, _) = f.svid("x");
    let err = verify_with(&trusted, svid.chain()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Chain {
                source: webpki::Error::UnknownIssuer,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn refuses_garbage_input() {
    let pki = TestPki::new(TD);
    let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    let err = verify_with(&pki, &[junk.clone(), junk]).unwrap_err();
    assert!(
        matches!(err, VerifyError::Svid(SvidError::Malformed(_))),
        "{err}"
    );
}

#[test]
fn authorizers_decide_after_the_chain() {
    let f = fixture();
    let (svid, _) = f.svid("caller");
    let verifier = ChainVerifier::new(&f.bundle).unwrap();
    let chain = svid.chain();
    let verify = |auth: &dyn ward_identity::PeerAuthorizer| {
        verifier.verify(&chain[0], &chain[1..], Usage::Client, UnixTime::now(), auth)
    };
    assert!(verify(&ExactIds(HashSet::from([agent("caller")]))).is_ok());
    let err = verify(&ExactIds(HashSet::from([agent("someone-else")]))).unwrap_err();
    assert!(matches!(err, VerifyError::Unauthorized { .. }), "{err}");
    assert!(verify(&TrustDomains(HashSet::from([td()]))).is_ok());
    let other = TrustDomain::new("other.test").unwrap();
    assert!(matches!(
        verify(&TrustDomains(HashSet::from([other]))),
        Err(VerifyError::Unauthorized { .. })
    ));
    let _keep: Arc<dyn ward_identity::PeerAuthorizer> = Arc::new(AnyMember);
}

#[test]
fn bundle_rotation_keeps_old_and_new_authorities() {
    let old = fixture();
    let new = fixture();
    let (old_svid, _) = old.svid("a");
    let (new_svid, _) = new.svid("a");
    let mut both = old.bundle.clone();
    both.x509_authorities.push(new.ca.root().clone());
    both.sequence += 1;
    let store = ward_identity::verify::TrustStore::new(&old.bundle).unwrap();
    let check = |svid: &ward_identity::X509Svid| {
        let c = svid.chain();
        store
            .current()
            .verify(&c[0], &c[1..], Usage::Client, UnixTime::now(), &AnyMember)
    };
    assert!(check(&old_svid).is_ok());
    assert!(check(&new_svid).is_err());
    store.update(&both).unwrap();
    assert!(check(&old_svid).is_ok() && check(&new_svid).is_ok());
    store.update(&new.bundle).unwrap();
    assert!(check(&old_svid).is_err() && check(&new_svid).is_ok());
    assert_eq!(store.current().sequence(), 1);
}

#[test]
fn bundle_json_round_trips_with_several_authorities() {
    let a = fixture();
    let b = fixture();
    let mut bundle = a.bundle.clone();
    bundle.x509_authorities.push(b.ca.root().clone());
    bundle.jwt_authorities.push(b.jwt.authority());
    bundle.sequence = 7;
    bundle.refresh_hint = Some(300);
    let json = bundle.to_json().unwrap();
    let back = TrustBundle::from_json(td(), json.as_bytes()).unwrap();
    assert_eq!(back, bundle);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["spiffe_sequence"], 7);
    let uses: Vec<_> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["use"].as_str().unwrap())
        .collect();
    assert_eq!(uses, ["x509-svid", "x509-svid", "jwt-svid", "jwt-svid"]);
}

#[test]
fn bundle_parser_refuses_bad_documents() {
    use ward_identity::bundle::BundleError;
    let parse = |s: &str| TrustBundle::from_json(td(), s.as_bytes());
    assert!(matches!(parse("{"), Err(BundleError::Json(_))));
    assert!(matches!(
        parse(r#"{"keys":[{"use":"x509-svid"}]}"#),
        Err(BundleError::BadKey { index: 0, .. })
    ));
    assert!(matches!(
        parse(r#"{"keys":[{"use":"x509-svid","x5c":["!!"]}]}"#),
        Err(BundleError::BadKey { index: 0, .. })
    ));
    assert!(matches!(
        parse(r#"{"keys":[{"use":"jwt-svid","kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#),
        Err(BundleError::BadKey { index: 0, .. })
    ));
    // A leaf certificate is not an authority.
    let f = fixture();
    let (svid, _) = f.svid("a");
    let mut bad = f.bundle.clone();
    bad.x509_authorities = vec![svid.chain()[0].clone()];
    let json = bad.to_json().unwrap();
    assert!(matches!(parse(&json), Err(BundleError::BadKey { .. })));
    // Unknown uses are ignored, as the SPIFFE bundle spec requires.
    let ok = parse(r#"{"keys":[{"use":"something-new","kty":"EC"}]}"#).unwrap();
    assert!(ok.x509_authorities.is_empty() && ok.jwt_authorities.is_empty());
}
