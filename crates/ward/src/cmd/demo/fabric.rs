//! The demo's fabric, all in this process on 127.0.0.1: a control plane on
//! the embedded SQLite store in the working directory, the three agents
//! registered, the demo's policy bundle pushed through the API, and one
//! real proxy per agent (enrolled with a single-use join token, mutual TLS
//! between them). This module owns starting it, waiting until it is ready
//! (every wait bounded) and shutting it down in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use ward_client::{Client, Method};
use ward_core::{AgentName, TrustDomain, drain};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, X509Svid};
use ward_proxy::{Limits, Proxy, ProxyConfig, RateLimit};
use ward_server::api::policies::PushResponse;
use ward_server::api::proxies::ProxyState;
use ward_server::data_dir::DataDir;
use ward_server::server::{self, RunOptions};

use super::apps::Apps;
use super::web::at;

/// The demo's trust domain: SPIFFE IDs are `spiffe://demo.local/agent/NAME`.
pub(super) const TRUST_DOMAIN: &str = "demo.local";

/// The policy bundle (examples/demo/policy), built into the binary so the
/// demo needs no checkout.
pub(super) const POLICY_FILES: [(&str, &str); 2] = [
    (
        "demo.cedar",
        include_str!("../../../../../examples/demo/policy/demo.cedar"),
    ),
    (
        "tests/demo.yaml",
        include_str!("../../../../../examples/demo/policy/tests/demo.yaml"),
    ),
];

/// The researcher's proxy limits each caller to this: the rate-limit
/// scene's burst from the planner runs into it; earlier scenes stay under.
pub(super) const RESEARCHER_RATE: RateLimit = RateLimit {
    per_second: 1.0,
    burst: 5,
};

/// Longest wait for anything to get ready.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long shutdown waits for in-flight requests, per part.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// One demo agent as registered.
#[derive(Debug)]
pub(super) struct AgentSpec {
    pub(super) name: &'static str,
    pub(super) team: &'static str,
    pub(super) labels: &'static [(&'static str, &'static str)],
}

/// planner → researcher → tools.
pub(super) const AGENTS: [AgentSpec; 3] = [
    AgentSpec {
        name: "planner",
        team: "research",
        labels: &[],
    },
    AgentSpec {
        name: "researcher",
        team: "research",
        labels: &[],
    },
    AgentSpec {
        name: "tools",
        team: "platform",
        // `protocol=mcp` makes its proxy read JSON-RPC and decide per
        // tool; the tool labels declare `Tool` entities with a risk.
        labels: &[
            ("protocol", "mcp"),
            ("tool.search.risk", "0"),
            ("tool.summarize.risk", "1"),
            ("tool.delete_records.risk", "3"),
        ],
    },
];

/// The running control plane.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    pub(super) data: DataDir,
    pub(super) admin: Client,
    trigger: drain::Trigger,
}

/// Everything the demo started; parts are `None` until started, so a
/// Ctrl-C during setup shuts down exactly what runs.
#[derive(Debug)]
pub(super) struct Fabric {
    pub(super) workdir: PathBuf,
    pub(super) server: Option<Server>,
    pub(super) apps: Option<Apps>,
    pub(super) proxies: Vec<(&'static str, Proxy)>,
}

impl Fabric {
    pub(super) fn new(workdir: PathBuf) -> Self {
        Self {
            workdir,
            server: None,
            apps: None,
            proxies: Vec::new(),
        }
    }

