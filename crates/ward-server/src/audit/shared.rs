//! The audit log when several replicas share one PostgreSQL database.
//!
//! Exactly one replica sequences: the holder of the sequencer lease
//! ([`crate::audit_db::SequencerLease`]). It runs the ordinary sequencer
//! over the database's tiles ([`DbTileStore`], every write fenced by the
//! lease epoch, so a replica that lost the lease while paused cannot write).
//! Every replica accepts batches: the handler validates them, stores them
//! in `audit_queue` (durable), and answers the proxy once the sequencing
//! replica has appended them and marked the row done — so the proxy's
//! acknowledgement still means "durably in the tree". The lease holder
//! drains the queue in arrival order, skips records at or below each
//! proxy's high-water mark (re-sends racing through two replicas are logged
//! once), and renews its lease; if it dies, another replica takes over when
//! the lease expires ([`LEASE_TTL`]) and re-opens the log from the database.
//!
//! Readers on every replica read tiles from the database and follow the
//! size of the newest signed checkpoint (at most a second behind).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use tokio::runtime::Handle;
use tokio::sync::watch;
use ward_audit::checkpoint::Origin;
use ward_audit::note::NoteSigner;
use ward_audit::{LogPath, SignedCheckpoint};
use ward_core::drain::Watch;

use super::index;
use super::{Appended, AuditError, AuditLog, SharedStore, chain};
use crate::audit_db::{DbTileStore, SequencerLease};
use crate::store::{Store, now_ms};

/// How long a lease lasts without renewal: the fail-over time.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How long a handler waits for its batch to be sequenced before answering
/// 503 (the batch stays queued and is sequenced; the proxy's retry is then
/// skipped as already logged).
const WAIT: Duration = Duration::from_secs(15);
/// Queue poll interval of the sequencing replica and of waiting handlers.
const POLL: Duration = Duration::from_millis(10);
/// Rows one drain takes.
const DRAIN_ROWS: i64 = 64;

/// Opens the log for a replica of a shared database: starts the task that
/// competes for the lease and sequences while holding it, and the task that
/// follows the checkpoint. `key_text` is the signing key (the same on every
/// replica: `ward server init` writes it into the data directory).
pub fn open(
    store: &Store,
    origin: Origin,
    signer: &NoteSigner,
    lease_ttl: Duration,
    watch: Watch,
) -> Result<AuditLog, AuditError> {
    let handle = Handle::current();
    let reader: SharedStore = Arc::new(DbTileStore::new(store, handle.clone()));
    let key_text = signer.private_key_string().map_err(|e| AuditError::Open {
        dir: origin.as_str().to_owned(),
        reason: format!("signing key: {e}"),
    })?;
    let key = move || NoteSigner::from_private_key_string(&key_text).map_err(|e| e.to_string());
    let (size_tx, size) = watch::channel(0);
    let log = AuditLog::queued(
        store.clone(),
        reader.clone(),
        origin.clone(),
        signer.verifier().clone(),
        size,
    );
    tokio::spawn(follow_checkpoint(log.clone(), size_tx, watch.clone()));
    tokio::spawn(lead(
        store.clone(),
        handle,
        origin,
        Box::new(key),
        lease_ttl,
        watch,
    ));
    Ok(log)
}

/// Queues a validated batch and waits until the sequencing replica has
/// appended it.
pub(super) async fn enqueue_and_wait(
    store: &Store,
    proxy: Option<&str>,
    first_seq: u64,
    records: Vec<Vec<u8>>,
) -> Result<Appended, AuditError> {
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| AuditError::Append("no randomness".into()))?;
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut text = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            text.push(b'\n');
        }
        text.extend_from_slice(r);
    }
    // Records are canonical JSON: UTF-8 without raw newlines.
    let text = String::from_utf8(text).map_err(|e| AuditError::Append(e.to_string()))?;
    let db = |e: sqlx::Error| AuditError::Append(format!("audit queue: {e}"));
    sqlx::query(
        "INSERT INTO audit_queue (id, created_at, proxy, first_seq, records, state) \
         VALUES ($1, $2, $3, $4, $5, 'queued')",
    )
    .bind(id.clone())
    .bind(now_ms())
    .bind(proxy.map(str::to_owned))
    .bind(to_i64(first_seq))
    .bind(text)
    .execute(store.pool())
    .await
    .map_err(db)?;
    let deadline = Instant::now() + WAIT;
    loop {
        tokio::time::sleep(POLL).await;
        let row = sqlx::query(
            "SELECT state, first_index, appended, tree_size FROM audit_queue WHERE id = $1",
        )
        .bind(id.clone())
        .fetch_optional(store.pool())
        .await
        .map_err(db)?;
        if let Some(row) = row {
            let state: String = row.try_get(0).map_err(db)?;
            if state == "done" {
                let get = |i: usize| -> Result<u64, AuditError> {
                    let v: Option<i64> = row.try_get(i).map_err(db)?;
                    Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
                };
                let appended = Appended {
                    first_index: get(1)?,
                    count: get(2)?,
                    tree_size: get(3)?,
                };
                let _ = sqlx::query("DELETE FROM audit_queue WHERE id = $1")
                    .bind(id.clone())
                    .execute(store.pool())
                    .await;
                return Ok(appended);
            }
        }
        if Instant::now() > deadline {
            return Err(AuditError::Busy);
        }
    }
}

