use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::note::KeyName;
use crate::store::MemoryStore;
use crate::tree::MemoryTree;

fn origin() -> Origin {
    Origin::new("example.com/ward-test").unwrap()
}

fn signer() -> NoteSigner {
    NoteSigner::from_seed(KeyName::new("example.com/ward-test").unwrap(), &[3; 32]).unwrap()
}

fn open<S: TileStore>(store: S) -> Log<S> {
    Log::open(store, origin(), signer()).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

fn batch(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(entry).collect()
}

/// Batch sizes that start, end and straddle tile boundaries.
const BATCHES: [u64; 8] = [1, 254, 1, 1, 300, 256, 0, 700];

#[test]
fn appends_assign_indexes_and_match_the_reference_tree() {
    let mut log = open(MemoryStore::new());
    let mut reference = MemoryTree::new();
    let mut next = 0;
    for n in BATCHES {
        let range = log.append(&batch(next..next + n)).unwrap();
        assert_eq!(range.start(), LeafIndex::new(next));
        assert_eq!(range.len(), n);
        for i in next..next + n {
            reference.push(leaf_hash(&entry(i)));
        }
        next += n;
        assert_eq!(log.size(), TreeSize::new(next));
        assert_eq!(Some(log.root()), reference.root_at(log.size()));
    }
}

#[test]
fn reopening_after_every_batch_writes_the_same_bytes_as_never_closing() {
    let continuous = MemoryStore::new();
    let reopened = MemoryStore::new();
    let mut a = open(continuous.clone());
    let mut next = 0;
    for n in BATCHES {
        a.append(&batch(next..next + n)).unwrap();
        let mut b = open(reopened.clone());
        b.append(&batch(next..next + n)).unwrap();
        assert_eq!((b.size(), b.root()), (a.size(), a.root()));
        next += n;
    }
    let mut paths = continuous.paths();
    paths.sort_by_key(ToString::to_string);
    let mut other = reopened.paths();
    other.sort_by_key(ToString::to_string);
    assert_eq!(paths, other);
    for p in paths {
        assert_eq!(
            continuous.read(&p).unwrap(),
            reopened.read(&p).unwrap(),
            "{p}"
        );
    }
}

#[test]
fn proofs_from_tiles_verify_at_every_committed_size() {
    let mut log = open(MemoryStore::new());
    let mut heads = vec![(TreeSize::ZERO, Hash::EMPTY_ROOT)];
    let mut next = 0;
    for n in BATCHES {
        log.append(&batch(next..next + n)).unwrap();
        next += n;
        heads.push((log.size(), log.root()));
    }
    for &(size, root) in &heads {
        assert_eq!(log.root_at(size).unwrap(), root);
        for i in [0, size.get() / 2, size.get().saturating_sub(1)] {
            if size.get() == 0 {
                continue;
            }
            let p = log.inclusion_proof(LeafIndex::new(i), size).unwrap();
            p.verify(&leaf_hash(&entry(i)), &root).unwrap();
        }
        for &(old, old_root) in &heads {
            if old <= size {
                let p = log.consistency_proof(old, size).unwrap();
                p.verify(&old_root, &root).unwrap();
            }
        }
    }
    assert!(matches!(
        log.inclusion_proof(LeafIndex::new(0), TreeSize::new(next + 1)),
        Err(LogError::BeyondLog { .. })
    ));
}

#[test]
fn checkpoint_is_signed_only_when_due() {
    let store = MemoryStore::new();
    let mut log = open(store.clone()).with_policy(CheckpointPolicy {
        refresh_after: Some(Duration::from_secs(60)),
    });
    let t0 = Instant::now();
    // Nothing stored yet: the empty tree gets a checkpoint.
    let first = log.checkpoint(t0).unwrap().unwrap();
    assert_eq!(first.checkpoint().size(), TreeSize::ZERO);
    assert_eq!(log.checkpoint(t0 + Duration::from_secs(1)).unwrap(), None);
    log.append(&batch(0..3)).unwrap();
    let grown = log
        .checkpoint(t0 + Duration::from_secs(2))
        .unwrap()
        .unwrap();
    assert_eq!(grown.checkpoint().size(), TreeSize::new(3));
    assert_eq!(grown.checkpoint().root(), log.root());
    assert_eq!(
        store.read(&LogPath::Checkpoint).unwrap().unwrap(),
        grown.note().as_bytes()
    );
    assert_eq!(log.checkpoint(t0 + Duration::from_secs(61)).unwrap(), None);
    let refreshed = log
        .checkpoint(t0 + Duration::from_secs(62))
        .unwrap()
        .unwrap();
    assert_eq!(refreshed.checkpoint().size(), TreeSize::new(3));

    // Without a refresh policy, an unchanged tree is never re-signed.
    let mut quiet = open(store.clone());
    assert_eq!(quiet.checkpointed_size(), Some(TreeSize::new(3)));
    assert_eq!(
        quiet.checkpoint(t0 + Duration::from_secs(3600)).unwrap(),
        None
    );
}

#[test]
fn oversized_entry_rejects_the_whole_batch() {
    let store = MemoryStore::new();
    let mut log = open(store.clone());
    let err = log
        .append(&[vec![0u8; 10], vec![0u8; MAX_ENTRY_LEN + 1]])
        .unwrap_err();
    assert!(matches!(err, LogError::EntryTooLarge { position: 1, .. }));
    assert_eq!(log.size(), TreeSize::ZERO);
    assert!(store.paths().is_empty());
    assert!(log.append(&[vec![0u8; MAX_ENTRY_LEN]]).is_ok());
}

/// Fails the `fail_at`-th write call (0-based), as a crash at that point would.
struct FailingStore {
    inner: MemoryStore,
    calls: AtomicUsize,
    fail_at: usize,
}

impl TileStore for FailingStore {
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read(path)
    }

    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Err(StoreError::Io {
                op: "write",
                path: "injected".to_owned(),
                source: std::io::Error::other("injected failure"),
            });
        }
        self.inner.write(files)
    }
}

