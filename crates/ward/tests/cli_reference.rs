//! `docs/cli.md`, the CLI reference, is the `--help` of every `ward`
//! command as the binary prints it, so it cannot drift: this test
//! regenerates it and fails when the committed file differs.
//!
//! After changing the CLI: `WARD_BLESS=1 cargo test -p ward --test cli_reference`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::PathBuf;
use std::process::Command;

fn help(path: &[String]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
    cmd.args(path).arg("--help");
    // The help shows `[env: NAME=value]` for variables that are set; the
    // reference documents the defaults, not this shell.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WARD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("COLUMNS", "100").env("NO_COLOR", "1");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "ward {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help text lists under `Commands:`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

fn walk(path: Vec<String>, out: &mut String) {
    let text = help(&path);
    let title = if path.is_empty() {
        "ward".to_owned()
    } else {
        format!("ward {}", path.join(" "))
    };
    out.push_str(&format!(
        "## `{title}`\n\n```text\n{}\n```\n\n",
        text.trim_end()
    ));
    for sub in subcommands(&text) {
        let mut next = path.clone();
        next.push(sub);
        walk(next, out);
    }
}

#[test]
fn docs_cli_md_is_the_binarys_own_help() {
    let mut generated = String::from(
        "# CLI reference\n\n\
         Generated from `ward --help` of every command by\n\
         `crates/ward/tests/cli_reference.rs`, which fails when this file is out\n\
         of date (regenerate: `WARD_BLESS=1 cargo test -p ward --test cli_reference`).\n\n",
    );
    walk(Vec::new(), &mut generated);
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    if std::env::var("WARD_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/cli.md is out of date with the CLI: run `WARD_BLESS=1 cargo test -p ward --test cli_reference` and commit it"
    );
    // And it documents something: every top-level command is in it.
    for command in ["server", "agent", "policy", "audit", "proxy", "ca"] {
        assert!(
            committed.contains(&format!("## `ward {command}`")),
            "{command}"
        );
    }
}
