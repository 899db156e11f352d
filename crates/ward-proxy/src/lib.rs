//! `ward proxy`: the data plane. One proxy speaks for one agent: it holds
//! the agent's SVID (enrolled with a join token, renewed at half-life),
//! follows the control plane's watch stream, and stands between the agent
//! and every other agent.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | what the proxy is told at start |
//! | [`state`] | the 0700 state directory: identity, bundle, last-known-good view |
//! | [`identity`] | enrollment, renewal, the SVID handshakes present |
//! | [`view`] | the control-plane view from the watch stream; signed-bundle checks |
//! | [`watcher`] | following the watch stream, persisting, cutting revoked connections |
//! | [`inbound`] | the mTLS listener: authenticate, decide, audit, forward to the app |
//! | [`outbound`] | the app's listener: route to the target agent's proxy over pooled HTTP/2 mTLS |
//! | [`admin`] | `/metrics`, `/healthz`, `/readyz` |
//! | [`audit`] | decision records into the local spool |
//! | [`receipt`] | reporting the applied revision to the server (receipts) |
//! | [`ship`] | the spool to the server's log; delete only what it acknowledged |
//! | [`upgrade`] | HTTP/1.1 upgrades (WebSocket) spliced after authorization |
//! | [`rpc`], [`jsonrpc`], [`sse`] | MCP and A2A: calls as Cedar requests, strict JSON-RPC parsing, filtered discovery |
//! | [`ratelimit`], [`metrics`], [`http`] | per-caller token buckets, Prometheus, header hygiene |
//!
//! One call (DESIGN.md §2): app A → A's outbound listener (plain HTTP on
//! loopback; target from `ward-target`, an absolute-form URI or `Host`) →
//! HTTP/2 over mTLS presenting A's SVID → B's inbound listener, which
//! verifies the peer, checks revocation, rate-limits, asks the embedded
//! Cedar engine, writes the audit record, and only then forwards to app B
//! with `ward-peer-id`, `ward-decision-id` and `traceparent`. Every error on
//! that path denies (DESIGN.md §4.1).

pub mod admin;
pub mod audit;
pub mod config;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod jsonrpc;
pub mod metrics;
pub mod outbound;
pub mod ratelimit;
pub mod receipt;
pub mod rpc;
mod rpc_inbound;
pub mod ship;
pub mod sse;
pub mod state;
pub mod upgrade;
pub mod view;
pub mod watcher;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use ward_core::drain;
use ward_identity::TrustBundle;
use ward_identity::verify::TrustStore;

pub use config::{AuditFull, Limits, ProxyConfig, RateLimit};

use crate::audit::AuditSink;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::state::StateDir;
use crate::view::{Compiled, View};

