//! The right edge of a tiled tree: for every tile level, the hashes of the
//! rightmost tile that is not full yet.
//!
//! That is all the state needed to append (a leaf goes into the level-0
//! edge; a full tile's root moves up a level) and to compute the tree head:
//! every complete subtree of the root's binary decomposition lies in one of
//! these partial tiles. The appender and the offline verifier both build
//! the tree through this one type, so they cannot disagree on tile contents.

use crate::hash::{Hash, node_hash};
use crate::index::TreeSize;
use crate::tile::{FULL_WIDTH, TileId, TileWidth, hashes_at_level};
use crate::tree::merkle_root;

/// Why stored partial tiles cannot be the edge of a tree of the given size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    /// A level's partial tile has the wrong number of hashes.
    #[error(
        "level {level} of a tree of size {size} needs a partial tile of {expected} hashes, got {got}"
    )]
    Width {
        /// Tile level.
        level: u8,
        /// Tree size.
        size: TreeSize,
        /// Hashes required.
        expected: u64,
        /// Hashes given.
        got: usize,
    },
}

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Edge {
    size: u64,
    /// `partial[l]`: the hashes of the rightmost unfilled tile at level `l`.
    partial: Vec<Vec<Hash>>,
}

impl Edge {
    /// The edge of the empty tree.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the edge of the tree of `size` from its partial tiles, lowest
    /// level first (an empty `Vec` for a level whose last tile is full).
    pub(crate) fn from_partial_tiles(
        size: TreeSize,
        partial: Vec<Vec<Hash>>,
    ) -> Result<Self, EdgeError> {
        for (level, tile) in (0u8..).zip(&partial) {
            let expected = hashes_at_level(size, level) % u64::from(FULL_WIDTH);
            if tile.len() as u64 != expected {
                return Err(EdgeError::Width {
                    level,
                    size,
                    expected,
                    got: tile.len(),
                });
            }
        }
        let levels = levels_of(size);
        if partial.len() < levels {
            let level = u8::try_from(partial.len()).unwrap_or(u8::MAX);
            return Err(EdgeError::Width {
                level,
                size,
                expected: hashes_at_level(size, level) % u64::from(FULL_WIDTH),
                got: 0,
            });
        }
        Ok(Self {
            size: size.get(),
            partial,
        })
    }

    /// Number of leaves.
    pub(crate) fn size(&self) -> TreeSize {
        TreeSize::new(self.size)
    }

    /// Appends one leaf hash. `on_full_tile` receives every tile this leaf
    /// completes, lowest level first.
    pub(crate) fn push(&mut self, leaf: Hash, mut on_full_tile: impl FnMut(TileId, &[Hash])) {
        self.size += 1;
        let size = TreeSize::new(self.size);
        let mut carry = leaf;
        let mut level: u8 = 0;
        loop {
            if self.partial.len() <= usize::from(level) {
                self.partial
                    .push(Vec::with_capacity(usize::from(FULL_WIDTH)));
            }
            let Some(tile) = self.partial.get_mut(usize::from(level)) else {
                return;
            };
            tile.push(carry);
            if tile.len() < usize::from(FULL_WIDTH) {
                return;
            }
            let index = hashes_at_level(size, level) / u64::from(FULL_WIDTH) - 1;
            if let Ok(id) = TileId::new(level, index, TileWidth::FULL) {
                on_full_tile(id, tile);
            }
            carry = merkle_root(tile);
            tile.clear();
            level += 1;
        }
    }

    /// The tree head.
    pub(crate) fn root(&self) -> Hash {
        // Complete subtrees of the root's decomposition, left to right: the
        // highest level covers the oldest leaves; inside a tile, the binary
        // decomposition of its width gives decreasing power-of-two chunks.
        let mut subtrees = Vec::new();
        for tile in self.partial.iter().rev() {
            let mut rest = tile.as_slice();
            while !rest.is_empty() {
                let chunk = 1usize << rest.len().ilog2();
                let (head, tail) = rest.split_at(chunk);
                subtrees.push(merkle_root(head));
                rest = tail;
            }
        }
        let mut from_right = subtrees.into_iter().rev();
        let Some(mut acc) = from_right.next() else {
            return Hash::EMPTY_ROOT;
        };
        for left in from_right {
            acc = node_hash(&left, &acc);
        }
        acc
    }

    /// The non-empty partial tiles, lowest level first.
    pub(crate) fn partial_tiles(&self) -> impl Iterator<Item = (TileId, &[Hash])> {
        let size = self.size();
        (0u8..)
            .zip(&self.partial)
            .filter_map(move |(level, hashes)| {
                let index = hashes_at_level(size, level) / u64::from(FULL_WIDTH);
                let width = TileWidth::new(hashes.len() as u64).ok()?;
                Some((TileId::new(level, index, width).ok()?, hashes.as_slice()))
            })
    }
}

/// How many tile levels hold at least one hash in the tree of `size`.
pub(crate) fn levels_of(size: TreeSize) -> usize {
    (0u8..=crate::tile::MAX_LEVEL)
        .take_while(|l| hashes_at_level(size, *l) > 0)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tile::encode_hashes;
    use crate::tree::MemoryTree;

    #[test]
    fn root_matches_the_reference_tree_at_every_size_and_tiles_are_right() {
        let mut edge = Edge::new();
        let mut tree = MemoryTree::new();
        let mut full = Vec::new();
        assert_eq!(edge.root(), Hash::EMPTY_ROOT);
        for i in 0..70_000u64 {
            let leaf = leaf_hash(&i.to_be_bytes());
            edge.push(leaf, |id, hashes| full.push((id, encode_hashes(hashes))));
            tree.push(leaf);
            // Checking every size is slow in debug; the small ones and tile
            // boundaries hold all the shapes.
            if i < 600 || i % 255 == 0 || i % 256 == 0 || i == 65_535 {
                assert_eq!(
                    Some(edge.root()),
                    tree.root_at(edge.size()),
                    "size {}",
                    i + 1
                );
            }
        }
        assert_eq!(full.len(), 273 + 1);
        let (id, bytes) = &full[256];
        assert_eq!(*id, TileId::new(1, 0, TileWidth::FULL).unwrap());
        assert_eq!(bytes.len(), 8192);
        // The partial tiles are exactly the spec's example for 70,000.
        let widths: Vec<_> = edge
            .partial_tiles()
            .map(|(id, h)| (id.level(), id.index(), h.len()))
            .collect();
        assert_eq!(widths, [(0, 273, 112), (1, 1, 17), (2, 0, 1)]);

        let rebuilt = Edge::from_partial_tiles(
            edge.size(),
            edge.partial_tiles().map(|(_, h)| h.to_vec()).collect(),
        )
        .unwrap();
        assert_eq!(rebuilt.root(), edge.root());
    }

    #[test]
    fn refuses_partial_tiles_of_the_wrong_width() {
        let size = TreeSize::new(300);
        let leaf = leaf_hash(b"x");
        assert!(Edge::from_partial_tiles(size, vec![vec![leaf; 44], vec![leaf; 1]]).is_ok());
        assert!(matches!(
            Edge::from_partial_tiles(size, vec![vec![leaf; 43], vec![leaf; 1]]),
            Err(EdgeError::Width {
                level: 0,
                expected: 44,
                got: 43,
                ..
            })
        ));
        assert!(matches!(
            Edge::from_partial_tiles(size, vec![vec![leaf; 44]]),
            Err(EdgeError::Width {
                level: 1,
                expected: 1,
                got: 0,
                ..
            })
        ));
    }
}
