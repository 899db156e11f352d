//! Every test runs on SQLite and, when `WARD_TEST_POSTGRES_URL` is set (always
//! in CI), on PostgreSQL. The tile store is synchronous, so it is driven from
//! `spawn_blocking` on a multi-thread runtime, as the sequencer drives it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::runtime::Handle;
use tokio::sync::Barrier;
use ward_audit::{
    KeyName, LeafIndex, Log, LogError, LogPath, NoteSigner, Origin, TileStore, TreeSize, verify_log,
};

use super::*;
use crate::store::Store;

const TTL: Duration = Duration::from_secs(10);
const TTL_MS: i64 = 10_000;

/// The store on each available backend, with its name for failure messages.
struct Backends {
    stores: Vec<(&'static str, Store)>,
    _dir: TempDir,
}

async fn backends() -> Backends {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("ward.db").display()
    ))
    .await
    .unwrap();
    let mut stores = vec![("sqlite", sqlite)];
    if let Some(url) = ward_testkit::postgres_url().await {
        stores.push(("postgres", Store::open(&url).await.unwrap()));
    }
    Backends { stores, _dir: dir }
}

/// Runs synchronous store code the way the sequencer does: off the runtime's
/// worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn origin() -> Origin {
    Origin::new("example.com/log").unwrap()
}

/// Fixed seed: reopening the log must verify the checkpoint it signed.
fn signer() -> NoteSigner {
    NoteSigner::from_seed(KeyName::new("test").unwrap(), &[7; 32]).unwrap()
}

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry {i}").into_bytes()).collect()
}

