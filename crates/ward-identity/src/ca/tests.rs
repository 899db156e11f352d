use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;
use crate::csr;

fn td() -> TrustDomain {
    TrustDomain::new("ward.test").unwrap()
}

fn agent(name: &str) -> SpiffeId {
    SpiffeId::new(&format!("spiffe://ward.test/agent/{name}")).unwrap()
}

fn new_ca() -> GeneratedCa {
    CertificateAuthority::generate(&td(), &CaOptions::default()).unwrap()
}

fn csr_for(id: &SpiffeId) -> (PrivateKey, Vec<u8>) {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let der = csr::create(&key, id).unwrap().as_ref().to_vec();
    (key, der)
}

#[test]
fn issued_svid_follows_the_x509_svid_spec() {
    let ca = new_ca().ca;
    let id = agent("planner");
    let (_key, der) = csr_for(&id);
    let now = OffsetDateTime::now_utc();
    let svid = ca.sign_csr(&der, &id, DEFAULT_SVID_TTL, now).unwrap();
    assert_eq!(svid.spiffe_id(), &id);
    assert_eq!(svid.chain().len(), 2);
    assert_eq!(&svid.chain()[1], ca.intermediate());

    let (_, cert) = x509_parser::parse_x509_certificate(&svid.chain()[0]).unwrap();
    let uris: Vec<_> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(uris, vec![id.as_str()]);
    let bc = cert
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints present");
    assert!(!bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    // 128 random bits: at most 17 DER bytes (sign padding), and two SVIDs differ.
    assert!(cert.raw_serial().len() <= 17);
    let (_k2, der2) = csr_for(&id);
    let other = ca.sign_csr(&der2, &id, DEFAULT_SVID_TTL, now).unwrap();
    assert_ne!(other.leaf().serial, svid.leaf().serial);
    // TTL: 15 minutes from now, backdated by the skew allowance.
    let v = cert.validity();
    assert_eq!(v.not_after.timestamp() - now.unix_timestamp(), 15 * 60);
    assert_eq!(now.unix_timestamp() - v.not_before.timestamp(), 30);
    // Signed by the intermediate.
    let (_, int) = x509_parser::parse_x509_certificate(ca.intermediate()).unwrap();
    cert.verify_signature(Some(int.public_key())).unwrap();
    assert!(cert.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::AuthorityKeyIdentifier(_)
    )));
}

