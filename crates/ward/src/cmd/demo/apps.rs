//! The demo's agents' apps, in process on loopback, each behind its own
//! proxy and knowing nothing of keys or certificates:
//!
//! - `tools`: a small MCP server (streamable HTTP, `POST /mcp` JSON-RPC,
//!   `GET /mcp` an event stream) with the tools `search`, `summarize` and
//!   `delete_records`. It keeps a log of everything that reached it, so
//!   the demo can show that a denied call never did.
//! - `researcher`: an HTTP app that answers the planner and, to answer
//!   `/research`, calls the tool server through its own proxy.
//!
//! The planner's app is the demo driver itself; a stand-in answers behind
//! the planner's proxy, which no policy lets anyone reach.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use ward_core::drain;

use super::web::{self, Body, Reply, at};

/// How often the tool server's event stream emits.
const EVENT_EVERY: Duration = Duration::from_millis(100);
/// The MCP session the tool server hands out (one client in the demo).
const SESSION: &str = "demo-session-1";
/// Largest request body the apps read.
const MAX_REQUEST: usize = 1 << 20;

/// The apps, running.
#[derive(Debug)]
pub(super) struct Apps {
    /// The tool server's address (its proxy's upstream).
    pub(super) tools: SocketAddr,
    /// The researcher app's address.
    pub(super) researcher: SocketAddr,
    /// The planner's app address. The planner's real app is the demo
    /// driver; this stand-in only answers if a policy ever lets someone
    /// call the planner (none does).
    pub(super) planner: SocketAddr,
    /// What reached the tool server.
    pub(super) tool_log: Arc<ToolLog>,
    /// The researcher's proxy's outbound listener, once it runs (the app
    /// starts first: its proxy needs the app's address).
    pub(super) researcher_outbound: Arc<OnceLock<SocketAddr>>,
    trigger: drain::Trigger,
}

impl Apps {
    /// Binds the apps on free loopback ports and serves them.
    pub(super) async fn start() -> anyhow::Result<Self> {
        let (trigger, watch) = drain::channel();
        let tools_l = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the tool server")?;
        let researcher_l = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the researcher app")?;
        let planner_l = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the planner app")?;
        let tools = tools_l.local_addr().context("the tool server's address")?;
        let planner = planner_l
            .local_addr()
            .context("the planner app's address")?;
        let researcher = researcher_l
            .local_addr()
            .context("the researcher app's address")?;
        let tool_log = Arc::new(ToolLog::default());
        let researcher_outbound = Arc::new(OnceLock::new());

        let log = Arc::clone(&tool_log);
        tokio::spawn(web::serve(tools_l, watch.clone(), move |req| {
            tool_server(req, Arc::clone(&log))
        }));
        let outbound = Arc::clone(&researcher_outbound);
        tokio::spawn(web::serve(researcher_l, watch.clone(), move |req| {
            researcher_app(req, Arc::clone(&outbound))
        }));
        tokio::spawn(web::serve(planner_l, watch, |_req| async {
            web::json_response(200, &json!({"agent": "planner"}))
        }));
        Ok(Self {
            tools,
            researcher,
            planner,
            tool_log,
            researcher_outbound,
            trigger,
        })
    }

    /// Stops the apps, dropping open connections.
    pub(super) async fn stop(self, deadline: Duration) -> drain::Outcome {
        self.trigger.drain(deadline).await
    }
}

/// One request that reached the tool server.
#[derive(Debug, Clone)]
pub(super) struct Received {
    /// The JSON-RPC method, or `GET`/`DELETE` for the stream and session.
    pub(super) method: String,
    /// The tool, for `tools/call`.
    pub(super) tool: Option<String>,
    /// The `ward-decision-id` the tool server's proxy set.
    pub(super) decision_id: Option<String>,
}

/// The tool server's own bookkeeping: the demo's evidence of what got
/// through, independent of Ward's.
#[derive(Debug, Default)]
pub(super) struct ToolLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    received: Vec<Received>,
    events_sent: u64,
    streams_opened: u64,
    streams_closed: u64,
}

