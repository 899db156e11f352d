//! [`Log`]: the appender. It takes batches of entries, assigns their
//! indexes, writes the changed hash tiles and entry bundles, commits the new
//! tree size, and signs checkpoints when asked and due.
//!
//! Durability (DESIGN.md §4 invariant 4): an append writes tiles and bundles
//! first, then — in a second, separate store write — the private
//! `ward-tree-state` record (size and root). That record is the commit
//! point: an append that returned is on disk, and one interrupted before the
//! record never happened (its stray tiles are overwritten by the next
//! append). Re-opening reads the record, the latest checkpoint and the
//! right-edge tiles, and checks that they all agree.

use std::time::{Duration, Instant};

use crate::bundle::{self, BundleError, MAX_ENTRY_LEN};
use crate::checkpoint::{Checkpoint, CheckpointError, Origin, SignedCheckpoint};
use crate::edge::{Edge, EdgeError, levels_of};
use crate::hash::{Hash, leaf_hash};
use crate::index::{LeafIndex, LeafRange, TreeSize, parse_decimal};
use crate::nodes::{TileNodes, TileReadError, read_tile};
use crate::note::NoteSigner;
use crate::proof::{ConsistencyProof, InclusionProof, ProofError};
use crate::store::{StoreError, TileStore};
use crate::tile::{
    BundleId, FULL_WIDTH, LogPath, TileId, TileWidth, encode_hashes, hashes_at_level,
};
use crate::tree::{self, ProveError};

/// First line of the commit record; bump on any format change.
const STATE_MAGIC: &str = "ward-tree-state/v1";

