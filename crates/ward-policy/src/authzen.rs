//! The OpenID AuthZEN Authorization API 1.0 over a Ward decision function:
//! request and response documents, the mapping onto Cedar, and batch
//! semantics — shared by the server's API and every proxy's admin
//! listener, so both answer the same question the same way.
//!
//! Mapping: `subject`/`resource` `{type, id}` → Cedar entities (`agent` →
//! `Agent`, `user`/`human` → `Human`, `tool` → `Tool`, `dataset` →
//! `Dataset`, `team` → `Team`, `server` → `Server`, or a Cedar type name as
//! is); `action.name` → `Action::"<name>"`; `context` → the request context,
//! merged over defaults (now, method `POST`, path `/`, no data labels, risk
//! 0) and validated against the schema. Caller-supplied `properties` are
//! ignored: attributes come from the registry, never from the asker. Per the
//! spec, unknown fields are ignored and a deny is an answer
//! (`decision: false`), not an error.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{Decision, EntityUid, Request, Schema};

/// Subject or resource.
#[derive(Debug, Clone, Deserialize)]
pub struct Entity {
    /// Entity type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Entity id.
    pub id: String,
}

/// Action.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    /// Action name.
    pub name: String,
}

/// One evaluation (also the defaults of a batch).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluation {
    /// Who.
    #[serde(default)]
    pub subject: Option<Entity>,
    /// What.
    #[serde(default)]
    pub action: Option<Action>,
    /// On what.
    #[serde(default)]
    pub resource: Option<Entity>,
    /// Context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// `POST /access/v1/evaluations` body.
#[derive(Debug, Deserialize)]
pub struct Evaluations {
    /// Defaults.
    #[serde(flatten)]
    pub defaults: Evaluation,
    /// The items.
    #[serde(default)]
    pub evaluations: Vec<Evaluation>,
    /// Options.
    #[serde(default)]
    pub options: Map<String, Value>,
}

/// Where a PDP decides: its schema, its decision function and how it names
/// decisions (for correlation with logs).
pub struct Pdp<'a> {
    /// The schema requests are validated against.
    pub schema: &'a Schema,
    /// Decides one request.
    pub decide: &'a dyn Fn(&Request) -> Decision,
    /// A fresh decision id.
    pub decision_id: &'a dyn Fn() -> String,
}

fn cedar_type(kind: &str) -> &str {
    match kind.to_ascii_lowercase().as_str() {
        "agent" => "Agent",
        "user" | "human" => "Human",
        "tool" => "Tool",
        "dataset" => "Dataset",
        "team" => "Team",
        "server" => "Server",
        _ => kind,
    }
}

fn uid(e: &Entity) -> Result<EntityUid, String> {
    crate::json::uid(cedar_type(&e.kind), &e.id).map_err(|e| e.to_string())
}

/// Parses a request document; the error is for an HTTP 400.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid AuthZEN request: {e}"))
}

/// Decides one evaluation; `Err` is a malformed request (HTTP 400 for a
/// single evaluation, an item error in a batch).
pub fn evaluate(pdp: &Pdp<'_>, e: &Evaluation) -> Result<Value, String> {
    let subject = e
        .subject
        .as_ref()
        .ok_or("subject (type and id) is required")?;
    let action = e.action.as_ref().ok_or("action (name) is required")?;
    let resource = e
        .resource
        .as_ref()
        .ok_or("resource (type and id) is required")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut context = Map::from_iter([
        ("time".to_owned(), json!(now)),
        ("hour".to_owned(), json!((now % 86_400) / 3_600)),
        ("method".to_owned(), json!("POST")),
        ("path".to_owned(), json!("/")),
        ("data_labels".to_owned(), json!([])),
        ("risk_score".to_owned(), json!(0)),
    ]);
    // Without a caller context the request is the defaults alone, whose
    // validity depends only on the three references: Cedar validates each
    // triple once per schema (a fifth of a PDP request's CPU otherwise).
    let defaults_only = e.context.as_ref().is_none_or(Map::is_empty);
    if let Some(extra) = &e.context {
        context.extend(extra.clone());
    }
    let (principal, action, resource) = (
        uid(subject)?,
        crate::json::uid("Action", &action.name).map_err(|e| e.to_string())?,
        uid(resource)?,
    );
    let triple = (principal.clone(), action.clone(), resource.clone());
    let with_defaults = Value::Object(context);
    let request = if defaults_only && pdp.schema.default_context_validated(&triple) {
        crate::json::unvalidated_request(principal, action, resource, &with_defaults)
    } else {
        // The defaults fill Ward's RequestContext; an action declared with
        // its own context type (a schema extension) gets the caller's
        // context as given. Either way Cedar validates it before anything
        // is decided.
        match crate::json::request(
            pdp.schema,
            principal.clone(),
            action.clone(),
            resource.clone(),
            &with_defaults,
        ) {
            Ok(request) => {
                if defaults_only {
                    pdp.schema.remember_default_context_validated(triple);
                }
                Ok(request)
            }
            Err(with_defaults) => {
                let given = Value::Object(e.context.clone().unwrap_or_default());
                crate::json::request(pdp.schema, principal, action, resource, &given)
                    .map_err(|_| with_defaults)
            }
        }
    }
    .map_err(|e| e.to_string())?;
    let decision = (pdp.decide)(&request);
    let id = (pdp.decision_id)();
    Ok(json!({
        "decision": decision.is_allowed(),
        "context": {
            "id": id,
            "policies": decision.policies(),
            "reason_admin": { "en": decision.reasons().join("; ") },
            "policy_version": decision.policy_version().to_string(),
        }
    }))
}

