//! The outbound listener: the local app's only way out. Plain HTTP/1.1 or
//! HTTP/2 (prior knowledge) on loopback; the target agent is named by the
//! `ward-target` header, an absolute-form URI (so `HTTP_PROXY` works with
//! unmodified code) or `Host`. A target that is not a registered, active
//! agent is refused here; everything else goes over one pooled HTTP/2 mTLS
//! connection per target proxy, presenting this agent's SVID and accepting
//! only the target's SPIFFE ID.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use ward_core::AgentName;
use ward_core::drain::Watch;
use ward_identity::verify::ExactIds;

use crate::Shared;
use crate::audit::Facts;
use crate::http::{self, Body};
use crate::view::View;

/// Longest TCP + TLS + HTTP/2 setup to a peer proxy.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Pooled HTTP/2 connections to other proxies, one per target agent.
#[derive(Debug, Default)]
pub struct Pool {
    conns: Mutex<HashMap<String, PeerConn>>,
    /// Serialises dialing so a burst opens one connection, not hundreds.
    dialing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct PeerConn {
    sender: SendRequest<Body>,
    endpoint: String,
    generation: u64,
}

impl Pool {
    fn pooled(&self, target: &str, endpoint: &str, generation: u64) -> Option<SendRequest<Body>> {
        let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        conns
            .get(target)
            .filter(|c| {
                c.endpoint == endpoint && c.generation == generation && !c.sender.is_closed()
            })
            .map(|c| c.sender.clone())
    }

    async fn get(
        &self,
        shared: &Shared,
        target: &AgentName,
        endpoint: &str,
    ) -> Result<SendRequest<Body>, String> {
        // Connections made with an SVID that has since rotated are not
        // reused: the peer would otherwise keep seeing an old certificate
        // until it expires.
        let generation = shared.identity.generation();
        if let Some(sender) = self.pooled(target.as_str(), endpoint, generation) {
            return Ok(sender);
        }
        let _dialing = self.dialing.lock().await;
        if let Some(sender) = self.pooled(target.as_str(), endpoint, generation) {
            return Ok(sender);
        }
        let sender = tokio::time::timeout(DIAL_TIMEOUT, dial(shared, target, endpoint))
            .await
            .map_err(|_| format!("connecting to {endpoint} timed out"))??;
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                target.as_str().to_owned(),
                PeerConn {
                    sender: sender.clone(),
                    endpoint: endpoint.to_owned(),
                    generation,
                },
            );
        Ok(sender)
    }

    fn forget(&self, target: &str) {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(target);
    }

    /// Drops every pooled connection; returns how many. Streams already
    /// running on them finish; the next call to each target dials anew.
    pub fn evict_all(&self) -> usize {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let n = conns.len();
        conns.clear();
        n
    }

    /// Drops connections to targets `view` no longer admits (or that moved);
    /// returns how many. In-flight streams on them end.
    pub fn evict(&self, view: &View) -> usize {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let before = conns.len();
        let revoked: HashSet<&str> = view.revoked_agents.iter().map(String::as_str).collect();
        conns.retain(|target, c| {
            !revoked.contains(target.as_str())
                && view
                    .agents
                    .get(target)
                    .is_some_and(|a| a.is_active() && a.endpoint.as_deref() == Some(&c.endpoint))
        });
        before - conns.len()
    }
}

/// TCP + mutual TLS to `target`'s proxy, accepting only its SPIFFE ID.
async fn connect_tls(
    shared: &Shared,
    target: &AgentName,
    endpoint: &str,
    alpn: &[u8],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let td = shared.identity.spiffe_id.trust_domain();
    let expected = td.agent_id(target);
    let mut config = ward_identity::tls::client_config(
        Arc::clone(&shared.identity.resolver),
        Arc::clone(&shared.trust),
        Arc::new(ExactIds(HashSet::from([expected]))),
    )
    .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(endpoint)
        .await
        .map_err(|e| format!("connecting to {endpoint}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    // The SPIFFE ID, not the name, identifies the peer; SNI carries the
    // agent name for gateways that front several agents.
    let name = ServerName::try_from(target.as_str().to_owned())
        .or_else(|_| ServerName::try_from("ward-peer"))
        .map_err(|e| e.to_string())?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("mTLS with {target} at {endpoint}: {e}"))
}

async fn dial(
    shared: &Shared,
    target: &AgentName,
    endpoint: &str,
) -> Result<SendRequest<Body>, String> {
    let tls = connect_tls(shared, target, endpoint, b"h2").await?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP/2 with {target}: {e}"))?;
    let target = target.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%target, error = %e, "peer connection ended");
        }
    });
    Ok(sender)
}

