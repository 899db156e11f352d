//! The typed configuration file behind `ward server run --config FILE` and
//! `ward proxy run --config FILE`: parsing, strict checking and error
//! reporting of its `[server]` and `[proxy]` tables, and the value checks
//! the proxy's flags share with the file.
//!
//! Precedence, lowest first: built-in defaults, the file, `WARD_*`
//! environment variables, command-line flags (clap merges the last two).
//! The defaults work unchanged, so the file is optional.
//!
//! One file may hold both tables, so a host running a server and a proxy
//! can point one `WARD_CONFIG` at it: each command checks its own table and
//! accepts the other's without looking inside it. Any other top-level key
//! is an error.
//!
//! The file is checked strictly and *completely*: unknown keys (with a
//! suggestion), wrong types and bad values are all collected and reported
//! together, each with its line and column and how to fix it, so an
//! operator fixes a config in one round instead of one error per restart.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use ward_core::AgentName;
use ward_proxy::config::Route;
use ward_proxy::{AuditFull, RateLimit};

/// Defaults every setting falls back to.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default SVID lifetime.
pub(crate) const DEFAULT_SVID_TTL: &str = "15m";
/// Default cap on the proxy's audit spool, in MiB.
pub(crate) const DEFAULT_AUDIT_SPOOL_MIB: u64 = 1024;

/// Settings from the `[server]` table of a config file; `None` = not set.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ServerFile {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) store: Option<String>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) svid_ttl: Option<Duration>,
    pub(crate) policy_dir: Option<PathBuf>,
}

/// Settings from the `[proxy]` table of a config file; `None` (or no
/// routes) = not set. Every value is already checked.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProxyFile {
    pub(crate) server: Option<String>,
    pub(crate) agent: Option<AgentName>,
    pub(crate) join_token: Option<String>,
    pub(crate) bundle: Option<PathBuf>,
    pub(crate) upstream: Option<String>,
    pub(crate) protocol: Option<ward_proxy::rpc::Protocol>,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) outbound: Option<SocketAddr>,
    pub(crate) inbound: Option<SocketAddr>,
    pub(crate) advertise: Option<String>,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) max_body_bytes: Option<usize>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) audit_full: Option<AuditFull>,
    pub(crate) audit_spool_mib: Option<u64>,
    pub(crate) workers: Option<usize>,
    /// `[[proxy.route]]` entries, in file order.
    pub(crate) routes: Vec<Route>,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    /// 1-based line and column, when known.
    pub(crate) at: Option<(usize, usize)>,
    /// Dotted key path, e.g. `server.listen`.
    pub(crate) key: String,
    /// What is wrong and how to fix it.
    pub(crate) message: String,
}

/// Every problem found in a config file.
#[derive(Debug)]
pub(crate) struct ConfigErrors {
    pub(crate) path: PathBuf,
    pub(crate) problems: Vec<Problem>,
}