    /// `ward server init` + `ward server run`, in process, on a free port.
    pub(super) async fn start_server(&mut self) -> anyhow::Result<&Server> {
        let data = DataDir::new(self.workdir.join("server"));
        let td = TrustDomain::new(TRUST_DOMAIN).context("the demo's trust domain")?;
        data.init(&td, None, KeyAlgorithm::EcdsaP256)
            .await
            .with_context(|| {
                format!(
                    "initialising the server's data directory {} (use a fresh --dir)",
                    data.root().display()
                )
            })?;
        let (trigger, watch) = drain::channel();
        let addr = server::start(
            RunOptions {
                data_dir: data.clone(),
                store_url: None,
                listen: "127.0.0.1:0".parse().context("loopback address")?,
                svid_ttl: Duration::from_secs(15 * 60),
                policy_dir: None,
            },
            watch,
        )
        .await
        .context("starting the control plane")?;
        let bundle = TrustBundle::read(td, &data.bundle_path()).context("the trust bundle")?;
        let (cert, key) = data.admin_files();
        let svid = X509Svid::read_pem(&cert).context("the admin SVID")?;
        let key = PrivateKey::read_pem(&key).context("the admin key")?;
        let admin = Client::new(&addr.to_string(), &bundle, Some((&svid, &key)))?;
        Ok(self.server.insert(Server {
            addr,
            data,
            admin,
            trigger,
        }))
    }

    /// The running server.
    pub(super) fn server(&self) -> anyhow::Result<&Server> {
        self.server
            .as_ref()
            .context("the control plane is not running")
    }

    /// The admin's API client (the same calls the CLI makes).
    pub(super) fn admin(&self) -> anyhow::Result<&Client> {
        Ok(&self.server()?.admin)
    }

    /// `ward agent register` for the three agents.
    pub(super) async fn register_agents(&self) -> anyhow::Result<()> {
        let admin = self.admin()?;
        for agent in &AGENTS {
            let labels: serde_json::Map<String, Value> = agent
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            let _: Value = admin
                .call(
                    Method::POST,
                    "/v1/agents",
                    Some(&json!({
                        "name": agent.name,
                        "attributes": {"team": agent.team, "risk_tier": "low", "labels": labels},
                    })),
                )
                .await
                .with_context(|| format!("registering {}", agent.name))?;
        }
        Ok(())
    }

    /// `ward policy push examples/demo/policy`, from the embedded copy.
    pub(super) async fn push_policy(&self) -> anyhow::Result<PushResponse> {
        let files: Vec<Value> = POLICY_FILES
            .iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect();
        self.admin()?
            .call(Method::POST, "/v1/policies", Some(&json!({"files": files})))
            .await
            .context("pushing the demo's policy bundle")
    }

    /// Starts the apps.
    pub(super) async fn start_apps(&mut self) -> anyhow::Result<&Apps> {
        let apps = Apps::start().await?;
        Ok(self.apps.insert(apps))
    }

    /// The running apps.
    pub(super) fn apps(&self) -> anyhow::Result<&Apps> {
        self.apps.as_ref().context("the demo apps are not running")
    }

    /// `ward token create` + `ward proxy run` for `agent`, in process, on
    /// free ports. The join token goes straight into the proxy's config and
    /// is never printed.
    pub(super) async fn start_proxy(
        &mut self,
        agent: &'static str,
        upstream: SocketAddr,
        rate_limit: Option<RateLimit>,
    ) -> anyhow::Result<&Proxy> {
        let server = self.server()?;
        let token: Value = server
            .admin
            .call(
                Method::POST,
                &format!("/v1/agents/{agent}/tokens"),
                Some(&json!({"ttl_secs": 600})),
            )
            .await
            .with_context(|| format!("creating a join token for {agent}"))?;
        let token = at(&token, "/token")
            .as_str()
            .context("the server's answer has no join token")?
            .to_owned();
        let loopback: SocketAddr = "127.0.0.1:0".parse().context("loopback address")?;
        let config = ProxyConfig {
            server: server.addr.to_string(),
            bundle: Some(server.data.bundle_path()),
            agent: AgentName::new(agent).with_context(|| format!("agent name {agent}"))?,
            join_token: Some(token),
            upstream: upstream.to_string(),
            protocol: None,
            routes: Vec::new(),
            state_dir: self.workdir.join("proxies").join(agent),
            outbound: loopback,
            inbound: loopback,
            advertise: None,
            admin: loopback,
            limits: Limits::default(),
            rate_limit,
            audit_full: ward_proxy::AuditFull::FailClosed,
            audit_spool_bytes: 64 << 20,
        };
        let proxy = ward_proxy::start(config)
            .await
            .with_context(|| format!("starting {agent}'s proxy"))?;
        self.proxies.push((agent, proxy));
        self.proxy(agent)
    }

