//! The real SDKs from PyPI through two Ward proxies: an `mcp` 2.x client
//! (`mcp.Client`, streamable HTTP) → its proxy → the server's proxy → an
//! `MCPServer`; an `a2a-sdk` 1.x client → … → an A2A agent. Allowed tools
//! work, a denied tool raises the JSON-RPC error in the client, `tools/list`
//! and the agent card are filtered, A2A messages are decided per skill.
//!
//! The Python side lives in `tests/sdk/`; `scripts/sdk-venv.sh` builds the
//! venv (`.ci/run` calls it). Without a venv the tests skip on a laptop and
//! fail in CI.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::*;

const SDK_POLICY: &str = r#"
@id("sessions")
@reason("a may hold MCP sessions with b and read c's card")
permit(
  principal == Agent::"a",
  action in [Action::"initialize", Action::"server/discover", Action::"mcp/notification", Action::"tools/list", Action::"ping",
             Action::"mcp/stream", Action::"mcp/end-session", Action::"agent/card"],
  resource is Agent
) when { [Agent::"b", Agent::"c"].contains(resource) };

@id("read-only-tools")
@reason("a may use b's read-only tools")
permit(principal == Agent::"a", action == Action::"tools/call", resource is Tool in Agent::"b")
when { resource has risk && resource.risk == 0 };

@id("summaries")
@reason("a may ask c for summaries")
permit(principal == Agent::"a", action == Action::"message/send", resource == Skill::"c/summarize");
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python: `WARD_SDK_PYTHON`, else the one `scripts/sdk-venv.sh`
/// builds by default. `None` (skip) only outside CI.
fn python() -> Option<PathBuf> {
    let path = std::env::var_os("WARD_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/sdk-venv/bin/python"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "no SDK venv at {}: run scripts/sdk-venv.sh (CI must run these tests)",
        path.display()
    );
    eprintln!(
        "skipping: no SDK venv at {} (run scripts/sdk-venv.sh)",
        path.display()
    );
    None
}

/// A Python server from `tests/sdk`, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `script` on a free port and waits (bounded) for its `ready`.
fn start_server(python: &std::path::Path, script: &str) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(python)
        .arg(repo().join("tests/sdk").join(script))
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    let server = Server(child);
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{script} did not become ready within 60s"));
    (server, port)
}

/// Runs a client script; its stdout is one JSON document.
async fn client(python: &std::path::Path, script: &str, args: Vec<String>) -> Value {
    let python = python.to_path_buf();
    let script = repo().join("tests/sdk").join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client printed no JSON ({e}): {stdout}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_mcp_and_a2a_sdks_through_two_proxies() {
    let Some(python) = python() else { return };
    let (_mcp, mcp_port) = start_server(&python, "mcp_server.py");
    let (_a2a, a2a_port) = start_server(&python, "a2a_server.py");

    let world = World::new(Duration::from_secs(600)).await;
    let tools =
        json!({"tool.search.risk": "0", "tool.echo.risk": "0", "tool.delete_records.risk": "3"});
    world.label("b", false, tools).await;
    world.label("c", true, json!({"protocol": "a2a"})).await;
    world.push_policy(SDK_POLICY).await;
    let pa = world.proxy("a", None).await;
    let mut proxies = Vec::new();
    for (agent, port, protocol) in [
        ("b", mcp_port, Some(ward_proxy::rpc::Protocol::Mcp)),
        ("c", a2a_port, None),
    ] {
        let upstream = format!("127.0.0.1:{port}");
        proxies.push(
            world
                .fronting(agent, upstream, protocol, None, &pa, "summaries")
                .await,
        );
    }
    let pb = &proxies[0];
    let pc = &proxies[1];

    // MCP: the client sees only the tools it may call.
    let mcp_url = format!("http://{}/mcp", pa.outbound);
    let mcp = |args: &[&str]| {
        let mut all = strings(&["--url", &mcp_url, "--header", "ward-target:b"]);
        all.extend(strings(args));
        client(&python, "mcp_client.py", all)
    };
    let listed = mcp(&["list"]).await;
    assert_eq!(listed["tools"], json!(["echo", "search"]), "{listed}");
    let ok = mcp(&["call", "search", "--arg", "query=zero trust"]).await;
    assert_eq!(ok, json!({"ok": true, "content": "results for zero trust"}));
    // A denied tool: the SDK raises the JSON-RPC error Ward sent.
    let denied = mcp(&["call", "delete_records", "--arg", "table=users"]).await;
    assert_eq!(denied["ok"], false, "{denied}");
    assert_eq!(denied["code"], ward_proxy::jsonrpc::DENIED, "{denied}");
    let message = denied["message"].as_str().unwrap();
    assert!(message.contains("Tool::\"b/delete_records\""), "{message}");
    let record = records(pb)
        .into_iter()
        .find(|r| {
            r.rpc
                .as_ref()
                .is_some_and(|c| c.target.as_deref() == Some("delete_records"))
        })
        .expect("the denied tool call is audited");
    assert_eq!(record.decision, Decision::Deny);
    assert!(message.contains(&record.decision_id), "{message}");

    // A2A: the card lists only the skill a may use; messages by skill.
    let a2a_url = format!("http://{}/", pa.outbound);
    let a2a = |args: &[&str]| {
        let mut all = strings(&["--url", &a2a_url, "--header", "ward-target:c"]);
        all.extend(strings(args));
        client(&python, "a2a_client.py", all)
    };
    let card = a2a(&["card"]).await;
    assert_eq!(card["skills"], json!(["summarize"]), "{card}");
    let ok = a2a(&["send", "--skill", "summarize", "--text", "the report"]).await;
    assert_eq!(ok, json!({"ok": true, "text": "summarize: the report"}));
    let denied = a2a(&["send", "--skill", "wire_funds", "--text", "all of it"]).await;
    assert_eq!(denied["ok"], false, "{denied}");
    assert_eq!(denied["code"], ward_proxy::jsonrpc::DENIED, "{denied}");
    let record = records(pc)
        .into_iter()
        .find(|r| r.resource == "Skill::\"c/wire_funds\"")
        .expect("the denied message is audited");
    assert_eq!(record.decision, Decision::Deny);

    pa.shutdown(Duration::from_secs(5)).await;
    for p in proxies {
        p.shutdown(Duration::from_secs(5)).await;
    }
}