impl ConfigErrors {
    /// Problems of the merged settings rather than of one place in the
    /// file (a required value no source gives, flags contradicting the
    /// file): reported against the file if there is one, else against the
    /// command line, the same way `ward server run` reports a missing data
    /// directory.
    pub(crate) fn merged(config: Option<&Path>, problems: Vec<Problem>) -> Self {
        Self {
            path: config.map_or_else(|| PathBuf::from("(command line)"), Path::to_owned),
            problems,
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{} in the configuration",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.at {
                Some((line, col)) => write!(
                    f,
                    "\n  {}:{line}:{col}: {}: {}",
                    self.path.display(),
                    p.key,
                    p.message
                )?,
                None => write!(f, "\n  {}: {}: {}", self.path.display(), p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

const TOP_KEYS: &[&str] = &["server", "proxy"];
const SERVER_KEYS: &[&str] = &["data_dir", "store", "listen", "svid_ttl", "policy_dir"];
const PROXY_KEYS: &[&str] = &[
    "server",
    "agent",
    "join_token",
    "bundle",
    "upstream",
    "protocol",
    "state_dir",
    "outbound",
    "inbound",
    "advertise",
    "admin",
    "rate_limit",
    "max_body_bytes",
    "request_timeout",
    "audit_full",
    "audit_spool_mib",
    "workers",
    "route",
];
const ROUTE_KEYS: &[&str] = &["agent", "upstream", "protocol", "join_token"];

/// A table whose keys and values keep their place in the text.
type Table = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// The `[server]` table, read with positions for every key; other
/// top-level keys are skipped unread (the first pass judged them).
#[derive(Deserialize)]
struct ServerDoc {
    server: Option<Table>,
}

/// The `[proxy]` table, read with positions for every key.
#[derive(Deserialize)]
struct ProxyDoc {
    proxy: Option<Table>,
}

/// `[[proxy.route]]` again, because a `toml::Value` drops the positions
/// of keys nested below the table it belongs to.
#[derive(Deserialize)]
struct RouteDoc {
    proxy: Option<RouteTable>,
}

#[derive(Deserialize)]
struct RouteTable {
    route: Option<Vec<Spanned<Table>>>,
}

/// Reads and checks the `[server]` table of a config file.
pub(crate) fn load(path: &Path) -> Result<ServerFile, ConfigErrors> {
    read_checked(path, parse)
}

/// Reads and checks the `[proxy]` table of a config file.
pub(crate) fn load_proxy(path: &Path) -> Result<ProxyFile, ConfigErrors> {
    read_checked(path, parse_proxy)
}

fn read_checked<T>(
    path: &Path,
    check: fn(&str) -> Result<T, Vec<Problem>>,
) -> Result<T, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        path: path.to_owned(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![Problem {
            at: None,
            key: "(file)".to_owned(),
            message: format!("cannot read it: {e}"),
        }])
    })?;
    check(&text).map_err(fail)
}

/// Checks config text for `ward server run`; every problem at once.
pub(crate) fn parse(text: &str) -> Result<ServerFile, Vec<Problem>> {
    parse_table(text, "server", |d: ServerDoc| d.server, server_table)
}

/// Checks config text for `ward proxy run`; every problem at once.
pub(crate) fn parse_proxy(text: &str) -> Result<ProxyFile, Vec<Problem>> {
    parse_table(text, "proxy", |d: ProxyDoc| d.proxy, proxy_table)
}

/// The shared pipeline: syntax and top level, then the command's own table
/// read with positions and checked key by key.
fn parse_table<D: serde::de::DeserializeOwned, T: Default>(
    text: &str,
    own: &str,
    table_of: impl FnOnce(D) -> Option<Table>,
    check: fn(&str, &Table, &mut T, &mut Vec<Problem>),
) -> Result<T, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out = T::default();
    if document(text, own, &mut problems)? {
        match typed::<D>(text, own) {
            Ok(doc) => {
                if let Some(table) = table_of(doc) {
                    check(text, &table, &mut out, &mut problems);
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    finish(out, problems)
}

/// First pass: the syntax, and the top level. Only known tables may
/// appear; `own`, the one the calling command reads, must be a table.
/// `Ok(true)` when `own` is there to be read.
fn document(text: &str, own: &str, problems: &mut Vec<Problem>) -> Result<bool, Vec<Problem>> {
    let top: Table = toml::from_str(text).map_err(|e| {
        vec![Problem {
            at: e.span().map(|s| line_col(text, s.start)),
            key: "(syntax)".to_owned(),
            message: format!(
                "{}; see the configuration reference in README.md",
                e.message().trim_end()
            ),
        }]
    })?;
    let mut readable = false;
    for (key, value) in &top {
        let name = key.get_ref();
        if !TOP_KEYS.contains(&name.as_str()) {
            problems.push(unknown(text, key, "", TOP_KEYS));
        } else if name == own {
            if value.get_ref().is_table() {
                readable = true;
            } else {
                problems.push(at(
                    text,
                    value.span().start,
                    own,
                    format!("must be a table: write `[{own}]` on its own line"),
                ));
            }
        }
    }
    Ok(readable)
}

/// Second pass: the same text into a shape that keeps positions. The first
/// pass has accepted the syntax and the shape of `own`, so a failure here
/// is unexpected; it is still reported, never unwrapped.
fn typed<D: serde::de::DeserializeOwned>(text: &str, own: &str) -> Result<D, Problem> {
    toml::from_str(text).map_err(|e| Problem {
        at: e.span().map(|s| line_col(text, s.start)),
        key: own.to_owned(),
        message: e.message().trim_end().to_owned(),
    })
}

fn finish<T>(out: T, mut problems: Vec<Problem>) -> Result<T, Vec<Problem>> {
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by_key(|p| p.at);
        Err(problems)
    }
}

fn server_table(text: &str, table: &Table, out: &mut ServerFile, problems: &mut Vec<Problem>) {
    for (key, value) in table {
        let name = key.get_ref().as_str();
        let value = value.get_ref();
        let checked = match name {
            "data_dir" => path_value(value)
                .map(|p| out.data_dir = Some(p))
                .ok_or_else(|| {
                    "must be a non-empty string path, e.g. `data_dir = \"/var/lib/ward\"`".to_owned()
                }),
            "policy_dir" => path_value(value)
                .map(|p| out.policy_dir = Some(p))
                .ok_or_else(|| {
                    "must be a non-empty string path to a policy bundle directory".to_owned()
                }),
            "store" => match value.as_str() {
                Some(s)
                    if s.starts_with("sqlite:")
                        || s.starts_with("postgres://")
                        || s.starts_with("postgresql://") =>
                {
                    out.store = Some(s.to_owned());
                    Ok(())
                }
                _ => Err("must be a store URL string: `sqlite:///path/ward.db` or `postgres://user@host/db`".to_owned()),
            },
            "listen" => socket_value(value, DEFAULT_LISTEN).map(|a| out.listen = Some(a)),
            "svid_ttl" => match value.as_str().map(crate::cmd::parse_duration) {
                Some(Ok(d)) if d.as_secs() >= 60 && d.as_secs() <= 86_400 => {
                    out.svid_ttl = Some(d);
                    Ok(())
                }
                Some(Ok(_)) => Err("must be between 1m and 24h".to_owned()),
                _ => Err("must be a duration string like \"15m\" or \"1h\"".to_owned()),
            },
            _ => Err(unknown_in(name, "[server]", SERVER_KEYS)),
        };
        if let Err(message) = checked {
            problems.push(at(
                text,
                key.span().start,
                &format!("server.{name}"),
                message,
            ));
        }
    }
}

fn proxy_table(text: &str, table: &Table, out: &mut ProxyFile, problems: &mut Vec<Problem>) {
    let mut routes_at = None;
    for (key, value) in table {
        let name = key.get_ref().as_str();
        let value = value.get_ref();
        let checked = match name {
            "server" => value
                .as_str()
                .ok_or_else(|| {
                    "must be a string: the control plane's \"host:port\", e.g. \"ward.example.org:8443\"".to_owned()
                })
                .and_then(server_addr)
                .map(|s| out.server = Some(s)),
            "agent" => agent_value(value).map(|a| out.agent = Some(a)),
            "join_token" => match value.as_str() {
                Some(s) if !s.is_empty() => {
                    out.join_token = Some(s.to_owned());
                    Ok(())
                }
                _ => Err("must be a non-empty string from `ward token create`".to_owned()),
            },
            "bundle" => path_value(value)
                .map(|p| out.bundle = Some(p))
                .ok_or_else(|| {
                    "must be a non-empty string path to the server's bundle.json".to_owned()
                }),
            "upstream" => upstream_value(value).map(|s| out.upstream = Some(s)),
            "protocol" => protocol_value(value).map(|p| out.protocol = Some(p)),
            "state_dir" => path_value(value)
                .map(|p| out.state_dir = Some(p))
                .ok_or_else(|| "must be a non-empty string path to a directory".to_owned()),
            "outbound" => socket_value(value, ward_proxy::config::DEFAULT_OUTBOUND)
                .map(|a| out.outbound = Some(a)),
            "inbound" => socket_value(value, ward_proxy::config::DEFAULT_INBOUND)
                .map(|a| out.inbound = Some(a)),
            "admin" => socket_value(value, ward_proxy::config::DEFAULT_ADMIN)
                .map(|a| out.admin = Some(a)),
            "advertise" => value
                .as_str()
                .ok_or_else(|| {
                    "must be a string: the \"host:port\" other proxies dial, e.g. \"10.0.0.5:15443\"".to_owned()
                })
                .and_then(host_port)
                .map(|s| out.advertise = Some(s)),
            "rate_limit" => value
                .as_str()
                .ok_or_else(|| {
                    "must be a string like \"100/s\" or \"100/s:200\" (RATE/s or RATE/s:BURST)"
                        .to_owned()
                })
                .and_then(str::parse::<RateLimit>)
                .map(|r| out.rate_limit = Some(r)),
            "max_body_bytes" => value
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .map(|n| out.max_body_bytes = Some(n))
                .ok_or_else(|| {
                    "must be a whole number of bytes, e.g. 8388608 (8 MiB)".to_owned()
                }),
            "request_timeout" => value
                .as_str()
                .ok_or_else(|| "must be a duration string like \"30s\" or \"2m\"".to_owned())
                .and_then(request_timeout)
                .map(|d| out.request_timeout = Some(d)),
            "audit_full" => value
                .as_str()
                .and_then(|s| s.parse::<AuditFull>().ok())
                .map(|a| out.audit_full = Some(a))
                .ok_or_else(|| "must be \"fail-closed\" or \"fail-open\"".to_owned()),
            "audit_spool_mib" => positive(value)
                .map(|n| out.audit_spool_mib = Some(n))
                .ok_or_else(|| {
                    format!("must be a whole number of MiB, at least 1, e.g. {DEFAULT_AUDIT_SPOOL_MIB}")
                }),
            "workers" => positive(value)
                .and_then(|n| usize::try_from(n).ok())
                .map(|n| out.workers = Some(n))
                .ok_or_else(|| {
                    "must be a whole number of threads, at least 1 (leave it out for one per core)"
                        .to_owned()
                }),
            "route" => {
                // Read below, once `agent` is known whatever the key order.
                routes_at = Some((key.span().start, value));
                Ok(())
            }
            _ => Err(unknown_in(name, "[proxy]", PROXY_KEYS)),
        };
        if let Err(message) = checked {
            problems.push(at(
                text,
                key.span().start,
                &format!("proxy.{name}"),
                message,
            ));
        }
    }
    if let Some((offset, value)) = routes_at {
        routes(text, offset, value, out, problems);
    }
}

/// `[[proxy.route]]`: gateway mode's further agents, each with its own app.
fn routes(
    text: &str,
    offset: usize,
    value: &toml::Value,
    out: &mut ProxyFile,
    problems: &mut Vec<Problem>,
) {
    let tables = value
        .as_array()
        .is_some_and(|items| items.iter().all(toml::Value::is_table));
    let entries = if tables {
        match typed::<RouteDoc>(text, "proxy.route") {
            Ok(doc) => doc.proxy.and_then(|p| p.route),
            Err(problem) => {
                problems.push(problem);
                return;
            }
        }
    } else {
        None
    };
    let Some(entries) = entries else {
        problems.push(at(
            text,
            offset,
            "proxy.route",
            "must be an array of tables: write each route as `[[proxy.route]]` followed by `agent = \"NAME\"` and `upstream = \"HOST:PORT\"`".to_owned(),
        ));
        return;
    };
    // Agents already fronted, by route index: `ward_proxy::start` refuses
    // a second route for one agent too, but only here does it get a place.
    let mut seen: BTreeMap<AgentName, usize> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("proxy.route[{i}]");
        let (mut agent, mut upstream, mut join_token, mut protocol) = (None, None, None, None);
        for (key, value) in entry.get_ref() {
            let name = key.get_ref().as_str();
            let value = value.get_ref();
            let checked = match name {
                "agent" => agent_value(value).and_then(|a| {
                    let taken = if out.agent.as_ref() == Some(&a) {
                        Some("it is this proxy's own agent (proxy.agent)".to_owned())
                    } else {
                        seen.get(&a)
                            .map(|j| format!("proxy.route[{j}] fronts it already"))
                    };
                    match taken {
                        Some(why) => Err(format!(
                            "agent `{a}` is fronted twice: {why}; give each route a different agent"
                        )),
                        None => {
                            seen.insert(a.clone(), i);
                            agent = Some(a);
                            Ok(())
                        }
                    }
                }),
                "upstream" => upstream_value(value).map(|s| upstream = Some(s)),
                "protocol" => protocol_value(value).map(|p| protocol = Some(p)),
                "join_token" => match value.as_str() {
                    Some(s) if !s.is_empty() => {
                        join_token = Some(s.to_owned());
                        Ok(())
                    }
                    _ => Err(
                        "must be a non-empty string from `ward token create --agent NAME`"
                            .to_owned(),
                    ),
                },
                _ => Err(unknown_in(name, "[[proxy.route]]", ROUTE_KEYS)),
            };
            if let Err(message) = checked {
                problems.push(at(
                    text,
                    key.span().start,
                    &format!("{path}.{name}"),
                    message,
                ));
            }
        }
        let missing = |what: &str, why: &str| {
            at(
                text,
                entry.span().start,
                &path,
                format!("missing `{what}`: {why}"),
            )
        };
        let has_agent_key = entry.get_ref().keys().any(|k| k.get_ref() == "agent");
        let has_upstream_key = entry.get_ref().keys().any(|k| k.get_ref() == "upstream");
        if !has_agent_key {
            problems.push(missing(
                "agent",
                "the registered name of the agent this route fronts, e.g. `agent = \"billing\"`",
            ));
        }
        if !has_upstream_key {
            problems.push(missing(
                "upstream",
                "that agent's app as host:port, e.g. `upstream = \"127.0.0.1:9000\"`",
            ));
        }
        if let (Some(agent), Some(upstream)) = (agent, upstream) {
            out.routes.push(Route {
                agent,
                upstream,
                protocol,
                join_token,
            });
        }
    }
}

/// A non-empty string, as a path.
fn path_value(value: &toml::Value) -> Option<PathBuf> {
    value.as_str().filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// An `IP:port` listener address.
fn socket_value(value: &toml::Value, example: &str) -> Result<SocketAddr, String> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("must be an address string like \"{example}\""))
}

fn agent_value(value: &toml::Value) -> Result<AgentName, String> {
    let name = value.as_str().ok_or_else(|| {
        "must be a string: an agent's registered name, e.g. \"billing\"".to_owned()
    })?;
    AgentName::new(name).map_err(|e| e.to_string())
}

fn protocol_value(value: &toml::Value) -> Result<ward_proxy::rpc::Protocol, String> {
    value
        .as_str()
        .ok_or_else(|| "must be a string: \"http\", \"mcp\" or \"a2a\"".to_owned())
        .and_then(str::parse)
}

fn upstream_value(value: &toml::Value) -> Result<String, String> {
    value
        .as_str()
        .ok_or_else(|| {
            "must be a string: the app's \"host:port\" (plain HTTP), e.g. \"127.0.0.1:8080\""
                .to_owned()
        })
        .and_then(host_port)
}

/// An integer of at least 1.
fn positive(value: &toml::Value) -> Option<u64> {
    value
        .as_integer()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n >= 1)
}