/// An upgrade (WebSocket) request on its own HTTP/1.1 mTLS connection.
async fn send_upgrade(
    shared: &Shared,
    target: &AgentName,
    endpoint: &str,
    req: Request<Body>,
) -> Result<Response<Incoming>, String> {
    let tls = tokio::time::timeout(
        DIAL_TIMEOUT,
        connect_tls(shared, target, endpoint, b"http/1.1"),
    )
    .await
    .map_err(|_| format!("connecting to {endpoint} timed out"))??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP/1.1 with {target}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("{target}'s proxy failed the upgrade: {e}"))
}

/// Serves the local app until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, watch: Watch) {
    let shutdown = watch.clone().signaled();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "outbound accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let watch = watch.clone();
        tokio::spawn(async move {
            let svc_shared = Arc::clone(&shared);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = Arc::clone(&svc_shared);
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
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
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            let drained = watch.signaled();
            tokio::pin!(drained);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "outbound connection ended with an error");
                    }
                }
                guard = &mut drained => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                    drop(guard);
                }
            }
        });
    }
}

/// The agent a request is for: `ward-target`, else the URI's authority
/// (absolute form, HTTP/2 `:authority`), else `Host`; ports are ignored.
pub fn target_of(req: &Request<Incoming>) -> Result<AgentName, String> {
    let raw = req
        .headers()
        .get(http::TARGET)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().host().map(str::to_owned))
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_owned())
        })
        .ok_or(
            "name the target agent with the ward-target header, Host, or an absolute http:// URI",
        )?;
    AgentName::new(raw.trim()).map_err(|e| format!("target {raw:?} is not an agent name: {e}"))
}

/// One request from the local app.
pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    if req.method() == Method::CONNECT {
        shared.metrics.request("outbound", "deny", "connect-method");
        return http::problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "connect-unsupported",
            "CONNECT tunnels are not supported: call agents with plain http:// through this proxy; Ward adds mutual TLS between proxies",
            json!({}),
        );
    }
    let target = match target_of(&req) {
        Ok(t) => t,
        Err(e) => {
            shared.metrics.request("outbound", "deny", "no-target");
            return http::problem(StatusCode::BAD_REQUEST, "no-target", &e, json!({}));
        }
    };
    let compiled = shared.compiled();
    let view = &compiled.view;
    let mut facts = Facts {
        decision_id: http::decision_id(),
        principal: Some(shared.identity.spiffe_id.clone()),
        action: format!("Action::\"{}\"", req.method()),
        resource: format!("Agent::\"{target}\""),
        policy_version: compiled.policy_version().unwrap_or("none").to_owned(),
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        ..Facts::default()
    };
    let refusal = if shared.identity.expired(crate::now_secs()) {
        Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "proxy-certificate-expired",
            "this proxy's certificate expired without renewal; it fails closed until re-enrolled"
                .to_owned(),
        ))
    } else {
        match view.agents.get(target.as_str()) {
            None => Some((
                StatusCode::FORBIDDEN,
                "unknown-target",
                format!(
                    "{target} is not a registered agent; register it with `ward agent register {target}`"
                ),
            )),
            Some(_) if view.revoked_agents.contains(target.as_str()) => Some((
                StatusCode::FORBIDDEN,
                "target-revoked",
                format!("{target} is revoked"),
            )),
            Some(a) if !a.is_active() => Some((
                StatusCode::FORBIDDEN,
                "target-not-active",
                format!("{target} is {}", a.status),
            )),
            Some(a) if a.endpoint.is_none() => Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "target-not-enrolled",
                format!("{target} has no proxy endpoint yet (its proxy has not enrolled)"),
            )),
            Some(_) => None,
        }
    };
    if let Some((status, slug, detail)) = refusal {
        facts.reasons.push(detail.clone());
        if let Err(e) = shared.audit.write(&facts, false).await {
            shared.metrics.audit_failures.inc();
            tracing::error!(error = %e, "audit record for an outbound refusal not written");
        }
        shared.metrics.request("outbound", "deny", slug);
        return http::problem(
            status,
            slug,
            &detail,
            json!({"decision_id": facts.decision_id}),
        );
    }
    let endpoint = view
        .agents
        .get(target.as_str())
        .and_then(|a| a.endpoint.clone())
        .unwrap_or_default();

    let (_, traceparent) = http::trace(req.headers());
    let (mut parts, body) = req.into_parts();
    let upgrade = crate::upgrade::requested(parts.version, &parts.headers);
    http::strip(&mut parts.headers);
    parts.headers.insert("traceparent", traceparent);
    if let Some(value) = upgrade {
        return upgrade_through(shared, &target, &endpoint, parts, body, value).await;
    }
    parts.headers.remove(header::HOST);
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str)
        .to_owned();
    parts.uri = match format!("https://{target}{pq}").parse() {
        Ok(uri) => uri,
        Err(e) => {
            return http::problem(
                StatusCode::BAD_REQUEST,
                "bad-uri",
                &e.to_string(),
                json!({}),
            );
        }
    };
    parts.version = hyper::Version::HTTP_2;
    let forwarded = Request::from_parts(parts, body.map_err(Into::into).boxed());
    let mut sender = match shared.peers.get(shared, &target, &endpoint).await {
        Ok(s) => s,
        Err(e) => {
            shared
                .metrics
                .request("outbound", "error", "peer-unreachable");
            return http::problem(
                StatusCode::BAD_GATEWAY,
                "peer-unreachable",
                &format!("cannot reach {target}'s proxy: {e}"),
                json!({}),
            );
        }
    };
    let result = tokio::time::timeout(
        shared.config.limits.request_timeout,
        sender.send_request(forwarded),
    )
    .await;
    shared.metrics.upstream(started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(resp)) => {
            shared.metrics.request("outbound", "forwarded", "ok");
            let (mut parts, body) = resp.into_parts();
            http::strip(&mut parts.headers);
            Response::from_parts(parts, body.map_err(Into::into).boxed())
        }
        Ok(Err(e)) => {
            shared.peers.forget(target.as_str());
            shared.metrics.request("outbound", "error", "peer-failed");
            http::problem(
                StatusCode::BAD_GATEWAY,
                "peer-failed",
                &format!("{target}'s proxy failed the request: {e}"),
                json!({}),
            )
        }
        Err(_) => http::problem(
            StatusCode::GATEWAY_TIMEOUT,
            "peer-timeout",
            &format!(
                "{target} did not answer within {}s",
                shared.config.limits.request_timeout.as_secs()
            ),
            json!({}),
        ),
    }
}

