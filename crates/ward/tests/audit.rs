//! `ward audit verify --from-dir` on a real tile directory written by the
//! log core: a good log verifies; a changed entry, a foreign key and a
//! forked checkpoint are each refused with exit 2 and a precise reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use ward_audit::{FsStore, KeyName, Log, NoteSigner, Origin};

fn ward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .env_remove("WARD_LOG")
        .env_remove("WARD_AUDIT_VKEY")
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes a 700-entry log with a saved checkpoint at 300; returns the
/// verifier key and the saved checkpoint's path.
fn build(dir: &Path) -> (String, PathBuf) {
    let signer = NoteSigner::generate(KeyName::new("audit.ward.test").unwrap()).unwrap();
    let vkey = signer.verifier().to_string();
    let origin = Origin::new("audit.ward.test/log").unwrap();
    let mut log = Log::open(FsStore::open(dir).unwrap(), origin, signer).unwrap();
    let entries: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("record {i}").into_bytes())
        .collect();
    log.append(&entries).unwrap();
    log.checkpoint(Instant::now()).unwrap().unwrap();
    let saved = dir.parent().unwrap().join("checkpoint.300");
    std::fs::copy(dir.join("checkpoint"), &saved).unwrap();
    let more: Vec<Vec<u8>> = (300..700)
        .map(|i| format!("record {i}").into_bytes())
        .collect();
    log.append(&more).unwrap();
    log.checkpoint(Instant::now()).unwrap().unwrap();
    (vkey, saved)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn a_mirrored_log_verifies_and_tampering_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (vkey, saved) = build(&dir);
    let d = dir.to_str().unwrap();
    let current = dir.join("checkpoint");

    let ok = ward(&[
        "audit",
        "verify",
        "--from-dir",
        d,
        "--vkey",
        &vkey,
        "--checkpoint",
        saved.to_str().unwrap(),
        "--checkpoint",
        current.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(ok.status.success(), "{}", out(&ok));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["size"], 700);
    assert_eq!(report["checkpoints"], 2);

    // A key that did not sign the checkpoints.
    let other = NoteSigner::generate(KeyName::new("audit.ward.test").unwrap()).unwrap();
    let foreign = ward(&[
        "audit",
        "verify",
        "--from-dir",
        d,
        "--vkey",
        &other.verifier().to_string(),
    ]);
    assert_eq!(foreign.status.code(), Some(2), "{}", out(&foreign));
    assert!(
        out(&foreign).contains("checkpoint 0 is not valid"),
        "{}",
        out(&foreign)
    );
    let garbage = ward(&["audit", "verify", "--from-dir", d, "--vkey", "nonsense"]);
    assert_eq!(garbage.status.code(), Some(1), "{}", out(&garbage));

    // Change one entry byte in the first entry bundle.
    let mut files = Vec::new();
    files_under(&dir.join("tile/entries"), &mut files);
    files.sort();
    let bundle = files.first().expect("an entry bundle");
    let mut bytes = std::fs::read(bundle).unwrap();
    let pos = bytes.windows(9).position(|w| w == b"record 42").unwrap();
    bytes[pos + 7] = b'X';
    std::fs::write(bundle, &bytes).unwrap();
    let bad = ward(&["audit", "verify", "--from-dir", d, "--vkey", &vkey]);
    assert_eq!(bad.status.code(), Some(2), "{}", out(&bad));
    let text = out(&bad);
    assert!(text.contains("VERIFICATION FAILED"), "{text}");
    assert!(
        text.contains("entry 42"),
        "the first bad index is named: {text}"
    );
}
