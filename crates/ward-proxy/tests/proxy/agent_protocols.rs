//! MCP and A2A through two real proxies, spoken as raw JSON-RPC so every
//! refusal case can be sent exactly: per-tool and per-skill decisions,
//! JSON-RPC denials, whole-body refusal of mixed batches and ambiguous
//! bodies (each audited, none reaching the app), and filtered discovery in
//! JSON and SSE answers. The real SDK clients run in `sdk.rs`.

use std::sync::Mutex;

use super::*;

const MCP_POLICY: &str = r#"
@id("mcp-session")
@reason("a may open MCP sessions with b and list its tools")
permit(
  principal == Agent::"a",
  action in [Action::"initialize", Action::"server/discover", Action::"mcp/notification", Action::"tools/list", Action::"ping",
             Action::"resources/list", Action::"prompts/list"],
  resource == Agent::"b"
);

@id("low-risk-tools")
@reason("b's tools up to risk 1 are open to a")
permit(principal == Agent::"a", action == Action::"tools/call", resource is Tool in Agent::"b")
when { resource has risk && resource.risk <= 1 };

@id("no-users-table")
@reason("nobody touches the users table")
forbid(principal, action == Action::"tools/call", resource)
when { context has arguments && context.arguments.contains("table=users") };

@id("public-file")
permit(principal == Agent::"a", action == Action::"resources/read", resource == Resource::"b/file:///public.txt");

@id("greeting-prompt")
permit(principal == Agent::"a", action == Action::"prompts/get", resource == Agent::"b")
when { context has target && context.target == "greet" };

@id("a2a-card")
permit(
  principal == Agent::"a",
  action in [Action::"agent/card", Action::"agent/getAuthenticatedExtendedCard"],
  resource == Agent::"b"
);

@id("summaries")
@reason("a may ask b for summaries")
permit(principal == Agent::"a", action == Action::"message/send", resource == Skill::"b/summarize");
"#;

/// What the fake app received.
type Seen = Arc<Mutex<Vec<Bytes>>>;

