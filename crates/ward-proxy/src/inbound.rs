//! The inbound listener: mutual TLS from other proxies, then per request
//! authenticate → check revocation and status → rate-limit → decide (Cedar)
//! → audit → forward to the local app. Every refusal on that path is a
//! decision too: it gets a decision id, an audit record and a problem body.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use ward_audit::record::BodyDigest;
use ward_core::drain::Watch;
use ward_identity::PeerIdentity;
use ward_identity::verify::AnyMember;
use ward_policy::{Context, Value};

use crate::audit::Facts;
use crate::config::AuditFull;
use crate::http::{self, Body};
use crate::identity::Identity;
use crate::rpc::{Protocol, Visibility};
use crate::watcher::Presented;
use crate::{Shared, now_secs};

/// Longest TLS handshake accepted.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The pooled HTTP/1.1 client to the local app.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Body>,
    authority: String,
    /// How its traffic is read; `None`: from the agent's `protocol` label
    /// in the registry, else plain HTTP.
    protocol: Option<Protocol>,
}

impl Upstream {
    /// A pool for the app at `authority` (`host:port`).
    pub fn new(authority: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            authority: authority.to_owned(),
            protocol: None,
        }
    }

    /// Reads this app's traffic as `protocol` whatever the registry says.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Option<Protocol>) -> Self {
        self.protocol = protocol;
        self
    }
}

/// Accepts mTLS connections until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, watch: Watch) {
    // Any member of the trust domain may connect; revocation, status and
    // policy are checked per request, where a refusal is audited.
    let verifier =
        ward_identity::tls::SpiffeVerifier::new(Arc::clone(&shared.trust), Arc::new(AnyMember));
    let resolver = Arc::new(ByServerName {
        default: Arc::clone(&shared.identity.resolver),
        routes: shared
            .routes
            .iter()
            .map(|(name, local)| (name.clone(), Arc::clone(&local.identity.resolver)))
            .collect(),
    });
    let tls = match rustls::ServerConfig::builder_with_provider(
        ward_identity::provider::crypto_provider(),
    )
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map(|b| {
        b.with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(resolver)
    }) {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        }
        Err(e) => {
            tracing::error!(error = %e, "inbound TLS setup failed; not serving");
            return;
        }
    };
    let acceptor = TlsAcceptor::from(tls);
    let shutdown = watch.clone().signaled();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "inbound accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            acceptor.clone(),
            tcp,
            remote,
            Arc::clone(&shared),
            watch.clone(),
        ));
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
    shared: Arc<Shared>,
    watch: Watch,
) {
    // Read before the handshake: a bundle change from here on is caught at
    // registration or by the watcher's sweep (see `Conns::register`).
    let generation = shared.conns.bundle_generation();
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return refused_handshake(&shared, remote, &e.to_string()).await,
        Err(_) => return refused_handshake(&shared, remote, "TLS handshake timed out").await,
    };
    // The verifier demanded and checked a client certificate.
    let Some(peer) = ward_identity::tls::peer_identity(stream.get_ref().1) else {
        return refused_handshake(&shared, remote, "no client certificate").await;
    };
    let agent = peer
        .spiffe_id
        .agent_name()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    // Gateway mode: the caller's proxy names the agent it wants in SNI.
    let route = stream
        .get_ref()
        .1
        .server_name()
        .and_then(|name| shared.routes.get(name))
        .cloned();
    let presented = Presented {
        chain: stream
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect(),
        generation,
    };
    let Some((_guard, cut)) = shared.conns.register(
        &peer.spiffe_id,
        &agent,
        peer.serial.as_str(),
        &presented,
        &shared.trust,
    ) else {
        return refused_handshake(
            &shared,
            remote,
            "the trust bundle changed during the handshake and no longer verifies the certificate",
        )
        .await;
    };
    let peer = Arc::new(peer);
    let presented = Arc::new(presented);
    let svc_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&svc_shared);
        let peer = Arc::clone(&peer);
        let presented = Arc::clone(&presented);
        let route = route.clone();
        async move {
            let fronted = match &route {
                Some(local) => Fronted {
                    identity: &local.identity,
                    upstream: &local.upstream,
                },
                None => Fronted {
                    identity: &shared.identity,
                    upstream: &shared.upstream,
                },
            };
            Ok::<_, Infallible>(handle(&shared, fronted, &peer, &presented, req).await)
        }
    });
    let limits = shared.config.limits;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(limits.max_header_bytes.max(8192))
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let drained = watch.signaled();
    tokio::pin!(drained);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "inbound connection ended with an error");
            }
        }
        () = cut.notified() => {
            // Dropping the connection closes the socket and every stream
            // on it: a revoked peer keeps nothing open.
            // The watcher logs the revision that cut it (at warn); one line
            // per connection is detail.
            tracing::info!(%remote, peer = %agent, "connection cut: peer no longer admitted");
        }
        guard = &mut drained => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
            drop(guard);
        }
    }
}