impl ToolLog {
    fn with<T>(&self, f: impl FnOnce(&mut LogInner) -> T) -> T {
        // A panic elsewhere cannot leave the log half-written: every
        // update is a single push or increment.
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Everything that reached the tool server, in order.
    pub(super) fn received(&self) -> Vec<Received> {
        self.with(|l| l.received.clone())
    }

    /// How many `tools/call` of `tool` reached the tool server.
    pub(super) fn calls_of(&self, tool: &str) -> usize {
        self.with(|l| {
            l.received
                .iter()
                .filter(|r| r.method == "tools/call" && r.tool.as_deref() == Some(tool))
                .count()
        })
    }

    /// Event streams opened and closed (dropped by a cut connection too).
    pub(super) fn streams(&self) -> (u64, u64) {
        self.with(|l| (l.streams_opened, l.streams_closed))
    }

    /// Stream events written.
    pub(super) fn events_sent(&self) -> u64 {
        self.with(|l| l.events_sent)
    }
}

/// The tools every caller could see without Ward.
pub(super) fn tool_catalogue() -> Value {
    let schema = |field: &str| json!({"type": "object", "properties": {field: {"type": "string"}}, "required": [field]});
    json!([
        {"name": "search", "description": "Search the research index (read-only)", "inputSchema": schema("query")},
        {"name": "summarize", "description": "Summarize a document", "inputSchema": schema("text")},
        {"name": "delete_records", "description": "Delete records older than a date (destructive)", "inputSchema": schema("older_than")},
    ])
}

async fn tool_server(req: Request<Incoming>, log: Arc<ToolLog>) -> Response<Body> {
    let decision_id = req
        .headers()
        .get(ward_proxy::http::DECISION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match *req.method() {
        Method::GET => {
            log.with(|l| {
                l.received.push(Received {
                    method: "GET".to_owned(),
                    tool: None,
                    decision_id,
                });
                l.streams_opened += 1;
            });
            let stream = EventStream {
                interval: tokio::time::interval(EVENT_EVERY),
                n: 0,
                log,
            };
            let mut resp = Response::new(stream.boxed_unsync());
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/event-stream"),
            );
            resp
        }
        Method::DELETE => {
            log.with(|l| {
                l.received.push(Received {
                    method: "DELETE".to_owned(),
                    tool: None,
                    decision_id,
                });
            });
            web::json_response(200, &json!({}))
        }
        Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return web::json_response(400, &json!({"error": "unreadable body"})),
            };
            let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let method = at(&message, "/method").as_str().unwrap_or("").to_owned();
            let tool = at(&message, "/params/name").as_str().map(str::to_owned);
            log.with(|l| {
                l.received.push(Received {
                    method: method.clone(),
                    tool: tool.clone(),
                    decision_id,
                });
            });
            answer(&message, &method, tool.as_deref())
        }
        _ => web::json_response(405, &json!({"error": "method not allowed"})),
    }
}

/// The tool server's answer to one JSON-RPC message.
fn answer(message: &Value, method: &str, tool: Option<&str>) -> Response<Body> {
    let id = message.get("id").cloned();
    let Some(id) = id else {
        // A notification: accepted, no answer (MCP streamable HTTP).
        let mut resp = Response::new(web::full(Bytes::new()));
        *resp.status_mut() = hyper::StatusCode::ACCEPTED;
        return resp;
    };
    let args = at(message, "/params/arguments");
    let arg = |k: &str| args[k].as_str().unwrap_or("").to_owned();
    let result = match (method, tool) {
        ("initialize", _) => Ok(json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "demo-tools", "version": "1.0.0"},
        })),
        ("ping", _) => Ok(json!({})),
        ("tools/list", _) => Ok(json!({"tools": tool_catalogue()})),
        ("tools/call", Some("search")) => Ok(text(format!(
            "3 results for {:?}: SPIFFE identities, Cedar policies, Merkle audit logs",
            arg("query")
        ))),
        ("tools/call", Some("summarize")) => Ok(text(format!(
            "summary of {} characters: agents should prove who they are on every call",
            arg("text").len()
        ))),
        ("tools/call", Some("delete_records")) => Ok(text(format!(
            "deleted every record older than {}",
            arg("older_than")
        ))),
        ("tools/call", _) => Err((-32602, "unknown tool")),
        _ => Err((-32601, "method not found")),
    };
    let body = match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    };
    let mut resp = web::json_response(200, &body);
    if method == "initialize" {
        resp.headers_mut().insert(
            "mcp-session-id",
            hyper::header::HeaderValue::from_static(SESSION),
        );
    }
    resp
}

