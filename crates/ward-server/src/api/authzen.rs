//! The OpenID AuthZEN Authorization API 1.0 (evaluation, evaluations,
//! metadata) over the server's PDP, so any AuthZEN PEP can ask Ward. The
//! protocol itself lives in [`ward_policy::authzen`] (proxies answer it
//! too); this module authenticates, logs and translates errors.
//!
//! Mapping: `subject`/`resource` `{type, id}` → Cedar entities (`agent` →
//! `Agent`, `user`/`human` → `Human`, `tool` → `Tool`, `dataset` →
//! `Dataset`, `team` → `Team`, `server` → `Server`, or a Cedar type name as
//! is); `action.name` → `Action::"<name>"`; `context` → the request context,
//! merged over defaults (now, method `POST`, path `/`, no data labels, risk
//! 0) and validated against the schema. Caller-supplied `properties` are
//! ignored: attributes come from the registry, never from the asker. Per the
//! spec, unknown fields are ignored and a deny is HTTP 200 with
//! `decision: false`. Callers must present an SVID of the trust domain.
//!
//! Every decision lands in the audit log before it is answered, like a
//! proxy's: the record's principal is the asking PEP, its first reason names
//! the AuthZEN subject. A decision that cannot be logged is not answered
//! (503: the PEP's error path denies).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use ward_policy::authzen::{self, Evaluation, Evaluations, Pdp};

use super::{ApiError, AppState, Caller};

/// One decision as the PDP made it, for its audit record.
struct Made {
    request: ward_policy::Request,
    decision: ward_policy::Decision,
    id: Option<String>,
}

/// Answers through the server's PDP; every decision is appended to the
/// audit log before the answer leaves.
async fn answer(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    path: &str,
    run: impl FnOnce(&Pdp<'_>) -> Result<Value, String>,
) -> Result<Value, ApiError> {
    let (result, records) = {
        let schema = state.pdp.schema();
        // The PDP asks for the id right after each decision: pair them here.
        let made: std::cell::RefCell<Vec<Made>> = std::cell::RefCell::default();
        let decide = |request: &ward_policy::Request| {
            let decision = state.pdp.decide(request);
            made.borrow_mut().push(Made {
                request: request.clone(),
                decision: decision.clone(),
                id: None,
            });
            decision
        };
        let decision_id = || {
            let id = crate::policy::decision_id();
            if let Some(last) = made.borrow_mut().last_mut() {
                last.id = Some(id.clone());
            }
            id
        };
        let pdp = Pdp {
            schema: &schema,
            decide: &decide,
            decision_id: &decision_id,
        };
        let result = run(&pdp).map_err(ApiError::BadRequest)?;
        let records: Vec<Vec<u8>> = made
            .into_inner()
            .into_iter()
            .map(|m| record(state, caller, body, path, m))
            .collect::<Result<_, String>>()
            .map_err(ApiError::Internal)?;
        (result, records)
    };
    if let Err(e) = state.audit.append(records).await {
        tracing::error!(error = %e, "AuthZEN decisions could not be audited; not answered");
        return Err(ApiError::Unavailable(format!(
            "the decision could not be audited ({e}), so it is not answered (fail closed)"
        )));
    }
    Ok(result)
}

fn record(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    path: &str,
    m: Made,
) -> Result<Vec<u8>, String> {
    use ward_audit::record::{AuditRecord, BodyDigest, Decision, RequestDigest, UnixMillis};
    let peer = caller.0.as_ref();
    let decision = &m.decision;
    let mut reasons = vec![format!("AuthZEN subject {}", m.request.principal)];
    reasons.extend(decision.reasons().iter().map(ToString::to_string));
    reasons.extend(
        decision
            .errors()
            .iter()
            .map(|e| format!("policy {} errored: {}", e.policy, e.message)),
    );
    let record = AuditRecord {
        time: UnixMillis::from_system_time(std::time::SystemTime::now())
            .map_err(|e| e.to_string())?,
        decision_id: m.id.unwrap_or_else(crate::policy::decision_id),
        proxy_id: state.server_id.to_string(),
        principal: peer.map(|p| p.spiffe_id.clone()),
        action: m.request.action.to_string(),
        resource: m.request.resource.to_string(),
        decision: if decision.is_allowed() {
            Decision::Allow
        } else {
            Decision::Deny
        },
        policies: decision
            .policies()
            .iter()
            .map(ToString::to_string)
            .collect(),
        reasons,
        policy_version: decision.policy_version().to_string(),
        trace_id: None,
        peer_cert_serial: peer.and_then(|p| {
            super::audit::unhex(p.serial.as_str())
                .and_then(|b| ward_audit::record::CertSerial::new(&b).ok())
        }),
        request: RequestDigest {
            body_sha256: BodyDigest::of(body),
            method: "POST".to_owned(),
            path: path.to_owned(),
        },
        rpc: None,
    };
    record.encode().map_err(|e| e.to_string())
}

fn with_request_id(headers: &HeaderMap, body: Value) -> Response {
    let mut resp = Json(body).into_response();
    if let Some(id) = headers.get("x-request-id").cloned() {
        resp.headers_mut().insert("x-request-id", id);
    }
    resp
}

fn authenticated(caller: &Caller) -> Result<(), ApiError> {
    caller
        .0
        .as_ref()
        .map(|_| ())
        .ok_or(ApiError::Unauthenticated)
}

pub(crate) async fn evaluation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authenticated(&caller)?;
    let e: Evaluation = authzen::parse(&body).map_err(ApiError::BadRequest)?;
    let result = answer(&state, &caller, &body, "/access/v1/evaluation", |pdp| {
        authzen::evaluate(pdp, &e)
    })
    .await?;
    Ok(with_request_id(&headers, result))
}

pub(crate) async fn evaluations(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authenticated(&caller)?;
    let batch: Evaluations = authzen::parse(&body).map_err(ApiError::BadRequest)?;
    let result = answer(&state, &caller, &body, "/access/v1/evaluations", |pdp| {
        authzen::evaluate_batch(pdp, &batch)
    })
    .await?;
    Ok(with_request_id(&headers, result))
}

pub(crate) async fn configuration(headers: HeaderMap) -> Response {
    let host = headers
        .get("host")
        .and_then(|h: &HeaderValue| h.to_str().ok());
    Json(authzen::configuration("https", host)).into_response()
}
