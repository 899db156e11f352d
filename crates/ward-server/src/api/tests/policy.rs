//! Cedar decides the admin API, and the AuthZEN API answers the spec's own
//! examples (tests/fixtures/authzen, transcribed from AuthZEN 1.0).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Harness, harness, harness_with_policy};
use crate::api::{Caller, router};

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/authzen")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A bundle that gives the spec's example vocabulary (users, accounts,
/// documents, can_read/read) meaning: alice may read account 123 and
/// documents 1 and 3, not 2.
fn spec_bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.cedarschema"),
        "entity account;\nentity document;\naction can_read, read appliesTo { principal: [Human], resource: [account, document], context: { time?: String } };\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spec.cedar"),
        r#"@id("alice-account")
@reason("alice owns account 123")
permit (principal == Human::"alice@example.com", action == Action::"can_read", resource == account::"123");
@id("open-docs")
permit (principal, action == Action::"read", resource is document)
when { resource == document::"1" || resource == document::"3" };
@id("no-admin-retire")
@reason("retiring agents needs a change ticket")
forbid (principal, action == Action::"agent/retire", resource);
"#,
    )
    .unwrap();
    dir
}

impl Harness {
    async fn post_raw(
        &self,
        uri: &str,
        caller: &Caller,
        body: Value,
        request_id: Option<&str>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        let mut req = req.body(Body::from(body.to_string())).unwrap();
        req.extensions_mut().insert(caller.clone());
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let echoed = resp
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            echoed,
        )
    }
}

