//! `ward policy validate|test`: policy bundles as code, checked offline.
//!
//! A bundle is a directory of `*.cedar` files, an optional
//! `schema.cedarschema` extending Ward's schema, and test cases in
//! `tests/*.yaml` (format: `ward_policy::testing`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use ward_policy::LoadError;
use ward_policy::bundle::{self, Bundle};
use ward_policy::testing::{Expect, Outcome};

use crate::cli::Output;

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
                "got": o.got.map(Expect::as_str),
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
    Ok(ward_policy::testing::run_file(bundle, &shown, &text)?)
}
