//! Two agents through two real proxies and a real server over mutual TLS
//! on 127.0.0.1: allow, deny with the policy's reason, spoofed `ward-*`
//! headers, a peer from another trust domain, an expired certificate, a
//! plain-text client on the mTLS port, revocation cutting a live stream,
//! restart with the server down, and certificate rotation under load.
//! Every refusal is checked in the receiving proxy's audit spool.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ward_audit::record::{AuditRecord, Decision};
use ward_client::{Client, Method};
use ward_core::{AgentName, TrustDomain, drain};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, X509Svid};
use ward_proxy::{Limits, Proxy, ProxyConfig, RateLimit};
use ward_server::data_dir::DataDir;
use ward_server::server::{self, RunOptions};

#[path = "proxy/agent_protocols.rs"]
mod agent_protocols;
#[path = "proxy/sdk.rs"]
mod sdk;

const POLICY: &str = r#"
@id("a-calls-b")
@reason("a may call b")
permit(principal == Agent::"a", action, resource == Agent::"b");

@id("no-deletes-on-b")
@reason("nobody deletes on b")
forbid(principal, action == Action::"DELETE", resource == Agent::"b");
"#;

struct World {
    _tmp: tempfile::TempDir,
    dir: DataDir,
    server: Option<(SocketAddr, drain::Trigger)>,
    server_addr: SocketAddr,
    bundle: TrustBundle,
    app: SocketAddr,
}

impl World {
    async fn new(svid_ttl: Duration) -> Self {
        ward_identity::provider::install_default();
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        let td = TrustDomain::new("example.org").unwrap();
        dir.init(&td, None, KeyAlgorithm::EcdsaP256).await.unwrap();
        let bundle = TrustBundle::read(td, &dir.bundle_path()).unwrap();
        let app = echo_app().await;
        let mut world = Self {
            _tmp: tmp,
            dir,
            server: None,
            server_addr: "127.0.0.1:0".parse().unwrap(),
            bundle,
            app,
        };
        world.start_server(svid_ttl).await;
        let admin = world.admin();
        for name in ["a", "b"] {
            let _: Value = admin
                .call(
                    Method::POST,
                    "/v1/agents",
                    Some(&json!({"name": name, "attributes": {"team": "t"}})),
                )
                .await
                .unwrap();
        }
        let _: Value = admin
            .call(
                Method::POST,
                "/v1/policies",
                Some(&json!({"files": [{"name": "main.cedar", "text": POLICY}]})),
            )
            .await
            .unwrap();
        world
    }

    async fn start_server(&mut self, svid_ttl: Duration) {
        let (trigger, watch) = drain::channel();
        let listen = if self.server_addr.port() == 0 {
            "127.0.0.1:0".parse().unwrap()
        } else {
            self.server_addr
        };
        let addr = server::start(
            RunOptions {
                data_dir: self.dir.clone(),
                store_url: None,
                listen,
                svid_ttl,
                policy_dir: None,
            },
            watch,
        )
        .await
        .unwrap();
        self.server_addr = addr;
        self.server = Some((addr, trigger));
    }

    async fn stop_server(&mut self) {
        if let Some((_, trigger)) = self.server.take() {
            trigger.drain(Duration::from_secs(5)).await;
        }
    }

    fn admin(&self) -> Client {
        let (cert, key) = self.dir.admin_files();
        let svid = X509Svid::read_pem(&cert).unwrap();
        let key = PrivateKey::read_pem(&key).unwrap();
        Client::new(
            &self.server_addr.to_string(),
            &self.bundle,
            Some((&svid, &key)),
        )
        .unwrap()
    }

    async fn token(&self, agent: &str) -> String {
        let resp: Value = self
            .admin()
            .call(
                Method::POST,
                &format!("/v1/agents/{agent}/tokens"),
                Some(&json!({"ttl_secs": 600})),
            )
            .await
            .unwrap();
        resp["token"].as_str().unwrap().to_owned()
    }

    fn config(&self, agent: &str, state: &std::path::Path, token: Option<String>) -> ProxyConfig {
        ProxyConfig {
            server: self.server_addr.to_string(),
            bundle: Some(self.dir.bundle_path()),
            agent: AgentName::new(agent).unwrap(),
            join_token: token,
            upstream: self.app.to_string(),
            protocol: None,
            routes: Vec::new(),
            state_dir: state.to_path_buf(),
            outbound: "127.0.0.1:0".parse().unwrap(),
            inbound: "127.0.0.1:0".parse().unwrap(),
            advertise: None,
            admin: "127.0.0.1:0".parse().unwrap(),
            limits: Limits::default(),
            rate_limit: None,
            audit_full: ward_proxy::AuditFull::FailClosed,
            audit_spool_bytes: 64 << 20,
        }
    }

    /// Registers (`POST`) or updates (`PATCH`) `agent` in team `t` with
    /// `labels`.
    async fn label(&self, agent: &str, new: bool, labels: Value) {
        let attributes = json!({"team": "t", "labels": labels});
        let (method, path, body) = if new {
            (
                Method::POST,
                "/v1/agents".to_owned(),
                json!({"name": agent, "attributes": attributes}),
            )
        } else {
            (
                Method::PATCH,
                format!("/v1/agents/{agent}"),
                json!({"attributes": attributes}),
            )
        };
        let _: Value = self.admin().call(method, &path, Some(&body)).await.unwrap();
    }

    /// Pushes a one-file policy bundle.
    async fn push_policy(&self, text: &str) {
        let files = json!({"files": [{"name": "main.cedar", "text": text}]});
        let _: Value = self
            .admin()
            .call(Method::POST, "/v1/policies", Some(&files))
            .await
            .unwrap();
    }

