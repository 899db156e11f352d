//! [`MemoryTree`]: every node hash of a tree, held in memory level by level —
//! the simplest possible [`NodeSource`], for tests, tools and small logs
//! (the log itself reads tiles).

use super::{NodeSource, root};
use crate::hash::{Hash, node_hash};
use crate::index::TreeSize;

/// All node hashes of a tree held in memory, level by level.
///
/// Meant for tests, tools and small logs; the log itself reads tiles.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// `levels[0]` are leaf hashes; `levels[h][i]` is the complete subtree
    /// of height `h` at index `i`.
    levels: Vec<Vec<Hash>>,
}

/// A [`MemoryTree`] was asked for a subtree it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the tree has no complete subtree at level {level}, index {index}")]
pub struct MissingNode {
    /// Height of the subtree.
    pub level: u8,
    /// Index within the level.
    pub index: u64,
}

impl MemoryTree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf hash, completing every subtree it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.push(carry);
            // An even length means the new hash closed a pair.
            let [.., left, right] = row.as_slice() else {
                return;
            };
            if row.len() % 2 == 1 {
                return;
            }
            carry = node_hash(left, right);
            level += 1;
        }
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> TreeSize {
        TreeSize::new(self.levels.first().map_or(0, |l| l.len() as u64))
    }

    /// Root of the first `size` leaves, or `None` if `size` exceeds the tree.
    #[must_use]
    pub fn root_at(&self, size: TreeSize) -> Option<Hash> {
        if size > self.size() {
            return None;
        }
        root(self, size).ok()
    }
}

impl NodeSource for MemoryTree {
    type Error = MissingNode;

    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.levels
            .get(usize::from(level))
            .and_then(|row| row.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

impl FromIterator<Hash> for MemoryTree {
    fn from_iter<I: IntoIterator<Item = Hash>>(iter: I) -> Self {
        let mut tree = Self::new();
        for leaf in iter {
            tree.push(leaf);
        }
        tree
    }
}
