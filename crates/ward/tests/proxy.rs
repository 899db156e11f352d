//! `ward proxy run` as real processes beside a real `ward server run`:
//! sustained traffic through two proxies while first the server and then
//! the receiving proxy are killed with `kill -9` — every decision whose
//! request reached the app (so its audit record was acknowledged by the
//! spool first) ends up in the server's Merkle log once both are back, and
//! `ward audit verify` passes (DESIGN.md §4.4).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cmd(tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
    c.env("XDG_CONFIG_HOME", tmp.join("xdg"));
    for var in [
        "WARD_LOG",
        "WARD_SERVER",
        "WARD_CLIENT_CONFIG",
        "WARD_CONFIG",
    ] {
        c.env_remove(var);
    }
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The app behind the receiving proxy: answers every request with the
/// `ward-decision-id` it was given, then closes.
fn app() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut id = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("ward-decision-id:") {
                        id = v.trim().to_owned();
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{id}",
                    id.len()
                );
            });
        }
    });
    addr
}

/// Starts a proxy and returns it with its outbound address.
fn proxy(
    tmp: &Path,
    server: &str,
    agent: &str,
    upstream: &str,
    token: Option<&str>,
) -> (Kill, String) {
    let mut c = cmd(tmp);
    c.args([
        "proxy",
        "run",
        "--server",
        server,
        "--agent",
        agent,
        "--upstream",
        upstream,
        "--outbound",
        "127.0.0.1:0",
        "--inbound",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--workers",
        "1",
    ])
    .arg("--bundle")
    .arg(tmp.join("data/bundle.json"))
    .arg("--state-dir")
    .arg(tmp.join(agent));
    if let Some(t) = token {
        c.args(["--join-token", t]);
    }
    let mut child = c.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let outbound = loop {
        let line = lines.next().expect("proxy exited before serving").unwrap();
        if let Some(rest) = line.split(" — outbound ").nth(1) {
            break rest.split(',').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Kill(child), outbound)
}

/// One request through `outbound` to agent `target`; the status and body.
fn get(outbound: &str, target: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(outbound).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /x HTTP/1.1\r\nhost: {target}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    // A response cut short (a proxy killed mid-body) is not an answer: the
    // caller sees the status line, then fewer bytes than announced.
    let announced: Option<usize> = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .and_then(|v| v.trim().parse().ok())
    });
    if announced.is_some_and(|n| n != body.len()) {
        return None;
    }
    Some((status, body.to_owned()))
}

/// Decision ids in the server's log, read from its entry bundles while it
/// runs (partial bundles of earlier sizes repeat entries; the set absorbs
/// that).
fn logged_decisions(data: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for (_, bytes) in ward_testkit::published_files(&data.join("audit/tile/entries")) {
        for e in ward_audit::bundle::entries(&bytes) {
            let record = ward_audit::record::AuditRecord::decode(e.unwrap()).unwrap();
            out.insert(record.decision_id);
        }
    }
    out
}

