//! Offline verification of a whole log, as an auditor does it from a
//! mirrored directory (`ward audit verify --from-dir DIR`).
//!
//! Given the log's resources (any [`TileStore`]), one or more checkpoints
//! and the log's verifier key, [`verify_log`]:
//! 1. checks every checkpoint's signature, format and origin;
//! 2. recomputes the tree from the entry bundles alone, comparing its root
//!    with each checkpoint at that checkpoint's size — which also proves the
//!    checkpoints consistent with one another, since they are all heads of
//!    one recomputed sequence of entries;
//! 3. compares every stored hash tile with the recomputed one.
//!
//! On failure it says what and where: the first altered entry index, the
//! hash tile and index that differ, the checkpoint that does not verify, or
//! the two checkpoints that fork. To name an altered entry it first checks
//! that the stored level-0 hashes are the ones the checkpoint signed, so the
//! index it reports is proven, not guessed.

use crate::bundle::{self, BundleError};
use crate::checkpoint::{Checkpoint, CheckpointError, Origin, SignedCheckpoint};
use crate::edge::Edge;
use crate::hash::{Hash, leaf_hash};
use crate::index::{LeafIndex, TreeSize};
use crate::nodes::{TileReadError, read_tile};
use crate::note::NoteVerifier;
use crate::store::{StoreError, TileStore};
use crate::tile::{BundleId, FULL_WIDTH, LogPath, TileId, decode_hashes};

/// What [`verify_log`] proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLog {
    /// Size of the largest checkpoint: entries `0..size` are verified.
    pub size: TreeSize,
    /// Root of that tree.
    pub root: Hash,
    /// Number of checkpoints checked.
    pub checkpoints: usize,
}

/// Why verification failed. Checkpoints are named by their position in the
/// list given to [`verify_log`] (0-based).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No checkpoint was given.
    #[error("no checkpoint to verify against")]
    NoCheckpoints,
    /// A checkpoint is malformed, for another origin, or badly signed.
    #[error("checkpoint {position} is not valid")]
    Checkpoint {
        /// Position in the given list.
        position: usize,
        /// Why.
        #[source]
        source: CheckpointError,
    },
    /// Two validly signed checkpoints of the same size with different roots.
    #[error(
        "checkpoints {first} and {second} are both validly signed for tree size {size} but have different roots: the log forked"
    )]
    ForkAtSameSize {
        /// One checkpoint.
        first: usize,
        /// The other.
        second: usize,
        /// Their common size.
        size: TreeSize,
    },
    /// Two validly signed checkpoints that cannot both be heads of the same
    /// log: the stored entries and tiles agree with one, not the other.
    #[error(
        "checkpoints {consistent} and {conflicting} are both validly signed but not consistent: the log's entries and hash tiles match checkpoint {consistent}, not checkpoint {conflicting} (size {size}): the log forked or was rewritten"
    )]
    Fork {
        /// The checkpoint the stored log matches.
        consistent: usize,
        /// The checkpoint it contradicts.
        conflicting: usize,
        /// Size of the conflicting checkpoint.
        size: TreeSize,
    },
    /// Reading the store failed.
    #[error("reading the log")]
    Store(#[from] StoreError),
    /// Entries a checkpoint covers are not in the store: truncation.
    #[error(
        "entries from index {index} on are missing ({path} is absent or short): the log was truncated"
    )]
    MissingEntries {
        /// First missing entry.
        index: LeafIndex,
        /// Bundle where it should be.
        path: String,
    },
    /// An entry bundle whose bytes do not parse.
    #[error("entry bundle {path} is malformed at entry {index}")]
    MalformedBundle {
        /// First entry that cannot be read.
        index: LeafIndex,
        /// The bundle.
        path: String,
        /// Parse error.
        #[source]
        source: BundleError,
    },
    /// An entry bundle with more entries than its width.
    #[error("entry bundle {path} holds more than {width} entries")]
    OverfullBundle {
        /// The bundle.
        path: String,
        /// Its width.
        width: u16,
    },
    /// An entry that does not hash to what the checkpoint signed.
    #[error(
        "entry {index} was altered: it does not hash to the leaf hash signed by checkpoint {checkpoint}"
    )]
    EntryMismatch {
        /// First altered entry.
        index: LeafIndex,
        /// The checkpoint that proves it.
        checkpoint: usize,
    },
    /// Entries and tiles both disagree with a checkpoint, and the stored log
    /// is not a consistent alternative history either: entries and hash
    /// tiles were rewritten together.
    #[error(
        "neither the entries nor the hash tiles hash to the root of checkpoint {checkpoint} (size {size}): entries and tiles were rewritten together"
    )]
    RootMismatch {
        /// The checkpoint.
        checkpoint: usize,
        /// Its size.
        size: TreeSize,
    },
    /// A stored hash tile differs from the one recomputed from the entries.
    #[error("hash tile {path} differs from the recomputed tree at level-{level} hash {index}")]
    HashTileMismatch {
        /// The tile.
        path: String,
        /// Tile level.
        level: u8,
        /// Index (within its level) of the first differing hash.
        index: u64,
    },
    /// A stored older partial bundle differs from the log's entries.
    #[error("partial entry bundle {path} differs from the log at entry {index}")]
    PartialBundleMismatch {
        /// The bundle.
        path: String,
        /// First differing entry.
        index: LeafIndex,
    },
    /// A hash tile is missing or malformed.
    #[error("hash tile is unusable")]
    HashTile(#[source] TileReadError),
}

