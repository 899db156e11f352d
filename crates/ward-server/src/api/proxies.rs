//! Receipts: which control-plane revision each proxy enforces.
//!
//! - `POST /v1/receipts {revision}` (a proxy's agent SVID): the revision it
//!   has applied; sent on every change and every [`HEARTBEAT`] otherwise.
//! - `GET /v1/proxies` (admins): every proxy that ever reported, with its
//!   applied revision, lag behind the store, when it was last heard from,
//!   and when its newest certificate expires.
//! - `GET /v1/receipts/{revision}?timeout_ms=N` (admins): waits until every
//!   connected proxy has applied `revision`, then lists who applied it and
//!   who has not — the answer to "is the revocation enforced everywhere?".
//!
//! "Connected" means heard from within [`CONNECTED_WITHIN`]. A proxy that
//! is not connected cannot be waited for; it is listed with the time its
//! certificate expires anyway, and it applies pending revocations when its
//! watch stream reconnects. Proxies of revoked or retired agents are not
//! counted: their credentials are refused everywhere already.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{ApiError, AppState, Caller, require_admin};
use crate::store::now_ms;

/// How often proxies report while nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A proxy heard from this recently counts as connected.
pub const CONNECTED_WITHIN: Duration = Duration::from_secs(15);
/// Longest wait a caller may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A receipt.
#[derive(Debug, Deserialize)]
pub(crate) struct ReceiptBody {
    revision: u64,
}

/// One proxy as the server knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyState {
    /// The proxy's SPIFFE ID.
    pub spiffe_id: String,
    /// The agent it speaks for.
    pub agent: String,
    /// The revision it enforces.
    pub revision: u64,
    /// How many revisions it is behind the store.
    pub lag: u64,
    /// When it applied that revision (unix ms).
    pub applied_at: i64,
    /// When it last reported (unix ms).
    pub seen_at: i64,
    /// Heard from within the last 15 s.
    pub connected: bool,
    /// When its newest certificate expires (unix s), if known.
    pub cert_not_after: Option<i64>,
}

/// Who enforces a revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipts {
    /// The revision waited for.
    pub revision: u64,
    /// Connected proxies that apply it.
    pub applied: Vec<ProxyState>,
    /// Connected proxies that did not within the wait.
    pub pending: Vec<ProxyState>,
    /// Proxies not heard from recently: they apply it on reconnect, and
    /// their certificates expire at `cert_not_after` regardless.
    pub disconnected: Vec<ProxyState>,
    /// How long the server waited (ms).
    pub waited_ms: u64,
}

/// `POST /v1/receipts`.
pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ReceiptBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let peer = caller.0.as_ref().ok_or(ApiError::Unauthenticated)?;
    // A false receipt would make `revoke --wait` report enforcement that
    // did not happen: refusals are logged like any other.
    let Some(agent) = peer.spiffe_id.agent_name() else {
        let reason = "only a proxy's agent SVID reports receipts";
        super::audit::audit_refusal(&state, peer, "receipt/report", reason).await;
        return Err(ApiError::Forbidden(reason.into()));
    };
    if state.store.is_revoked(&agent, peer.serial.as_str()).await? {
        let reason = format!("{} is revoked", peer.spiffe_id);
        super::audit::audit_refusal(&state, peer, "receipt/report", &reason).await;
        return Err(ApiError::Refused(reason));
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO proxy_receipts (spiffe_id, agent, revision, applied_at, seen_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (spiffe_id) DO UPDATE SET \
           applied_at = CASE WHEN excluded.revision > proxy_receipts.revision THEN excluded.applied_at ELSE proxy_receipts.applied_at END, \
           revision = CASE WHEN excluded.revision > proxy_receipts.revision THEN excluded.revision ELSE proxy_receipts.revision END, \
           seen_at = excluded.seen_at",
    )
    .bind(peer.spiffe_id.to_string())
    .bind(agent.as_str().to_owned())
    .bind(i64::try_from(body.revision).unwrap_or(i64::MAX))
    .bind(now)
    .execute(state.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    Ok(Json(serde_json::json!({ "recorded": body.revision })))
}

/// Every proxy that counts (not revoked or retired), with its state.
pub(crate) async fn proxies(state: &AppState) -> Result<Vec<ProxyState>, ApiError> {
    let current = state.store.revision().await?;
    // One query: the wait below runs it every few milliseconds while the
    // fleet's receipts (writes) arrive, so it must stay cheap.
    let rows = sqlx::query(
        "SELECT r.spiffe_id, r.agent, r.revision, r.applied_at, r.seen_at, \
         (SELECT MAX(c.not_after) FROM certificates c WHERE c.spiffe_id = r.spiffe_id) \
         FROM proxy_receipts r JOIN agents a ON a.name = r.agent \
         WHERE a.status IN ('active', 'quarantined') ORDER BY r.agent",
    )
    .fetch_all(state.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    let now = now_ms();
    let within = i64::try_from(CONNECTED_WITHIN.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let get = |e: sqlx::Error| ApiError::Internal(e.to_string());
        let revision = u64::try_from(row.try_get::<i64, _>(2).map_err(get)?).unwrap_or(0);
        let seen_at: i64 = row.try_get(4).map_err(get)?;
        out.push(ProxyState {
            spiffe_id: row.try_get(0).map_err(get)?,
            agent: row.try_get(1).map_err(get)?,
            revision,
            lag: current.saturating_sub(revision),
            applied_at: row.try_get(3).map_err(get)?,
            seen_at,
            connected: now.saturating_sub(seen_at) <= within,
            cert_not_after: row.try_get(5).map_err(get)?,
        });
    }
    Ok(out)
}

/// `GET /v1/proxies`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ProxyState>>, ApiError> {
    require_admin(&state, &caller, "agent/list", None).await?;
    Ok(Json(proxies(&state).await?))
}

/// Query of the receipts wait.
#[derive(Debug, Deserialize)]
pub(crate) struct WaitQuery {
    timeout_ms: Option<u64>,
}

/// `GET /v1/receipts/{revision}`.
pub(crate) async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    Path(revision): Path<u64>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Receipts>, ApiError> {
    require_admin(&state, &caller, "agent/list", None).await?;
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(5000)).min(MAX_WAIT);
    let started = Instant::now();
    loop {
        let all = proxies(&state).await?;
        let (connected, disconnected): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|p| p.connected);
        let (applied, pending): (Vec<_>, Vec<_>) =
            connected.into_iter().partition(|p| p.revision >= revision);
        if pending.is_empty() || started.elapsed() >= timeout {
            return Ok(Json(Receipts {
                revision,
                applied,
                pending,
                disconnected,
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