    /// A proxy for `agent` in front of the app at `upstream`, read as
    /// `protocol`, ready and known to `caller`'s proxy, enforcing a bundle
    /// with the policy `policy_id`.
    async fn fronting(
        &self,
        agent: &str,
        upstream: String,
        protocol: Option<ward_proxy::rpc::Protocol>,
        rate_limit: Option<RateLimit>,
        caller: &Proxy,
        policy_id: &str,
    ) -> Proxy {
        let state = self._tmp.path().join(format!("proxy-{agent}"));
        let mut config = self.config(agent, &state, Some(self.token(agent).await));
        config.upstream = upstream;
        config.protocol = protocol;
        config.rate_limit = rate_limit;
        let proxy = ward_proxy::start(config).await.unwrap();
        wait_ready(&proxy).await;
        wait_endpoint(caller, agent).await;
        wait_until("the expected policy bundle", || {
            proxy
                .shared
                .compiled()
                .engine
                .as_ref()
                .is_some_and(|e| e.policies().names().any(|n| n == policy_id))
        })
        .await;
        proxy
    }

    async fn proxy(&self, agent: &str, rate: Option<RateLimit>) -> Proxy {
        let state = self._tmp.path().join(format!("proxy-{agent}"));
        let token = self.token(agent).await;
        let mut config = self.config(agent, &state, Some(token));
        config.rate_limit = rate;
        let proxy = ward_proxy::start(config).await.unwrap();
        wait_ready(&proxy).await;
        proxy
    }
}

/// Until the proxy has applied a view with a policy and knows every peer's
/// endpoint; bounded.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_ready(proxy: &Proxy) {
    wait_until("readiness", || {
        proxy.shared.ready() && proxy.shared.compiled().policy_version().is_some()
    })
    .await;
}

async fn wait_endpoint(proxy: &Proxy, agent: &str) {
    wait_until("the peer's endpoint", || {
        proxy
            .shared
            .compiled()
            .view
            .agents
            .get(agent)
            .is_some_and(|a| a.endpoint.is_some())
    })
    .await;
}