/// Why the proxy could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}; is another proxy running there?")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The state directory.
    #[error("state directory: {0}")]
    State(String),
    /// Enrollment, renewal, keys.
    #[error("identity: {0}")]
    Identity(String),
    /// Talking to the server.
    #[error(transparent)]
    Client(#[from] ward_client::ClientError),
    /// Bad settings.
    #[error("configuration: {0}")]
    Config(String),
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An agent this proxy fronts: its identity and its app.
#[derive(Debug)]
pub struct Local {
    /// The agent's identity.
    pub identity: Identity,
    /// Its app.
    pub upstream: inbound::Upstream,
    /// Where its key and SVID live.
    pub state: StateDir,
}

/// State every task shares.
#[derive(Debug)]
pub struct Shared {
    /// Settings.
    pub config: ProxyConfig,
    /// The agent this proxy speaks for: the caller on the outbound side, the
    /// identity of the watch stream.
    pub identity: Identity,
    /// The state directory.
    pub state: StateDir,
    /// Gateway mode: further agents fronted by the inbound listener, by
    /// name (picked by the TLS server name the caller's proxy sends).
    pub routes: std::collections::BTreeMap<String, Arc<Local>>,
    /// The audit spool.
    pub audit: AuditSink,
    /// Metrics.
    pub metrics: Metrics,
    /// Per-caller rate limits.
    pub limiter: RateLimiter,
    /// Bounds on how many refused handshakes become audit records.
    pub handshake_audit: inbound::HandshakeAudit,
    /// Trust anchors for peers (updated from the watch stream).
    pub trust: Arc<TrustStore>,
    bundle: ArcSwap<TrustBundle>,
    compiled: ArcSwap<Compiled>,
    /// Pooled mTLS connections to other proxies.
    pub peers: outbound::Pool,
    /// Live inbound connections, for cutting revoked peers.
    pub conns: watcher::Conns,
    /// HTTP/1.1 connection pool to the local app.
    pub upstream: inbound::Upstream,
    /// The control-plane revision in force, for receipts.
    pub applied: tokio::sync::watch::Sender<u64>,
    /// Whether the watch stream has caught up since start (serving waits).
    pub caught_up: tokio::sync::watch::Sender<watcher::CatchUp>,
    advertise: String,
}

impl Shared {
    /// The compiled view in force.
    pub fn compiled(&self) -> Arc<Compiled> {
        self.compiled.load_full()
    }

    /// The trust bundle in force.
    pub fn trust_bundle(&self) -> TrustBundle {
        TrustBundle::clone(&self.bundle.load())
    }

    /// Adopts a new trust bundle for peer verification.
    pub fn set_bundle(&self, bundle: TrustBundle) {
        match self.trust.update(&bundle) {
            Ok(()) => {
                self.bundle.store(Arc::new(bundle));
                self.conns.bundle_changed();
            }
            Err(e) => tracing::error!(error = %e, "trust bundle refused; keeping the previous one"),
        }
    }

    /// The address other proxies dial.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// Whether the proxy can enforce: an unexpired SVID and a view applied
    /// from the server (now or before a restart).
    pub fn ready(&self) -> bool {
        !self.identity.expired(now_secs()) && self.compiled.load().view.revision > 0
    }

    /// A client for the control plane that presents this proxy's current
    /// SVID (build a new one after a rotation).
    pub fn server_client(&self) -> Result<ward_client::Client, String> {
        let current = self.identity.current();
        ward_client::Client::new(
            &self.config.server,
            &self.trust_bundle(),
            Some((&current.0, &current.1)),
        )
        .map_err(|e| e.to_string())
    }

    fn install(&self, compiled: Compiled) {
        self.metrics
            .applied_revision
            .set(i64::try_from(compiled.view.revision).unwrap_or(i64::MAX));
        self.metrics.set_policy(compiled.policy_version());
        self.compiled.store(Arc::new(compiled));
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Shared state (for tests and the admin listener).
    pub shared: Arc<Shared>,
    /// Where the outbound listener is bound.
    pub outbound: SocketAddr,
    /// Where the inbound listener is bound.
    pub inbound: SocketAddr,
    /// Where the admin listener is bound.
    pub admin: SocketAddr,
    trigger: drain::Trigger,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { what, addr, source })
}

fn local(what: &'static str, l: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ProxyError> {
    l.local_addr()
        .map_err(|source| ProxyError::Bind { what, addr, source })
}

/// Binds the listeners, establishes the identity (saved, or enrolled with
/// the join token), loads the last-known-good view, and starts serving.
pub async fn start(config: ProxyConfig) -> Result<Proxy, ProxyError> {
    let state = StateDir::open(&config.state_dir)?;
    let outbound_l = bind("outbound", config.outbound).await?;
    let inbound_l = bind("inbound", config.inbound).await?;
    let admin_l = bind("admin", config.admin).await?;
    let outbound_addr = local("outbound", &outbound_l, config.outbound)?;
    let inbound_addr = local("inbound", &inbound_l, config.inbound)?;
    let admin_addr = local("admin", &admin_l, config.admin)?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| inbound_addr.to_string());

    let (identity, bundle) = establish(
        &config,
        &config.agent,
        config.join_token.as_deref(),
        &state,
        &advertise,
    )
    .await?;
    let mut routes = std::collections::BTreeMap::new();
    for route in &config.routes {
        if route.agent == config.agent || routes.contains_key(route.agent.as_str()) {
            return Err(ProxyError::Config(format!(
                "agent {} is fronted twice; give each --route a different agent",
                route.agent
            )));
        }
        let route_state = StateDir::open(&state.root().join("agents").join(route.agent.as_str()))?;
        let (route_identity, _) = establish(
            &config,
            &route.agent,
            route.join_token.as_deref(),
            &route_state,
            &advertise,
        )
        .await?;
        routes.insert(
            route.agent.as_str().to_owned(),
            Arc::new(Local {
                identity: route_identity,
                upstream: inbound::Upstream::new(&route.upstream).with_protocol(route.protocol),
                state: route_state,
            }),
        );
    }
    let view = match state.load_view()? {
        Some(text) => serde_json::from_str::<View>(&text).map_err(|e| {
            ProxyError::State(format!(
                "{}/view.json is unreadable ({e}); delete it to resync from the server",
                state.root().display()
            ))
        })?,
        None => View::default(),
    };
    let trust = Arc::new(
        TrustStore::new(&bundle).map_err(|e| ProxyError::Identity(format!("trust bundle: {e}")))?,
    );
    let audit = AuditSink::open(
        &state.spool_dir(),
        config.audit_spool_bytes,
        identity.spiffe_id.to_string(),
    )?;
    let upstream = inbound::Upstream::new(&config.upstream).with_protocol(config.protocol);
    let shared = Arc::new(Shared {
        limiter: RateLimiter::new(config.rate_limit),
        handshake_audit: inbound::HandshakeAudit::default(),
        metrics: Metrics::new(),
        peers: outbound::Pool::default(),
        conns: watcher::Conns::default(),
        bundle: ArcSwap::from_pointee(bundle),
        compiled: ArcSwap::from_pointee(Compiled::new(View::default())),
        trust,
        audit,
        identity,
        state,
        routes,
        upstream,
        applied: tokio::sync::watch::channel(0).0,
        caught_up: tokio::sync::watch::channel(watcher::CatchUp::Pending).0,
        advertise,
        config,
    });
    shared.install(Compiled::new(view));
    shared.applied.send_replace(shared.compiled().view.revision);

    let (trigger, watch) = drain::channel();
    tokio::spawn(watcher::follow(Arc::clone(&shared), watch.clone()));
    tokio::spawn(renew(Arc::clone(&shared), None, watch.clone()));
    for local in shared.routes.values() {
        tokio::spawn(renew(
            Arc::clone(&shared),
            Some(Arc::clone(local)),
            watch.clone(),
        ));
    }
    tokio::spawn(gauges(Arc::clone(&shared), watch.clone()));
    tokio::spawn(ship::run(Arc::clone(&shared), watch.clone()));
    tokio::spawn(receipt::run(Arc::clone(&shared), watch.clone()));
    // The listeners are bound (connections wait in the backlog) but nothing
    // is served until the view has caught up with the server, so a proxy
    // restarted after a revocation never admits the revoked identity.
    catch_up(&shared).await;
    tokio::spawn(inbound::serve(
        inbound_l,
        Arc::clone(&shared),
        watch.clone(),
    ));
    tokio::spawn(outbound::serve(
        outbound_l,
        Arc::clone(&shared),
        watch.clone(),
    ));
    tokio::spawn(admin::serve(admin_l, Arc::clone(&shared), watch));
    tracing::info!(
        agent = %shared.identity.spiffe_id,
        outbound = %outbound_addr,
        inbound = %inbound_addr,
        admin = %admin_addr,
        "proxy serving"
    );
    Ok(Proxy {
        shared,
        outbound: outbound_addr,
        inbound: inbound_addr,
        admin: admin_addr,
        trigger,
    })
}

