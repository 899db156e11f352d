//! Property tests: every generated proof verifies, and any change to the
//! proof, the leaf, the root, the index or the sizes makes it fail.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;
use crate::hash::leaf_hash;
use crate::tree::{MemoryTree, consistency_proof, inclusion_proof};

/// Big enough to cross two tile levels (256 and 65,536) yet quick to build.
const MAX: u64 = 70_000;

fn tree() -> &'static MemoryTree {
    static TREE: OnceLock<MemoryTree> = OnceLock::new();
    TREE.get_or_init(|| (0..MAX).map(|i| leaf_hash(&i.to_le_bytes())).collect())
}

fn root(n: u64) -> Hash {
    tree().root_at(TreeSize::new(n)).unwrap()
}

fn flip(h: &Hash, bit: u8) -> Hash {
    let mut b = *h.as_bytes();
    b[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash::from_bytes(b)
}

/// Mostly small trees (where every shape occurs), sometimes big ones.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 1..600u64, 1 => 1..=MAX]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(
        n in size(),
        i_seed: u64,
        other_seed: u64,
        bit: u8,
        pick: usize,
    ) {
        let i = i_seed % n;
        let (index, sz) = (LeafIndex::new(i), TreeSize::new(n));
        let proof = inclusion_proof(tree(), index, sz).unwrap();
        let leaf = leaf_hash(&i.to_le_bytes());
        let r = root(n);
        prop_assert_eq!(proof.verify(&leaf, &r), Ok(()));

        prop_assert!(proof.verify(&flip(&leaf, bit), &r).is_err());
        prop_assert!(proof.verify(&leaf, &flip(&r, bit)).is_err());
        if !proof.path().is_empty() {
            let mut path = proof.path().to_vec();
            let k = pick % path.len();
            path[k] = flip(&path[k], bit);
            prop_assert!(InclusionProof::new(index, sz, path.clone()).verify(&leaf, &r).is_err());
            path.pop();
            prop_assert!(InclusionProof::new(index, sz, path).verify(&leaf, &r).is_err());
        }
        let mut longer = proof.path().to_vec();
        longer.push(leaf);
        prop_assert!(InclusionProof::new(index, sz, longer).verify(&leaf, &r).is_err());

        // Another index in the same tree: its leaf, claimed at our index.
        let j = other_seed % n;
        if j != i {
            let moved = InclusionProof::new(LeafIndex::new(j), sz, proof.path().to_vec());
            prop_assert!(moved.verify(&leaf, &r).is_err());
        }
        // Another size: the claim must be checked against that size's root.
        let m = 1 + other_seed % MAX;
        if m != n && m > i {
            let resized = InclusionProof::new(index, TreeSize::new(m), proof.path().to_vec());
            prop_assert!(resized.verify(&leaf, &root(m)).is_err());
        }
        prop_assert!(
            InclusionProof::new(LeafIndex::new(n), sz, proof.path().to_vec())
                .verify(&leaf, &r)
                .is_err()
        );
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(
        a in size(),
        b in size(),
        other_seed: u64,
        bit: u8,
        pick: usize,
    ) {
        let (old, new) = (a.min(b), a.max(b));
        let (o, n) = (TreeSize::new(old), TreeSize::new(new));
        let proof = consistency_proof(tree(), o, n).unwrap();
        let (ro, rn) = (root(old), root(new));
        prop_assert_eq!(proof.verify(&ro, &rn), Ok(()));

        prop_assert!(proof.verify(&flip(&ro, bit), &rn).is_err());
        prop_assert!(proof.verify(&ro, &flip(&rn, bit)).is_err());
        if !proof.path().is_empty() {
            let mut path = proof.path().to_vec();
            let k = pick % path.len();
            path[k] = flip(&path[k], bit);
            prop_assert!(ConsistencyProof::new(o, n, path.clone()).verify(&ro, &rn).is_err());
            path.pop();
            prop_assert!(ConsistencyProof::new(o, n, path).verify(&ro, &rn).is_err());
        }
        let mut longer = proof.path().to_vec();
        longer.push(ro);
        prop_assert!(ConsistencyProof::new(o, n, longer).verify(&ro, &rn).is_err());

        // The same hashes do not prove anything about other sizes.
        let m = 1 + other_seed % new;
        if m != old {
            let moved = ConsistencyProof::new(TreeSize::new(m), n, proof.path().to_vec());
            prop_assert!(moved.verify(&root(m), &rn).is_err(), "old {} -> {}", old, m);
        }
        let m = old.max(1) + other_seed % (MAX - old.max(1) + 1);
        if m != new {
            let moved = ConsistencyProof::new(o, TreeSize::new(m), proof.path().to_vec());
            prop_assert!(moved.verify(&ro, &root(m)).is_err(), "new {} -> {}", new, m);
        }
        if old != new {
            prop_assert_eq!(
                ConsistencyProof::new(n, o, proof.path().to_vec()).verify(&rn, &ro),
                Err(ProofError::SizesReversed { old: n, new: o })
            );
        }
    }
}

#[test]
fn edge_cases_of_the_empty_and_equal_trees() {
    let r5 = root(5);
    let zero = TreeSize::ZERO;
    let five = TreeSize::new(5);
    assert_eq!(
        ConsistencyProof::new(zero, five, vec![]).verify(&Hash::EMPTY_ROOT, &r5),
        Ok(())
    );
    assert!(
        ConsistencyProof::new(zero, five, vec![])
            .verify(&r5, &r5)
            .is_err()
    );
    assert_eq!(
        ConsistencyProof::new(five, five, vec![]).verify(&r5, &r5),
        Ok(())
    );
    assert!(
        ConsistencyProof::new(five, five, vec![])
            .verify(&root(4), &r5)
            .is_err()
    );
    assert!(matches!(
        ConsistencyProof::new(five, five, vec![r5]).verify(&r5, &r5),
        Err(ProofError::NotEmpty { .. })
    ));
    assert!(matches!(
        ConsistencyProof::new(TreeSize::new(3), five, vec![]).verify(&root(3), &r5),
        Err(ProofError::TooShort { .. })
    ));
    // A one-leaf tree: the leaf is the root, the proof is empty.
    let leaf = leaf_hash(&0u64.to_le_bytes());
    let one = InclusionProof::new(LeafIndex::new(0), TreeSize::new(1), vec![]);
    assert_eq!(one.verify(&leaf, &leaf), Ok(()));
    assert!(matches!(
        InclusionProof::new(LeafIndex::new(0), TreeSize::ZERO, vec![]).verify(&leaf, &leaf),
        Err(ProofError::IndexOutOfRange { .. })
    ));
}