/// Checks a `host:port` authority, the form the proxy dials its apps and
/// peers at: no scheme, no path, a port. Checked up front because a bad one
/// would otherwise only fail on the first request, long after start-up.
/// Shared by the file and the flags (as a clap value parser).
pub(crate) fn host_port(s: &str) -> Result<String, String> {
    let example = "e.g. \"127.0.0.1:8080\" or \"app.internal:8080\"";
    if s.contains('/') {
        return Err(format!(
            "{s:?} is not host:port: drop the scheme and path, {example}"
        ));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} has no port: write host:port, {example}"));
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        }
    };
    if !host_ok {
        return Err(format!(
            "{s:?}: {host:?} is not a host name or IP address (an IPv6 address goes in brackets, e.g. \"[::1]:8080\")"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_owned()),
        _ => Err(format!("{s:?}: the port must be a number from 1 to 65535")),
    }
}

/// Checks the control plane's address: `host:port`, or an `https://` URL
/// (which the client accepts too).
pub(crate) fn server_addr(s: &str) -> Result<String, String> {
    let authority = s
        .strip_prefix("https://")
        .unwrap_or(s)
        .trim_end_matches('/');
    host_port(authority)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e} (an https:// URL is accepted too)"))
}

/// Checks `--request-timeout` / `request_timeout`: a duration of at least
/// one second (a zero timeout would fail every request).
pub(crate) fn request_timeout(s: &str) -> Result<Duration, String> {
    match crate::cmd::parse_duration(s) {
        Ok(d) if d.as_secs() >= 1 => Ok(d),
        Ok(_) => Err(format!("{s:?}: must be at least 1s")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Checks `--route NAME=HOST:PORT`.
pub(crate) fn route_flag(s: &str) -> Result<Route, String> {
    let (name, upstream) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=HOST:PORT, e.g. billing=127.0.0.1:9000".to_owned())?;
    Ok(Route {
        agent: AgentName::new(name).map_err(|e| e.to_string())?,
        upstream: host_port(upstream)?,
        protocol: None,
        join_token: None,
    })
}

/// Checks `--workers`: tokio refuses a runtime without worker threads.
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?}: must be a whole number, at least 1")),
    }
}

