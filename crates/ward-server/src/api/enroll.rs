//! Enrollment (join token + CSR → first SVID) and renewal (current SVID +
//! CSR → next SVID). The CA only ever sees public keys; the identity in the
//! certificate is the one the token or the current SVID is bound to, never
//! what the CSR asks for.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use serde::{Deserialize, Serialize};
use ward_core::SpiffeId;
use ward_identity::X509Svid;

use super::{ApiError, AppState, Caller};
use crate::store::IssuedCert;

/// `POST /v1/enroll` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The single-use join token.
    pub join_token: String,
    /// PKCS#10 CSR, base64 (standard alphabet) of the DER.
    pub csr: String,
    /// Where the agent's proxy accepts mTLS from other proxies
    /// (`host:port`); recorded in the registry so peers can reach it.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `POST /v1/renew` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PKCS#10 CSR, base64 of the DER.
    pub csr: String,
    /// As in [`EnrollRequest::endpoint`]; a proxy that moved says so here.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// An issued SVID and the trust bundle to verify peers with.
#[derive(Debug, Serialize, Deserialize)]
pub struct SvidResponse {
    /// The identity issued.
    pub spiffe_id: SpiffeId,
    /// Certificate chain, PEM, leaf first.
    pub svid: String,
    /// Serial of the leaf, hex.
    pub serial: String,
    /// Expiry of the leaf, unix seconds.
    pub not_after: i64,
    /// The trust bundle (SPIFFE bundle JSON document).
    pub bundle: serde_json::Value,
}

pub(crate) async fn enroll(
    State(state): State<AppState>,
    Json(req): Json<EnrollRequest>,
) -> Result<Json<SvidResponse>, ApiError> {
    let csr = decode_csr(&req.csr)?;
    check_endpoint(req.endpoint.as_deref())?;
    let now = state.now();
    // Redeeming burns the token even if the CSR is then refused: a token
    // that met a mismatched CSR may be in the wrong hands.
    let agent = state
        .store
        .redeem_join_token(&req.join_token, now.unix_timestamp())
        .await
        .inspect_err(|e| {
            tracing::warn!(error = %e, "enrollment refused");
        })?;
    let svid = sign(
        &state,
        &csr,
        &agent.spiffe_id,
        Some(agent.name.clone()),
        state.svid_ttl,
    )
    .await?;
    record_endpoint(&state, &agent, req.endpoint.as_deref()).await?;
    tracing::info!(spiffe_id = %agent.spiffe_id, serial = %svid.leaf().serial, "agent enrolled");
    respond(&state, &svid)
}

pub(crate) async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<RenewRequest>,
) -> Result<Json<SvidResponse>, ApiError> {
    let peer = caller.0.ok_or(ApiError::Unauthenticated)?;
    let csr = decode_csr(&req.csr)?;
    check_endpoint(req.endpoint.as_deref())?;
    // Admins renew too (the CLI does after a CA rotation, so the admin
    // keeps a certificate the narrowed bundle trusts); their SVIDs keep
    // the admin lifetime, and the key stays on the admin's machine.
    if state.store.is_admin(&peer.spiffe_id).await? {
        let svid = sign(
            &state,
            &csr,
            &peer.spiffe_id,
            None,
            crate::data_dir::ADMIN_SVID_TTL,
        )
        .await?;
        tracing::info!(admin = %peer.spiffe_id, serial = %svid.leaf().serial, "admin SVID renewed");
        return respond(&state, &svid);
    }
    // A refused renewal is an attempt to extend a credential that should
    // not live on (revoked, retired, unknown): refused and logged in the
    // audit log, naming the caller.
    let (name, agent) = match renewable(&state, &peer).await? {
        Ok(found) => found,
        Err(reason) => {
            tracing::warn!(peer = %peer.spiffe_id, serial = %peer.serial, %reason, "renewal refused");
            super::audit::audit_refusal(&state, &peer, "svid/renew", &reason).await;
            return Err(ApiError::Refused(reason));
        }
    };
    let svid = sign(&state, &csr, &peer.spiffe_id, Some(name), state.svid_ttl)
        .await
        .map_err(|e| {
            tracing::warn!(peer = %peer.spiffe_id, error = %e, "renewal refused");
            e
        })?;
    record_endpoint(&state, &agent, req.endpoint.as_deref()).await?;
    respond(&state, &svid)
}

