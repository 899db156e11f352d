//! The proxy's audit spool: a local, durable queue of audit records waiting
//! to be shipped to the server's log (DESIGN.md §2 step 5).
//!
//! [`Spool`] is the synchronous core and owns the directory: it appends
//! batches of records (one fsync per batch), hands out batches for shipping
//! with [`Spool::read_batch`], and deletes records only once the server has
//! acknowledged them through [`Spool::ack`]. [`GroupCommit`] puts a writer
//! thread in front of it so that many concurrent callers share each fsync.
//!
//! # On disk
//!
//! ```text
//! <dir>/                      created 0700
//!   lock                      held (flock) while a Spool is open
//!   cursor                    the ack cursor: two checksummed slots (`spool/cursor.rs`)
//!   00000000000000000000.seg  segments, named by their first sequence number
//!   00000000000000001234.seg
//! ```
//!
//! A segment is a 16-byte header (magic, first sequence number) followed by
//! frames `len (u32 LE) | crc32c(len ‖ payload) (u32 LE) | payload` (the
//! encoding lives in `spool/frame.rs`), and, in the active segment, zeros:
//! space written ahead of the records so that appends need no metadata
//! commit (`spool/segment.rs`). Segments are append-only; a new one is created
//! (written under a temporary name, fsynced, renamed, directory fsynced)
//! when the next record would take the active one past
//! [`SpoolOptions::segment_bytes`]. Sequence numbers start at 0, are dense,
//! and continue across re-opens and deletions.
//!
//! # Durability and recovery
//!
//! [`Spool::append_batch`] returns only after `fdatasync` of every segment
//! it wrote (DESIGN.md §4 invariant 4). Re-opening checks every frame of
//! every segment and then:
//!
//! - damage at the end of the *last* segment (a frame cut short, a bad
//!   checksum or length) with no valid frame after it is a torn write that
//!   was never acknowledged: it is truncated away with a warning;
//! - any other damage — in an earlier segment, a damaged frame followed by
//!   a valid one, a bad header, a gap in the sequence numbers, or records
//!   missing between the ack cursor and the first segment — is
//!   [`SpoolError::Corrupt`]. The spool never drops data it may have
//!   acknowledged; an operator decides.
//!
//! The second rule has a cost worth knowing: a filesystem may persist the
//! pages of an unacknowledged write out of order, leaving a hole before
//! valid frames at the tail. We refuse to open such a spool rather than
//! guess which bytes were acknowledged.
//!
//! # Full
//!
//! [`SpoolOptions::max_bytes`] caps the segment files' total size, the
//! active segment's zero-filled space included. An
//! append that would pass it fails with [`SpoolError::Full`]; whether the
//! proxy then denies requests (the default, DESIGN.md §5) or sheds records
//! is the caller's decision, not the spool's.

mod cursor;
mod frame;
mod group;
mod recover;
mod segment;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::cursor::Cursor;
pub use self::frame::MAX_RECORD_LEN;
use self::frame::{FRAME_OVERHEAD, HEADER_LEN};
pub use self::group::GroupCommit;
use self::segment::{Active, Segment};
use crate::bundle::MAX_ENTRY_LEN;

/// Every `INDEX_EVERY`-th record's offset is kept in memory, so finding a
/// record reads at most this many frame headers.
const INDEX_EVERY: u64 = 64;
/// Name of the lock file.
const LOCK_FILE: &str = "lock";
/// Suffix of files being written before their atomic rename.
const TMP_SUFFIX: &str = ".tmp";