#[test]
fn acknowledged_decisions_reach_the_log_across_kill_9_of_server_and_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    ok(cmd(t)
        .args([
            "server",
            "init",
            "--trust-domain",
            "example.org",
            "--data-dir",
        ])
        .arg(&data));
    let (server, addr) = common::spawn_server(
        cmd(t)
            .args(["server", "run", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    );
    let server = Kill(server);
    let admin = |args: &[&str]| {
        ok(cmd(t)
            .args(args)
            .args(["--server", &addr, "--client-config"])
            .arg(data.join("admin/client.toml")))
    };
    admin(&["agent", "register", "api"]);
    admin(&["agent", "register", "client"]);
    let policies = t.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("main.cedar"),
        "@id(\"client-calls-api\")\npermit(principal == Agent::\"client\", action, resource == Agent::\"api\");\n",
    )
    .unwrap();
    admin(&["policy", "push", policies.to_str().unwrap()]);
    let api_token = admin(&["token", "create", "--agent", "api"]);
    let client_token = admin(&["token", "create", "--agent", "client"]);

    let app = app();
    let (api, _) = proxy(t, &addr, "api", &app, Some(&api_token));
    let (_client, outbound) = proxy(t, &addr, "client", "127.0.0.1:9", Some(&client_token));

    // Until the client's proxy has learned api's endpoint and the policy.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if get(&outbound, "api").is_some_and(|(s, _)| s == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the call never went through");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Sustained traffic from 4 threads; kill -9 api's proxy in the middle.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (acknowledged, stop, outbound) = (
                Arc::clone(&acknowledged),
                Arc::clone(&stop),
                outbound.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some((200, id)) = get(&outbound, "api") {
                        acknowledged.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    // kill -9 the server while proxies ship; they keep deciding and spool.
    let mut server = server;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let (restarted, _) = common::spawn_server(
        cmd(t)
            .args(["server", "run", "--listen", &addr, "--data-dir"])
            .arg(&data),
    );
    let _server = Kill(restarted);
    std::thread::sleep(Duration::from_millis(800));
    // Then kill -9 the receiving proxy in the middle of the traffic.
    let mut api = api;
    api.0.kill().unwrap(); // SIGKILL
    api.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "too little traffic: {}",
        acknowledged.len()
    );

    // Restarted (no token: it reuses its identity), api's proxy ships what
    // its spool kept; every acknowledged decision must reach the log.
    let (_api, _) = proxy(t, &addr, "api", &app, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let logged = logged_decisions(&data);
        let missing: Vec<String> = acknowledged
            .iter()
            .filter(|id| !logged.contains(*id))
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        missing.is_empty(),
        "{} of {} decisions that reached the app never reached the log: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );

    // The log verifies end to end, and the CLI reads it back.
    let verified = ok(cmd(t)
        .args(["audit", "verify", "--server", &addr, "--client-config"])
        .arg(data.join("admin/client.toml")));
    assert!(verified.starts_with("verified: "), "{verified}");
    let tail = admin(&["audit", "tail", "-n", "3"]);
    assert_eq!(tail.lines().count(), 4, "header and 3 rows: {tail}");
    // Each row shows when the decision was made (records carry time_ms).
    assert!(!tail.contains("1970-01-01"), "{tail}");
    let proof = admin(&["audit", "prove", "0"]);
    assert!(proof.starts_with("entry 0 is included"), "{proof}");
    let denied = admin(&[
        "audit",
        "query",
        "--agent",
        "api",
        "--decision",
        "allow",
        "--limit",
        "5",
    ]);
    assert!(denied.contains("ALLOW"), "{denied}");
    // The id an app was given finds its decision, with the proof command.
    let id = &acknowledged[acknowledged.len() / 2];
    let shown = admin(&["audit", "query", "--decision-id", id]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("decision id ") && l.ends_with(id.as_str())),
        "{shown}"
    );
    assert!(
        shown.contains("ALLOW") && shown.contains("client-calls-api"),
        "{shown}"
    );
    assert!(shown.contains("prove it: ward audit prove "), "{shown}");
    let unknown = cmd(t)
        .args([
            "audit",
            "query",
            "--decision-id",
            "0192e4c2b9f07000800000000000dead",
        ])
        .args(["--server", &addr, "--client-config"])
        .arg(data.join("admin/client.toml"))
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let why = String::from_utf8_lossy(&unknown.stderr);
    assert!(why.contains("no logged decision has id"), "{why}");
    // Containment with receipts: the restarted api proxy reports; revoking
    // the client waits until every connected proxy enforces it.
    let listed = admin(&["proxy", "list"]);
    assert!(listed.contains("api"), "{listed}");
    let receipt = admin(&[
        "agent",
        "revoke",
        "client",
        "--reason",
        "drill",
        "--wait",
        "--timeout",
        "10s",
    ]);
    assert!(receipt.starts_with("enforced by "), "{receipt}");
    eprintln!(
        "{} requests reached the app across kill -9 of the server and of the proxy; all {} in the verified log",
        acknowledged.len(),
        acknowledged.len(),
    );
}
