//! Random worlds for the property tests: a policy set, an entity store and
//! requests over one small universe of names, so scopes, hierarchies and
//! requests collide often. Every generated policy set must pass strict
//! validation; conditions that read agent or tool attributes are only put
//! under scopes that guarantee those types.

use std::str::FromStr;
use std::sync::LazyLock;

use proptest::prelude::*;
use ward_policy::{Context, EntityStore, EntityUid, PolicySet, Request, Schema, Value};

pub static SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema::ward().unwrap());

pub fn uid(s: &str) -> EntityUid {
    EntityUid::from_str(s).unwrap()
}

const TEAMS: [&str; 3] = ["t0", "t1", "t2"];
const SEGMENTS: [&str; 2] = ["s0", "s1"];
const AGENTS: usize = 5;

/// Principal scopes (the unconstrained ones repeated to weight them); `true` if the principal is surely an Agent.
const PRINCIPALS: &[(&str, bool)] = &[
    ("principal", false),
    ("principal", false),
    ("principal", false),
    ("principal == Agent::\"a0\"", true),
    ("principal == Agent::\"a1\"", true),
    ("principal == Agent::\"ghost\"", true),
    ("principal in Team::\"t0\"", false),
    ("principal in Team::\"t1\"", false),
    ("principal in Segment::\"s0\"", false),
    ("principal is Agent", true),
    ("principal is Agent in Team::\"t1\"", true),
    ("principal is Human", false),
    ("principal == Human::\"h0\"", false),
];

/// Action scopes; `true` if only data-plane actions (principal is an Agent).
const ACTIONS: &[(&str, bool)] = &[
    ("action", false),
    ("action", false),
    ("action", false),
    ("action in Action::\"http\"", true),
    ("action in Action::\"http\"", true),
    ("action == Action::\"GET\"", true),
    ("action in [Action::\"mcp\", Action::\"a2a\"]", true),
    ("action == Action::\"tools/call\"", true),
    ("action in Action::\"admin\"", false),
    ("action in [Action::\"GET\", Action::\"agent/list\"]", false),
];

/// Resource scopes; `true` if the resource is surely a Tool.
const RESOURCES: &[(&str, bool)] = &[
    ("resource", false),
    ("resource", false),
    ("resource", false),
    ("resource == Agent::\"a1\"", false),
    ("resource in Agent::\"a2\"", false),
    ("resource is Tool", true),
    ("resource is Tool in Agent::\"a0\"", true),
    ("resource == Tool::\"a1/t0\"", true),
    ("resource in Segment::\"s1\"", false),
    ("resource is Dataset", false),
];

/// Conditions valid for any request.
const ANY_CONDITIONS: &[&str] = &[
    "context.risk_score < 50",
    "context.risk_score >= 20",
    "context.data_labels.contains(\"pii\")",
    "context.hour >= 9 && context.hour < 17",
    "context has delegation && context.delegation.contains(\"a3\")",
    "context.path like \"/admin*\"",
    "context.method == \"POST\"",
    "principal in Team::\"t2\"",
    "resource in Agent::\"a1\"",
    "context.risk_score + 9223372036854775800 > 0",
    "true",
];

/// Conditions reading agent attributes of the principal.
const AGENT_CONDITIONS: &[&str] = &[
    "principal.team == \"t0\"",
    "principal.risk_tier <= 1",
    "principal.labels.contains(\"prod\")",
    "principal has clearance && principal.clearance == \"secret\"",
    "principal has model && principal.model like \"gpt*\"",
    "principal.risk_tier * 4611686018427387904 > 0",
];

/// Conditions reading tool attributes of the resource.
const TOOL_CONDITIONS: &[&str] = &[
    "resource has risk && resource.risk > 1",
    "resource.owner == principal",
    "resource.owner.risk_tier < 2",
];

#[derive(Debug, Clone)]
pub struct GenPolicy {
    permit: bool,
    principal: usize,
    action: usize,
    resource: usize,
    conditions: Vec<(u8, usize, bool)>,
    id: bool,
    reason: bool,
}