/// Why the log could not open, append, sign or prove.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store failed.
    #[error("log storage")]
    Store(#[from] StoreError),
    /// An entry does not fit the 16-bit length of an entry bundle.
    #[error("entry #{position} of the batch is {len} bytes; the limit is {MAX_ENTRY_LEN}")]
    EntryTooLarge {
        /// Position of the entry in the batch.
        position: usize,
        /// Its length.
        len: usize,
    },
    /// The commit record is malformed.
    #[error("ward-tree-state record is malformed: {0}")]
    TreeState(&'static str),
    /// The stored checkpoint is not a valid checkpoint of this log under
    /// this key.
    #[error("stored checkpoint does not verify")]
    StoredCheckpoint(#[source] CheckpointError),
    /// Signing a checkpoint failed.
    #[error("signing the checkpoint")]
    Sign(#[source] CheckpointError),
    /// A right-edge hash tile could not be read.
    #[error("reading the right-edge hash tiles")]
    EdgeTiles(#[from] TileReadError),
    /// The right-edge tiles do not have the shape of the committed size.
    #[error(transparent)]
    EdgeShape(#[from] EdgeError),
    /// The partial entry bundle is missing or does not match its tile.
    #[error("entry bundle {path}: {reason}")]
    PartialBundle {
        /// Bundle path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The partial entry bundle's bytes are malformed.
    #[error("entry bundle {path}")]
    BundleBytes {
        /// Bundle path.
        path: String,
        /// What is wrong.
        #[source]
        source: BundleError,
    },
    /// The stored state contradicts itself (tiles, commit record, checkpoint).
    #[error("stored log state is inconsistent at tree size {size}: {what}")]
    Diverged {
        /// Tree size concerned.
        size: TreeSize,
        /// Which pieces disagree.
        what: &'static str,
    },
    /// A proof or tree head was asked for a size the log has not reached.
    #[error("tree size {requested} is beyond the log's size {size}")]
    BeyondLog {
        /// Size asked for.
        requested: TreeSize,
        /// The log's size.
        size: TreeSize,
    },
    /// Producing a proof or tree head from tiles failed.
    #[error("producing a proof from the stored tiles")]
    Prove(#[from] ProveError<TileReadError>),
    /// A stored checkpoint is not consistent with the committed tree.
    #[error("stored checkpoint is not consistent with the committed tree")]
    Inconsistent(#[source] ProofError),
}

/// When [`Log::checkpoint`] signs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Also re-sign an unchanged tree once the last checkpoint is this old
    /// (so clients and witnesses can tell a quiet log from a stalled one).
    /// `None`: sign only when the tree grew.
    pub refresh_after: Option<Duration>,
}

/// The appender of one log. See the module documentation.
#[derive(Debug)]
pub struct Log<S: TileStore> {
    store: S,
    origin: Origin,
    signer: NoteSigner,
    policy: CheckpointPolicy,
    edge: Edge,
    root: Hash,
    /// Encoded entries of the rightmost, partial bundle.
    bundle: Vec<u8>,
    /// Size of the checkpoint in the store, if any.
    checkpointed: Option<TreeSize>,
    /// When this process last signed (not persisted: a restart re-signs).
    signed_at: Option<Instant>,
}

impl<S: TileStore> Log<S> {
    /// Opens the log in `store` (empty if the store is), recovering the
    /// committed tree and checking that commit record, right-edge tiles,
    /// partial bundle and stored checkpoint agree.
    pub fn open(store: S, origin: Origin, signer: NoteSigner) -> Result<Self, LogError> {
        let checkpoint = match store.read(&LogPath::Checkpoint)? {
            Some(note) => Some(
                SignedCheckpoint::open(&note, std::slice::from_ref(signer.verifier()), &origin)
                    .map_err(LogError::StoredCheckpoint)?
                    .checkpoint()
                    .clone(),
            ),
            None => None,
        };
        let (size, root) = match (store.read(&LogPath::TreeState)?, &checkpoint) {
            (Some(bytes), _) => parse_state(&bytes)?,
            (None, Some(cp)) => (cp.size(), cp.root()),
            (None, None) => (TreeSize::ZERO, Hash::EMPTY_ROOT),
        };

        let mut partial = Vec::new();
        for level in (0u8..).take(levels_of(size)) {
            let index = hashes_at_level(size, level) / u64::from(FULL_WIDTH);
            match TileId::in_tree(level, index, size) {
                Some(tile) if !tile.width().is_full() => partial.push(read_tile(&store, tile)?),
                _ => partial.push(Vec::new()),
            }
        }
        let edge = Edge::from_partial_tiles(size, partial)?;
        if edge.root() != root {
            return Err(LogError::Diverged {
                size,
                what: "the right-edge tiles do not hash to the committed root",
            });
        }
        let bundle = read_partial_bundle(&store, &edge)?;

        if let Some(cp) = &checkpoint {
            if cp.size() > size {
                return Err(LogError::Diverged {
                    size: cp.size(),
                    what: "the checkpoint is ahead of the committed tree",
                });
            }
            let proof = tree::consistency_proof(&TileNodes::new(&store, size), cp.size(), size)?;
            proof
                .verify(&cp.root(), &root)
                .map_err(LogError::Inconsistent)?;
        }

        Ok(Self {
            store,
            origin,
            signer,
            policy: CheckpointPolicy::default(),
            edge,
            root,
            bundle,
            checkpointed: checkpoint.map(|c| c.size()),
            signed_at: None,
        })
    }

    /// Sets when [`Log::checkpoint`] signs.
    #[must_use]
    pub fn with_policy(mut self, policy: CheckpointPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Number of committed entries.
    #[must_use]
    pub fn size(&self) -> TreeSize {
        self.edge.size()
    }

    /// Root of the committed tree.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The log's origin.
    #[must_use]
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Size of the latest stored checkpoint.
    #[must_use]
    pub fn checkpointed_size(&self) -> Option<TreeSize> {
        self.checkpointed
    }

    /// The underlying store (for serving tiles and bundles).
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Appends a batch and makes it durable; returns the assigned indexes,
    /// in order. Either the whole batch is committed or none of it (and the
    /// log is unchanged in memory too).
    pub fn append<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<LeafRange, LogError> {
        let old = self.edge.size();
        if let Some((position, e)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.as_ref().len() > MAX_ENTRY_LEN)
        {
            return Err(LogError::EntryTooLarge {
                position,
                len: e.as_ref().len(),
            });
        }
        if entries.is_empty() {
            return Ok(LeafRange::new(old.get(), old.get()));
        }

        let mut edge = self.edge.clone();
        let mut bundle = self.bundle.clone();
        let mut writes = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref();
            edge.push(leaf_hash(entry), |tile, hashes| {
                writes.push((LogPath::Tile(tile), encode_hashes(hashes)));
            });
            bundle::push_entry(&mut bundle, entry).map_err(|_| LogError::EntryTooLarge {
                position,
                len: entry.len(),
            })?;
            let size = edge.size().get();
            if size.is_multiple_of(u64::from(FULL_WIDTH)) {
                let full = BundleId::new(size / u64::from(FULL_WIDTH) - 1, TileWidth::FULL);
                writes.push((LogPath::Bundle(full), std::mem::take(&mut bundle)));
            }
        }
        let new = edge.size();
        for (tile, hashes) in edge.partial_tiles() {
            if hashes_at_level(old, tile.level()) != hashes_at_level(new, tile.level()) {
                writes.push((LogPath::Tile(tile), encode_hashes(hashes)));
            }
        }
        if let Some(partial) = BundleId::in_tree(new.get() / u64::from(FULL_WIDTH), new) {
            writes.push((LogPath::Bundle(partial), bundle.clone()));
        }
        let root = edge.root();

        // Data first, then the commit record, as two separate durable writes.
        self.store.write(&writes)?;
        self.store
            .write(&[(LogPath::TreeState, format_state(new, &root))])?;

        self.edge = edge;
        self.bundle = bundle;
        self.root = root;
        Ok(LeafRange::new(old.get(), new.get()))
    }

    /// Signs and stores a checkpoint of the committed tree if one is due under
    /// the policy: when none is stored yet, when the tree grew since the last
    /// one, or when `refresh_after` has passed. The caller drives the cadence
    /// (about once a second); `now` comes from its clock so this stays
    /// synchronous and testable.
    pub fn checkpoint(&mut self, now: Instant) -> Result<Option<SignedCheckpoint>, LogError> {
        let size = self.size();
        let due = match self.checkpointed {
            None => true,
            Some(s) if s != size => true,
            Some(_) => match (self.policy.refresh_after, self.signed_at) {
                (Some(age), Some(at)) => now.saturating_duration_since(at) >= age,
                (Some(_), None) => true,
                (None, _) => false,
            },
        };
        if !due {
            return Ok(None);
        }
        let signed = Checkpoint::new(self.origin.clone(), size, self.root)
            .sign(&self.signer)
            .map_err(LogError::Sign)?;
        self.store
            .write(&[(LogPath::Checkpoint, signed.note().as_bytes().to_vec())])?;
        self.checkpointed = Some(size);
        self.signed_at = Some(now);
        Ok(Some(signed))
    }

    /// Root of the tree at an earlier committed `size`, from the tiles.
    pub fn root_at(&self, size: TreeSize) -> Result<Hash, LogError> {
        self.check_size(size)?;
        Ok(tree::root(&TileNodes::new(&self.store, size), size)?)
    }

    /// Inclusion proof of `index` in the tree of committed `size`.
    pub fn inclusion_proof(
        &self,
        index: LeafIndex,
        size: TreeSize,
    ) -> Result<InclusionProof, LogError> {
        self.check_size(size)?;
        Ok(tree::inclusion_proof(
            &TileNodes::new(&self.store, size),
            index,
            size,
        )?)
    }

    /// Consistency proof between two committed sizes.
    pub fn consistency_proof(
        &self,
        old: TreeSize,
        new: TreeSize,
    ) -> Result<ConsistencyProof, LogError> {
        self.check_size(new)?;
        Ok(tree::consistency_proof(
            &TileNodes::new(&self.store, new),
            old,
            new,
        )?)
    }

    fn check_size(&self, requested: TreeSize) -> Result<(), LogError> {
        if requested > self.size() {
            return Err(LogError::BeyondLog {
                requested,
                size: self.size(),
            });
        }
        Ok(())
    }
}

/// Reads the partial entry bundle of the committed tree and checks its
/// entries hash to the level-0 partial tile.
fn read_partial_bundle<S: TileStore>(store: &S, edge: &Edge) -> Result<Vec<u8>, LogError> {
    let size = edge.size();
    let Some(id) = BundleId::in_tree(size.get() / u64::from(FULL_WIDTH), size) else {
        return Ok(Vec::new());
    };
    let path = id.path();
    let bytes = match store.read(&LogPath::Bundle(id))? {
        Some(b) => b,
        None => {
            return Err(LogError::PartialBundle {
                path,
                reason: "is missing",
            });
        }
    };
    let entries: Vec<&[u8]> =
        bundle::entries(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|source| LogError::BundleBytes {
                path: path.clone(),
                source,
            })?;
    if entries.len() != usize::from(id.width().get()) {
        return Err(LogError::PartialBundle {
            path,
            reason: "holds a different number of entries than its width",
        });
    }
    let tile = edge
        .partial_tiles()
        .find(|(t, _)| t.level() == 0)
        .map(|(_, h)| h)
        .unwrap_or_default();
    let matches =
        entries.len() == tile.len() && entries.iter().zip(tile).all(|(e, h)| leaf_hash(e) == *h);
    if !matches {
        return Err(LogError::PartialBundle {
            path,
            reason: "its entries do not hash to the level-0 partial tile",
        });
    }
    Ok(bytes)
}

fn format_state(size: TreeSize, root: &Hash) -> Vec<u8> {
    format!("{STATE_MAGIC}\n{size}\n{}\n", root.to_base64()).into_bytes()
}

fn parse_state(bytes: &[u8]) -> Result<(TreeSize, Hash), LogError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LogError::TreeState("not UTF-8"))?;
    let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
    if lines.next() != Some(STATE_MAGIC) {
        return Err(LogError::TreeState("unknown format"));
    }
    let size = lines
        .next()
        .and_then(|s| parse_decimal(s).ok())
        .ok_or(LogError::TreeState("bad tree size"))?;
    let root = lines
        .next()
        .and_then(|r| Hash::from_base64(r).ok())
        .ok_or(LogError::TreeState("bad root hash"))?;
    if lines.next().is_some() || !text.ends_with('\n') {
        return Err(LogError::TreeState("unexpected trailing data"));
    }
    Ok((TreeSize::new(size), root))
}

#[cfg(test)]
mod tests;
