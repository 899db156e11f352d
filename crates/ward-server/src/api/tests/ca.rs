//! `/v1/ca`: the rotation lifecycle (stage → activate → retire), what each
//! step does to the bundle, to issuance and to the change log, the
//! transitions it refuses, and that only admins may rotate (refusal logged).

use axum::http::StatusCode;
use serde_json::{Value, json};
use ward_audit::record::Decision;
use ward_core::TrustDomain;
use ward_identity::verify::{AnyMember, ChainVerifier, Usage};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, X509Svid, ca};

use super::audit::log_entries;
use super::{Harness, caller_of, csr_b64, harness};
use crate::api::Caller;
use crate::store::ChangeKind;

fn bundle_of(json: &Value) -> TrustBundle {
    TrustBundle::from_json(
        TrustDomain::new("ward.test").unwrap(),
        json.to_string().as_bytes(),
    )
    .unwrap()
}

async fn bundle(h: &Harness) -> TrustBundle {
    let (s, body, _) = h.call("GET", "/v1/bundle", &Caller::default(), None).await;
    assert_eq!(s, StatusCode::OK);
    bundle_of(&body)
}

async fn renew(h: &Harness, svid: &X509Svid, name: &str) -> X509Svid {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let id = format!("spiffe://ward.test/agent/{name}");
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/renew",
            &caller_of(svid),
            Some(json!({"csr": csr_b64(&key, &id)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    X509Svid::from_pem(body["svid"].as_str().unwrap()).unwrap()
}

fn verifies(bundle: &TrustBundle, svid: &X509Svid) -> bool {
    ChainVerifier::new(bundle)
        .unwrap()
        .verify_uncached(
            &svid.chain()[0],
            &svid.chain()[1..],
            Usage::Client,
            rustls_pki_types::UnixTime::now(),
            &AnyMember,
        )
        .is_ok()
}

async fn status(h: &Harness) -> Value {
    let (s, body, _) = h.call("GET", "/v1/ca", &h.admin, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

fn state_of(status: &Value, id: &str) -> String {
    status["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .map(|a| a["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no authority {id} in {status}"))
}

#[tokio::test]
async fn rotation_stages_then_activates_then_retires() {
    let h = harness().await;
    let first = status(&h).await;
    let old_id = first["issuing"].as_str().unwrap().to_owned();
    assert_eq!(first["authorities"].as_array().unwrap().len(), 1);
    assert_eq!(state_of(&first, &old_id), "active");
    let (_, svid, _) = h.enroll("planner").await;
    assert_eq!(ca::authority_id(&svid.chain()[1]), old_id);
    let old_bundle = bundle(&h).await;
    assert_eq!(old_bundle.x509_authorities.len(), 1);

    // Stage a new root: trusted at once, not issuing yet.
    let (s, staged, _) = h
        .call(
            "POST",
            "/v1/ca/rotate",
            &h.admin,
            Some(json!({"root": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{staged}");
    let new_id = staged["id"].as_str().unwrap().to_owned();
    assert_eq!(staged["state"], "staged");
    let staged_rev = staged["revision"].as_u64().unwrap();
    let wide = bundle(&h).await;
    assert_eq!(wide.x509_authorities.len(), 2, "both roots are trusted");
    assert!(wide.sequence >= staged_rev);
    let change = h
        .state
        .store
        .changes_since(staged_rev - 1, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(change.revision, staged_rev);
    assert_eq!(change.kind, ChangeKind::Bundle);
    assert_eq!(change.payload["issuing"], old_id.as_str());
    assert_eq!(
        bundle_of(&change.payload["bundle"]).x509_authorities,
        wide.x509_authorities
    );
    let still_old = renew(&h, &svid, "planner").await;
    assert_eq!(ca::authority_id(&still_old.chain()[1]), old_id);
    // The new authority's key is on disk, 0600, beside the first CA.
    let key_file = h
        ._dir
        .path()
        .join("ca/authorities")
        .join(&new_id)
        .join("intermediate.key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // One rotation at a time.
    let (s, body, _) = h.call("POST", "/v1/ca/rotate", &h.admin, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("already staged"));

    // Activate: new SVIDs chain to the new root; the old authority retires
    // gracefully (still trusted).
    let (s, body, _) = h
        .call(
            "POST",
            &format!("/v1/ca/authorities/{new_id}/activate"),
            &h.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let now = status(&h).await;
    assert_eq!(now["issuing"], new_id.as_str());
    assert_eq!(state_of(&now, &old_id), "retiring");
    assert_eq!(state_of(&now, &new_id), "active");
    let rotated = renew(&h, &still_old, "planner").await;
    assert_eq!(ca::authority_id(&rotated.chain()[1]), new_id);
    assert!(verifies(&bundle(&h).await, &rotated));
    assert!(!verifies(&old_bundle, &rotated), "a different root");
    assert!(verifies(&bundle(&h).await, &still_old), "old still trusted");

    // Retiring the old one is refused while its certificates are valid…
    let retire = format!("/v1/ca/authorities/{old_id}/retire");
    let (s, body, _) = h.call("POST", &retire, &h.admin, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("still valid"),
        "{body}"
    );
    // …and done with force: its root leaves the bundle.
    let (s, body, _) = h
        .call("POST", &retire, &h.admin, Some(json!({"force": true})))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let narrow = bundle(&h).await;
    assert_eq!(narrow.x509_authorities.len(), 1);
    assert!(!verifies(&narrow, &still_old), "the retired root is gone");
    assert!(verifies(&narrow, &rotated));

    // Transitions the lifecycle forbids.
    for (path, why) in [
        (format!("/v1/ca/authorities/{old_id}/activate"), "retired"),
        (format!("/v1/ca/authorities/{new_id}/retire"), "issuing"),
        (
            "/v1/ca/authorities/0123456789abcdef/activate".to_owned(),
            "cannot activate",
        ),
    ] {
        let (s, body, _) = h.call("POST", &path, &h.admin, None).await;
        assert_eq!(s, StatusCode::CONFLICT, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{path}: {body}"
        );
    }

    // A rotation that keeps the root finds the root key under the new
    // authority's directory; the bundle does not change.
    let (s, body, _) = h.call("POST", "/v1/ca/rotate", &h.admin, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let third = body["id"].as_str().unwrap();
    let same_root = bundle(&h).await;
    assert_eq!(same_root.x509_authorities, narrow.x509_authorities);
    let (s, body, _) = h
        .call(
            "POST",
            &format!("/v1/ca/authorities/{third}/activate"),
            &h.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let third_svid = renew(&h, &rotated, "planner").await;
    assert_eq!(ca::authority_id(&third_svid.chain()[1]), third);
    assert!(verifies(&narrow, &third_svid));
    let last = status(&h).await;
    assert_eq!(state_of(&last, &new_id), "retiring");
    let rows = last["authorities"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["key_here"] == true));
    let counted: u64 = rows
        .iter()
        .map(|r| r["certificates"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 4, "every issued certificate is attributed: {last}");
}

#[tokio::test]
async fn only_admins_rotate_and_refusals_are_logged() {
    let h = harness().await;
    let (_, svid, _) = h.enroll("intruder").await;
    let agent = caller_of(&svid);
    for (method, path) in [
        ("POST", "/v1/ca/rotate".to_owned()),
        ("GET", "/v1/ca".to_owned()),
    ] {
        let (s, body, _) = h.call(method, &path, &agent, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (s, _, _) = h
        .call("POST", "/v1/ca/rotate", &Caller::default(), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Nothing was staged.
    assert_eq!(status(&h).await["authorities"].as_array().unwrap().len(), 1);
    // Both refusals are in the log, naming the caller.
    let refusals: Vec<_> = log_entries(&h)
        .into_iter()
        .filter(|r| r.action.starts_with("ca/"))
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    for r in &refusals {
        assert_eq!(r.decision, Decision::Deny);
        assert_eq!(r.principal.as_ref(), Some(svid.spiffe_id()));
    }
}
