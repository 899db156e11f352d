//! `GET /v1/status` (admins): what an operator checks first — version,
//! store, revision, agents by status, CA expiry — and `GET /v1/openapi.json`
//! (anyone with a certificate), the machine-readable API description.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Caller, require_admin};
use crate::store::Backend;

/// The OpenAPI 3.1 document describing `/v1` (kept beside the router; a
/// test checks that every path and method it lists is routed).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /v1/status` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// Server version.
    pub version: String,
    /// Trust domain.
    pub trust_domain: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Latest committed revision.
    pub revision: u64,
    /// Agents by status.
    pub agents: BTreeMap<String, u64>,
    /// Number of revocations.
    pub revocations: u64,
    /// Expiry of the online intermediate CA (RFC 3339).
    pub intermediate_not_after: String,
    /// Lifetime of issued SVIDs, seconds.
    pub svid_ttl_secs: u64,
    /// Seconds since this replica started.
    pub uptime_secs: u64,
}

pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Status>, ApiError> {
    require_admin(&state, &caller, "server/status", None).await?;
    let agents = state
        .store
        .agent_counts()
        .await?
        .into_iter()
        .map(|(status, n)| (status.to_string(), n))
        .collect();
    let revocations = u64::try_from(state.store.revocations().await?.len()).unwrap_or(u64::MAX);
    let not_after = state
        .authorities
        .current()
        .ca
        .intermediate_not_after()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        trust_domain: state.authorities.trust_domain().to_string(),
        store: match state.store.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .to_owned(),
        revision: state.store.revision().await?,
        agents,
        revocations,
        intermediate_not_after: not_after,
        svid_ttl_secs: state.svid_ttl.as_secs(),
        uptime_secs: state.started.elapsed().as_secs(),
    }))
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
