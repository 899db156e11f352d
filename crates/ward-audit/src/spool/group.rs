//! [`GroupCommit`]: many threads appending to one [`Spool`], one fsync per
//! group.
//!
//! A writer thread owns the spool. Callers queue their record on a channel
//! and block until it is durable. The writer takes the first queued
//! request, drains whatever else is queued, writes all of it with one
//! [`Spool::append_batch`] (one fsync), and answers every caller; while
//! that fsync runs the next group queues up. That is classic group commit:
//! the more concurrent callers, the more records each fsync covers.
//!
//! The shipping operations go through the same thread, between groups, so
//! the spool needs no lock. Ward's async proxy calls this from
//! `spawn_blocking`; the core stays synchronous (STYLE.md §6).

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{Batch, Spool, SpoolError, SpoolOptions, SpoolStats, io_error};

/// Most records in one group, so one fsync's latency stays bounded.
const MAX_GROUP_RECORDS: usize = 8192;
/// Most payload bytes in one group (a larger single record still goes alone).
const MAX_GROUP_BYTES: usize = 8 << 20;
/// Longest a group waits for concurrent appenders (see
/// [`wait_for_siblings`]); about a third of one fdatasync here.
const SIBLING_WAIT: Duration = Duration::from_micros(60);

/// A cloneable handle to a spool's writer thread. See the module
/// documentation. Dropping the last handle, or [`GroupCommit::close`],
/// commits what is queued and joins the thread.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: Sender<Request>,
    max_record_bytes: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

enum Request {
    Append { record: Vec<u8>, reply: Reply },
    Control(Control),
    Close,
}

/// Where an append's outcome goes.
enum Reply {
    /// A caller blocked in [`GroupCommit::append`].
    Blocking(SyncSender<Result<u64, SpoolError>>),
    /// A callback, run on the writer thread (see
    /// [`GroupCommit::append_then`]).
    Callback(Box<dyn FnOnce(Result<u64, SpoolError>) + Send>),
}

impl Reply {
    fn send(self, outcome: Result<u64, SpoolError>) {
        // A caller that gave up waiting is not an error: its record is
        // durable or failed like everyone else's.
        match self {
            Self::Blocking(tx) => {
                let _ = tx.send(outcome);
            }
            Self::Callback(f) => f(outcome),
        }
    }
}

/// Requests served between groups.
enum Control {
    Read {
        from_seq: u64,
        max_records: usize,
        max_bytes: usize,
        reply: SyncSender<Result<Batch, SpoolError>>,
    },
    Ack {
        through_seq: u64,
        reply: SyncSender<Result<(), SpoolError>>,
    },
    Stats {
        reply: SyncSender<SpoolStats>,
    },
}

impl GroupCommit {
    /// Opens the spool in `dir` and starts its writer.
    pub fn open(dir: impl Into<PathBuf>, opts: SpoolOptions) -> Result<Self, SpoolError> {
        Self::start(Spool::open(dir, opts)?)
    }