type KeyFn = Box<dyn Fn() -> Result<NoteSigner, String> + Send + Sync>;

struct Leading {
    lease: SequencerLease,
    log: AuditLog,
    renewed: Instant,
}

/// Competes for the lease; while holding it, sequences the queue.
async fn lead(
    store: Store,
    handle: Handle,
    origin: Origin,
    key: KeyFn,
    ttl: Duration,
    watch: Watch,
) {
    let replica = replica_id();
    let shutdown = watch.signaled();
    tokio::pin!(shutdown);
    let mut leading: Option<Leading> = None;
    let mut marks: HashMap<String, u64> = HashMap::new();
    let mut last_try: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            () = tokio::time::sleep(POLL) => {}
        }
        match leading.as_mut() {
            None => {
                if last_try.is_some_and(|t| t.elapsed() < ttl / 10) {
                    continue;
                }
                last_try = Some(Instant::now());
                match SequencerLease::try_acquire(&store, &replica, ttl, now_ms()).await {
                    Ok(Some(lease)) => match start(&store, &handle, &origin, &key, &lease).await {
                        Ok(log) => {
                            tracing::info!(epoch = lease.epoch(), %replica, "this replica now sequences the audit log");
                            marks.clear();
                            leading = Some(Leading {
                                lease,
                                log,
                                renewed: Instant::now(),
                            });
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "opening the audit log as sequencer failed");
                            let _ = lease.release(&store).await;
                        }
                    },
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "audit sequencer lease: acquire failed"),
                }
            }
            Some(current) => {
                if current.renewed.elapsed() >= ttl / 3 {
                    match current.lease.renew(&store, now_ms()).await {
                        Ok(true) => current.renewed = Instant::now(),
                        Ok(false) => {
                            tracing::warn!(
                                epoch = current.lease.epoch(),
                                "audit sequencer lease lost; another replica sequences now"
                            );
                            stop(leading.take()).await;
                            continue;
                        }
                        // A failed renewal is retried; the fence keeps a
                        // takeover safe meanwhile.
                        Err(e) => tracing::warn!(error = %e, "audit sequencer lease: renew failed"),
                    }
                }
                if let Err(e) = drain(&store, &current.log, &mut marks).await {
                    tracing::warn!(error = %e, "sequencing the audit queue failed; retrying");
                    // The lease may be gone (fenced write): check at once.
                    current.renewed = Instant::now().checked_sub(ttl).unwrap_or_else(Instant::now);
                    marks.clear();
                }
            }
        }
    }
    if let Some(current) = leading {
        let lease = current.lease;
        let log = current.log;
        let _ = tokio::task::spawn_blocking(move || log.stop()).await;
        let _ = lease.release(&store).await;
    }
}

