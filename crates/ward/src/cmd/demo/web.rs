//! Plain HTTP/1.1 for the demo: the accept loop its in-process apps run
//! on, and the requests its apps send to their proxies' outbound
//! listeners. Every request is bounded in time; the apps stop on the
//! demo's drain signal.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use ward_core::drain::Watch;

/// What the apps answer with: whole bodies, or an endless event stream.
pub(super) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Longest wait for any one answer through the proxies (the proxies' own
/// upstream timeout is 30 s; the demo should fail long before that).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer body read.
const MAX_BODY: usize = 1 << 20;

/// The JSON value at `pointer` (RFC 6901, e.g. `/result/tools/0/name`),
/// or `null`: answers from the network are read without indexing panics.
pub(super) fn at<'v>(value: &'v Value, pointer: &str) -> &'v Value {
    static NULL: Value = Value::Null;
    value.pointer(pointer).unwrap_or(&NULL)
}

/// A whole body.
pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON answer.
pub(super) fn json_response(status: u16, value: &Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Serves `handle` on `listener` until `watch` signals; open connections
/// (an event stream, say) are dropped then, so the drain completes.
pub(super) async fn serve<F, Fut>(listener: TcpListener, watch: Watch, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let stop = watch.clone().signaled();
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: back off
                    // instead of spinning.
                    tracing::warn!(error = %e, "demo app: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        let watch = watch.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = conn => {}
                _release = watch.signaled() => {}
            }
        });
    }
}

/// An answer read whole.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header as text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `req` on a new connection to `addr` and starts the answer; the
/// body is left to the caller (it may be an endless stream).
pub(super) async fn open(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<Response<Incoming>> {
    let exchange = async {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .with_context(|| format!("HTTP handshake with {addr}"))?;
        // The connection task ends when the answer is read or dropped.
        tokio::spawn(conn);
        sender
            .send_request(req)
            .await
            .with_context(|| format!("request to {addr}"))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| {
            format!(
                "no answer from {addr} within {}s",
                REQUEST_TIMEOUT.as_secs()
            )
        })?
}

/// Sends `req` to `addr` and reads the whole answer.
pub(super) async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
    let resp = open(addr, req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(
        REQUEST_TIMEOUT,
        Limited::new(resp.into_body(), MAX_BODY).collect(),
    )
    .await
    .with_context(|| format!("the answer from {addr} did not end"))?
    .map_err(|e| anyhow::anyhow!("reading the answer from {addr}: {e}"))?
    .to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// `method path` for agent `target`, with `headers`, and an optional JSON
/// body.
pub(super) fn request(
    method: &str,
    target: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, target);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = match body {
        Some(v) => {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    req.body(Full::new(bytes))
        .with_context(|| format!("building {method} {path} for {target}"))
}
