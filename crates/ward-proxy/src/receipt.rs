//! Receipts: telling the server which control-plane revision this proxy
//! enforces, right after each change is applied and every few seconds
//! otherwise (the heartbeat is how the server knows the proxy is there).
//! `ward agent revoke --wait` and `ward proxy list` read them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use ward_client::{Client, Method};
use ward_core::drain::Watch;

use crate::Shared;

/// Report interval while nothing changes; the server counts a proxy as
/// connected for three of these.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Longest pause between reports the server refuses (a revoked or retired
/// agent): each refusal is an audit record on the server, so a refused
/// proxy backs off (doubling from [`HEARTBEAT`]) instead of adding one every
/// heartbeat; a new identity (re-enrollment) resets it.
pub const REFUSED_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Reports until `watch` signals.
pub async fn run(shared: Arc<Shared>, watch: Watch) {
    let shutdown = watch.signaled();
    tokio::pin!(shutdown);
    let mut applied = shared.applied.subscribe();
    let mut client: Option<(u64, Client)> = None;
    // (identity generation refused, pause) while the server refuses us.
    let mut refused: Option<(u64, Duration)> = None;
    loop {
        let revision = *applied.borrow_and_update();
        let generation = shared.identity.generation();
        if refused.is_some_and(|(g, _)| g != generation) {
            refused = None;
        }
        let mut pause = HEARTBEAT;
        if revision > 0 {
            match report(&shared, &mut client, revision).await {
                Ok(()) => refused = None,
                Err(e) if e.status() == Some(403) => {
                    let next = next_pause(refused.map(|(_, p)| p));
                    tracing::warn!(error = %e, retry_in = ?next, "the server refuses this proxy's receipts");
                    refused = Some((generation, next));
                    pause = next;
                    client = None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, revision, "receipt not delivered; the next one carries it");
                    client = None;
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            // A new revision is reported at once, unless the server refuses
            // us: then only after the pause (or a new identity).
            changed = applied.changed(), if refused.is_none() => if changed.is_err() { return },
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// The pause after one more refusal, given the previous one.
fn next_pause(previous: Option<Duration>) -> Duration {
    previous.map_or(HEARTBEAT, |p| (p * 2).min(REFUSED_BACKOFF_MAX))
}

/// Why a receipt was not delivered.
#[derive(Debug)]
enum ReportError {
    /// The server answered with an error.
    Server(ward_client::ClientError),
    /// No client could be built, or another local failure.
    Local(String),
}

impl ReportError {
    fn status(&self) -> Option<u16> {
        match self {
            Self::Server(e) => e.status(),
            Self::Local(_) => None,
        }
    }
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server(e) => e.fmt(f),
            Self::Local(e) => f.write_str(e),
        }
    }
}

async fn report(
    shared: &Shared,
    client: &mut Option<(u64, Client)>,
    revision: u64,
) -> Result<(), ReportError> {
    // The client holds the SVID it was built with: rebuild after rotation.
    let generation = shared.identity.generation();
    if client.as_ref().is_none_or(|(g, _)| *g != generation) {
        *client = Some((
            generation,
            shared.server_client().map_err(ReportError::Local)?,
        ));
    }
    let Some((_, api)) = client.as_ref() else {
        return Ok(());
    };
    let _: serde_json::Value = api
        .call(
            Method::POST,
            "/v1/receipts",
            Some(&json!({ "revision": revision })),
        )
        .await
        .map_err(ReportError::Server)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_receipts_back_off_to_a_bound() {
        let mut pause = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let next = next_pause(pause);
            seen.push(next.as_secs());
            pause = Some(next);
        }
        assert_eq!(seen, vec![5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
    }
}
