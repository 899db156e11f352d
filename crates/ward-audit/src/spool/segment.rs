//! [`Segment`] and [`Active`]: one segment file as the spool tracks it —
//! creating it atomically, appending and fsyncing frames, and finding and
//! reading records in it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
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
}

impl Active {
    /// Writes `frames` (the encoding of `records`) at the end of the active
    /// segment, fdatasyncs it, and updates the segment's bookkeeping.
    pub(super) fn append(&mut self, frames: &[u8], records: &[&[u8]]) -> Result<(), SpoolError> {
        let seg = &mut self.seg;
        self.file
            .write_all(frames)
            .map_err(|e| io_error("append to segment", &seg.path, e))?;
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
    /// written under a temporary name, fsynced, renamed into place, directory
    /// fsynced. A segment file therefore always has a whole header.
    pub(super) fn create(dir: &Path, first_seq: u64) -> Result<Self, SpoolError> {
        let path = dir.join(frame::segment_name(first_seq));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", frame::segment_name(first_seq)));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io_error("create segment", &tmp, e))?;
        file.write_all(&frame::encode_header(first_seq))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("write segment header", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_error("rename segment", &path, e))?;
        sync_dir(dir)?;
        // Appends go to the end whatever the file position.
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io_error("open segment", &path, e))?;
        Ok(Self {
            seg: Segment {
                path,
                first_seq,
                records: 0,
                len: HEADER_LEN,
                sparse: Vec::new(),
            },
            file,
        })
    }
}
