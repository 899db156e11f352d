//! The admin listener (loopback by default): `/healthz` (the process is
//! up), `/readyz` (it can enforce: unexpired SVID and an applied view) and
//! `/metrics` (Prometheus text format).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use ward_core::drain::Watch;

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
                async move { Ok::<_, Infallible>(route(&shared, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
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
            &format!("{path}: the admin listener serves /healthz, /readyz and /metrics"),
            json!({}),
        ),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(http::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
