//! Unit tests of the synchronous spool: framing through real files,
//! sequence continuity, acknowledgement, the size cap, and recovery.

use std::fs;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::frame::{self, FRAME_OVERHEAD, HEADER_LEN};
use super::*;

/// Small sizes so tests cross segment boundaries: 12 records of
/// [`rec`] per segment.
const OPTS: SpoolOptions = SpoolOptions {
    max_bytes: 4096,
    segment_bytes: 256,
    // A few frames at a time, so appends often extend the zeroed space.
    preallocate_bytes: 64,
    max_record_bytes: 64,
};
/// Bytes of one [`rec`] frame.
const REC_FRAME: u64 = FRAME_OVERHEAD + 11;
const PER_SEGMENT: u64 = (OPTS.segment_bytes - HEADER_LEN) / REC_FRAME;

fn rec(i: u64) -> Vec<u8> {
    format!("record-{i:04}").into_bytes()
}

/// Appends records `range`, one batch per record (the worst case for
/// segment rolls), checking the sequence numbers handed out.
fn fill(spool: &mut Spool, range: Range<u64>) {
    for i in range {
        assert_eq!(spool.append_batch(&[&rec(i)]).unwrap(), i..i + 1);
    }
}

fn read_all(spool: &Spool) -> Vec<(u64, Vec<u8>)> {
    let batch = spool.read_batch(0, usize::MAX, usize::MAX).unwrap();
    batch.iter().map(|(s, r)| (s, r.to_vec())).collect()
}

fn expected(range: Range<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, rec(i))).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Offset of the `k`-th [`rec`] frame of a segment.
fn frame_offset(k: u64) -> u64 {
    HEADER_LEN + k * REC_FRAME
}

fn corrupt_at(err: SpoolError) -> (String, u64, &'static str) {
    match err {
        SpoolError::Corrupt {
            file,
            offset,
            reason,
        } => (file, offset, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn batches_round_trip_across_segments_within_read_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(spool.append_batch(&[]).unwrap(), 0..0);
    let records: Vec<Vec<u8>> = (0..30).map(rec).collect();
    let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    assert_eq!(spool.append_batch(&slices).unwrap(), 0..30);
    // One fsync per segment the batch touched.
    assert_eq!(spool.stats().syncs, 3);
    assert_eq!(segment_files(dir.path()).len(), 3);
    assert_eq!(read_all(&spool), expected(0..30));

    let b = spool.read_batch(5, 10, usize::MAX).unwrap();
    assert_eq!((b.seqs(), b.last_seq()), (5..15, Some(14)));
    assert_eq!(b.records(), &records[5..15]);
    // A byte budget stops before the record that would pass it...
    let b = spool.read_batch(0, 100, 25).unwrap();
    assert_eq!(b.seqs(), 0..2);
    // ...but never returns nothing while records are pending.
    let b = spool.read_batch(3, 100, 1).unwrap();
    assert_eq!(b.seqs(), 3..4);
    let b = spool.read_batch(30, 100, 100).unwrap();
    assert!(b.is_empty());
    assert_eq!((b.first_seq(), b.last_seq()), (30, None));
    // Empty and maximal records survive framing too.
    assert_eq!(spool.append_batch(&[b"", &[0xff; 64]]).unwrap(), 30..32);
    let b = spool.read_batch(30, 10, usize::MAX).unwrap();
    assert_eq!(b.into_records(), vec![vec![], vec![0xff; 64]]);
}

#[test]
fn any_record_is_found_from_the_sparse_index_before_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        max_bytes: 1 << 20,
        segment_bytes: 64 << 10,
        ..OPTS
    };
    // Varying lengths, so a wrong offset cannot land on a frame by luck.
    let record = |i: u64| {
        let mut r = rec(i);
        r.resize(11 + (i as usize * 7) % 40, b'~');
        r
    };
    let records: Vec<Vec<u8>> = (0..1000).map(record).collect();
    let check = |spool: &Spool| {
        for from in (0..1000).step_by(7).chain([63, 64, 65, 127, 128, 129, 999]) {
            let b = spool.read_batch(from, 3, usize::MAX).unwrap();
            let want: Vec<Vec<u8>> = (from..(from + 3).min(1000)).map(record).collect();
            assert_eq!(
                (b.first_seq(), b.records()),
                (from, &want[..]),
                "from {from}"
            );
        }
    };
    let mut spool = Spool::open(dir.path(), opts).unwrap();
    // Several batches, so the index grows across appends.
    for chunk in records.chunks(90) {
        let slices: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        spool.append_batch(&slices).unwrap();
    }
    check(&spool);
    drop(spool);
    let mut spool = Spool::open(dir.path(), opts).unwrap();
    check(&spool);
    // The pending byte count comes from the same index.
    spool.ack(199).unwrap();
    let pending: u64 = records[200..]
        .iter()
        .map(|r| FRAME_OVERHEAD + r.len() as u64)
        .sum();
    assert_eq!(spool.stats().pending_bytes, pending);
    drop(spool);
    let spool = Spool::open(dir.path(), opts).unwrap();
    assert_eq!(spool.stats().pending_bytes, pending);
}

