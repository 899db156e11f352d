//! The `ward` binary end to end: real processes, real files, exit codes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn ward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .env(
            "XDG_CONFIG_HOME",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/xdg-cli"),
        )
        .env_remove("WARD_LOG")
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ca_init_mint_and_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    let out = ward(&[
        "ca",
        "init",
        "--dir",
        s(&ca),
        "--trust-domain",
        "example.org",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["trust_domain"], "example.org");
    for key in ["root.key.pem", "intermediate.key.pem", "jwt.key.pem"] {
        let mode = std::fs::metadata(ca.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }

    // A second init must not overwrite the CA's keys.
    let again = ward(&[
        "ca",
        "init",
        "--dir",
        s(&ca),
        "--trust-domain",
        "example.org",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a CA"));

    let agent_dir = tmp.path().join("planner");
    let out = ward(&[
        "svid",
        "mint",
        "--ca-dir",
        s(&ca),
        "--agent",
        "planner",
        "--out",
        s(&agent_dir),
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(minted["spiffe_id"], "spiffe://example.org/agent/planner");
    let key_mode = std::fs::metadata(agent_dir.join("svid.key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);

    let svid = agent_dir.join("svid.pem");
    let bundle = ca.join("bundle.json");
    let out = ward(&[
        "svid",
        "inspect",
        s(&svid),
        "--bundle",
        s(&bundle),
        "--trust-domain",
        "example.org",
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["valid"], true);
    assert_eq!(inspected["serial"], minted["serial"]);

    // Against another CA's bundle the same SVID is refused: exit 2.
    let other = tmp.path().join("other");
    assert!(
        ward(&[
            "ca",
            "init",
            "--dir",
            s(&other),
            "--trust-domain",
            "example.org"
        ])
        .status
        .success()
    );
    let out = ward(&[
        "svid",
        "inspect",
        s(&svid),
        "--bundle",
        s(&other.join("bundle.json")),
        "--trust-domain",
        "example.org",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let refused: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["valid"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("does not verify")
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ward(&[
        "ca",
        "init",
        "--dir",
        s(tmp.path()),
        "--trust-domain",
        "Example.ORG",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--trust-domain") && err.contains("lowercase"),
        "{err}"
    );

    let out = ward(&[
        "svid",
        "mint",
        "--ca-dir",
        s(tmp.path()),
        "--agent",
        "a",
        "--out",
        s(tmp.path()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ward ca init"));

    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    let out = ward(&["svid", "inspect", s(&junk)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BEGIN CERTIFICATE"));

    let out = ward(&["svid", "inspect"]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "usage errors exit 64, not 2 (refused)"
    );
    assert!(ward(&["--help"]).status.success());
}

#[test]
fn proxy_run_explains_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    // No identity yet and no join token: a usage error naming the fix.
    let out = ward(&[
        "proxy",
        "run",
        "--server",
        "127.0.0.1:1",
        "--agent",
        "api",
        "--upstream",
        "127.0.0.1:2",
        "--state-dir",
        s(&state),
        "--outbound",
        "127.0.0.1:0",
        "--inbound",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("ward token create --agent api"), "{stderr}");
    // The state directory it made holds keys later: 0700.
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // A token but no bundle to authenticate the server with.
    let out = ward(&[
        "proxy",
        "run",
        "--server",
        "127.0.0.1:1",
        "--agent",
        "api",
        "--upstream",
        "127.0.0.1:2",
        "--state-dir",
        s(&state),
        "--join-token",
        "t",
        "--outbound",
        "127.0.0.1:0",
        "--inbound",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--bundle"), "{stderr}");

    // A malformed rate limit is caught by the parser with the expected form.
    let out = ward(&[
        "proxy",
        "run",
        "--server",
        "x:1",
        "--agent",
        "api",
        "--upstream",
        "y:2",
        "--rate-limit",
        "lots",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("RATE/s"), "{stderr}");
}
