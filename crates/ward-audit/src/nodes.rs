//! [`TileNodes`]: a [`NodeSource`] that reads the hashes of complete subtrees
//! out of stored hash tiles, so that any reader of a [`TileStore`] (the
//! appender, an API replica, an auditor's mirror) can produce tree heads and
//! proofs for any checkpointed size.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::hash::Hash;
use crate::index::TreeSize;
use crate::store::{StoreError, TileStore};
use crate::tile::{FULL_WIDTH, LogPath, TILE_HEIGHT, TileError, TileId, decode_hashes};
use crate::tree::{NodeSource, merkle_root};

/// Why a node could not be read from tiles.
#[derive(Debug, thiserror::Error)]
pub enum TileReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Neither the tile nor its full-width version is stored.
    #[error("hash tile {0} is missing")]
    Missing(String),
    /// The tile's bytes are malformed.
    #[error(transparent)]
    Tile(#[from] TileError),
    /// The node lies outside the tree the reader was made for.
    #[error("node at level {level}, index {index} is not complete in a tree of size {size}")]
    OutOfTree {
        /// Height of the subtree.
        level: u8,
        /// Index within the level.
        index: u64,
        /// The reader's tree size.
        size: TreeSize,
    },
}

/// Reads nodes of the tree of one size from a store's hash tiles, caching
/// the tiles it has read (make one per request; it is not `Sync`).
#[derive(Debug)]
pub struct TileNodes<'a, S: ?Sized> {
    store: &'a S,
    size: TreeSize,
    cache: RefCell<HashMap<TileId, Vec<Hash>>>,
}

impl<'a, S: TileStore + ?Sized> TileNodes<'a, S> {
    /// A reader for the tree of `size`, which must be a size the log
    /// checkpointed (or committed), so that its partial tiles exist.
    pub fn new(store: &'a S, size: TreeSize) -> Self {
        Self {
            store,
            size,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The tree size this reader serves.
    #[must_use]
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The hashes of `tile`, reading a partial tile's full-width successor
    /// when the partial one is gone (the spec lets logs delete them).
    pub fn tile_hashes(&self, tile: TileId) -> Result<Vec<Hash>, TileReadError> {
        if let Some(h) = self.cache.borrow().get(&tile) {
            return Ok(h.clone());
        }
        let hashes = read_tile(self.store, tile)?;
        self.cache.borrow_mut().insert(tile, hashes.clone());
        Ok(hashes)
    }
}

/// Reads one hash tile, falling back to the full tile's prefix.
pub(crate) fn read_tile<S: TileStore + ?Sized>(
    store: &S,
    tile: TileId,
) -> Result<Vec<Hash>, TileReadError> {
    if let Some(bytes) = store.read(&LogPath::Tile(tile))? {
        return Ok(decode_hashes(&tile, &bytes)?);
    }
    if !tile.width().is_full() {
        let full = tile.full();
        if let Some(bytes) = store.read(&LogPath::Tile(full))? {
            let mut hashes = decode_hashes(&full, &bytes)?;
            hashes.truncate(usize::from(tile.width().get()));
            return Ok(hashes);
        }
    }
    Err(TileReadError::Missing(tile.path()))
}

impl<S: TileStore + ?Sized> NodeSource for TileNodes<'_, S> {
    type Error = TileReadError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, TileReadError> {
        let out_of_tree = || TileReadError::OutOfTree {
            level,
            index,
            size: self.size,
        };
        // The node is the root of 2^r consecutive hashes of tile level L.
        let tile_level = u32::from(level) / TILE_HEIGHT;
        let r = u32::from(level) % TILE_HEIGHT;
        let first = index
            .checked_shl(r)
            .filter(|f| f >> r == index)
            .ok_or_else(out_of_tree)?;
        let tile_index = first / u64::from(FULL_WIDTH);
        let offset = usize::try_from(first % u64::from(FULL_WIDTH)).map_err(|_| out_of_tree())?;
        let tile_level = u8::try_from(tile_level).map_err(|_| out_of_tree())?;
        let tile = TileId::in_tree(tile_level, tile_index, self.size).ok_or_else(out_of_tree)?;
        let hashes = self.tile_hashes(tile)?;
        let span = hashes
            .get(offset..offset + (1usize << r))
            .ok_or_else(out_of_tree)?;
        Ok(merkle_root(span))
    }
}
