//! The inbound path for JSON-RPC upstreams (MCP, A2A): read the body
//! strictly, decide every call in it, audit each, and answer refusals in
//! JSON-RPC so real clients surface them; then filter discovery answers.
//!
//! Parser differentials are closed by construction: the body is parsed by
//! [`crate::jsonrpc`], which refuses anything two parsers could read
//! differently (duplicate keys, invalid UTF-8, deep nesting, a BOM, trailing
//! data), compressed bodies and non-JSON media types are refused, and the
//! bytes forwarded are exactly the bytes decided on. A batch is forwarded
//! whole or not at all.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value as Json, json};
use ward_audit::RpcCall;
use ward_audit::record::BodyDigest;
use ward_core::AgentName;
use ward_policy::{Context, Engine};

use crate::Shared;
use crate::audit::Facts;
use crate::http::{self, Body};
use crate::inbound::{
    Filter, Refusal, audit_allowed_all, cedar_request_for, deny, deny_all, record_decision,
};
use crate::jsonrpc::{self, Envelope, ParseError};
use crate::rpc::{self, Call, Listing, Protocol};

/// JSON-RPC "invalid params": a call Ward cannot name to policy.
const INVALID_PARAMS: i64 = -32602;

/// Decides every call in an MCP or A2A request body. `Ok` carries the ids
/// of discovery requests (whose answers must be filtered); `Err` the
/// answer that refuses the whole body (already audited).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
pub(crate) async fn decide(
    shared: &Shared,
    engine: &Arc<Engine>,
    protocol: Protocol,
    fronted: &str,
    caller: &AgentName,
    facts: &mut Facts,
    headers: &HeaderMap,
    body: &Bytes,
    base: Context,
    started: Instant,
) -> Result<Vec<(Json, Listing)>, Response<Body>> {
    // Bodies refused before any call is decided: audited, then answered
    // with a JSON-RPC error.
    let refused = |status, slug, code, id: Json, message: String| Refused {
        status,
        slug,
        code,
        id,
        message,
    };
    if let Some(detail) = unreadable(headers) {
        let r = refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-body",
            jsonrpc::INVALID_REQUEST,
            Json::Null,
            detail,
        );
        return Err(r.answer(shared, facts, started).await);
    }
    let envelope =
        match jsonrpc::parse(body, jsonrpc::DEFAULT_MAX_DEPTH, jsonrpc::DEFAULT_MAX_BATCH) {
            Ok(envelope) => envelope,
            Err(e) => {
                let code = match e {
                    ParseError::NotJsonRpc { .. }
                    | ParseError::EmptyBatch
                    | ParseError::BatchTooLarge { .. } => jsonrpc::INVALID_REQUEST,
                    _ => jsonrpc::PARSE_ERROR,
                };
                let message = format!("request body refused as a whole: {e}");
                let r = refused(
                    StatusCode::BAD_REQUEST,
                    MALFORMED,
                    code,
                    Json::Null,
                    message,
                );
                return Err(r.answer(shared, facts, started).await);
            }
        };
    let calls = match rpc::calls(protocol, fronted, &envelope) {
        Ok(calls) => calls,
        Err(e) => {
            let id = envelope
                .messages
                .get(e.index)
                .and_then(|m| m.id().cloned())
                .unwrap_or(Json::Null);
            let message = format!("request body refused as a whole: {e}");
            let r = refused(
                StatusCode::BAD_REQUEST,
                MALFORMED,
                INVALID_PARAMS,
                id,
                message,
            );
            return Err(r.answer(shared, facts, started).await);
        }
    };
    if let Some(detail) = header_mismatch(headers, &envelope, &calls) {
        let id = calls
            .first()
            .and_then(|c| c.id.clone())
            .unwrap_or(Json::Null);
        let message = format!("request refused as a whole: {detail}");
        let code = jsonrpc::INVALID_REQUEST;
        let r = refused(StatusCode::BAD_REQUEST, MALFORMED, code, id, message);
        return Err(r.answer(shared, facts, started).await);
    }

    // The carrying request took one token; each further call in a batch
    // takes its own, so a batch is no way around the rate limit.
    let now = Instant::now();
    for _ in 1..calls.len() {
        if let Err(wait) = shared.limiter.check(caller.as_str(), now) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let r = Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                slug: "rate-limited",
                detail: format!(
                    "rate limit for {caller} exceeded by a batch of {} calls; retry in {secs}s",
                    calls.len()
                ),
                retry_after: Some(secs),
            };
            return Err(deny(shared, facts, r, started).await);
        }
    }

    // Decide every call first; forward only if all are allowed.
    let mut decided = Vec::with_capacity(calls.len());
    for (i, call) in calls.iter().enumerate() {
        let mut f = facts.clone();
        if i > 0 {
            f.decision_id = http::decision_id();
        }
        f.action = format!("Action::{:?}", call.action);
        f.resource = call.resource_text();
        f.rpc = Some(RpcCall {
            args_sha256: BodyDigest::from_bytes(call.args_sha256),
            method: call.method.clone(),
            protocol: protocol.as_str().to_owned(),
            target: call.named().map(str::to_owned),
        });
        let allowed = match cedar_request_for(
            caller,
            &call.action,
            (call.resource.0, &call.resource.1),
            call.context(protocol, base.clone()),
        ) {
            Ok(request) => {
                let decision = engine.decide(&request);
                record_decision(&mut f, &decision);
                if !decision.is_allowed() && f.reasons.is_empty() {
                    f.reasons.push(format!(
                        "no policy permits {caller} to {} {}",
                        call.action,
                        call.resource_text()
                    ));
                }
                decision.is_allowed()
            }
            Err(e) => {
                f.reasons
                    .push(format!("cannot name this call to policy: {e}"));
                false
            }
        };
        decided.push((f, allowed));
    }
    let denied: Vec<usize> = decided
        .iter()
        .enumerate()
        .filter(|(_, (_, allowed))| !allowed)
        .map(|(i, _)| i)
        .collect();
    if denied.is_empty() {
        audit_allowed_all(shared, &decided).await?;
        if let Some((first, _)) = decided.first() {
            facts.decision_id.clone_from(&first.decision_id);
        }
        return Ok(list_ids(&calls));
    }
    Err(refuse_batch(shared, &envelope, &calls, decided, &denied, started).await)
}

