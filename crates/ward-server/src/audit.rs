//! The server's audit log: the one sequencer of the tamper-evident log every
//! proxy ships its decision records to (DESIGN.md §3, §4 invariant 4).
//!
//! - [`AuditLog`] owns a [`ward_audit::Log`] on a dedicated thread (the log
//!   core is synchronous and fsyncs): callers hand it batches, the thread
//!   group-commits every batch waiting at that moment in one append, and a
//!   batch is acknowledged only once that append is durable. It signs a
//!   checkpoint about once a second while the tree grows (and once a minute
//!   when it does not, so a quiet log is distinguishable from a stalled one).
//! - The tiles live in the data directory's `audit/` in the C2SP tlog-tiles
//!   layout (the embedded default); the API serves them read-only.
//! - [`index`] keeps the query index (agent, time, decision, policy) in the
//!   store. It is derived from the log and rebuilt from it, never the other
//!   way round, so it can lag but cannot disagree.
//!
//! Ingestion is at-least-once: a proxy deletes records only after the
//! acknowledgement, and the per-proxy high-water mark skips re-sent records.
//! A crash between the append and the mark's update can therefore log a
//! batch twice (same decision ids) but never lose one.

pub mod index;
pub mod shared;

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use ward_audit::bundle;
use ward_audit::checkpoint::Origin;
use ward_audit::note::{KeyName, NoteSigner, NoteVerifier};
use ward_audit::tile::{BundleId, FULL_WIDTH};
use ward_audit::{CheckpointPolicy, FsStore, LogPath, StoreError, TileStore, TreeSize};
use ward_core::TrustDomain;

/// Storage every reader of the log shares with the sequencer.
pub type SharedStore = Arc<dyn TileStore + Send + Sync>;

/// How often a growing log is checkpointed.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// An idle log is re-signed this often.
pub const CHECKPOINT_REFRESH: Duration = Duration::from_secs(60);
/// Most records one append takes; later batches wait for the next one.
const MAX_GROUP_RECORDS: usize = 64 * 1024;
/// Batches waiting for the sequencer before callers get "busy".
const QUEUE_DEPTH: usize = 1024;

/// Why the audit log could not open or append.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Opening or recovering the log failed.
    #[error("audit log in {dir}: {reason}")]
    Open {
        /// The log's directory.
        dir: String,
        /// Why.
        reason: String,
    },
    /// The append failed; nothing of the batch is acknowledged.
    #[error("audit log append failed: {0}")]
    Append(String),
    /// Too many batches are waiting; retry later.
    #[error("the audit sequencer is busy; retry")]
    Busy,
    /// The sequencer has stopped (shutdown).
    #[error("the audit sequencer has stopped")]
    Stopped,
    /// Reading the store failed.
    #[error("reading the audit log: {0}")]
    Read(String),
}

type Reply = oneshot::Sender<Result<Appended, AuditError>>;

enum Job {
    Append { records: Vec<Vec<u8>>, reply: Reply },
    Stop,
}

/// Where a batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Index of its first record.
    pub first_index: u64,
    /// Number of records.
    pub count: u64,
    /// Tree size after the append.
    pub tree_size: u64,
}

/// Handle on the log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sink: Sink,
    store: SharedStore,
    origin: Origin,
    verifier: NoteVerifier,
    size: watch::Receiver<u64>,
}