async fn start(
    store: &Store,
    handle: &Handle,
    origin: &Origin,
    key: &KeyFn,
    lease: &SequencerLease,
) -> Result<AuditLog, String> {
    let tiles: SharedStore = Arc::new(DbTileStore::fenced(store, handle.clone(), lease));
    let signer = key()?;
    let origin = origin.clone();
    // Opening reads and writes the database through `block_on`: off the
    // runtime's worker threads.
    tokio::task::spawn_blocking(move || AuditLog::start(tiles, origin, signer))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

async fn stop(leading: Option<Leading>) {
    if let Some(current) = leading {
        let log = current.log;
        let _ = tokio::task::spawn_blocking(move || log.stop()).await;
    }
}

/// One queued row of a drain: where its fresh records sit in the combined
/// append, and the proxy mark it moves.
struct Done {
    id: String,
    offset: usize,
    count: usize,
    mark: Option<(String, u64)>,
}

/// Appends the oldest queued batches in one append and marks them done.
async fn drain(
    store: &Store,
    log: &AuditLog,
    marks: &mut HashMap<String, u64>,
) -> Result<usize, String> {
    let rows = sqlx::query(
        "SELECT id, proxy, first_seq, records FROM audit_queue WHERE state = 'queued' \
         ORDER BY created_at, id LIMIT $1",
    )
    .bind(DRAIN_ROWS)
    .fetch_all(store.pool())
    .await
    .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut all: Vec<Vec<u8>> = Vec::new();
    let mut done: Vec<Done> = Vec::new();
    for row in &rows {
        let id: String = row.try_get(0).map_err(|e| e.to_string())?;
        let proxy: Option<String> = row.try_get(1).map_err(|e| e.to_string())?;
        let first_seq =
            u64::try_from(row.try_get::<i64, _>(2).map_err(|e| e.to_string())?).unwrap_or(0);
        let text: String = row.try_get(3).map_err(|e| e.to_string())?;
        let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
        let count = lines.len() as u64;
        let mut skip = 0u64;
        let mut mark = None;
        if let Some(p) = &proxy
            && count > 0
        {
            let through = match marks.get(p) {
                Some(m) => Some(*m),
                None => index::ingested_through(store.pool(), p)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            if let Some(t) = through
                && t >= first_seq
            {
                skip = (t - first_seq + 1).min(count);
            }
            let last = first_seq + count - 1;
            mark = Some((p.clone(), last.max(through.unwrap_or(0))));
        }
        let offset = all.len();
        all.extend(
            lines
                .iter()
                .skip(usize::try_from(skip).unwrap_or(usize::MAX))
                .map(|l| l.as_bytes().to_vec()),
        );
        done.push(Done {
            id,
            offset,
            count: all.len() - offset,
            mark: mark.clone(),
        });
        if let Some((p, last)) = mark {
            marks.insert(p, last);
        }
    }
    let appended = log.append(all).await.map_err(|e| e.to_string())?;
    let mut tx = store.pool().begin().await.map_err(|e| e.to_string())?;
    let now = now_ms();
    for Done {
        id,
        offset,
        count,
        mark,
    } in &done
    {
        sqlx::query(
            "UPDATE audit_queue SET state = 'done', first_index = $1, appended = $2, tree_size = $3 WHERE id = $4",
        )
        .bind(to_i64(appended.first_index + *offset as u64))
        .bind(to_i64(*count as u64))
        .bind(to_i64(appended.tree_size))
        .bind(id.clone())
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        if let Some((proxy, last)) = mark {
            sqlx::query(
                "INSERT INTO audit_ingest (proxy, through_seq, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (proxy) DO UPDATE SET through_seq = excluded.through_seq, updated_at = excluded.updated_at \
                 WHERE audit_ingest.through_seq < excluded.through_seq",
            )
            .bind(proxy.clone())
            .bind(to_i64(*last))
            .bind(now / 1000)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    // Rows whose handler gave up waiting (it answered 503) are not needed.
    sqlx::query("DELETE FROM audit_queue WHERE state = 'done' AND created_at < $1")
        .bind(now - 60_000)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(rows.len())
}

/// Follows the size of the newest signed checkpoint in the database.
async fn follow_checkpoint(log: AuditLog, size: watch::Sender<u64>, watch: Watch) {
    let shutdown = watch.signaled();
    tokio::pin!(shutdown);
    loop {
        match log.read(LogPath::Checkpoint).await {
            Ok(Some(note)) => match SignedCheckpoint::open(
                &note,
                std::slice::from_ref(log.verifier()),
                log.origin(),
            ) {
                Ok(cp) => {
                    size.send_if_modified(|s| {
                        let new = cp.checkpoint().size().get();
                        let changed = *s != new;
                        *s = new;
                        changed
                    });
                }
                Err(e) => {
                    tracing::error!(error = %chain(&e), "the audit checkpoint in the database does not verify");
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading the audit checkpoint failed"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Unique per process: renewing under another process's holder name would
/// be taken for a re-acquisition.
fn replica_id() -> String {
    let mut raw = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut raw);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_owned());
    let tail: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{}-{tail}", std::process::id())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use std::collections::HashSet;

    use ward_audit::note::KeyName;
    use ward_audit::record::{AuditRecord, BodyDigest, Decision, RequestDigest, UnixMillis};

    use super::*;

    fn record(proxy: &str, id: &str) -> Vec<u8> {
        AuditRecord {
            time: UnixMillis::new(1_700_000_000_000).unwrap(),
            decision_id: id.to_owned(),
            proxy_id: proxy.to_owned(),
            principal: None,
            action: "GET".to_owned(),
            resource: "Agent::\"a\"".to_owned(),
            decision: Decision::Allow,
            policies: vec![],
            reasons: vec![],
            policy_version: "v".to_owned(),
            trace_id: None,
            peer_cert_serial: None,
            request: RequestDigest {
                body_sha256: BodyDigest::of(b""),
                method: "GET".to_owned(),
                path: "/".to_owned(),
            },
            rpc: None,
        }
        .encode()
        .unwrap()
    }

    /// Two replicas on one PostgreSQL database: batches accepted by either
    /// are sequenced once, by the lease holder; re-sends racing through both
    /// replicas are logged once; when the holder stops, the other takes
    /// over and continues the same log, which verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_one_sequencer_and_hand_it_over() {
        let Some(url) = ward_testkit::postgres_url().await else {
            return;
        };
        let one = Store::open(&url).await.unwrap();
        let two = Store::open(&url).await.unwrap();
        let signer = NoteSigner::generate(KeyName::new("ward.test/ward-audit").unwrap()).unwrap();
        let origin = Origin::new("ward.test/ward-audit").unwrap();
        let ttl = Duration::from_millis(800);
        let (t1, w1) = ward_core::drain::channel();
        let (_t2, w2) = ward_core::drain::channel();
        let log1 = open(&one, origin.clone(), &signer, ttl, w1).unwrap();
        let log2 = open(&two, origin.clone(), &signer, ttl, w2).unwrap();

        let mut tasks = Vec::new();
        for p in 0..4u64 {
            let proxy = format!("spiffe://ward.test/agent/p{p}");
            let batch: Vec<Vec<u8>> = (0..50)
                .map(|i| record(&proxy, &format!("{p}-{i}")))
                .collect();
            // The same batch through both replicas at once: a re-send.
            for log in [log1.clone(), log2.clone()] {
                let (proxy, batch) = (proxy.clone(), batch.clone());
                tasks.push(tokio::spawn(
                    async move { log.ingest(&proxy, 0, batch).await },
                ));
            }
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let read_all = |log: AuditLog, want: u64| async move {
            for _ in 0..200 {
                if *log.size().borrow() >= want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let size = *log.size().borrow();
            let store = log.store().clone();
            tokio::task::spawn_blocking(move || AuditLog::entries(&*store, 0, size, size))
                .await
                .unwrap()
                .unwrap()
        };
        let entries = read_all(log2.clone(), 200).await;
        let ids: Vec<String> = entries
            .iter()
            .map(|(_, e)| AuditRecord::decode(e).unwrap().decision_id)
            .collect();
        assert_eq!(ids.len(), 200, "each record once: {} entries", ids.len());
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);

        // Replica one stops (drain); replica two sequences from now on,
        // whichever held the lease before.
        t1.drain(Duration::from_secs(5)).await;
        let proxy = "spiffe://ward.test/agent/late";
        let landed = log2
            .ingest(proxy, 0, vec![record(proxy, "late-0")])
            .await
            .unwrap();
        assert_eq!(landed.first_index, 200);
        let entries = read_all(log2.clone(), 201).await;
        assert_eq!(entries.len(), 201);

        // The log in the database verifies against its newest checkpoint.
        let store = log2.store().clone();
        let verifier = signer.verifier().clone();
        let verified = tokio::task::spawn_blocking(move || {
            let note = store.read(&LogPath::Checkpoint).unwrap().unwrap();
            ward_audit::verify_log(&*store, &[note], &verifier, &origin)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(verified.size.get(), 201);
    }
}
