//! The control plane's HTTP API (`/v1/…`, JSON, RFC 9457 errors).
//!
//! Authentication happens in the TLS layer: the connection's verified peer
//! SVID (if any) arrives as a [`Caller`] request extension, and each handler
//! states what it needs — an admin, an agent, or (only for first enrollment)
//! nobody but a join token. Handlers never trust identity from headers.

pub mod agents;
pub mod audit;
pub mod authzen;
pub mod ca;
pub mod enroll;
mod error;
pub mod metrics;
pub mod policies;
pub mod proxies;
pub mod status;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use time::OffsetDateTime;
use ward_identity::PeerIdentity;

pub use self::error::ApiError;
use crate::store::Store;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The registry.
    pub store: Store,
    /// Signs SVIDs and publishes the trust bundle; rotates.
    pub authorities: Arc<crate::authority::Authorities>,
    /// Lifetime of issued SVIDs.
    pub svid_ttl: Duration,
    /// Set to `true` when the server starts shutting down, so long-lived
    /// streams end and let the drain finish.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// When this replica started.
    pub started: std::time::Instant,
    /// Decides admin calls and AuthZEN requests.
    pub pdp: Arc<crate::policy::Pdp>,
    /// Signs pushed policy versions (Ed25519); its public key is in the
    /// watch snapshot so proxies can refuse unsigned bundles.
    pub policy_signer: Arc<ward_identity::PrivateKey>,
    /// The tamper-evident log proxies ship decisions to.
    pub audit: crate::audit::AuditLog,
    /// The server's own SPIFFE ID: the "proxy" of decisions it makes itself.
    pub server_id: ward_core::SpiffeId,
}

impl AppState {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The verified TLS peer of the connection a request arrived on, inserted by
/// the listener. Absent means anonymous (no client certificate).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<PeerIdentity>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Decides an admin API call with Cedar: principal `Human::"<admin name>"`
/// for registered admins or `Agent::"<name>"` for agent SVIDs, action
/// `Action::"<action>"`, resource the named agent or `Server::"ward"`. Deny
/// (including any evaluation error) refuses with the policy's reason.
pub(crate) async fn require_admin(
    state: &AppState,
    caller: &Caller,
    action: &str,
    agent: Option<&str>,
) -> Result<(), ApiError> {
    let peer = caller.0.as_ref().ok_or(ApiError::Unauthenticated)?;
    let internal = |e: crate::policy::PdpError| ApiError::Internal(e.to_string());
    let principal = match state.store.admin_name(&peer.spiffe_id).await? {
        Some(name) => crate::policy::entity("Human", &name).map_err(internal)?,
        None => match peer.spiffe_id.agent_name() {
            Some(name) => crate::policy::entity("Agent", name.as_str()).map_err(internal)?,
            None => {
                tracing::warn!(peer = %peer.spiffe_id, %action, "admin request refused: not an admin or agent identity");
                audit::audit_refusal(state, peer, action, "not an admin or agent identity").await;
                return Err(ApiError::Forbidden(format!(
                    "{} is not an admin",
                    peer.spiffe_id
                )));
            }
        },
    };
    let resource = match agent {
        Some(name) => crate::policy::entity("Agent", name),
        None => crate::policy::entity("Server", "ward"),
    }
    .map_err(internal)?;
    let now = OffsetDateTime::now_utc();
    let context = serde_json::json!({
        "time": now.unix_timestamp(),
        "hour": i64::from(now.hour()),
        "method": "ADMIN",
        "path": action,
        "data_labels": [],
        "risk_score": 0,
    });
    let request = ward_policy::json::request(
        &state.pdp.schema(),
        principal,
        crate::policy::entity("Action", action).map_err(internal)?,
        resource,
        &context,
    )
    .map_err(|e| ApiError::Internal(format!("admin request for {action}: {e}")))?;
    let decision = state.pdp.decide(&request);
    if decision.is_allowed() {
        return Ok(());
    }
    let id = crate::policy::decision_id();
    let reason = decision
        .reasons()
        .first()
        .map_or_else(|| "no policy permits it".to_owned(), ToString::to_string);
    tracing::warn!(peer = %peer.spiffe_id, %action, decision_id = %id, %reason, "admin request denied by policy");
    audit::audit_refusal(state, peer, action, &format!("{reason} (decision {id})")).await;
    Err(ApiError::Forbidden(format!(
        "{} is not an admin allowed to {action}: {reason} (decision {id})",
        peer.spiffe_id
    )))
}

/// The `/v1` API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/enroll", post(enroll::enroll))
        .route("/v1/renew", post(enroll::renew))
        .route("/v1/bundle", get(enroll::bundle))
        .route("/v1/agents", get(agents::list).post(agents::register))
        .route("/v1/agents/{name}", get(agents::show).patch(agents::update))
        .route("/v1/agents/{name}/retire", post(agents::retire))
        .route("/v1/agents/{name}/tokens", post(agents::create_token))
        .route("/v1/agents/{name}/revoke", post(agents::revoke))
        .route("/v1/agents/{name}/quarantine", post(agents::quarantine))
        .route("/v1/agents/{name}/release", post(agents::release))
        .route(
            "/v1/certificates/{serial}/revoke",
            post(agents::revoke_certificate),
        )
        .route("/v1/revocations", get(agents::revocations))
        .route("/v1/watch", get(watch::watch))
        .route("/v1/receipts", post(proxies::report))
        .route("/v1/receipts/{revision}", get(proxies::wait))
        .route("/v1/proxies", get(proxies::list))
        .route("/v1/audit", get(audit::info))
        .route("/v1/audit/log/{*path}", get(audit::tile))
        .route(
            "/v1/audit/records",
            // The handler reads the body under `MAX_BATCH_BYTES` itself, after
            // authenticating the caller, so an oversized batch is refused
            // and that refusal is logged like any other.
            get(audit::records).post(audit::ingest),
        )
        .route("/v1/audit/proof/{index}", get(audit::inclusion))
        .route("/v1/audit/consistency", get(audit::consistency))
        .route("/v1/ca", get(ca::status))
        .route("/v1/ca/rotate", post(ca::rotate))
        .route("/v1/ca/authorities/{id}/activate", post(ca::activate))
        .route("/v1/ca/authorities/{id}/retire", post(ca::retire))
        .route("/v1/status", get(status::status))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/openapi.json", get(status::openapi))
        .route("/v1/policies", get(policies::list).post(policies::push))
        .route("/v1/policies/{version}", get(policies::show))
        .route("/v1/policies/{version}/activate", post(policies::activate))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .fallback(error::not_found)
        .with_state(state)
}

#[cfg(test)]
mod tests;
