//! [`Cursor`]: the spool's acknowledgement cursor, "every record below N is
//! acknowledged", kept so that updating it costs a write, not a sync.
//!
//! The shipper acknowledges a batch up to ten times a second, on the spool's
//! writer thread, between groups of appends. Replacing a file atomically for
//! every acknowledgement (temporary file, fsync, rename, directory fsync)
//! cost about a millisecond on ext4 here, and no append completed meanwhile.
//! Yet a cursor need not be durable at once: one that goes back after a
//! crash only makes the proxy ship records again, which the server skips as
//! already held. It must be durable before segments are deleted, because a
//! cursor behind the first segment is how recovery tells that records are
//! missing.
//!
//! # On disk
//!
//! `<dir>/cursor`, [`FILE_LEN`] bytes, created once (temporary file, fsync,
//! rename, directory fsync) and never resized, so an fdatasync of it needs no
//! metadata journal commit. Two slots sit [`SLOT_STRIDE`] bytes apart, so that
//! no torn write of one can touch the other:
//!
//! ```text
//! slot: magic "wsack\0\0\x02" (8) | acked_below (u64 LE) | crc32c of both (u32 LE)
//! ```
//!
//! One slot holds the last value made durable. Every update goes, in place,
//! to the *other* slot; it is fdatasynced only when segments are about to be
//! deleted, and then becomes the durable slot. A crash can therefore tear
//! only a slot that was never synced. Opening reads both slots and takes the
//! larger valid value — every value ever written was a true acknowledgement
//! — and syncs the file, so the value it starts from is durable.
//!
//! Spools written before this file existed kept the cursor in `ack`, as text
//! (`ward-spool-ack/v1`); opening one moves its value here and removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::{SpoolError, TMP_SUFFIX, frame, io_error, sync_dir};

/// Name of the cursor file.
pub(super) const CURSOR_FILE: &str = "cursor";
/// Name of the version 1 cursor file, migrated on open.
pub(super) const LEGACY_CURSOR_FILE: &str = "ack";
/// Slot magic: format name and version.
const SLOT_MAGIC: [u8; 8] = *b"wsack\x00\x00\x02";
/// Bytes of one slot.
const SLOT_LEN: usize = 20;
/// Offset of slot 1 (slot 0 is at 0): a page apart.
const SLOT_STRIDE: u64 = 4096;
/// The cursor file's fixed length.
pub(super) const FILE_LEN: u64 = 2 * SLOT_STRIDE;

/// The open cursor file. See the module documentation.
#[derive(Debug)]
pub(super) struct Cursor {
    path: PathBuf,
    file: File,
    /// The slot holding the last durable value; updates go to the other.
    durable_slot: u64,
}

impl Cursor {
    /// Opens the cursor in `dir`, creating it (from a version 1 `ack` file
    /// when there is one, else at 0), and returns it with the value it holds.
    pub(super) fn open(dir: &Path) -> Result<(Self, u64), SpoolError> {
        let path = dir.join(CURSOR_FILE);
        let legacy = dir.join(LEGACY_CURSOR_FILE);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let start = read_legacy(&legacy)?.unwrap_or(0);
                create(dir, &path, start)?
            }
            Err(e) => return Err(io_error("open ack cursor", &path, e)),
        };
        // Made durable whatever wrote it last: the value returned may
        // justify deleting segments.
        file.sync_all()
            .map_err(|e| io_error("sync ack cursor", &path, e))?;
        // A version 1 file beside a cursor is left from a migration that
        // was cut short after the cursor was made; its value is not newer.
        match fs::remove_file(&legacy) {
            Ok(()) => sync_dir(dir)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove old ack cursor", &legacy, e)),
        }
        let slots = [0, 1].map(|k| read_slot(&file, k));
        let best = (0..2u64)
            .filter_map(|k| {
                let value = *slots.get(usize::try_from(k).ok()?)?;
                Some((value?, k))
            })
            .max();
        let Some((value, slot)) = best else {
            return Err(SpoolError::Corrupt {
                file: path.display().to_string(),
                offset: 0,
                reason: "neither slot of the ack cursor is valid",
            });
        };
        Ok((
            Self {
                path,
                file,
                durable_slot: slot,
            },
            value,
        ))
    }

    /// Records `acked_below`. With `durable`, it is fdatasynced before this
    /// returns (call it so before deleting segments); without, it reaches
    /// the disk whenever the kernel writes it back.
    pub(super) fn set(&mut self, acked_below: u64, durable: bool) -> Result<(), SpoolError> {
        let slot = 1 - self.durable_slot;
        self.file
            .write_all_at(&encode_slot(acked_below), slot * SLOT_STRIDE)
            .map_err(|e| io_error("write ack cursor", &self.path, e))?;
        if durable {
            self.file
                .sync_data()
                .map_err(|e| io_error("sync ack cursor", &self.path, e))?;
            self.durable_slot = slot;
        }
        Ok(())
    }
}

