//! Policy test cases (`tests/*.yaml` in a bundle): parsing and running them.
//!
//! Used by `ward policy test` and by the server when a bundle is pushed (it
//! refuses a bundle whose own tests fail). File format:
//!
//! ```yaml
//! entities:                 # Cedar entity JSON, as YAML
//!   - uid: {type: Agent, id: planner}
//!     attrs: {team: research, risk_tier: 1, labels: []}
//!     parents: [{type: Team, id: research}]
//! cases:
//!   - name: planner may read the researcher
//!     principal: Agent::"planner"
//!     action: Action::"GET"
//!     resource: Agent::"researcher"
//!     context: {path: /v1/notes}   # merged over the defaults below
//!     expect: allow
//!     reason: …                    # optional: must be among the reasons
//! ```
//!
//! Context defaults: `time: 0, hour: 12, method: <the action for HTTP
//! actions, else POST>, path: "/", data_labels: [], risk_score: 0`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bundle::Bundle;
use crate::{Engine, EntityStore};

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    entities: Vec<Value>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: serde_json::Map<String, Value>,
    expect: Expect,
    #[serde(default)]
    reason: Option<String>,
}

/// An expected or actual outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

impl Expect {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The test file.
    pub file: String,
    /// The case's name.
    pub name: String,
    /// What the case expects.
    pub expect: Expect,
    /// What the engine decided (`None`: the request was invalid).
    pub got: Option<Expect>,
    /// Determining policies.
    pub policies: Vec<String>,
    /// Reasons of the determining policies.
    pub reasons: Vec<String>,
    /// Why the case failed; `None` when it passed.
    pub failure: Option<String>,
}

/// A test file that cannot be run (bad YAML, bad entities).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct TestFileError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// Runs every case of one test file (`text`, named `file`) against `bundle`.
pub fn run_file(bundle: &Bundle, file: &str, text: &str) -> Result<Vec<Outcome>, TestFileError> {
    let fail = |message: String| TestFileError {
        file: file.to_owned(),
        message,
    };
    let parsed: TestFile = serde_saphyr::from_str(text).map_err(|e| fail(e.to_string()))?;
    let entities_json = serde_json::to_string(&parsed.entities).map_err(|e| fail(e.to_string()))?;
    let entities = EntityStore::from_json_str(&bundle.schema, &entities_json)
        .map_err(|e| fail(format!("entities: {e}")))?;
    let engine = Engine::new(bundle.policies.clone(), bundle.schema.clone(), entities)
        .map_err(|e| fail(e.to_string()))?;
    Ok(parsed
        .cases
        .into_iter()
        .map(|case| run_case(&engine, bundle, file, case))
        .collect())
}

fn run_case(engine: &Engine, bundle: &Bundle, file: &str, case: Case) -> Outcome {
    let mut outcome = Outcome {
        file: file.to_owned(),
        name: case.name.clone(),
        expect: case.expect,
        got: None,
        policies: Vec::new(),
        reasons: Vec::new(),
        failure: None,
    };
    let request = (|| {
        let principal = crate::json::parse_uid(&case.principal)?;
        let action = crate::json::parse_uid(&case.action)?;
        let resource = crate::json::parse_uid(&case.resource)?;
        let name = action.id().unescaped();
        let method = if ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&name)
        {
            name.to_owned()
        } else {
            "POST".to_owned()
        };
        let mut context = serde_json::Map::from_iter([
            ("time".to_owned(), json!(0)),
            ("hour".to_owned(), json!(12)),
            ("method".to_owned(), json!(method)),
            ("path".to_owned(), json!("/")),
            ("data_labels".to_owned(), json!([])),
            ("risk_score".to_owned(), json!(0)),
        ]);
        context.extend(case.context.clone());
        crate::json::request(
            &bundle.schema,
            principal,
            action,
            resource,
            &Value::Object(context),
        )
    })();
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            outcome.failure = Some(format!("invalid request: {e}"));
            return outcome;
        }
    };
    let decision = engine.decide(&request);
    let got = if decision.is_allowed() {
        Expect::Allow
    } else {
        Expect::Deny
    };
    outcome.got = Some(got);
    outcome.policies = decision
        .policies()
        .iter()
        .map(ToString::to_string)
        .collect();
    outcome.reasons = decision.reasons().iter().map(ToString::to_string).collect();
    if got != case.expect {
        let mut why = format!(
            "expected {}, got {} (policies: {})",
            case.expect.as_str(),
            got.as_str(),
            if outcome.policies.is_empty() {
                "none".to_owned()
            } else {
                outcome.policies.join(", ")
            }
        );
        let errors: Vec<String> = decision.errors().iter().map(|e| format!("{e:?}")).collect();
        if !errors.is_empty() {
            why.push_str(&format!("; evaluation errors: {}", errors.join("; ")));
        }
        outcome.failure = Some(why);
    } else if let Some(reason) = &case.reason
        && !outcome.reasons.iter().any(|r| r == reason)
    {
        outcome.failure = Some(format!(
            "expected reason {reason:?}, got {:?}",
            outcome.reasons
        ));
    }
    outcome
}
