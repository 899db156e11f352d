//! `ward proxy run`: the data plane for one agent. This module owns turning
//! the built-in defaults, the `[proxy]` table of `--config`, `WARD_*`
//! variables and flags into one `ProxyConfig` (and `--check`'s report of
//! it); `ward_proxy` owns what the proxy then does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ward_proxy::config::{DEFAULT_ADMIN, DEFAULT_INBOUND, DEFAULT_OUTBOUND, Route};
use ward_proxy::{AuditFull, Limits, ProxyConfig};

use crate::cli::ProxyRunArgs;
use crate::config::{self, ConfigErrors, Problem, ProxyFile};

/// How long shutdown waits for in-flight requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Everything `ward proxy run` settled on before starting.
struct Effective {
    config: ProxyConfig,
    /// Kept beside `config.audit_spool_bytes` to report it as given.
    audit_spool_mib: u64,
    workers: Option<usize>,
}

pub(crate) fn run(args: ProxyRunArgs) -> anyhow::Result<ExitCode> {
    let check = args.check;
    let settings = effective(args)?;
    if check {
        print!("{}", report(&settings));
        return Ok(ExitCode::SUCCESS);
    }
    let Effective {
        config, workers, ..
    } = settings;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        // The parsers already refuse 0; tokio would panic on it.
        anyhow::ensure!(n > 0, "--workers must be at least 1");
        runtime.worker_threads(n);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let proxy = ward_proxy::start(config).await?;
        eprintln!(
            "ward proxy for {} — outbound {}, inbound {} (advertised {}), admin {}",
            proxy.shared.identity.spiffe_id,
            proxy.outbound,
            proxy.inbound,
            proxy.shared.advertise(),
            proxy.admin
        );
        crate::cmd::wait_for_signal().await?;
        eprintln!(
            "shutting down (waiting up to {}s for in-flight requests)",
            DRAIN_DEADLINE.as_secs()
        );
        if proxy.shutdown(DRAIN_DEADLINE).await == ward_core::drain::Outcome::TimedOut {
            eprintln!("some requests did not finish within the deadline");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Defaults < config file < environment < flags. Clap has already merged
/// the last two (and checked their values), so every `Some` in `args` wins
/// over the file.
fn effective(args: ProxyRunArgs) -> anyhow::Result<Effective> {
    let file = match &args.config {
        Some(path) => config::load_proxy(path)?,
        None => ProxyFile::default(),
    };
    let mut problems = Vec::new();
    let server = required(
        args.server.or(file.server),
        ("server", "--server", "WARD_SERVER"),
        "no control-plane address",
        &mut problems,
    );
    let agent = required(
        args.agent.or(file.agent),
        ("agent", "--agent", "WARD_AGENT"),
        "no agent to speak for",
        &mut problems,
    );
    let upstream = required(
        args.upstream.or(file.upstream),
        ("upstream", "--upstream", "WARD_UPSTREAM"),
        "no app to forward to",
        &mut problems,
    );
    let routes = merge_routes(
        file.routes,
        args.routes,
        &args.route_tokens,
        agent.as_ref(),
        &mut problems,
    );
    let (Some(server), Some(agent), Some(upstream), true) =
        (server, agent, upstream, problems.is_empty())
    else {
        return Err(ConfigErrors::merged(args.config.as_deref(), problems).into());
    };

    let listener = |given: Option<SocketAddr>, default: &str, what: &str| match given {
        Some(addr) => Ok(addr),
        None => default
            .parse::<SocketAddr>()
            .with_context(|| format!("built-in {what} address {default:?}")),
    };
    let audit_spool_mib = args
        .audit_spool_mib
        .or(file.audit_spool_mib)
        .unwrap_or(config::DEFAULT_AUDIT_SPOOL_MIB);
    let defaults = Limits::default();
    let config = ProxyConfig {
        routes,
        server,
        bundle: args.bundle.or(file.bundle),
        join_token: args.join_token.or(file.join_token),
        upstream,
        protocol: args.protocol.or(file.protocol),
        state_dir: args
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| format!("ward-proxy-{agent}").into()),
        agent,
        outbound: listener(
            args.outbound.or(file.outbound),
            DEFAULT_OUTBOUND,
            "outbound",
        )?,
        inbound: listener(args.inbound.or(file.inbound), DEFAULT_INBOUND, "inbound")?,
        advertise: args.advertise.or(file.advertise),
        admin: listener(args.admin.or(file.admin), DEFAULT_ADMIN, "admin")?,
        limits: Limits {
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(defaults.max_body_bytes),
            request_timeout: args
                .request_timeout
                .or(file.request_timeout)
                .unwrap_or(defaults.request_timeout),
            ..defaults
        },
        rate_limit: args.rate_limit.or(file.rate_limit),
        audit_full: args.audit_full.or(file.audit_full).unwrap_or_default(),
        audit_spool_bytes: audit_spool_mib.saturating_mul(1 << 20),
    };
    Ok(Effective {
        config,
        audit_spool_mib,
        workers: args.workers.or(file.workers),
    })
}

/// A setting the proxy cannot start without; when no source gives it, the
/// problem names all three places it can come from.
fn required<T>(
    value: Option<T>,
    (key, flag, env): (&str, &str, &str),
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    if value.is_none() {
        problems.push(Problem {
            at: None,
            key: format!("proxy.{key}"),
            message: format!("{what}: pass {flag}, set {env}, or set {key} in [proxy]"),
        });
    }
    value
}

/// The file's `[[proxy.route]]` entries, then `--route`s; `--route-token`
/// gives either kind its join token (over one in the file, as flags win).
/// The file has already refused duplicates among its own routes; this
/// catches those between the two sources and the proxy's own agent.
fn merge_routes(
    file: Vec<Route>,
    flags: Vec<Route>,
    tokens: &[String],
    agent: Option<&ward_core::AgentName>,
    problems: &mut Vec<Problem>,
) -> Vec<Route> {
    // By agent, with where each came from; `order` keeps the given order.
    let mut routes: BTreeMap<String, (Route, &str)> = BTreeMap::new();
    let mut order = Vec::new();
    for (route, source) in file
        .into_iter()
        .map(|r| (r, "[[proxy.route]]"))
        .chain(flags.into_iter().map(|r| (r, "--route")))
    {
        let name = route.agent.as_str().to_owned();
        if agent == Some(&route.agent) {
            problems.push(Problem {
                at: None,
                key: source.to_owned(),
                message: format!(
                    "agent `{name}` is this proxy's own agent; a route fronts a further agent"
                ),
            });
        } else if let Some((_, first)) = routes.get(&name) {
            problems.push(Problem {
                at: None,
                key: source.to_owned(),
                message: format!(
                    "agent `{name}` is fronted twice (by {first} and {source}); give each route a different agent"
                ),
            });
        } else {
            order.push(name.clone());
            routes.insert(name, (route, source));
        }
    }
    for token in tokens {
        // The token itself stays out of every message.
        let Some((name, token)) = token.split_once('=') else {
            problems.push(Problem {
                at: None,
                key: "--route-token".to_owned(),
                message: "must be NAME=TOKEN".to_owned(),
            });
            continue;
        };
        match routes.get_mut(name) {
            Some((route, _)) => route.join_token = Some(token.to_owned()),
            None => problems.push(Problem {
                at: None,
                key: "--route-token".to_owned(),
                message: format!(
                    "{name}=… names no route: add --route {name}=HOST:PORT or a [[proxy.route]] with agent = \"{name}\""
                ),
            }),
        }
    }
    order
        .into_iter()
        .filter_map(|name| routes.remove(&name).map(|(route, _)| route))
        .collect()
}

/// `--check`'s report: the effective settings as a `[proxy]` table that
/// could be pasted back into a config file. Secrets are shown only as
/// `"<set>"`; settings left to a runtime default are comments.
fn report(settings: &Effective) -> String {
    let c = &settings.config;
    let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let secret = |s: &Option<String>| s.as_ref().map(|_| quoted("<set>"));
    let path =
        |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| quoted(&p.display().to_string()));
    let rate = c
        .rate_limit
        .map(|r| quoted(&format!("{}/s:{}", r.per_second, r.burst)));
    let audit_full = match c.audit_full {
        AuditFull::FailClosed => "fail-closed",
        AuditFull::FailOpen => "fail-open",
    };
    let rows: Vec<(&str, Option<String>, &str)> = vec![
        ("server", Some(quoted(&c.server)), ""),
        ("agent", Some(quoted(c.agent.as_str())), ""),
        (
            "join_token",
            secret(&c.join_token),
            "only needed until the proxy has enrolled",
        ),
        ("bundle", path(&c.bundle), "only needed at first enrollment"),
        ("upstream", Some(quoted(&c.upstream)), ""),
        (
            "protocol",
            c.protocol.map(|p| quoted(p.as_str())),
            "the agent's `protocol` registry label, else http",
        ),
        ("state_dir", path(&Some(c.state_dir.clone())), ""),
        ("outbound", Some(quoted(&c.outbound.to_string())), ""),
        ("inbound", Some(quoted(&c.inbound.to_string())), ""),
        (
            "advertise",
            c.advertise.as_deref().map(quoted),
            "the inbound address",
        ),
        ("admin", Some(quoted(&c.admin.to_string())), ""),
        ("rate_limit", rate, "unlimited"),
        (
            "max_body_bytes",
            Some(c.limits.max_body_bytes.to_string()),
            "",
        ),
        (
            "request_timeout",
            Some(quoted(&format!("{}s", c.limits.request_timeout.as_secs()))),
            "",
        ),
        ("audit_full", Some(quoted(audit_full)), ""),
        (
            "audit_spool_mib",
            Some(settings.audit_spool_mib.to_string()),
            "",
        ),
        (
            "workers",
            settings.workers.map(|n| n.to_string()),
            "one per core",
        ),
    ];
    let mut out =
        String::from("# effective settings: defaults < --config < WARD_* < flags\n[proxy]\n");
    for (key, value, unset) in rows {
        // Writing to a String cannot fail.
        let _ = match value {
            Some(value) => writeln!(out, "{key} = {value}"),
            None => writeln!(out, "# {key}: not set ({unset})"),
        };
    }
    for route in &c.routes {
        let _ = writeln!(
            out,
            "\n[[proxy.route]]\nagent = {}\nupstream = {}",
            quoted(route.agent.as_str()),
            quoted(&route.upstream)
        );
        if let Some(p) = route.protocol {
            let _ = writeln!(out, "protocol = {}", quoted(p.as_str()));
        }
        let _ = match secret(&route.join_token) {
            Some(value) => writeln!(out, "join_token = {value}"),
            None => writeln!(
                out,
                "# join_token: not set (only needed until the agent has enrolled)"
            ),
        };
    }
    out
}