fn decisions(body: &Value) -> Vec<bool> {
    body["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_bool().unwrap())
        .collect()
}

#[tokio::test]
async fn authzen_answers_the_spec_examples() {
    let bundle = spec_bundle();
    let h = harness_with_policy(Some(bundle.path())).await;

    // §6.1.1 → permit, with Ward's decision context; X-Request-ID echoed.
    let (s, body, echoed) = h
        .post_raw(
            "/access/v1/evaluation",
            &h.admin,
            fixture("6.1.1-evaluation-request.json"),
            Some("req-42"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["decision"], true);
    assert_eq!(body["context"]["policies"], json!(["alice-account"]));
    assert_eq!(
        body["context"]["reason_admin"]["en"],
        "alice owns account 123"
    );
    assert_eq!(body["context"]["id"].as_str().unwrap().len(), 32);
    assert_eq!(echoed.as_deref(), Some("req-42"));
    // The decision is in the audit log under the id it was answered with,
    // naming who asked, about whom, and the policy that decided.
    let id = body["context"]["id"].as_str().unwrap();
    let record = super::audit::log_entries(&h)
        .into_iter()
        .find(|r| r.decision_id == id)
        .expect("the AuthZEN decision is audited");
    assert_eq!(record.decision, ward_audit::record::Decision::Allow);
    assert_eq!(record.policies, vec!["alice-account".to_owned()]);
    assert_eq!(record.request.path, "/access/v1/evaluation");
    assert!(
        record.reasons[0].starts_with("AuthZEN subject "),
        "{:?}",
        record.reasons
    );
    assert_eq!(
        record
            .principal
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("spiffe://ward.test/admin/alice")
    );

    // §7.1.2.1: each semantic gives the spec's decisions and length.
    for (name, expected) in [
        ("execute-all", vec![true, false, true]),
        ("deny-on-first-deny", vec![true, false]),
        ("permit-on-first-permit", vec![true]),
    ] {
        let (s, body, _) = h
            .post_raw(
                "/access/v1/evaluations",
                &h.admin,
                fixture(&format!("7.1.2.1-{name}-request.json")),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
        assert_eq!(decisions(&body), expected, "{name}");
        // Every decision made in the batch is audited, denials included.
        let logged = super::audit::log_entries(&h);
        for item in body["evaluations"].as_array().unwrap() {
            let id = item["context"]["id"].as_str().unwrap();
            let record = logged.iter().find(|r| r.decision_id == id);
            assert_eq!(
                record.map(|r| r.decision == ward_audit::record::Decision::Allow),
                Some(item["decision"] == true),
                "{name}: {id}"
            );
        }
        let spec: Vec<bool> = decisions(&fixture(&format!("7.1.2.1-{name}-response.json")));
        assert_eq!(
            decisions(&body),
            spec,
            "{name} differs from the spec's response"
        );
    }

    // §7.1.1: top-level defaults apply to every item (none of these
    // documents is readable with can_read).
    let (s, body, _) = h
        .post_raw(
            "/access/v1/evaluations",
            &h.admin,
            fixture("7.1.1-evaluations-defaults-request.json"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(decisions(&body), vec![false, false, false]);

    // The spec's options example has no action at all: 400 for a single
    // evaluation, an item error (decision false, HTTP 200) in a batch.
    let (s, body, _) = h
        .post_raw(
            "/access/v1/evaluations",
            &h.admin,
            fixture("7.1.2-evaluations-options-request.json"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for item in body["evaluations"].as_array().unwrap() {
        assert_eq!(item["decision"], false);
        assert_eq!(item["context"]["error"]["status"], 400);
    }
}

#[tokio::test]
async fn authzen_refusals_and_metadata() {
    let h = harness().await;
    let req = json!({
        "subject": {"type": "agent", "id": "planner"},
        "action": {"name": "GET"},
        "resource": {"type": "agent", "id": "researcher"},
        "context": {"risk_score": 10, "unknown_extra_field_is_ignored_by_spec": null}
    });
    // Unauthenticated callers get 401.
    let (s, _, _) = h
        .post_raw(
            "/access/v1/evaluation",
            &Caller::default(),
            req.clone(),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A context that violates the schema is a 400, never a decision.
    let (s, body, _) = h
        .post_raw("/access/v1/evaluation", &h.admin, req, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let bad_type = json!({
        "subject": {"type": "agent", "id": "planner"},
        "action": {"name": "GET"},
        "resource": {"type": "agent", "id": "researcher"},
        "context": {"risk_score": "high"}
    });
    let (s, _, _) = h
        .post_raw("/access/v1/evaluation", &h.admin, bad_type, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let missing = json!({"subject": {"type": "agent", "id": "planner"}, "action": {"name": "GET"}});
    let (s, body, _) = h
        .post_raw("/access/v1/evaluation", &h.admin, missing, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("resource"),
        "{body}"
    );
    // Default deny: no data-plane policy is loaded, so a well-formed request
    // is denied with HTTP 200.
    let ok = json!({
        "subject": {"type": "agent", "id": "planner"},
        "action": {"name": "GET"},
        "resource": {"type": "agent", "id": "researcher"},
        "context": {"path": "/v1/notes", "unknown": 1}
    });
    let (s, body, _) = h
        .post_raw("/access/v1/evaluation", &h.admin, ok.clone(), None)
        .await;
    // `unknown` is not in the schema's context: Cedar refuses the request.
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let mut ok = ok;
    ok["context"].as_object_mut().unwrap().remove("unknown");
    let (s, body, _) = h
        .post_raw("/access/v1/evaluation", &h.admin, ok, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["decision"], false);

    let mut req = Request::builder()
        .uri("/.well-known/authzen-configuration")
        .header("host", "ward.example:8443")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(Caller::default());
    let resp = router(h.state.clone()).oneshot(req).await.unwrap();
    let meta: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(meta["policy_decision_point"], "https://ward.example:8443");
    assert_eq!(
        meta["access_evaluation_endpoint"],
        "https://ward.example:8443/access/v1/evaluation"
    );
    assert_eq!(
        meta["access_evaluations_endpoint"],
        "https://ward.example:8443/access/v1/evaluations"
    );
}

/// The admin plane is decided by Cedar: an operator's forbid overrides the
/// default admin permit, and an agent is no admin unless policy says so.
#[tokio::test]
async fn admin_calls_are_decided_by_policy() {
    let bundle = spec_bundle();
    let h = harness_with_policy(Some(bundle.path())).await;
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/agents",
            &h.admin,
            Some(json!({"name": "alpha"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body, ctype) = h
        .call("POST", "/v1/agents/alpha/retire", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(ctype, "application/problem+json");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("retiring agents needs a change ticket"),
        "{detail}"
    );
    assert!(detail.contains("(decision "), "{detail}");
    // Everything else the default admin policy still allows.
    let (s, _, _) = h.call("GET", "/v1/agents/alpha", &h.admin, None).await;
    assert_eq!(s, StatusCode::OK);
}

fn example_files() -> Vec<Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let mut files = Vec::new();
    for (dir, prefix) in [(root.clone(), ""), (root.join("tests"), "tests/")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                files.push(json!({
                    "name": format!("{prefix}{}", p.file_name().unwrap().to_str().unwrap()),
                    "text": std::fs::read_to_string(&p).unwrap(),
                }));
            }
        }
    }
    files
}

async fn can_read(h: &Harness) -> bool {
    let req = json!({
        "subject": {"type": "agent", "id": "planner"},
        "action": {"name": "GET"},
        "resource": {"type": "agent", "id": "researcher"},
    });
    let (s, body, _) = h
        .post_raw("/access/v1/evaluation", &h.admin, req, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["decision"].as_bool().unwrap()
}

#[tokio::test]
async fn push_validates_tests_signs_activates_and_rolls_back() {
    let h = harness().await;
    for name in ["planner", "researcher"] {
        let (s, _, _) = h
            .call(
                "POST",
                "/v1/agents",
                &h.admin,
                Some(json!({"name": name, "attributes": {"team": "research", "risk_tier": "low"}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    h.state.pdp.refresh(&h.state.store).await.unwrap();
    assert!(!can_read(&h).await, "default deny before any push");
    let (_, mut events) = h.watch("", &h.admin, None).await;
    let snap = events.next().await;
    assert!(snap.data["policy"].is_null());
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        snap.data["policy_signing_key"].as_str().unwrap(),
    )
    .unwrap();

    let (s, v1, _) = h
        .call(
            "POST",
            "/v1/policies",
            &h.admin,
            Some(json!({"files": example_files()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v1}");
    let version = v1["version"].as_str().unwrap().to_owned();
    assert_eq!(version.len(), 64);
    assert_eq!(v1["tests_passed"], 6);
    // The signature verifies with the key the snapshot published.
    let sig = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v1["signature"].as_str().unwrap(),
    )
    .unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &key)
        .verify(&crate::api::policies::signed_message(&version), &sig)
        .expect("server signature");
    // Watchers get the activation with its files.
    let change = loop {
        let e = events.next().await;
        if e.data["kind"] == "policy" {
            break e;
        }
    };
    assert_eq!(change.data["payload"]["version"], version.as_str());
    assert!(change.data["payload"]["files"].as_array().unwrap().len() >= 3);
    assert!(can_read(&h).await, "the pushed bundle is in force");

    // A bundle whose own tests fail is refused and nothing changes.
    let mut broken = example_files();
    for f in &mut broken {
        if f["name"] == "agents.cedar" {
            f["text"] = json!("@id(\"open\")\npermit (principal, action, resource);\n");
        }
    }
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/policies",
            &h.admin,
            Some(json!({"files": broken})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("outsiders are denied by default"),
        "{body}"
    );
    // An invalid policy is refused with its location.
    let invalid = json!({"files": [{"name": "bad.cedar", "text": "permit (principal, action\n"}]});
    let (s, body, _) = h
        .call("POST", "/v1/policies", &h.admin, Some(invalid))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("bad.cedar:1:"),
        "{body}"
    );
    // Path tricks in names are refused.
    let sneaky = json!({"files": [{"name": "../etc/x.cedar", "text": ""}]});
    let (s, _, _) = h.call("POST", "/v1/policies", &h.admin, Some(sneaky)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, list, _) = h.call("GET", "/v1/policies", &h.admin, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // v2 denies everything data-plane; rollback to v1 restores reads.
    let v2_files = json!({"files": [{"name": "locked.cedar", "text": "@id(\"lockdown\")\nforbid (principal is Agent, action, resource);\n"}]});
    let (s, v2, _) = h
        .call("POST", "/v1/policies", &h.admin, Some(v2_files))
        .await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    assert!(!can_read(&h).await);
    let (s, body, _) = h
        .call(
            "POST",
            &format!("/v1/policies/{version}/activate"),
            &h.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(can_read(&h).await);
    let (_, list, _) = h.call("GET", "/v1/policies", &h.admin, None).await;
    let active: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["active"] == true)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["version"], version.as_str());
    let (s, shown, _) = h
        .call("GET", &format!("/v1/policies/{version}"), &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        shown["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "tests/agents.yaml")
    );
    let (s, _, _) = h
        .call("POST", "/v1/policies/0000/activate", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Only admins push.
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/policies",
            &Caller::default(),
            Some(json!({"files": []})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