fn path(text: &str) -> LogPath {
    LogPath::parse_public(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_missing_resource_gives_none() {
    let backends = backends().await;
    for (name, store) in &backends.stores {
        let tiles = DbTileStore::new(store, Handle::current());
        assert_eq!(
            tiles.read_async(&LogPath::Checkpoint).await.unwrap(),
            None,
            "{name}"
        );
        let sync = tiles.clone();
        let read = blocking(move || sync.read(&LogPath::TreeState)).await;
        assert_eq!(read.unwrap(), None, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_read_back_byte_for_byte_and_replace() {
    let backends = backends().await;
    for (name, store) in &backends.stores {
        let tiles = DbTileStore::new(store, Handle::current());
        // Every byte value, an empty resource, and each kind of path.
        let all_bytes: Vec<u8> = (0..=255).collect();
        let batch = vec![
            (LogPath::Checkpoint, b"one".to_vec()),
            (path("tile/0/000.p/8"), all_bytes.clone()),
            (path("tile/entries/x001/234.p/1"), Vec::new()),
            (LogPath::TreeState, b"state".to_vec()),
        ];
        let sync = tiles.clone();
        let written = batch.clone();
        blocking(move || sync.write(&written)).await.unwrap();
        for (p, bytes) in &batch {
            assert_eq!(
                tiles.read_async(p).await.unwrap().as_ref(),
                Some(bytes),
                "{name} {p}"
            );
        }

        let sync = tiles.clone();
        blocking(move || sync.write(&[(LogPath::Checkpoint, b"two".to_vec())]))
            .await
            .unwrap();
        let sync = tiles.clone();
        let read = blocking(move || sync.read(&LogPath::Checkpoint)).await;
        assert_eq!(read.unwrap().as_deref(), Some(&b"two"[..]), "{name}");
        // Replacing one resource leaves the others alone.
        assert_eq!(
            tiles.read_async(&path("tile/0/000.p/8")).await.unwrap(),
            Some(all_bytes),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_in_the_database_reopens_and_verifies() {
    let backends = backends().await;
    for (name, store) in &backends.stores {
        let lease = SequencerLease::try_acquire(store, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        let tiles = DbTileStore::fenced(store, Handle::current(), &lease);
        let (size, root, note) = blocking(move || {
            let mut log = Log::open(tiles, origin(), signer()).unwrap();
            log.append(&entries(0..300)).unwrap();
            log.append(&entries(300..1000)).unwrap();
            let signed = log.checkpoint(Instant::now()).unwrap().unwrap();
            (log.size(), log.root(), signed.note().to_owned())
        })
        .await;
        assert_eq!(size, TreeSize::new(1000), "{name}");

        let tiles = DbTileStore::new(store, Handle::current());
        // 1000 entries: three full level-0 tiles and bundles, then partials.
        for full in [
            "tile/0/002",
            "tile/entries/002",
            "tile/0/003.p/232",
            "tile/1/000.p/3",
        ] {
            assert!(
                tiles.read_async(&path(full)).await.unwrap().is_some(),
                "{name} {full}"
            );
        }
        let reopened = blocking(move || {
            let log = Log::open(tiles.clone(), origin(), signer()).unwrap();
            let verified = verify_log(&tiles, &[note], signer().verifier(), &origin()).unwrap();
            (log.size(), log.root(), verified)
        })
        .await;
        let (reopened_size, reopened_root, verified) = reopened;
        assert_eq!((reopened_size, reopened_root), (size, root), "{name}");
        assert_eq!((verified.size, verified.root), (size, root), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_cannot_write_after_a_takeover() {
    let backends = backends().await;
    for (name, store) in &backends.stores {
        let a = SequencerLease::try_acquire(store, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.epoch(), 1, "{name}");
        let a_tiles = DbTileStore::fenced(store, Handle::current(), &a);
        let sync = a_tiles.clone();
        blocking(move || sync.write(&[(LogPath::Checkpoint, b"by a".to_vec())]))
            .await
            .unwrap();

        // Live until TTL_MS: B is refused before, and takes over at expiry.
        let early = SequencerLease::try_acquire(store, "b", TTL, TTL_MS - 1)
            .await
            .unwrap();
        assert_eq!(early, None, "{name}");
        let b = SequencerLease::try_acquire(store, "b", TTL, TTL_MS)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b.epoch(), b.holder()), (2, "b"), "{name}");

        // A's batch (one replacement, one new resource) is refused whole.
        let sync = a_tiles.clone();
        let err = blocking(move || {
            sync.write(&[
                (LogPath::Checkpoint, b"a again".to_vec()),
                (path("tile/0/000.p/1"), b"a tile".to_vec()),
            ])
        })
        .await
        .unwrap_err();
        assert!(is_lease_lost(&err), "{name}: {err:?}");
        let message = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            message.contains("sequencer lease was lost"),
            "{name}: {message}"
        );
        let checkpoint = a_tiles.read_async(&LogPath::Checkpoint).await.unwrap();
        assert_eq!(checkpoint.as_deref(), Some(&b"by a"[..]), "{name}");
        assert_eq!(
            a_tiles.read_async(&path("tile/0/000.p/1")).await.unwrap(),
            None,
            "{name}"
        );

        let b_tiles = DbTileStore::fenced(store, Handle::current(), &b);
        let sync = b_tiles.clone();
        blocking(move || sync.write(&[(LogPath::Checkpoint, b"by b".to_vec())]))
            .await
            .unwrap();
        let checkpoint = b_tiles.read_async(&LogPath::Checkpoint).await.unwrap();
        assert_eq!(checkpoint.as_deref(), Some(&b"by b"[..]), "{name}");

        assert!(!a.renew(store, TTL_MS + 1).await.unwrap(), "{name}");
        assert!(b.renew(store, TTL_MS + 1).await.unwrap(), "{name}");
        assert!(!a.release(store).await.unwrap(), "{name}");
        // A's failed renewal and release did not weaken B's lease.
        let c = SequencerLease::try_acquire(store, "c", TTL, TTL_MS + 2)
            .await
            .unwrap();
        assert_eq!(c, None, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leaders_log_stops_and_the_new_leader_continues_it() {
    let backends = backends().await;
    for (name, store) in &backends.stores {
        let a = SequencerLease::try_acquire(store, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        let a_tiles = DbTileStore::fenced(store, Handle::current(), &a);
        let mut a_log = blocking(move || {
            let mut log = Log::open(a_tiles, origin(), signer()).unwrap();
            log.append(&entries(0..10)).unwrap();
            log.checkpoint(Instant::now()).unwrap().unwrap();
            log
        })
        .await;

        let b = SequencerLease::try_acquire(store, "b", TTL, TTL_MS)
            .await
            .unwrap()
            .unwrap();
        let reader = DbTileStore::new(store, Handle::current());
        let state_before = reader.read_async(&LogPath::TreeState).await.unwrap();
        let bundle_before = reader
            .read_async(&path("tile/entries/000.p/10"))
            .await
            .unwrap();
        let err = blocking(move || a_log.append(&entries(10..20)).unwrap_err()).await;
        match &err {
            LogError::Store(e) => assert!(is_lease_lost(e), "{name}: {e:?}"),
            other => panic!("{name}: {other:?}"),
        }
        // Nothing of A's refused append reached the database.
        assert_eq!(
            reader.read_async(&LogPath::TreeState).await.unwrap(),
            state_before,
            "{name}"
        );
        assert_eq!(
            reader
                .read_async(&path("tile/entries/000.p/10"))
                .await
                .unwrap(),
            bundle_before,
            "{name}"
        );
        assert_eq!(
            reader
                .read_async(&path("tile/entries/000.p/20"))
                .await
                .unwrap(),
            None
        );

        // B reopens the log where A's last durable append left it.
        let b_tiles = DbTileStore::fenced(store, Handle::current(), &b);
        let (range, note) = blocking(move || {
            let mut log = Log::open(b_tiles.clone(), origin(), signer()).unwrap();
            assert_eq!(log.size(), TreeSize::new(10));
            let range = log.append(&entries(10..25)).unwrap();
            let signed = log.checkpoint(Instant::now()).unwrap().unwrap();
            (range, signed.note().to_owned())
        })
        .await;
        assert_eq!(range.start(), LeafIndex::new(10), "{name}");
        let verified =
            blocking(move || verify_log(&reader, &[note], signer().verifier(), &origin()).unwrap())
                .await;
        assert_eq!(verified.size, TreeSize::new(25), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_releasing_and_reacquiring_move_the_lease_as_documented() {
    let backends = backends().await;
    for (name, store) in &backends.stores {
        let a1 = SequencerLease::try_acquire(store, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        // Renewal pushes expiry out: B is refused at the original expiry.
        assert!(a1.renew(store, 5_000).await.unwrap(), "{name}");
        let b = SequencerLease::try_acquire(store, "b", TTL, TTL_MS)
            .await
            .unwrap();
        assert_eq!(b, None, "{name}");

        // Re-acquiring one's own live lease is a new grant that fences the
        // old one (a restarted process under the same name).
        let a2 = SequencerLease::try_acquire(store, "a", TTL, 6_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a1.epoch(), a2.epoch()), (1, 2), "{name}");
        let old = DbTileStore::fenced(store, Handle::current(), &a1);
        let written = blocking(move || old.write(&[(LogPath::Checkpoint, b"old".to_vec())])).await;
        assert!(is_lease_lost(&written.unwrap_err()), "{name}");
        assert!(!a1.renew(store, 6_001).await.unwrap(), "{name}");

        // Releasing lets another replica in at once, well before expiry.
        assert!(a2.release(store).await.unwrap(), "{name}");
        let b = SequencerLease::try_acquire(store, "b", TTL, 6_002)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.epoch(), 3, "{name}");
        let reader = DbTileStore::new(store, Handle::current());
        assert_eq!(
            reader.read_async(&LogPath::Checkpoint).await.unwrap(),
            None,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acquirers_have_exactly_one_winner() {
    const CONTENDERS: usize = 4;
    let backends = backends().await;
    for (name, store) in &backends.stores {
        // Each round starts after the previous winner's lease expired, so
        // every contender sees a free lease and all race for the same grant.
        for round in 0..20_i64 {
            let now = round * (TTL_MS + 1);
            let barrier = Arc::new(Barrier::new(CONTENDERS));
            let tasks: Vec<_> = (0..CONTENDERS)
                .map(|i| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        SequencerLease::try_acquire(&store, &format!("r{i}"), TTL, now).await
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for task in tasks {
                if let Some(lease) = task.await.unwrap().unwrap() {
                    winners.push(lease);
                }
            }
            assert_eq!(winners.len(), 1, "{name} round {round}: {winners:?}");
            let expected = u64::try_from(round + 1).unwrap();
            assert_eq!(winners[0].epoch(), expected, "{name} round {round}");
        }
    }
}