/// The message for a key `table` does not know, with the closest known one.
fn unknown_in(name: &str, table: &str, known: &[&str]) -> String {
    format!(
        "unknown key{}; known keys in {table}: {}",
        suggest(name, known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default(),
        known.join(", ")
    )
}

fn unknown(text: &str, key: &Spanned<String>, prefix: &str, known: &[&str]) -> Problem {
    let name = key.get_ref();
    at(
        text,
        key.span().start,
        &format!("{prefix}{name}"),
        format!(
            "unknown key{}; known: {}",
            suggest(name, known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default(),
            known.join(", ")
        ),
    )
}

fn at(text: &str, offset: usize, key: &str, message: String) -> Problem {
    Problem {
        at: Some(line_col(text, offset)),
        key: key.to_owned(),
        message,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// The known key closest to `key`, if it is a plausible typo.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), ServerFile::default());
        assert_eq!(
            parse("# nothing\n[server]\n").unwrap(),
            ServerFile::default()
        );
    }

    #[test]
    fn full_file() {
        let f = parse(
            "[server]\ndata_dir = \"/var/lib/ward\"\nstore = \"postgres://u@h/db\"\nlisten = \"0.0.0.0:9443\"\nsvid_ttl = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(f.data_dir.unwrap(), PathBuf::from("/var/lib/ward"));
        assert_eq!(f.store.unwrap(), "postgres://u@h/db");
        assert_eq!(f.listen.unwrap().port(), 9443);
        assert_eq!(f.svid_ttl.unwrap().as_secs(), 3600);
    }

    #[test]
    fn every_problem_at_once_with_positions() {
        // `[proxy]` now belongs to `ward proxy run`; an unknown top-level
        // table is still an error, with a suggestion.
        let text = "[server]\nlisten = \"nowhere\"\nsvid_tl = \"15m\"\nsvid_ttl = 15\nstore = \"mysql://x\"\n\n[proxi]\nx = 1\n";
        let problems = parse(text).unwrap_err();
        let render: Vec<String> = problems
            .iter()
            .map(|p| format!("{:?} {} {}", p.at, p.key, p.message))
            .collect();
        assert_eq!(problems.len(), 5, "{render:#?}");
        let find = |k: &str| problems.iter().find(|p| p.key == k).unwrap();
        assert_eq!(find("server.listen").at, Some((2, 1)));
        assert!(
            find("server.svid_tl")
                .message
                .contains("did you mean `svid_ttl`")
        );
        assert_eq!(find("server.svid_tl").at, Some((3, 1)));
        assert!(find("server.svid_ttl").message.contains("duration string"));
        assert!(find("server.store").message.contains("postgres://"));
        assert_eq!(find("proxi").at, Some((7, 2)));
        assert!(find("proxi").message.contains("did you mean `proxy`"));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let problems = parse("[server]\nlisten = \n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "(syntax)");
        assert_eq!(problems[0].at.unwrap().0, 2);
        assert!(
            parse("[server]\nsvid_ttl = \"5s\"\n").unwrap_err()[0]
                .message
                .contains("between 1m and 24h")
        );
        assert!(
            parse("server = 1\n").unwrap_err()[0]
                .message
                .contains("[server]")
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("lisen", SERVER_KEYS), Some("listen"));
        assert_eq!(suggest("datadir", SERVER_KEYS), Some("data_dir"));
        assert_eq!(suggest("completely_else", SERVER_KEYS), None);
    }

    const FULL_PROXY: &str = r#"
[proxy]
server = "ward.example.org:8443"
agent = "api"
join_token = "jt-secret"
bundle = "/etc/ward/bundle.json"
upstream = "127.0.0.1:8080"
state_dir = "/var/lib/ward-proxy"
outbound = "127.0.0.1:25001"
inbound = "0.0.0.0:25443"
advertise = "10.0.0.5:25443"
admin = "127.0.0.1:25000"
rate_limit = "100/s:200"
max_body_bytes = 1_048_576
request_timeout = "2m"
audit_full = "fail-open"
audit_spool_mib = 64
workers = 2

[[proxy.route]]
agent = "billing"
upstream = "127.0.0.1:9000"
join_token = "rt-secret"

[[proxy.route]]
agent = "search"
upstream = "search.internal:9100"
"#;

    #[test]
    fn proxy_full_file() {
        let f = parse_proxy(FULL_PROXY).unwrap();
        assert_eq!(f.server.as_deref(), Some("ward.example.org:8443"));
        assert_eq!(f.agent.unwrap().as_str(), "api");
        assert_eq!(f.join_token.as_deref(), Some("jt-secret"));
        assert_eq!(f.bundle.unwrap(), PathBuf::from("/etc/ward/bundle.json"));
        assert_eq!(f.upstream.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(f.state_dir.unwrap(), PathBuf::from("/var/lib/ward-proxy"));
        assert_eq!(f.outbound.unwrap().port(), 25001);
        assert_eq!(f.inbound.unwrap().to_string(), "0.0.0.0:25443");
        assert_eq!(f.advertise.as_deref(), Some("10.0.0.5:25443"));
        assert_eq!(f.admin.unwrap().port(), 25000);
        assert_eq!(
            f.rate_limit.unwrap(),
            RateLimit {
                per_second: 100.0,
                burst: 200
            }
        );
        assert_eq!(f.max_body_bytes, Some(1 << 20));
        assert_eq!(f.request_timeout, Some(Duration::from_secs(120)));
        assert_eq!(f.audit_full, Some(AuditFull::FailOpen));
        assert_eq!(f.audit_spool_mib, Some(64));
        assert_eq!(f.workers, Some(2));
        assert_eq!(f.routes.len(), 2);
        assert_eq!(f.routes[0].agent.as_str(), "billing");
        assert_eq!(f.routes[0].join_token.as_deref(), Some("rt-secret"));
        assert_eq!(f.routes[1].upstream, "search.internal:9100");
        assert_eq!(f.routes[1].join_token, None);
    }

    #[test]
    fn proxy_empty_and_partial_files() {
        assert_eq!(parse_proxy("").unwrap(), ProxyFile::default());
        assert_eq!(parse_proxy("[proxy]\n").unwrap(), ProxyFile::default());
        // Dotted keys and inline route tables are the same settings.
        let f = parse_proxy(
            "proxy.agent = \"api\"\nproxy.route = [{ agent = \"b\", upstream = \"h:1\" }]\n",
        )
        .unwrap();
        assert_eq!(f.agent.unwrap().as_str(), "api");
        assert_eq!(f.routes[0].agent.as_str(), "b");
    }

    #[test]
    fn one_file_serves_both_commands() {
        // Each command reads its own table and does not look inside the
        // other's, even where that one has problems.
        let text = "[server]\nlisten = \"0.0.0.0:9443\"\nbogus = 1\n\n[proxy]\nagent = \"api\"\nupstream = 5\n";
        let server = parse(text).unwrap_err();
        assert_eq!(server.len(), 1, "{server:?}");
        assert_eq!(server[0].key, "server.bogus");
        let proxy = parse_proxy(text).unwrap_err();
        assert_eq!(proxy.len(), 1, "{proxy:?}");
        assert_eq!(proxy[0].key, "proxy.upstream");
        assert_eq!(proxy[0].at, Some((7, 1)));

        let good = "[server]\nlisten = \"0.0.0.0:9443\"\n[proxy]\nagent = \"api\"\n";
        assert_eq!(parse(good).unwrap().listen.unwrap().port(), 9443);
        assert_eq!(parse_proxy(good).unwrap().agent.unwrap().as_str(), "api");
        // Neither command cares what shape the other's table has.
        assert!(parse("proxy = 1\n").is_ok());
        assert!(parse_proxy("server = 1\n").is_ok());
    }

    #[test]
    fn proxy_every_problem_at_once_with_positions() {
        let text = r#"[proxy]
server = "https://ward.example.org"
agent = "API"
upsteam = "127.0.0.1:8080"
outbound = "localhost:15001"
rate_limit = "lots"
max_body_bytes = -1
request_timeout = "0s"
audit_full = "sometimes"
audit_spool_mib = 0
workers = "4"
  advertise = "http://10.0.0.5:15443/"
join_token = ""

[proxyy]
x = 1
"#;
        let problems = parse_proxy(text).unwrap_err();
        let render: Vec<String> = problems
            .iter()
            .map(|p| format!("{:?} {} {}", p.at, p.key, p.message))
            .collect();
        assert_eq!(problems.len(), 13, "{render:#?}");
        let find = |k: &str| {
            problems
                .iter()
                .find(|p| p.key == k)
                .unwrap_or_else(|| panic!("no problem for {k}: {render:#?}"))
        };
        let server = find("proxy.server");
        assert_eq!(server.at, Some((2, 1)));
        assert!(server.message.contains("has no port"), "{}", server.message);
        assert!(find("proxy.agent").message.contains("lowercase"));
        assert_eq!(find("proxy.agent").at, Some((3, 1)));
        let typo = find("proxy.upsteam");
        assert_eq!(typo.at, Some((4, 1)));
        assert!(
            typo.message.contains("did you mean `upstream`"),
            "{}",
            typo.message
        );
        assert!(find("proxy.outbound").message.contains("127.0.0.1:15001"));
        assert!(find("proxy.rate_limit").message.contains("RATE/s"));
        assert!(
            find("proxy.max_body_bytes")
                .message
                .contains("whole number")
        );
        assert!(
            find("proxy.request_timeout")
                .message
                .contains("at least 1s")
        );
        assert!(find("proxy.audit_full").message.contains("fail-closed"));
        assert!(find("proxy.audit_spool_mib").message.contains("at least 1"));
        assert!(find("proxy.workers").message.contains("at least 1"));
        let advertise = find("proxy.advertise");
        assert_eq!(
            advertise.at,
            Some((12, 3)),
            "indented keys keep their column"
        );
        assert!(advertise.message.contains("drop the scheme"));
        assert!(
            find("proxy.join_token")
                .message
                .contains("ward token create")
        );
        let top = find("proxyy");
        assert_eq!(top.at, Some((15, 2)));
        assert!(top.message.contains("did you mean `proxy`"));
        // Reported in file order.
        let lines: Vec<usize> = problems.iter().map(|p| p.at.unwrap().0).collect();
        assert!(lines.is_sorted(), "{lines:?}");
    }

    #[test]
    fn proxy_route_table_errors() {
        let text = r#"[proxy]
agent = "api"

[[proxy.route]]
agent = "billing"
upstream = "127.0.0.1:9000"

[[proxy.route]]
agnet = "search"
upstream = "search.internal"

[[proxy.route]]
agent = "billing"
upstream = "127.0.0.1:9001"
token = "t"

[[proxy.route]]
agent = "api"
upstream = "127.0.0.1:9002"
"#;
        let problems = parse_proxy(text).unwrap_err();
        let render: Vec<String> = problems
            .iter()
            .map(|p| format!("{:?} {} {}", p.at, p.key, p.message))
            .collect();
        assert_eq!(problems.len(), 6, "{render:#?}");
        let find = |k: &str| problems.iter().filter(|p| p.key == k).collect::<Vec<_>>();
        let typo = find("proxy.route[1].agnet");
        assert_eq!(typo[0].at, Some((9, 1)));
        assert!(
            typo[0].message.contains("did you mean `agent`"),
            "{render:#?}"
        );
        // The entry without an agent is reported at its header.
        let missing = find("proxy.route[1]");
        assert_eq!(missing[0].at, Some((8, 1)));
        assert!(missing[0].message.contains("missing `agent`"));
        assert!(
            find("proxy.route[1].upstream")[0]
                .message
                .contains("has no port")
        );
        let twice = find("proxy.route[2].agent");
        assert_eq!(twice[0].at, Some((13, 1)));
        assert!(
            twice[0]
                .message
                .contains("proxy.route[0] fronts it already")
        );
        assert!(
            find("proxy.route[2].token")[0]
                .message
                .contains("known keys in [[proxy.route]]")
        );
        assert!(
            find("proxy.route[3].agent")[0]
                .message
                .contains("own agent")
        );

        for (text, line_col) in [
            ("[proxy]\nroute = \"billing=h:1\"\n", (2, 1)),
            ("[proxy]\nroute = [1, 2]\n", (2, 1)),
            ("[proxy.route]\nagent = \"b\"\n", (1, 8)),
        ] {
            let problems = parse_proxy(text).unwrap_err();
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].key, "proxy.route");
            assert_eq!(problems[0].at, Some(line_col), "{text}");
            assert!(problems[0].message.contains("[[proxy.route]]"));
        }
    }

    #[test]
    fn proxy_suggestions() {
        assert_eq!(suggest("upsteam", PROXY_KEYS), Some("upstream"));
        assert_eq!(suggest("ratelimit", PROXY_KEYS), Some("rate_limit"));
        assert_eq!(suggest("routes", PROXY_KEYS), Some("route"));
        assert_eq!(suggest("jointoken", ROUTE_KEYS), Some("join_token"));
        assert_eq!(suggest("servre", TOP_KEYS), Some("server"));
        assert_eq!(suggest("logging", PROXY_KEYS), None);
    }

    #[test]
    fn address_checks() {
        for good in [
            "127.0.0.1:8080",
            "app.internal:80",
            "my_app:1",
            "[::1]:8080",
        ] {
            assert_eq!(host_port(good).unwrap(), good);
        }
        for (bad, why) in [
            ("http://app:80", "drop the scheme"),
            ("app:80/x", "drop the scheme"),
            ("app", "has no port"),
            ("app:0", "1 to 65535"),
            ("app:http", "1 to 65535"),
            (":80", "not a host name"),
            ("::1:80", "brackets"),
        ] {
            let err = host_port(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(server_addr("https://ward.example.org:8443/").is_ok());
        assert!(server_addr("ward:8443").is_ok());
        assert!(
            server_addr("http://ward:8443")
                .unwrap_err()
                .contains("https://")
        );
        assert_eq!(request_timeout("30s").unwrap().as_secs(), 30);
        assert!(request_timeout("0s").is_err());
        assert!(request_timeout("soon").is_err());
        assert_eq!(route_flag("b=h:1").unwrap().agent.as_str(), "b");
        assert!(route_flag("b").unwrap_err().contains("NAME=HOST:PORT"));
        assert!(route_flag("B=h:1").is_err());
        assert!(at_least_one("0").is_err());
        assert_eq!(at_least_one("3").unwrap(), 3);
    }
}