/// Forwards an upgrade request and, on `101`, splices the app's connection
/// with the tunnel to the target's proxy.
async fn upgrade_through(
    shared: &Shared,
    target: &AgentName,
    endpoint: &str,
    mut parts: hyper::http::request::Parts,
    body: Incoming,
    value: HeaderValue,
) -> Response<Body> {
    let client_upgrade = crate::upgrade::take(&mut parts.extensions);
    crate::upgrade::restore(&mut parts.headers, value);
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str)
        .to_owned();
    parts.uri = match pq.parse() {
        Ok(uri) => uri,
        Err(e) => {
            return http::problem(
                StatusCode::BAD_REQUEST,
                "bad-uri",
                &format!("{e}"),
                json!({}),
            );
        }
    };
    if let Ok(host) = HeaderValue::from_str(target.as_str()) {
        parts.headers.insert(header::HOST, host);
    }
    let req = Request::from_parts(parts, body.map_err(Into::into).boxed());
    match send_upgrade(shared, target, endpoint, req).await {
        Ok(mut resp) => {
            shared.metrics.request("outbound", "forwarded", "upgrade");
            let tunnel = (resp.status() == StatusCode::SWITCHING_PROTOCOLS)
                .then(|| crate::upgrade::take(resp.extensions_mut()))
                .flatten();
            let (mut parts, body) = resp.into_parts();
            let accepted = parts.headers.get(header::UPGRADE).cloned();
            http::strip(&mut parts.headers);
            if let (Some(client), Some(tunnel), Some(value)) = (client_upgrade, tunnel, accepted) {
                crate::upgrade::restore(&mut parts.headers, value);
                crate::upgrade::splice(client, tunnel, None, format!("app → {target}"));
            }
            Response::from_parts(parts, body.map_err(Into::into).boxed())
        }
        Err(e) => {
            shared
                .metrics
                .request("outbound", "error", "peer-unreachable");
            http::problem(StatusCode::BAD_GATEWAY, "peer-unreachable", &e, json!({}))
        }
    }
}