#[test]
fn sequence_numbers_continue_across_reopen_and_full_deletion() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), OPTS).unwrap();
        fill(&mut spool, 0..20);
    }
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(spool.stats().last_seq, Some(19));
    fill(&mut spool, 20..25);
    assert_eq!(read_all(&spool), expected(0..25));
    // Acknowledge everything: every segment goes, the numbering does not.
    spool.ack(24).unwrap();
    assert!(segment_files(dir.path()).is_empty());
    drop(spool);
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    let stats = spool.stats();
    assert_eq!((stats.last_seq, stats.pending_records), (Some(24), 0));
    assert_eq!(spool.append_batch(&[b"next"]).unwrap(), 25..26);
    assert_eq!(
        segment_files(dir.path()),
        vec![dir.path().join("00000000000000000025.seg")]
    );
}

#[test]
fn ack_deletes_covered_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    fill(&mut spool, 0..30);
    assert_eq!(segment_files(dir.path()).len(), 3);

    // Through the middle of the second segment: only the first goes.
    spool.ack(PER_SEGMENT + 3).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 2);
    let stats = spool.stats();
    assert_eq!(stats.oldest_pending, Some(PER_SEGMENT + 4));
    assert_eq!(stats.pending_records, 30 - PER_SEGMENT - 4);
    assert_eq!(stats.pending_bytes, stats.pending_records * REC_FRAME);
    assert_eq!(read_all(&spool), expected(PER_SEGMENT + 4..30));
    // Acknowledging less than before is a no-op; past the end an error.
    spool.ack(2).unwrap();
    assert_eq!(spool.stats(), stats);
    assert!(matches!(
        spool.ack(30),
        Err(SpoolError::AckBeyondEnd {
            through: 30,
            last: Some(29)
        })
    ));
    drop(spool);

    let spool = Spool::open(dir.path(), OPTS).unwrap();
    let reopened = SpoolStats {
        syncs: 0,
        appended: 0,
        ..stats
    };
    assert_eq!(spool.stats(), reopened);
    assert_eq!(read_all(&spool), expected(PER_SEGMENT + 4..30));
}

#[test]
fn an_interrupted_ack_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), OPTS).unwrap();
        fill(&mut spool, 0..30);
    }
    // The cursor was synced, then the process died before deleting.
    let (mut cursor, _) = Cursor::open(dir.path()).unwrap();
    cursor.set(26, true).unwrap();
    drop(cursor);
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(read_all(&spool), expected(26..30));
}

#[test]
fn acks_without_deletions_write_the_cursor_and_reopen_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    fill(&mut spool, 0..30);
    // Inside the first segment: nothing to delete, so no sync is needed,
    // but the value is written and a restart resumes from it.
    spool.ack(4).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 3);
    drop(spool);
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(read_all(&spool), expected(5..30));
}

#[test]
fn a_version_1_spool_opens_where_its_ack_file_says() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), OPTS).unwrap();
        fill(&mut spool, 0..30);
    }
    // What an older Ward left: no `cursor`, the cursor in `ack` as text.
    fs::remove_file(dir.path().join(cursor::CURSOR_FILE)).unwrap();
    fs::write(
        dir.path().join(cursor::LEGACY_CURSOR_FILE),
        frame::encode_cursor(14),
    )
    .unwrap();
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(read_all(&spool), expected(14..30));
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert!(!dir.path().join(cursor::LEGACY_CURSOR_FILE).exists());
}

