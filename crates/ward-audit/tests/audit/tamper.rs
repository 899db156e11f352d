//! The offline verifier against every kind of tampering: each must be
//! detected, and named by the right index, tile or checkpoint.

use ward_audit::bundle;
use ward_audit::{
    BundleId, LeafIndex, Log, LogPath, MemoryStore, NoteError, SignedCheckpoint, TileId, TileStore,
    TileWidth, TreeSize, VerifyError, verify_log,
};

use crate::common::{fill, notes, origin, signer, signer_from_seed};

/// Checkpoints at sizes 100, 300, 600 and 1000 (positions 0..=3).
const BATCHES: [u64; 4] = [100, 200, 300, 400];

fn honest_log() -> (MemoryStore, Vec<SignedCheckpoint>) {
    let store = MemoryStore::new();
    let mut log = Log::open(store.clone(), origin(), signer()).unwrap();
    let checkpoints = fill(&mut log, &BATCHES, 0);
    (store, checkpoints)
}

fn verify(
    store: &MemoryStore,
    checkpoints: &[Vec<u8>],
) -> Result<ward_audit::VerifiedLog, VerifyError> {
    verify_log(store, checkpoints, signer().verifier(), &origin())
}

fn full_bundle(index: u64) -> LogPath {
    LogPath::Bundle(BundleId::new(index, TileWidth::FULL))
}

/// Rewrites one stored resource.
fn edit(store: &MemoryStore, path: LogPath, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = store
        .read(&path)
        .unwrap()
        .unwrap_or_else(|| panic!("{path} missing"));
    f(&mut bytes);
    store.write(&[(path, bytes)]).unwrap();
}

/// Byte range of entry `position` inside a bundle.
fn entry_span(bundle_bytes: &[u8], position: usize) -> std::ops::Range<usize> {
    let mut offset = 0;
    for (i, e) in bundle::entries(bundle_bytes).enumerate() {
        let e = e.unwrap();
        if i == position {
            return offset + 2..offset + 2 + e.len();
        }
        offset += 2 + e.len();
    }
    panic!("no entry {position}");
}

#[test]
fn an_honest_log_verifies() {
    let (store, cps) = honest_log();
    let verified = verify(&store, &notes(&cps)).unwrap();
    assert_eq!(verified.size, TreeSize::new(1000));
    assert_eq!(verified.root, cps[3].checkpoint().root());
    assert_eq!(verified.checkpoints, 4);
    // Any subset, in any order, verifies too.
    let some = notes(&[cps[2].clone(), cps[0].clone()]);
    assert_eq!(verify(&store, &some).unwrap().size, TreeSize::new(600));
    assert!(matches!(
        verify(&store, &[] as &[Vec<u8>]),
        Err(VerifyError::NoCheckpoints)
    ));
}

#[test]
fn a_flipped_byte_in_an_entry_names_that_entry() {
    // Entry 537 lives in full bundle 2 (512..768); checkpoint 2 (size 600)
    // is the first to cover it.
    let (store, cps) = honest_log();
    edit(&store, full_bundle(2), |b| {
        let span = entry_span(b, 537 - 512);
        b[span.start + 10] ^= 0x01;
    });
    match verify(&store, &notes(&cps)) {
        Err(VerifyError::EntryMismatch { index, checkpoint }) => {
            assert_eq!((index, checkpoint), (LeafIndex::new(537), 2));
        }
        other => panic!("{other:?}"),
    }

    // The same in the last, partial bundle (entries 768..1000).
    let (store, cps) = honest_log();
    edit(
        &store,
        LogPath::Bundle(BundleId::new(3, TileWidth::new(232).unwrap())),
        |b| {
            let span = entry_span(b, 990 - 768);
            b[span.end - 1] ^= 0x80;
        },
    );
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::EntryMismatch { index, checkpoint: 3 }) if index == LeafIndex::new(990)
    ));
}

#[test]
fn two_swapped_entries_name_the_first() {
    let (store, cps) = honest_log();
    edit(&store, full_bundle(0), |b| {
        let (a, c) = (entry_span(b, 10), entry_span(b, 11));
        let (first, second) = (
            b[a.start - 2..a.end].to_vec(),
            b[c.start - 2..c.end].to_vec(),
        );
        let mut swapped = second.clone();
        swapped.extend_from_slice(&first);
        b.splice(a.start - 2..c.end, swapped);
    });
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::EntryMismatch { index, checkpoint: 0 }) if index == LeafIndex::new(10)
    ));
}

