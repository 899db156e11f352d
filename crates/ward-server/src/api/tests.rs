use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use ward_core::{SpiffeId, TrustDomain};
use ward_identity::ca::{CaOptions, CertificateAuthority, DEFAULT_SVID_TTL};
use ward_identity::verify::{AnyMember, ChainVerifier, Usage};
use ward_identity::{KeyAlgorithm, PeerIdentity, PrivateKey, TrustBundle, X509Svid, csr};

use super::*;
use crate::store::{RevocationTarget, Store};

struct Harness {
    state: AppState,
    admin: Caller,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    harness_with_policy(None).await
}

async fn harness_with_policy(policy_dir: Option<&std::path::Path>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("w.db").display()))
        .await
        .unwrap();
    let td = TrustDomain::new("ward.test").unwrap();
    // A real CA directory, so the rotation endpoints work as on a server.
    let generated = CertificateAuthority::generate(&td, &CaOptions::default()).unwrap();
    CertificateAuthority::write(&generated, &dir.path().join("ca")).unwrap();
    let authorities =
        crate::authority::Authorities::open(&dir.path().join("ca"), td.clone(), &store)
            .await
            .unwrap();
    let admin_id = SpiffeId::new("spiffe://ward.test/admin/alice").unwrap();
    store.add_admin(&admin_id, "alice", 0).await.unwrap();
    let admin = Caller(Some(PeerIdentity {
        spiffe_id: admin_id,
        serial: ward_identity::svid::Serial::from_bytes(&[1]),
        not_after: i64::MAX,
    }));
    let pdp = Arc::new(crate::policy::Pdp::load(policy_dir).unwrap());
    pdp.refresh(&store).await.unwrap();
    Harness {
        state: AppState {
            store,
            authorities,
            svid_ttl: DEFAULT_SVID_TTL,
            stopping: Arc::new(tokio::sync::watch::channel(false).0),
            started: std::time::Instant::now(),
            pdp,
            policy_signer: Arc::new(
                ward_identity::PrivateKey::generate(ward_identity::KeyAlgorithm::Ed25519).unwrap(),
            ),
            audit: crate::audit::AuditLog::open_in(dir.path(), &td).unwrap(),
            server_id: SpiffeId::new("spiffe://ward.test/ward/server").unwrap(),
        },
        admin,
        _dir: dir,
    }
}