/// Decides a batch (`/access/v1/evaluations`) with its
/// `evaluations_semantic`; `Err` is a malformed batch (HTTP 400). Items
/// that are malformed are answered `decision: false` with an error.
pub fn evaluate_batch(pdp: &Pdp<'_>, batch: &Evaluations) -> Result<Value, String> {
    // No items: behaves like a single evaluation of the defaults (§7.1).
    if batch.evaluations.is_empty() {
        return evaluate(pdp, &batch.defaults);
    }
    let semantic = match batch.options.get("evaluations_semantic") {
        None => "execute_all",
        Some(Value::String(s))
            if [
                "execute_all",
                "deny_on_first_deny",
                "permit_on_first_permit",
            ]
            .contains(&s.as_str()) =>
        {
            s.as_str()
        }
        Some(other) => {
            return Err(format!(
                "options.evaluations_semantic {other} is not execute_all, deny_on_first_deny or permit_on_first_permit"
            ));
        }
    };
    let mut results = Vec::with_capacity(batch.evaluations.len());
    for item in &batch.evaluations {
        // An item's own subject/action/resource/context replace the defaults.
        let merged = Evaluation {
            subject: item
                .subject
                .clone()
                .or_else(|| batch.defaults.subject.clone()),
            action: item
                .action
                .clone()
                .or_else(|| batch.defaults.action.clone()),
            resource: item
                .resource
                .clone()
                .or_else(|| batch.defaults.resource.clone()),
            context: item
                .context
                .clone()
                .or_else(|| batch.defaults.context.clone()),
        };
        let result = evaluate(pdp, &merged).unwrap_or_else(|message| {
            json!({"decision": false, "context": {"error": {"status": 400, "message": message}}})
        });
        let allowed = result.get("decision") == Some(&Value::Bool(true));
        results.push(result);
        match semantic {
            "deny_on_first_deny" if !allowed => break,
            "permit_on_first_permit" if allowed => break,
            _ => {}
        }
    }
    Ok(json!({ "evaluations": results }))
}

/// `/.well-known/authzen-configuration` for a PDP reached at
/// `scheme://host` (a `Host` header that is not a plain host name is
/// replaced by `localhost`).
pub fn configuration(scheme: &str, host: Option<&str>) -> Value {
    let host = host
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let base = format!("{scheme}://{host}");
    json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use std::cell::Cell;

    use super::*;
    use crate::{Engine, EntityStore, PolicySet};

    const POLICY: &str = r#"
        @id("get") permit (principal, action == Action::"GET", resource);
        @id("risky") forbid (principal, action, resource) when { context.risk_score > 5 };
    "#;

    /// Asks `body` of a PDP over `schema`, counting decisions.
    fn ask(
        schema: &Schema,
        engine: &Engine,
        decided: &Cell<u32>,
        body: Value,
    ) -> Result<Value, String> {
        let decide = |r: &Request| {
            decided.set(decided.get() + 1);
            engine.decide(r)
        };
        let pdp = Pdp {
            schema,
            decide: &decide,
            decision_id: &|| "id".to_owned(),
        };
        evaluate(&pdp, &serde_json::from_value(body).unwrap())
    }

    /// The per-schema memo of validated requests never lets an invalid one
    /// through: invalid triples are refused every time, a caller context is
    /// always validated, and a new schema starts with nothing remembered.
    #[test]
    fn validation_memo_never_admits_an_invalid_request() {
        let schema = Schema::ward().unwrap();
        let policies = PolicySet::load(&schema, [("p.cedar", POLICY)]).unwrap();
        let engine = Engine::new(
            policies,
            schema.clone(),
            EntityStore::new(&schema, []).unwrap(),
        )
        .unwrap();
        let decided = Cell::new(0);
        let q = |subject: &str, action: &str, context: Option<Value>| {
            let mut body = json!({
                "subject": {"type": subject, "id": "a"},
                "action": {"name": action},
                "resource": {"type": "agent", "id": "b"},
            });
            if let Some(c) = context {
                body["context"] = c;
            }
            ask(&schema, &engine, &decided, body)
        };

        for _ in 0..3 {
            // Valid with the defaults: decided, the same way each time.
            let ok = q("agent", "GET", None).unwrap();
            assert_eq!(ok["decision"], json!(true), "{ok}");
            // A principal type GET does not apply to, and an undeclared
            // action: refused before any decision, every time.
            let team = q("team", "GET", None).unwrap_err();
            assert!(team.contains("principal"), "{team}");
            assert!(q("agent", "FLY", None).is_err());
        }
        assert_eq!(decided.get(), 3);
        assert!(schema.default_context_validated(&(
            crate::json::uid("Agent", "a").unwrap(),
            crate::json::uid("Action", "GET").unwrap(),
            crate::json::uid("Agent", "b").unwrap(),
        )));

        // The remembered triple with a caller context is validated again:
        // a mistyped field is refused, a well-typed one is decided on.
        let wrong = q("agent", "GET", Some(json!({"risk_score": "high"}))).unwrap_err();
        assert!(wrong.contains("risk_score"), "{wrong}");
        let risky = q("agent", "GET", Some(json!({"risk_score": 9}))).unwrap();
        assert_eq!(risky["decision"], json!(false), "{risky}");
        assert_eq!(decided.get(), 4);

        // Another schema value, even with the same text, remembers nothing.
        let fresh = Schema::ward().unwrap();
        assert!(!fresh.default_context_validated(&(
            crate::json::uid("Agent", "a").unwrap(),
            crate::json::uid("Action", "GET").unwrap(),
            crate::json::uid("Agent", "b").unwrap(),
        )));
    }
}
