//! `ward proxy run --config FILE --check` as a real process: the `[proxy]`
//! table's values become the effective settings, `WARD_*` variables and
//! flags override them, a bad file exits 64 listing every problem with its
//! position, and a required setting given nowhere is named with all three
//! places it can come from. `--check` starts nothing, so no network is
//! needed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A full `[proxy]` table, every key set to something other than its
/// default, beside a `[server]` table the proxy must ignore.
const FULL: &str = r#"# one file for the server and the proxy of a host
[server]
data_dir = "/srv/ward"

[proxy]
server = "ward.example.org:8443"
agent = "api"
join_token = "jt-very-secret"
bundle = "/etc/ward/bundle.json"
upstream = "127.0.0.1:8080"
state_dir = "/var/lib/ward-proxy"
outbound = "127.0.0.1:25001"
inbound = "0.0.0.0:25443"
advertise = "10.0.0.5:25443"
admin = "127.0.0.1:25000"
rate_limit = "100/s:200"
max_body_bytes = 1048576
request_timeout = "2m"
audit_full = "fail-open"
audit_spool_mib = 64
workers = 2

[[proxy.route]]
agent = "billing"
upstream = "127.0.0.1:9000"
join_token = "rt-very-secret"
"#;

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, text: &str) -> PathBuf {
        let path = self.tmp.path().join("ward.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The binary with no `WARD_*` variable from the caller's environment,
    /// so only what a test sets counts.
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
        c.env("XDG_CONFIG_HOME", self.tmp.path().join("xdg"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WARD_") {
                c.env_remove(name);
            }
        }
        c
    }

    /// `ward proxy run --config FILE --check EXTRA…` with `env` set.
    fn check(&self, config: &Path, env: &[(&str, &str)], extra: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(["proxy", "run", "--check", "--config"])
            .arg(config)
            .args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stdout of a run that must succeed.
fn settings(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    stdout
}

fn has_line(settings: &str, line: &str) -> bool {
    settings.lines().any(|l| l == line)
}

#[test]
fn file_values_are_the_effective_settings() {
    let env = Env::new();
    let path = env.file(FULL);
    let out = settings(&env.check(&path, &[], &[]));
    for line in [
        "[proxy]",
        r#"server = "ward.example.org:8443""#,
        r#"agent = "api""#,
        r#"join_token = "<set>""#,
        r#"bundle = "/etc/ward/bundle.json""#,
        r#"upstream = "127.0.0.1:8080""#,
        r#"state_dir = "/var/lib/ward-proxy""#,
        r#"outbound = "127.0.0.1:25001""#,
        r#"inbound = "0.0.0.0:25443""#,
        r#"advertise = "10.0.0.5:25443""#,
        r#"admin = "127.0.0.1:25000""#,
        r#"rate_limit = "100/s:200""#,
        "max_body_bytes = 1048576",
        r#"request_timeout = "120s""#,
        r#"audit_full = "fail-open""#,
        "audit_spool_mib = 64",
        "workers = 2",
        "[[proxy.route]]",
        r#"agent = "billing""#,
        r#"upstream = "127.0.0.1:9000""#,
    ] {
        assert!(has_line(&out, line), "missing {line:?} in:\n{out}");
    }
    assert!(
        !out.contains("very-secret"),
        "--check must not print join tokens:\n{out}"
    );
    // What --check prints is itself a valid config file.
    let again = env.file(&out);
    assert_eq!(settings(&env.check(&again, &[], &[])), out);
}

#[test]
fn defaults_fill_what_no_source_sets() {
    let env = Env::new();
    let path = env.file(
        "[proxy]\nserver = \"127.0.0.1:8443\"\nagent = \"api\"\nupstream = \"127.0.0.1:8080\"\n",
    );
    let out = settings(&env.check(&path, &[], &[]));
    for line in [
        r#"state_dir = "ward-proxy-api""#,
        r#"outbound = "127.0.0.1:15001""#,
        r#"inbound = "127.0.0.1:15443""#,
        r#"admin = "127.0.0.1:15000""#,
        "max_body_bytes = 8388608",
        r#"request_timeout = "30s""#,
        r#"audit_full = "fail-closed""#,
        "audit_spool_mib = 1024",
        "# join_token: not set (only needed until the proxy has enrolled)",
        "# rate_limit: not set (unlimited)",
        "# workers: not set (one per core)",
    ] {
        assert!(has_line(&out, line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn a_flag_overrides_the_file() {
    let env = Env::new();
    let path = env.file(FULL);
    let out = settings(&env.check(
        &path,
        &[],
        &[
            "--outbound",
            "127.0.0.1:35001",
            "--max-body-bytes",
            "2048",
            "--request-timeout",
            "5s",
            "--audit-full",
            "fail-closed",
            "--audit-spool-mib",
            "8",
            "--agent",
            "web",
        ],
    ));
    for line in [
        r#"outbound = "127.0.0.1:35001""#,
        "max_body_bytes = 2048",
        r#"request_timeout = "5s""#,
        r#"audit_full = "fail-closed""#,
        "audit_spool_mib = 8",
        r#"agent = "web""#,
        // Untouched settings still come from the file.
        r#"inbound = "0.0.0.0:25443""#,
    ] {
        assert!(has_line(&out, line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn an_env_var_overrides_the_file() {
    let env = Env::new();
    let path = env.file(FULL);
    let vars = [
        ("WARD_OUTBOUND", "127.0.0.1:45001"),
        ("WARD_UPSTREAM", "app.internal:8081"),
        ("WARD_WORKERS", "3"),
    ];
    let out = settings(&env.check(&path, &vars, &[]));
    for line in [
        r#"outbound = "127.0.0.1:45001""#,
        r#"upstream = "app.internal:8081""#,
        "workers = 3",
        r#"admin = "127.0.0.1:25000""#,
    ] {
        assert!(has_line(&out, line), "missing {line:?} in:\n{out}");
    }
    // A flag beats the variable.
    let out = settings(&env.check(&path, &vars, &["--outbound", "127.0.0.1:55001"]));
    assert!(has_line(&out, r#"outbound = "127.0.0.1:55001""#), "{out}");
    // WARD_CONFIG names the file like --config does.
    let mut c = env.cmd();
    c.args(["proxy", "run", "--check"])
        .env("WARD_CONFIG", &path);
    let out = settings(&c.output().unwrap());
    assert!(has_line(&out, r#"outbound = "127.0.0.1:25001""#), "{out}");
}

#[test]
fn a_bad_file_exits_64_listing_every_problem() {
    let env = Env::new();
    let path = env.file(
        r#"[server]
data_dir = "/srv/ward"

[proxy]
server = "ward.example.org"
agent = "API"
upsteam = "127.0.0.1:8080"
outbound = "localhost:15001"
rate_limit = 100
workers = 0

[[proxy.route]]
agnet = "billing"
upstream = "127.0.0.1:9000"

[proxi]
x = 1
"#,
    );
    let out = env.check(&path, &[], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("9 problems"), "{stderr}");
    for expected in [
        "ward.toml:5:1: proxy.server: ",
        "has no port",
        "ward.toml:6:1: proxy.agent: ",
        "ward.toml:7:1: proxy.upsteam: unknown key (did you mean `upstream`?)",
        "ward.toml:8:1: proxy.outbound: must be an address string",
        "ward.toml:9:1: proxy.rate_limit: ",
        "RATE/s",
        "ward.toml:10:1: proxy.workers: ",
        "ward.toml:12:1: proxy.route[0]: missing `agent`",
        "ward.toml:13:1: proxy.route[0].agnet: unknown key (did you mean `agent`?)",
        "ward.toml:16:2: proxi: unknown key (did you mean `proxy`?)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn a_missing_upstream_names_every_source() {
    let env = Env::new();
    let path = env.file("[proxy]\nserver = \"127.0.0.1:8443\"\nagent = \"api\"\n");
    let out = env.check(&path, &[], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    for name in ["--upstream", "WARD_UPSTREAM", "proxy.upstream"] {
        assert!(stderr.contains(name), "missing {name:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("proxy.agent"), "{stderr}");

    // Without any file, every missing setting is named at once.
    let out = env
        .cmd()
        .args(["proxy", "run", "--check"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    for name in ["--server", "WARD_AGENT", "proxy.upstream"] {
        assert!(stderr.contains(name), "missing {name:?} in:\n{stderr}");
    }
}

#[test]
fn routes_from_the_file_and_the_flags_both_count() {
    let env = Env::new();
    let path = env.file(FULL);
    let out = settings(&env.check(&path, &[], &["--route", "search=search.internal:9100"]));
    let routes = out.matches("[[proxy.route]]").count();
    assert_eq!(routes, 2, "{out}");
    assert!(has_line(&out, r#"agent = "search""#), "{out}");

    // The same agent from both sources is an error, as is a token for no
    // route.
    let out = env.check(
        &path,
        &[],
        &[
            "--route",
            "billing=127.0.0.1:9001",
            "--route-token",
            "nobody=t",
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("fronted twice"), "{stderr}");
    assert!(stderr.contains("nobody=… names no route"), "{stderr}");
}

#[test]
fn the_server_accepts_a_file_with_a_proxy_table() {
    let env = Env::new();
    let path = env.file(FULL);
    let out = env
        .cmd()
        .args(["server", "run", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("/srv/ward"), "{stdout}");
}