#[test]
fn a_flipped_byte_in_a_hash_tile_names_the_tile_and_hash() {
    // Level-0 tile 1 holds leaf hashes 256..512.
    let (store, cps) = honest_log();
    let tile = TileId::new(0, 1, TileWidth::FULL).unwrap();
    edit(&store, LogPath::Tile(tile), |b| {
        b[(300 - 256) * 32 + 5] ^= 0x04
    });
    match verify(&store, &notes(&cps)) {
        Err(VerifyError::HashTileMismatch { path, level, index }) => {
            assert_eq!((path.as_str(), level, index), ("tile/0/001", 0, 300));
        }
        other => panic!("{other:?}"),
    }

    // A level-1 hash (the root of level-0 tile 2), in the partial level-1 tile.
    let (store, cps) = honest_log();
    let tile = TileId::new(1, 0, TileWidth::new(3).unwrap()).unwrap();
    edit(&store, LogPath::Tile(tile), |b| b[2 * 32] ^= 0x01);
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::HashTileMismatch {
            level: 1,
            index: 2,
            ..
        })
    ));

    // An older partial tile still served for checkpoint 1 (size 300).
    let (store, cps) = honest_log();
    let old = TileId::new(0, 1, TileWidth::new(44).unwrap()).unwrap();
    edit(&store, LogPath::Tile(old), |b| b[0] ^= 0x01);
    match verify(&store, &notes(&cps)) {
        Err(VerifyError::HashTileMismatch { path, index, .. }) => {
            assert_eq!((path.as_str(), index), ("tile/0/001.p/44", 256));
        }
        other => panic!("{other:?}"),
    }

    // ...and an older partial bundle.
    let (store, cps) = honest_log();
    let old = LogPath::Bundle(BundleId::new(1, TileWidth::new(44).unwrap()));
    edit(&store, old, |b| {
        let span = entry_span(b, 3);
        b[span.start] ^= 0x01;
    });
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::PartialBundleMismatch { index, .. }) if index == LeafIndex::new(259)
    ));
}

#[test]
fn a_tampered_checkpoint_is_refused_by_position() {
    let (store, cps) = honest_log();
    let mut notes = notes(&cps);
    // Change the root line by one base64 character.
    let text = String::from_utf8(notes[1].clone()).unwrap();
    let root = cps[1].checkpoint().root().to_base64();
    let mut forged_root = root.clone().into_bytes();
    forged_root[0] = if forged_root[0] == b'A' { b'B' } else { b'A' };
    notes[1] = text
        .replace(&root, std::str::from_utf8(&forged_root).unwrap())
        .into_bytes();
    assert!(matches!(
        verify(&store, &notes),
        Err(VerifyError::Checkpoint {
            position: 1,
            source: ward_audit::CheckpointError::Note(NoteError::BadSignature { .. })
        })
    ));

    // A flipped bit in the signature.
    let mut notes = crate::common::notes(&cps);
    let sig_start = notes[2].len() - 10;
    notes[2][sig_start] = if notes[2][sig_start] == b'A' {
        b'B'
    } else {
        b'A'
    };
    assert!(matches!(
        verify(&store, &notes),
        Err(VerifyError::Checkpoint {
            position: 2,
            source: ward_audit::CheckpointError::Note(NoteError::BadSignature { .. })
        })
    ));

    // A malformed signature line.
    let mut notes = crate::common::notes(&cps);
    let text = String::from_utf8(notes[0].clone()).unwrap();
    notes[0] = text.replace('\u{2014}', "-").into_bytes();
    assert!(matches!(
        verify(&store, &notes),
        Err(VerifyError::Checkpoint {
            position: 0,
            source: ward_audit::CheckpointError::Note(NoteError::SignatureLine { line: 5, .. })
        })
    ));

    // A checkpoint by an unknown key.
    let stranger = signer_from_seed(&[6; 32]);
    let mut other = Log::open(MemoryStore::new(), origin(), stranger).unwrap();
    let foreign = fill(&mut other, &[100], 0);
    let mut notes = crate::common::notes(&cps);
    notes.push(foreign[0].note().as_bytes().to_vec());
    assert!(matches!(
        verify(&store, &notes),
        Err(VerifyError::Checkpoint {
            position: 4,
            source: ward_audit::CheckpointError::Note(NoteError::NoTrustedSignature(_))
        })
    ));
}