/// How many refused handshakes become audit records. Refusing a handshake
/// costs an attacker one TCP connection; recording it costs a durable spool
/// write, so a flood of junk connections must not fill the spool (which
/// fails closed and would refuse legitimate calls). Each remote address may
/// leave [`HANDSHAKE_RECORDS_PER_IP`]`/s` records (burst 20), all addresses
/// together [`HANDSHAKE_RECORDS`]`/s` (burst 200); the rest are counted, and
/// the next record written says how many were left out.
#[derive(Debug)]
pub struct HandshakeAudit {
    per_ip: crate::ratelimit::RateLimiter,
    all: crate::ratelimit::RateLimiter,
    unrecorded: std::sync::atomic::AtomicU64,
}

/// Refused-handshake records per second per remote address.
pub const HANDSHAKE_RECORDS_PER_IP: f64 = 5.0;
/// Refused-handshake records per second in all.
pub const HANDSHAKE_RECORDS: f64 = 50.0;

impl Default for HandshakeAudit {
    fn default() -> Self {
        let limit = |per_second, burst| {
            crate::ratelimit::RateLimiter::new(Some(crate::config::RateLimit { per_second, burst }))
        };
        Self {
            per_ip: limit(HANDSHAKE_RECORDS_PER_IP, 20),
            all: limit(HANDSHAKE_RECORDS, 200),
            unrecorded: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl HandshakeAudit {
    /// `Some(n)`: record this refusal, noting `n` earlier ones that were
    /// not; `None`: count it only.
    fn admit(&self, remote: std::net::IpAddr) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let now = Instant::now();
        if self.per_ip.check(&remote.to_string(), now).is_ok() && self.all.check("", now).is_ok() {
            Some(self.unrecorded.swap(0, Ordering::Relaxed))
        } else {
            self.unrecorded.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A handshake that failed is a denied call too (invariant 1): audited with
/// no principal — within [`HandshakeAudit`]'s bounds, and always counted in
/// the metrics.
async fn refused_handshake(shared: &Shared, remote: std::net::SocketAddr, why: &str) {
    shared.metrics.request("inbound", "deny", "handshake");
    let Some(unrecorded) = shared.handshake_audit.admit(remote.ip()) else {
        tracing::debug!(%remote, reason = why, "inbound handshake refused (not recorded: flood bound)");
        return;
    };
    tracing::info!(%remote, reason = why, "inbound handshake refused");
    let mut reasons = vec![format!("TLS handshake refused: {why}")];
    if unrecorded > 0 {
        reasons.push(format!(
            "{unrecorded} more refused handshakes were counted but not recorded (flood bound)"
        ));
    }
    let facts = Facts {
        decision_id: http::decision_id(),
        action: "connect".to_owned(),
        resource: format!("Agent::\"{}\"", shared.identity.agent),
        reasons,
        policy_version: "none".to_owned(),
        method: "CONNECT".to_owned(),
        path: String::new(),
        ..Facts::default()
    };
    if let Err(e) = shared.audit.write(&facts, false).await {
        shared.metrics.audit_failures.inc();
        tracing::error!(error = %e, "audit record for a refused handshake not written");
    }
}

/// Picks the certificate by the TLS server name: a gateway presents each
/// fronted agent's own SVID; anything else gets the proxy's agent.
#[derive(Debug)]
struct ByServerName {
    default: Arc<ward_identity::tls::SvidResolver>,
    routes: std::collections::HashMap<String, Arc<ward_identity::tls::SvidResolver>>,
}

impl rustls::server::ResolvesServerCert for ByServerName {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let resolver = hello
            .server_name()
            .and_then(|name| self.routes.get(name))
            .unwrap_or(&self.default);
        rustls::server::ResolvesServerCert::resolve(resolver.as_ref(), hello)
    }
}

/// The agent a request is for, and its app.
#[derive(Debug, Clone, Copy)]
pub struct Fronted<'a> {
    /// Its identity.
    pub identity: &'a Identity,
    /// Its app.
    pub upstream: &'a Upstream,
}

/// One inbound request, start to finish.
pub async fn handle(
    shared: &Shared,
    fronted: Fronted<'_>,
    peer: &PeerIdentity,
    presented: &Presented,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let (trace_id, traceparent) = http::trace(req.headers());
    let method = req.method().as_str().to_owned();
    let compiled = shared.compiled();
    let mut facts = Facts {
        decision_id: http::decision_id(),
        principal: Some(peer.spiffe_id.clone()),
        action: format!("Action::\"{method}\""),
        resource: format!("Agent::\"{}\"", fronted.identity.agent),
        policy_version: compiled.policy_version().unwrap_or("none").to_owned(),
        trace_id: Some(trace_id),
        serial: Some(peer.serial.as_str().to_owned()),
        path: req.uri().path().to_owned(),
        method,
        ..Facts::default()
    };
    let refuse = |status, slug: &'static str, detail: String| Refusal {
        status,
        slug,
        detail,
        retry_after: None,
    };
    let now = now_secs();
    let checks = (|| {
        if fronted.identity.expired(now) {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "proxy-certificate-expired",
                "this proxy's certificate expired without renewal; it fails closed until re-enrolled".to_owned(),
            ));
        }
        let agent = peer.spiffe_id.agent_name().ok_or_else(|| {
            refuse(
                StatusCode::FORBIDDEN,
                "not-an-agent",
                format!("{} is not an agent identity", peer.spiffe_id),
            )
        })?;
        if peer.not_after <= now {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "certificate-expired",
                format!("the certificate of {} has expired", peer.spiffe_id),
            ));
        }
        if compiled
            .view
            .is_revoked(agent.as_str(), peer.serial.as_str())
        {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "revoked",
                format!("the credentials of {} are revoked", peer.spiffe_id),
            ));
        }
        match compiled.view.agents.get(agent.as_str()) {
            None => Err(refuse(
                StatusCode::FORBIDDEN,
                "unknown-agent",
                format!("{agent} is not a registered agent"),
            )),
            // A quarantined caller goes on to Cedar, where Ward's built-in
            // quarantine policy confines it (ward-policy/policies/quarantine.cedar).
            Some(a) if !a.is_active() && a.status != "quarantined" => Err(refuse(
                StatusCode::FORBIDDEN,
                "agent-not-active",
                format!("{agent} is {}", a.status),
            )),
            Some(_) => Ok(agent),
        }
    })();
    let agent = match checks {
        Ok(agent) => agent,
        Err(r) => return deny(shared, &mut facts, r, started).await,
    };
    if let Err(wait) = shared.limiter.check(agent.as_str(), Instant::now()) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let r = Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            slug: "rate-limited",
            detail: format!("rate limit for {agent} exceeded; retry in {secs}s"),
            retry_after: Some(secs),
        };
        return deny(shared, &mut facts, r, started).await;
    }
    let limits = shared.config.limits;
    if req.headers().len() > limits.max_headers {
        let r = refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too-many-headers",
            format!("more than {} header fields", limits.max_headers),
        );
        return deny(shared, &mut facts, r, started).await;
    }
    let (mut parts, body) = req.into_parts();
    let upgrade = crate::upgrade::requested(parts.version, &parts.headers);
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("request body larger than {} bytes", limits.max_body_bytes),
        )
    };
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return deny(shared, &mut facts, too_large(), started).await;
    }
    let bytes: Bytes = match Limited::new(body, limits.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return deny(shared, &mut facts, too_large(), started).await;
        }
        Err(e) => {
            let r = refuse(
                StatusCode::BAD_REQUEST,
                "body-unreadable",
                format!("request body could not be read: {e}"),
            );
            return deny(shared, &mut facts, r, started).await;
        }
    };
    facts.body = Some(BodyDigest::of(&bytes));

    // The decision.
    let Some(engine) = &compiled.engine else {
        let r = refuse(
            StatusCode::FORBIDDEN,
            "no-policy",
            "no verified policy bundle is active; push one with `ward policy push`".to_owned(),
        );
        return deny(shared, &mut facts, r, started).await;
    };
    let protocol = fronted.upstream.protocol.unwrap_or_else(|| {
        compiled
            .view
            .agents
            .get(fronted.identity.agent.as_str())
            .and_then(|a| a.attributes.labels.get("protocol"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    });
    let base = base_context(&facts);
    let mut filter = None;
    if protocol != Protocol::Http && parts.method == hyper::Method::POST {
        match crate::rpc_inbound::decide(
            shared,
            engine,
            protocol,
            fronted.identity.agent.as_str(),
            &agent,
            &mut facts,
            &parts.headers,
            &bytes,
            base.clone(),
            started,
        )
        .await
        {
            Ok(list_ids) => {
                if !list_ids.is_empty() {
                    filter = Some(Filter::Answers(
                        Visibility::new(
                            Arc::clone(engine),
                            agent.as_str(),
                            fronted.identity.agent.as_str(),
                            protocol,
                            base,
                        ),
                        list_ids,
                    ));
                }
            }
            Err(resp) => return resp,
        }
    } else {
        let action = match protocol {
            Protocol::A2a
                if parts.method == hyper::Method::GET
                    && crate::rpc::is_agent_card_path(&facts.path) =>
            {
                filter = Some(Filter::Card(Visibility::new(
                    Arc::clone(engine),
                    agent.as_str(),
                    fronted.identity.agent.as_str(),
                    protocol,
                    base.clone(),
                )));
                "agent/card".to_owned()
            }
            Protocol::Mcp if parts.method == hyper::Method::GET => "mcp/stream".to_owned(),
            Protocol::Mcp if parts.method == hyper::Method::DELETE => "mcp/end-session".to_owned(),
            _ => facts.method.clone(),
        };
        facts.action = format!("Action::{action:?}");
        let context = if protocol == Protocol::Http {
            base
        } else {
            base.with("protocol", protocol.as_str())
        };
        let request = match cedar_request(fronted.identity, &agent, &action, context) {
            Ok(r) => r,
            Err(e) => {
                let r = refuse(StatusCode::FORBIDDEN, "bad-request-entity", e);
                return deny(shared, &mut facts, r, started).await;
            }
        };
        let decision = engine.decide(&request);
        record_decision(&mut facts, &decision);
        if !decision.is_allowed() {
            let detail = if facts.reasons.is_empty() {
                format!(
                    "no policy permits {agent} to {} {}",
                    facts.method, facts.path
                )
            } else {
                facts.reasons.join("; ")
            };
            let r = refuse(StatusCode::FORBIDDEN, "denied", detail);
            return deny(shared, &mut facts, r, started).await;
        }
        if let Err(resp) = audit_allowed(shared, &facts).await {
            return resp;
        }
    }
    shared.metrics.decision(started.elapsed().as_secs_f64());
    shared.metrics.request("inbound", "allow", "policy");
    if filter.is_some() {
        // The answer is filtered before the caller sees it: it must arrive
        // in a form the proxy can read.
        parts.headers.remove(header::ACCEPT_ENCODING);
    }

    // Forward.
    http::strip(&mut parts.headers);
    let client_upgrade = match upgrade.clone() {
        Some(value) => {
            crate::upgrade::restore(&mut parts.headers, value);
            crate::upgrade::take(&mut parts.extensions)
        }
        None => None,
    };
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str)
        .to_owned();
    let uri = match format!("http://{}{pq}", fronted.upstream.authority).parse() {
        Ok(uri) => uri,
        Err(e) => {
            return http::problem(
                StatusCode::BAD_GATEWAY,
                "bad-upstream",
                &format!("upstream address {}: {e}", fronted.upstream.authority),
                json!({"decision_id": facts.decision_id}),
            );
        }
    };
    parts.uri = uri;
    parts.version = hyper::Version::HTTP_11;
    let headers = &mut parts.headers;
    if let Ok(v) = HeaderValue::from_str(&fronted.upstream.authority) {
        headers.insert(header::HOST, v);
    }
    if let Ok(v) = HeaderValue::from_str(peer.spiffe_id.as_str()) {
        headers.insert(http::PEER_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&facts.decision_id) {
        headers.insert(http::DECISION_ID, v);
    }
    headers.insert("traceparent", traceparent);
    let forwarded = Request::from_parts(parts, http::full(bytes));
    let upstream_started = Instant::now();
    let result = tokio::time::timeout(
        limits.request_timeout,
        fronted.upstream.client.request(forwarded),
    )
    .await;
    shared
        .metrics
        .upstream(upstream_started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(mut resp)) => {
            let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            let upstream_upgrade = switching
                .then(|| crate::upgrade::take(resp.extensions_mut()))
                .flatten();
            let (mut parts, body) = resp.into_parts();
            let accepted = parts.headers.get(header::UPGRADE).cloned();
            http::strip(&mut parts.headers);
            if let Some(filter) = filter {
                let body = body.map_err(|e| Box::new(e) as http::BoxError).boxed();
                return crate::rpc_inbound::filtered(
                    filter,
                    parts,
                    body,
                    limits.max_body_bytes,
                    &facts.decision_id,
                )
                .await;
            }
            if let (Some(client), Some(upstream), Some(value)) =
                (client_upgrade, upstream_upgrade, accepted)
            {
                crate::upgrade::restore(&mut parts.headers, value);
                // A tunnel outlives its HTTP connection, so it is registered
                // on its own; if the bundle changed meanwhile and no longer
                // verifies the peer, the tunnel never opens (and the
                // upstream's half of it closes with `upstream`).
                let Some(cut) = shared.conns.register(
                    &peer.spiffe_id,
                    agent.as_str(),
                    peer.serial.as_str(),
                    presented,
                    &shared.trust,
                ) else {
                    return refuse_untrusted_upgrade(shared, fronted, peer).await;
                };
                crate::upgrade::splice(
                    client,
                    upstream,
                    Some(cut),
                    format!("{} → {}", peer.spiffe_id, fronted.upstream.authority),
                );
            }
            Response::from_parts(parts, body.map_err(Into::into).boxed())
        }
        Ok(Err(e)) => http::problem(
            StatusCode::BAD_GATEWAY,
            "upstream-unreachable",
            &format!(
                "the local app at {} did not answer: {e}",
                fronted.upstream.authority
            ),
            json!({"decision_id": facts.decision_id}),
        ),
        Err(_) => http::problem(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
            &format!(
                "the local app did not answer within {}s",
                limits.request_timeout.as_secs()
            ),
            json!({"decision_id": facts.decision_id}),
        ),
    }
}

