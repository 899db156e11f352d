//! Cross-checks against Cloudflare's independent `tlog_tiles` and
//! `signed_note` crates (ports of Go's sumdb `tlog` and `note`), in both
//! directions where their API allows.

use std::collections::BTreeSet;
use std::sync::Mutex;

use signed_note::{
    Note, Signer as _, StandardSigner, StandardVerifier, Verifier as _, VerifierList,
};
use tlog_tiles::{HashReader as _, Tile, TileHashReader, TileReader};
use ward_audit::{
    Checkpoint, Hash, LeafIndex, Log, LogPath, MemoryStore, NoteSigner, NoteVerifier,
    SignedCheckpoint, StoreError, TileId, TileStore, TileWidth, TreeSize, leaf_hash, verify_log,
};

use crate::common::{ORIGIN, entry, fill, origin, signer};

fn theirs(h: Hash) -> tlog_tiles::Hash {
    tlog_tiles::Hash(*h.as_bytes())
}

fn ours(h: tlog_tiles::Hash) -> Hash {
    Hash::from_bytes(h.0)
}

/// Serves our store's hash tiles to `tlog_tiles` (height 8, our paths).
struct OurTiles<'a>(&'a MemoryStore);

impl TileReader for OurTiles<'_> {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                assert!(!t.is_data());
                let id = TileId::new(
                    t.level(),
                    t.level_index(),
                    TileWidth::new(t.width().into()).unwrap(),
                )
                .unwrap();
                self.0
                    .read(&LogPath::Tile(id))
                    .unwrap()
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// Batches chosen to cross level-0, level-1 and level-2 tile boundaries.
const BATCHES: [u64; 6] = [1, 255, 1, 300, 65_000, 300];

#[test]
fn our_tree_heads_tiles_and_proofs_agree_with_tlog_tiles() {
    let store = MemoryStore::new();
    let mut log = Log::open(store.clone(), origin(), signer()).unwrap();
    let checkpoints = fill(&mut log, &BATCHES, 0);
    let heads: Vec<(u64, Hash)> = checkpoints
        .iter()
        .map(|c| (c.checkpoint().size().get(), c.checkpoint().root()))
        .collect();

    assert_eq!(
        ours(tlog_tiles::record_hash(&entry(7, 0))),
        leaf_hash(&entry(7, 0))
    );
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert_eq!(
        ours(tlog_tiles::node_hash(theirs(a), theirs(b))),
        ward_audit::node_hash(&a, &b)
    );

    let tiles = OurTiles(&store);
    for &(size, root) in &heads {
        // Their reader authenticates every tile it loads against the root.
        let reader = TileHashReader::new(size, theirs(root), &tiles);
        assert_eq!(
            ours(tlog_tiles::tree_hash(size, &reader).unwrap()),
            root,
            "size {size}"
        );

        for i in [
            0,
            1,
            size / 3,
            size / 2 + 1,
            size.saturating_sub(2),
            size - 1,
        ] {
            if i >= size {
                continue;
            }
            let leaf = leaf_hash(&entry(i, 0));
            let mine = log
                .inclusion_proof(LeafIndex::new(i), TreeSize::new(size))
                .unwrap();
            let path: Vec<_> = mine.path().iter().copied().map(theirs).collect();
            tlog_tiles::check_record(&path, size, theirs(root), i, theirs(leaf))
                .unwrap_or_else(|e| panic!("their check of our proof ({i}, {size}): {e}"));
            let their_proof = tlog_tiles::prove_record(size, i, &reader).unwrap();
            assert_eq!(their_proof, path, "inclusion ({i}, {size})");
            ward_audit::InclusionProof::new(
                LeafIndex::new(i),
                TreeSize::new(size),
                their_proof.into_iter().map(ours).collect(),
            )
            .verify(&leaf, &root)
            .unwrap();
        }
        for &(old, old_root) in &heads {
            if old > size {
                continue;
            }
            let mine = log
                .consistency_proof(TreeSize::new(old), TreeSize::new(size))
                .unwrap();
            let path: Vec<_> = mine.path().iter().copied().map(theirs).collect();
            tlog_tiles::check_tree(&path, size, theirs(root), old, theirs(old_root))
                .unwrap_or_else(|e| panic!("their check of our proof ({old} -> {size}): {e}"));
            let their_proof = tlog_tiles::prove_tree(size, old, &reader).unwrap();
            assert_eq!(their_proof, path, "consistency ({old} -> {size})");
        }
    }
    // Their stored-hash reader also reads single hashes out of our tiles.
    let (size, root) = heads[heads.len() - 1];
    let reader = TileHashReader::new(size, theirs(root), &tiles);
    let idx = tlog_tiles::stored_hash_index(0, 65_538);
    assert_eq!(
        ours(reader.read_hashes(&[idx]).unwrap()[0]),
        leaf_hash(&entry(65_538, 0))
    );
}

