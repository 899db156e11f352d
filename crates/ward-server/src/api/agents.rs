//! Admin endpoints for the agent registry. Every one requires a caller whose
//! SPIFFE ID is a registered admin.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ward_core::AgentName;

use super::{ApiError, AppState, Caller, require_admin};
use crate::store::{Agent, AgentAttributes, AgentStatus, AgentUpdate};

/// `POST /v1/agents` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The new agent's name.
    pub name: String,
    /// Its attributes.
    #[serde(default)]
    pub attributes: AgentAttributes,
}

/// `PATCH /v1/agents/{name}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// Replacement attributes.
    #[serde(default)]
    pub attributes: Option<AgentAttributes>,
    /// New proxy endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `POST /v1/agents/{name}/tokens` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime in seconds (default 600, at most 86,400).
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

/// A created join token (shown once).
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The agent it enrolls.
    pub agent: AgentName,
    /// The secret.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Longest join-token lifetime.
pub const MAX_TOKEN_TTL_SECS: i64 = 86_400;
/// Default join-token lifetime.
pub const DEFAULT_TOKEN_TTL_SECS: i64 = 600;

fn parse_name(name: &str) -> Result<AgentName, ApiError> {
    AgentName::new(name).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    require_admin(&state, &caller).await?;
    let name = parse_name(&req.name)?;
    let agent = state
        .store
        .register_agent(state.ca.trust_domain(), &name, req.attributes, now())
        .await?;
    Ok((StatusCode::CREATED, Json(agent)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Agent>>, ApiError> {
    require_admin(&state, &caller).await?;
    Ok(Json(state.store.agents().await?))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    require_admin(&state, &caller).await?;
    let name = parse_name(&name)?;
    let agent = state
        .store
        .agent(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no agent named {name}")))?;
    Ok(Json(agent))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<UpdateRequest>,
) -> Result<Json<Agent>, ApiError> {
    require_admin(&state, &caller).await?;
    let name = parse_name(&name)?;
    let update = AgentUpdate {
        attributes: req.attributes,
        endpoint: req.endpoint.map(Some),
    };
    Ok(Json(state.store.update_agent(&name, update, now()).await?))
}

pub(crate) async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    require_admin(&state, &caller).await?;
    let name = parse_name(&name)?;
    Ok(Json(
        state
            .store
            .set_agent_status(&name, AgentStatus::Retired, now())
            .await?,
    ))
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Option<Json<TokenRequest>>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    require_admin(&state, &caller).await?;
    let name = parse_name(&name)?;
    let ttl = body
        .and_then(|Json(b)| b.ttl_secs)
        .unwrap_or(DEFAULT_TOKEN_TTL_SECS);
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
        return Err(ApiError::BadRequest(format!(
            "ttl_secs must be between 1 and {MAX_TOKEN_TTL_SECS}"
        )));
    }
    let token = state.store.create_join_token(&name, ttl, now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            agent: token.agent.clone(),
            token: token.secret.clone(),
            expires_at: token.expires_at,
        }),
    ))
}