/// A stand-in MCP and A2A server that records every body it is sent:
/// `tools/list` answers three tools (as SSE on `/mcp-sse`), `tools/call`
/// echoes the tool, the agent card lists two skills, A2A messages echo.
async fn protocol_app(seen: Seen) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(body.clone());
                        let (content_type, out) = answer(&path, &body);
                        let mut resp = Response::new(
                            Full::new(Bytes::from(out))
                                .map_err(|e: Infallible| match e {})
                                .boxed(),
                        );
                        resp.headers_mut()
                            .insert("content-type", content_type.parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

fn card() -> Value {
    json!({
        "name": "b", "url": "http://b/",
        "skills": [{"id": "summarize", "name": "Summarize"}, {"id": "wire_funds", "name": "Wire funds"}],
    })
}

fn answer(path: &str, body: &[u8]) -> (&'static str, String) {
    if path == "/.well-known/agent-card.json" {
        return ("application/json", card().to_string());
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let one = |m: &Value| {
        let result = match m["method"].as_str() {
            Some("tools/list") => json!({"tools": [
                {"name": "search", "inputSchema": {"type": "object"}},
                {"name": "delete_records", "inputSchema": {"type": "object"}},
                {"name": "echo", "inputSchema": {"type": "object"}},
            ]}),
            Some("tools/call") => {
                json!({"content": [{"type": "text", "text": format!("called {}", m["params"]["name"])}]})
            }
            Some("SendMessage") => json!({"message": {"parts": [{"text": "done"}]}}),
            Some("GetExtendedAgentCard") => card(),
            Some("resources/list") => json!({"resources": [
                {"uri": "file:///public.txt", "name": "public"},
                {"uri": "file:///etc/shadow", "name": "shadow"},
            ]}),
            Some("prompts/list") => json!({"prompts": [{"name": "greet"}, {"name": "exfiltrate"}]}),
            _ => json!({}),
        };
        json!({"jsonrpc": "2.0", "id": m["id"], "result": result})
    };
    let out = match &request {
        Value::Array(items) => Value::Array(items.iter().map(one).collect()),
        m => one(m),
    };
    if path == "/mcp-sse" {
        (
            "text/event-stream",
            format!(": keep-alive\n\nevent: message\nid: 7\ndata: {out}\n\n"),
        )
    } else {
        ("application/json", out.to_string())
    }
}

/// POSTs `body` through `proxy`'s outbound listener to agent `target`.
async fn post(
    proxy: &Proxy,
    target: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Bytes) {
    post_with(proxy, target, path, content_type, &[], body).await
}

/// POSTs `message` as JSON to agent b through `proxy`; the answer as JSON
/// (`Null` if it is not JSON).
async fn send_json(
    proxy: &Proxy,
    path: &str,
    message: &impl serde::Serialize,
) -> (u16, hyper::HeaderMap, Value) {
    let body = serde_json::to_vec(message).unwrap();
    let (status, headers, out) = post(proxy, "b", path, "application/json", body).await;
    (
        status,
        headers,
        serde_json::from_slice(&out).unwrap_or(Value::Null),
    )
}

async fn post_with(
    proxy: &Proxy,
    target: &str,
    path: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Bytes) {
    let tcp = TcpStream::connect(proxy.outbound).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", target)
        .header("content-type", content_type)
        .header("accept", "application/json, text/event-stream");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (
        status,
        headers,
        resp.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

/// The decision id a JSON-RPC error names.
fn decision_of(error: &Value) -> String {
    error["error"]["data"]["decision_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no decision id in {error}"))
        .to_owned()
}

async fn world_with_b(
    protocol: Option<ward_proxy::rpc::Protocol>,
    rate_limit: Option<RateLimit>,
) -> (World, Proxy, Proxy, Seen) {
    let world = World::new(Duration::from_secs(600)).await;
    let labels = json!({
        "protocol": "mcp",
        "tool.search.risk": "0",
        "tool.echo.risk": "low",
        "tool.delete_records.risk": "3",
    });
    world.label("b", false, labels).await;
    world.push_policy(MCP_POLICY).await;
    let seen: Seen = Arc::default();
    let app = protocol_app(Arc::clone(&seen)).await;
    let pa = world.proxy("a", None).await;
    let pb = world
        .fronting(
            "b",
            app.to_string(),
            protocol,
            rate_limit,
            &pa,
            "low-risk-tools",
        )
        .await;
    (world, pa, pb, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_calls_are_decided_per_tool_and_refused_whole() {
    // The protocol comes from b's `protocol=mcp` registry label.
    let (_world, pa, pb, seen) = world_with_b(None, None).await;
    let json_ct = "application/json";
    let sent = || seen.lock().unwrap().len();

    // An allowed tool: forwarded byte for byte, audited with the tool.
    let body = serde_json::to_vec(&rpc(
        "tools/call",
        json!({"name": "search", "arguments": {"q": "x"}}),
    ))
    .unwrap();
    let (status, _, out) = post(&pa, "b", "/mcp", json_ct, body.clone()).await;
    assert_eq!(status, 200, "{out:?}");
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["result"]["content"][0]["text"], "called \"search\"");
    assert_eq!(seen.lock().unwrap().last().unwrap(), &body[..]);
    let allowed = records(&pb)
        .into_iter()
        .find(|r| {
            r.rpc
                .as_ref()
                .is_some_and(|c| c.target.as_deref() == Some("search"))
        })
        .expect("the allowed call is audited");
    assert_eq!(allowed.decision, Decision::Allow);
    assert_eq!(allowed.resource, "Tool::\"b/search\"");
    let call = allowed.rpc.unwrap();
    assert_eq!(
        (call.protocol.as_str(), call.method.as_str()),
        ("mcp", "tools/call")
    );
    assert_eq!(
        call.args_sha256,
        ward_audit::record::BodyDigest::from_bytes(ward_proxy::jsonrpc::digest_params(Some(
            &json!({"name": "search", "arguments": {"q": "x"}})
        )))
    );

    // A risky tool: a JSON-RPC error with the request's id, the decision id
    // and the default-deny reason; nothing reaches the app; audited.
    let before = sent();
    let body = serde_json::to_vec(&rpc("tools/call", json!({"name": "delete_records"}))).unwrap();
    let (status, headers, out) = post(&pa, "b", "/mcp", json_ct, body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["id"], 1);
    assert_eq!(out["error"]["code"], ward_proxy::jsonrpc::DENIED);
    let message = out["error"]["message"].as_str().unwrap();
    assert!(message.contains("Tool::\"b/delete_records\""), "{message}");
    let record = audited(&pb, &decision_of(&out));
    assert!(message.contains(&record.decision_id), "{message}");
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(
        record.rpc.unwrap().target.as_deref(),
        Some("delete_records")
    );
    assert_eq!(sent(), before, "a denied call never reaches the app");

    // A forbid on an argument value, with its reason.
    let body = serde_json::to_vec(&rpc(
        "tools/call",
        json!({"name": "search", "arguments": {"table": "users"}}),
    ))
    .unwrap();
    let (_, _, out) = post(&pa, "b", "/mcp", json_ct, body).await;
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody touches the users table"),
        "{out}"
    );
    assert_eq!(out["error"]["data"]["policies"], json!(["no-users-table"]));

    // A batch mixing an allowed and a denied call is refused as a whole;
    // both calls are audited as denied.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "search"}},
        {"jsonrpc": "2.0", "method": "notifications/progress"},
        {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "delete_records"}},
    ]);
    let (status, _, out) = send_json(&pa, "/mcp", &batch).await;
    assert_eq!(status, 200, "{out}");
    let errors = out.as_array().expect("a batch gets a batch of errors");
    assert_eq!(errors.len(), 2, "no answer for the notification: {out}");
    assert_eq!(
        (errors[0]["id"].clone(), errors[1]["id"].clone()),
        (json!(10), json!(11))
    );
    assert!(
        errors[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused with its batch")
    );
    for e in errors {
        assert_eq!(audited(&pb, &decision_of(e)).decision, Decision::Deny);
    }
    // The allowed call's record says why it was refused all the same.
    let reasons = audited(&pb, &decision_of(&errors[0])).reasons;
    assert!(
        reasons.iter().any(|r| r.contains("refused with its batch")),
        "{reasons:?}"
    );
    assert_eq!(sent(), before, "no part of a refused batch is forwarded");

    // Bodies two parsers could read differently are refused whole, with a
    // JSON-RPC parse error, and audited.
    let long_nest = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "duplicate key",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete_records"}}"#.to_vec(),
            400,
            "duplicate",
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"se\xffrch\"}}".to_vec(),
            400,
            "UTF-8",
        ),
        (
            "deep nesting",
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"x":{long_nest}}}}}}}"#).into_bytes(),
            400,
            "deep",
        ),
        (
            "not JSON-RPC",
            br#"{"id":1,"method":"tools/call","params":{"name":"search"}}"#.to_vec(),
            400,
            "jsonrpc",
        ),
    ];
    for (what, body, want, needle) in cases {
        let (status, _, out) = post(&pa, "b", "/mcp", json_ct, body).await;
        assert_eq!(status, want, "{what}: {out:?}");
        let out: Value = serde_json::from_slice(&out).unwrap();
        let message = out["error"]["message"].as_str().unwrap();
        assert!(
            message.to_lowercase().contains(&needle.to_lowercase()),
            "{what}: {message}"
        );
        let record = audited(&pb, &decision_of(&out));
        assert_eq!(record.decision, Decision::Deny, "{what}");
        assert!(
            record.reasons[0].contains("refused as a whole"),
            "{what}: {:?}",
            record.reasons
        );
    }
    // MCP's routing headers must say what the body says.
    let body = serde_json::to_vec(&rpc("tools/call", json!({"name": "delete_records"}))).unwrap();
    let headers = [("mcp-method", "tools/call"), ("mcp-name", "search")];
    let (status, _, out) = post_with(&pa, "b", "/mcp", json_ct, &headers, body).await;
    assert_eq!(status, 400);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Name"),
        "{out}"
    );
    assert_eq!(audited(&pb, &decision_of(&out)).decision, Decision::Deny);
    let (status, _, _) = post(
        &pa,
        "b",
        "/mcp",
        "text/plain",
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 415, "a JSON-RPC body must say it is JSON");
    // Oversized: refused from the declared length; the proxy may answer 413
    // and close before the client has finished sending.
    let oversized = vec![b' '; Limits::default().max_body_bytes + 1];
    let tcp = TcpStream::connect(pa.outbound).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/mcp")
        .header("host", "b")
        .header("content-type", json_ct)
        .body(Full::new(Bytes::from(oversized)))
        .unwrap();
    match sender.send_request(req).await {
        Ok(resp) => assert_eq!(resp.status(), 413),
        // Cut off mid-send ("error writing a body", a reset): refused
        // all the same; the app-side count below proves nothing got through.
        Err(e) => assert!(
            e.is_body_write_aborted()
                || e.is_closed()
                || e.is_incomplete_message()
                || e.to_string().contains("writ"),
            "{e}"
        ),
    }
    assert_eq!(sent(), before, "none of the refused bodies reached the app");

    // Discovery: tools/list keeps only what a may call, in JSON and SSE.
    for path in ["/mcp", "/mcp-sse"] {
        let body = serde_json::to_vec(&rpc("tools/list", json!({}))).unwrap();
        let (status, headers, out) = post(&pa, "b", path, json_ct, body).await;
        assert_eq!(status, 200, "{path}");
        let text = std::str::from_utf8(&out).unwrap();
        let message: Value = if path == "/mcp-sse" {
            assert_eq!(headers["content-type"], "text/event-stream");
            assert!(text.starts_with(": keep-alive\n\n"), "{text}");
            assert!(text.contains("event: message\nid: 7\n"), "{text}");
            let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        } else {
            serde_json::from_str(text).unwrap()
        };
        let names: Vec<&str> = message["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["search", "echo"], "{path}: {text}");
    }
    // So do resources/list (by resources/read) and prompts/list (by
    // prompts/get), here in one batch.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 21, "method": "resources/list"},
        {"jsonrpc": "2.0", "id": 22, "method": "prompts/list"},
    ]);
    let (status, _, out) = send_json(&pa, "/mcp", &batch).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out[0]["result"]["resources"],
        json!([{"uri": "file:///public.txt", "name": "public"}]),
        "{out}"
    );
    assert_eq!(
        out[1]["result"]["prompts"],
        json!([{"name": "greet"}]),
        "{out}"
    );
    pa.shutdown(Duration::from_secs(5)).await;
    pb.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_messages_are_decided_per_skill_and_the_card_filtered() {
    // The proxy's config overrides b's `protocol=mcp` label.
    let limit = RateLimit {
        per_second: 1.0,
        burst: 10,
    };
    let (_world, pa, pb, seen) =
        world_with_b(Some(ward_proxy::rpc::Protocol::A2a), Some(limit)).await;

    let (status, _, card) = call(&pa, "GET", "b", "/.well-known/agent-card.json", &[]).await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(
        card["skills"],
        json!([{"id": "summarize", "name": "Summarize"}])
    );
    // The extended card, asked over JSON-RPC, is filtered the same way.
    let ask = serde_json::to_vec(&rpc("GetExtendedAgentCard", json!({}))).unwrap();
    let (status, _, out) = post(&pa, "b", "/", "application/json", ask).await;
    assert_eq!(status, 200);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        out["result"]["skills"],
        json!([{"id": "summarize", "name": "Summarize"}]),
        "{out}"
    );

    let send = |skill: &str| {
        rpc(
            "SendMessage",
            json!({"message": {"role": "ROLE_USER", "parts": [{"text": "hi"}], "metadata": {"skill": skill}}}),
        )
    };
    let (status, _, out) = send_json(&pa, "/", &send("summarize")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["result"]["message"]["parts"][0]["text"], "done");

    let before = seen.lock().unwrap().len();
    let (status, _, out) = send_json(&pa, "/", &send("wire_funds")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["error"]["code"], ward_proxy::jsonrpc::DENIED);
    let record = audited(&pb, &decision_of(&out));
    assert_eq!(record.resource, "Skill::\"b/wire_funds\"");
    let rpc_call = record.rpc.unwrap();
    assert_eq!(
        (
            rpc_call.protocol.as_str(),
            rpc_call.method.as_str(),
            rpc_call.target.as_deref()
        ),
        ("a2a", "SendMessage", Some("wire_funds"))
    );
    assert_eq!(seen.lock().unwrap().len(), before);

    // Each call in a batch takes its own token: a batch of 20 allowed
    // messages is over b's burst of 10, refused whole with Retry-After.
    let batch: Vec<Value> = (0..20)
        .map(|i| {
            let mut m = send("summarize");
            m["id"] = json!(100 + i);
            m
        })
        .collect();
    let (status, headers, out) = send_json(&pa, "/", &batch).await;
    assert_eq!(status, 429, "{out}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        audited(&pb, out["decision_id"].as_str().unwrap()).decision,
        Decision::Deny
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "no part of the batch was forwarded"
    );
    pa.shutdown(Duration::from_secs(5)).await;
    pb.shutdown(Duration::from_secs(5)).await;
}
