//! The OpenID AuthZEN Authorization API 1.0 (evaluation, evaluations,
//! metadata) over Ward's PDP, so any AuthZEN PEP can ask Ward.
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
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use ward_policy::EntityUid;

use super::{ApiError, AppState, Caller};

/// Subject or resource.
#[derive(Debug, Clone, Deserialize)]
pub struct Entity {
    /// Entity type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Entity id.
    pub id: String,
}

/// Action.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    /// Action name.
    pub name: String,
}

/// One evaluation (also the defaults of a batch).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluation {
    /// Who.
    #[serde(default)]
    pub subject: Option<Entity>,
    /// What.
    #[serde(default)]
    pub action: Option<Action>,
    /// On what.
    #[serde(default)]
    pub resource: Option<Entity>,
    /// Context.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// `POST /access/v1/evaluations` body.
#[derive(Debug, Deserialize)]
pub struct Evaluations {
    /// Defaults.
    #[serde(flatten)]
    pub defaults: Evaluation,
    /// The items.
    #[serde(default)]
    pub evaluations: Vec<Evaluation>,
    /// Options.
    #[serde(default)]
    pub options: Map<String, Value>,
}

fn cedar_type(kind: &str) -> &str {
    match kind.to_ascii_lowercase().as_str() {
        "agent" => "Agent",
        "user" | "human" => "Human",
        "tool" => "Tool",
        "dataset" => "Dataset",
        "team" => "Team",
        "server" => "Server",
        "segment" => "Segment",
        _ => kind,
    }
}

fn uid(e: &Entity) -> Result<EntityUid, String> {
    ward_policy::json::uid(cedar_type(&e.kind), &e.id).map_err(|e| e.to_string())
}

/// Decides one evaluation; `Err` is a malformed request (HTTP 400 for a
/// single evaluation, an item error in a batch).
fn decide(state: &AppState, e: &Evaluation) -> Result<Value, String> {
    let subject = e
        .subject
        .as_ref()
        .ok_or("subject (type and id) is required")?;
    let action = e.action.as_ref().ok_or("action (name) is required")?;
    let resource = e
        .resource
        .as_ref()
        .ok_or("resource (type and id) is required")?;
    let now = OffsetDateTime::now_utc();
    let mut context = Map::from_iter([
        ("time".to_owned(), json!(now.unix_timestamp())),
        ("hour".to_owned(), json!(i64::from(now.hour()))),
        ("method".to_owned(), json!("POST")),
        ("path".to_owned(), json!("/")),
        ("data_labels".to_owned(), json!([])),
        ("risk_score".to_owned(), json!(0)),
    ]);
    if let Some(extra) = &e.context {
        context.extend(extra.clone());
    }
    let (principal, action, resource) = (
        uid(subject)?,
        ward_policy::json::uid("Action", &action.name).map_err(|e| e.to_string())?,
        uid(resource)?,
    );
    let schema = &state.pdp.schema();
    // The defaults fill Ward's RequestContext; an action declared with its
    // own context type (a schema extension) gets the caller's context as
    // given. Either way Cedar validates it before anything is decided.
    let request = ward_policy::json::request(
        schema,
        principal.clone(),
        action.clone(),
        resource.clone(),
        &Value::Object(context),
    )
    .or_else(|with_defaults| {
        let given = Value::Object(e.context.clone().unwrap_or_default());
        ward_policy::json::request(schema, principal, action, resource, &given)
            .map_err(|_| with_defaults)
    })
    .map_err(|e| e.to_string())?;
    let decision = state.pdp.decide(&request);
    let id = crate::policy::decision_id();
    tracing::info!(
        decision_id = %id,
        subject = %request.principal,
        action = %request.action,
        resource = %request.resource,
        allowed = decision.is_allowed(),
        "AuthZEN decision"
    );
    Ok(json!({
        "decision": decision.is_allowed(),
        "context": {
            "id": id,
            "policies": decision.policies(),
            "reason_admin": { "en": decision.reasons().join("; ") },
            "policy_version": decision.policy_version().to_string(),
        }
    }))
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

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid AuthZEN request: {e}")))
}

pub(crate) async fn evaluation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authenticated(&caller)?;
    let e: Evaluation = parse(&body)?;
    let result = decide(&state, &e).map_err(ApiError::BadRequest)?;
    Ok(with_request_id(&headers, result))
}

pub(crate) async fn evaluations(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authenticated(&caller)?;
    let batch: Evaluations = parse(&body)?;
    // No items: behaves like a single evaluation of the defaults (§7.1).
    if batch.evaluations.is_empty() {
        let result = decide(&state, &batch.defaults).map_err(ApiError::BadRequest)?;
        return Ok(with_request_id(&headers, result));
    }
    let semantic = match batch.options.get("evaluations_semantic") {
        None => "execute_all",
        Some(Value::String(s))
            if [
                "execute_all",
                "deny_on_first_deny",
                "permit_on_first_permit",
            ]
            .contains(&s.as_str()) =>
        {
            s.as_str()
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "options.evaluations_semantic {other} is not execute_all, deny_on_first_deny or permit_on_first_permit"
            )));
        }
    };
    let mut results = Vec::with_capacity(batch.evaluations.len());
    for item in &batch.evaluations {
        // An item's own subject/action/resource/context replace the defaults.
        let merged = Evaluation {
            subject: item
                .subject
                .clone()
                .or_else(|| batch.defaults.subject.clone()),
            action: item
                .action
                .clone()
                .or_else(|| batch.defaults.action.clone()),
            resource: item
                .resource
                .clone()
                .or_else(|| batch.defaults.resource.clone()),
            context: item
                .context
                .clone()
                .or_else(|| batch.defaults.context.clone()),
        };
        let result = decide(&state, &merged).unwrap_or_else(|message| {
            json!({"decision": false, "context": {"error": {"status": 400, "message": message}}})
        });
        let allowed = result.get("decision") == Some(&Value::Bool(true));
        results.push(result);
        match semantic {
            "deny_on_first_deny" if !allowed => break,
            "permit_on_first_permit" if allowed => break,
            _ => {}
        }
    }
    Ok(with_request_id(&headers, json!({ "evaluations": results })))
}

pub(crate) async fn configuration(headers: HeaderMap) -> Response {
    let host = headers
        .get("host")
        .and_then(|h: &HeaderValue| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let base = format!("https://{host}");
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
    }))
    .into_response()
}