/// Sizes the spool works within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Cap on the total size of the segment files. Default 1 GiB.
    pub max_bytes: u64,
    /// Size at which a new segment is started; acknowledged space is
    /// reclaimed a whole segment at a time. Default 16 MiB.
    pub segment_bytes: u64,
    /// How far ahead of its records the active segment is zero-filled, so
    /// that an append's fdatasync need not commit a size change (see
    /// `spool/segment.rs`); 0 turns it off. Default 1 MiB. The zeros never
    /// take the files past `max_bytes` (near the cap, less is zero-filled),
    /// and a segment gives them back when the next one starts.
    pub preallocate_bytes: u64,
    /// Largest record accepted, at most [`MAX_RECORD_LEN`]. Default
    /// [`MAX_ENTRY_LEN`]: a record the server's log cannot hold would be
    /// refused at shipping time and block every record behind it, so it is
    /// refused here, where the caller can still react.
    pub max_record_bytes: usize,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            preallocate_bytes: 1 << 20,
            max_record_bytes: MAX_ENTRY_LEN,
        }
    }
}

impl SpoolOptions {
    fn check(&self) -> Result<(), SpoolError> {
        if self.max_record_bytes == 0 || self.max_record_bytes > MAX_RECORD_LEN {
            return Err(SpoolError::InvalidOptions(
                "max_record_bytes must be between 1 and MAX_RECORD_LEN",
            ));
        }
        if self.segment_bytes < HEADER_LEN + FRAME_OVERHEAD + self.max_record_bytes as u64 {
            return Err(SpoolError::InvalidOptions(
                "segment_bytes must hold a header and one record of max_record_bytes",
            ));
        }
        if self.max_bytes < self.segment_bytes {
            return Err(SpoolError::InvalidOptions(
                "max_bytes must be at least segment_bytes",
            ));
        }
        Ok(())
    }
}

/// Why the spool could not open, append, read or acknowledge.
///
/// Cloneable so that [`GroupCommit`] can give every caller of a failed
/// group the same error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SpoolError {
    /// An I/O operation on a spool file or directory failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: String,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Another [`Spool`] (in this or another process) holds the directory.
    #[error("spool directory {path} is in use by another spool")]
    Locked {
        /// The directory.
        path: String,
    },
    /// The options contradict each other.
    #[error("invalid spool options: {0}")]
    InvalidOptions(&'static str),
    /// A record exceeds [`SpoolOptions::max_record_bytes`]; nothing of the
    /// batch was written.
    #[error("record #{position} of the batch is {len} bytes; the limit is {max}")]
    RecordTooLarge {
        /// Position of the record in the batch.
        position: usize,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The batch would take the spool past [`SpoolOptions::max_bytes`];
    /// nothing of it was written. Space returns as the server acknowledges
    /// records; what to do meanwhile is the caller's call (DESIGN.md §5).
    #[error("audit spool is full: {used} of {max} bytes in use")]
    Full {
        /// Bytes the segment files take now.
        used: u64,
        /// The cap.
        max: u64,
    },
    /// Stored bytes are damaged where a torn write cannot explain it.
    #[error("spool file {file} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The file concerned.
        file: String,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An acknowledgement names a record that was never appended.
    #[error("cannot acknowledge through sequence number {through}: the last appended is {last:?}")]
    AckBeyondEnd {
        /// The sequence number acknowledged.
        through: u64,
        /// The last appended, if any.
        last: Option<u64>,
    },
    /// An earlier append failed midway, so what is on disk is unknown to
    /// this instance; re-open the spool (recovery decides).
    #[error("an earlier spool write failed; the spool must be re-opened")]
    Poisoned,
    /// The [`GroupCommit`] writer has shut down.
    #[error("the spool writer has shut down")]
    Closed,
}

/// A run of consecutive records read for shipping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    first_seq: u64,
    records: Vec<Vec<u8>>,
}

impl Batch {
    /// Sequence number of the first record (where the batch would start
    /// when empty).
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The sequence numbers of the records.
    #[must_use]
    pub fn seqs(&self) -> Range<u64> {
        self.first_seq..self.first_seq + self.records.len() as u64
    }

    /// Sequence number of the last record: what to [`Spool::ack`] once the
    /// server has sequenced the batch.
    #[must_use]
    pub fn last_seq(&self) -> Option<u64> {
        self.seqs().next_back()
    }