/// Records every path a store is asked to write.
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    written: Mutex<Vec<LogPath>>,
}

impl TileStore for Recording {
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read(path)
    }

    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError> {
        self.written
            .lock()
            .unwrap()
            .extend(files.iter().map(|(p, _)| *p));
        self.inner.write(files)
    }
}

#[test]
fn our_tile_paths_and_published_tiles_match_tlog_tiles() {
    // Paths: theirs are Go sumdb's `tile/<H>/<L>/<N>`; C2SP drops `<H>` (8)
    // and names entry bundles `tile/entries/<N>` where Go has `tile/8/data/<N>`.
    for (l, n, w) in [
        (0u8, 0u64, 256u32),
        (0, 0, 1),
        (0, 999, 255),
        (1, 1000, 7),
        (3, 1_234_067, 256),
        (63, u64::MAX, 12),
    ] {
        let mine = TileId::new(l, n, TileWidth::new(w.into()).unwrap()).unwrap();
        let their = Tile::new(8, l, n, w, false);
        assert_eq!(mine.path(), their.path().replacen("tile/8/", "tile/", 1));
        assert_eq!(
            Tile::from_path(&mine.path().replacen("tile/", "tile/8/", 1)).unwrap(),
            their
        );
        let mut data = their;
        data.set_is_data();
        let bundle = ward_audit::BundleId::new(n, TileWidth::new(w.into()).unwrap());
        assert_eq!(
            bundle.path(),
            data.path().replacen("tile/8/data/", "tile/entries/", 1)
        );
    }

    // The tiles one append publishes are exactly `Tile::new_tiles(8, old, new)`,
    // plus one entry bundle per level-0 tile.
    let store = Recording::default();
    let mut log = Log::open(&store, origin(), signer()).unwrap();
    let mut old = 0;
    for n in BATCHES {
        store.written.lock().unwrap().clear();
        log.append(&(old..old + n).map(|i| entry(i, 0)).collect::<Vec<_>>())
            .unwrap();
        let new = old + n;
        let written = store.written.lock().unwrap().clone();
        let mut tiles = BTreeSet::new();
        let mut bundles = BTreeSet::new();
        for p in &written {
            match p {
                LogPath::Tile(t) => {
                    assert!(tiles.insert((t.level(), t.index(), u32::from(t.width().get()))))
                }
                LogPath::Bundle(b) => {
                    assert!(bundles.insert((0, b.index(), u32::from(b.width().get()))))
                }
                LogPath::TreeState => {}
                LogPath::Checkpoint => panic!("append wrote a checkpoint"),
            }
        }
        let expected: BTreeSet<_> = Tile::new_tiles(8, old, new)
            .into_iter()
            .map(|t| (t.level(), t.level_index(), t.width()))
            .collect();
        assert_eq!(tiles, expected, "append {old} -> {new}");
        let level0: BTreeSet<_> = expected.iter().filter(|t| t.0 == 0).copied().collect();
        assert_eq!(bundles, level0, "bundles {old} -> {new}");
        old = new;
    }
}