#[test]
fn an_interrupted_append_is_not_committed_and_the_log_recovers() {
    // Write calls: append#1 data (0), commit (1); append#2 data (2), commit (3).
    for fail_at in [2, 3] {
        let inner = MemoryStore::new();
        let store = FailingStore {
            inner: inner.clone(),
            calls: AtomicUsize::new(0),
            fail_at,
        };
        let mut log = open(store);
        log.append(&batch(0..100)).unwrap();
        let (size, root) = (log.size(), log.root());
        assert!(log.append(&batch(100..400)).is_err());
        // Memory is unchanged...
        assert_eq!((log.size(), log.root()), (size, root));
        // ...and so is what a restart sees, even with the data half written.
        let mut reopened = open(inner.clone());
        assert_eq!((reopened.size(), reopened.root()), (size, root));
        // The retry writes exactly what an uninterrupted log would.
        reopened.append(&batch(100..400)).unwrap();
        let mut clean = open(MemoryStore::new());
        clean.append(&batch(0..100)).unwrap();
        clean.append(&batch(100..400)).unwrap();
        assert_eq!(reopened.root(), clean.root());
    }
}

#[test]
fn open_refuses_inconsistent_storage() {
    let store = MemoryStore::new();
    let mut log = open(store.clone());
    log.append(&batch(0..300)).unwrap();
    log.checkpoint(Instant::now()).unwrap();
    log.append(&batch(300..310)).unwrap();
    drop(log);

    // A checkpoint signed by someone else.
    let other =
        NoteSigner::from_seed(KeyName::new("example.com/ward-test").unwrap(), &[4; 32]).unwrap();
    assert!(matches!(
        Log::open(store.clone(), origin(), other),
        Err(LogError::StoredCheckpoint(_))
    ));
    // Another origin.
    assert!(matches!(
        Log::open(store.clone(), Origin::new("elsewhere").unwrap(), signer()),
        Err(LogError::StoredCheckpoint(
            CheckpointError::WrongOrigin { .. }
        ))
    ));

    // A commit record whose root does not match the tiles.
    let state = store.read(&LogPath::TreeState).unwrap().unwrap();
    let forged = format_state(TreeSize::new(310), &leaf_hash(b"forged"));
    store.write(&[(LogPath::TreeState, forged)]).unwrap();
    assert!(matches!(
        Log::open(store.clone(), origin(), signer()),
        Err(LogError::Diverged { .. })
    ));
    store
        .write(&[(LogPath::TreeState, b"garbage".to_vec())])
        .unwrap();
    assert!(matches!(
        Log::open(store.clone(), origin(), signer()),
        Err(LogError::TreeState(_))
    ));
    store.write(&[(LogPath::TreeState, state)]).unwrap();

    // A partial bundle that lost an entry.
    let bundle = LogPath::Bundle(BundleId::new(1, TileWidth::new(54).unwrap()));
    let bytes = store.read(&bundle).unwrap().unwrap();
    store
        .write(&[(bundle, bytes[..bytes.len() - 3].to_vec())])
        .unwrap();
    assert!(matches!(
        Log::open(store.clone(), origin(), signer()),
        Err(LogError::BundleBytes { .. })
    ));
    store.remove(&bundle);
    assert!(matches!(
        Log::open(store.clone(), origin(), signer()),
        Err(LogError::PartialBundle { .. })
    ));
    store.write(&[(bundle, bytes)]).unwrap();

    // A missing right-edge tile.
    let tile = LogPath::Tile(TileId::new(0, 1, TileWidth::new(54).unwrap()).unwrap());
    let bytes = store.read(&tile).unwrap().unwrap();
    store.remove(&tile);
    assert!(matches!(
        Log::open(store.clone(), origin(), signer()),
        Err(LogError::EdgeTiles(TileReadError::Missing(_)))
    ));
    store.write(&[(tile, bytes)]).unwrap();

    let log = Log::open(store, origin(), signer()).unwrap();
    assert_eq!(log.size(), TreeSize::new(310));
}

#[test]
fn state_record_parses_strictly() {
    let root = leaf_hash(b"r");
    let good = format_state(TreeSize::new(7), &root);
    assert_eq!(parse_state(&good).unwrap(), (TreeSize::new(7), root));
    for bad in [
        b"".to_vec(),
        b"ward-tree-state/v2\n7\n".to_vec(),
        format!("ward-tree-state/v1\n07\n{}\n", root.to_base64()).into_bytes(),
        format!("ward-tree-state/v1\n7\n{}\nextra\n", root.to_base64()).into_bytes(),
        format!("ward-tree-state/v1\n7\n{}", root.to_base64()).into_bytes(),
    ] {
        assert!(
            parse_state(&bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(&bad)
        );
    }
}