/// Audits every call of a refused body and answers in JSON-RPC: an error
/// for each request (notifications get none; a body of notifications only
/// gets 403 problem+json).
async fn refuse_batch(
    shared: &Shared,
    envelope: &Envelope,
    calls: &[Call],
    decided: Vec<(Facts, bool)>,
    denied: &[usize],
    started: Instant,
) -> Response<Body> {
    let first_denied = denied.first().copied().unwrap_or(0);
    let mut all: Vec<(Facts, Refusal)> = decided
        .into_iter()
        .map(|(mut f, allowed)| {
            let detail = if allowed {
                let detail = format!(
                    "refused with its batch: message {first_denied} ({}) was denied",
                    calls.get(first_denied).map_or("", |c| c.method.as_str())
                );
                f.reasons.push(detail.clone());
                detail
            } else {
                f.reasons.join("; ")
            };
            (f, refusal(StatusCode::FORBIDDEN, "denied", detail))
        })
        .collect();
    deny_all(shared, &mut all, started).await;
    let mut errors = Vec::new();
    let mut first_detail = String::new();
    let mut first_id = String::new();
    for (i, (f, r)) in all.iter().enumerate() {
        if i == first_denied {
            first_detail.clone_from(&r.detail);
            first_id.clone_from(&f.decision_id);
        }
        if let Some(id) = calls.get(i).and_then(|c| c.id.clone()) {
            errors.push(jsonrpc::error_response(
                &id,
                jsonrpc::DENIED,
                &format!("denied by Ward: {} (decision {})", r.detail, f.decision_id),
                json!({"decision_id": f.decision_id, "policies": f.policies, "reasons": f.reasons}),
            ));
        }
    }
    if errors.is_empty() {
        return http::problem(
            StatusCode::FORBIDDEN,
            "denied",
            &first_detail,
            json!({"decision_id": first_id}),
        );
    }
    let body = if envelope.batch {
        Json::Array(errors)
    } else {
        errors.swap_remove(0)
    };
    json_response(StatusCode::OK, &body)
}

/// Problem slug and metric reason of a body refused before any decision.
const MALFORMED: &str = "malformed-json-rpc";

/// A body refused as a whole before any call was decided.
struct Refused {
    status: StatusCode,
    slug: &'static str,
    code: i64,
    id: Json,
    message: String,
}

impl Refused {
    /// Audits the refusal, then answers it in JSON-RPC.
    async fn answer(self, shared: &Shared, facts: &mut Facts, started: Instant) -> Response<Body> {
        let r = refusal(self.status, self.slug, self.message.clone());
        let _ = deny(shared, facts, r, started).await;
        rpc_error(
            self.status,
            &self.id,
            self.code,
            &self.message,
            &facts.decision_id,
        )
    }
}

fn refusal(status: StatusCode, slug: &'static str, detail: String) -> Refusal {
    Refusal {
        status,
        slug,
        detail,
        retry_after: None,
    }
}

/// Why the body cannot be read as the upstream would read it, if so.
fn unreadable(headers: &HeaderMap) -> Option<String> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let identity = encoding
            .to_str()
            .is_ok_and(|e| e.trim().eq_ignore_ascii_case("identity"));
        if !identity {
            return Some(
                "compressed JSON-RPC bodies are refused (the proxy authorizes the bytes the app reads); send it uncompressed".to_owned(),
            );
        }
    }
    match media_type(headers).as_deref() {
        Some("application/json") => None,
        Some(other) => Some(format!(
            "a JSON-RPC body must be Content-Type: application/json, not {other:?}"
        )),
        None => Some("a JSON-RPC body must be sent with Content-Type: application/json".to_owned()),
    }
}

