//! The RFC 9162 §2.1 Merkle tree: tree heads and the *generation* of inclusion
//! and consistency proofs (their verification is in [`crate::proof`]).
//!
//! Proof generation only ever needs hashes of *complete, aligned* subtrees —
//! exactly what tiles store — so it reads them through the small
//! [`NodeSource`] trait: tiles in a [`crate::TileStore`] (see
//! [`crate::TileNodes`]) or a [`MemoryTree`]. The recursions below follow the
//! RFC's definitions (`MTH`, `PATH`, `SUBPROOF`) one to one so they can be
//! audited against the text.

use crate::hash::{Hash, node_hash};
use crate::index::{LeafIndex, TreeSize};
use crate::proof::{ConsistencyProof, InclusionProof};

mod memory;

pub use memory::{MemoryTree, MissingNode};

/// Reads the hash of a complete subtree: the one at height `level` covering
/// leaves `index << level .. (index + 1) << level`.
pub trait NodeSource {
    /// What can go wrong while reading (I/O, a corrupt tile, …).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The hash of the complete subtree at (`level`, `index`).
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// Why a tree head or proof could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E: std::error::Error + 'static> {
    /// The leaf is not in the tree the proof is for.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf.
        index: LeafIndex,
        /// The tree size the proof was requested for.
        size: TreeSize,
    },
    /// A consistency proof was asked from a bigger tree to a smaller one.
    #[error("no consistency proof from tree size {old} to the smaller size {new}")]
    SizesReversed {
        /// The older (first) tree size.
        old: TreeSize,
        /// The newer (second) tree size.
        new: TreeSize,
    },
    /// The node source failed.
    #[error("reading the tree node at level {level}, index {index}")]
    Read {
        /// Height of the subtree.
        level: u8,
        /// Index of the subtree within its level.
        index: u64,
        /// What the source reported.
        #[source]
        source: E,
    },
}

/// The tree head (`MTH`) of the first `size` leaves.
pub fn root<S: NodeSource>(src: &S, size: TreeSize) -> Result<Hash, ProveError<S::Error>> {
    if size.get() == 0 {
        return Ok(Hash::EMPTY_ROOT);
    }
    range_hash(src, 0, size.get())
}

/// RFC 9162 §2.1.3.1 `PATH(m, D[n])`: the inclusion proof of leaf `index` in
/// the tree of size `size`.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: LeafIndex,
    size: TreeSize,
) -> Result<InclusionProof, ProveError<S::Error>> {
    if !size.contains(index) {
        return Err(ProveError::IndexOutOfRange { index, size });
    }
    let m = index.get();
    // Walk from the root down to the leaf; PATH appends the sibling *after*
    // the sub-path, so the siblings found top-down are reversed at the end.
    let (mut lo, mut hi) = (0, size.get());
    let mut path = Vec::new();
    while hi - lo > 1 {
        let k = largest_power_of_two_below(hi - lo);
        if m < lo + k {
            path.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            path.push(range_hash(src, lo, lo + k)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(InclusionProof::new(index, size, path))
}

/// RFC 9162 §2.1.4.1 `PROOF(m, D[n])`: the consistency proof from the tree of
/// size `old` to the tree of size `new`.
///
/// Sizes `0` and `old == new` have the empty proof.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    old: TreeSize,
    new: TreeSize,
) -> Result<ConsistencyProof, ProveError<S::Error>> {
    if old > new {
        return Err(ProveError::SizesReversed { old, new });
    }
    let mut path = Vec::new();
    if old.get() == 0 || old == new {
        return Ok(ConsistencyProof::new(old, new, path));
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: each step keeps the side holding
    // the old tree's right edge and records the other side's hash.
    let (mut lo, mut hi) = (0, new.get());
    let mut m = old.get();
    let mut whole_old_tree = true;
    while m != hi - lo {
        let k = largest_power_of_two_below(hi - lo);
        if m <= k {
            path.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            path.push(range_hash(src, lo, lo + k)?);
            lo += k;
            m -= k;
            whole_old_tree = false;
        }
    }
    // SUBPROOF(m, D[m], false) = {MTH(D[m])}: when the recursion ends inside
    // the old tree's right edge, that subtree's hash leads the proof; when it
    // ends on the whole old tree, the verifier already holds its root.
    if !whole_old_tree {
        path.push(range_hash(src, lo, hi)?);
    }
    path.reverse();
    Ok(ConsistencyProof::new(old, new, path))
}

/// `MTH(D[lo:hi])` for `lo < hi`, reading complete aligned subtrees from `src`.
fn range_hash<S: NodeSource>(src: &S, lo: u64, hi: u64) -> Result<Hash, ProveError<S::Error>> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros() as u8;
        let index = lo >> level;
        return src.node(level, index).map_err(|source| ProveError::Read {
            level,
            index,
            source,
        });
    }
    let k = largest_power_of_two_below(n);
    Ok(node_hash(
        &range_hash(src, lo, lo + k)?,
        &range_hash(src, lo + k, hi)?,
    ))
}

/// The Merkle tree hash of a list of leaf hashes (RFC 9162 §2.1.1 `MTH`).
#[must_use]
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Hash::EMPTY_ROOT,
        [one] => *one,
        _ => {
            let (left, right) =
                leaves.split_at(largest_power_of_two_below(leaves.len() as u64) as usize);
            node_hash(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The largest power of two strictly below `n`, the RFC's split point `k`;
/// callers guarantee `n >= 2`.
pub(crate) const fn largest_power_of_two_below(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests;