/// Verifies the log in `store` against `checkpoints` (signed notes) signed
/// by `verifier` for `origin`. See the module documentation.
pub fn verify_log<S: TileStore + ?Sized, C: AsRef<[u8]>>(
    store: &S,
    checkpoints: &[C],
    verifier: &NoteVerifier,
    origin: &Origin,
) -> Result<VerifiedLog, VerifyError> {
    // 1. Signatures, and equal sizes with different roots.
    let mut heads: Vec<(usize, Checkpoint)> = Vec::with_capacity(checkpoints.len());
    for (position, note) in checkpoints.iter().enumerate() {
        let signed = SignedCheckpoint::open(note.as_ref(), std::slice::from_ref(verifier), origin)
            .map_err(|source| VerifyError::Checkpoint { position, source })?;
        heads.push((position, signed.checkpoint().clone()));
    }
    heads.sort_by_key(|(position, cp)| (cp.size(), *position));
    for pair in heads.windows(2) {
        if let [(a, x), (b, y)] = pair
            && x.size() == y.size()
            && x.root() != y.root()
        {
            return Err(VerifyError::ForkAtSameSize {
                first: *a,
                second: *b,
                size: x.size(),
            });
        }
    }
    let Some((_, largest)) = heads.last() else {
        return Err(VerifyError::NoCheckpoints);
    };
    let size = largest.size();

    // 2–3. One pass over the entries; tiles compared as they complete.
    let mut walk = Walk {
        edge: Edge::new(),
        heads: &heads,
        next: 0,
        matches: vec![false; heads.len()],
        tile_problem: None,
    };
    walk.at_heads(store, size);
    for index in 0..bundles_in(size) {
        for leaf in bundle_leaf_hashes(store, index, size)? {
            let problem = &mut walk.tile_problem;
            walk.edge.push(leaf, |tile, hashes| {
                if problem.is_none() {
                    *problem = compare_tile(store, tile, hashes, false);
                }
            });
            walk.at_heads(store, size);
        }
    }
    for (tile, hashes) in walk.edge.partial_tiles() {
        if walk.tile_problem.is_none() {
            walk.tile_problem = compare_tile(store, tile, hashes, false);
        }
    }

    // Classify.
    let Walk {
        edge,
        matches,
        tile_problem,
        ..
    } = walk;
    let Some(bad) = matches.iter().position(|m| !m) else {
        return match tile_problem {
            Some(problem) => Err(problem),
            None => Ok(VerifiedLog {
                size,
                root: edge.root(),
                checkpoints: heads.len(),
            }),
        };
    };
    let Some((position, cp)) = heads.get(bad) else {
        return Err(VerifyError::NoCheckpoints);
    };
    if let Some(index) = first_altered_entry(store, cp, size)? {
        return Err(VerifyError::EntryMismatch {
            index,
            checkpoint: *position,
        });
    }
    // Entries and every tile agree with each other, and with another
    // signed checkpoint: the log itself signed two histories.
    let consistent = heads
        .iter()
        .zip(&matches)
        .find(|(_, m)| **m)
        .map(|(h, _)| h.0);
    if let (Some(consistent), None) = (consistent, &tile_problem) {
        return Err(VerifyError::Fork {
            consistent,
            conflicting: *position,
            size: cp.size(),
        });
    }
    Err(VerifyError::RootMismatch {
        checkpoint: *position,
        size: cp.size(),
    })
}

