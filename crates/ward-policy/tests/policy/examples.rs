//! Worked examples of the engine's rules: default deny, the shipped admin
//! policy, reasons from annotations, fail closed, what the cache keys on,
//! and bundle loading.

use std::sync::Arc;

use cedar_policy::Authorizer;
use ward_policy::{Context, Effect, Engine, EntityStore, PolicySet, Request, Schema, bundle};

use crate::common::{SCHEMA, uid};

const ENTITIES: &str = r#"[
    {"uid": {"type": "Team", "id": "ward-admins"}, "attrs": {}, "parents": []},
    {"uid": {"type": "Team", "id": "ops"}, "attrs": {}, "parents": []},
    {"uid": {"type": "Human", "id": "root"}, "attrs": {}, "parents": [{"type": "Team", "id": "ward-admins"}]},
    {"uid": {"type": "Human", "id": "eve"}, "attrs": {}, "parents": [{"type": "Team", "id": "ops"}]},
    {"uid": {"type": "Agent", "id": "a"}, "attrs": {"team": "ops", "risk_tier": 1, "labels": []},
     "parents": [{"type": "Team", "id": "ops"}]},
    {"uid": {"type": "Agent", "id": "b"}, "attrs": {"team": "ops", "risk_tier": 3, "labels": ["prod"]},
     "parents": [{"type": "Team", "id": "ops"}]}
]"#;

const POLICIES: &str = r#"
@id("ops-http")
@reason("ops agents talk HTTP to each other")
permit (principal in Team::"ops", action in Action::"http", resource in Team::"ops")
when { context.risk_score < 50 };

@id("no-pii-to-risky")
@reason("PII may not reach tier-3 agents")
forbid (principal, action, resource is Agent)
when { context.data_labels.contains("pii") && resource.risk_tier >= 3 };
"#;

fn engine(policies: &str) -> Engine {
    let set = PolicySet::load(
        &SCHEMA,
        [
            ("admin.cedar", include_str!("../../policies/admin.cedar")),
            ("ops.cedar", policies),
        ],
    )
    .unwrap();
    let store = EntityStore::from_json_str(&SCHEMA, ENTITIES).unwrap();
    Engine::new(set, SCHEMA.clone(), store).unwrap()
}

fn ctx(risk: i64, pii: bool) -> Context {
    Context::new()
        .with("time", 1_700_000_000)
        .with("hour", 10)
        .with("method", "GET")
        .with("path", "/")
        .with(
            "data_labels",
            if pii { vec!["pii"] } else { Vec::<&str>::new() },
        )
        .with("risk_score", risk)
}

fn req(p: &str, a: &str, r: &str, context: Context) -> Request {
    Request::new(uid(p), uid(&format!("Action::\"{a}\"")), uid(r), context)
}