/// The context every inbound decision starts from.
pub(crate) fn base_context(facts: &Facts) -> Context {
    let now = time::OffsetDateTime::now_utc();
    Context::new()
        .with("time", now.unix_timestamp())
        .with("hour", i64::from(now.hour()))
        .with("method", facts.method.as_str())
        .with("path", facts.path.as_str())
        .with("data_labels", Value::Set(Vec::new()))
        .with("risk_score", 0i64)
}

pub(crate) fn cedar_request(
    fronted: &Identity,
    caller: &ward_core::AgentName,
    action: &str,
    context: Context,
) -> Result<ward_policy::Request, String> {
    cedar_request_for(caller, action, ("Agent", fronted.agent.as_str()), context)
}

pub(crate) fn cedar_request_for(
    caller: &ward_core::AgentName,
    action: &str,
    (kind, id): (&str, &str),
    context: Context,
) -> Result<ward_policy::Request, String> {
    let uid = |t: &str, id: &str| ward_policy::json::uid(t, id).map_err(|e| e.to_string());
    Ok(ward_policy::Request::new(
        uid("Agent", caller.as_str())?,
        uid("Action", action)?,
        uid(kind, id)?,
        context,
    ))
}

/// Copies the decision's policies, reasons, errors and version into the
/// audit facts.
pub(crate) fn record_decision(facts: &mut Facts, decision: &ward_policy::Decision) {
    facts.policies = decision
        .policies()
        .iter()
        .map(ToString::to_string)
        .collect();
    facts.reasons = decision.reasons().iter().map(ToString::to_string).collect();
    facts.reasons.extend(
        decision
            .errors()
            .iter()
            .map(|e| format!("policy {} errored: {}", e.policy, e.message)),
    );
    facts.policy_version = decision.policy_version().to_string();
}