/// State of the single pass over the entries.
struct Walk<'a> {
    edge: Edge,
    /// Checkpoints sorted by size.
    heads: &'a [(usize, Checkpoint)],
    /// Next checkpoint (in `heads`) to reach.
    next: usize,
    /// Whether each checkpoint's root equals the recomputed one.
    matches: Vec<bool>,
    /// First tile or bundle that differs from the recomputed tree.
    tile_problem: Option<VerifyError>,
}

impl Walk<'_> {
    /// At each checkpoint's size: compare roots, and check the partial
    /// tiles and bundle of that size if the log still serves them (it may
    /// delete them once the full ones exist).
    fn at_heads<S: TileStore + ?Sized>(&mut self, store: &S, final_size: TreeSize) {
        while let Some((_, cp)) = self
            .heads
            .get(self.next)
            .filter(|(_, cp)| cp.size() == self.edge.size())
        {
            if let Some(m) = self.matches.get_mut(self.next) {
                *m = cp.root() == self.edge.root();
            }
            self.next += 1;
            if cp.size() == final_size || self.tile_problem.is_some() {
                continue;
            }
            for (tile, hashes) in self.edge.partial_tiles() {
                if self.tile_problem.is_none() {
                    self.tile_problem = compare_tile(store, tile, hashes, true);
                }
            }
            if self.tile_problem.is_none() {
                self.tile_problem = compare_partial_bundle(store, &self.edge);
            }
        }
    }
}

/// Number of entry bundles (full and partial) of the tree of `size`.
fn bundles_in(size: TreeSize) -> u64 {
    size.get().div_ceil(u64::from(FULL_WIDTH))
}

/// The leaf hashes of bundle `index` as it stands in the tree of `size`,
/// reading the exact bundle or, for a partial one, the prefix of a wider
/// bundle. Errors name the first entry that cannot be read.
fn bundle_leaf_hashes<S: TileStore + ?Sized>(
    store: &S,
    index: u64,
    size: TreeSize,
) -> Result<Vec<Hash>, VerifyError> {
    let Some(id) = BundleId::in_tree(index, size) else {
        return Ok(Vec::new());
    };
    let width = usize::from(id.width().get());
    let (bytes, exact) = match store.read(&LogPath::Bundle(id))? {
        Some(b) => (b, true),
        None if !id.width().is_full() => match store.read(&LogPath::Bundle(id.full()))? {
            Some(b) => (b, false),
            None => (Vec::new(), true),
        },
        None => (Vec::new(), true),
    };
    let path = id.path();
    let mut hashes = Vec::with_capacity(width);
    for (position, entry) in bundle::entries(&bytes).enumerate() {
        if position == width {
            if exact {
                return Err(VerifyError::OverfullBundle {
                    path,
                    width: id.width().get(),
                });
            }
            break;
        }
        let entry = entry.map_err(|source| VerifyError::MalformedBundle {
            index: LeafIndex::new(id.first_entry() + position as u64),
            path: path.clone(),
            source,
        })?;
        hashes.push(leaf_hash(entry));
    }
    if hashes.len() < width {
        return Err(VerifyError::MissingEntries {
            index: LeafIndex::new(id.first_entry() + hashes.len() as u64),
            path,
        });
    }
    Ok(hashes)
}

