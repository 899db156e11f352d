//! `ward policy validate|test`: policy bundles as code, checked offline.
//!
//! A bundle is a directory of `*.cedar` files, an optional
//! `schema.cedarschema` extending Ward's schema, and test cases in
//! `tests/*.yaml`:
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
//!     context: {path: /v1/notes}   # merged over defaults (see below)
//!     expect: allow
//!   - name: deletes are refused with a reason
//!     principal: Agent::"planner"
//!     action: Action::"DELETE"
//!     resource: Agent::"researcher"
//!     expect: deny
//!     reason: deletes need a human   # must be among the decision's reasons
//! ```
//!
//! Context defaults: `time: 0, hour: 12, method: <the action for HTTP
//! actions, else POST>, path: "/", data_labels: [], risk_score: 0`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};
use ward_policy::bundle::{self, Bundle};
use ward_policy::{Engine, EntityStore, LoadError};

use crate::cli::Output;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

fn print_problems(dir: &Path, e: &LoadError) {
    eprintln!(
        "{}: {} problem{} in the policy bundle",
        dir.display(),
        e.problems().len(),
        if e.problems().len() == 1 { "" } else { "s" }
    );
    for p in e.problems() {
        eprintln!("  {p}");
    }
}

pub(crate) fn validate(dir: &Path, output: Output) -> anyhow::Result<ExitCode> {
    match bundle::load_dir(dir) {
        Ok(b) => {
            match output {
                Output::Json => crate::cmd::print_json(&json!({
                    "valid": true,
                    "policies": b.policies.len(),
                    "version": b.policies.version().to_string(),
                }))?,
                Output::Text => println!(
                    "ok: {} {} valid against the schema (version {})",
                    b.policies.len(),
                    if b.policies.len() == 1 {
                        "policy"
                    } else {
                        "policies"
                    },
                    b.policies.version()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            match output {
                Output::Json => crate::cmd::print_json(&json!({
                    "valid": false,
                    "problems": e.problems().iter().map(ToString::to_string).collect::<Vec<_>>(),
                }))?,
                Output::Text => print_problems(dir, &e),
            }
            Ok(ExitCode::from(crate::cmd::EXIT_DENIED))
        }
    }
}

/// The outcome of one case.
struct Outcome {
    file: String,
    name: String,
    expect: Expect,
    got: Option<&'static str>,
    policies: Vec<String>,
    reasons: Vec<String>,
    failure: Option<String>,
}

pub(crate) fn test(dir: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let bundle = match bundle::load_dir(dir) {
        Ok(b) => b,
        Err(e) => {
            print_problems(dir, &e);
            return Ok(ExitCode::from(crate::cmd::EXIT_DENIED));
        }
    };
    let files = test_files(dir)?;
    anyhow::ensure!(
        !files.is_empty(),
        "{} has no test cases; add tests/*.yaml (see `ward policy test --help`)",
        dir.join("tests").display()
    );
    let mut outcomes = Vec::new();
    for path in &files {
        outcomes.extend(run_file(&bundle, dir, path)?);
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    match output {
        Output::Json => crate::cmd::print_json(&json!({
            "passed": outcomes.len() - failed,
            "failed": failed,
            "policy_version": bundle.policies.version().to_string(),
            "cases": outcomes.iter().map(|o| json!({
                "file": o.file,
                "name": o.name,
                "expect": o.expect.as_str(),
                "got": o.got,
                "policies": o.policies,
                "reasons": o.reasons,
                "ok": o.failure.is_none(),
                "failure": o.failure,
            })).collect::<Vec<_>>(),
        }))?,
        Output::Text => {
            for o in &outcomes {
                match &o.failure {
                    None => println!("ok    {}  {}", o.file, o.name),
                    Some(why) => println!("FAIL  {}  {}: {why}", o.file, o.name),
                }
            }
            println!(
                "{} cases: {} passed, {} failed (policy version {})",
                outcomes.len(),
                outcomes.len() - failed,
                failed,
                bundle.policies.version()
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::cmd::EXIT_DENIED)
    })
}

fn test_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let tests = dir.join("tests");
    let Ok(entries) = std::fs::read_dir(&tests) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| tests.display().to_string())?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn run_file(bundle: &Bundle, dir: &Path, path: &Path) -> anyhow::Result<Vec<Outcome>> {
    let shown = path.strip_prefix(dir).unwrap_or(path).display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {shown}"))?;
    let file: TestFile =
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let entities =
        EntityStore::from_json_str(&bundle.schema, &serde_json::to_string(&file.entities)?)
            .map_err(|e| anyhow::anyhow!("{shown}: entities: {e}"))?;
    let engine = Engine::new(bundle.policies.clone(), bundle.schema.clone(), entities)
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let mut out = Vec::new();
    for case in file.cases {
        out.push(run_case(&engine, bundle, &shown, case));
    }
    Ok(out)
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
        let principal = ward_policy::json::parse_uid(&case.principal)?;
        let action = ward_policy::json::parse_uid(&case.action)?;
        let resource = ward_policy::json::parse_uid(&case.resource)?;
        let method = if ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
            .contains(&action.id().unescaped())
        {
            action.id().unescaped().to_owned()
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
        ward_policy::json::request(
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
    outcome.got = Some(got.as_str());
    outcome.policies = decision
        .policies()
        .iter()
        .map(ToString::to_string)
        .collect();
    outcome.reasons = decision.reasons().iter().map(ToString::to_string).collect();
    let errors: Vec<String> = decision.errors().iter().map(|e| format!("{e:?}")).collect();
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
