//! Inclusion and consistency proofs and their *verification*, written from the
//! algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.
//!
//! Verification needs no tree, no storage and no key: a client holding a
//! checkpoint can check a proof with this module alone.

use crate::hash::{Hash, node_hash};
use crate::index::{LeafIndex, TreeSize};

/// Proof that a leaf is in a tree of a given size (RFC 9162 §2.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    index: LeafIndex,
    size: TreeSize,
    path: Vec<Hash>,
}

/// Proof that a tree of size `old` is a prefix of a tree of size `new`
/// (RFC 9162 §2.1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    old: TreeSize,
    new: TreeSize,
    path: Vec<Hash>,
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: LeafIndex,
        /// The claimed tree size.
        size: TreeSize,
    },
    /// The old tree is bigger than the new one.
    #[error("consistency from tree size {old} to the smaller size {new}")]
    SizesReversed {
        /// Old tree size.
        old: TreeSize,
        /// New tree size.
        new: TreeSize,
    },
    /// The proof has more hashes than the tree shape allows.
    #[error("the proof has {len} hashes, more than the tree shape allows")]
    TooLong {
        /// Number of hashes in the proof.
        len: usize,
    },
    /// The proof has fewer hashes than the tree shape needs.
    #[error("the proof has {len} hashes, fewer than the tree shape needs")]
    TooShort {
        /// Number of hashes in the proof.
        len: usize,
    },
    /// A proof between equal sizes, or from the empty tree, must be empty.
    #[error("a consistency proof from size {old} to size {new} must be empty, it has {len} hashes")]
    NotEmpty {
        /// Old tree size.
        old: TreeSize,
        /// New tree size.
        new: TreeSize,
        /// Number of hashes in the proof.
        len: usize,
    },
    /// The proof leads to a different root than the one claimed.
    #[error("the proof leads to root {computed}, not the expected {expected}")]
    RootMismatch {
        /// Root the proof computes.
        computed: Hash,
        /// Root that was expected.
        expected: Hash,
    },
    /// The proof does not reproduce the old tree's root.
    #[error("the proof leads to old root {computed}, not the expected {expected}")]
    OldRootMismatch {
        /// Old root the proof computes.
        computed: Hash,
        /// Old root that was expected.
        expected: Hash,
    },
}

impl InclusionProof {
    /// Assembles a proof received from elsewhere; nothing is trusted until
    /// [`InclusionProof::verify`].
    #[must_use]
    pub fn new(index: LeafIndex, size: TreeSize, path: Vec<Hash>) -> Self {
        Self { index, size, path }
    }

    /// The leaf the proof is about.
    #[must_use]
    pub fn index(&self) -> LeafIndex {
        self.index
    }

    /// The tree size the proof is for.
    #[must_use]
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The audit path, deepest sibling first.
    #[must_use]
    pub fn path(&self) -> &[Hash] {
        &self.path
    }

    /// RFC 9162 §2.1.3.2: checks that `leaf` (a leaf *hash*) sits at
    /// [`InclusionProof::index`] in the tree of [`InclusionProof::size`] whose root is `root`.
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> Result<(), ProofError> {
        let computed = self.root_from(leaf)?;
        if computed != *root {
            return Err(ProofError::RootMismatch {
                computed,
                expected: *root,
            });
        }
        Ok(())
    }

    /// The root this proof implies for `leaf`.
    fn root_from(&self, leaf: &Hash) -> Result<Hash, ProofError> {
        let (index, size) = (self.index, self.size);
        if !size.contains(index) {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let len = self.path.len();
        let mut f_n = index.get();
        let mut s_n = size.get() - 1;
        let mut r = *leaf;
        for p in &self.path {
            if s_n == 0 {
                return Err(ProofError::TooLong { len });
            }
            if f_n & 1 == 1 || f_n == s_n {
                r = node_hash(p, &r);
                if f_n & 1 == 0 {
                    // Skip the levels where our node is a lone right-edge
                    // node and has no sibling.
                    while f_n & 1 == 0 && f_n != 0 {
                        f_n >>= 1;
                        s_n >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            f_n >>= 1;
            s_n >>= 1;
        }
        if s_n != 0 {
            return Err(ProofError::TooShort { len });
        }
        Ok(r)
    }
}

impl ConsistencyProof {
    /// Assembles a proof received from elsewhere; nothing is trusted until
    /// [`ConsistencyProof::verify`].
    #[must_use]
    pub fn new(old: TreeSize, new: TreeSize, path: Vec<Hash>) -> Self {
        Self { old, new, path }
    }

    /// The older tree size.
    #[must_use]
    pub fn old_size(&self) -> TreeSize {
        self.old
    }

    /// The newer tree size.
    #[must_use]
    pub fn new_size(&self) -> TreeSize {
        self.new
    }

    /// The proof's hashes, in RFC order.
    #[must_use]
    pub fn path(&self) -> &[Hash] {
        &self.path
    }

    /// RFC 9162 §2.1.4.2: checks that the tree with root `old_root` at
    /// [`ConsistencyProof::old_size`] is a prefix of the tree with root
    /// `new_root` at [`ConsistencyProof::new_size`].
    ///
    /// The RFC leaves two edge cases open; we require an empty proof for both:
    /// equal sizes (and then equal roots) and an empty old tree (whose root
    /// must be [`Hash::EMPTY_ROOT`]).
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        let (old, new) = (self.old, self.new);
        let len = self.path.len();
        if old > new {
            return Err(ProofError::SizesReversed { old, new });
        }
        if old.get() == 0 || old == new {
            if len != 0 {
                return Err(ProofError::NotEmpty { old, new, len });
            }
            let expected_old = if old.get() == 0 {
                Hash::EMPTY_ROOT
            } else {
                *new_root
            };
            if *old_root != expected_old {
                return Err(ProofError::OldRootMismatch {
                    computed: expected_old,
                    expected: *old_root,
                });
            }
            return Ok(());
        }

        // Step 1: when the old tree is a complete subtree, its root is the
        // starting node and the proof omits it.
        let mut hashes = self.path.iter();
        let seed = if old.get().is_power_of_two() {
            *old_root
        } else {
            *hashes.next().ok_or(ProofError::TooShort { len })?
        };
        // Steps 2–3: find the old tree's last node's position, then rise past
        // the levels where it is a right child.
        let mut f_n = old.get() - 1;
        let mut s_n = new.get() - 1;
        while f_n & 1 == 1 {
            f_n >>= 1;
            s_n >>= 1;
        }
        // Step 4: `fr` rebuilds the old root, `sr` the new root.
        let (mut fr, mut sr) = (seed, seed);
        // Step 5.
        for c in hashes {
            if s_n == 0 {
                return Err(ProofError::TooLong { len });
            }
            if f_n & 1 == 1 || f_n == s_n {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                if f_n & 1 == 0 {
                    while f_n & 1 == 0 && f_n != 0 {
                        f_n >>= 1;
                        s_n >>= 1;
                    }
                }
            } else {
                sr = node_hash(&sr, c);
            }
            f_n >>= 1;
            s_n >>= 1;
        }
        // Step 6.
        if s_n != 0 {
            return Err(ProofError::TooShort { len });
        }
        if fr != *old_root {
            return Err(ProofError::OldRootMismatch {
                computed: fr,
                expected: *old_root,
            });
        }
        if sr != *new_root {
            return Err(ProofError::RootMismatch {
                computed: sr,
                expected: *new_root,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
