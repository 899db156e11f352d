//! CA rotation over the admin API (`ward ca status|rotate|activate|retire`):
//! the lifecycle lives in [`crate::authority`]; these handlers authorize
//! (`ca/read`, `ca/rotate`) and translate.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use ward_identity::ca::CaOptions;

use super::{ApiError, AppState, Caller, require_admin};
use crate::authority::AuthorityStatus;

/// `GET /v1/ca` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaStatus {
    /// The trust domain.
    pub trust_domain: String,
    /// The authority this replica issues from.
    pub issuing: String,
    /// The trust bundle's sequence number.
    pub bundle_sequence: u64,
    /// Every authority, oldest first.
    pub authorities: Vec<serde_json::Value>,
}

/// `POST /v1/ca/rotate` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Also generate a new root (otherwise a new intermediate under the
    /// active root).
    #[serde(default)]
    pub root: bool,
}

/// `POST /v1/ca/authorities/{id}/retire` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireRequest {
    /// Retire even while certificates it signed are still valid.
    #[serde(default)]
    pub force: bool,
}

/// What a transition answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Transition {
    /// The authority.
    pub id: String,
    /// Its state now.
    pub state: String,
    /// The revision that carries the change (wait for receipts on it).
    pub revision: u64,
}

fn row(status: &AuthorityStatus) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(status).map_err(|e| ApiError::Internal(e.to_string()))
}

pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CaStatus>, ApiError> {
    require_admin(&state, &caller, "ca/read", None).await?;
    let authorities = state.authorities.status(&state.store).await?;
    let current = state.authorities.current();
    Ok(Json(CaStatus {
        trust_domain: state.authorities.trust_domain().to_string(),
        issuing: current.id.clone(),
        bundle_sequence: current.bundle.sequence,
        authorities: authorities.iter().map(row).collect::<Result<_, _>>()?,
    }))
}

pub(crate) async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    body: Option<Json<RotateRequest>>,
) -> Result<Json<Transition>, ApiError> {
    require_admin(&state, &caller, "ca/rotate", None).await?;
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let algorithm = state.authorities.current().ca.algorithm();
    let options = CaOptions {
        algorithm,
        ..CaOptions::default()
    };
    let (revision, row) = state
        .authorities
        .rotate(&state.store, request.root, &options)
        .await?;
    Ok(Json(Transition {
        id: row.id,
        state: row.state.to_string(),
        revision,
    }))
}

pub(crate) async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Transition>, ApiError> {
    require_admin(&state, &caller, "ca/rotate", None).await?;
    let revision = state.authorities.activate(&state.store, &id).await?;
    Ok(Json(Transition {
        id,
        state: "active".to_owned(),
        revision,
    }))
}

pub(crate) async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<RetireRequest>>,
) -> Result<Json<Transition>, ApiError> {
    require_admin(&state, &caller, "ca/rotate", None).await?;
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let revision = state
        .authorities
        .retire(&state.store, &id, request.force)
        .await?;
    Ok(Json(Transition {
        id,
        state: "retired".to_owned(),
        revision,
    }))
}