fn gen_policy() -> impl Strategy<Value = GenPolicy> {
    (
        prop::bool::weighted(0.7),
        0..PRINCIPALS.len(),
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        prop::collection::vec((0u8..3, 0usize..64, prop::bool::weighted(0.2)), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(permit, principal, action, resource, conditions, id, reason)| GenPolicy {
                permit,
                principal,
                action,
                resource,
                conditions,
                id,
                reason,
            },
        )
}

impl GenPolicy {
    fn scope(&self) -> String {
        format!(
            "{}, {}, {}",
            PRINCIPALS[self.principal].0, ACTIONS[self.action].0, RESOURCES[self.resource].0
        )
    }

    fn text(&self, n: usize) -> String {
        let mut out = String::new();
        if self.id {
            out.push_str(&format!("@id(\"p{n}\")\n"));
        }
        if self.reason {
            out.push_str(&format!("@reason(\"reason {n}\")\n"));
        }
        let effect = if self.permit { "permit" } else { "forbid" };
        out.push_str(&format!("{effect} ({})", self.scope()));
        let agent = PRINCIPALS[self.principal].1 || ACTIONS[self.action].1;
        let tool = RESOURCES[self.resource].1;
        for &(kind, i, unless) in &self.conditions {
            let table = match kind {
                1 if agent => AGENT_CONDITIONS,
                2 if tool => TOOL_CONDITIONS,
                _ => ANY_CONDITIONS,
            };
            let cond = table[i % table.len()];
            let word = if unless { "unless" } else { "when" };
            out.push_str(&format!("\n  {word} {{ {cond} }}"));
        }
        out.push_str(";\n");
        out
    }
}

/// A random policy set: its files' text, and the same policies reduced to
/// their scope (all permits, same names) to check the index exactly.
#[derive(Debug, Clone)]
pub struct GenPolicies(pub Vec<GenPolicy>);

pub fn gen_policies(max: usize) -> impl Strategy<Value = GenPolicies> {
    prop::collection::vec(gen_policy(), 0..max).prop_map(GenPolicies)
}

impl GenPolicies {
    /// Two files so that default names and cross-file ids are exercised.
    pub fn files(&self) -> [(String, String); 2] {
        let mut a = String::new();
        let mut b = String::new();
        for (n, p) in self.0.iter().enumerate() {
            if n % 2 == 0 { &mut a } else { &mut b }.push_str(&p.text(n));
        }
        [("a.cedar".to_owned(), a), ("b.cedar".to_owned(), b)]
    }

    pub fn load(&self) -> PolicySet {
        let files = self.files();
        PolicySet::load(&SCHEMA, files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .unwrap_or_else(|e| panic!("generated policies must validate: {e}\n{files:?}"))
    }

    /// Cedar policy set of scope-only permits named like the loaded set's
    /// policies, in the same order.
    pub fn scopes(&self, loaded: &PolicySet) -> cedar_policy::PolicySet {
        let names: Vec<&str> = loaded.names().collect();
        // Loaded order is file order: a.cedar (even n) then b.cedar (odd n).
        let order: Vec<usize> = (0..self.0.len())
            .step_by(2)
            .chain((1..self.0.len()).step_by(2))
            .collect();
        let policies = order.iter().zip(names).map(|(&n, name)| {
            let text = format!("permit ({});", self.0[n].scope());
            cedar_policy::Policy::parse(Some(cedar_policy::PolicyId::new(name)), text).unwrap()
        });
        cedar_policy::PolicySet::from_policies(policies).unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct GenAgent {
    parents: Vec<bool>,
    risk_tier: i64,
    labels: Vec<bool>,
    clearance: Option<bool>,
    model: Option<bool>,
    present: bool,
}

fn gen_agent() -> impl Strategy<Value = GenAgent> {
    (
        prop::collection::vec(any::<bool>(), TEAMS.len() + SEGMENTS.len()),
        prop_oneof![0i64..4, Just(i64::MAX)],
        prop::collection::vec(any::<bool>(), 2),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(parents, risk_tier, labels, clearance, model, present)| GenAgent {
                parents,
                risk_tier,
                labels,
                clearance,
                model,
                present,
            },
        )
}

/// Agents (some absent from the store), tools with random owners and risk.
#[derive(Debug, Clone)]
pub struct GenEntities {
    pub agents: Vec<GenAgent>,
    tools: Vec<(usize, Option<i64>)>,
}

pub fn gen_entities() -> impl Strategy<Value = GenEntities> {
    (
        prop::collection::vec(gen_agent(), AGENTS),
        prop::collection::vec((0..AGENTS, prop::option::of(0i64..4)), 0..4),
    )
        .prop_map(|(agents, tools)| GenEntities { agents, tools })
}

impl GenEntities {
    pub fn agent_json(&self, i: usize) -> Option<serde_json::Value> {
        let a = &self.agents[i];
        if !a.present {
            return None;
        }
        let all_parents = TEAMS
            .iter()
            .map(|t| serde_json::json!({"type": "Team", "id": t}))
            .chain(
                SEGMENTS
                    .iter()
                    .map(|s| serde_json::json!({"type": "Segment", "id": s})),
            );
        let parents: Vec<_> = all_parents
            .zip(&a.parents)
            .filter(|(_, on)| **on)
            .map(|(p, _)| p)
            .collect();
        let labels: Vec<&str> = ["prod", "beta"]
            .into_iter()
            .zip(&a.labels)
            .filter(|(_, on)| **on)
            .map(|(l, _)| l)
            .collect();
        let mut attrs = serde_json::json!({
            "team": TEAMS[i % TEAMS.len()],
            "risk_tier": a.risk_tier,
            "labels": labels,
        });
        if let Some(secret) = a.clearance {
            attrs["clearance"] = (if secret { "secret" } else { "public" }).into();
        }
        if let Some(gpt) = a.model {
            attrs["model"] = (if gpt { "gpt-x" } else { "claude-y" }).into();
        }
        Some(
            serde_json::json!({"uid": {"type": "Agent", "id": format!("a{i}")}, "attrs": attrs, "parents": parents}),
        )
    }

    pub fn json(&self) -> String {
        let mut all = Vec::new();
        for t in TEAMS {
            all.push(
                serde_json::json!({"uid": {"type": "Team", "id": t}, "attrs": {}, "parents": []}),
            );
        }
        for s in SEGMENTS {
            all.push(serde_json::json!({"uid": {"type": "Segment", "id": s}, "attrs": {}, "parents": []}));
        }
        for i in 0..self.agents.len() {
            all.extend(self.agent_json(i));
        }
        for (n, (owner, risk)) in self.tools.iter().enumerate() {
            let mut attrs =
                serde_json::json!({"owner": {"type": "Agent", "id": format!("a{owner}")}});
            if let Some(risk) = risk {
                attrs["risk"] = (*risk).into();
            }
            all.push(serde_json::json!({
                "uid": {"type": "Tool", "id": format!("a{owner}/t{n}")},
                "attrs": attrs,
                "parents": [{"type": "Agent", "id": format!("a{owner}")}],
            }));
        }
        for h in ["h0", "h1"] {
            all.push(
                serde_json::json!({"uid": {"type": "Human", "id": h}, "attrs": {},
                "parents": [{"type": "Team", "id": "t0"}]}),
            );
        }
        all.push(serde_json::json!({"uid": {"type": "Dataset", "id": "d0"},
            "attrs": {"classification": "internal", "labels": []},
            "parents": [{"type": "Segment", "id": "s1"}, {"type": "Agent", "id": "a2"}]}));
        serde_json::Value::Array(all).to_string()
    }

    pub fn store(&self) -> EntityStore {
        EntityStore::from_json_str(&SCHEMA, &self.json()).unwrap()
    }
}

const REQ_PRINCIPALS: &[&str] = &[
    "Agent::\"a0\"",
    "Agent::\"a1\"",
    "Agent::\"a2\"",
    "Agent::\"a3\"",
    "Agent::\"a4\"",
    "Agent::\"ghost\"",
    "Human::\"h0\"",
    "Human::\"h1\"",
];
const REQ_ACTIONS: &[&str] = &[
    "GET",
    "POST",
    "DELETE",
    "tools/call",
    "tools/list",
    "message/send",
    "agent/list",
    "policy/push",
    "http",
];
const REQ_RESOURCES: &[&str] = &[
    "Agent::\"a0\"",
    "Agent::\"a1\"",
    "Agent::\"a2\"",
    "Tool::\"a0/t0\"",
    "Tool::\"a1/t0\"",
    "Tool::\"a2/t1\"",
    "Tool::\"a0/t2\"",
    "Tool::\"ghost/t9\"",
    "Dataset::\"d0\"",
    "Server::\"s\"",
];

const CONTEXT_KEYS: [&str; 7] = [
    "time",
    "hour",
    "method",
    "path",
    "data_labels",
    "risk_score",
    "delegation",
];

pub fn gen_request() -> impl Strategy<Value = Request> {
    (
        0..REQ_PRINCIPALS.len(),
        0..REQ_ACTIONS.len(),
        0..REQ_RESOURCES.len(),
        (
            0i64..100,
            0i64..24,
            any::<bool>(),
            any::<bool>(),
            prop::option::of(any::<bool>()),
            0usize..3,
        ),
        prop::option::weighted(0.25, (0..CONTEXT_KEYS.len(), any::<bool>())),
    )
        .prop_map(
            |(p, a, r, (risk, hour, pii, post, delegation, path), damage)| {
                let mut ctx = Context::new()
                    .with("time", 1_700_000_000 + hour * 3600)
                    .with("hour", hour)
                    .with("method", if post { "POST" } else { "GET" })
                    .with("path", ["/", "/admin/x", "/api"][path])
                    .with(
                        "data_labels",
                        if pii { vec!["pii"] } else { Vec::<&str>::new() },
                    )
                    .with("risk_score", risk);
                if let Some(via_a3) = delegation {
                    ctx.insert(
                        "delegation",
                        if via_a3 { vec!["a3", "a1"] } else { vec!["a4"] },
                    );
                }
                // Sometimes drop or mistype a field: policies reading it error.
                if let Some((key, drop)) = damage {
                    let key = CONTEXT_KEYS[key];
                    ctx = ctx
                        .iter()
                        .filter(|(k, _)| !(drop && *k == key))
                        .map(|(k, v)| {
                            (
                                k,
                                if k == key {
                                    Value::Bool(true)
                                } else {
                                    v.clone()
                                },
                            )
                        })
                        .collect();
                }
                Request::new(
                    uid(REQ_PRINCIPALS[p]),
                    uid(&format!("Action::\"{}\"", REQ_ACTIONS[a])),
                    uid(REQ_RESOURCES[r]),
                    ctx,
                )
            },
        )
}