/// Where appends go.
#[derive(Clone)]
enum Sink {
    /// This process sequences: the sequencer thread.
    Local {
        jobs: SyncSender<Job>,
        thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    },
    /// Replicas share a database: batches go through its queue to whichever
    /// replica holds the sequencer lease ([`shared`]).
    Queue(crate::store::Store),
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.origin.as_str())
            .field("size", &*self.size.borrow())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log in `DIR/audit` with the signing
    /// key `DIR/audit-signing.key` (0600, created on first use), and starts
    /// the sequencer thread.
    pub fn open_in(data_dir: &Path, td: &TrustDomain) -> Result<Self, AuditError> {
        let dir = data_dir.join("audit");
        let open_err = |reason: String| AuditError::Open {
            dir: dir.display().to_string(),
            reason,
        };
        let store = FsStore::open(&dir).map_err(|e| open_err(chain(&e)))?;
        let checkpoint = store
            .read(&LogPath::Checkpoint)
            .map_err(|e| open_err(chain(&e)))?;
        let signer = signing_key_for_log(data_dir, td, checkpoint.as_deref()).map_err(open_err)?;
        let origin = Origin::new(signer.verifier().name().as_str())
            .map_err(|e| open_err(format!("origin: {e}")))?;
        Self::start(Arc::new(store), origin, signer)
    }

    /// Starts the sequencer over `store`.
    pub fn start(
        store: SharedStore,
        origin: Origin,
        signer: NoteSigner,
    ) -> Result<Self, AuditError> {
        let verifier = signer.verifier().clone();
        // Re-opening after a failed append needs the signer again; keep its
        // key text (zeroized on drop) rather than requiring `Clone` on keys.
        let key_text = signer.private_key_string().map_err(|e| AuditError::Open {
            dir: origin.as_str().to_owned(),
            reason: format!("signing key: {e}"),
        })?;
        let resign: Resign = Box::new(move || {
            NoteSigner::from_private_key_string(&key_text).map_err(|e| e.to_string())
        });
        let mut log = ward_audit::Log::open(store.clone(), origin.clone(), signer)
            .map_err(|e| AuditError::Open {
                dir: origin.as_str().to_owned(),
                reason: chain(&e),
            })?
            .with_policy(CheckpointPolicy {
                refresh_after: Some(CHECKPOINT_REFRESH),
            });
        // A checkpoint exists from the first moment, even for an empty log,
        // so clients always have something signed to start from.
        log.checkpoint(Instant::now())
            .map_err(|e| AuditError::Open {
                dir: origin.as_str().to_owned(),
                reason: chain(&e),
            })?;
        let (size_tx, size) = watch::channel(log.size().get());
        let (jobs, rx) = std::sync::mpsc::sync_channel(QUEUE_DEPTH);
        let sequencer = Sequencer {
            log,
            store: store.clone(),
            origin: origin.clone(),
            size: size_tx,
            resign,
        };
        let thread = std::thread::Builder::new()
            .name("ward-audit-sequencer".into())
            .spawn(move || sequencer.run(&rx))
            .map_err(|e| AuditError::Open {
                dir: origin.as_str().to_owned(),
                reason: format!("starting the sequencer thread: {e}"),
            })?;
        Ok(Self {
            sink: Sink::Local {
                jobs,
                thread: Arc::new(Mutex::new(Some(thread))),
            },
            store,
            origin,
            verifier,
            size,
        })
    }

    /// A handle for a replica of a shared database: appends are queued for
    /// the lease holder, `size` follows the newest checkpoint.
    pub(crate) fn queued(
        queue: crate::store::Store,
        store: SharedStore,
        origin: Origin,
        verifier: NoteVerifier,
        size: watch::Receiver<u64>,
    ) -> Self {
        Self {
            sink: Sink::Queue(queue),
            store,
            origin,
            verifier,
            size,
        }
    }

    /// Appends a proxy's batch that starts at its spool sequence
    /// `first_seq`. On a shared database the sequencing replica re-checks
    /// the proxy's high-water mark, so concurrent re-sends are logged once.
    pub async fn ingest(
        &self,
        proxy: &str,
        first_seq: u64,
        records: Vec<Vec<u8>>,
    ) -> Result<Appended, AuditError> {
        match &self.sink {
            Sink::Local { .. } => self.append(records).await,
            Sink::Queue(queue) => {
                shared::enqueue_and_wait(queue, Some(proxy), first_seq, records).await
            }
        }
    }

    /// Appends `records` (encoded audit records) and returns once they are
    /// durably in the tree.
    pub async fn append(&self, records: Vec<Vec<u8>>) -> Result<Appended, AuditError> {
        if records.is_empty() {
            let size = *self.size.borrow();
            return Ok(Appended {
                first_index: size,
                count: 0,
                tree_size: size,
            });
        }
        let jobs = match &self.sink {
            Sink::Local { jobs, .. } => jobs,
            Sink::Queue(queue) => return shared::enqueue_and_wait(queue, None, 0, records).await,
        };
        let (reply, rx) = oneshot::channel();
        match jobs.try_send(Job::Append { records, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AuditError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(AuditError::Stopped),
        }
        rx.await.map_err(|_| AuditError::Stopped)?
    }

    /// The log's origin line.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The checkpoint verifier key (`name+hash+base64`).
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Committed size, updated after every append.
    pub fn size(&self) -> watch::Receiver<u64> {
        self.size.clone()
    }

    /// The store, for readers.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Reads one public resource (blocking I/O off the runtime).
    pub async fn read(&self, path: LogPath) -> Result<Option<Vec<u8>>, AuditError> {
        if path == LogPath::TreeState {
            return Ok(None);
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(&path))
            .await
            .map_err(|e| AuditError::Read(e.to_string()))?
            .map_err(|e| AuditError::Read(chain(&e)))
    }

    /// Entries `from..to` of the tree of `size` (blocking; call from
    /// `spawn_blocking`).
    pub fn entries(
        store: &dyn TileStore,
        from: u64,
        to: u64,
        size: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
        let to = to.min(size);
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let width = u64::from(FULL_WIDTH);
        for b in from / width..=(to - 1) / width {
            let Some(id) = BundleId::in_tree(b, TreeSize::new(size)) else {
                break;
            };
            let path = LogPath::Bundle(id);
            let bytes = store
                .read(&path)
                .map_err(|e| AuditError::Read(chain(&e)))?
                .ok_or_else(|| AuditError::Read(format!("{path} is missing")))?;
            for (i, entry) in bundle::entries(&bytes).enumerate() {
                let entry = entry.map_err(|e| AuditError::Read(format!("{path}: {e}")))?;
                let index = id.first_entry() + i as u64;
                if (from..to).contains(&index) {
                    out.push((index, entry.to_vec()));
                }
            }
        }
        Ok(out)
    }

    /// Stops the sequencer after it signs a final checkpoint, and waits.
    pub fn stop(&self) {
        let Sink::Local { jobs, thread } = &self.sink else {
            return;
        };
        let _ = jobs.send(Job::Stop);
        let handle = thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

type Resign = Box<dyn Fn() -> Result<NoteSigner, String> + Send>;

struct Sequencer {
    log: ward_audit::Log<SharedStore>,
    store: SharedStore,
    origin: Origin,
    size: watch::Sender<u64>,
    resign: Resign,
}

impl Sequencer {
    fn run(mut self, rx: &Receiver<Job>) {
        let mut last_signed = Instant::now();
        let mut poisoned = false;
        loop {
            let wait = CHECKPOINT_INTERVAL.saturating_sub(last_signed.elapsed());
            let mut stop = false;
            let mut group = Vec::new();
            match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(Job::Append { records, reply }) => group.push((records, reply)),
                Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => stop = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let mut total: usize = group.iter().map(|(r, _)| r.len()).sum();
            while !stop && total < MAX_GROUP_RECORDS {
                match rx.try_recv() {
                    Ok(Job::Append { records, reply }) => {
                        total += records.len();
                        group.push((records, reply));
                    }
                    Ok(Job::Stop) => stop = true,
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                poisoned = self.append_group(group, poisoned);
            }
            if stop || last_signed.elapsed() >= CHECKPOINT_INTERVAL {
                if !poisoned && let Err(e) = self.log.checkpoint(Instant::now()) {
                    tracing::error!(error = %chain(&e), "signing an audit checkpoint failed");
                }
                last_signed = Instant::now();
            }
            if stop {
                return;
            }
        }
    }

    /// Appends every batch of the group in one durable append and answers
    /// each; returns whether the log is unusable.
    fn append_group(&mut self, group: Vec<(Vec<Vec<u8>>, Reply)>, poisoned: bool) -> bool {
        if poisoned && !self.reopen() {
            for (_, reply) in group {
                let _ = reply.send(Err(AuditError::Append(
                    "the log could not be re-opened after a failed append; see the server log"
                        .into(),
                )));
            }
            return true;
        }
        let all: Vec<&[u8]> = group
            .iter()
            .flat_map(|(records, _)| records.iter().map(Vec::as_slice))
            .collect();
        match self.log.append(&all) {
            Ok(range) => {
                let tree_size = self.log.size().get();
                // The size moves before anyone is acknowledged, so a caller
                // that reads the log after its ack finds its records.
                self.size.send_replace(tree_size);
                let mut next = range.start().get();
                for (records, reply) in group {
                    let count = records.len() as u64;
                    let _ = reply.send(Ok(Appended {
                        first_index: next,
                        count,
                        tree_size,
                    }));
                    next += count;
                }
                false
            }
            Err(e) => {
                let reason = chain(&e);
                tracing::error!(error = %reason, "audit append failed; batches refused");
                for (_, reply) in group {
                    let _ = reply.send(Err(AuditError::Append(reason.clone())));
                }
                // The in-memory edge may no longer match the store: re-open
                // before the next append, as a restart would.
                true
            }
        }
    }

    fn reopen(&mut self) -> bool {
        let signer = (self.resign)();
        match signer.and_then(|s| {
            ward_audit::Log::open(self.store.clone(), self.origin.clone(), s).map_err(|e| chain(&e))
        }) {
            Ok(log) => {
                self.log = log.with_policy(CheckpointPolicy {
                    refresh_after: Some(CHECKPOINT_REFRESH),
                });
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "re-opening the audit log failed");
                false
            }
        }
    }
}

/// The log's signing key in a data directory, created (0600) if missing.
/// `ward server init` calls this so replicas copied from one initialised
/// directory share the key.
pub fn signing_key(data_dir: &Path, td: &TrustDomain) -> Result<NoteSigner, String> {
    load_or_create_signer(&data_dir.join("audit-signing.key"), td)
}

/// The signing key for a log whose latest signed checkpoint is
/// `checkpoint` (`None`: the log has none yet): the data directory's key,
/// which must be the one that signed the log. Auditors pin that key's
/// verifier, so a log never silently changes keys: a missing key is
/// created only for a log without checkpoints, and a key that did not sign
/// the existing checkpoint is refused, naming both.
pub fn signing_key_for_log(
    data_dir: &Path,
    td: &TrustDomain,
    checkpoint: Option<&[u8]>,
) -> Result<NoteSigner, String> {
    let path = data_dir.join("audit-signing.key");
    let Some(note) = checkpoint else {
        return load_or_create_signer(&path, td);
    };
    let signed_by = ward_audit::SignedNote::parse(note)
        .ok()
        .and_then(|n| {
            n.signatures()
                .first()
                .map(|s| format!("key {} (id {})", s.name().as_str(), s.key_id()))
        })
        .unwrap_or_else(|| "an unreadable signature".to_owned());
    if !path.exists() {
        return Err(format!(
            "{} is missing, but the audit log already has a checkpoint signed by {signed_by}; \
             restore that key file (0600) from a backup or from the data directory that \
             initialised this log. A new key would make every auditor who pinned the old \
             one reject the log, so none is made",
            path.display()
        ));
    }
    let signer = load_or_create_signer(&path, td)?;
    let origin = Origin::new(signer.verifier().name().as_str())
        .map_err(|e| format!("{}: origin: {e}", path.display()))?;
    ward_audit::SignedCheckpoint::open(note, std::slice::from_ref(signer.verifier()), &origin)
        .map_err(|e| {
            format!(
                "the audit log's latest checkpoint does not verify with {} (key id {}, verifier \
                 key {}): {e}; it was signed by {signed_by}. Every checkpoint of a log comes from one key: \
                 restore the key that signed it (replicas: copy audit-signing.key from the \
                 data directory `ward server init` made)",
                path.display(),
                signer.verifier().key_id(),
                signer.verifier()
            )
        })?;
    Ok(signer)
}

fn load_or_create_signer(path: &Path, td: &TrustDomain) -> Result<NoteSigner, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => NoteSigner::from_private_key_string(text.trim())
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = KeyName::new(&format!("{td}/ward-audit"))
                .map_err(|e| format!("key name for trust domain {td}: {e}"))?;
            let signer = NoteSigner::generate(name).map_err(|e| e.to_string())?;
            let text = signer.private_key_string().map_err(|e| e.to_string())?;
            ward_identity::keys::write_file_atomic(path, format!("{}\n", *text).as_bytes(), 0o600)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(signer)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// An error with its sources, for logs and messages.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<StoreError> for AuditError {
    fn from(e: StoreError) -> Self {
        Self::Read(chain(&e))
    }
}
