//! Real rustls handshakes (in memory, no sockets) between Ward TLS configs.

use std::collections::HashSet;
use std::sync::Arc;

use rustls::{ClientConnection, ServerConnection};
use rustls_pki_types::ServerName;
use ward_identity::tls::{self, SvidResolver};
use ward_identity::verify::{AnyMember, ExactIds, TrustStore};
use ward_identity::{PeerAuthorizer, PrivateKey, X509Svid};
use ward_testkit::{LeafSpec, TestPki};

use crate::common::{Fixture, TD, agent, fixture};

/// Pumps bytes both ways until both sides finish or one fails (bounded).
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..16 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
        }
        buf.clear();
        server.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish in 16 rounds");
}

struct Side {
    resolver: Arc<SvidResolver>,
    trust: Arc<TrustStore>,
}

fn side(f: &Fixture, name: &str) -> Side {
    let (svid, key) = f.svid(name);
    Side {
        resolver: Arc::new(SvidResolver::new(&svid, &key).unwrap()),
        trust: Arc::new(TrustStore::new(&f.bundle).unwrap()),
    }
}

fn connect(
    client: &Side,
    client_auth: Arc<dyn PeerAuthorizer>,
    server: &Side,
    server_auth: Arc<dyn PeerAuthorizer>,
) -> (
    ClientConnection,
    ServerConnection,
    Result<(), rustls::Error>,
) {
    let cc =
        tls::client_config(client.resolver.clone(), client.trust.clone(), client_auth).unwrap();
    let sc =
        tls::server_config(server.resolver.clone(), server.trust.clone(), server_auth).unwrap();
    let name = ServerName::try_from("b.ward.internal").unwrap();
    let mut c = ClientConnection::new(Arc::new(cc), name).unwrap();
    let mut s = ServerConnection::new(Arc::new(sc)).unwrap();
    let result = handshake(&mut c, &mut s);
    (c, s, result)
}

#[test]
fn mutual_tls_identifies_both_sides_with_post_quantum_key_exchange() {
    let f = fixture();
    let a = side(&f, "a");
    let b = side(&f, "b");
    let (c, s, result) = connect(&a, Arc::new(AnyMember), &b, Arc::new(AnyMember));
    result.unwrap();
    assert_eq!(tls::peer_identity(&c).unwrap().spiffe_id, agent("b"));
    assert_eq!(tls::peer_identity(&s).unwrap().spiffe_id, agent("a"));
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(
        c.negotiated_key_exchange_group().map(|g| g.name()),
        Some(rustls::NamedGroup::X25519MLKEM768)
    );
}

#[test]
fn server_refuses_client_from_unknown_authority() {
    let f = fixture();
    let b = side(&f, "b");
    let rogue = TestPki::new(TD);
    let leaf = rogue.leaf(&LeafSpec::svid(&agent("a").to_string()));
    let svid = X509Svid::from_chain(leaf.chain.clone()).unwrap();
    let key = PrivateKey::from_pkcs8_der(&leaf.key_pkcs8).unwrap();
    let mallory = Side {
        resolver: Arc::new(SvidResolver::new(&svid, &key).unwrap()),
        // Mallory trusts our bundle, so she gets as far as she can.
        trust: Arc::new(TrustStore::new(&f.bundle).unwrap()),
    };
    let (_c, s, result) = connect(&mallory, Arc::new(AnyMember), &b, Arc::new(AnyMember));
    let err = result.unwrap_err();
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
    assert!(tls::peer_identity(&s).is_none() || s.is_handshaking());
}

#[test]
fn client_refuses_server_its_authorizer_rejects() {
    let f = fixture();
    let a = side(&f, "a");
    let b = side(&f, "b");
    let only_c = Arc::new(ExactIds(HashSet::from([agent("c")])));
    let (_c, _s, result) = connect(&a, only_c, &b, Arc::new(AnyMember));
    assert_eq!(
        result.unwrap_err(),
        rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
    );
}

#[test]
fn server_refuses_client_without_certificate() {
    let f = fixture();
    let b = side(&f, "b");
    let sc = tls::server_config(b.resolver.clone(), b.trust.clone(), Arc::new(AnyMember)).unwrap();
    let verifier = Arc::new(tls::SpiffeVerifier::new(
        b.trust.clone(),
        Arc::new(AnyMember),
    ));
    let cc =
        rustls::ClientConfig::builder_with_provider(ward_identity::provider::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
    let mut c = ClientConnection::new(Arc::new(cc), ServerName::try_from("b").unwrap()).unwrap();
    let mut s = ServerConnection::new(Arc::new(sc)).unwrap();
    let err = handshake(&mut c, &mut s).unwrap_err();
    assert_eq!(err, rustls::Error::NoCertificatesPresented);
}

#[test]
fn rotation_takes_effect_on_the_next_handshake() {
    let f = fixture();
    let a = side(&f, "a");
    let b = side(&f, "b");
    let (_c, s, r) = connect(&a, Arc::new(AnyMember), &b, Arc::new(AnyMember));
    r.unwrap();
    let first = tls::peer_identity(&s).unwrap().serial;
    let (svid, key) = f.svid("a");
    a.resolver.rotate(&svid, &key).unwrap();
    let (_c, s, r) = connect(&a, Arc::new(AnyMember), &b, Arc::new(AnyMember));
    r.unwrap();
    let second = tls::peer_identity(&s).unwrap().serial;
    assert_ne!(first, second);
    assert_eq!(second, svid.leaf().serial);
}

#[test]
fn resolver_refuses_a_key_that_does_not_match() {
    let f = fixture();
    let (svid, _key) = f.svid("a");
    let (_other_svid, other_key) = f.svid("b");
    assert!(SvidResolver::new(&svid, &other_key).is_err());
}

#[test]
fn removing_a_root_from_the_bundle_cuts_off_its_peers() {
    let f = fixture();
    let a = side(&f, "a");
    let b = side(&f, "b");
    let other = fixture();
    b.trust.update(&other.bundle).unwrap();
    let (_c, _s, result) = connect(&a, Arc::new(AnyMember), &b, Arc::new(AnyMember));
    assert!(result.is_err());
}