#[test]
fn full_refuses_whole_batches_until_acks_free_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Three full segments fit, a fourth's header and first record do not.
    let three = 3 * (HEADER_LEN + PER_SEGMENT * REC_FRAME);
    let opts = SpoolOptions {
        max_bytes: three + 10,
        ..OPTS
    };
    let mut spool = Spool::open(dir.path(), opts).unwrap();
    let mut n = 0;
    let (used, max) = loop {
        match spool.append_batch(&[&rec(n)]) {
            Ok(_) => n += 1,
            Err(SpoolError::Full { used, max }) => break (used, max),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(n, 3 * PER_SEGMENT);
    assert_eq!((used, max), (three, three + 10));
    assert_eq!(spool.stats().disk_bytes, used);
    // Nothing of a refused batch is written.
    assert!(spool.append_batch(&[b"x", b"y"]).is_err());
    assert_eq!(spool.stats().last_seq, Some(n - 1));
    // An ack inside the first segment frees nothing yet...
    spool.ack(3).unwrap();
    assert!(matches!(
        spool.append_batch(&[&rec(n)]),
        Err(SpoolError::Full { .. })
    ));
    // ...one that covers it does.
    spool.ack(PER_SEGMENT - 1).unwrap();
    assert_eq!(spool.append_batch(&[&rec(n)]).unwrap(), n..n + 1);
    assert_eq!(read_all(&spool), expected(PER_SEGMENT..n + 1));
}

#[test]
fn oversized_records_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    let big = vec![1; 65];
    let err = spool.append_batch(&[b"ok", &big]).unwrap_err();
    assert!(matches!(
        err,
        SpoolError::RecordTooLarge {
            position: 1,
            len: 65,
            max: 64
        }
    ));
    assert_eq!(spool.stats().last_seq, None);
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(spool.append_batch(&[b"ok"]).unwrap(), 0..1);
}

#[test]
fn options_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [
        SpoolOptions {
            max_record_bytes: 0,
            ..OPTS
        },
        SpoolOptions {
            max_record_bytes: MAX_RECORD_LEN + 1,
            segment_bytes: 4 << 20,
            max_bytes: 4 << 20,
            ..OPTS
        },
        SpoolOptions {
            segment_bytes: 87,
            ..OPTS
        },
        SpoolOptions {
            max_bytes: 255,
            ..OPTS
        },
    ] {
        assert!(
            matches!(
                Spool::open(dir.path(), opts),
                Err(SpoolError::InvalidOptions(_))
            ),
            "{opts:?}"
        );
    }
    SpoolOptions::default().check().unwrap();
}

#[test]
fn a_second_spool_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert!(matches!(
        Spool::open(dir.path(), OPTS),
        Err(SpoolError::Locked { .. })
    ));
    drop(spool);
    Spool::open(dir.path(), OPTS).unwrap();
}

#[cfg(unix)]
#[test]
fn the_directory_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/spool");
    Spool::open(&path, OPTS).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// 30 records in three segments (12, 12, 6), spool closed.
fn three_segments() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    fill(&mut spool, 0..30);
    drop(spool);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 3);
    (dir, files)
}

fn set_len(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_torn_tail_cut_mid_frame_is_truncated_and_the_rest_kept() {
    // Cut inside the last frame's payload, then inside a frame header.
    for (cut, kept) in [
        (frame_offset(6) - 4, 29),
        (frame_offset(5) + 3, 29),
        (frame_offset(4) + 9, 28),
    ] {
        let (dir, files) = three_segments();
        set_len(&files[2], cut);
        let mut spool = Spool::open(dir.path(), OPTS).unwrap();
        assert_eq!(read_all(&spool), expected(0..kept), "cut at {cut}");
        // The torn bytes are gone from disk and the numbering resumes
        // right after the last whole record.
        assert_eq!(
            fs::metadata(&files[2]).unwrap().len(),
            frame_offset(kept - 2 * PER_SEGMENT)
        );
        assert_eq!(spool.append_batch(&[&rec(kept)]).unwrap(), kept..kept + 1);
        drop(spool);
        let spool = Spool::open(dir.path(), OPTS).unwrap();
        assert_eq!(read_all(&spool), expected(0..kept + 1));
    }
}

#[test]
fn garbage_after_the_last_frame_is_truncated() {
    for tail in [
        vec![0xab; 13],
        vec![5, 0, 0, 0, 1, 2],
        vec![0, 0, 0, 0, 0, 7],
    ] {
        let (dir, files) = three_segments();
        let f = fs::OpenOptions::new().write(true).open(&files[2]).unwrap();
        f.write_all_at(&tail, frame_offset(6)).unwrap();
        drop(f);
        let mut spool = Spool::open(dir.path(), OPTS).unwrap();
        assert_eq!(read_all(&spool), expected(0..30), "{tail:?}");
        assert_eq!(fs::metadata(&files[2]).unwrap().len(), frame_offset(6));
        // Appends resume at the cut and zero-fill ahead again.
        spool.append_batch(&[&rec(30)]).unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), OPTS).unwrap();
        assert_eq!(read_all(&spool), expected(0..31));
    }
}