#[test]
fn ttl_never_exceeds_the_intermediate() {
    let options = CaOptions {
        intermediate_ttl: Duration::from_secs(600),
        ..CaOptions::default()
    };
    let ca = CertificateAuthority::generate(&td(), &options).unwrap().ca;
    let id = agent("a");
    let (_key, der) = csr_for(&id);
    let svid = ca
        .sign_csr(
            &der,
            &id,
            Duration::from_secs(3600),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(
        svid.leaf().not_after,
        ca.intermediate_not_after().unix_timestamp()
    );
    // And requests beyond the global cap are cut to it.
    let ca = new_ca().ca;
    let now = OffsetDateTime::now_utc();
    let svid = ca
        .sign_csr(&der, &id, Duration::from_secs(10 * 24 * 3600), now)
        .unwrap();
    assert_eq!(
        svid.leaf().not_after - now.unix_timestamp(),
        MAX_SVID_TTL.as_secs() as i64
    );
    // An expired intermediate signs nothing.
    let later = ca.intermediate_not_after() + Duration::from_secs(1);
    assert!(matches!(
        ca.sign_csr(&der, &id, DEFAULT_SVID_TTL, later),
        Err(CaError::Refused(_))
    ));
}

#[test]
fn ed25519_ca_works() {
    let options = CaOptions {
        algorithm: KeyAlgorithm::Ed25519,
        ..CaOptions::default()
    };
    let ca = CertificateAuthority::generate(&td(), &options).unwrap().ca;
    let id = agent("ed");
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let der = csr::create(&key, &id).unwrap();
    let svid = ca
        .sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(svid.spiffe_id(), &id);
}

#[test]
fn refuses_csr_for_another_identity() {
    let ca = new_ca().ca;
    let (_key, der) = csr_for(&agent("mallory-wants-admin"));
    let err = ca
        .sign_csr(
            &der,
            &agent("mallory"),
            DEFAULT_SVID_TTL,
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, CaError::Csr(CsrError::IdentityMismatch { requested, .. }) if requested == "spiffe://ward.test/agent/mallory-wants-admin"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("authorized only for spiffe://ward.test/agent/mallory")
    );
}

#[test]
fn refuses_identities_outside_the_trust_domain() {
    let ca = new_ca().ca;
    let other = SpiffeId::new("spiffe://evil.test/agent/a").unwrap();
    let (_key, der) = csr_for(&other);
    assert!(matches!(
        ca.sign_csr(&der, &other, DEFAULT_SVID_TTL, OffsetDateTime::now_utc()),
        Err(CaError::Refused(_))
    ));
    let bare = td().id();
    assert!(matches!(
        ca.sign_csr(&der, &bare, DEFAULT_SVID_TTL, OffsetDateTime::now_utc()),
        Err(CaError::Refused(_))
    ));
}

#[test]
fn refuses_ca_requests_and_extra_sans() {
    let ca = new_ca().ca;
    let id = agent("a");
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let request = |edit: &dyn Fn(&mut rcgen::CertificateParams)| {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![san_uri(&id).unwrap()];
        edit(&mut params);
        params
            .serialize_request(key.rcgen())
            .unwrap()
            .der()
            .to_vec()
    };
    let sign = |der: Vec<u8>| ca.sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc());

    let der = request(&|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained));
    assert!(matches!(
        sign(der),
        Err(CaError::Csr(CsrError::CaRequested(_)))
    ));
    let der = request(&|p| p.key_usages = vec![KeyUsagePurpose::KeyCertSign]);
    assert!(matches!(
        sign(der),
        Err(CaError::Csr(CsrError::CaRequested(_)))
    ));
    let der = request(&|p| {
        p.subject_alt_names
            .push(SanType::DnsName("evil.example".try_into().unwrap()))
    });
    assert!(matches!(
        sign(der),
        Err(CaError::Csr(CsrError::UnsupportedSan(_)))
    ));
    let der = request(&|p| p.subject_alt_names.push(san_uri(&agent("b")).unwrap()));
    assert!(matches!(
        sign(der),
        Err(CaError::Csr(CsrError::UnsupportedSan(_)))
    ));
    // No SAN at all: the CA fills in the authorized ID.
    let der = request(&|p| p.subject_alt_names.clear());
    assert_eq!(sign(der).unwrap().spiffe_id(), &id);
}

#[test]
fn refuses_tampered_and_garbage_csrs() {
    let ca = new_ca().ca;
    let id = agent("a");
    let (_key, mut der) = csr_for(&id);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = ca
        .sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::Csr(CsrError::BadSignature | CsrError::Malformed(_))
        ),
        "{err}"
    );
    let err = ca
        .sign_csr(b"nope", &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
        .unwrap_err();
    assert!(matches!(err, CaError::Csr(CsrError::Malformed(_))), "{err}");
    let huge = vec![0u8; csr::MAX_CSR_LEN + 1];
    assert!(matches!(
        ca.sign_csr(&huge, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc()),
        Err(CaError::Csr(CsrError::TooLarge(_)))
    ));
}