/// An upgrade decided under a trust bundle that has since stopped verifying
/// the peer: refused, counted and audited like a cut connection.
async fn refuse_untrusted_upgrade(
    shared: &Shared,
    fronted: Fronted<'_>,
    peer: &PeerIdentity,
) -> Response<Body> {
    let why = "the trust bundle changed and no longer verifies its certificate";
    tracing::warn!(peer = %peer.spiffe_id, "upgrade refused: {why}");
    shared.metrics.connection_cut("untrusted");
    let facts = crate::watcher::cut_facts(
        &format!("Agent::\"{}\"", fronted.identity.agent),
        shared.compiled().policy_version().unwrap_or("none"),
        peer.spiffe_id.clone(),
        peer.serial.as_str().to_owned(),
        why,
    );
    if let Err(e) = shared.audit.write(&facts, false).await {
        shared.metrics.audit_failures.inc();
        tracing::error!(error = %e, "audit record for a refused upgrade not written");
    }
    http::problem(
        StatusCode::FORBIDDEN,
        "untrusted",
        &format!("upgrade refused: {why}; reconnect"),
        json!({"decision_id": facts.decision_id}),
    )
}

/// Writes the record of an allowed call; if it cannot be written and the
/// proxy fails closed, the answer that refuses the call.
pub(crate) async fn audit_allowed(shared: &Shared, facts: &Facts) -> Result<(), Response<Body>> {
    match shared.audit.write(facts, true).await {
        Ok(_) => Ok(()),
        Err(e) => {
            unaudited(shared, facts, &e);
            audit_refusal(shared, &facts.decision_id).map_or(Ok(()), Err)
        }
    }
}