fn text(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

/// The tool server's event stream: a progress notification every
/// [`EVENT_EVERY`], for ever — until the connection is cut.
struct EventStream {
    interval: tokio::time::Interval,
    n: u64,
    log: Arc<ToolLog>,
}

impl hyper::body::Body for EventStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.interval.poll_tick(cx) {
            Poll::Ready(_) => {
                self.n += 1;
                self.log.with(|l| l.events_sent += 1);
                let message = json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {"progressToken": "index", "progress": self.n, "message": "indexing sources"},
                });
                let event = format!("event: message\nid: {}\ndata: {message}\n\n", self.n);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // Dropped when the connection carrying it closes: the tool
        // server's own record that the stream was cut.
        self.log.with(|l| l.streams_closed += 1);
    }
}

/// A JSON-RPC request through `outbound` (an agent's proxy) to the MCP
/// server of agent `target`, as an MCP client sends it.
pub(super) fn rpc_request(
    target: &str,
    method: &str,
    params: &Value,
    id: Option<u64>,
    session: Option<&str>,
) -> anyhow::Result<Request<http_body_util::Full<Bytes>>> {
    let mut message = json!({"jsonrpc": "2.0", "method": method, "params": params});
    if let (Some(id), Some(m)) = (id, message.as_object_mut()) {
        m.insert("id".to_owned(), json!(id));
    }
    let mut headers = vec![("accept", "application/json, text/event-stream")];
    if let Some(s) = session {
        headers.push(("mcp-session-id", s));
    }
    web::request("POST", target, "/mcp", &headers, Some(&message))
}

/// The researcher's app: answers whoever its proxy let through, saying
/// who that was (the proxy-verified `ward-peer-id`); `/research` also asks
/// the tool server, through the researcher's own proxy.
async fn researcher_app(
    req: Request<Incoming>,
    outbound: Arc<OnceLock<SocketAddr>>,
) -> Response<Body> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let caller = header(ward_proxy::http::PEER_ID);
    let decision_id = header(ward_proxy::http::DECISION_ID);
    let mut answer = json!({
        "agent": "researcher",
        "caller": caller,
        "decision_id": decision_id,
    });
    if req.uri().path() == "/research" {
        let topic = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("topic=")))
            .unwrap_or("agents")
            .replace('+', " ");
        let finding = match research(&outbound, &topic).await {
            Ok(finding) => json!(finding),
            Err(e) => json!(format!("the tool server could not be asked: {e:#}")),
        };
        if let Some(a) = answer.as_object_mut() {
            a.insert("finding".to_owned(), finding);
        }
    }
    web::json_response(200, &answer)
}

/// `tools/call search` through the researcher's proxy.
async fn research(outbound: &OnceLock<SocketAddr>, topic: &str) -> anyhow::Result<String> {
    let addr = outbound
        .get()
        .context("the researcher's proxy is not running yet")?;
    let reply: Reply = web::send(
        *addr,
        rpc_request(
            "tools",
            "tools/call",
            &json!({"name": "search", "arguments": {"query": topic}}),
            Some(1),
            None,
        )?,
    )
    .await?;
    let answer = reply.json();
    at(&answer, "/result/content/0/text")
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("HTTP {}: {answer}", reply.status))
}
