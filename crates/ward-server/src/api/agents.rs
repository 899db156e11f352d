//! Admin endpoints for the agent registry. Every one requires a caller whose
//! SPIFFE ID is a registered admin.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ward_core::AgentName;

use super::{ApiError, AppState, Caller, require_admin};
use crate::store::{
    Agent, AgentAttributes, AgentStatus, AgentUpdate, Revocation, RevocationTarget,
};

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
    require_admin(&state, &caller, "agent/register", None).await?;
    let name = parse_name(&req.name)?;
    let agent = state
        .store
        .register_agent(
            state.authorities.trust_domain(),
            &name,
            req.attributes,
            now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(agent)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Agent>>, ApiError> {
    require_admin(&state, &caller, "agent/list", None).await?;
    Ok(Json(state.store.agents().await?))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    require_admin(&state, &caller, "agent/show", Some(&name)).await?;
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
    require_admin(&state, &caller, "agent/update", Some(&name)).await?;
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
    require_admin(&state, &caller, "agent/retire", Some(&name)).await?;
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
    require_admin(&state, &caller, "token/create", Some(&name)).await?;
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

/// `POST /v1/agents/{name}/revoke` and `/v1/certificates/{serial}/revoke` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why (kept with the revocation and shown to operators).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Result of a revocation.
#[derive(Debug, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The stored revocation (an existing one if it was already revoked).
    pub revocation: Revocation,
    /// The agent's new state, for agent revocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
}

/// Longest revocation reason kept.
pub const MAX_REASON: usize = 1024;

fn reason_of(body: Option<Json<RevokeRequest>>) -> Result<String, ApiError> {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "revoked by an admin".to_owned());
    if reason.len() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "reason must be at most {MAX_REASON} bytes of printable text"
        )));
    }
    Ok(reason)
}

/// Revokes every certificate of an agent, now and later; final.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Option<Json<RevokeRequest>>,
) -> Result<Json<RevokeResponse>, ApiError> {
    require_admin(&state, &caller, "agent/revoke", Some(&name)).await?;
    let name = parse_name(&name)?;
    let reason = reason_of(body)?;
    let revocation = state
        .store
        .revoke(&RevocationTarget::Agent(name.clone()), &reason, now())
        .await?;
    tracing::warn!(agent = %name, %reason, revision = revocation.revision, "agent revoked");
    let agent = state.store.agent(&name).await?;
    Ok(Json(RevokeResponse { revocation, agent }))
}

/// Revokes one certificate by serial (hex, colons and case ignored).
pub(crate) async fn revoke_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(serial): Path<String>,
    body: Option<Json<RevokeRequest>>,
) -> Result<Json<RevokeResponse>, ApiError> {
    require_admin(&state, &caller, "cert/revoke", None).await?;
    let serial: String = serial
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if serial.is_empty() || serial.len() > 64 || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(
            "serial must be the certificate's serial number in hex".to_owned(),
        ));
    }
    // Refusing unknown serials catches typos that would otherwise "revoke"
    // nothing while the real certificate stays valid.
    if state.store.certificate(&serial).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "this server never issued a certificate with serial {serial}; `ward svid inspect FILE` shows a certificate's serial"
        )));
    }
    let reason = reason_of(body)?;
    let revocation = state
        .store
        .revoke(&RevocationTarget::Serial(serial.clone()), &reason, now())
        .await?;
    tracing::warn!(%serial, %reason, revision = revocation.revision, "certificate revoked");
    Ok(Json(RevokeResponse {
        revocation,
        agent: None,
    }))
}

/// Quarantine: the agent keeps its identity, but proxies confine it to what
/// the quarantine policy allows.
pub(crate) async fn quarantine(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    set_status(state, caller, name, AgentStatus::Quarantined).await
}

/// Ends a quarantine.
pub(crate) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    require_admin(&state, &caller, "agent/release", Some(&name)).await?;
    let name = parse_name(&name)?;
    let current = state
        .store
        .agent(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no agent named {name}")))?;
    if current.status != AgentStatus::Quarantined {
        return Err(ApiError::Conflict(format!(
            "agent {name} is {}, not quarantined; nothing to release",
            current.status
        )));
    }
    set_status(state, caller, name.to_string(), AgentStatus::Active).await
}

fn status_action(status: AgentStatus) -> &'static str {
    match status {
        AgentStatus::Quarantined => "agent/quarantine",
        AgentStatus::Active => "agent/release",
        AgentStatus::Revoked => "agent/revoke",
        AgentStatus::Retired => "agent/retire",
    }
}

async fn set_status(
    state: AppState,
    caller: Caller,
    name: String,
    status: AgentStatus,
) -> Result<Json<Agent>, ApiError> {
    require_admin(&state, &caller, status_action(status), Some(&name)).await?;
    let name = parse_name(&name)?;
    let agent = state.store.set_agent_status(&name, status, now()).await?;
    tracing::warn!(agent = %name, %status, revision = agent.revision, "agent status changed");
    Ok(Json(agent))
}

/// Every revocation, oldest first.
pub(crate) async fn revocations(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Revocation>>, ApiError> {
    require_admin(&state, &caller, "revocation/list", None).await?;
    Ok(Json(state.store.revocations().await?))
}