    /// Number of records.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, in sequence order.
    #[must_use]
    pub fn records(&self) -> &[Vec<u8>] {
        &self.records
    }

    /// `(sequence number, record)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.seqs().zip(self.records.iter().map(Vec::as_slice))
    }

    /// The records, consuming the batch.
    #[must_use]
    pub fn into_records(self) -> Vec<Vec<u8>> {
        self.records
    }
}

/// Counters for metrics (the audit backlog, STYLE.md §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records appended and not yet acknowledged.
    pub pending_records: u64,
    /// Their size on disk, framing included.
    pub pending_bytes: u64,
    /// Sequence number of the oldest unacknowledged record.
    pub oldest_pending: Option<u64>,
    /// Sequence number of the last record appended (ever, not just since
    /// open).
    pub last_seq: Option<u64>,
    /// Total size of the segment files, acknowledged parts included.
    pub disk_bytes: u64,
    /// [`SpoolOptions::max_bytes`].
    pub max_bytes: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Records appended since open.
    pub appended: u64,
    /// Data fsyncs since open: with [`GroupCommit`], far fewer than
    /// `appended`.
    pub syncs: u64,
}

/// The spool. See the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    opts: SpoolOptions,
    /// Held for the spool's life: its flock keeps other spools out.
    _lock: File,
    /// Segments no longer appended to, oldest first.
    sealed: VecDeque<Segment>,
    /// The newest segment; `None` until the first append after every
    /// segment was acknowledged and deleted.
    active: Option<Active>,
    next_seq: u64,
    /// Every record below this is acknowledged.
    acked_below: u64,
    /// Where `acked_below` is kept.
    cursor: Cursor,
    /// Frame bytes in the oldest segment that belong to acknowledged records.
    acked_frame_bytes: u64,
    disk_bytes: u64,
    appended: u64,
    syncs: u64,
    poisoned: bool,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, recovering from any
    /// crash as the module documentation describes.
    pub fn open(dir: impl Into<PathBuf>, opts: SpoolOptions) -> Result<Self, SpoolError> {
        opts.check()?;
        recover::open(dir.into(), opts)
    }

    /// The spool's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    #[must_use]
    pub fn options(&self) -> SpoolOptions {
        self.opts
    }

    /// Appends `records` in order and returns their sequence numbers, after
    /// one fdatasync (one per segment touched, when the batch starts a new
    /// segment).
    ///
    /// [`SpoolError::RecordTooLarge`] and [`SpoolError::Full`] are checked
    /// before anything is written. After an I/O error, part of the batch
    /// may still have reached the disk — recovery keeps whatever is whole,
    /// so such records may be shipped although their append failed
    /// (at-least-once, never lost) — and the spool refuses further work with
    /// [`SpoolError::Poisoned`] until it is re-opened.
    pub fn append_batch(&mut self, records: &[&[u8]]) -> Result<Range<u64>, SpoolError> {
        self.usable()?;
        let start = self.next_seq;
        if records.is_empty() {
            return Ok(start..start);
        }
        let max = self.opts.max_record_bytes;
        if let Some((position, r)) = records.iter().enumerate().find(|(_, r)| r.len() > max) {
            return Err(SpoolError::RecordTooLarge {
                position,
                len: r.len(),
                max,
            });
        }
        let needed = self.bytes_needed(records);
        if self.disk_bytes.saturating_add(needed) > self.opts.max_bytes {
            return Err(SpoolError::Full {
                used: self.disk_bytes,
                max: self.opts.max_bytes,
            });
        }
        if let Err(e) = self.write_records(records) {
            // Part of the batch may be on disk and the file offsets in
            // memory may be wrong; only recovery can tell.
            self.poisoned = true;
            return Err(e);
        }
        self.appended += records.len() as u64;
        Ok(start..self.next_seq)
    }

    /// Reads up to `max_records` records starting at `from_seq`, or at the
    /// oldest unacknowledged record if that is later. Stops before the
    /// records' total size would pass `max_bytes`, but always returns at
    /// least one record when one is pending, so a large record cannot stall
    /// shipping. Checksums are verified again on the way out.
    pub fn read_batch(
        &self,
        from_seq: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Batch, SpoolError> {
        self.usable()?;
        let first_seq = from_seq.max(self.acked_below);
        let mut batch = Batch {
            first_seq,
            records: Vec::new(),
        };
        if max_records == 0 {
            return Ok(batch);
        }
        let mut bytes = 0usize;
        let mut seq = first_seq;
        for seg in self.segments() {
            if seq >= seg.end_seq() {
                continue;
            }
            let (mut reader, mut offset) = seg.open_at(seq)?;
            while seq < seg.end_seq() && batch.records.len() < max_records {
                let (len, crc) = seg.read_header(&mut reader, offset)?;
                if !batch.records.is_empty() && bytes.saturating_add(len) > max_bytes {
                    return Ok(batch);
                }
                let mut payload = vec![0; len];
                reader
                    .read_exact(&mut payload)
                    .map_err(|e| seg.read_error(offset, e))?;
                frame::check_payload(len, crc, &payload).map_err(|e| seg.corrupt(offset, e))?;
                bytes += len;
                offset += FRAME_OVERHEAD + len as u64;
                batch.records.push(payload);
                seq += 1;
            }
            if batch.records.len() >= max_records {
                break;
            }
        }
        Ok(batch)
    }

    /// Records that every record up to and including `through_seq` is
    /// durably sequenced by the server: writes the cursor, then deletes the
    /// segments it fully covers. The cursor is synced only when segments go
    /// (see `spool/cursor.rs`); otherwise a crash may take it back, and the
    /// records since are shipped again, which the server skips. Acknowledging
    /// again what is already acknowledged does nothing.
    pub fn ack(&mut self, through_seq: u64) -> Result<(), SpoolError> {
        self.usable()?;
        if through_seq >= self.next_seq {
            return Err(SpoolError::AckBeyondEnd {
                through: through_seq,
                last: self.next_seq.checked_sub(1),
            });
        }
        let acked_below = through_seq + 1;
        if acked_below <= self.acked_below {
            return Ok(());
        }
        // Only a cursor that is on disk may justify deleting segments; an
        // unsynced one that is lost re-ships records the server already has.
        let deletes = self
            .segments()
            .next()
            .is_some_and(|s| s.end_seq() <= acked_below);
        self.cursor.set(acked_below, deletes)?;
        self.acked_below = acked_below;
        self.drop_acked_segments()
    }

    /// Counters for metrics.
    #[must_use]
    pub fn stats(&self) -> SpoolStats {
        let frame_bytes: u64 = self.segments().map(|s| s.len - HEADER_LEN).sum();
        let pending_records = self.next_seq.saturating_sub(self.acked_below);
        SpoolStats {
            pending_records,
            pending_bytes: frame_bytes.saturating_sub(self.acked_frame_bytes),
            oldest_pending: (pending_records > 0).then_some(self.acked_below),
            last_seq: self.next_seq.checked_sub(1),
            disk_bytes: self.disk_bytes,
            max_bytes: self.opts.max_bytes,
            segments: self.sealed.len() + usize::from(self.active.is_some()),
            appended: self.appended,
            syncs: self.syncs,
        }
    }

    fn usable(&self) -> Result<(), SpoolError> {
        if self.poisoned {
            Err(SpoolError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Segments oldest first, the active one last.
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed
            .iter()
            .chain(self.active.as_ref().map(|a| &a.seg))
    }

    /// How many records of `records` fit a segment that is `len` bytes
    /// long now, and how many bytes they add. At least one record always
    /// fits an empty segment ([`SpoolOptions::check`]).
    fn fit(&self, len: u64, records: &[&[u8]]) -> (usize, u64) {
        let mut added = 0;
        let mut n = 0;
        for r in records {
            let frame = FRAME_OVERHEAD + r.len() as u64;
            if len + added + frame > self.opts.segment_bytes {
                break;
            }
            added += frame;
            n += 1;
        }
        (n, added)
    }

    /// Bytes that appending `records` adds to the segment files, new
    /// segment headers included.
    fn bytes_needed(&self, mut records: &[&[u8]]) -> u64 {
        let mut len = self.active.as_ref().map(|a| a.seg.len);
        let mut needed = 0;
        while !records.is_empty() {
            let (n, added) = match len.map(|l| self.fit(l, records)) {
                Some((n, added)) if n > 0 => (n, added),
                _ => {
                    needed += HEADER_LEN;
                    self.fit(HEADER_LEN, records)
                }
            };
            needed += added;
            len = Some(HEADER_LEN + added);
            records = records.get(n.max(1)..).unwrap_or_default();
        }
        needed
    }

    /// How much zero-filled space may follow `adding` more bytes of
    /// records: what keeps the files within `max_bytes`, zeros included.
    /// (The active segment's zeros are the only ones: a segment gives its
    /// rest back when the next one starts.)
    fn headroom(&self, adding: u64) -> u64 {
        self.opts
            .max_bytes
            .saturating_sub(self.disk_bytes.saturating_add(adding))
    }

    fn write_records(&mut self, mut records: &[&[u8]]) -> Result<(), SpoolError> {
        let mut buf = Vec::new();
        while !records.is_empty() {
            let mut active = match self.active.take() {
                Some(a) if self.fit(a.seg.len, records).0 > 0 => a,
                old => {
                    // The old segment was fsynced by its last append.
                    self.sealed.extend(old.map(Active::seal));
                    let a = Active::create(
                        &self.dir,
                        self.next_seq,
                        self.opts.preallocate_bytes,
                        self.opts.segment_bytes,
                        self.headroom(HEADER_LEN),
                    )?;
                    self.disk_bytes += HEADER_LEN;
                    a
                }
            };
            // `max(1)`: a record always fits a fresh segment (options
            // checked at open); never loop creating empty ones.
            let n = self.fit(active.seg.len, records).0.max(1);
            let (now, rest) = records.split_at_checked(n).unwrap_or((records, &[]));
            buf.clear();
            for r in now {
                frame::encode_frame(r, &mut buf);
            }
            let headroom = self.headroom(buf.len() as u64);
            let written = active.append(&buf, now, headroom);
            self.active = Some(active);
            written?;
            self.syncs += 1;
            self.disk_bytes += buf.len() as u64;
            self.next_seq += now.len() as u64;
            records = rest;
        }
        Ok(())
    }

    /// Deletes the oldest segments while every record in them is
    /// acknowledged, then fsyncs the directory.
    fn drop_acked_segments(&mut self) -> Result<(), SpoolError> {
        let mut removed = false;
        let result = loop {
            let front = self.sealed.front().or(self.active.as_ref().map(|a| &a.seg));
            let Some(seg) = front else { break Ok(()) };
            if seg.end_seq() > self.acked_below {
                break Ok(());
            }
            if let Err(e) = fs::remove_file(&seg.path) {
                break Err(io_error("remove segment", &seg.path, e));
            }
            let len = seg.len;
            removed = true;
            self.disk_bytes -= len;
            if self.sealed.pop_front().is_none() {
                self.active = None;
            }
        };
        if removed {
            sync_dir(&self.dir)?;
        }
        result?;
        let acked_frame_bytes = match self.segments().next() {
            Some(seg) if self.acked_below > seg.first_seq => {
                seg.open_at(self.acked_below)?.1 - HEADER_LEN
            }
            _ => 0,
        };
        self.acked_frame_bytes = acked_frame_bytes;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync directory", dir, e))
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io {
        op,
        path: path.display().to_string(),
        source: Arc::new(source),
    }
}

#[cfg(test)]
mod tests;
