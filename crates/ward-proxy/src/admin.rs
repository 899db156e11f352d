//! The admin listener (loopback by default): `/healthz` (the process is
//! up), `/readyz` (it can enforce: unexpired SVID and an applied view),
//! `/metrics` (Prometheus text format), and the AuthZEN 1.0 endpoints
//! (`POST /access/v1/evaluation`, `POST /access/v1/evaluations`,
//! `GET /.well-known/authzen-configuration`) answered by this proxy's own
//! engine — the bundle and registry it enforces, so a local PEP (the app,
//! an MCP server deciding per tool) asks without a network hop and gets the
//! answer the proxy would give. No bundle active yet: 503, never a guess.
//! Each AuthZEN decision is spooled for the audit log (principal: none, the
//! asker is local; first reason: the subject) before it is answered.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use ward_audit::record::BodyDigest;
use ward_core::drain::Watch;
use ward_policy::authzen;

use crate::audit::Facts;
use crate::http::{self, Body};
use crate::{Shared, now_secs};

/// Serves until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, watch: Watch) {
    let shutdown = watch.signaled();
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(route(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Largest AuthZEN request body accepted.
const MAX_AUTHZEN_BODY: usize = 1 << 20;

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, path @ ("/access/v1/evaluation" | "/access/v1/evaluations")) => {
            let batch = path.ends_with('s');
            return authzen(shared, req, batch).await;
        }
        (_, "/.well-known/authzen-configuration") => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            return text(
                StatusCode::OK,
                "application/json",
                ward_policy::authzen::configuration("http", host).to_string(),
            );
        }
        _ => {}
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => {
            let compiled = shared.compiled();
            let ready = shared.ready();
            let body = json!({
                "ready": ready,
                "agent": shared.identity.spiffe_id.as_str(),
                "revision": compiled.view.revision,
                "policy_version": compiled.policy_version(),
                "certificate_expires_in_secs": shared.identity.not_after() - now_secs(),
            });
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, "application/json", body.to_string())
        }
        "/metrics" => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.render(),
        ),
        path => http::problem(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!(
                "{path}: the admin listener serves /healthz, /readyz, /metrics and AuthZEN (POST /access/v1/evaluation[s])"
            ),
            json!({}),
        ),
    }
}

/// One AuthZEN request, decided by the engine in force.
async fn authzen(shared: &Shared, req: Request<Incoming>, batch: bool) -> Response<Body> {
    let request_id = req.headers().get("x-request-id").cloned();
    let body = match Limited::new(req.into_body(), MAX_AUTHZEN_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return http::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                &format!("AuthZEN request body: {e} (at most {MAX_AUTHZEN_BODY} bytes)"),
                json!({}),
            );
        }
    };
    let compiled = shared.compiled();
    let Some(engine) = compiled.engine.as_ref() else {
        return http::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-policy",
            "no verified policy bundle is active on this proxy yet; it denies everything until one is",
            json!({}),
        );
    };
    // Each decision is recorded in the spool like an inbound one before it
    // is answered; the PDP asks for the id right after deciding. Every
    // decision of a batch records the digest of the one body.
    let body_sha256 = BodyDigest::of(&body);
    let (result, made) = {
        let made: std::cell::RefCell<Vec<(Facts, bool)>> = std::cell::RefCell::default();
        let path = if batch {
            "/access/v1/evaluations"
        } else {
            "/access/v1/evaluation"
        };
        let decide = |request: &ward_policy::Request| {
            let decision = engine.decide(request);
            let mut facts = Facts {
                action: request.action.to_string(),
                resource: request.resource.to_string(),
                method: "POST".to_owned(),
                path: path.to_owned(),
                body: Some(body_sha256),
                ..Facts::default()
            };
            crate::inbound::record_decision(&mut facts, &decision);
            facts
                .reasons
                .insert(0, format!("AuthZEN subject {}", request.principal));
            made.borrow_mut().push((facts, decision.is_allowed()));
            decision
        };
        let decision_id = || {
            let id = http::decision_id();
            if let Some((last, _)) = made.borrow_mut().last_mut() {
                last.decision_id.clone_from(&id);
            }
            id
        };
        let pdp = authzen::Pdp {
            schema: engine.schema(),
            decide: &decide,
            decision_id: &decision_id,
        };
        let result = if batch {
            authzen::parse::<authzen::Evaluations>(&body)
                .and_then(|b| authzen::evaluate_batch(&pdp, &b))
        } else {
            authzen::parse::<authzen::Evaluation>(&body).and_then(|e| authzen::evaluate(&pdp, &e))
        };
        (result, made.into_inner())
    };
    let outcomes = shared
        .audit
        .write_all(made.iter().map(|(facts, allowed)| (facts, *allowed)))
        .await;
    // Every unwritten record is counted and logged, then the first one
    // refuses the answer.
    let mut unaudited = None;
    for ((facts, _), outcome) in made.iter().zip(outcomes) {
        if let Err(e) = outcome {
            shared.metrics.audit_failures.inc();
            tracing::error!(error = %e, decision_id = %facts.decision_id, "AuthZEN decision not audited");
            unaudited = unaudited.or(Some(&facts.decision_id));
        }
    }
    if let Some(decision_id) = unaudited
        && shared.config.audit_full == crate::config::AuditFull::FailClosed
    {
        return http::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-unavailable",
            "the decision could not be audited, so it is not answered (fail closed)",
            json!({"decision_id": decision_id}),
        );
    }
    let mut resp = match result {
        Ok(value) => {
            tracing::debug!(answer = %value, "AuthZEN decision");
            text(StatusCode::OK, "application/json", value.to_string())
        }
        Err(message) => http::problem(StatusCode::BAD_REQUEST, "bad-request", &message, json!({})),
    };
    if let Some(id) = request_id {
        resp.headers_mut().insert("x-request-id", id);
    }
    resp
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(http::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