/// Compares a recomputed tile with the stored one; `None` when they agree.
/// With `if_present`, a missing tile is fine (an old partial tile).
fn compare_tile<S: TileStore + ?Sized>(
    store: &S,
    tile: TileId,
    recomputed: &[Hash],
    if_present: bool,
) -> Option<VerifyError> {
    let stored = if if_present {
        let bytes = match store.read(&LogPath::Tile(tile)) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => return Some(VerifyError::Store(e)),
        };
        match decode_hashes(&tile, &bytes) {
            Ok(h) => h,
            Err(e) => return Some(VerifyError::HashTile(TileReadError::Tile(e))),
        }
    } else {
        match read_tile(store, tile) {
            Ok(s) => s,
            Err(e) => return Some(VerifyError::HashTile(e)),
        }
    };
    let at = stored.iter().zip(recomputed).position(|(a, b)| a != b)?;
    Some(VerifyError::HashTileMismatch {
        path: tile.path(),
        level: tile.level(),
        index: tile.index() * u64::from(FULL_WIDTH) + at as u64,
    })
}

/// Compares an older partial bundle, if still stored, with the leaf hashes
/// of the level-0 partial tile at the same size.
fn compare_partial_bundle<S: TileStore + ?Sized>(store: &S, edge: &Edge) -> Option<VerifyError> {
    let size = edge.size();
    let id = BundleId::in_tree(size.get() / u64::from(FULL_WIDTH), size)?;
    let bytes = match store.read(&LogPath::Bundle(id)) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => return Some(VerifyError::Store(e)),
    };
    let (_, expected) = edge.partial_tiles().find(|(t, _)| t.level() == 0)?;
    let mut entries = bundle::entries(&bytes);
    let mut expected = expected.iter();
    for position in 0.. {
        let index = LeafIndex::new(id.first_entry() + position);
        match (entries.next(), expected.next()) {
            (None, None) => return None,
            (Some(Ok(entry)), Some(want)) if leaf_hash(entry) == *want => {}
            _ => {
                return Some(VerifyError::PartialBundleMismatch {
                    path: id.path(),
                    index,
                });
            }
        }
    }
    None
}

/// For a checkpoint the entries do not hash to: if the stored level-0
/// hashes are exactly the ones it signed, the first entry whose hash
/// differs from them is the altered one. Entries are read as the main pass
/// read them, from the bundles of the tree of `final_size`.
fn first_altered_entry<S: TileStore + ?Sized>(
    store: &S,
    cp: &Checkpoint,
    final_size: TreeSize,
) -> Result<Option<LeafIndex>, VerifyError> {
    let size = cp.size();
    let mut signed = Edge::new();
    let mut first_difference = None;
    for index in 0..bundles_in(size) {
        let Some(tile) = TileId::in_tree(0, index, size) else {
            break;
        };
        let Ok(stored) = read_tile(store, tile) else {
            return Ok(None);
        };
        if first_difference.is_none() {
            // A truncated or malformed bundle was reported by the first pass;
            // here it only means "no proven difference in this bundle".
            let entries = bundle_leaf_hashes(store, index, final_size).unwrap_or_default();
            first_difference = stored
                .iter()
                .zip(entries.iter().map(Some).chain(std::iter::repeat(None)))
                .position(|(s, e)| e != Some(s))
                .map(|at| LeafIndex::new(tile.index() * u64::from(FULL_WIDTH) + at as u64));
        }
        for h in stored {
            signed.push(h, |_, _| {});
        }
    }
    if signed.size() != size || signed.root() != cp.root() {
        return Ok(None);
    }
    Ok(first_difference)
}