    /// Starts a writer thread that owns `spool`.
    pub fn start(spool: Spool) -> Result<Self, SpoolError> {
        let (tx, rx) = mpsc::channel();
        let max_record_bytes = spool.options().max_record_bytes;
        let dir = spool.dir().to_path_buf();
        let thread = thread::Builder::new()
            .name("ward-audit-spool".into())
            .spawn(move || run(spool, &rx))
            .map_err(|e| io_error("start the spool writer for", &dir, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                max_record_bytes,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Appends `record` and returns its sequence number once it is on disk
    /// (fsynced together with whatever else was queued meanwhile).
    pub fn append(&self, record: Vec<u8>) -> Result<u64, SpoolError> {
        // Checked here, so one oversized record cannot fail its group.
        let max = self.inner.max_record_bytes;
        if record.len() > max {
            return Err(SpoolError::RecordTooLarge {
                position: 0,
                len: record.len(),
                max,
            });
        }
        self.call(|reply| Request::Append {
            record,
            reply: Reply::Blocking(reply),
        })?
    }

    /// Queues `record` without blocking; `done` runs on the writer thread
    /// once the record is durable (or failed) — e.g. to complete an async
    /// task's oneshot. `done` must be quick: the next group waits for it.
    pub fn append_then(
        &self,
        record: Vec<u8>,
        done: impl FnOnce(Result<u64, SpoolError>) + Send + 'static,
    ) {
        let max = self.inner.max_record_bytes;
        if record.len() > max {
            done(Err(SpoolError::RecordTooLarge {
                position: 0,
                len: record.len(),
                max,
            }));
            return;
        }
        let request = Request::Append {
            record,
            reply: Reply::Callback(Box::new(done)),
        };
        if let Err(mpsc::SendError(Request::Append { reply, .. })) = self.inner.tx.send(request) {
            reply.send(Err(SpoolError::Closed));
        }
    }

    /// [`Spool::read_batch`] on the writer thread.
    pub fn read_batch(
        &self,
        from_seq: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Batch, SpoolError> {
        self.call(|reply| {
            Request::Control(Control::Read {
                from_seq,
                max_records,
                max_bytes,
                reply,
            })
        })?
    }

    /// [`Spool::ack`] on the writer thread.
    pub fn ack(&self, through_seq: u64) -> Result<(), SpoolError> {
        self.call(|reply| Request::Control(Control::Ack { through_seq, reply }))?
    }

    /// [`Spool::stats`] on the writer thread.
    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        self.call(|reply| Request::Control(Control::Stats { reply }))
    }

    /// Commits what is queued, stops the writer and waits for it, closing
    /// the spool. Every handle's later calls fail with
    /// [`SpoolError::Closed`].
    pub fn close(&self) {
        self.inner.close();
    }

    fn call<T>(&self, request: impl FnOnce(SyncSender<T>) -> Request) -> Result<T, SpoolError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.inner
            .tx
            .send(request(reply))
            .map_err(|_| SpoolError::Closed)?;
        // The writer drops the reply sender unanswered only when it stops.
        answer.recv().map_err(|_| SpoolError::Closed)
    }
}

impl Inner {
    fn close(&self) {
        // Fails only when the writer already stopped.
        let _ = self.tx.send(Request::Close);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // The writer has no panicking path; if it somehow did, there is
            // nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer loop: one group per iteration until closed or every handle
/// is gone.
fn run(mut spool: Spool, rx: &Receiver<Request>) {
    let mut carried: Option<Request> = None;
    // Records in the previous group: how many callers are appending at once.
    let mut last_group = 0usize;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match rx.recv() {
                Ok(request) => request,
                Err(_) => return,
            },
        };
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut controls: Vec<Control> = Vec::new();
        let mut bytes = 0usize;
        let mut closing = false;
        let started = Instant::now();
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                Request::Append { record, reply } => {
                    let full = records.len() >= MAX_GROUP_RECORDS
                        || bytes.saturating_add(record.len()) > MAX_GROUP_BYTES;
                    if full && !records.is_empty() {
                        carried = Some(Request::Append { record, reply });
                        break;
                    }
                    bytes += record.len();
                    records.push(record);
                    replies.push(reply);
                }
                Request::Close => {
                    closing = true;
                    break;
                }
                Request::Control(control) => controls.push(control),
            }
            next = rx.try_recv().ok();
            if next.is_none() {
                next = wait_for_siblings(rx, records.len(), last_group, started);
            }
        }
        if !records.is_empty() {
            last_group = records.len();
        }
        commit(&mut spool, &records, replies);
        for control in controls {
            serve(&mut spool, control);
        }
        if closing {
            // Requests queued behind the close are dropped with the
            // receiver; their callers get `Closed`.
            return;
        }
    }
}

/// Commit delay with siblings (PostgreSQL's `commit_delay` and
/// `commit_siblings`, sized by the last group instead of a setting): when
/// the previous group held several records, callers are appending
/// concurrently, and the next of them usually arrives within microseconds.
/// Waiting up to [`SIBLING_WAIT`] for this group to reach the last one's
/// size turns several fsyncs into one, which on a VM is the spool's main
/// CPU cost. A lone caller (last group of one) never waits, so an idle
/// proxy's latency is untouched.
fn wait_for_siblings(
    rx: &Receiver<Request>,
    have: usize,
    last_group: usize,
    started: Instant,
) -> Option<Request> {
    if last_group < 2 || have == 0 || have >= last_group {
        return None;
    }
    let left = SIBLING_WAIT.checked_sub(started.elapsed())?;
    rx.recv_timeout(left).ok()
}

fn commit(spool: &mut Spool, records: &[Vec<u8>], replies: Vec<Reply>) {
    if records.is_empty() {
        return;
    }
    let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    match spool.append_batch(&slices) {
        Ok(seqs) => {
            for (reply, seq) in replies.into_iter().zip(seqs) {
                reply.send(Ok(seq));
            }
        }
        Err(e) => {
            for reply in replies {
                reply.send(Err(e.clone()));
            }
        }
    }
}

fn serve(spool: &mut Spool, control: Control) {
    match control {
        Control::Read {
            from_seq,
            max_records,
            max_bytes,
            reply,
        } => {
            let _ = reply.send(spool.read_batch(from_seq, max_records, max_bytes));
        }
        Control::Ack { through_seq, reply } => {
            let _ = reply.send(spool.ack(through_seq));
        }
        Control::Stats { reply } => {
            let _ = reply.send(spool.stats());
        }
    }
}

#[cfg(test)]
mod tests;
