//! `ward policy validate|test` on real bundle directories: the shipped
//! example passes; broken policies, failing cases and malformed test files
//! are reported precisely with the documented exit codes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .env_remove("WARD_LOG")
        .output()
        .unwrap()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

fn copy_example(to: &Path) {
    std::fs::create_dir_all(to.join("tests")).unwrap();
    for entry in std::fs::read_dir(example()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    for entry in std::fs::read_dir(example().join("tests")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join("tests").join(p.file_name().unwrap())).unwrap();
    }
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_example_bundle_validates_and_passes() {
    let dir = example();
    let v = ward(&[
        "policy",
        "validate",
        dir.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(v.status.success(), "{}", out(&v));
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["version"].as_str().unwrap().len(), 64);
    let t = ward(&["policy", "test", dir.to_str().unwrap(), "--output", "json"]);
    assert!(t.status.success(), "{}", out(&t));
    let report: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    assert_eq!(report["failed"], 0);
    assert!(report["passed"].as_u64().unwrap() >= 6);
}

#[test]
fn every_policy_problem_is_reported_with_its_location() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("a.cedar"),
        "permit (principal, action, resource)\nwhen { principal.no_such_attr == 1 };\n",
    )
    .unwrap();
    std::fs::write(dir.join("b.cedar"), "permit (principal, action\n").unwrap();
    let v = ward(&["policy", "validate", dir.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(2), "{}", out(&v));
    let text = out(&v);
    assert!(text.contains("3 problems"), "{text}");
    assert!(text.contains("did you mean `risk_tier`"), "{text}");
    assert!(text.contains("a.cedar:2:"), "{text}");
    assert!(text.contains("b.cedar:"), "{text}");
    // `test` refuses to run cases against an invalid bundle.
    let t = ward(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(t.status.code(), Some(2));
}

#[test]
fn a_failing_case_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    copy_example(&dir);
    // Remove the rule that refuses deletes: its case must now fail.
    let agents = std::fs::read_to_string(dir.join("agents.cedar")).unwrap();
    let cut = agents.find("@id(\"no-deletes\")").unwrap();
    std::fs::write(dir.join("agents.cedar"), &agents[..cut]).unwrap();
    std::fs::write(
        dir.join("delete.cedar"),
        "@id(\"careless\")\npermit (principal, action == Action::\"DELETE\", resource);\n",
    )
    .unwrap();
    let t = ward(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(t.status.code(), Some(2), "{}", out(&t));
    let text = out(&t);
    assert!(
        text.contains("FAIL  tests/agents.yaml  deletes are refused with a reason: expected deny, got allow (policies: careless)"),
        "{text}"
    );
    assert!(text.contains("1 failed"), "{text}");

    // A reason mismatch also fails.
    std::fs::remove_file(dir.join("delete.cedar")).unwrap();
    std::fs::write(
        dir.join("delete.cedar"),
        "@id(\"no-deletes-2\")\n@reason(\"other words\")\nforbid (principal, action == Action::\"DELETE\", resource);\n",
    )
    .unwrap();
    let t = ward(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(t.status.code(), Some(2));
    assert!(out(&t).contains("expected reason"), "{}", out(&t));
}

#[test]
fn malformed_test_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    copy_example(&dir);
    std::fs::write(
        dir.join("tests/bad.yaml"),
        "cases:\n  - name: x\n    expect: maybe\n",
    )
    .unwrap();
    let t = ward(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(t.status.code(), Some(1), "{}", out(&t));
    assert!(out(&t).contains("tests/bad.yaml"), "{}", out(&t));

    // A case whose context violates the schema fails (it is not evaluated).
    std::fs::write(
        dir.join("tests/bad.yaml"),
        "cases:\n  - name: typed context\n    principal: Agent::\"planner\"\n    action: Action::\"GET\"\n    resource: Agent::\"researcher\"\n    context: {risk_score: high}\n    expect: deny\n",
    )
    .unwrap();
    let t = ward(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(t.status.code(), Some(2), "{}", out(&t));
    assert!(out(&t).contains("invalid request"), "{}", out(&t));

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        empty.join("p.cedar"),
        "permit (principal, action, resource);\n",
    )
    .unwrap();
    let t = ward(&["policy", "test", empty.to_str().unwrap()]);
    assert_eq!(t.status.code(), Some(1));
    assert!(out(&t).contains("no test cases"), "{}", out(&t));
}