    /// The proxy of `agent`.
    pub(super) fn proxy(&self, agent: &str) -> anyhow::Result<&Proxy> {
        self.proxies
            .iter()
            .find(|(name, _)| *name == agent)
            .map(|(_, p)| p)
            .with_context(|| format!("{agent}'s proxy is not running"))
    }

    /// Until every proxy enforces a verified policy bundle, knows the
    /// address of the peer it calls, and has reported its revision to the
    /// server (so the revocation's receipt counts it).
    pub(super) async fn wait_ready(&self) -> anyhow::Result<()> {
        for (name, proxy) in &self.proxies {
            wait_until(
                &format!("{name}'s proxy to enforce the policy bundle"),
                READY_WITHIN,
                || proxy.shared.ready() && proxy.shared.compiled().policy_version().is_some(),
            )
            .await?;
        }
        for (caller, target) in [("planner", "researcher"), ("researcher", "tools")] {
            let proxy = self.proxy(caller)?;
            wait_until(
                &format!("{caller}'s proxy to learn where {target}'s proxy listens"),
                READY_WITHIN,
                || {
                    proxy
                        .shared
                        .compiled()
                        .view
                        .agents
                        .get(target)
                        .is_some_and(|a| a.endpoint.is_some())
                },
            )
            .await?;
        }
        let admin = self.admin()?;
        let wanted = self.proxies.len();
        poll(
            "every proxy to report its revision to the server",
            READY_WITHIN,
            async || {
                let proxies: Vec<ProxyState> = admin.get("/v1/proxies").await?;
                Ok((proxies.iter().filter(|p| p.connected).count() >= wanted).then_some(()))
            },
        )
        .await
    }

    /// Writes an admin client config for the CLI (`ward … --client-config
    /// FILE`), pointing at this server.
    pub(super) fn write_client_config(&self) -> anyhow::Result<PathBuf> {
        let server = self.server()?;
        let (cert, key) = server.data.admin_files();
        let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        let file = crate::cmd::client::ClientFile {
            server: server.addr.to_string(),
            trust_domain: TRUST_DOMAIN.to_owned(),
            bundle: absolute(server.data.bundle_path()),
            certificate: absolute(cert),
            key: absolute(key),
        };
        let path = absolute(server.data.root().join("admin/client.toml"));
        file.write(&path)?;
        Ok(path)
    }

    /// Drains the proxies (in-flight requests finish, audit spools
    /// commit), then the apps, then the server. Returns what did not
    /// finish within its deadline.
    pub(super) async fn shutdown(&mut self) -> Vec<String> {
        let mut late = Vec::new();
        for (name, proxy) in self.proxies.drain(..).rev() {
            if proxy.shutdown(DRAIN_DEADLINE).await == drain::Outcome::TimedOut {
                late.push(format!("the proxy of {name}"));
            }
        }
        if let Some(apps) = self.apps.take()
            && apps.stop(DRAIN_DEADLINE).await == drain::Outcome::TimedOut
        {
            late.push("the demo apps".to_owned());
        }
        if let Some(server) = self.server.take()
            && server.trigger.drain(DRAIN_DEADLINE).await == drain::Outcome::TimedOut
        {
            late.push("the control plane".to_owned());
        }
        late
    }
}

/// Polls `cond` every 20 ms until it holds; an error naming `what` after
/// `limit`.
pub(super) async fn wait_until(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {}s waiting for {what}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Asks `probe` every 100 ms until it answers `Some`; an error naming
/// `what` (and the last error, if any) after `limit`.
pub(super) async fn poll<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            let why = last
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            anyhow::bail!(
                "timed out after {}s waiting for {what}{why}",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