#[test]
fn the_active_segment_is_zero_filled_ahead_of_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    fill(&mut spool, 0..3);
    let file = segment_files(dir.path()).pop().unwrap();
    let len = |p: &Path| fs::metadata(p).unwrap().len();
    // Three frames, then zeros: at most a chunk past the records, never
    // past the segment size.
    let used = frame_offset(3);
    let zeroed = len(&file);
    assert!(zeroed > used && zeroed <= (used + OPTS.preallocate_bytes).min(OPTS.segment_bytes));
    let bytes = fs::read(&file).unwrap();
    assert!(
        bytes[usize::try_from(used).unwrap()..]
            .iter()
            .all(|&b| b == 0)
    );
    // The zeros are space, not damage: nothing is cut on open, and the
    // next records go right after the last one, not after the zeros.
    drop(spool);
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(len(&file), zeroed);
    fill(&mut spool, 3..8);
    let bytes = fs::read(&file).unwrap();
    let mut at = usize::try_from(used).unwrap();
    for i in 3..8 {
        let (payload, n) = frame::decode_frame(&bytes[at..]).unwrap();
        assert_eq!(payload, rec(i));
        at += n;
    }
    // Eight frames passed the first chunk: the zeros were extended.
    assert!(len(&file) > zeroed);
    assert!(bytes[at..].iter().all(|&b| b == 0));
    drop(spool);
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(read_all(&spool), expected(0..8));
    // The space is not counted as records' bytes.
    assert_eq!(spool.stats().disk_bytes, frame_offset(8));
}

#[test]
fn zero_filled_space_never_takes_the_files_past_max_bytes() {
    // A cap that is not a multiple of the segment size, and chunks large
    // enough that a whole one would not fit beside the last records.
    let opts = SpoolOptions {
        max_bytes: 600,
        preallocate_bytes: 200,
        ..OPTS
    };
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), opts).unwrap();
    let on_disk = || -> u64 {
        segment_files(dir.path())
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum()
    };
    let mut seq = 0;
    loop {
        match spool.append_batch(&[&rec(seq)]) {
            Ok(_) => seq += 1,
            Err(SpoolError::Full { .. }) => break,
            Err(e) => panic!("record {seq}: {e}"),
        }
        assert!(
            on_disk() <= opts.max_bytes,
            "after record {seq}: {} bytes on disk",
            on_disk()
        );
    }
    // The cap limited the zeros, not the records: the spool is full only
    // when one more record (and a segment header) would not fit.
    let used = spool.stats().disk_bytes;
    assert!(used + HEADER_LEN + REC_FRAME > opts.max_bytes, "{used}");
    drop(spool);
    let spool = Spool::open(dir.path(), opts).unwrap();
    assert_eq!(read_all(&spool), expected(0..seq));
}

#[test]
fn a_full_segment_is_cut_back_to_its_records_and_zero_tails_read_clean() {
    let (dir, files) = three_segments();
    for f in &files[..2] {
        assert_eq!(fs::metadata(f).unwrap().len(), frame_offset(PER_SEGMENT));
    }
    // Had the cut been lost in a crash, the zeros would read as space, and
    // opening cuts them off (they would count against the cap unseen).
    let f = fs::OpenOptions::new().write(true).open(&files[0]).unwrap();
    f.set_len(OPTS.segment_bytes).unwrap();
    drop(f);
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(read_all(&spool), expected(0..30));
    assert_eq!(
        fs::metadata(&files[0]).unwrap().len(),
        frame_offset(PER_SEGMENT)
    );
    let on_disk: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    assert!(on_disk <= OPTS.max_bytes, "{on_disk} bytes on disk");
}