/// Creates the cursor file holding `value`, atomically and durably.
fn create(dir: &Path, path: &Path, value: u64) -> Result<File, SpoolError> {
    let tmp = dir.join(format!("{CURSOR_FILE}{TMP_SUFFIX}"));
    let mut bytes = vec![0; usize::try_from(FILE_LEN).unwrap_or(8192)];
    if let Some(slot) = bytes.get_mut(..SLOT_LEN) {
        slot.copy_from_slice(&encode_slot(value));
    }
    File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .map_err(|e| io_error("write ack cursor", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_error("rename ack cursor", path, e))?;
    sync_dir(dir)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error("open ack cursor", path, e))
}

/// The value of a version 1 `ack` file, if there is one.
fn read_legacy(path: &Path) -> Result<Option<u64>, SpoolError> {
    match fs::read(path) {
        Ok(bytes) => frame::decode_cursor(&bytes)
            .map(Some)
            .ok_or_else(|| SpoolError::Corrupt {
                file: path.display().to_string(),
                offset: 0,
                reason: "ack cursor file is malformed",
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read ack cursor", path, e)),
    }
}

/// The value in slot `k`, or `None` when it is torn, zero or short.
fn read_slot(file: &File, k: u64) -> Option<u64> {
    let mut slot = [0; SLOT_LEN];
    file.read_exact_at(&mut slot, k * SLOT_STRIDE).ok()?;
    decode_slot(&slot)
}

fn encode_slot(value: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0; SLOT_LEN];
    let (body, crc) = slot.split_at_mut(16);
    let (magic, v) = body.split_at_mut(8);
    magic.copy_from_slice(&SLOT_MAGIC);
    v.copy_from_slice(&value.to_le_bytes());
    crc.copy_from_slice(&frame::crc32c(body).to_le_bytes());
    slot
}

fn decode_slot(slot: &[u8; SLOT_LEN]) -> Option<u64> {
    let (body, crc) = slot.split_first_chunk::<16>()?;
    let (magic, value) = body.split_first_chunk::<8>()?;
    let crc: [u8; 4] = crc.try_into().ok()?;
    let value: [u8; 8] = value.try_into().ok()?;
    (*magic == SLOT_MAGIC && frame::crc32c(body) == u32::from_le_bytes(crc))
        .then(|| u64::from_le_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_bytes(dir: &Path, k: u64) -> Vec<u8> {
        let all = fs::read(dir.join(CURSOR_FILE)).unwrap();
        let at = usize::try_from(k * SLOT_STRIDE).unwrap();
        all[at..at + SLOT_LEN].to_vec()
    }

    /// What slot `k` decodes to, read straight from the file.
    fn slot_value(dir: &Path, k: u64) -> Option<u64> {
        decode_slot(&slot_bytes(dir, k).try_into().unwrap())
    }

    fn damage_slot(dir: &Path, k: u64) {
        let f = OpenOptions::new()
            .write(true)
            .open(dir.join(CURSOR_FILE))
            .unwrap();
        f.write_all_at(b"torn", k * SLOT_STRIDE + 10).unwrap();
    }

    #[test]
    fn a_new_cursor_starts_at_zero_with_a_fixed_size_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, value) = Cursor::open(dir.path()).unwrap();
        assert_eq!(value, 0);
        let meta = fs::metadata(dir.path().join(CURSOR_FILE)).unwrap();
        assert_eq!(meta.len(), FILE_LEN);
        assert!(!dir.path().join("cursor.tmp").exists());
    }

    #[test]
    fn updates_alternate_away_from_the_durable_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = Cursor::open(dir.path()).unwrap();
        // Slot 0 holds the durable 0; unsynced updates all land in slot 1.
        c.set(5, false).unwrap();
        c.set(7, false).unwrap();
        assert_eq!(slot_value(dir.path(), 0), Some(0));
        assert_eq!(slot_value(dir.path(), 1), Some(7));
        // A durable update also goes to slot 1, which becomes the durable
        // one; the next update goes to slot 0.
        c.set(9, true).unwrap();
        c.set(11, false).unwrap();
        assert_eq!(slot_value(dir.path(), 1), Some(9));
        assert_eq!(slot_value(dir.path(), 0), Some(11));
        drop(c);
        assert_eq!(Cursor::open(dir.path()).unwrap().1, 11);
    }

    #[test]
    fn a_torn_update_falls_back_to_the_durable_value_never_below() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = Cursor::open(dir.path()).unwrap();
        c.set(40, true).unwrap(); // durable in slot 1
        c.set(50, false).unwrap(); // slot 0, then torn by a crash
        drop(c);
        damage_slot(dir.path(), 0);
        let (mut c, value) = Cursor::open(dir.path()).unwrap();
        assert_eq!(value, 40);
        // The reopened cursor writes to the slot it did not read from.
        c.set(60, false).unwrap();
        damage_slot(dir.path(), 0);
        drop(c);
        assert_eq!(Cursor::open(dir.path()).unwrap().1, 40);
    }

    #[test]
    fn both_slots_damaged_is_corrupt_not_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = Cursor::open(dir.path()).unwrap();
        c.set(3, true).unwrap();
        drop(c);
        damage_slot(dir.path(), 0);
        damage_slot(dir.path(), 1);
        match Cursor::open(dir.path()) {
            Err(SpoolError::Corrupt { reason, file, .. }) => {
                assert_eq!(reason, "neither slot of the ack cursor is valid");
                assert!(file.ends_with(CURSOR_FILE), "{file}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // A file cut short loses its second slot, and with a torn first
        // one nothing is left either.
        let f = OpenOptions::new()
            .write(true)
            .open(dir.path().join(CURSOR_FILE))
            .unwrap();
        f.set_len(SLOT_STRIDE).unwrap();
        assert!(matches!(
            Cursor::open(dir.path()),
            Err(SpoolError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_version_1_file_is_migrated_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(LEGACY_CURSOR_FILE),
            frame::encode_cursor(26),
        )
        .unwrap();
        let (_, value) = Cursor::open(dir.path()).unwrap();
        assert_eq!(value, 26);
        assert!(!dir.path().join(LEGACY_CURSOR_FILE).exists());
        assert_eq!(Cursor::open(dir.path()).unwrap().1, 26);

        // A malformed version 1 file is refused, not read as 0.
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(LEGACY_CURSOR_FILE),
            b"ward-spool-ack/v1\n2x\n",
        )
        .unwrap();
        assert!(matches!(
            Cursor::open(dir.path()),
            Err(SpoolError::Corrupt {
                reason: "ack cursor file is malformed",
                ..
            })
        ));
        assert!(!dir.path().join(CURSOR_FILE).exists());
    }
}