/// The local app: echoes method, path and headers as JSON; `/sse` streams
/// an event every 50 ms for ever.
async fn echo_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    if req.headers().get("upgrade").is_some_and(|v| v == "echo") {
                        // A toy upgraded protocol: echo every byte back.
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(up) = on.await {
                                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                                let _ = tokio::io::copy(&mut r, &mut w).await;
                            }
                        });
                        let mut resp = Response::new(
                            Full::new(Bytes::new())
                                .map_err(|e: Infallible| match e {})
                                .boxed(),
                        );
                        *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                        resp.headers_mut()
                            .insert("upgrade", "echo".parse().unwrap());
                        resp.headers_mut()
                            .insert("connection", "upgrade".parse().unwrap());
                        return Ok::<_, Infallible>(resp);
                    }
                    if req.uri().path() == "/sse" {
                        let ticker = Ticker {
                            interval: tokio::time::interval(Duration::from_millis(50)),
                            n: 0,
                        };
                        let mut resp = Response::new(ticker.boxed());
                        resp.headers_mut()
                            .insert("content-type", "text/event-stream".parse().unwrap());
                        return Ok::<_, Infallible>(resp);
                    }
                    let headers: serde_json::Map<String, Value> = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                        .collect();
                    let body = json!({
                        "method": req.method().as_str(),
                        "path": req.uri().path(),
                        "headers": headers,
                    });
                    Ok(Response::new(
                        Full::new(Bytes::from(body.to_string()))
                            .map_err(|e: Infallible| match e {})
                            .boxed(),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// An endless SSE body: an event every 50 ms.
struct Ticker {
    interval: tokio::time::Interval,
    n: u64,
}

impl hyper::body::Body for Ticker {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.interval.poll_tick(cx) {
            std::task::Poll::Ready(_) => {
                self.n += 1;
                let event = format!("data: tick {}\n\n", self.n);
                std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// A plain HTTP/1.1 request to a proxy's outbound listener.
async fn call(
    proxy: &Proxy,
    method: &str,
    target: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Value) {
    let tcp = TcpStream::connect(proxy.outbound).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", target);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from_static(b"hello"))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, json)
}

/// Every record `proxy` wrote: those still in its spool, then those already
/// shipped to the server's log (read in that order, so a record shipped in
/// between is still found — the proxy deletes it only after the log has it).
fn records(proxy: &Proxy) -> Vec<AuditRecord> {
    let mut out = proxy.shared.audit.pending(0, 100_000).unwrap();
    let proxy_id = proxy.shared.identity.spiffe_id.to_string();
    let log = proxy
        .shared
        .state
        .root()
        .parent()
        .unwrap()
        .join("data/audit/tile/entries");
    let mut seen: std::collections::HashSet<String> =
        out.iter().map(|r| r.decision_id.clone()).collect();
    // Read while the server runs; a file skipped mid-rename still has its
    // records in the spool (deleted only once the log acknowledges them).
    for (_, bytes) in ward_testkit::published_files(&log) {
        for entry in ward_audit::bundle::entries(&bytes) {
            let record = AuditRecord::decode(entry.unwrap()).unwrap();
            // Partial bundles of earlier sizes repeat entries.
            if record.proxy_id == proxy_id && seen.insert(record.decision_id.clone()) {
                out.push(record);
            }
        }
    }
    out
}

fn audited(proxy: &Proxy, decision_id: &str) -> AuditRecord {
    records(proxy)
        .into_iter()
        .find(|r| r.decision_id == decision_id)
        .unwrap_or_else(|| panic!("decision {decision_id} is neither in the spool nor in the log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_through_two_proxies() {
    let world = World::new(Duration::from_secs(600)).await;
    let pa = world.proxy("a", None).await;
    let pb = world
        .proxy(
            "b",
            Some(RateLimit {
                per_second: 1.0,
                burst: 30,
            }),
        )
        .await;
    wait_endpoint(&pa, "b").await;
    wait_endpoint(&pb, "a").await;

    // Allowed, with a forged identity header from app A that must not
    // reach app B.
    let (status, headers, body) = call(
        &pa,
        "POST",
        "b",
        "/hello?secret=x",
        &[
            ("ward-peer-id", "spiffe://example.org/agent/admin"),
            ("ward-decision-id", "forged"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/hello");
    assert_eq!(
        body["headers"]["ward-peer-id"],
        "spiffe://example.org/agent/a"
    );
    let decision_id = body["headers"]["ward-decision-id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(decision_id, "forged");
    // Time-ordered (UUIDv7 layout), made moments ago: the audit index finds
    // its record by that time.
    let made = ward_audit::decision_id::time_ms(&decision_id)
        .unwrap_or_else(|| panic!("{decision_id} is not a time-ordered id"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(made <= now && now - made < 600_000, "{made} vs {now}");
    assert!(
        body["headers"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-")
    );
    assert!(headers.get("ward-peer-id").is_none());
    let record = audited(&pb, &decision_id);
    assert_eq!(record.decision, Decision::Allow);
    assert!(record.time.get() >= made, "the record comes after its id");
    assert_eq!(record.policies, vec!["a-calls-b".to_owned()]);
    assert_eq!(
        record.request.path, "/hello",
        "no query string in the audit log"
    );
    assert_eq!(
        record.request.body_sha256,
        ward_audit::record::BodyDigest::of(b"hello")
    );
    assert_eq!(
        record.principal.unwrap().as_str(),
        "spiffe://example.org/agent/a"
    );

    // Absolute-form (HTTP_PROXY style) and the ward-target header route too.
    let (status, _, body) = call(&pa, "GET", "ignored", "http://b/abs", &[]).await;
    assert_eq!((status, body["path"].as_str()), (200, Some("/abs")));
    let (status, _, _) = call(&pa, "GET", "nobody", "/t", &[("ward-target", "b")]).await;
    assert_eq!(status, 200);

    // Denied by a forbid with a reason: 403 problem naming the decision.
    let (status, headers, body) = call(&pa, "DELETE", "b", "/records", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["detail"], "nobody deletes on b");
    assert_eq!(body["policies"], json!(["no-deletes-on-b"]));
    let record = audited(&pb, body["decision_id"].as_str().unwrap());
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.reasons, vec!["nobody deletes on b".to_owned()]);

    // Default deny: no policy lets b call a.
    let (status, _, body) = call(&pb, "GET", "a", "/", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:ward:problem:denied");
    assert_eq!(
        audited(&pa, body["decision_id"].as_str().unwrap()).decision,
        Decision::Deny
    );

    // A target that is not a registered agent is refused at the source,
    // and audited there.
    let (status, _, body) = call(&pa, "GET", "mallory", "/", &[]).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], "urn:ward:problem:unknown-target");
    let record = audited(&pa, body["decision_id"].as_str().unwrap());
    assert_eq!(record.resource, "Agent::\"mallory\"");

    // Rate limit: a burst of 30, then 429 with Retry-After, audited.
    let mut limited = None;
    for _ in 0..40 {
        let (status, headers, body) = call(&pa, "GET", "b", "/burst", &[]).await;
        if status == 429 {
            limited = Some((headers, body));
            break;
        }
        assert_eq!(status, 200);
    }
    let (headers, body) = limited.expect("the rate limit never triggered");
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        audited(&pb, body["decision_id"].as_str().unwrap()).reasons[0],
        body["detail"].as_str().unwrap()
    );

    // The metrics saw it.
    let metrics = http_get(pb.admin, "/metrics").await;
    assert!(metrics.contains("ward_proxy_requests_total{direction=\"inbound\",decision=\"deny\",reason=\"rate-limited\"}"), "{metrics}");
    assert!(metrics.contains("ward_proxy_policy_bundle{version=\""));
    assert!(
        http_get(pb.admin, "/readyz")
            .await
            .contains("\"ready\":true")
    );

    pa.shutdown(Duration::from_secs(5)).await;
    pb.shutdown(Duration::from_secs(5)).await;
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get(path)
                .header("host", "admin")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// Accepts any server certificate: the probes below test what the *proxy*
/// refuses, so the client must not give up first.
#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &ward_identity::provider::signature_algorithms(),
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls_pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &ward_identity::provider::signature_algorithms(),
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        ward_identity::provider::signature_algorithms().supported_schemes()
    }
}

/// A certificate chain and key for `agent`, signed directly by the CA that
/// `ward server init` made (outside enrollment, so the registry never saw
/// it; after a CA rotation that is the retired authority).
fn mint(
    world: &World,
    agent: &str,
    ttl: Duration,
) -> (
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    let (ca, _) = world.dir.load_ca().unwrap();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let id = ca.trust_domain().agent_id(&AgentName::new(agent).unwrap());
    let csr = ward_identity::csr::create(&key, &id).unwrap();
    let svid = ca
        .sign_csr(csr.as_ref(), &id, ttl, time::OffsetDateTime::now_utc())
        .unwrap();
    (svid.chain().to_vec(), key.to_pkcs8_der())
}

/// Presents `chain`/`key` to `addr` and tries one HTTP/1.1 request; returns
/// what came back, or why nothing did.
async fn tls_probe(
    addr: SocketAddr,
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<String, String> {
    let mut tls = tls_connect(addr, chain, key).await?;
    tls_request(&mut tls).await
}

type HeldTls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS 1.3 connection to `addr` presenting `chain`/`key`.
async fn tls_connect(
    addr: SocketAddr,
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<HeldTls, String> {
    let config =
        rustls::ClientConfig::builder_with_provider(ward_identity::provider::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
            .with_client_auth_cert(chain, key)
            .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(rustls_pki_types::ServerName::try_from("b").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())
}

/// One keep-alive HTTP/1.1 request on `tls`: the first bytes of the
/// answer, or why there was none (`closed` when the peer closed).
async fn tls_request(tls: &mut HeldTls) -> Result<String, String> {
    tls.write_all(b"GET / HTTP/1.1\r\nhost: b\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed".to_owned());
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn handshake_denials(proxy: &Proxy) -> Vec<AuditRecord> {
    records(proxy)
        .into_iter()
        .filter(|r| r.action == "connect" && r.decision == Decision::Deny)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_expired_and_plaintext_peers_are_refused_and_audited() {
    let world = World::new(Duration::from_secs(600)).await;
    let pb = world.proxy("b", None).await;

    // Control: a valid SVID for `a`, from the real CA, gets an HTTP answer
    // (a policy decision), so the refusals below are about the certificate.
    let mint = |ttl: Duration| mint(&world, "a", ttl);
    let (chain, key) = mint(Duration::from_secs(600));
    let answer = tls_probe(pb.inbound, chain, key).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(handshake_denials(&pb).is_empty());

    // Another trust domain, however well-formed.
    let evil = ward_testkit::TestPki::new("evil.example");
    let leaf = evil.leaf(&ward_testkit::LeafSpec::svid(
        "spiffe://evil.example/agent/a",
    ));
    let refused = tls_probe(pb.inbound, leaf.chain.clone(), leaf.key_der()).await;
    assert!(
        !refused.as_ref().is_ok_and(|a| a.starts_with("HTTP/")),
        "{refused:?}"
    );

    // Our own CA, but expired.
    let (chain, key) = mint(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refused = tls_probe(pb.inbound, chain, key).await;
    assert!(
        !refused.as_ref().is_ok_and(|a| a.starts_with("HTTP/")),
        "{refused:?}"
    );

    // Plain text on the mTLS port: no HTTP, ever.
    let mut tcp = TcpStream::connect(pb.inbound).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: b\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(
        !buf[..n].starts_with(b"HTTP/"),
        "plain HTTP answered on the mTLS port"
    );

    // Each refusal is an audited denial with the reason.
    wait_until("three audited handshake refusals", || {
        handshake_denials(&pb).len() >= 3
    })
    .await;
    let reasons: Vec<String> = handshake_denials(&pb)
        .into_iter()
        .flat_map(|r| r.reasons)
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Expired") || r.contains("expired")),
        "{reasons:?}"
    );
    assert!(handshake_denials(&pb).iter().all(|r| r.principal.is_none()));

    // A flood of junk connections is refused and counted, but only a
    // bounded number become records (the spool fails closed: filling it
    // would refuse legitimate calls); the next record says what was left out.
    let before = handshake_denials(&pb).len();
    let flood = 150;
    for _ in 0..flood {
        let mut tcp = TcpStream::connect(pb.inbound).await.unwrap();
        let _ = tcp.write_all(b"junk\r\n\r\n").await;
    }
    let refused_total = || async {
        let metrics = http_get(pb.admin, "/metrics").await;
        metrics
            .lines()
            .find(|l| l.starts_with("ward_proxy_requests_total{direction=\"inbound\",decision=\"deny\",reason=\"handshake\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while refused_total().await < (before + flood) as u64 {
        assert!(
            Instant::now() < deadline,
            "the flood was not refused in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = handshake_denials(&pb).len() - before;
    assert!(
        recorded >= 1 && recorded < flood / 2,
        "{recorded} of {flood} recorded"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tcp = TcpStream::connect(pb.inbound).await.unwrap();
    let _ = tcp.write_all(b"junk\r\n\r\n").await;
    wait_until("a record naming the unrecorded refusals", || {
        handshake_denials(&pb).iter().any(|r| {
            r.reasons
                .iter()
                .any(|x| x.contains("more refused handshakes were counted"))
        })
    })
    .await;
    pb.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_a_live_stream_and_restart_without_server_keeps_enforcing() {
    let mut world = World::new(Duration::from_secs(600)).await;
    let pa = world.proxy("a", None).await;
    let pb = world.proxy("b", None).await;
    wait_endpoint(&pa, "b").await;

    // A long-lived SSE stream from b's app to a, through both proxies.
    let tcp = TcpStream::connect(pa.outbound).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("/sse")
                .header("host", "b")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // It streams: events arrive before the response ends.
    for _ in 0..3 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(frame.data_ref().unwrap().starts_with(b"data: tick"));
    }

    // An upgraded (WebSocket-style) connection, also through both proxies.
    let mut tunnel = TcpStream::connect(pa.outbound).await.unwrap();
    tunnel
        .write_all(b"GET /ws HTTP/1.1\r\nhost: b\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tunnel.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tunnel.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
    assert!(
        records(&pb)
            .iter()
            .any(|r| r.request.path == "/ws" && r.decision == Decision::Allow),
        "the upgrade was decided and audited"
    );

    // Revoke a: the stream and the tunnel are cut, and a's next request is
    // refused.
    let proxies: Value = world.admin().get("/v1/proxies").await.unwrap();
    let mut agents: Vec<&str> = proxies
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["connected"] == true)
        .map(|p| p["agent"].as_str().unwrap())
        .collect();
    agents.sort_unstable();
    assert_eq!(
        agents,
        ["a", "b"],
        "both proxies report receipts: {proxies}"
    );
    let revoked_at = Instant::now();
    let revoked: Value = world
        .admin()
        .call(
            Method::POST,
            "/v1/agents/a/revoke",
            Some(&json!({"reason": "test"})),
        )
        .await
        .unwrap();
    // The receipt: every connected proxy that counts (b; a is revoked)
    // reports enforcing the revocation's revision.
    let revision = revoked["revocation"]["revision"].as_u64().unwrap();
    let receipts: Value = world
        .admin()
        .get(&format!("/v1/receipts/{revision}?timeout_ms=10000"))
        .await
        .unwrap();
    assert_eq!(receipts["pending"], json!([]), "{receipts}");
    let applied: Vec<&str> = receipts["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["agent"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["b"], "{receipts}");
    eprintln!(
        "revocation enforced by every connected proxy (receipts) {:?} after it was acknowledged",
        revoked_at.elapsed()
    );
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
    assert!(cut.is_ok(), "the stream was not cut within 10 s");
    eprintln!(
        "stream cut {:?} after the revocation was acknowledged",
        revoked_at.elapsed()
    );
    let (status, _, body) = call(&pa, "GET", "b", "/after", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:ward:problem:revoked");
    assert_eq!(
        audited(&pb, body["decision_id"].as_str().unwrap()).decision,
        Decision::Deny
    );
    // Each cut connection (the HTTP/2 connection and the tunnel) is
    // audited as a denied `connect` of a, with why.
    // Counted as they are cut, before their records are written.
    let counted = |reason: &str| {
        pb.shared.metrics.render().lines().find_map(|l| {
            l.strip_prefix(&format!(
                "ward_proxy_connections_cut_total{{reason=\"{reason}\"}} "
            ))
            .map(|n| n.parse::<u64>().unwrap())
        })
    };
    wait_until("the cuts audited", || {
        let records = cut_records(&pb).len() as u64;
        records >= 2 && counted("revoked") == Some(records)
    })
    .await;
    assert_eq!(counted("untrusted"), None);
    for record in cut_records(&pb) {
        assert_eq!(
            record
                .principal
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("spiffe://example.org/agent/a")
        );
        assert_eq!(
            record.reasons,
            ["open connection cut: its credentials are revoked"]
        );
    }

    // Server down; b restarts from its state directory (no token) and
    // still enforces the revocation and the policy.
    let state_b = pb.shared.config.state_dir.clone();
    pb.shutdown(Duration::from_secs(5)).await;
    world.stop_server().await;
    let mut config = world.config("b", &state_b, None);
    config.inbound = "127.0.0.1:0".parse().unwrap();
    let pb = ward_proxy::start(config).await.unwrap();
    assert!(pb.shared.ready(), "ready from last-known-good state");
    assert!(pb.shared.compiled().view.revoked_agents.contains("a"));
    assert!(pb.shared.compiled().engine.is_some());
    pb.shutdown(Duration::from_secs(5)).await;
    pa.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_a_failed_request() {
    // 8 s SVIDs (plus the CA's 30 s backdating): both proxies renew a few
    // times during the run.
    let world = World::new(Duration::from_secs(8)).await;
    let pa = world.proxy("a", None).await;
    let pb = world.proxy("b", None).await;
    wait_endpoint(&pa, "b").await;
    let first = (
        pa.shared.identity.generation(),
        pb.shared.identity.generation(),
    );
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut ok = 0u32;
    while Instant::now() < deadline {
        let (status, _, body) = call(&pa, "GET", "b", "/load", &[]).await;
        assert_eq!(status, 200, "request {ok} failed during rotation: {body}");
        ok += 1;
    }
    let last = (
        pa.shared.identity.generation(),
        pb.shared.identity.generation(),
    );
    assert!(
        last.0 > first.0 && last.1 > first.1,
        "no rotation happened: {first:?} → {last:?}"
    );
    eprintln!(
        "{ok} requests, rotations a={} b={}, none failed",
        last.0, last.1
    );
    pa.shutdown(Duration::from_secs(5)).await;
    pb.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_fronts_several_agents_each_with_its_own_identity_and_app() {
    let world = World::new(Duration::from_secs(600)).await;
    let admin = world.admin();
    let _: Value = admin
        .call(Method::POST, "/v1/agents", Some(&json!({"name": "c"})))
        .await
        .unwrap();
    let pa = world.proxy("a", None).await;
    // One proxy fronting b (the echo app) and c (a second echo app).
    let app_c = echo_app().await;
    let state = world._tmp.path().join("gateway");
    let mut config = world.config("b", &state, Some(world.token("b").await));
    config.routes = vec![ward_proxy::config::Route {
        agent: AgentName::new("c").unwrap(),
        upstream: app_c.to_string(),
        protocol: None,
        join_token: Some(world.token("c").await),
    }];
    let gw = ward_proxy::start(config).await.unwrap();
    wait_ready(&gw).await;
    wait_endpoint(&pa, "b").await;
    wait_endpoint(&pa, "c").await;
    let view = pa.shared.compiled().view.clone();
    assert_eq!(
        view.agents["b"].endpoint, view.agents["c"].endpoint,
        "one listener"
    );

    // a → b is allowed and reaches b's app with b's decision.
    let (status, _, body) = call(&pa, "GET", "b", "/x", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["host"], world.app.to_string());
    // a → c reaches the gateway as c (c's certificate, c as the resource):
    // no policy permits it, so it is denied and audited against c.
    let (status, _, body) = call(&pa, "GET", "c", "/x", &[]).await;
    assert_eq!(status, 403, "{body}");
    let record = audited(&gw, body["decision_id"].as_str().unwrap());
    assert_eq!(record.resource, "Agent::\"c\"");
    // c has its own identity, persisted beside the gateway's.
    let c = &gw.shared.routes["c"];
    assert_eq!(
        c.identity.spiffe_id.as_str(),
        "spiffe://example.org/agent/c"
    );
    assert!(state.join("agents/c/identity.pem").exists());
    gw.shutdown(Duration::from_secs(5)).await;
    pa.shutdown(Duration::from_secs(5)).await;
}

/// Until every connected proxy enforces `revision` (the server's receipts).
async fn enforced(world: &World, revision: u64) {
    let receipts: Value = world
        .admin()
        .get(&format!("/v1/receipts/{revision}?timeout_ms=10000"))
        .await
        .unwrap();
    assert_eq!(receipts["pending"], json!([]), "{receipts}");
}

/// Quarantine confines a caller by Ward's built-in forbid, which no permit
/// in the bundle widens: it reaches only agents labelled
/// `quarantine=reachable`, and release restores it. The refusal names the
/// policy and is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_confines_a_caller_until_release() {
    let world = World::new(Duration::from_secs(3600)).await;
    let pa = world.proxy("a", None).await;
    let pb = world.proxy("b", None).await;
    wait_endpoint(&pa, "b").await;
    let (status, _, body) = call(&pa, "GET", "b", "/before", &[]).await;
    assert_eq!(status, 200, "{body}");

    let agent: Value = world
        .admin()
        .call(Method::POST, "/v1/agents/a/quarantine", None::<&()>)
        .await
        .unwrap();
    enforced(&world, agent["revision"].as_u64().unwrap()).await;
    let (status, _, body) = call(&pa, "GET", "b", "/during", &[]).await;
    assert_eq!(status, 403, "{body}");
    let record = audited(&pb, body["decision_id"].as_str().unwrap());
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.policies, ["ward-quarantine"]);
    assert!(
        record.reasons[0].contains("quarantined"),
        "{:?}",
        record.reasons
    );

    // An operator opens one path out: b is labelled reachable.
    let b: Value = world
        .admin()
        .call(
            Method::PATCH,
            "/v1/agents/b",
            Some(&json!({"attributes": {"team": "t", "labels": {"quarantine": "reachable"}}})),
        )
        .await
        .unwrap();
    enforced(&world, b["revision"].as_u64().unwrap()).await;
    let (status, _, body) = call(&pa, "GET", "b", "/reachable", &[]).await;
    assert_eq!(status, 200, "{body}");

    // Unlabelled again, still refused; released, allowed.
    let b: Value = world
        .admin()
        .call(
            Method::PATCH,
            "/v1/agents/b",
            Some(&json!({"attributes": {"team": "t"}})),
        )
        .await
        .unwrap();
    enforced(&world, b["revision"].as_u64().unwrap()).await;
    let (status, _, _) = call(&pa, "GET", "b", "/still", &[]).await;
    assert_eq!(status, 403);
    let agent: Value = world
        .admin()
        .call(Method::POST, "/v1/agents/a/release", None::<&()>)
        .await
        .unwrap();
    enforced(&world, agent["revision"].as_u64().unwrap()).await;
    let (status, _, body) = call(&pa, "GET", "b", "/after", &[]).await;
    assert_eq!(status, 200, "{body}");
}

/// CA rotation to a new root under continuous load: the new root is staged
/// (every proxy trusts it before anything is issued from it), activated
/// (both proxies re-enroll at once, without waiting for half-life), and the
/// old root retired — with not one failed request. Afterwards a
/// certificate from the old CA is refused at the handshake, and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_to_a_new_root_under_load_fails_no_request() {
    // Hour-long SVIDs: only the rotation makes the proxies re-enroll.
    let world = World::new(Duration::from_secs(3600)).await;
    let pa = world.proxy("a", None).await;
    let pb = world.proxy("b", None).await;
    wait_endpoint(&pa, "b").await;
    let issuer =
        |p: &Proxy| ward_identity::ca::authority_id(&p.shared.identity.current().0.chain()[1]);
    let old = issuer(&pa);
    assert_eq!(issuer(&pb), old);

    let admin = world.admin();
    let rotation = tokio::spawn(async move {
        let staged: Value = admin
            .call(Method::POST, "/v1/ca/rotate", Some(&json!({"root": true})))
            .await
            .unwrap();
        let receipts: Value = admin
            .get(&format!(
                "/v1/receipts/{}?timeout_ms=10000",
                staged["revision"]
            ))
            .await
            .unwrap();
        assert_eq!(receipts["pending"], json!([]), "{receipts}");
        let id = staged["id"].as_str().unwrap().to_owned();
        activate(&admin, &id).await;
        id
    });
    let mut ok = 0u32;
    let mut load = async |until: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !until() {
            assert!(Instant::now() < deadline, "timed out under load");
            let (status, _, body) = call(&pa, "GET", "b", "/load", &[]).await;
            assert_eq!(
                status, 200,
                "request {ok} failed during CA rotation: {body}"
            );
            ok += 1;
        }
    };
    load(&mut || rotation.is_finished()).await;
    let new = rotation.await.unwrap();
    assert_ne!(new, old);
    // Both proxies re-enroll from the new authority, promptly.
    load(&mut || issuer(&pa) == new && issuer(&pb) == new).await;
    // The bundle each proxy holds carries both roots until retirement.
    assert_eq!(pa.shared.trust_bundle().x509_authorities.len(), 2);

    // The admin renews from the new authority (as `ward ca rotate` does),
    // with a key made here; the server keeps its old-root SVID until the
    // old root is retired, so the pre-rotation admin client still works.
    let admin_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let admin_id = ward_core::SpiffeId::new("spiffe://example.org/admin/admin").unwrap();
    let csr = ward_identity::csr::create(&admin_key, &admin_id).unwrap();
    use base64::Engine as _;
    let renewed: Value = world
        .admin()
        .call(
            Method::POST,
            "/v1/renew",
            Some(&json!({"csr": base64::engine::general_purpose::STANDARD.encode(csr.as_ref())})),
        )
        .await
        .unwrap();
    let admin_svid = X509Svid::from_pem(renewed["svid"].as_str().unwrap()).unwrap();
    assert_eq!(ward_identity::ca::authority_id(&admin_svid.chain()[1]), new);
    assert!(renewed["not_after"].as_i64().unwrap() > ward_proxy::now_secs() + 3600);

    let retired = retire(&world.admin(), &old).await;
    // From here on only the new root is trusted, by proxies and server.
    let admin = Client::new(
        &world.server_addr.to_string(),
        &pa.shared.trust_bundle(),
        Some((&admin_svid, &admin_key)),
    )
    .unwrap();
    let receipts: Value = admin
        .get(&format!(
            "/v1/receipts/{}?timeout_ms=10000",
            retired["revision"]
        ))
        .await
        .unwrap();
    assert_eq!(receipts["pending"], json!([]), "{receipts}");
    assert!(
        world.admin().get::<Value>("/v1/ca").await.is_err(),
        "the old admin certificate is no longer trusted"
    );
    assert_eq!(pa.shared.trust_bundle().x509_authorities.len(), 1);
    assert_eq!(pb.shared.trust_bundle().x509_authorities.len(), 1);
    let after_retire = Instant::now() + Duration::from_secs(2);
    load(&mut || Instant::now() > after_retire).await;
    eprintln!("{ok} requests through the CA rotation, none failed");

    // The retired root's certificates no longer get through.
    let (chain, key) = mint(&world, "a", Duration::from_secs(600));
    let before = handshake_denials(&pb).len();
    let refused = tls_probe(pb.inbound, chain, key).await;
    assert!(
        !refused.as_ref().is_ok_and(|a| a.starts_with("HTTP/")),
        "{refused:?}"
    );
    wait_until("the refusal audited", || {
        handshake_denials(&pb).len() > before
    })
    .await;
    pa.shutdown(Duration::from_secs(5)).await;
    pb.shutdown(Duration::from_secs(5)).await;
}

/// Retiring a CA authority closes the connections its certificates opened,
/// at once, and audits each: a live connection is not grandfathered past
/// the trust it was admitted under. Adding an authority (staging a
/// rotation) cuts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_a_ca_cuts_the_connections_it_authenticated() {
    let world = World::new(Duration::from_secs(3600)).await;
    let pb = world.proxy("b", None).await;
    let issuer =
        |p: &Proxy| ward_identity::ca::authority_id(&p.shared.identity.current().0.chain()[1]);
    let old = issuer(&pb);
    // A keep-alive connection from `a` with a certificate of the old root.
    let (chain, key) = mint(&world, "a", Duration::from_secs(600));
    let mut held = tls_connect(pb.inbound, chain, key).await.unwrap();
    let first = tls_request(&mut held).await.unwrap();
    assert!(first.starts_with("HTTP/1.1 "), "{first}");

    // Stage and activate a new root: the bundle grows, nothing is cut.
    let admin = world.admin();
    let staged: Value = admin
        .call(Method::POST, "/v1/ca/rotate", Some(&json!({"root": true})))
        .await
        .unwrap();
    let id = staged["id"].as_str().unwrap().to_owned();
    activate(&admin, &id).await;
    wait_until("b re-enrolled from the new root", || issuer(&pb) == id).await;
    wait_until("b trusts both roots", || {
        pb.shared.trust_bundle().x509_authorities.len() == 2
    })
    .await;
    let again = tls_request(&mut held).await.unwrap();
    assert!(again.starts_with("HTTP/1.1 "), "still open: {again}");
    let cut_before = cut_records(&pb).len();
    assert_eq!(cut_before, 0);

    // Retire the old root: the held connection is closed and audited.
    retire(&admin, &old).await;
    wait_until("b dropped the old root", || {
        pb.shared.trust_bundle().x509_authorities.len() == 1
    })
    .await;
    let after = tls_request(&mut held).await;
    assert!(
        !after.as_ref().is_ok_and(|a| a.starts_with("HTTP/")),
        "the connection authenticated by the retired root still answers: {after:?}"
    );
    wait_until("the cut audited", || !cut_records(&pb).is_empty()).await;
    let cut = cut_records(&pb);
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(
        cut[0]
            .principal
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("spiffe://example.org/agent/a")
    );
    assert!(
        cut[0].reasons[0].contains("trust bundle no longer verifies"),
        "{:?}",
        cut[0].reasons
    );
    let metrics = pb.shared.metrics.render();
    assert!(
        metrics.contains("ward_proxy_connections_cut_total{reason=\"untrusted\"} 1\n"),
        "{metrics}"
    );
    pb.shutdown(Duration::from_secs(5)).await;
}

/// Activates the staged CA authority `id`.
async fn activate(admin: &Client, id: &str) {
    let _: Value = admin
        .call(
            Method::POST,
            &format!("/v1/ca/authorities/{id}/activate"),
            None::<&()>,
        )
        .await
        .unwrap();
}

/// Retires CA authority `id` at once (`force`: its certificates may still
/// be valid); returns the server's answer.
async fn retire(admin: &Client, id: &str) -> Value {
    admin
        .call(
            Method::POST,
            &format!("/v1/ca/authorities/{id}/retire"),
            Some(&json!({"force": true})),
        )
        .await
        .unwrap()
}

/// Audit records of open connections a proxy cut.
fn cut_records(proxy: &Proxy) -> Vec<AuditRecord> {
    records(proxy)
        .into_iter()
        .filter(|r| {
            r.action == "connect"
                && r.decision == Decision::Deny
                && r.reasons
                    .iter()
                    .any(|why| why.starts_with("open connection cut"))
        })
        .collect()
}

/// A proxy that was down while an agent was revoked applies the revocation
/// before it serves again: `start` returns only once the view has caught up
/// with the server, so its very first request from the revoked identity is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_proxy_applies_missed_revocations_before_serving() {
    let world = World::new(Duration::from_secs(600)).await;
    let pb = world.proxy("b", None).await;
    let state = world._tmp.path().join("proxy-b");
    pb.shutdown(Duration::from_secs(5)).await;

    let revoked: Value = world
        .admin()
        .call(
            Method::POST,
            "/v1/agents/a/revoke",
            Some(&json!({"reason": "compromised while b was down"})),
        )
        .await
        .unwrap();
    let revision = revoked["revocation"]["revision"].as_u64().unwrap();

    let pb = ward_proxy::start(world.config("b", &state, None))
        .await
        .unwrap();
    let view = pb.shared.compiled().view.clone();
    assert!(
        view.revision >= revision,
        "serving at revision {} before applying {revision}",
        view.revision
    );
    assert!(view.revoked_agents.contains("a"));

    // A still-valid certificate of a, presented straight to b's inbound
    // port, gets no HTTP answer from b's app.
    let (chain, key) = mint(&world, "a", Duration::from_secs(600));
    let answer = tls_probe(pb.inbound, chain, key).await;
    assert!(
        !answer.as_ref().is_ok_and(|a| a.starts_with("HTTP/1.1 200")),
        "{answer:?}"
    );
    pb.shutdown(Duration::from_secs(5)).await;
}

/// POSTs `body` to the admin listener; returns status, `x-request-id` and
/// the JSON answer.
async fn admin_post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::post(path)
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .header("x-request-id", "req-7")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        id,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Fail closed on audit: once B's spool cannot take a record, an allowed
/// call through the mesh and an AuthZEN batch on B's admin listener are
/// refused with 503 `audit-unavailable` naming a decision id, and every
/// unwritten record is counted (there is no log left to write the refusal
/// to; the counter and the error log are its trace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_cannot_be_audited_is_refused() {
    let world = World::new(Duration::from_secs(600)).await;
    let pa = world.proxy("a", None).await;
    let pb = world.proxy("b", None).await;
    wait_endpoint(&pa, "b").await;
    let (status, _, body) = call(&pa, "GET", "b", "/before", &[]).await;
    assert_eq!(status, 200, "{body}");
    let failures = |proxy: &Proxy| -> u64 {
        let text = proxy.shared.metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix("ward_proxy_audit_failures_total "))
            .unwrap_or_else(|| panic!("no audit failure counter in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(failures(&pb), 0);

    // B's spool writer stops: from now on every write fails.
    pb.shared.audit.close();
    let (status, _, body) = call(&pa, "GET", "b", "/after", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:ward:problem:audit-unavailable", "{body}");
    assert!(
        body["decision_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32),
        "{body}"
    );
    assert_eq!(failures(&pb), 1);

    // An AuthZEN batch: both decisions are made, neither is answered.
    let batch = json!({
        "subject": {"type": "agent", "id": "a"},
        "resource": {"type": "agent", "id": "b"},
        "evaluations": [{"action": {"name": "GET"}}, {"action": {"name": "DELETE"}}],
    });
    let (status, _, body) = admin_post(pb.admin, "/access/v1/evaluations", &batch).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:ward:problem:audit-unavailable", "{body}");
    assert!(body.get("evaluations").is_none(), "{body}");
    assert_eq!(failures(&pb), 3, "both of the batch's records are counted");
}

/// Each proxy answers AuthZEN on its admin listener from the bundle and
/// registry it enforces: the same decisions its inbound path makes, batch
/// semantics per the spec, malformed requests refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_answers_authzen_from_the_enforced_bundle() {
    let world = World::new(Duration::from_secs(600)).await;
    let pb = world.proxy("b", None).await;
    let ask = |subject: &str, action: &str| {
        json!({
            "subject": {"type": "agent", "id": subject},
            "action": {"name": action},
            "resource": {"type": "agent", "id": "b"},
        })
    };
    let (status, id, body) = admin_post(pb.admin, "/access/v1/evaluation", &ask("a", "GET")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(id.as_deref(), Some("req-7"));
    assert_eq!(body["decision"], true);
    assert_eq!(body["context"]["policies"], json!(["a-calls-b"]));
    // The version is the signed bundle's, the one `ward policy list` shows
    // (Ward's built-in quarantine policy rides along but is not counted).
    assert_eq!(
        body["context"]["policy_version"],
        pb.shared
            .compiled()
            .view
            .policy
            .as_ref()
            .unwrap()
            .version
            .as_str()
    );
    // The decision is spooled for the audit log under the id it was
    // answered with.
    let record = audited(&pb, body["context"]["id"].as_str().unwrap());
    assert_eq!(record.decision, Decision::Allow);
    assert_eq!(record.request.path, "/access/v1/evaluation");
    assert!(
        record.reasons[0].starts_with("AuthZEN subject Agent::"),
        "{:?}",
        record.reasons
    );
    // The forbid wins, with its reason; an unknown caller is denied.
    let (_, _, body) = admin_post(pb.admin, "/access/v1/evaluation", &ask("a", "DELETE")).await;
    assert_eq!(body["decision"], false);
    assert_eq!(body["context"]["reason_admin"]["en"], "nobody deletes on b");
    let record = audited(&pb, body["context"]["id"].as_str().unwrap());
    assert_eq!(record.decision, Decision::Deny);
    let (_, _, body) = admin_post(pb.admin, "/access/v1/evaluation", &ask("c", "GET")).await;
    assert_eq!(body["decision"], false);

    let batch = json!({
        "resource": {"type": "agent", "id": "b"},
        "subject": {"type": "agent", "id": "a"},
        "evaluations": [
            {"action": {"name": "GET"}},
            {"action": {"name": "DELETE"}},
            {"action": {"name": "POST"}},
        ],
        "options": {"evaluations_semantic": "deny_on_first_deny"},
    });
    let (status, _, body) = admin_post(pb.admin, "/access/v1/evaluations", &batch).await;
    assert_eq!(status, 200, "{body}");
    let decisions: Vec<&Value> = body["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["decision"])
        .collect();
    assert_eq!(
        decisions,
        [&json!(true), &json!(false)],
        "stops at the deny"
    );

    let (status, _, body) = admin_post(
        pb.admin,
        "/access/v1/evaluation",
        &json!({"subject": {"type": "agent", "id": "a"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let config = http_get(pb.admin, "/.well-known/authzen-configuration").await;
    assert!(config.contains("/access/v1/evaluations"), "{config}");
    pb.shutdown(Duration::from_secs(5)).await;
}
