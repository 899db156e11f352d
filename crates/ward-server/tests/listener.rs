//! The API over real TLS on 127.0.0.1: identity comes from the client
//! certificate only; a bad certificate fails the handshake; drain completes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use ward_core::drain;
use ward_core::{SpiffeId, TrustDomain};
use ward_identity::ca::{CaOptions, CertificateAuthority, DEFAULT_SVID_TTL};
use ward_identity::tls::{self, ClientAuth, SvidResolver};
use ward_identity::verify::{AnyMember, ExactIds, TrustStore};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, X509Svid, csr};
use ward_server::api::{self, AppState};
use ward_server::store::Store;
use ward_testkit::{LeafSpec, TestPki};

fn issue(ca: &CertificateAuthority, id: &str) -> (X509Svid, PrivateKey) {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let id = SpiffeId::new(id).unwrap();
    let request = csr::create(&key, &id).unwrap();
    (
        ca.sign_csr(&request, &id, DEFAULT_SVID_TTL, OffsetDateTime::now_utc())
            .unwrap(),
        key,
    )
}

struct Server {
    addr: SocketAddr,
    trust: Arc<TrustStore>,
    ca: Arc<CertificateAuthority>,
    trigger: drain::Trigger,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    ward_identity::provider::install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("w.db").display()))
        .await
        .unwrap();
    let td = TrustDomain::new("ward.test").unwrap();
    let ca = Arc::new(
        CertificateAuthority::generate(&td, &CaOptions::default())
            .unwrap()
            .ca,
    );
    let bundle = TrustBundle::new(td.clone(), vec![ca.root().clone()], vec![]);
    let trust = Arc::new(TrustStore::new(&bundle).unwrap());
    let audit = ward_server::audit::AuditLog::open_in(dir.path(), &td).unwrap();
    let (server_svid, server_key) = issue(&ca, "spiffe://ward.test/ward/server");
    store
        .add_admin(
            &SpiffeId::new("spiffe://ward.test/admin/alice").unwrap(),
            "alice",
            0,
        )
        .await
        .unwrap();
    let resolver = Arc::new(SvidResolver::new(&server_svid, &server_key).unwrap());
    let config = tls::server_config_with(
        resolver,
        trust.clone(),
        Arc::new(AnyMember),
        ClientAuth::Optional,
    )
    .unwrap();
    let pdp = Arc::new(ward_server::policy::Pdp::load(None).unwrap());
    pdp.refresh(&store).await.unwrap();
    let state = AppState {
        store,
        authorities: ward_server::authority::Authorities::fixed(ca.clone()).unwrap(),
        svid_ttl: DEFAULT_SVID_TTL,
        stopping: Arc::new(tokio::sync::watch::channel(false).0),
        started: std::time::Instant::now(),
        pdp,
        policy_signer: Arc::new(
            ward_identity::PrivateKey::generate(ward_identity::KeyAlgorithm::Ed25519).unwrap(),
        ),
        audit,
        server_id: SpiffeId::new("spiffe://ward.test/ward/server").unwrap(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, watch) = drain::channel();
    tokio::spawn(ward_server::listener::serve(
        listener,
        Arc::new(config),
        api::router(state),
        watch,
    ));
    Server {
        addr,
        trust,
        ca,
        trigger,
        _dir: dir,
    }
}

impl Server {
    fn client(&self, identity: Option<(&X509Svid, &PrivateKey)>) -> Arc<rustls::ClientConfig> {
        let server_only = Arc::new(ExactIds(HashSet::from([SpiffeId::new(
            "spiffe://ward.test/ward/server",
        )
        .unwrap()])));
        let config = match identity {
            Some((svid, key)) => tls::client_config(
                Arc::new(SvidResolver::new(svid, key).unwrap()),
                self.trust.clone(),
                server_only,
            )
            .unwrap(),
            None => rustls::ClientConfig::builder_with_provider(
                ward_identity::provider::crypto_provider(),
            )
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(tls::SpiffeVerifier::new(
                self.trust.clone(),
                server_only,
            )))
            .with_no_client_auth(),
        };
        Arc::new(config)
    }

    async fn get(
        &self,
        client: Arc<rustls::ClientConfig>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(client)
            .connect(ServerName::try_from("ward-server").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .uri(path)
            .header("host", "ward-server");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

#[tokio::test]
async fn identity_comes_from_the_certificate_only() {
    let server = start().await;
    // Anonymous: the bundle is public, the registry is not.
    let anon = server.client(None);
    let (status, bundle) = server.get(anon.clone(), "/v1/bundle", &[]).await.unwrap();
    assert_eq!(status, 200);
    assert!(bundle["keys"].is_array());
    assert_eq!(
        server.get(anon.clone(), "/v1/agents", &[]).await.unwrap().0,
        401
    );
    // Claiming to be an admin in headers changes nothing.
    let forged = [
        ("ward-peer-id", "spiffe://ward.test/admin/alice"),
        (
            "x-forwarded-client-cert",
            "By=spiffe://ward.test/admin/alice",
        ),
    ];
    assert_eq!(
        server.get(anon, "/v1/agents", &forged).await.unwrap().0,
        401
    );

    // The admin's SVID opens the registry.
    let (svid, key) = issue(&server.ca, "spiffe://ward.test/admin/alice");
    let (status, agents) = server
        .get(server.client(Some((&svid, &key))), "/v1/agents", &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{agents}");
    // An agent's SVID does not.
    let (svid, key) = issue(&server.ca, "spiffe://ward.test/agent/planner");
    assert_eq!(
        server
            .get(server.client(Some((&svid, &key))), "/v1/agents", &[])
            .await
            .unwrap()
            .0,
        403
    );
    assert_eq!(
        server.trigger.drain(Duration::from_secs(5)).await,
        drain::Outcome::Complete
    );
}

#[tokio::test]
async fn a_certificate_from_another_authority_fails_the_handshake() {
    let server = start().await;
    let rogue = TestPki::new("ward.test");
    let leaf = rogue.leaf(&LeafSpec::svid("spiffe://ward.test/admin/alice"));
    let svid = X509Svid::from_chain(leaf.chain.clone()).unwrap();
    let key = PrivateKey::from_pkcs8_der(&leaf.key_pkcs8).unwrap();
    let result = server
        .get(server.client(Some((&svid, &key))), "/v1/agents", &[])
        .await;
    assert!(result.is_err(), "forged admin got an answer: {result:?}");
    // The server is still healthy for honest clients.
    assert_eq!(
        server
            .get(server.client(None), "/v1/bundle", &[])
            .await
            .unwrap()
            .0,
        200
    );
}
