//! The watch stream (`GET /v1/watch`): a snapshot, then every change, as
//! server-sent events, each tagged with its revision.
//!
//! Wire format (`text/event-stream`):
//!
//! ```text
//! event: snapshot            id: <rev>   data: {"revision", "trust_domain", "agents", "revocations", "bundle", "issuing", "policy", "policy_signing_key"}
//! event: change              id: <rev>   data: {"revision", "kind", "subject", "payload", "at"}
//! event: caught-up           id: <rev>   data: {"revision"}   (once, after the backlog)
//! ```
//!
//! A client resumes with `?since=<rev>` (or the standard `Last-Event-ID`
//! header) and gets only the changes after that revision — from any replica,
//! since the change log lives in the shared store. Without a revision, or with
//! one the store has never reached (a restored or different database), it
//! gets a snapshot first.
//!
//! Consistency: the snapshot is read *after* its revision `r` is taken, so it
//! reflects at least `r`; changes after `r` follow and re-applying one the
//! snapshot already showed is harmless (every change carries the full new
//! state of its subject). No change is ever skipped: the stream reads the
//! change log by revision, and notifications only say when to look.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::{ApiError, AppState, Caller};
use base64::Engine as _;

use crate::store::{Agent, Change, PolicyActivation, Revocation};

/// Changes read from the store per query.
const PAGE: u32 = 500;
/// How often an idle stream re-reads the change log even without a
/// notification (a safety net for a missed `NOTIFY`).
const POLL: Duration = Duration::from_secs(5);
/// Comment lines that keep idle connections (and NATs) alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/watch` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Resume after this revision.
    #[serde(default)]
    pub since: Option<u64>,
}

/// The first event of a stream that does not resume.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// The state reflects at least this revision.
    pub revision: u64,
    /// The trust domain.
    pub trust_domain: String,
    /// Every registered agent, in any status.
    pub agents: Vec<Agent>,
    /// Every revocation.
    pub revocations: Vec<Revocation>,
    /// The trust bundle (SPIFFE bundle JSON).
    pub bundle: serde_json::Value,
    /// The CA authority issuing now; a proxy whose SVID another authority
    /// signed re-enrolls.
    pub issuing: String,
    /// The active policy version with its files and signature, once one
    /// was pushed.
    pub policy: Option<PolicyActivation>,
    /// The server's policy-signing public key (Ed25519, base64 of the raw
    /// 32 bytes); a bundle whose signature does not verify must be refused.
    pub policy_signing_key: String,
}

pub(crate) async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<WatchQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let peer = caller.0.as_ref().ok_or(ApiError::Unauthenticated)?;
    // A revoked credential must not keep learning the registry.
    if let Some(agent) = peer.spiffe_id.agent_name()
        && state.store.is_revoked(&agent, peer.serial.as_str()).await?
    {
        tracing::warn!(peer = %peer.spiffe_id, "watch refused: credential revoked");
        return Err(ApiError::Refused(format!("{} is revoked", peer.spiffe_id)));
    }
    let since = match query.since {
        Some(rev) => Some(rev),
        None => last_event_id(&headers)?,
    };
    // Subscribe before reading anything so no notification is missed between
    // the first read and the first wait.
    let notify = state.store.subscribe();
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(pump(state, since, notify, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be a revision number".to_owned()))
}

/// Feeds one stream until the client goes away or the server stops.
async fn pump(
    state: AppState,
    since: Option<u64>,
    mut notify: broadcast::Receiver<u64>,
    tx: mpsc::Sender<Event>,
) {
    let mut stopping = state.stopping.subscribe();
    let mut last = match start(&state, since, &tx).await {
        Ok(Some(rev)) => rev,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "watch stream could not start");
            return;
        }
    };
    let mut announced = false;
    loop {
        // Drain the log up to its end, a page at a time.
        loop {
            let changes = match state.store.changes_since(last, PAGE).await {
                Ok(changes) => changes,
                Err(e) => {
                    // Ending the stream makes the client reconnect and resume;
                    // that is better than a stream that silently stops moving.
                    tracing::error!(error = %e, "watch stream: reading changes failed");
                    return;
                }
            };
            let full = changes.len() >= PAGE as usize;
            for change in changes {
                let Some(event) = change_event(&change) else {
                    return;
                };
                if tx.send(event).await.is_err() {
                    return;
                }
                last = change.revision;
            }
            if !full {
                break;
            }
        }
        if !announced {
            // The backlog is out: a restarting proxy may serve from here.
            announced = true;
            let event = Event::default()
                .event("caught-up")
                .id(last.to_string())
                .data(format!("{{\"revision\":{last}}}"));
            if tx.send(event).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            () = tx.closed() => return,
            received = notify.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = received {
                    return;
                }
                // Lagged or a new revision: either way, re-read the log.
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Sends the snapshot when one is due; returns the revision to continue
/// from, or `None` when the client is gone.
async fn start(
    state: &AppState,
    since: Option<u64>,
    tx: &mpsc::Sender<Event>,
) -> Result<Option<u64>, ApiError> {
    let current = state.store.revision().await?;
    if let Some(rev) = since
        && rev <= current
    {
        return Ok(Some(rev));
    }
    let authorities = state
        .authorities
        .snapshot(&state.store)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let snapshot = Snapshot {
        revision: current,
        trust_domain: state.authorities.trust_domain().to_string(),
        agents: state.store.agents().await?,
        revocations: state.store.revocations().await?,
        bundle: authorities.bundle,
        issuing: authorities.issuing,
        policy: state
            .store
            .active_policy()
            .await?
            .map(|p| PolicyActivation {
                version: p.version,
                signature: p.signature,
                files: p.files,
            }),
        policy_signing_key: base64::engine::general_purpose::STANDARD
            .encode(state.policy_signer.public_key_raw()),
    };
    let event = Event::default()
        .event("snapshot")
        .id(current.to_string())
        .json_data(&snapshot)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(tx.send(event).await.ok().map(|()| current))
}

fn change_event(change: &Change) -> Option<Event> {
    // A `Change` is plain data and always serialises; if that ever failed,
    // ending the stream (the client reconnects and resumes) is the only safe
    // answer — skipping a revision could skip a revocation.
    Event::default()
        .event("change")
        .id(change.revision.to_string())
        .json_data(change)
        .inspect_err(
            |e| tracing::error!(error = %e, revision = change.revision, "unserialisable change"),
        )
        .ok()
}
