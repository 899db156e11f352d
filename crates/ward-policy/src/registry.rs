//! Policy entities from Ward's agent registry: the one mapping from a
//! registered agent to its Cedar `Agent` entity, shared by the server's PDP
//! and every proxy's, so both decide over the same facts.
//!
//! An agent becomes `Agent::"<name>"` with its attributes and its team as a
//! `Team` parent; admins become `Human`s in [`ADMIN_TEAM`]; every team named
//! gets its entity; `Server::"ward"` is always present.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::entities::{EntityError, EntityStore};
use crate::schema::Schema;

/// The team whose members the default admin policy admits.
pub const ADMIN_TEAM: &str = "ward-admins";

/// What policy knows about one registered agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RegistryAttributes {
    /// Owning team.
    pub team: Option<String>,
    /// Risk tier as registered (`low`, `medium`, `high`, or 0..3).
    pub risk_tier: Option<String>,
    /// Highest data classification it may handle.
    pub clearance: Option<String>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Model metadata; `name` becomes the `model` attribute.
    pub model: BTreeMap<String, String>,
}

/// Registry risk tiers as the schema's 0..3. Unknown or missing tiers are
/// treated as the riskiest, so a typo cannot lower an agent's risk.
pub fn risk_tier(tier: Option<&str>) -> i64 {
    match tier.map(str::to_ascii_lowercase).as_deref() {
        Some("0" | "none") => 0,
        Some("1" | "low") => 1,
        Some("2" | "medium") => 2,
        _ => 3,
    }
}

/// Cedar entity JSON for `agents` (name, attributes) and `admins` (names).
pub fn entities_json<'a>(
    agents: impl IntoIterator<Item = (&'a str, &'a RegistryAttributes)>,
    admins: impl IntoIterator<Item = &'a str>,
) -> Value {
    entities_json_with(agents, admins, |_| false)
}

/// [`entities_json`], with the agents for which `quarantined` holds put in
/// `Segment::"quarantine"` (what the built-in quarantine policy matches).
pub fn entities_json_with<'a>(
    agents: impl IntoIterator<Item = (&'a str, &'a RegistryAttributes)>,
    admins: impl IntoIterator<Item = &'a str>,
    quarantined: impl Fn(&str) -> bool,
) -> Value {
    let mut out = Vec::new();
    let mut teams = BTreeSet::new();
    teams.insert(ADMIN_TEAM.to_owned());
    for (name, a) in agents {
        let team = a.team.clone().unwrap_or_default();
        let mut attrs = serde_json::Map::new();
        attrs.insert("team".into(), json!(team));
        attrs.insert("risk_tier".into(), json!(risk_tier(a.risk_tier.as_deref())));
        attrs.insert(
            "labels".into(),
            json!(
                a.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
            ),
        );
        if let Some(clearance) = &a.clearance {
            attrs.insert("clearance".into(), json!(clearance));
        }
        if let Some(model) = a.model.get("name") {
            attrs.insert("model".into(), json!(model));
        }
        let mut parents = if team.is_empty() {
            vec![]
        } else {
            teams.insert(team.clone());
            vec![json!({"type": "Team", "id": team})]
        };
        if quarantined(name) {
            parents.push(json!({"type": "Segment", "id": crate::schema::QUARANTINE_SEGMENT}));
        }
        out.push(json!({
            "uid": {"type": "Agent", "id": name},
            "attrs": attrs,
            "parents": parents,
        }));
        declared_children(name, &a.labels, &mut out);
    }
    for name in admins {
        out.push(json!({
            "uid": {"type": "Human", "id": name},
            "attrs": {},
            "parents": [{"type": "Team", "id": ADMIN_TEAM}],
        }));
    }
    for team in teams {
        out.push(json!({"uid": {"type": "Team", "id": team}, "attrs": {}, "parents": []}));
    }
    out.push(json!({"uid": {"type": "Server", "id": "ward"}, "attrs": {}, "parents": []}));
    out.push(json!({
        "uid": {"type": "Segment", "id": crate::schema::QUARANTINE_SEGMENT},
        "attrs": {},
        "parents": [],
    }));
    Value::Array(out)
}

/// `Tool` and `Skill` entities an agent declares with labels
/// `tool.<name>.risk`, `tool.<name>.classification` and `skill.<name>.risk`:
/// children of their agent, so `resource in Agent::"b"` covers them. A risk
/// that is not 0..3 (or a tier name) counts as 3, like agent risk tiers,
/// so a typo cannot lower it or break the entity store.
fn declared_children(agent: &str, labels: &BTreeMap<String, String>, out: &mut Vec<Value>) {
    let mut children: BTreeMap<(&str, &str), serde_json::Map<String, Value>> = BTreeMap::new();
    for (key, value) in labels {
        let Some((kind, rest)) = key.split_once('.') else {
            continue;
        };
        let kind = match kind {
            "tool" => "Tool",
            "skill" => "Skill",
            _ => continue,
        };
        let Some((child, attr)) = rest.rsplit_once('.') else {
            continue;
        };
        if child.is_empty() {
            continue;
        }
        let attrs = children.entry((kind, child)).or_default();
        match attr {
            "risk" => {
                attrs.insert(attr.into(), json!(risk_tier(Some(value))));
            }
            "classification" if kind == "Tool" => {
                attrs.insert(attr.into(), json!(value));
            }
            _ => {}
        }
    }
    for ((kind, child), mut attrs) in children {
        attrs.insert(
            "owner".into(),
            json!({"__entity": {"type": "Agent", "id": agent}}),
        );
        out.push(json!({
            "uid": {"type": kind, "id": format!("{agent}/{child}")},
            "attrs": attrs,
            "parents": [{"type": "Agent", "id": agent}],
        }));
    }
}