#[test]
fn a_truncated_log_names_the_first_missing_entry() {
    // The last bundle loses its tail: entries 990.. are gone.
    let (store, cps) = honest_log();
    let last = LogPath::Bundle(BundleId::new(3, TileWidth::new(232).unwrap()));
    edit(&store, last, |b| {
        let span = entry_span(b, 990 - 768);
        b.truncate(span.start - 2);
    });
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::MissingEntries { index, .. }) if index == LeafIndex::new(990)
    ));

    // Cut inside an entry.
    let (store, cps) = honest_log();
    edit(&store, last, |b| {
        let span = entry_span(b, 990 - 768);
        b.truncate(span.start + 3);
    });
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::MalformedBundle { index, .. }) if index == LeafIndex::new(990)
    ));

    // Whole bundles deleted.
    let (store, cps) = honest_log();
    store.remove(&last);
    store.remove(&full_bundle(2));
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::MissingEntries { index, .. }) if index == LeafIndex::new(512)
    ));
}

#[test]
fn forks_are_detected() {
    // A second history, signed with the same key, that differs from entry 50 on.
    let forked = MemoryStore::new();
    let mut log = Log::open(forked.clone(), origin(), signer()).unwrap();
    let mut fork_cps = fill(&mut log, &[50], 0);
    fork_cps.extend(fill(&mut log, &[50, 200, 300, 400], 1));
    let fork_at_1000 = fork_cps.last().unwrap().clone();
    assert_eq!(fork_at_1000.checkpoint().size(), TreeSize::new(1000));

    let (store, cps) = honest_log();
    // Both signed at size 1000 with different roots.
    let split = notes(&[cps[3].clone(), fork_at_1000.clone()]);
    assert!(matches!(
        verify(&store, &split),
        Err(VerifyError::ForkAtSameSize { first: 0, second: 1, size }) if size == TreeSize::new(1000)
    ));
    // Honest data, an honest checkpoint at 300, the fork's checkpoint at 1000.
    let mixed = notes(&[cps[1].clone(), fork_at_1000.clone()]);
    assert!(matches!(
        verify(&store, &mixed),
        Err(VerifyError::Fork {
            consistent: 0,
            conflicting: 1,
            ..
        })
    ));
    // The fork's data with the same two checkpoints: now the honest one conflicts.
    assert!(matches!(
        verify(&forked, &mixed),
        Err(VerifyError::Fork {
            consistent: 1,
            conflicting: 0,
            ..
        })
    ));
}

#[test]
fn an_entry_rewritten_with_its_leaf_tile_is_still_caught() {
    // The attacker rewrites entry 20 and its leaf hash in the level-0 tile
    // consistently, but cannot re-sign.
    let (store, cps) = honest_log();
    let mut new_entry = Vec::new();
    edit(&store, full_bundle(0), |b| {
        let span = entry_span(b, 20);
        b[span.start + 1] ^= 0x01;
        new_entry = b[span].to_vec();
    });
    edit(
        &store,
        LogPath::Tile(TileId::new(0, 0, TileWidth::FULL).unwrap()),
        |b| {
            b[20 * 32..21 * 32].copy_from_slice(ward_audit::leaf_hash(&new_entry).as_bytes());
        },
    );
    // The partial tile still served for checkpoint 0 keeps the signed hash:
    // the entry is still named.
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::EntryMismatch { index, checkpoint: 0 }) if index == LeafIndex::new(20)
    ));
    // Without it, nothing stored carries the signed leaf hash any more; the
    // verifier still refuses, naming the first checkpoint contradicted.
    store.remove(&LogPath::Tile(
        TileId::new(0, 0, TileWidth::new(100).unwrap()).unwrap(),
    ));
    assert!(matches!(
        verify(&store, &notes(&cps)),
        Err(VerifyError::RootMismatch { checkpoint: 0, .. })
    ));
}