/// [`audit_allowed`] for several allowed decisions at once (a JSON-RPC
/// batch): their records share the spool's group commits. Every unwritten
/// record is counted; the first one refuses the request.
pub(crate) async fn audit_allowed_all(
    shared: &Shared,
    all: &[(Facts, bool)],
) -> Result<(), Response<Body>> {
    let outcomes = shared
        .audit
        .write_all(all.iter().map(|(facts, _)| (facts, true)))
        .await;
    let mut first = None;
    for ((facts, _), outcome) in all.iter().zip(outcomes) {
        if let Err(e) = outcome {
            unaudited(shared, facts, &e);
            first = first.or(Some(&facts.decision_id));
        }
    }
    match first.and_then(|id| audit_refusal(shared, id)) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

/// Counts and logs an allowed decision whose record was not written.
fn unaudited(shared: &Shared, facts: &Facts, error: &str) {
    shared.metrics.audit_failures.inc();
    tracing::error!(error = %error, decision_id = %facts.decision_id, "audit record not written");
}

/// The answer to a request whose decision could not be audited: refused
/// (fail closed), unless configured to forward it anyway.
fn audit_refusal(shared: &Shared, decision_id: &str) -> Option<Response<Body>> {
    if shared.config.audit_full != AuditFull::FailClosed {
        return None;
    }
    shared.metrics.request("inbound", "deny", "audit");
    Some(http::problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit-unavailable",
        "the decision could not be audited, so the request is refused (fail closed)",
        json!({"decision_id": decision_id}),
    ))
}

