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

/// Reports until `watch` signals.
pub async fn run(shared: Arc<Shared>, watch: Watch) {
    let shutdown = watch.signaled();
    tokio::pin!(shutdown);
    let mut applied = shared.applied.subscribe();
    let mut client: Option<(u64, Client)> = None;
    loop {
        let revision = *applied.borrow_and_update();
        if revision > 0
            && let Err(e) = report(&shared, &mut client, revision).await
        {
            tracing::debug!(error = %e, revision, "receipt not delivered; the next one carries it");
            client = None;
        }
        tokio::select! {
            _ = &mut shutdown => return,
            changed = applied.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

async fn report(
    shared: &Shared,
    client: &mut Option<(u64, Client)>,
    revision: u64,
) -> Result<(), String> {
    // The client holds the SVID it was built with: rebuild after rotation.
    let generation = shared.identity.generation();
    if client.as_ref().is_none_or(|(g, _)| *g != generation) {
        *client = Some((generation, shared.server_client()?));
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
        .map_err(|e| e.to_string())?;
    Ok(())
}
