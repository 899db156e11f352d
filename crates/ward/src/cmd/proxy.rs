//! `ward proxy run`: the data plane for one agent.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ward_core::AgentName;
use ward_proxy::config::Route;
use ward_proxy::{Limits, ProxyConfig};

use crate::cli::ProxyRunArgs;

/// How long shutdown waits for in-flight requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub(crate) fn run(args: ProxyRunArgs) -> anyhow::Result<ExitCode> {
    let agent = AgentName::new(&args.agent).with_context(|| format!("--agent {:?}", args.agent))?;
    let request_timeout = crate::cmd::parse_duration(&args.request_timeout)
        .with_context(|| format!("--request-timeout {:?}", args.request_timeout))?;
    let mut tokens = std::collections::BTreeMap::new();
    for t in &args.route_tokens {
        let (name, token) = t
            .split_once('=')
            .with_context(|| "--route-token must be NAME=TOKEN".to_owned())?;
        tokens.insert(name.to_owned(), token.to_owned());
    }
    let mut routes = Vec::new();
    for r in &args.routes {
        let (name, upstream) = r
            .split_once('=')
            .with_context(|| format!("--route {r:?} must be NAME=HOST:PORT"))?;
        let agent = AgentName::new(name).with_context(|| format!("--route {r:?}"))?;
        routes.push(Route {
            join_token: tokens.remove(agent.as_str()),
            agent,
            upstream: upstream.to_owned(),
        });
    }
    if let Some(name) = tokens.keys().next() {
        anyhow::bail!("--route-token {name}=… names no --route");
    }
    let config = ProxyConfig {
        routes,
        server: args.server,
        bundle: args.bundle,
        join_token: args.join_token,
        upstream: args.upstream,
        state_dir: args
            .state_dir
            .unwrap_or_else(|| format!("ward-proxy-{agent}").into()),
        agent,
        outbound: args.outbound,
        inbound: args.inbound,
        advertise: args.advertise,
        admin: args.admin,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            request_timeout,
            ..Limits::default()
        },
        rate_limit: args.rate_limit,
        audit_full: args.audit_full,
        audit_spool_bytes: args.audit_spool_mib.saturating_mul(1 << 20),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
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
        crate::cmd::server::wait_for_signal().await?;
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
