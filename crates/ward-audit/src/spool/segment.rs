//! [`Segment`] and [`Active`]: one segment file as the spool tracks it —
//! creating it atomically, appending and fsyncing frames, and finding and
//! reading records in it.
//!
//! The active segment is zero-filled ahead of its records
//! ([`super::SpoolOptions::preallocate_bytes`] at a time). An append then
//! overwrites blocks the file already has, within its length, so its
//! fdatasync flushes the data alone: no block allocation and no size change
//! to commit to the filesystem's journal, which on ext4 took about a third
//! of a single append's fdatasync. The file's size changes once per chunk.
//! Recovery reads an all-zero tail as unused space (no frame is all zeros).
//! A segment is cut back to its records when the next one starts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::frame::{self, FRAME_OVERHEAD, FrameError, HEADER_LEN};
use super::{INDEX_EVERY, SpoolError, TMP_SUFFIX, io_error, sync_dir};

/// What the spool knows about one segment file.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) path: PathBuf,
    pub(super) first_seq: u64,
    pub(super) records: u64,
    /// File length: header plus frames.
    pub(super) len: u64,
    /// `sparse[k]` is the offset of record `first_seq + k * INDEX_EVERY`.
    pub(super) sparse: Vec<u64>,
}

impl Segment {
    /// One past the last sequence number in the segment.
    pub(super) fn end_seq(&self) -> u64 {
        self.first_seq + self.records
    }

    /// Opens the file positioned at record `seq`, which the segment must
    /// contain, returning the reader and the offset.
    pub(super) fn open_at(&self, seq: u64) -> Result<(BufReader<File>, u64), SpoolError> {
        let index = seq.saturating_sub(self.first_seq);
        let mut offset = usize::try_from(index / INDEX_EVERY)
            .ok()
            .and_then(|k| self.sparse.get(k).copied())
            .ok_or_else(|| SpoolError::Corrupt {
                file: self.path.display().to_string(),
                offset: 0,
                reason: "record number outside the segment's index",
            })?;
        let file = File::open(&self.path).map_err(|e| io_error("open segment", &self.path, e))?;
        let mut reader = BufReader::with_capacity(64 << 10, file);
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("seek segment", &self.path, e))?;
        for _ in 0..index % INDEX_EVERY {
            let (len, _) = self.read_header(&mut reader, offset)?;
            let skip = i64::try_from(len).unwrap_or(i64::MAX);
            reader
                .seek_relative(skip)
                .map_err(|e| io_error("seek segment", &self.path, e))?;
            offset += FRAME_OVERHEAD + len as u64;
        }
        Ok((reader, offset))
    }

    /// Reads and decodes the frame header at `offset`.
    pub(super) fn read_header(
        &self,
        reader: &mut BufReader<File>,
        offset: u64,
    ) -> Result<(usize, u32), SpoolError> {
        let mut header = [0; 8];
        reader
            .read_exact(&mut header)
            .map_err(|e| self.read_error(offset, e))?;
        frame::decode_frame_header(header).map_err(|e| self.corrupt(offset, e))
    }

    /// A read that ended early inside a segment the spool wrote and synced is
    /// damage (the file shrank), anything else an I/O failure.
    pub(super) fn read_error(&self, offset: u64, e: io::Error) -> SpoolError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.corrupt(offset, FrameError::ShortPayload)
        } else {
            io_error("read segment", &self.path, e)
        }
    }

    /// The error for damage at `offset`.
    pub(super) fn corrupt(&self, offset: u64, e: FrameError) -> SpoolError {
        SpoolError::Corrupt {
            file: self.path.display().to_string(),
            offset,
            reason: e.reason(),
        }
    }
}

/// The segment being appended to, with its open file.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) seg: Segment,
    pub(super) file: File,
    /// The file's length: `seg.len` plus the zero-filled space after it.
    pub(super) zeroed_to: u64,
    /// How far past the records to zero-fill; 0 for never.
    pub(super) preallocate: u64,
    /// The segment never grows past this ([`super::SpoolOptions::segment_bytes`]).
    pub(super) limit: u64,
}