fn their_verifiers(vkey: &str) -> VerifierList {
    VerifierList::new(vec![Box::new(StandardVerifier::new(vkey).unwrap())])
}

#[test]
fn our_checkpoints_open_with_signed_note_and_tlog_tiles() {
    let store = MemoryStore::new();
    let mut log = Log::open(store, origin(), signer()).unwrap();
    let checkpoints = fill(&mut log, &[10, 300], 0);
    let vkey = signer().verifier().to_string();

    // Our key ID and verifier key string, as they compute them.
    let verifier = StandardVerifier::new(&vkey).unwrap();
    assert_eq!(verifier.name(), ORIGIN);
    assert_eq!(verifier.key_id(), signer().verifier().key_id().get());
    let mut typed = vec![0x01];
    typed.extend_from_slice(signer().verifier().public_key());
    assert_eq!(
        signed_note::key_id(ORIGIN, &typed),
        signer().verifier().key_id().get()
    );

    for cp in &checkpoints {
        let note = Note::from_bytes(cp.note().as_bytes()).unwrap();
        let (verified, unverified) = note.verify(&their_verifiers(&vkey)).unwrap();
        assert_eq!((verified.len(), unverified.len()), (1, 0));
        let theirs_cp = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
        assert_eq!(theirs_cp.origin(), ORIGIN);
        assert_eq!(theirs_cp.size(), cp.checkpoint().size().get());
        assert_eq!(ours(*theirs_cp.hash()), cp.checkpoint().root());
        assert_eq!(
            Note::from_bytes(cp.note().as_bytes()).unwrap().to_bytes(),
            cp.note().as_bytes()
        );

        // They refuse what we refuse.
        let size = cp.checkpoint().size().get();
        let tampered = cp
            .note()
            .replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
        assert_ne!(tampered, cp.note());
        let note = Note::from_bytes(tampered.as_bytes()).unwrap();
        assert!(note.verify(&their_verifiers(&vkey)).is_err());
    }
}

/// A deterministic stand-in for an OS RNG, to drive their key generator.
struct CounterRng(u64);

impl rand_core::RngCore for CounterRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for CounterRng {}

#[test]
fn their_keys_and_signed_checkpoints_open_with_ours() {
    let (skey, vkey) = signed_note::generate_key(&mut CounterRng(42), ORIGIN);
    // Their private and public key strings parse with ours and agree.
    let my_signer = NoteSigner::from_private_key_string(&skey).unwrap();
    let my_verifier: NoteVerifier = vkey.parse().unwrap();
    assert_eq!(my_signer.verifier(), &my_verifier);
    assert_eq!(my_verifier.to_string(), vkey);

    // A log written by us with that key...
    let store = MemoryStore::new();
    let mut log = Log::open(store.clone(), origin(), my_signer).unwrap();
    fill(&mut log, &[500], 0);

    // ...and a checkpoint of it built and signed entirely by them.
    let text = tlog_tiles::Checkpoint::new(ORIGIN, log.size().get(), theirs(log.root()), "")
        .unwrap()
        .to_bytes();
    let mut note = Note::new(&text, &[]).unwrap();
    let signer = StandardSigner::new(&skey).unwrap();
    assert_eq!(signer.key_id(), my_verifier.key_id().get());
    note.add_sigs(&[&signer]).unwrap();
    let bytes = note.to_bytes();

    let opened =
        SignedCheckpoint::open(&bytes, std::slice::from_ref(&my_verifier), &origin()).unwrap();
    assert_eq!(
        opened.checkpoint(),
        &Checkpoint::new(origin(), log.size(), log.root())
    );
    // Our offline verifier accepts the log against their checkpoint.
    let verified = verify_log(&store, &[bytes], &my_verifier, &origin()).unwrap();
    assert_eq!(verified.size, log.size());

    // Their note text is byte-identical to ours for the same tree head.
    assert_eq!(
        text,
        Checkpoint::new(origin(), log.size(), log.root())
            .to_string()
            .into_bytes()
    );
}
