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

use ward_client::Method;
use ward_server::api::policies::PushResponse;
use ward_server::store::{PolicyFile, PolicySummary, StoredPolicy};

use crate::cli::{Connection, Output};
use crate::cmd::client;

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

fn bundle_files(dir: &Path) -> anyhow::Result<Vec<PolicyFile>> {
    let files = ward_server::policy::BundleFiles::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(files
        .into_files()
        .into_iter()
        .map(|(name, text)| PolicyFile { name, text })
        .collect())
}

pub(crate) fn push(dir: &Path, conn: &Connection) -> anyhow::Result<ExitCode> {
    let files = bundle_files(dir)?;
    let api = client::connect(conn)?;
    let resp: PushResponse = client::runtime()?.block_on(api.call(
        Method::POST,
        "/v1/policies",
        Some(&json!({ "files": files })),
    ))?;
    match conn.output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(&resp)?)?,
        Output::Text => println!(
            "pushed and activated {} at revision {} ({} test cases passed on the server)",
            resp.version, resp.revision, resp.tests_passed
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn list(conn: &Connection) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let list: Vec<PolicySummary> = client::runtime()?.block_on(api.get("/v1/policies"))?;
    match conn.output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(&list)?)?,
        Output::Text => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|p| {
                    vec![
                        if p.active { "*" } else { "" }.to_owned(),
                        p.version.clone(),
                        crate::cmd::rfc3339(p.pushed_at),
                        p.pushed_by.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                crate::table::render(&["ACTIVE", "VERSION", "PUSHED AT", "PUSHED BY"], &rows)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch(api: &ward_client::Client, version: &str) -> anyhow::Result<StoredPolicy> {
    anyhow::ensure!(
        !version.is_empty() && version.chars().all(|c| c.is_ascii_hexdigit()),
        "version {version:?} is not a hash; `ward policy list` shows them"
    );
    Ok(api.get(&format!("/v1/policies/{version}")).await?)
}

pub(crate) fn show(version: &str, conn: &Connection) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let stored = client::runtime()?.block_on(fetch(&api, version))?;
    match conn.output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(&stored)?)?,
        Output::Text => {
            println!(
                "version {} pushed by {} at {}",
                stored.version,
                stored.pushed_by,
                crate::cmd::rfc3339(stored.pushed_at)
            );
            for f in &stored.files {
                println!("\n--- {} ---\n{}", f.name, f.text.trim_end());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn rollback(version: &str, conn: &Connection) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let resp: PushResponse = client::runtime()?.block_on(async {
        fetch(&api, version).await?;
        Ok::<_, anyhow::Error>(
            api.call(
                Method::POST,
                &format!("/v1/policies/{version}/activate"),
                None::<&()>,
            )
            .await?,
        )
    })?;
    match conn.output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(&resp)?)?,
        Output::Text => println!("activated {} at revision {}", resp.version, resp.revision),
    }
    Ok(ExitCode::SUCCESS)
}

fn as_bundle(
    stored: &StoredPolicy,
) -> anyhow::Result<(ward_policy::bundle::Bundle, Vec<(String, String)>)> {
    let files = ward_server::policy::BundleFiles::from_files(
        stored
            .files
            .iter()
            .map(|f| (f.name.clone(), f.text.clone())),
    );
    let bundle = files
        .load()
        .map_err(|e| anyhow::anyhow!("stored version {} does not load: {e}", stored.version))?;
    Ok((bundle, files.tests))
}

pub(crate) fn diff(from: &str, to: &str, conn: &Connection) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let (old, new) = client::runtime()?.block_on(async {
        Ok::<_, anyhow::Error>((fetch(&api, from).await?, fetch(&api, to).await?))
    })?;
    let policy_files = |p: &StoredPolicy| -> std::collections::BTreeMap<String, String> {
        p.files
            .iter()
            .filter(|f| !f.name.starts_with("tests/"))
            .map(|f| (f.name.clone(), f.text.clone()))
            .collect()
    };
    let (a, b) = (policy_files(&old), policy_files(&new));
    let mut changes = Vec::new();
    for name in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) if x != y => changes.push(("changed", name.clone())),
            (Some(_), None) => changes.push(("removed", name.clone())),
            (None, Some(_)) => changes.push(("added", name.clone())),
            _ => {}
        }
    }
    // Every test case of either version, decided under both.
    let (old_bundle, old_tests) = as_bundle(&old)?;
    let (new_bundle, new_tests) = as_bundle(&new)?;
    let mut flips = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (file, text) in old_tests.iter().chain(new_tests.iter()) {
        if !seen.insert((file.clone(), text.clone())) {
            continue;
        }
        let (Ok(before), Ok(after)) = (
            ward_policy::testing::run_file(&old_bundle, file, text),
            ward_policy::testing::run_file(&new_bundle, file, text),
        ) else {
            continue;
        };
        for (x, y) in before.iter().zip(after.iter()) {
            if x.got != y.got && seen.insert((x.file.clone(), x.name.clone())) {
                flips.push(json!({
                    "file": x.file,
                    "case": x.name,
                    "from": x.got.map(Expect::as_str),
                    "to": y.got.map(Expect::as_str),
                }));
            }
        }
    }
    match conn.output {
        Output::Json => crate::cmd::print_json(&json!({
            "from": old.version,
            "to": new.version,
            "files": changes.iter().map(|(k, n)| json!({"change": k, "file": n})).collect::<Vec<_>>(),
            "flipped_cases": flips,
        }))?,
        Output::Text => {
            println!("{} → {}", old.version, new.version);
            if changes.is_empty() {
                println!("no policy files differ");
            }
            for (kind, name) in &changes {
                println!("  {kind:<8} {name}");
            }
            if flips.is_empty() {
                println!("no test case decides differently");
            } else {
                println!("test cases that decide differently:");
                for f in &flips {
                    println!(
                        "  {}  {}: {} → {}",
                        f["file"].as_str().unwrap_or_default(),
                        f["case"].as_str().unwrap_or_default(),
                        f["from"].as_str().unwrap_or("invalid"),
                        f["to"].as_str().unwrap_or("invalid")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