/// What is done to an allowed call's answer before the caller sees it.
#[derive(Debug)]
pub(crate) enum Filter {
    /// Answers to these request ids keep only what the caller may use:
    /// MCP tool, resource and prompt lists, A2A extended agent cards.
    Answers(Visibility, Vec<(serde_json::Value, crate::rpc::Listing)>),
    /// A2A: the agent card keeps only the skills the caller may use.
    Card(Visibility),
}

/// Why a request is refused before or by policy.
#[derive(Debug)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// Problem type slug and metric reason.
    pub slug: &'static str,
    /// What the caller is told.
    pub detail: String,
    /// For 429.
    pub retry_after: Option<u64>,
}

/// Audits and answers a refusal.
pub(crate) async fn deny(
    shared: &Shared,
    facts: &mut Facts,
    r: Refusal,
    started: Instant,
) -> Response<Body> {
    note_refusal(facts, &r);
    if let Err(e) = shared.audit.write(facts, false).await {
        denial_unaudited(shared, facts, &e);
    }
    count_denial(shared, facts, &r, started);
    let mut resp = http::problem(
        r.status,
        r.slug,
        &r.detail,
        json!({
            "decision_id": facts.decision_id,
            "policies": facts.policies,
        }),
    );
    if let Some(secs) = r.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// [`deny`]'s audit and accounting for several refusals answered together
/// (the calls of a refused JSON-RPC batch): their records share the
/// spool's group commits instead of waiting for one each in turn. The
/// caller builds the one answer.
pub(crate) async fn deny_all(shared: &Shared, all: &mut [(Facts, Refusal)], started: Instant) {
    for (facts, r) in all.iter_mut() {
        note_refusal(facts, r);
    }
    let outcomes = shared
        .audit
        .write_all(all.iter().map(|(facts, _)| (facts, false)))
        .await;
    for ((facts, r), outcome) in all.iter().zip(outcomes) {
        if let Err(e) = outcome {
            denial_unaudited(shared, facts, &e);
        }
        count_denial(shared, facts, r, started);
    }
}

/// A refusal's detail becomes its record's reason, unless policy already
/// gave the reasons of a plain denial.
fn note_refusal(facts: &mut Facts, r: &Refusal) {
    if facts.reasons.is_empty() || r.slug != "denied" {
        facts.reasons.push(r.detail.clone());
    }
}

/// A denial stands whether or not its record is written; the failure is
/// counted and logged.
fn denial_unaudited(shared: &Shared, facts: &Facts, error: &str) {
    shared.metrics.audit_failures.inc();
    tracing::error!(error = %error, decision_id = %facts.decision_id, "audit record for a denial not written");
}

fn count_denial(shared: &Shared, facts: &Facts, r: &Refusal, started: Instant) {
    shared.metrics.decision(started.elapsed().as_secs_f64());
    shared.metrics.request("inbound", "deny", r.slug);
    tracing::info!(
        decision_id = %facts.decision_id,
        principal = facts.principal.as_ref().map(ToString::to_string).unwrap_or_default(),
        action = %facts.action,
        reason = %r.detail,
        "request denied"
    );
}