/// Zeros written per `write_at` while preallocating.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl Active {
    /// Writes `frames` (the encoding of `records`) after the last record of
    /// the active segment, zero-fills ahead when they reach the end of the
    /// preallocated space (at most `headroom` bytes past them), fdatasyncs,
    /// and updates the segment's bookkeeping.
    pub(super) fn append(
        &mut self,
        frames: &[u8],
        records: &[&[u8]],
        headroom: u64,
    ) -> Result<(), SpoolError> {
        let seg = &mut self.seg;
        let end = seg.len + frames.len() as u64;
        self.file
            .write_all_at(frames, seg.len)
            .map_err(|e| io_error("append to segment", &seg.path, e))?;
        if end > self.zeroed_to {
            // In the same fdatasync as the frames: one size change per
            // chunk instead of one per append.
            let to = end
                .saturating_add(self.preallocate.min(headroom))
                .min(self.limit)
                .max(end);
            write_zeros(&self.file, end, to)
                .map_err(|e| io_error("preallocate segment", &seg.path, e))?;
            self.zeroed_to = to;
        }
        self.file
            .sync_data()
            .map_err(|e| io_error("sync segment", &seg.path, e))?;
        let mut offset = seg.len;
        for r in records {
            if seg.records.is_multiple_of(INDEX_EVERY) {
                seg.sparse.push(offset);
            }
            seg.records += 1;
            offset += FRAME_OVERHEAD + r.len() as u64;
        }
        seg.len = offset;
        Ok(())
    }

    /// Creates the segment whose first record will be `first_seq`: header
    /// and the first zero-filled chunk (at most `headroom` bytes) written
    /// under a temporary name, fsynced, renamed into place, directory
    /// fsynced. A segment file therefore always has a whole header.
    pub(super) fn create(
        dir: &Path,
        first_seq: u64,
        preallocate: u64,
        limit: u64,
        headroom: u64,
    ) -> Result<Self, SpoolError> {
        let path = dir.join(frame::segment_name(first_seq));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", frame::segment_name(first_seq)));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io_error("create segment", &tmp, e))?;
        let zeroed_to = HEADER_LEN
            .saturating_add(preallocate.min(headroom))
            .min(limit)
            .max(HEADER_LEN);
        file.write_all(&frame::encode_header(first_seq))
            .and_then(|()| write_zeros(&file, HEADER_LEN, zeroed_to))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("write segment header", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_error("rename segment", &path, e))?;
        sync_dir(dir)?;
        Ok(Self {
            file: Self::reopen(&path)?,
            seg: Segment {
                path,
                first_seq,
                records: 0,
                len: HEADER_LEN,
                sparse: Vec::new(),
            },
            zeroed_to,
            preallocate,
            limit,
        })
    }

    /// Opens an existing segment file for appending at explicit offsets
    /// (never `O_APPEND`: appends land inside the preallocated space).
    pub(super) fn reopen(path: &Path) -> Result<File, SpoolError> {
        OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io_error("open segment", path, e))
    }

    /// Gives back the zero-filled space past the records, once no more
    /// records will come. Not synced: should the cut be lost, recovery
    /// reads the zeros as unused space again.
    pub(super) fn seal(self) -> Segment {
        if self.zeroed_to > self.seg.len
            && let Err(e) = self.file.set_len(self.seg.len)
        {
            tracing::warn!(
                file = %self.seg.path.display(),
                error = %e,
                "could not cut a full audit spool segment back to its records",
            );
        }
        self.seg
    }
}

/// Writes zeros over `from..to` of `file`.
fn write_zeros(file: &File, mut from: u64, to: u64) -> io::Result<()> {
    while from < to {
        let n = usize::try_from(to - from).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
        let chunk = ZEROS.get(..n).unwrap_or(&ZEROS);
        file.write_all_at(chunk, from)?;
        from += chunk.len() as u64;
    }
    Ok(())
}