/// How long a starting proxy waits to catch up with the server.
const CATCH_UP_MAX: Duration = Duration::from_secs(10);

/// Waits until the watch stream has delivered (and the watcher applied)
/// everything the server had when it connected. With the server
/// unreachable the proxy serves its last-known-good view (DESIGN.md §5);
/// a stream too slow to catch up within [`CATCH_UP_MAX`] is logged and the
/// proxy serves what it has (changes keep arriving).
async fn catch_up(shared: &Arc<Shared>) {
    let started = std::time::Instant::now();
    let mut state = shared.caught_up.subscribe();
    let outcome = tokio::time::timeout(
        CATCH_UP_MAX,
        state.wait_for(|s| *s != watcher::CatchUp::Pending),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|s| *s);
    let revision = shared.compiled().view.revision;
    match outcome {
        Some(watcher::CatchUp::Done) => tracing::info!(
            revision,
            ms = started.elapsed().as_millis(),
            "caught up with the server before serving"
        ),
        Some(_) => tracing::warn!(
            revision,
            "server unreachable at start; serving the last-known-good view"
        ),
        None => tracing::warn!(
            revision,
            "not caught up with the server in time; serving and applying changes as they arrive"
        ),
    }
}

impl Proxy {
    /// Stops accepting, lets in-flight requests finish within `deadline`,
    /// and closes the audit spool (committing what is queued).
    pub async fn shutdown(self, deadline: Duration) -> drain::Outcome {
        let outcome = self.trigger.drain(deadline).await;
        self.shared.audit.close();
        outcome
    }
}