impl Harness {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        caller: &Caller,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let mut req = req
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        req.extensions_mut().insert(caller.clone());
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value, ctype)
    }

    /// Registers `name` and enrolls it with a fresh key; returns the key,
    /// the issued SVID and the enrollment response.
    async fn enroll(&self, name: &str) -> (PrivateKey, X509Svid, Value) {
        let token = self.register_with_token(name).await;
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let id = format!("spiffe://ward.test/agent/{name}");
        let (s, body, _) = self
            .call(
                "POST",
                "/v1/enroll",
                &Caller::default(),
                Some(json!({"join_token": token, "csr": csr_b64(&key, &id)})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let svid = X509Svid::from_pem(body["svid"].as_str().unwrap()).unwrap();
        (key, svid, body)
    }

    async fn register_with_token(&self, name: &str) -> String {
        let (s, _, _) = self
            .call(
                "POST",
                "/v1/agents",
                &self.admin,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, body, _) = self
            .call(
                "POST",
                &format!("/v1/agents/{name}/tokens"),
                &self.admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

fn csr_b64(key: &PrivateKey, id: &str) -> String {
    let der = csr::create(key, &SpiffeId::new(id).unwrap()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(der.as_ref())
}

fn caller_of(svid: &X509Svid) -> Caller {
    Caller(Some(PeerIdentity {
        spiffe_id: svid.spiffe_id().clone(),
        serial: svid.leaf().serial.clone(),
        not_after: svid.leaf().not_after,
    }))
}

#[tokio::test]
async fn enroll_then_renew() {
    let h = harness().await;
    let token = h.register_with_token("planner").await;
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let id = "spiffe://ward.test/agent/planner";
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/enroll",
            &Caller::default(),
            Some(json!({"join_token": token, "csr": csr_b64(&key, id)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["spiffe_id"], id);
    let svid = X509Svid::from_pem(body["svid"].as_str().unwrap()).unwrap();
    // The returned chain verifies against the returned bundle.
    let bundle = TrustBundle::from_json(
        TrustDomain::new("ward.test").unwrap(),
        body["bundle"].to_string().as_bytes(),
    )
    .unwrap();
    let verifier = ChainVerifier::new(&bundle).unwrap();
    let chain = svid.chain();
    verifier
        .verify(
            &chain[0],
            &chain[1..],
            Usage::Client,
            rustls_pki_types_now(),
            &AnyMember,
        )
        .unwrap();
    // The issued certificate is on record.
    assert!(
        h.state
            .store
            .certificate(svid.leaf().serial.as_str())
            .await
            .unwrap()
            .is_some()
    );

    // Renew with the current SVID and a fresh key.
    let next_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/renew",
            &caller_of(&svid),
            Some(json!({"csr": csr_b64(&next_key, id)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_ne!(body["serial"], svid.leaf().serial.as_str());
}

fn rustls_pki_types_now() -> rustls_pki_types::UnixTime {
    rustls_pki_types::UnixTime::now()
}

#[tokio::test]
async fn enrollment_refusals() {
    let h = harness().await;
    let token = h.register_with_token("researcher").await;
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    // A CSR for another identity is refused, and burns the token.
    let (s, body, ctype) = h
        .call(
            "POST",
            "/v1/enroll",
            &Caller::default(),
            Some(json!({"join_token": token, "csr": csr_b64(&key, "spiffe://ward.test/agent/admin-bot")})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(body["type"], "urn:ward:problem:refused");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("authorized only for spiffe://ward.test/agent/researcher")
    );
    let good = csr_b64(&key, "spiffe://ward.test/agent/researcher");
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/enroll",
            &Caller::default(),
            Some(json!({"join_token": token, "csr": good})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "token must be single-use: {body}");

    // Unknown token, garbage CSR, unknown fields.
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/enroll",
            &Caller::default(),
            Some(json!({"join_token": "wardjt_nope", "csr": good})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let token = h.register_with_token("other").await;
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/enroll",
            &Caller::default(),
            Some(json!({"join_token": token, "csr": "%%%"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/enroll",
            &Caller::default(),
            Some(json!({"join_token": "x", "csr": "", "admin": true})),
        )
        .await;
    assert!(s.is_client_error());
}

#[tokio::test]
async fn renewal_refusals() {
    let h = harness().await;
    let (key, svid, _) = h.enroll("tool").await;
    let id = "spiffe://ward.test/agent/tool";
    let me = caller_of(&svid);

    // Anonymous.
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/renew",
            &Caller::default(),
            Some(json!({"csr": csr_b64(&key, id)})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    // CSR for someone else.
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/renew",
            &me,
            Some(json!({"csr": csr_b64(&key, "spiffe://ward.test/agent/planner")})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A non-agent identity (an admin) cannot renew as an agent.
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/renew",
            &h.admin,
            Some(json!({"csr": csr_b64(&key, id)})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Revoked serial.
    h.state
        .store
        .revoke(
            &RevocationTarget::Serial(svid.leaf().serial.to_string()),
            "stolen",
            0,
        )
        .await
        .unwrap();
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/renew",
            &me,
            Some(json!({"csr": csr_b64(&key, id)})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    // Retired agent.
    let (s, _, _) = h
        .call("POST", "/v1/agents/tool/retire", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let fresh = caller_of(&svid);
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/renew",
            &fresh,
            Some(json!({"csr": csr_b64(&key, id)})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body["detail"].as_str().unwrap().contains("retired")
            || body["detail"].as_str().unwrap().contains("revoked")
    );
    // Each refused renewal is in the audit log, naming the caller and why.
    let refusals: Vec<_> = audit::log_entries(&h)
        .into_iter()
        .filter(|r| r.action == "svid/renew")
        .collect();
    assert!(refusals.len() >= 2, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|r| r.principal.as_ref() == Some(svid.spiffe_id()))
    );
    assert!(
        refusals
            .iter()
            .any(|r| r.reasons.iter().any(|reason| reason.contains("revoked"))),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn admin_endpoints_require_an_admin() {
    let h = harness().await;
    let (s, body, ctype) = h.call("GET", "/v1/agents", &Caller::default(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(body["status"], 401);
    let not_admin = Caller(Some(PeerIdentity {
        spiffe_id: SpiffeId::new("spiffe://ward.test/agent/planner").unwrap(),
        serial: ward_identity::svid::Serial::from_bytes(&[2]),
        not_after: i64::MAX,
    }));
    let (s, _, _) = h
        .call("POST", "/v1/agents", &not_admin, Some(json!({"name": "x"})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        h.state.store.agents().await.unwrap().is_empty(),
        "nothing was registered"
    );
}

#[tokio::test]
async fn admin_registry_round_trip() {
    let h = harness().await;
    let (s, body, _) = h
        .call("POST", "/v1/agents", &h.admin, Some(json!({"name": "planner", "attributes": {"team": "core", "labels": {"env": "dev"}}})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["spiffe_id"], "spiffe://ward.test/agent/planner");
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/agents",
            &h.admin,
            Some(json!({"name": "planner"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/agents",
            &h.admin,
            Some(json!({"name": "Bad Name"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("agent name"));
    let (s, body, _) = h
        .call(
            "PATCH",
            "/v1/agents/planner",
            &h.admin,
            Some(json!({"endpoint": "127.0.0.1:15006"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["endpoint"], "127.0.0.1:15006");
    assert_eq!(body["attributes"]["team"], "core");
    let (s, body, _) = h.call("GET", "/v1/agents", &h.admin, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (s, _, _) = h.call("GET", "/v1/agents/ghost", &h.admin, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/agents/planner/tokens",
            &h.admin,
            Some(json!({"ttl_secs": 999_999})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, body, ctype) = h.call("GET", "/v1/nope", &h.admin, None).await;
    assert_eq!(
        (s, ctype.as_str()),
        (StatusCode::NOT_FOUND, "application/problem+json"),
        "{body}"
    );
}

mod audit;
mod ca;
mod policy;
mod watch;