/// The agent `peer` may renew as, or why it may not.
async fn renewable(
    state: &AppState,
    peer: &ward_identity::PeerIdentity,
) -> Result<Result<(ward_core::AgentName, crate::store::Agent), String>, ApiError> {
    let Some(name) = peer.spiffe_id.agent_name() else {
        return Ok(Err(format!("{} is not an agent identity", peer.spiffe_id)));
    };
    let Some(agent) = state.store.agent(&name).await? else {
        return Ok(Err(format!("agent {name} is not registered")));
    };
    if !agent.status.may_renew() {
        return Ok(Err(format!(
            "agent {name} is {}; renewal refused",
            agent.status
        )));
    }
    if state.store.is_revoked(&name, peer.serial.as_str()).await? {
        return Ok(Err(format!(
            "the certificate {} is revoked; renewal refused",
            peer.serial
        )));
    }
    Ok(Ok((name, agent)))
}

/// Refuses an endpoint that is not `host:port`, before anything is spent.
fn check_endpoint(endpoint: Option<&str>) -> Result<(), ApiError> {
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    let valid = endpoint.len() <= 255
        && endpoint.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "endpoint {endpoint:?} must be host:port (the proxy's inbound mTLS address)"
        )))
    }
}

/// Stores the proxy's advertised endpoint when it changed (a change is a
/// registry revision every watcher sees, so unchanged ones are skipped).
async fn record_endpoint(
    state: &AppState,
    agent: &crate::store::Agent,
    endpoint: Option<&str>,
) -> Result<(), ApiError> {
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    if agent.endpoint.as_deref() == Some(endpoint) {
        return Ok(());
    }
    state
        .store
        .update_agent(
            &agent.name,
            crate::store::AgentUpdate {
                attributes: None,
                endpoint: Some(Some(endpoint.to_owned())),
            },
            state.now().unix_timestamp(),
        )
        .await?;
    Ok(())
}

pub(crate) async fn bundle(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    bundle_json(&state).map(Json)
}

async fn sign(
    state: &AppState,
    csr: &[u8],
    id: &SpiffeId,
    agent: Option<ward_core::AgentName>,
    ttl: std::time::Duration,
) -> Result<X509Svid, ApiError> {
    let now = state.now();
    let authority = state.authorities.current();
    let svid = authority.ca.sign_csr(csr, id, ttl, now)?;
    state
        .store
        .record_certificate(&IssuedCert {
            serial: svid.leaf().serial.to_string(),
            spiffe_id: id.clone(),
            agent,
            issued_at: now.unix_timestamp(),
            not_after: svid.leaf().not_after,
            authority: Some(authority.id.clone()),
        })
        .await?;
    Ok(svid)
}

fn respond(state: &AppState, svid: &X509Svid) -> Result<Json<SvidResponse>, ApiError> {
    Ok(Json(SvidResponse {
        spiffe_id: svid.spiffe_id().clone(),
        svid: svid.to_pem(),
        serial: svid.leaf().serial.to_string(),
        not_after: svid.leaf().not_after,
        bundle: bundle_json(state)?,
    }))
}

pub(super) fn bundle_json(state: &AppState) -> Result<serde_json::Value, ApiError> {
    let text = state
        .authorities
        .current()
        .bundle
        .to_json()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| ApiError::Internal(e.to_string()))
}

fn decode_csr(b64: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| {
            ApiError::BadRequest(
                "csr must be the base64 (standard alphabet) of a DER PKCS#10 request".to_owned(),
            )
        })
}