/// OpenSSL (an implementation nobody here wrote) makes the weak-key CSRs.
#[test]
fn refuses_weak_keys() {
    let ca = new_ca().ca;
    let id = agent("a");
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("rsa1024", vec!["-newkey", "rsa:1024"]),
        (
            "p192",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"],
        ),
    ] {
        let out = dir.path().join(format!("{name}.der"));
        let status = Command::new("openssl")
            .args([
                "req", "-new", "-nodes", "-subj", "/O=weak", "-outform", "DER", "-keyout",
            ])
            .arg(dir.path().join(format!("{name}.key")))
            .args(&args)
            .args(["-addext", &format!("subjectAltName=URI:{id}")])
            .arg("-out")
            .arg(&out)
            .output()
            .expect("openssl must be installed (Debian package openssl)");
        assert!(
            status.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let der = std::fs::read(&out).unwrap();
        let err = ca
            .sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
            .unwrap_err();
        assert!(
            matches!(err, CaError::Csr(CsrError::WeakKey(_))),
            "{name}: {err}"
        );
    }
    // RSA 2048 from OpenSSL is accepted, proving the check is not "refuse RSA".
    let out = dir.path().join("rsa2048.der");
    let status = Command::new("openssl")
        .args([
            "req", "-new", "-nodes", "-subj", "/O=ok", "-outform", "DER", "-newkey", "rsa:2048",
            "-keyout",
        ])
        .arg(dir.path().join("rsa2048.key"))
        .arg("-out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success());
    let der = std::fs::read(&out).unwrap();
    assert_eq!(
        ca.sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
            .unwrap()
            .spiffe_id(),
        &id
    );
}

#[test]
fn write_and_load_round_trip_with_private_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let generated = new_ca();
    CertificateAuthority::write(&generated, &ca_dir).unwrap();
    for key in [ROOT_KEY_FILE, INTERMEDIATE_KEY_FILE] {
        let mode = std::fs::metadata(ca_dir.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let dir_mode = std::fs::metadata(&ca_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let loaded = CertificateAuthority::load(&ca_dir, td()).unwrap();
    assert_eq!(loaded.root(), generated.ca.root());
    let id = agent("a");
    let (_key, der) = csr_for(&id);
    let svid = loaded
        .sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(&svid.chain()[1], generated.ca.intermediate());

    // A missing file is a precise error naming it.
    std::fs::remove_file(ca_dir.join(INTERMEDIATE_FILE)).unwrap();
    let err = CertificateAuthority::load(&ca_dir, td()).unwrap_err();
    assert!(err.to_string().contains(INTERMEDIATE_FILE), "{err}");
}

#[test]
fn a_new_intermediate_under_the_same_root_issues_leaves_the_old_bundle_trusts() {
    use crate::verify::{AnyMember, ChainVerifier, Usage};
    let generated = new_ca();
    let (next, next_key) = CertificateAuthority::new_intermediate(
        &td(),
        generated.ca.root(),
        &generated.root_key,
        &CaOptions::default(),
    )
    .unwrap();
    assert_eq!(next.root(), generated.ca.root());
    assert_ne!(next.intermediate(), generated.ca.intermediate());
    assert_ne!(
        authority_id(next.intermediate()),
        authority_id(generated.ca.intermediate())
    );
    assert!(next.intermediate_not_after() <= next.root_not_after().unwrap());

    let id = agent("rotated");
    let (_key, der) = csr_for(&id);
    let svid = next
        .sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(&svid.chain()[1], next.intermediate());
    let old_bundle = crate::TrustBundle::new(td(), vec![generated.ca.root().clone()], vec![]);
    let verifier = ChainVerifier::new(&old_bundle).unwrap();
    let peer = verifier
        .verify_uncached(
            &svid.chain()[0],
            &svid.chain()[1..],
            Usage::Client,
            rustls_pki_types::UnixTime::now(),
            &AnyMember,
        )
        .unwrap();
    assert_eq!(peer.spiffe_id, id);

    // A leaf of a CA under another root is refused by the old bundle.
    let other = new_ca().ca;
    let foreign = other
        .sign_csr(&der, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
        .unwrap();
    assert!(
        verifier
            .verify_uncached(
                &foreign.chain()[0],
                &foreign.chain()[1..],
                Usage::Client,
                rustls_pki_types::UnixTime::now(),
                &AnyMember,
            )
            .is_err()
    );

    // Written without a root key, read back with none; the keys are 0600.
    let dir = tempfile::tempdir().unwrap();
    next.write_authority(dir.path(), None, &next_key).unwrap();
    let (root, key) = CertificateAuthority::read_root(dir.path()).unwrap();
    assert_eq!(&root, generated.ca.root());
    assert!(key.is_none());
    let mode = std::fs::metadata(dir.path().join(INTERMEDIATE_KEY_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let loaded = CertificateAuthority::load(dir.path(), td()).unwrap();
    assert_eq!(loaded.intermediate(), next.intermediate());
}