#[test]
fn a_torn_write_into_the_zeroed_space_is_truncated() {
    let (dir, files) = three_segments();
    // The first 10 bytes of a frame reached the disk, zeros after them.
    let mut frame = Vec::new();
    frame::encode_frame(&rec(30), &mut frame);
    let f = fs::OpenOptions::new().write(true).open(&files[2]).unwrap();
    assert!(f.metadata().unwrap().len() > frame_offset(6) + 10);
    f.write_all_at(&frame[..10], frame_offset(6)).unwrap();
    drop(f);
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(read_all(&spool), expected(0..30));
    assert_eq!(fs::metadata(&files[2]).unwrap().len(), frame_offset(6));
    assert_eq!(spool.append_batch(&[&rec(30)]).unwrap(), 30..31);
    drop(spool);
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(read_all(&spool), expected(0..31));
}

#[test]
fn a_damaged_frame_followed_by_valid_frames_is_corrupt() {
    let (dir, files) = three_segments();
    // Payload byte of the third frame of the last segment.
    flip(&files[2], frame_offset(2) + 10);
    let damaged = fs::read(&files[2]).unwrap();
    let (file, offset, _) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!(
        (file, offset),
        (files[2].display().to_string(), frame_offset(2))
    );
    // The file was left alone for an operator to inspect.
    assert_eq!(fs::read(&files[2]).unwrap(), damaged);

    // A damaged length field, likewise.
    let (dir, files) = three_segments();
    flip(&files[2], frame_offset(1));
    let (file, offset, _) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!(
        (file, offset),
        (files[2].display().to_string(), frame_offset(1))
    );
}

#[test]
fn any_damage_in_an_earlier_segment_is_corrupt_even_at_its_end() {
    let (dir, files) = three_segments();
    flip(&files[0], frame_offset(PER_SEGMENT - 1) + 9);
    let (file, offset, reason) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!(
        (file, offset, reason),
        (
            files[0].display().to_string(),
            frame_offset(PER_SEGMENT - 1),
            "frame checksum mismatch"
        )
    );

    let (dir, files) = three_segments();
    set_len(&files[1], frame_offset(PER_SEGMENT - 1) + 4);
    let (file, offset, _) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!(
        (file, offset),
        (
            files[1].display().to_string(),
            frame_offset(PER_SEGMENT - 1)
        )
    );
}

#[test]
fn missing_records_are_corrupt_not_skipped() {
    // A whole middle segment gone.
    let (dir, files) = three_segments();
    fs::remove_file(&files[1]).unwrap();
    let (file, offset, _) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!((file, offset), (files[2].display().to_string(), 0));

    // The oldest unacknowledged segment gone.
    let (dir, files) = three_segments();
    fs::remove_file(&files[0]).unwrap();
    let (file, _, _) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!(file, files[1].display().to_string());

    // A damaged header or cursor.
    let (dir, files) = three_segments();
    flip(&files[2], 3);
    let (file, offset, _) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!((file, offset), (files[2].display().to_string(), 0));
    let (dir, _) = three_segments();
    let cursor = dir.path().join(cursor::CURSOR_FILE);
    fs::write(&cursor, vec![0xA5; 8192]).unwrap();
    let (file, offset, _) = corrupt_at(Spool::open(dir.path(), OPTS).unwrap_err());
    assert_eq!((file, offset), (cursor.display().to_string(), 0));
}

#[test]
fn damage_after_writing_is_caught_when_reading() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), OPTS).unwrap();
    fill(&mut spool, 0..30);
    let files = segment_files(dir.path());
    flip(&files[1], frame_offset(3) + 9);
    let (file, offset, _) = corrupt_at(spool.read_batch(0, 100, usize::MAX).unwrap_err());
    assert_eq!(
        (file, offset),
        (files[1].display().to_string(), frame_offset(3))
    );
    // Records before the damage still ship.
    assert_eq!(spool.read_batch(0, 15, usize::MAX).unwrap().seqs(), 0..15);
}

#[test]
fn leftover_temporary_files_are_removed() {
    let (dir, _) = three_segments();
    fs::write(dir.path().join("00000000000000000030.seg.tmp"), b"wspool").unwrap();
    fs::write(dir.path().join("cursor.tmp"), b"half").unwrap();
    let spool = Spool::open(dir.path(), OPTS).unwrap();
    assert_eq!(read_all(&spool), expected(0..30));
    assert!(!dir.path().join("cursor.tmp").exists());
    assert!(!dir.path().join("00000000000000000030.seg.tmp").exists());
}
