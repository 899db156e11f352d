//! Helpers shared by the `ward` binary's integration tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "tests; not every test file uses every helper"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawns `ward server run …` (already configured in `cmd`) and waits for
/// its "listening on" line; returns the child and the address. Standard
/// error keeps being drained so the server never blocks on a full pipe.
pub fn spawn_server(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(addr) = line.strip_prefix("ward server listening on ") {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}
