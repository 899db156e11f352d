//! Shipping the audit spool to the server's log (DESIGN.md §4 invariant 4).
//!
//! One task per proxy reads the oldest unacknowledged records, posts them to
//! `POST /v1/audit/records?first_seq=N` over mTLS with the proxy's SVID, and
//! deletes them only after the server answers that they are durably in the
//! tree. Any failure — server down, refusal, timeout — keeps the records and
//! retries with capped exponential backoff: a record is shipped at least
//! once and never dropped. The server skips records it already holds, so a
//! lost acknowledgement does not duplicate them.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use ward_core::drain::Watch;

use crate::Shared;

/// Records per shipped batch (the server takes at most 10,000).
pub const BATCH_RECORDS: usize = 8000;
/// Bytes per shipped batch (the server takes at most 8 MiB). Each append
/// costs the server's log a fixed set of partial-tile writes, fsyncs and an
/// index transaction whatever its size, so under load a few large batches
/// beat many small ones.
pub const BATCH_BYTES: usize = 4 << 20;
/// Pause when the spool is empty.
const IDLE: Duration = Duration::from_millis(100);
/// Wait after shipping a partial batch.
const LINGER: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct Ingested {
    through_seq: u64,
}

/// Ships until `watch` signals; what is left stays spooled for the next
/// start.
pub async fn run(shared: Arc<Shared>, watch: Watch) {
    let shutdown = watch.signaled();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(250);
    loop {
        let wait = match ship_once(&shared).await {
            Ok(Shipped { records: 0, .. }) => IDLE,
            Ok(Shipped { records, full }) => {
                shared.metrics.audit_shipped.inc_by(records);
                backoff = Duration::from_millis(250);
                // A full batch means more are waiting: go on at once. A
                // partial one lingers, so that under load batches grow
                // instead of each one costing the server an append, an
                // index transaction and their fsyncs, and the spool an ack
                // fsync (records are durable in the spool meanwhile).
                if full { Duration::ZERO } else { LINGER }
            }
            Err(e) => {
                shared.metrics.audit_ship_failures.inc();
                tracing::warn!(error = %e, retry_in = ?backoff, "shipping audit records failed; they stay in the spool");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// What one round shipped.
#[derive(Debug, Clone, Copy)]
struct Shipped {
    /// Records the server acknowledged.
    records: u64,
    /// The batch stopped at a size limit, not at the end of the spool.
    full: bool,
}

/// Whether a batch of `records` records and `bytes` bytes was cut by a
/// limit: the record limit, or the byte limit, which a batch within one
/// largest record of it may have met. A batch cut by bytes once counted as
/// partial and lingered: with ~600-byte records, shipping then topped out
/// below what one proxy decides, and the spool's backlog grew under load
/// until it filled.
fn is_full(records: usize, bytes: usize) -> bool {
    records >= BATCH_RECORDS
        || bytes.saturating_add(ward_audit::bundle::MAX_ENTRY_LEN) > BATCH_BYTES
}

/// Ships one batch.
async fn ship_once(shared: &Arc<Shared>) -> Result<Shipped, String> {
    let audit = shared.audit.clone();
    let batch = tokio::task::spawn_blocking(move || audit.next_batch(BATCH_RECORDS, BATCH_BYTES))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the spool: {e}"))?;
    let Some(last) = batch.last_seq() else {
        return Ok(Shipped {
            records: 0,
            full: false,
        });
    };
    let first = batch.first_seq();
    let mut body = Vec::with_capacity(batch.records().iter().map(|r| r.len() + 1).sum());
    for record in batch.records() {
        // Canonical records contain no raw newline (JSON escapes it).
        body.extend_from_slice(record);
        body.push(b'\n');
    }
    let full = is_full(batch.records().len(), body.len());
    let client = shared.server_client()?;
    let answer: Ingested = client
        .post_bytes(
            &format!("/v1/audit/records?first_seq={first}"),
            "application/x-ndjson",
            body,
        )
        .await
        .map_err(|e| e.to_string())?;
    if answer.through_seq != last {
        return Err(format!(
            "the server acknowledged through {} but the batch ends at {last}; not deleting",
            answer.through_seq
        ));
    }
    let audit = shared.audit.clone();
    tokio::task::spawn_blocking(move || audit.ack(last))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("acknowledging the spool: {e}"))?;
    Ok(Shipped {
        records: last - first + 1,
        full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_full_at_either_limit_and_partial_below_both() {
        assert!(is_full(BATCH_RECORDS, 1000));
        assert!(is_full(10, BATCH_BYTES));
        // Within one largest record of the byte limit: the next record may
        // not have fitted.
        assert!(is_full(
            10,
            BATCH_BYTES - ward_audit::bundle::MAX_ENTRY_LEN + 1
        ));
        assert!(!is_full(
            10,
            BATCH_BYTES - ward_audit::bundle::MAX_ENTRY_LEN
        ));
        assert!(!is_full(BATCH_RECORDS - 1, 400 * (BATCH_RECORDS - 1)));
    }

    #[test]
    fn a_full_batch_fits_what_the_server_accepts() {
        use ward_server::api::audit::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
        // Checked when the tests compile. A batch's body is its records plus
        // one newline each.
        const { assert!(BATCH_BYTES + BATCH_RECORDS <= MAX_BATCH_BYTES) };
        const { assert!(BATCH_RECORDS <= MAX_BATCH_RECORDS) };
    }
}