/// MCP (2026-07-28) mirrors the method and the tool, prompt or resource
/// in `Mcp-Method` / `Mcp-Name` headers so gateways can route without the
/// body. An app may trust either, so the two must agree: a mismatch is a
/// request read one way here and another way there.
fn header_mismatch(headers: &HeaderMap, envelope: &Envelope, calls: &[Call]) -> Option<String> {
    let method = headers.get("mcp-method");
    let name = headers.get("mcp-name");
    if method.is_none() && name.is_none() {
        return None;
    }
    let [call] = calls else {
        return Some("Mcp-Method / Mcp-Name headers on a batch".to_owned());
    };
    if envelope.batch {
        return Some("Mcp-Method / Mcp-Name headers on a batch".to_owned());
    }
    if let Some(m) = method
        && m.to_str().ok() != Some(call.method.as_str())
    {
        return Some(format!(
            "the Mcp-Method header {m:?} does not match the body's method {:?}",
            call.method
        ));
    }
    if let Some(n) = name
        && n.to_str().ok() != call.named()
    {
        return Some(format!(
            "the Mcp-Name header {n:?} does not match the body ({:?})",
            call.named().unwrap_or("no name")
        ));
    }
    None
}

/// The media type of `Content-Type`, lowercase, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("");
    Some(essence.trim().to_ascii_lowercase())
}

/// Ids of the requests whose answers are discovery (MCP `tools/list`, the
/// A2A extended agent card), filtered per caller.
fn list_ids(calls: &[Call]) -> Vec<(Json, Listing)> {
    calls
        .iter()
        .filter_map(|c| Some((c.id.clone()?, Listing::of(&c.action)?)))
        .collect()
}

/// A JSON-RPC error answer for a body refused before any call was decided.
fn rpc_error(
    status: StatusCode,
    id: &Json,
    code: i64,
    message: &str,
    decision_id: &str,
) -> Response<Body> {
    let body = jsonrpc::error_response(
        id,
        code,
        &format!("{message} (decision {decision_id})"),
        json!({"decision_id": decision_id}),
    );
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Json) -> Response<Body> {
    let bytes = Bytes::from(body.to_string());
    let mut resp = Response::new(http::full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Applies `filter` to an allowed call's answer. What cannot be filtered
/// (an unknown media type, a compressed or unparsable body) is not passed
/// on: the caller gets an error instead of a list it should not see.
pub(crate) async fn filtered(
    filter: Filter,
    mut parts: hyper::http::response::Parts,
    body: Body,
    max_bytes: usize,
    decision_id: &str,
) -> Response<Body> {
    if !parts.status.is_success() {
        return Response::from_parts(parts, body);
    }
    if parts.headers.contains_key(header::CONTENT_ENCODING) {
        return withheld("it is compressed", decision_id);
    }
    let media = media_type(&parts.headers).unwrap_or_default();
    match (&filter, media.as_str()) {
        (Filter::Answers(visibility, ids), "text/event-stream") => {
            let visibility = visibility.clone();
            let ids = ids.clone();
            let body = crate::sse::rewrite_events(body, max_bytes, move |message| {
                let mut message = message.clone();
                (visibility.filter_answers(&mut message, &ids) > 0).then_some(message)
            });
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, body)
        }
        (_, "application/json") => {
            let Some(bytes) = collect_bounded(body, max_bytes).await else {
                return withheld("it is unreadable or too large", decision_id);
            };
            let Ok(mut value) = serde_json::from_slice::<Json>(&bytes) else {
                return withheld("it is not JSON", decision_id);
            };
            let removed = match &filter {
                Filter::Answers(visibility, ids) => visibility.filter_answers(&mut value, ids),
                Filter::Card(visibility) => visibility.filter_card(&mut value),
            };
            if removed == 0 {
                return Response::from_parts(parts, http::full(bytes));
            }
            tracing::debug!(decision_id, removed, "discovery answer filtered");
            let out = Bytes::from(value.to_string());
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
            Response::from_parts(parts, http::full(out))
        }
        _ => withheld(
            "its media type is neither application/json nor text/event-stream",
            decision_id,
        ),
    }
}

/// Reads a whole body of at most `max` bytes. (Not `Limited`: over a body
/// whose error is already boxed, its `Into` bound defeats `Send` inference
/// of the calling future.)
async fn collect_bounded(mut body: Body, max: usize) -> Option<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if out.len() + data.len() > max {
                return None;
            }
            out.extend_from_slice(&data);
        }
    }
    Some(out.freeze())
}

/// The answer to a caller whose discovery answer could not be filtered.
fn withheld(why: &str, decision_id: &str) -> Response<Body> {
    tracing::warn!(
        decision_id,
        reason = why,
        "discovery answer not filterable; withheld"
    );
    http::problem(
        StatusCode::BAD_GATEWAY,
        "unfilterable-answer",
        &format!(
            "the app's answer could not be filtered for this caller ({why}), so it is withheld"
        ),
        json!({"decision_id": decision_id}),
    )
}
