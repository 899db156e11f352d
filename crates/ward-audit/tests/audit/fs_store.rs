//! The filesystem store: recovery after re-open, auditing a mirrored
//! directory, and atomic replacement of files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ward_audit::{
    FsStore, LeafIndex, Log, LogPath, TileId, TileStore, TileWidth, TreeSize, leaf_hash, verify_log,
};

use crate::common::{entry, fill, notes, origin, signer};

#[test]
fn reopening_recovers_size_and_root_and_the_directory_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (size, root, cps) = {
        let mut log = Log::open(FsStore::open(dir.path()).unwrap(), origin(), signer()).unwrap();
        let cps = fill(&mut log, &[1, 300, 255], 0);
        // Appended after the last checkpoint: committed, not yet signed.
        log.append(&[entry(556, 0), entry(557, 0)]).unwrap();
        (log.size(), log.root(), cps)
    };
    assert_eq!(size, TreeSize::new(558));

    let mut log = Log::open(FsStore::open(dir.path()).unwrap(), origin(), signer()).unwrap();
    assert_eq!((log.size(), log.root()), (size, root));
    assert_eq!(log.checkpointed_size(), Some(TreeSize::new(556)));
    let p = log.inclusion_proof(LeafIndex::new(557), size).unwrap();
    p.verify(&leaf_hash(&entry(557, 0)), &root).unwrap();
    let range = log.append(&[entry(558, 0)]).unwrap();
    assert_eq!(range.start(), LeafIndex::new(558));
    let last = log.checkpoint(Instant::now()).unwrap().unwrap();

    // The directory is the tlog-tiles layout an auditor mirrors.
    assert!(dir.path().join("checkpoint").is_file());
    assert!(dir.path().join("tile/0/001").is_file());
    assert!(dir.path().join("tile/0/002.p/47").is_file());
    assert!(dir.path().join("tile/entries/002.p/47").is_file());
    assert!(dir.path().join("tile/1/000.p/2").is_file());
    let mirror = FsStore::open(dir.path()).unwrap();
    let mut all = notes(&cps);
    all.push(last.note().as_bytes().to_vec());
    let verified = verify_log(&mirror, &all, signer().verifier(), &origin()).unwrap();
    assert_eq!(verified.size, TreeSize::new(559));
}

#[test]
fn a_reader_never_sees_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    let path = LogPath::Tile(TileId::new(0, 0, TileWidth::FULL).unwrap());
    store.write(&[(path, vec![0; 8192])]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads < 100 {
                let bytes = store
                    .read(&path)
                    .unwrap()
                    .expect("the tile never disappears");
                assert_eq!(bytes.len(), 8192, "torn read");
                assert!(bytes.iter().all(|b| *b == bytes[0]), "mixed read");
                reads += 1;
            }
            reads
        })
    };
    for round in 1..=50u8 {
        store.write(&[(path, vec![round; 8192])]).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() >= 100);
    assert_eq!(store.read(&path).unwrap().unwrap(), vec![50; 8192]);
}

#[test]
fn a_crash_leftover_temp_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(FsStore::open(dir.path()).unwrap(), origin(), signer()).unwrap();
        fill(&mut log, &[10], 0);
    }
    // What a crash between write and rename leaves behind.
    std::fs::write(dir.path().join("tile/0/.tmp-000.p-123-0"), b"half a ti").unwrap();
    std::fs::write(
        dir.path().join(".tmp-ward-tree-state-123-1"),
        b"ward-tree-state/v1\n99\n",
    )
    .unwrap();
    let mut log = Log::open(FsStore::open(dir.path()).unwrap(), origin(), signer()).unwrap();
    assert_eq!(log.size(), TreeSize::new(10));
    log.append(&[entry(10, 0)]).unwrap();
    assert_eq!(log.size(), TreeSize::new(11));
}
