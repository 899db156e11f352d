//! The admin CLI against a real `ward server run` process: every registry
//! command with table and JSON output and its exit codes; a non-admin
//! credential refused with exit 2; writes the server acknowledged surviving
//! `kill -9` on both backends; the config file's checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn xdg(&self) -> PathBuf {
        self.tmp.path().join("xdg")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
        c.env("XDG_CONFIG_HOME", self.xdg());
        for var in [
            "WARD_LOG",
            "WARD_STORE",
            "WARD_DATA_DIR",
            "WARD_LISTEN",
            "WARD_SERVER",
            "WARD_CLIENT_CONFIG",
            "WARD_CONFIG",
            "WARD_SVID_TTL",
        ] {
            c.env_remove(var);
        }
        c
    }

    fn ward(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn init(&self, store: Option<&str>) {
        let data = self.data();
        let mut args = vec![
            "server",
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--trust-domain",
            "example.org",
        ];
        if let Some(url) = store {
            args.extend(["--store", url]);
        }
        let out = self.ward(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run(&self, store: Option<&str>) -> Server {
        let data = self.data();
        let mut args = vec![
            "server",
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        if let Some(url) = store {
            args.extend(["--store", url]);
        }
        let (child, addr) = common::spawn_server(self.cmd().args(&args));
        Server { child, addr }
    }
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(out: &Output) -> Value {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn registry_commands_end_to_end() {
    let env = Env::new();
    env.init(None);
    // init wrote the user-level client config the CLI finds by itself.
    let user_config = env.xdg().join("ward/client.toml");
    assert!(user_config.exists());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&user_config).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    let server = env.run(None);
    let s = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server.addr]);
        env.ward(&all)
    };

    let agent = json_of(&s(&[
        "agent",
        "register",
        "planner",
        "--team",
        "research",
        "--risk-tier",
        "low",
        "--clearance",
        "internal",
        "--label",
        "env=dev",
        "--label",
        "tier=gold",
        "--model",
        "provider=acme",
        "--output",
        "json",
    ]));
    assert_eq!(agent["name"], "planner");
    assert_eq!(agent["spiffe_id"], "spiffe://example.org/agent/planner");
    assert_eq!(agent["status"], "active");
    assert_eq!(agent["attributes"]["labels"]["env"], "dev");
    assert_eq!(agent["attributes"]["model"]["provider"], "acme");

    let dup = s(&["agent", "register", "planner"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(text(&dup).1.contains("already exists"), "{}", text(&dup).1);

    let bad = s(&["agent", "register", "Bad Name"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).1.contains("agent name"), "{}", text(&bad).1);
    let bad_label = s(&["agent", "register", "x", "--label", "novalue"]);
    assert_eq!(bad_label.status.code(), Some(1));
    assert!(text(&bad_label).1.contains("KEY=VALUE"));

    json_of(&s(&["agent", "register", "researcher", "--output", "json"]));
    let table = s(&["agent", "list"]);
    let (stdout, _) = text(&table);
    assert!(table.status.success());
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert!(
        lines[1].starts_with("planner ") && lines[1].contains("research"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("researcher"), "{stdout}");
    let list = json_of(&s(&["agent", "list", "--output", "json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);

    let updated = json_of(&s(&[
        "agent",
        "update",
        "planner",
        "--team",
        "ops",
        "--remove-label",
        "env",
        "--endpoint",
        "127.0.0.1:15002",
        "--output",
        "json",
    ]));
    assert_eq!(updated["attributes"]["team"], "ops");
    assert_eq!(
        updated["attributes"]["risk_tier"], "low",
        "unset flags keep their value"
    );
    assert_eq!(
        updated["attributes"]["labels"],
        serde_json::json!({"tier": "gold"})
    );
    assert_eq!(updated["endpoint"], "127.0.0.1:15002");
    assert!(updated["revision"].as_u64() > agent["revision"].as_u64());

    let show = s(&["agent", "show", "planner"]);
    assert!(text(&show).0.contains("spiffe://example.org/agent/planner"));
    let missing = s(&["agent", "show", "nobody"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).1.contains("no agent named nobody"),
        "{}",
        text(&missing).1
    );

    let token = json_of(&s(&[
        "token", "create", "--agent", "planner", "--ttl", "5m", "--output", "json",
    ]));
    assert!(token["token"].as_str().unwrap().starts_with("wardjt_"));
    let plain = s(&["token", "create", "--agent", "planner"]);
    assert!(
        text(&plain).0.trim().starts_with("wardjt_"),
        "secret alone on stdout"
    );
    let no_agent = s(&["token", "create", "--agent", "ghost"]);
    assert_eq!(no_agent.status.code(), Some(1));

    let retired = json_of(&s(&["agent", "retire", "researcher", "--output", "json"]));
    assert_eq!(retired["status"], "retired");
    let twice = s(&["agent", "retire", "researcher"]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        text(&twice).1.contains("cannot become"),
        "{}",
        text(&twice).1
    );

    let status = json_of(&s(&["server", "status", "--output", "json"]));
    assert_eq!(status["agents"]["active"], 1);
    assert_eq!(status["agents"]["retired"], 1);
    assert_eq!(status["store"], "sqlite");
    let status_table = s(&["server", "status"]);
    assert!(text(&status_table).0.contains("trust domain"));

    // A valid SVID of the trust domain that is not an admin: refused, exit 2.
    let creds = env.tmp.path().join("agent-creds");
    let minted = env.ward(&[
        "svid",
        "mint",
        "--ca-dir",
        env.data().join("ca").to_str().unwrap(),
        "--agent",
        "planner",
        "--out",
        creds.to_str().unwrap(),
    ]);
    assert!(minted.status.success(), "{}", text(&minted).1);
    let agent_config = env.tmp.path().join("agent-client.toml");
    let mut config: toml_like::Config = toml_like::read(&user_config);
    config.certificate = creds.join("svid.pem");
    config.key = creds.join("svid.key.pem");
    toml_like::write(&agent_config, &config);
    let refused = env.ward(&[
        "agent",
        "list",
        "--server",
        &server.addr,
        "--client-config",
        agent_config.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused).1);
    assert!(
        text(&refused).1.contains("not an admin"),
        "{}",
        text(&refused).1
    );

    // Nothing listening: a clear error, exit 1.
    let down = env.ward(&["agent", "list", "--server", "127.0.0.1:1"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        text(&down).1.contains("cannot reach the Ward server"),
        "{}",
        text(&down).1
    );
    // No config at all.
    let none = env.ward(&[
        "agent",
        "list",
        "--client-config",
        "/nonexistent/client.toml",
    ]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        text(&none).1.contains("ward server init"),
        "{}",
        text(&none).1
    );
}

/// Minimal access to the client config's fields without a TOML dependency
/// in the test: the file is flat `key = "value"` lines.
mod toml_like {
    use std::path::{Path, PathBuf};

    pub struct Config {
        pub lines: Vec<(String, String)>,
        pub certificate: PathBuf,
        pub key: PathBuf,
    }

    pub fn read(path: &Path) -> Config {
        let mut lines = Vec::new();
        for line in std::fs::read_to_string(path).unwrap().lines() {
            if let Some((k, v)) = line.split_once(" = ") {
                lines.push((k.to_owned(), v.to_owned()));
            }
        }
        Config {
            lines,
            certificate: PathBuf::new(),
            key: PathBuf::new(),
        }
    }

    pub fn write(path: &Path, c: &Config) {
        let mut out = String::new();
        for (k, v) in &c.lines {
            let v = match k.as_str() {
                "certificate" => format!("{:?}", c.certificate.to_str().unwrap()),
                "key" => format!("{:?}", c.key.to_str().unwrap()),
                _ => v.clone(),
            };
            out.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(path, out).unwrap();
    }
}

/// Registers agents as fast as the CLI can while the server is killed with
/// SIGKILL; every registration the CLI saw acknowledged must be there after
/// a restart.
fn acknowledged_writes_survive_kill_9(store: Option<&str>) {
    let env = Env::new();
    env.init(store);
    let server = env.run(store);
    let addr = server.addr.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut acked = Vec::new();
            for i in 0..400 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let name = format!("agent-{i:03}");
                let out = env.ward(&[
                    "agent", "register", &name, "--team", "crash", "--server", &addr, "--output",
                    "json",
                ]);
                if out.status.success() {
                    acked.push(name);
                }
            }
            acked
        });
        // Let a number of writes land, then kill mid-stream.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let out = env.ward(&["agent", "list", "--server", &addr, "--output", "json"]);
            if out.status.success()
                && serde_json::from_slice::<Value>(&out.stdout)
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .len()
                    >= 15
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut server = server;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap()
    });
    assert!(
        acknowledged.len() >= 15,
        "only {} writes before the kill",
        acknowledged.len()
    );

    let server = env.run(store);
    let list = json_of(&env.ward(&[
        "agent",
        "list",
        "--server",
        &server.addr,
        "--output",
        "json",
    ]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in &acknowledged {
        assert!(
            names.contains(&name.as_str()),
            "acknowledged {name} lost after kill -9"
        );
    }
    // And the store still accepts writes.
    json_of(&env.ward(&[
        "agent",
        "register",
        "after-crash",
        "--server",
        &server.addr,
        "--output",
        "json",
    ]));
}

#[test]
fn kill_9_sqlite() {
    acknowledged_writes_survive_kill_9(None);
}

#[test]
fn kill_9_postgres() {
    let Some(url) = ward_testkit::postgres_url_blocking() else {
        return;
    };
    acknowledged_writes_survive_kill_9(Some(&url));
}

#[test]
fn config_file_problems_are_reported_together() {
    let env = Env::new();
    let path = env.tmp.path().join("ward.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"everywhere\"\nsvid_tl = \"15m\"\nstore = \"mysql://db\"\n",
    )
    .unwrap();
    let out = env.ward(&["server", "run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(stderr.contains("ward.toml:2:1: server.listen"), "{stderr}");
    assert!(stderr.contains("did you mean `svid_ttl`"), "{stderr}");
    assert!(stderr.contains("ward.toml:4:1: server.store"), "{stderr}");

    // A good file; environment overrides it, flags override both.
    std::fs::write(
        &path,
        "[server]\ndata_dir = \"/srv/ward\"\nlisten = \"127.0.0.1:9000\"\nsvid_ttl = \"1h\"\n",
    )
    .unwrap();
    let check = |extra_env: &[(&str, &str)], flags: &[&str]| {
        let mut c = env.cmd();
        c.args([
            "server",
            "run",
            "--check",
            "--output",
            "json",
            "--config",
            path.to_str().unwrap(),
        ]);
        c.args(flags);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        json_of(&c.output().unwrap())
    };
    let file_only = check(&[], &[]);
    assert_eq!(file_only["listen"], "127.0.0.1:9000");
    assert_eq!(file_only["svid_ttl_secs"], 3600);
    assert_eq!(file_only["data_dir"], "/srv/ward");
    assert_eq!(file_only["store"], "sqlite:///srv/ward/ward.db");
    let env_wins = check(&[("WARD_LISTEN", "127.0.0.1:9001")], &[]);
    assert_eq!(env_wins["listen"], "127.0.0.1:9001");
    let flag_wins = check(
        &[("WARD_LISTEN", "127.0.0.1:9001")],
        &["--listen", "127.0.0.1:9002"],
    );
    assert_eq!(flag_wins["listen"], "127.0.0.1:9002");

    // No file, no data dir: told how to fix it.
    let out = env.ward(&["server", "run"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out).1.contains("--data-dir"), "{}", text(&out).1);
}

#[test]
fn containment_commands() {
    let env = Env::new();
    env.init(None);
    let server = env.run(None);
    let s = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server.addr]);
        env.ward(&all)
    };
    json_of(&s(&["agent", "register", "scout", "--output", "json"]));
    let q = json_of(&s(&["agent", "quarantine", "scout", "--output", "json"]));
    assert_eq!(q["status"], "quarantined");
    let r = json_of(&s(&["agent", "release", "scout", "--output", "json"]));
    assert_eq!(r["status"], "active");
    let again = s(&["agent", "release", "scout"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).1.contains("not quarantined"),
        "{}",
        text(&again).1
    );

    // Enroll the agent for real to get a serial the server issued.
    let token = json_of(&s(&[
        "token", "create", "--agent", "scout", "--output", "json",
    ]));
    let serial = enroll(
        &env,
        &server.addr,
        "scout",
        token["token"].as_str().unwrap(),
    );
    let pretty = serial.to_uppercase();
    let revoked = json_of(&s(&[
        "cert",
        "revoke",
        &pretty,
        "--reason",
        "laptop stolen",
        "--output",
        "json",
    ]));
    assert_eq!(revoked["revocation"]["target"]["subject"], serial);
    // A certificate this server never issued: refused with a hint.
    let unknown = s(&["cert", "revoke", "0123abcd"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown).1.contains("never issued"),
        "{}",
        text(&unknown).1
    );
    let not_hex = s(&["cert", "revoke", "zz"]);
    assert_eq!(not_hex.status.code(), Some(1));

    let out = json_of(&s(&[
        "agent",
        "revoke",
        "scout",
        "--reason",
        "compromised",
        "--output",
        "json",
    ]));
    assert_eq!(out["agent"]["status"], "revoked");
    let list = s(&["cert", "revocations"]);
    let (table, _) = text(&list);
    assert!(table.starts_with("KIND"), "{table}");
    assert!(
        table.contains("laptop stolen") && table.contains("compromised"),
        "{table}"
    );
    let back = s(&["agent", "release", "scout"]);
    assert_eq!(back.status.code(), Some(1), "revoked is final");
}

/// Enrolls `name` with a join token through the client library; returns the
/// issued serial.
fn enroll(env: &Env, addr: &str, name: &str, token: &str) -> String {
    use base64::Engine;
    ward_identity::provider::install_default();
    let td = ward_identity::TrustDomain::new("example.org").unwrap();
    let bundle = ward_identity::TrustBundle::read(td, &env.data().join("bundle.json")).unwrap();
    let client = ward_client::Client::new(addr, &bundle, None).unwrap();
    let key = ward_identity::PrivateKey::generate(ward_identity::KeyAlgorithm::EcdsaP256).unwrap();
    let id = ward_core::SpiffeId::new(&format!("spiffe://example.org/agent/{name}")).unwrap();
    let csr = ward_identity::csr::create(&key, &id).unwrap();
    let body = serde_json::json!({
        "join_token": token,
        "csr": base64::engine::general_purpose::STANDARD.encode(csr.as_ref()),
    });
    let resp: Value = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.call(ward_client::Method::POST, "/v1/enroll", Some(&body)))
        .unwrap();
    resp["serial"].as_str().unwrap().to_owned()
}

#[test]
fn policy_push_list_diff_rollback() {
    let env = Env::new();
    env.init(None);
    let server = env.run(None);
    let s = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server.addr]);
        env.ward(&all)
    };
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    let v1 = json_of(&s(&[
        "policy",
        "push",
        example.to_str().unwrap(),
        "--output",
        "json",
    ]));
    let v1 = v1["version"].as_str().unwrap().to_owned();

    // v2 forbids tool calls; its own test is updated to match.
    let dir = env.tmp.path().join("v2");
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    for name in ["agents.cedar", "tools.cedar"] {
        std::fs::copy(example.join(name), dir.join(name)).unwrap();
    }
    std::fs::write(
        dir.join("lockdown.cedar"),
        "@id(\"tool-lockdown\")\n@reason(\"tools are locked down\")\nforbid (principal, action == Action::\"tools/call\", resource);\n",
    )
    .unwrap();
    let tests = std::fs::read_to_string(example.join("tests/agents.yaml")).unwrap();
    let marker = "  - name: low-risk tool call\n    principal: Agent::\"planner\"\n    action: Action::\"tools/call\"\n    resource: Tool::\"tools/search\"\n    expect: allow";
    assert!(tests.contains(marker));
    std::fs::write(
        dir.join("tests/agents.yaml"),
        tests.replace(marker, &marker.replace("expect: allow", "expect: deny")),
    )
    .unwrap();

    // Without the test update the server refuses the push (exit 2).
    std::fs::write(dir.join("tests/old.yaml"), &tests).unwrap();
    let refused = s(&["policy", "push", dir.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused).1);
    assert!(
        text(&refused).1.contains("low-risk tool call"),
        "{}",
        text(&refused).1
    );
    std::fs::remove_file(dir.join("tests/old.yaml")).unwrap();

    let v2 = json_of(&s(&[
        "policy",
        "push",
        dir.to_str().unwrap(),
        "--output",
        "json",
    ]));
    let v2 = v2["version"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2);

    let diff = json_of(&s(&["policy", "diff", &v1, &v2, "--output", "json"]));
    assert_eq!(
        diff["files"],
        serde_json::json!([{"change": "added", "file": "lockdown.cedar"}])
    );
    let flips = diff["flipped_cases"].as_array().unwrap();
    assert_eq!(flips.len(), 1, "{diff}");
    assert_eq!(flips[0]["case"], "low-risk tool call");
    assert_eq!(flips[0]["from"], "allow");
    assert_eq!(flips[0]["to"], "deny");

    let list = json_of(&s(&["policy", "list", "--output", "json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["active"] == true)
            .unwrap()["version"],
        v2.as_str()
    );
    json_of(&s(&["policy", "rollback", &v1, "--output", "json"]));
    let list = json_of(&s(&["policy", "list", "--output", "json"]));
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["active"] == true)
            .unwrap()["version"],
        v1.as_str()
    );
    let shown = s(&["policy", "show", &v1]);
    assert!(text(&shown).0.contains("--- tools.cedar ---"));
    let unknown = s(&["policy", "rollback", "abcdef"]);
    assert_eq!(unknown.status.code(), Some(1));
}

/// `ward ca rotate --root` stages, waits for receipts (none connected
/// here), activates, and keeps the CLI itself working: the client's bundle
/// file gains the new root and the admin SVID is renewed from the new
/// authority, so after `ward ca retire` of the old root the CLI still
/// reaches the server. Retiring is refused while an agent certificate of
/// the old authority is valid, unless forced.
#[test]
fn ca_rotation_keeps_the_cli_working() {
    let env = Env::new();
    env.init(None);
    let server = env.run(None);
    let s = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server.addr]);
        env.ward(&all)
    };
    let before = json_of(&s(&["ca", "status", "--output", "json"]));
    let old = before["issuing"].as_str().unwrap().to_owned();
    assert_eq!(before["authorities"].as_array().unwrap().len(), 1);
    json_of(&s(&["agent", "register", "scout", "--output", "json"]));
    let token = json_of(&s(&[
        "token", "create", "--agent", "scout", "--output", "json",
    ]));
    enroll(
        &env,
        &server.addr,
        "scout",
        token["token"].as_str().unwrap(),
    );

    let rotated = json_of(&s(&["ca", "rotate", "--root", "--output", "json"]));
    let new = rotated["activated"]["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previous"], old.as_str());
    assert_ne!(new, old);
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(env.data().join("bundle.json")).unwrap()).unwrap();
    assert_eq!(bundle["keys"].as_array().unwrap().len(), 2, "{bundle}");
    let admin = ward_identity::X509Svid::read_pem(&env.data().join("admin/svid.pem")).unwrap();
    assert_eq!(ward_identity::ca::authority_id(&admin.chain()[1]), new);

    let status = s(&["ca", "status"]);
    let (table, _) = text(&status);
    assert!(
        table.contains("AUTHORITY") && table.contains("retiring"),
        "{table}"
    );

    let refused = s(&["ca", "retire", &old]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).1.contains("still valid"),
        "{}",
        text(&refused).1
    );
    let retired = json_of(&s(&["ca", "retire", &old, "--force", "--output", "json"]));
    assert_eq!(retired["state"], "retired");
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(env.data().join("bundle.json")).unwrap()).unwrap();
    assert_eq!(bundle["keys"].as_array().unwrap().len(), 1, "{bundle}");
    // The CLI still reaches the server with its renewed credentials.
    let list = s(&["agent", "list", "--output", "json"]);
    assert!(list.status.success(), "{}", text(&list).1);
    let after = json_of(&s(&["ca", "status", "--output", "json"]));
    assert_eq!(after["issuing"], new.as_str());
}
