//! Opening a spool: the directory and its lock, the ack cursor, a check of
//! every frame of every segment, truncation of a torn tail, and refusal of
//! any damage a torn write cannot explain (rules in the parent module's
//! documentation).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::frame::{self, FrameError, HEADER_LEN};
use super::{
    Active, Cursor, INDEX_EVERY, LOCK_FILE, Segment, Spool, SpoolError, SpoolOptions, TMP_SUFFIX,
    io_error,
};

pub(super) fn open(dir: PathBuf, opts: SpoolOptions) -> Result<Spool, SpoolError> {
    create_dir(&dir)?;
    let lock = lock(&dir)?;
    let (cursor, acked_below) = Cursor::open(&dir)?;
    let found = list_segments(&dir)?;

    let mut segments: VecDeque<Segment> = VecDeque::with_capacity(found.len());
    let last = found.len().saturating_sub(1);
    // The last segment's file length: its records and any zeros after them.
    let mut last_file_len = 0;
    for (i, (first_seq, path)) in found.into_iter().enumerate() {
        let (seg, file_len) = scan(path, first_seq, i == last)?;
        last_file_len = file_len;
        if let Some(prev) = segments.back()
            && prev.end_seq() != seg.first_seq
        {
            return Err(damaged(
                &seg.path,
                0,
                "sequence numbers do not continue the previous segment",
            ));
        }
        segments.push_back(seg);
    }
    if let Some(first) = segments.front()
        && first.first_seq > acked_below
    {
        return Err(damaged(
            &first.path,
            0,
            "unacknowledged records before this segment are missing",
        ));
    }

    // Sequence numbers never go back, even when every segment was
    // acknowledged and deleted: the cursor is their floor.
    let next_seq = segments
        .back()
        .map_or(acked_below, Segment::end_seq)
        .max(acked_below);
    let disk_bytes = segments.iter().map(|s| s.len).sum();
    let active = match segments.pop_back() {
        Some(seg) => Some(Active {
            file: Active::reopen(&seg.path)?,
            zeroed_to: last_file_len,
            preallocate: opts.preallocate_bytes,
            limit: opts.segment_bytes,
            seg,
        }),
        None => None,
    };
    let mut spool = Spool {
        dir,
        opts,
        _lock: lock,
        sealed: segments,
        active,
        next_seq,
        acked_below,
        cursor,
        acked_frame_bytes: 0,
        disk_bytes,
        appended: 0,
        syncs: 0,
        poisoned: false,
    };
    // Finishes an ack interrupted between the cursor and the deletions, and
    // finds where the pending records start.
    spool.drop_acked_segments()?;
    Ok(spool)
}

fn create_dir(dir: &Path) -> Result<(), SpoolError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        // Audit records name agents, tools and decisions: owner only.
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| io_error("create spool directory", dir, e))
}

/// Takes an exclusive lock for the spool's life: two writers appending to
/// one segment would interleave frames. The OS drops it when the process
/// dies, `kill -9` included.
fn lock(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(SpoolError::Locked {
            path: dir.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(io_error("lock", &path, e)),
    }
}

/// Segment files by first sequence number. Removes temporary files: a
/// segment or cursor that never got its rename was never used.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("list spool directory", dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list spool directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_SUFFIX) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| io_error("remove temporary file", &path, e))?;
        } else if let Some(seq) = frame::parse_segment_name(name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(found)
}

/// Checks every frame of a segment and indexes it, returning it with the
/// file's length. Frames end at the end of the file or where only zeros
/// follow (space preallocated for appends). Damage ends the scan; in the
/// last segment, damage with no valid frame after it is a torn write and is
/// truncated away.
fn scan(path: PathBuf, first_seq: u64, is_last: bool) -> Result<(Segment, u64), SpoolError> {
    let bytes = fs::read(&path).map_err(|e| io_error("read segment", &path, e))?;
    match frame::decode_header(&bytes) {
        Some(seq) if seq == first_seq => {}
        Some(_) => return Err(damaged(&path, 0, "header does not match the file name")),
        None => return Err(damaged(&path, 0, "segment header is missing or damaged")),
    }
    let mut offset = HEADER_LEN as usize;
    let mut records = 0u64;
    let mut sparse = Vec::new();
    let damage = loop {
        let rest = bytes.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            break None;
        }
        match frame::decode_frame(rest) {
            Ok((_, n)) => {
                if records.is_multiple_of(INDEX_EVERY) {
                    sparse.push(offset as u64);
                }
                records += 1;
                offset += n;
            }
            // No frame is all zeros (its checksum covers the length).
            Err(_) if rest.iter().all(|&b| b == 0) => break None,
            Err(e) => break Some(e),
        }
    };
    let mut file_len = bytes.len() as u64;
    if let Some(e) = damage {
        if !is_last {
            return Err(damaged(&path, offset as u64, e.reason()));
        }
        if valid_frame_after(&bytes, offset) {
            return Err(damaged(
                &path,
                offset as u64,
                "damaged frame followed by valid frames",
            ));
        }
        truncate(&path, offset as u64, bytes.len(), e)?;
        file_len = offset as u64;
    } else if !is_last && file_len > offset as u64 {
        // A sealed segment whose cut back to its records (`Active::seal`,
        // not synced) was lost in a crash: its zeros would sit outside the
        // cap's accounting until the segment is deleted.
        if let Err(e) = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(offset as u64))
        {
            tracing::warn!(file = %path.display(), error = %e, "could not cut a sealed audit spool segment back to its records");
        } else {
            file_len = offset as u64;
        }
    }
    Ok((
        Segment {
            path,
            first_seq,
            records,
            len: offset as u64,
            sparse,
        },
        file_len,
    ))
}

/// Whether any offset past `damaged_at` starts a valid frame. A false
/// positive takes a 32-bit checksum collision; audit records are JSON,
/// whose bytes can never spell a plausible length (it would need NUL or
/// control bytes), so a record's payload cannot fake a frame either.
fn valid_frame_after(bytes: &[u8], damaged_at: usize) -> bool {
    (damaged_at + 1..bytes.len())
        .any(|p| frame::decode_frame(bytes.get(p..).unwrap_or_default()).is_ok())
}

fn truncate(path: &Path, at: u64, was: usize, e: FrameError) -> Result<(), SpoolError> {
    tracing::warn!(
        file = %path.display(),
        offset = at,
        dropped_bytes = was as u64 - at,
        reason = e.reason(),
        "truncating a torn, never-acknowledged write at the end of the audit spool",
    );
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(at)?;
            f.sync_all()
        })
        .map_err(|e| io_error("truncate torn segment tail", path, e))
}

fn damaged(path: &Path, offset: u64, reason: &'static str) -> SpoolError {
    SpoolError::Corrupt {
        file: path.display().to_string(),
        offset,
        reason,
    }
}
