//! Applying watch events, and refusing bundles that are unsigned,
//! mis-signed or whose files do not match the signed version.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

use super::*;

const POLICY: &str = r#"@id("a-calls-b") @reason("a may call b")
permit(principal == Agent::"a", action, resource == Agent::"b");"#;

fn signer() -> Ed25519KeyPair {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn signed(key: &Ed25519KeyPair, text: &str) -> SignedPolicy {
    let files = vec![PolicyFile {
        name: "main.cedar".into(),
        text: text.into(),
    }];
    let version = ward_policy::PolicyVersion::of_sources([("main.cedar", text)]).to_string();
    SignedPolicy {
        signature: b64(key.sign(&signed_message(&version)).as_ref()),
        version,
        files,
    }
}

fn snapshot(key: &Ed25519KeyPair, policy: Option<&SignedPolicy>) -> WatchEvent {
    WatchEvent::Snapshot {
        revision: 5,
        data: json!({
            "revision": 5,
            "trust_domain": "example.org",
            "agents": [
                {"name": "a", "spiffe_id": "spiffe://example.org/agent/a", "status": "active",
                 "attributes": {"team": "t"}, "endpoint": "127.0.0.1:1", "created_at": 0, "updated_at": 0, "revision": 1},
                {"name": "b", "spiffe_id": "spiffe://example.org/agent/b", "status": "active",
                 "attributes": {}, "endpoint": null, "created_at": 0, "updated_at": 0, "revision": 2},
            ],
            "revocations": [{"target": {"kind": "serial", "subject": "ABCD"}, "reason": "x", "revoked_at": 0, "revision": 3}],
            "bundle": {"keys": []},
            "policy": policy,
            "policy_signing_key": b64(key.public_key().as_ref()),
        }),
    }
}

#[test]
fn a_signed_snapshot_compiles_and_decides() {
    let key = signer();
    let view = View::default()
        .apply(&snapshot(&key, Some(&signed(&key, POLICY))))
        .unwrap();
    assert_eq!(view.revision, 5);
    assert!(view.is_revoked("x", "abcd"), "serials compare in lowercase");
    assert_eq!(view.agents["a"].endpoint.as_deref(), Some("127.0.0.1:1"));
    let compiled = Compiled::new(view);
    let engine = compiled.engine.as_ref().expect("engine");
    let req = |p: &str, r: &str| {
        ward_policy::Request::new(
            ward_policy::json::uid("Agent", p).unwrap(),
            ward_policy::json::uid("Action", "GET").unwrap(),
            ward_policy::json::uid("Agent", r).unwrap(),
            ward_policy::Context::new(),
        )
    };
    let allowed = engine.decide(&req("a", "b"));
    assert!(allowed.is_allowed());
    assert_eq!(allowed.reasons()[0].as_ref(), "a may call b");
    assert!(!engine.decide(&req("b", "a")).is_allowed(), "default deny");
}

#[test]
fn changes_apply_in_order_and_unknown_kinds_stop_the_stream() {
    let key = signer();
    let view = View::default().apply(&snapshot(&key, None)).unwrap();
    assert!(
        Compiled::new(view.clone()).engine.is_none(),
        "no bundle: no engine, deny all"
    );
    let change = |rev, kind: &str, payload| WatchEvent::Change {
        revision: rev,
        data: json!({"revision": rev, "kind": kind, "subject": "b", "payload": payload, "at": 0}),
    };
    let view = view
        .apply(&change(6, "revocation", json!({"target": {"kind": "agent", "subject": "b"}, "reason": "", "revoked_at": 0, "revision": 6})))
        .unwrap();
    assert!(view.is_revoked("b", "00"));
    let view = view
        .apply(&change(7, "agent", json!({"name": "a", "spiffe_id": "spiffe://example.org/agent/a", "status": "quarantined", "attributes": {}, "endpoint": "h:2", "created_at": 0, "updated_at": 0, "revision": 7})))
        .unwrap();
    assert!(!view.agents["a"].is_active());
    assert_eq!(view.revision, 7);
    let err = view.apply(&change(8, "teleport", json!({}))).unwrap_err();
    assert!(err.contains("unknown kind"), "{err}");
    assert!(view.apply(&change(8, "agent", json!({"nope": 1}))).is_err());
}

#[test]
fn unsigned_missigned_and_tampered_bundles_are_refused() {
    let key = signer();
    let good = signed(&key, POLICY);
    let view = View::default().apply(&snapshot(&key, Some(&good))).unwrap();
    let pk = view.policy_signing_key.clone();
    assert!(verify_policy(&good, pk.as_deref()).is_ok());

    // Signed by someone else.
    let mallory = signed(&signer(), "permit(principal, action, resource);");
    let err = verify_policy(&mallory, pk.as_deref()).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
    // Our signature, files swapped for a permit-all.
    let mut tampered = good.clone();
    tampered.files[0].text = "permit(principal, action, resource);".into();
    let err = verify_policy(&tampered, pk.as_deref()).unwrap_err();
    assert!(err.contains("not the signed version"), "{err}");
    // Our signature, a schema fragment slipped in: the version covers the
    // bundle's schema too (a schema can regroup actions under a permit).
    let mut widened = good.clone();
    widened.files.push(PolicyFile {
        name: ward_policy::bundle::SCHEMA_FILE.into(),
        text: "entity Vault;".into(),
    });
    let err = verify_policy(&widened, pk.as_deref()).unwrap_err();
    assert!(err.contains("not the signed version"), "{err}");
    // A bundle signed with its schema verifies; a changed schema does not.
    let schema_file = (ward_policy::bundle::SCHEMA_FILE, "entity Vault;");
    let version =
        ward_policy::PolicyVersion::of_sources([("main.cedar", POLICY), schema_file]).to_string();
    let mut with_schema = widened.clone();
    with_schema.signature = b64(key.sign(&signed_message(&version)).as_ref());
    with_schema.version = version;
    assert!(verify_policy(&with_schema, pk.as_deref()).is_ok());
    let mut schema_swapped = with_schema.clone();
    schema_swapped.files[1].text = "entity Vault; entity Safe;".into();
    let err = verify_policy(&schema_swapped, pk.as_deref()).unwrap_err();
    assert!(err.contains("not the signed version"), "{err}");
    // The engine's version (built-in quarantine policy included) is the
    // signed one, so audit records name a version `ward policy list` shows.
    let (_, enforced) = load(&with_schema).unwrap();
    assert_eq!(enforced.version().to_string(), with_schema.version);
    // No signature at all.
    let mut unsigned = good.clone();
    unsigned.signature = String::new();
    assert!(verify_policy(&unsigned, pk.as_deref()).is_err());
    assert!(verify_policy(&good, None).is_err(), "no key: refuse");

    // A refused bundle never replaces the verified one.
    let change = WatchEvent::Change {
        revision: 9,
        data: json!({"revision": 9, "kind": "policy", "subject": "p", "payload": tampered, "at": 0}),
    };
    let after = view.apply(&change).unwrap();
    assert_eq!(after.policy.as_ref().unwrap().version, good.version);
    assert_eq!(after.revision, 9);
}

#[test]
fn successors_reuse_what_did_not_change_and_decide_the_same() {
    let key = signer();
    let view = View::default()
        .apply(&snapshot(&key, Some(&signed(&key, POLICY))))
        .unwrap();
    let first = Compiled::new(view.clone());
    let change = |rev, kind: &str, payload| WatchEvent::Change {
        revision: rev,
        data: json!({"revision": rev, "kind": kind, "subject": "x", "payload": payload, "at": 0}),
    };
    let req = |p: &str, r: &str| {
        ward_policy::Request::new(
            ward_policy::json::uid("Agent", p).unwrap(),
            ward_policy::json::uid("Action", "GET").unwrap(),
            ward_policy::json::uid("Agent", r).unwrap(),
            ward_policy::Context::new(),
        )
    };
    // A revocation: the same engine (policy and entities unchanged).
    let revoked = view
        .apply(&change(6, "revocation", json!({"target": {"kind": "serial", "subject": "ff"}, "reason": "", "revoked_at": 0, "revision": 6})))
        .unwrap();
    let second = first.after(revoked.clone());
    assert!(Arc::ptr_eq(
        first.engine.as_ref().unwrap(),
        second.engine.as_ref().unwrap()
    ));
    assert!(second.view.is_revoked("a", "ff"));
    // Quarantining a changes the entities: a new engine, which must decide
    // exactly as one compiled from scratch (a now in the quarantine segment).
    let quarantined = revoked
        .apply(&change(7, "agent", json!({"name": "a", "spiffe_id": "spiffe://example.org/agent/a", "status": "quarantined", "attributes": {"team": "t"}, "endpoint": "127.0.0.1:1", "created_at": 0, "updated_at": 0, "revision": 7})))
        .unwrap();
    let third = second.after(quarantined.clone());
    let scratch = Compiled::new(quarantined);
    assert!(!Arc::ptr_eq(
        second.engine.as_ref().unwrap(),
        third.engine.as_ref().unwrap()
    ));
    for (p, r) in [("a", "b"), ("b", "a"), ("a", "a")] {
        let reused = third.engine.as_ref().unwrap().decide_uncached(&req(p, r));
        let fresh = scratch.engine.as_ref().unwrap().decide_uncached(&req(p, r));
        assert_eq!(reused.is_allowed(), fresh.is_allowed(), "{p} -> {r}");
        assert_eq!(reused.policies(), fresh.policies(), "{p} -> {r}");
    }
    // A new policy version is compiled from its files.
    let other =
        r#"@id("b-calls-a") permit(principal == Agent::"b", action, resource == Agent::"a");"#;
    let pushed = third
        .view
        .apply(&change(
            8,
            "policy",
            serde_json::to_value(signed(&key, other)).unwrap(),
        ))
        .unwrap();
    let fourth = third.after(pushed);
    assert!(
        fourth
            .engine
            .as_ref()
            .unwrap()
            .decide(&req("b", "a"))
            .is_allowed()
    );
    assert!(
        !fourth
            .engine
            .as_ref()
            .unwrap()
            .decide(&req("a", "b"))
            .is_allowed()
    );
}
