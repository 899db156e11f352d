//! `ward demo` as a newcomer runs it, as a real process: every scene's
//! outcome from its `--summary-json`, the exit code, and what is left on
//! disk. A default working directory is removed at the end; a `--dir` one
//! is kept; with `--keep-running` the fabric stays up until Ctrl-C
//! (SIGINT), then shuts down cleanly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The demo takes a few seconds in a debug build; past this it is stuck.
const LIMIT: Duration = Duration::from_secs(120);

fn demo(tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
    c.arg("demo")
        .arg("--non-interactive")
        // The default working directory goes under here, so the test can
        // see that it is removed.
        .env("TMPDIR", tmp.join("tmp"))
        .env("XDG_CONFIG_HOME", tmp.join("xdg"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "WARD_LOG",
        "WARD_SERVER",
        "WARD_CLIENT_CONFIG",
        "WARD_CONFIG",
    ] {
        c.env_remove(var);
    }
    std::fs::create_dir_all(tmp.join("tmp")).unwrap();
    c
}

/// Waits for `child`, killing it after [`LIMIT`].
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the demo did not finish within {}s:\n{}\n{}",
                LIMIT.as_secs(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn scene<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scene {name} in {summary:#}"))
}

fn assert_every_scene(summary: &Value) {
    assert_eq!(summary["ok"], true, "{summary:#}");
    let names: Vec<&str> = summary["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "allowed",
            "discovery",
            "denied",
            "rate-limited",
            "revoked",
            "audit"
        ]
    );
    for s in summary["scenes"].as_array().unwrap() {
        assert_eq!(s["ok"], true, "{s:#}");
    }

    let allowed = scene(summary, "allowed");
    assert_eq!(allowed["details"]["status"], 200);
    assert_eq!(
        allowed["details"]["peer_id"],
        "spiffe://demo.local/agent/planner"
    );
    assert_eq!(allowed["details"]["forged_peer_id_seen"], false);
    assert!(allowed["decision_id"].as_str().unwrap().len() >= 16);

    let discovery = scene(summary, "discovery");
    assert_eq!(
        discovery["details"]["offered"],
        serde_json::json!(["search", "summarize", "delete_records"])
    );
    assert_eq!(
        discovery["details"]["listed"],
        serde_json::json!(["search", "summarize"])
    );
    assert!(
        discovery["details"]["search_answer"]
            .as_str()
            .unwrap()
            .contains("results for")
    );

    let denied = scene(summary, "denied");
    assert_eq!(denied["details"]["code"], -32050);
    let message = denied["details"]["message"].as_str().unwrap();
    assert!(
        message.contains("destructive tools need a human approval"),
        "{message}"
    );
    let denial = denied["decision_id"].as_str().unwrap();
    assert!(message.contains(denial), "{message}");
    assert_eq!(
        denied["details"]["policies"],
        serde_json::json!(["destructive-tools-need-approval"])
    );
    assert_eq!(denied["details"]["reached_tool_server"], false);

    let limited = scene(summary, "rate-limited");
    assert!(limited["details"]["allowed"].as_u64().unwrap() >= 1);
    assert!(limited["details"]["limited"].as_u64().unwrap() >= 1);
    assert!(limited["details"]["retry_after_secs"].as_u64().unwrap() >= 1);
    assert!(
        limited["details"]["statuses"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(429))
    );

    let revoked = scene(summary, "revoked");
    let d = &revoked["details"];
    assert_eq!(d["pending"], serde_json::json!([]), "{d:#}");
    let mut applied: Vec<&str> = d["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    applied.sort_unstable();
    assert_eq!(
        applied,
        ["planner", "tools"],
        "the revoked proxy does not count"
    );
    assert_eq!(d["stream_cut"], true);
    assert!(d["events_before"].as_u64().unwrap() >= 3);
    assert_eq!(d["next_status"], 403);
    assert_eq!(d["next_problem"], "urn:ward:problem:revoked");

    let audit = scene(summary, "audit");
    let d = &audit["details"];
    assert_eq!(d["verified"], true, "{d:#}");
    assert_eq!(d["proof_verified"], true);
    assert_eq!(audit["decision_id"], denial, "the proof is of the denial");
    assert_eq!(d["record"]["decision_id"], denial);
    assert_eq!(d["record"]["decision"], "deny");
    assert!(d["leaf_index"].as_u64().unwrap() < d["proof_tree_size"].as_u64().unwrap());
    assert!(
        d["revoked_refusal_index"].is_u64(),
        "the revoked call's refusal is in the log"
    );
}

#[test]
fn every_scene_goes_as_expected_and_the_default_directory_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let summary_path = tmp.path().join("summary.json");
    let started = Instant::now();
    let child = demo(tmp.path())
        .arg("--summary-json")
        .arg(&summary_path)
        .spawn()
        .unwrap();
    let out = finish(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("the demo took {:?}", started.elapsed());
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_every_scene(&summary);

    // Narrated, in order, and without colour (NO_COLOR).
    let mut at = 0;
    for heading in [
        "[setup]",
        "[1/6]",
        "[2/6]",
        "[3/6]",
        "[4/6]",
        "[5/6]",
        "[6/6]",
        "[summary]",
    ] {
        at += stdout[at..]
            .find(heading)
            .unwrap_or_else(|| panic!("{heading} missing or out of order:\n{stdout}"));
    }
    assert!(!stdout.contains('\x1b'), "colour despite NO_COLOR");
    assert!(
        stdout.contains("stopped: proxies drained, apps stopped, control plane drained"),
        "{stdout}"
    );

    let left: Vec<_> = std::fs::read_dir(tmp.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left.is_empty(),
        "the default working directory was not removed: {left:?}"
    );
}

#[test]
fn keep_running_stays_up_until_ctrl_c_and_a_given_directory_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo-dir");
    let summary_path = tmp.path().join("summary.json");
    let child = demo(tmp.path())
        .arg("--keep-running")
        .arg("--dir")
        .arg(&dir)
        .arg("--summary-json")
        .arg(&summary_path)
        .spawn()
        .unwrap();
    // The summary is written before the demo settles down to wait.
    let deadline = Instant::now() + LIMIT;
    while !summary_path.exists() {
        assert!(Instant::now() < deadline, "no summary within the limit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_every_scene(&summary);

    // Still serving: the client config it printed works with the CLI.
    let config = dir.join("server/admin/client.toml");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !config.exists() {
        assert!(Instant::now() < deadline, "no client config written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let agents = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["agent", "list", "--output", "json", "--client-config"])
        .arg(&config)
        .env_remove("WARD_SERVER")
        .output()
        .unwrap();
    assert!(
        agents.status.success(),
        "{}",
        String::from_utf8_lossy(&agents.stderr)
    );
    let agents: Value = serde_json::from_slice(&agents.stdout).unwrap();
    assert_eq!(agents.as_array().unwrap().len(), 3, "{agents:#}");

    let sent = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let out = finish(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[explore]"), "{stdout}");
    assert!(stdout.contains("shutting down"), "{stdout}");
    assert!(
        stdout.contains("stopped: proxies drained, apps stopped, control plane drained"),
        "{stdout}"
    );
    assert!(
        dir.join("server/ward.db").exists(),
        "a --dir working directory is kept"
    );
}
