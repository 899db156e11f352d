//! An acknowledged write survives `kill -9`: a child process (this test
//! binary, re-executed) registers agents as fast as it can and prints each
//! name once the store has returned; the parent kills it mid-stream, reopens
//! the store and finds every acknowledged agent. Both backends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ward_core::{AgentName, TrustDomain};
use ward_server::store::{AgentAttributes, Store};

mod common;

const CHILD_ENV: &str = "WARD_CRASH_CHILD_URL";

/// Runs only inside the child: writes until killed.
#[tokio::test]
async fn crash_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    let td = TrustDomain::new("ward.test").unwrap();
    for i in 0.. {
        let name = AgentName::new(&format!("agent-{i}")).unwrap();
        store
            .register_agent(&td, &name, AgentAttributes::default(), 0)
            .await
            .unwrap();
        println!("ACK {name}");
    }
}

async fn kill_during_writes(url: String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 200 {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(name) = line.strip_prefix("ACK ") {
            acked.push(name.to_owned());
        }
    }
    // SIGKILL: no destructors, no flush, no graceful close.
    child.kill().unwrap();
    child.wait().unwrap();

    let store = Store::open(&url).await.unwrap();
    for name in &acked {
        let name = AgentName::new(name).unwrap();
        assert!(
            store.agent(&name).await.unwrap().is_some(),
            "acknowledged {name} was lost"
        );
    }
    assert!(store.revision().await.unwrap() >= acked.len() as u64);
}

#[tokio::test]
async fn sqlite_acknowledged_writes_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    kill_during_writes(format!("sqlite://{}", dir.path().join("ward.db").display())).await;
}

#[tokio::test]
async fn postgres_acknowledged_writes_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    if let Some(url) = common::postgres_url().await {
        kill_during_writes(url).await;
    }
}
