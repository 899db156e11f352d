//! Following the control plane: the watch stream, applied event by event,
//! persisted as last-known-good, and enforced at once — including on
//! connections that are already open.
//!
//! The stream resumes from the last applied revision on reconnect (any
//! server replica can serve it). While the server is unreachable the proxy
//! keeps enforcing the view it has (DESIGN.md §5); revocations that happened
//! meanwhile arrive, in order, on reconnect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use ward_core::drain::Watch;
use ward_identity::TrustBundle;

use ward_client::WatchEvent;

use crate::Shared;
use crate::view::View;

/// Reconnects back off from this…
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// …to this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Whether a starting proxy has caught up with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Not yet known.
    Pending,
    /// The stream delivered everything the server had when it connected.
    Done,
    /// The server could not be reached; serving the last-known-good view.
    Unreachable,
}

/// Live inbound connections by peer, so a revocation can cut them.
#[derive(Debug, Default)]
pub struct Conns {
    next: AtomicU64,
    map: Arc<Mutex<HashMap<u64, Conn>>>,
}

#[derive(Debug)]
struct Conn {
    agent: String,
    serial: String,
    cut: Arc<Notify>,
}

/// Deregisters a connection when it ends.
#[derive(Debug)]
pub struct ConnGuard {
    id: u64,
    map: Arc<Mutex<HashMap<u64, Conn>>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Conns {
    /// Registers a connection from `agent` with certificate `serial`; the
    /// returned notify fires when it must be cut.
    pub fn register(&self, agent: &str, serial: &str) -> (ConnGuard, Arc<Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let cut = Arc::new(Notify::new());
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Conn {
                    agent: agent.to_owned(),
                    serial: serial.to_owned(),
                    cut: Arc::clone(&cut),
                },
            );
        (
            ConnGuard {
                id,
                map: Arc::clone(&self.map),
            },
            cut,
        )
    }

    /// Cuts every connection whose peer `view` no longer admits; returns
    /// how many.
    pub fn cut(&self, view: &View) -> usize {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for conn in map.values() {
            let admitted = !view.is_revoked(&conn.agent, &conn.serial)
                && view.agents.get(&conn.agent).is_some_and(|a| a.is_active());
            if !admitted {
                // `notify_one` keeps a permit, so a connection that is not
                // waiting right now still sees it.
                conn.cut.notify_one();
                n += 1;
            }
        }
        n
    }
}

/// Follows the watch stream until shutdown.
pub async fn follow(shared: Arc<Shared>, watch: Watch) {
    let signaled = watch.signaled();
    tokio::pin!(signaled);
    let mut backoff = BACKOFF_MIN;
    loop {
        let outcome = tokio::select! {
            _ = &mut signaled => return,
            outcome = session(&shared) => outcome,
        };
        match outcome {
            Ok(applied) => {
                tracing::info!(applied, "watch stream ended by the server; reconnecting");
                if applied > 0 {
                    backoff = BACKOFF_MIN;
                }
            }
            Err(e) => {
                // A proxy starting while the server is down serves its
                // last-known-good view rather than nothing (DESIGN.md §5).
                shared.caught_up.send_if_modified(|state| {
                    let pending = *state == CatchUp::Pending;
                    if pending {
                        *state = CatchUp::Unreachable;
                    }
                    pending
                });
                tracing::warn!(error = %e, "watch stream failed; enforcing the last-known-good view")
            }
        }
        tokio::select! {
            _ = &mut signaled => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection to the stream; returns how many events it applied.
async fn session(shared: &Arc<Shared>) -> Result<u64, String> {
    let client = shared.server_client()?;
    let since = Some(shared.compiled().view.revision).filter(|r| *r > 0);
    let mut stream = client.watch(since).await.map_err(|e| e.to_string())?;
    tracing::info!(since, "watch stream connected");
    let mut applied = 0;
    while let Some(event) = stream.next().await.map_err(|e| e.to_string())? {
        if let WatchEvent::CaughtUp { revision } = event {
            tracing::debug!(revision, "watch stream caught up");
            shared.caught_up.send_replace(CatchUp::Done);
            continue;
        }
        let view = shared.compiled().view.apply(&event)?;
        apply(shared, view);
        applied += 1;
    }
    Ok(applied)
}

/// Enforces and persists `view`, then reports the revision to the server.
///
/// Enforcement comes first: a revocation must bite before anything else
/// happens. Persisting after it is safe — a crash in between restarts with
/// the older view and the stream re-delivers the change.
pub fn apply(shared: &Shared, view: View) {
    let old = shared.compiled();
    if old.view.bundle != view.bundle {
        match ward_core::TrustDomain::new(&view.trust_domain)
            .map_err(|e| e.to_string())
            .and_then(|td| {
                TrustBundle::from_json(td, view.bundle.to_string().as_bytes())
                    .map_err(|e| e.to_string())
            }) {
            Ok(bundle) => shared.set_bundle(bundle),
            Err(e) => tracing::error!(error = %e, "trust bundle from the server refused"),
        }
    }
    let revision = view.revision;
    let compiled = old.after(view);
    if compiled.policy_version() != old.policy_version() {
        tracing::info!(
            version = compiled.policy_version().unwrap_or("none"),
            "policy bundle activated"
        );
    }
    // New requests see the new view first; then open connections of
    // refused peers are cut.
    shared.install(compiled);
    let now = shared.compiled();
    let cut = shared.conns.cut(&now.view);
    let evicted = shared.peers.evict(&now.view);
    if cut > 0 || evicted > 0 {
        tracing::warn!(
            revision,
            cut,
            evicted,
            "connections of refused peers closed"
        );
    }
    match serde_json::to_vec(&now.view) {
        Ok(bytes) => {
            if let Err(e) = shared.state.save_view(&bytes) {
                tracing::error!(error = %e, "could not persist the view; enforcing it anyway");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not serialise the view"),
    }
    shared.applied.send_replace(revision);
}