/// [`entities_json`] checked against `schema`.
pub fn entities<'a>(
    schema: &Schema,
    agents: impl IntoIterator<Item = (&'a str, &'a RegistryAttributes)>,
    admins: impl IntoIterator<Item = &'a str>,
) -> Result<EntityStore, EntityError> {
    EntityStore::from_json_str(schema, &entities_json(agents, admins).to_string())
}

/// [`entities_json_with`] checked against `schema`.
pub fn entities_with<'a>(
    schema: &Schema,
    agents: impl IntoIterator<Item = (&'a str, &'a RegistryAttributes)>,
    admins: impl IntoIterator<Item = &'a str>,
    quarantined: impl Fn(&str) -> bool,
) -> Result<EntityStore, EntityError> {
    EntityStore::from_json_str(
        schema,
        &entities_json_with(agents, admins, quarantined).to_string(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn agents_get_team_parents_and_admins_the_admin_team() {
        let schema = Schema::ward().unwrap();
        let a = RegistryAttributes {
            team: Some("research".into()),
            risk_tier: Some("typo".into()),
            labels: BTreeMap::from([("env".into(), "prod".into())]),
            ..Default::default()
        };
        let store = entities(&schema, [("alice", &a)], ["root"]).unwrap();
        let alice = crate::json::uid("Agent", "alice").unwrap();
        let team = crate::json::uid("Team", "research").unwrap();
        assert!(store.is_in(&alice, &team));
        let root = crate::json::uid("Human", "root").unwrap();
        assert!(store.is_in(&root, &crate::json::uid("Team", ADMIN_TEAM).unwrap()));
        assert!(!store.is_in(&alice, &crate::json::uid("Team", ADMIN_TEAM).unwrap()));
        assert_eq!(risk_tier(Some("typo")), 3, "unknown tiers are the riskiest");
        assert_eq!(risk_tier(Some("LOW")), 1);
    }

    #[test]
    fn quarantined_agents_are_in_the_quarantine_segment() {
        let schema = Schema::ward().unwrap();
        let a = RegistryAttributes::default();
        let store = entities_with(&schema, [("q", &a), ("ok", &a)], [], |n| n == "q").unwrap();
        let segment = crate::json::uid("Segment", crate::schema::QUARANTINE_SEGMENT).unwrap();
        assert!(store.is_in(&crate::json::uid("Agent", "q").unwrap(), &segment));
        assert!(!store.is_in(&crate::json::uid("Agent", "ok").unwrap(), &segment));
    }

    #[test]
    fn labels_declare_tools_and_skills_under_their_agent() {
        let schema = Schema::ward().unwrap();
        let a = RegistryAttributes {
            labels: BTreeMap::from([
                ("tool.delete_records.risk".into(), "3".into()),
                (
                    "tool.delete_records.classification".into(),
                    "restricted".into(),
                ),
                ("tool.search.risk".into(), "low".into()),
                ("tool.typo.risk".into(), "harmless".into()),
                ("skill.wire_funds.risk".into(), "high".into()),
                ("tool..risk".into(), "0".into()),
                ("env".into(), "prod".into()),
            ]),
            ..Default::default()
        };
        let store = entities(&schema, [("tools", &a)], []).unwrap();
        let owner = crate::json::uid("Agent", "tools").unwrap();
        for (kind, id) in [
            ("Tool", "tools/delete_records"),
            ("Tool", "tools/search"),
            ("Tool", "tools/typo"),
            ("Skill", "tools/wire_funds"),
        ] {
            let uid = crate::json::uid(kind, id).unwrap();
            assert!(store.is_in(&uid, &owner), "{kind}::{id} is under its agent");
        }
        let json = entities_json([("tools", &a)], []).to_string();
        assert!(json.contains(r#""classification":"restricted""#), "{json}");
        assert!(
            !json.contains(r#""id":"tools/""#),
            "an empty tool name declares nothing"
        );
        // An unparsable risk counts as the riskiest.
        let typo = entities_json([("tools", &a)], [])
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["uid"]["id"] == "tools/typo")
            .cloned()
            .unwrap();
        assert_eq!(typo["attrs"]["risk"], 3);
    }
}