#[test]
fn default_deny_and_the_admin_policy() {
    let e = engine("");
    let nothing = e.decide(&req(r#"Agent::"a""#, "GET", r#"Agent::"b""#, ctx(0, false)));
    assert_eq!(nothing.effect(), Effect::Deny);
    assert!(nothing.policies().is_empty() && nothing.errors().is_empty());

    let root = e.decide(&req(
        r#"Human::"root""#,
        "agent/register",
        r#"Server::"ward""#,
        ctx(0, false),
    ));
    assert!(root.is_allowed());
    assert_eq!(&*root.policies()[0], "ward-admins-allow");
    assert_eq!(&*root.reasons()[0], "member of ward-admins");
    let eve = e.decide(&req(
        r#"Human::"eve""#,
        "agent/register",
        r#"Server::"ward""#,
        ctx(0, false),
    ));
    assert!(!eve.is_allowed());
}

#[test]
fn forbids_win_and_carry_their_reason() {
    let e = engine(POLICIES);
    let ok = e.decide(&req(
        r#"Agent::"a""#,
        "POST",
        r#"Agent::"b""#,
        ctx(10, false),
    ));
    assert!(ok.is_allowed());
    assert_eq!(
        ok.reasons(),
        [Arc::from("ops agents talk HTTP to each other")]
    );
    let pii = e.decide(&req(
        r#"Agent::"a""#,
        "POST",
        r#"Agent::"b""#,
        ctx(10, true),
    ));
    assert_eq!(pii.effect(), Effect::Deny);
    assert_eq!(pii.policies(), [Arc::from("no-pii-to-risky")]);
    assert_eq!(
        pii.reasons(),
        [Arc::from("PII may not reach tier-3 agents")]
    );
    let json = serde_json::to_value(&pii).unwrap();
    assert_eq!(json["decision"], "deny");
    assert_eq!(json["policy_version"], e.policy_version().to_string());
}

#[test]
fn an_erroring_forbid_denies_where_cedar_would_allow() {
    let e = engine(POLICIES);
    // Agent::"ghost" is not in the store: the forbid errors reading its
    // risk_tier, Cedar skips it and allows; Ward denies.
    let r = req(r#"Agent::"a""#, "GET", r#"Agent::"ghost""#, ctx(10, true));
    let d = e.decide(&r);
    assert_eq!(d.effect(), Effect::Deny);
    assert!(d.policies().is_empty());
    assert_eq!(&*d.errors()[0].policy, "no-pii-to-risky");

    // The same with a permit-all beside it, checked against Cedar itself.
    let mut open = engine(&format!("{POLICIES}\npermit(principal, action, resource);"));
    let cedar = Authorizer::new().is_authorized(
        &r.to_cedar().unwrap(),
        open.policies().cedar(),
        open.entities().cedar(),
    );
    assert_eq!(cedar.decision(), cedar_policy::Decision::Allow);
    assert_eq!(cedar.diagnostics().errors().count(), 1);
    assert_eq!(open.decide(&r).effect(), Effect::Deny);
    // Without the PII label the forbid's condition short-circuits: no error.
    assert!(
        open.decide(&req(
            r#"Agent::"a""#,
            "GET",
            r#"Agent::"ghost""#,
            ctx(10, false)
        ))
        .is_allowed()
    );
    // Replacing policies takes effect immediately.
    open.replace_policies(PolicySet::load(&SCHEMA, [("none.cedar", "")]).unwrap())
        .unwrap();
    assert!(
        !open
            .decide(&req(
                r#"Agent::"a""#,
                "GET",
                r#"Agent::"ghost""#,
                ctx(10, false)
            ))
            .is_allowed()
    );
}

#[test]
fn cache_keys_on_what_the_candidates_read() {
    let mut e = engine(POLICIES);
    let base = req(r#"Agent::"a""#, "GET", r#"Agent::"b""#, ctx(10, false));
    assert!(!e.decide(&base).cached());
    assert!(e.decide(&base).cached());

    // `time` is read by no candidate: a later request still hits.
    let mut later = base.clone();
    later.context.insert("time", 1_800_000_000);
    let d = e.decide(&later);
    assert!(d.cached() && d.is_allowed());

    // `risk_score` is read: a different value is a different key.
    let mut risky = base.clone();
    risky.context.insert("risk_score", 90);
    let d = e.decide(&risky);
    assert!(!d.cached() && !d.is_allowed());

    // An entity update clears the cache and changes the answer.
    let b = uid(r#"Agent::"b""#);
    e.update_entities([], [b]).unwrap();
    let d = e.decide(&base);
    assert!(!d.cached());
    assert!(!d.is_allowed(), "b is no longer in Team::\"ops\"");

    let off = engine(POLICIES).with_cache_capacity(0);
    off.decide(&base);
    assert!(!off.decide(&base).cached());
}

#[test]
fn parts_validated_against_another_schema_are_refused() {
    let other = Schema::with_fragments([("x.cedarschema", "entity Extra;")]).unwrap();
    let set = PolicySet::load(
        &other,
        [("a.cedar", "permit(principal, action, resource);")],
    )
    .unwrap();
    let store = EntityStore::new(&SCHEMA, []).unwrap();
    let err = Engine::new(set, SCHEMA.clone(), store).unwrap_err();
    assert!(err.to_string().contains("policies"), "{err}");
}

#[test]
fn bundles_load_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), "entity Vault;").unwrap();
    std::fs::write(
        dir.path().join("admin.cedar"),
        include_str!("../../policies/admin.cedar"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("vault.cedar"),
        "@id(\"v\") permit(principal, action, resource) when { principal in Vault::\"x\" };",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let b = bundle::load_dir(dir.path()).unwrap();
    assert_eq!(
        b.policies.names().collect::<Vec<_>>(),
        ["ward-admins-allow", "v"]
    );

    std::fs::write(dir.path().join("broken.cedar"), "permit(principal,").unwrap();
    let err = bundle::load_dir(dir.path()).unwrap_err();
    assert_eq!(
        err.problems()[0].location.as_ref().unwrap().file,
        "broken.cedar"
    );
}
