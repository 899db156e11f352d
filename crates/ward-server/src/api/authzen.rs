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

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use ward_policy::authzen::{self, Evaluation, Evaluations, Pdp};

use super::{ApiError, AppState, Caller};

/// Answers through the server's PDP, logging each decision with its id.
fn answer(
    state: &AppState,
    run: impl FnOnce(&Pdp<'_>) -> Result<Value, String>,
) -> Result<Value, ApiError> {
    let schema = state.pdp.schema();
    let decide = |request: &ward_policy::Request| state.pdp.decide(request);
    let pdp = Pdp {
        schema: &schema,
        decide: &decide,
        decision_id: &crate::policy::decision_id,
    };
    let result = run(&pdp).map_err(ApiError::BadRequest)?;
    let items = match result.get("evaluations").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![&result],
    };
    for item in items {
        let allowed = item.get("decision") == Some(&Value::Bool(true));
        let id = item
            .pointer("/context/id")
            .and_then(Value::as_str)
            .unwrap_or("-");
        tracing::info!(decision_id = id, allowed, "AuthZEN decision");
    }
    Ok(result)
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
    let result = answer(&state, |pdp| authzen::evaluate(pdp, &e))?;
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
    let result = answer(&state, |pdp| authzen::evaluate_batch(pdp, &batch))?;
    Ok(with_request_id(&headers, result))
}

pub(crate) async fn configuration(headers: HeaderMap) -> Response {
    let host = headers
        .get("host")
        .and_then(|h: &HeaderValue| h.to_str().ok());
    Json(authzen::configuration("https", host)).into_response()
}