/// The saved identity of `agent` if it is still valid, else a new
/// enrollment with `token`.
async fn establish(
    config: &ProxyConfig,
    agent: &ward_core::AgentName,
    token: Option<&str>,
    state: &StateDir,
    advertise: &str,
) -> Result<(Identity, TrustBundle), ProxyError> {
    let saved_bundle = |td: &ward_core::TrustDomain| -> Result<Option<TrustBundle>, ProxyError> {
        state
            .load_bundle()?
            .map(|text| {
                TrustBundle::from_json(td.clone(), text.as_bytes())
                    .map_err(|e| ProxyError::State(format!("bundle.json: {e}")))
            })
            .transpose()
    };
    if let Some((key, svid)) = state.load_identity()? {
        let id = svid.spiffe_id().clone();
        if id.agent_name().as_ref() != Some(agent) {
            return Err(ProxyError::Config(format!(
                "{} holds the identity {id}, not agent {agent}; use another --state-dir",
                state.root().display(),
            )));
        }
        if svid.leaf().not_after <= now_secs() {
            tracing::warn!(%id, "saved SVID has expired; enrolling again");
        } else if let Some(bundle) = saved_bundle(id.trust_domain())? {
            if token.is_some() {
                tracing::info!(%id, "already enrolled; the join token is not used");
            }
            return Ok((Identity::new(key, svid)?, bundle));
        }
    }
    let token = token.ok_or_else(|| {
        ProxyError::Config(format!(
            "no valid identity for {agent} in {} and no join token; create one with `ward token create --agent {agent}` and pass it (--join-token, or NAME=TOKEN in --route-token for a gateway route)",
            state.root().display(),
        ))
    })?;
    let path = config.bundle.as_ref().ok_or_else(|| {
        ProxyError::Config(
            "first enrollment needs the server's trust bundle to authenticate it: pass --bundle (the server's DATA_DIR/bundle.json)".to_owned(),
        )
    })?;
    let text = std::fs::read(path)
        .map_err(|e| ProxyError::Config(format!("--bundle {}: {e}", path.display())))?;
    let td = trust_domain_of(&text)
        .map_err(|e| ProxyError::Config(format!("--bundle {}: {e}", path.display())))?;
    let bundle = TrustBundle::from_json(td, &text)
        .map_err(|e| ProxyError::Config(format!("--bundle {}: {e}", path.display())))?;
    let (key, svid, bundle) = identity::enroll(
        &config.server,
        &bundle,
        agent,
        token,
        Some(advertise),
        state,
    )
    .await?;
    Ok((Identity::new(key, svid)?, bundle))
}

/// The trust domain a bundle file is for: the JWKS document does not name
/// it, so the X.509 authority's URI SAN does.
fn trust_domain_of(bundle_json: &[u8]) -> Result<ward_core::TrustDomain, String> {
    let probe = TrustBundle::from_json(
        ward_core::TrustDomain::new("probe.invalid").map_err(|e| e.to_string())?,
        bundle_json,
    )
    .map_err(|e| e.to_string())?;
    let root = probe
        .x509_authorities
        .first()
        .ok_or("the bundle has no X.509 authority")?;
    ward_identity::svid::authority_trust_domain(root.as_ref()).map_err(|e| e.to_string())
}

async fn renew(shared: Arc<Shared>, route: Option<Arc<Local>>, watch: drain::Watch) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let signaled = watch.signaled();
    tokio::select! {
        () = identity::renew_loop(Arc::clone(&shared), route, rx) => {}
        _guard = signaled => { let _ = tx.send(true); }
    }
}

/// Refreshes gauges that change with time, not events.
async fn gauges(shared: Arc<Shared>, watch: drain::Watch) {
    let signaled = watch.signaled();
    tokio::pin!(signaled);
    loop {
        shared
            .metrics
            .cert_expiry_seconds
            .set(shared.identity.not_after() - now_secs());
        shared
            .metrics
            .audit_backlog
            .set(i64::try_from(shared.audit.backlog()).unwrap_or(i64::MAX));
        tokio::select! {
            _ = &mut signaled => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
