use super::*;
use crate::hash::leaf_hash;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

/// The RFC's recursive definition, written as directly as possible.
fn mth_reference(d: &[Hash]) -> Hash {
    if d.is_empty() {
        return Hash::EMPTY_ROOT;
    }
    if d.len() == 1 {
        return d[0];
    }
    let mut k = 1;
    while k * 2 < d.len() {
        k *= 2;
    }
    node_hash(&mth_reference(&d[..k]), &mth_reference(&d[k..]))
}

#[test]
fn split_point_is_largest_power_of_two_below() {
    assert_eq!(largest_power_of_two_below(2), 1);
    assert_eq!(largest_power_of_two_below(3), 2);
    assert_eq!(largest_power_of_two_below(4), 2);
    assert_eq!(largest_power_of_two_below(5), 4);
    assert_eq!(largest_power_of_two_below(1 << 40), 1 << 39);
    assert_eq!(largest_power_of_two_below(u64::MAX), 1 << 63);
}

#[test]
fn roots_agree_for_every_small_size() {
    let all = leaves(300);
    let tree: MemoryTree = all.iter().copied().collect();
    for n in 0..=300u64 {
        let expected = mth_reference(&all[..n as usize]);
        assert_eq!(
            merkle_root(&all[..n as usize]),
            expected,
            "merkle_root({n})"
        );
        assert_eq!(
            tree.root_at(TreeSize::new(n)).unwrap(),
            expected,
            "root({n})"
        );
    }
    assert_eq!(tree.root_at(TreeSize::new(301)), None);
}

#[test]
fn inclusion_and_consistency_match_hand_worked_tree_of_seven() {
    // RFC 9162 §2.1.5 worked example: the tree of seven leaves d0..d6.
    let d = leaves(7);
    let tree: MemoryTree = d.iter().copied().collect();
    let (a, b, c) = (
        node_hash(&d[0], &d[1]),
        node_hash(&d[2], &d[3]),
        node_hash(&d[4], &d[5]),
    );
    let g = node_hash(&a, &b);
    let h = node_hash(&c, &d[6]);

    // Leaves d0..d6; a = (d0,d1), b = (d2,d3), c = (d4,d5), g = (a,b), h = (c,d6).
    let p = inclusion_proof(&tree, LeafIndex::new(0), TreeSize::new(7)).unwrap();
    assert_eq!(p.path(), [d[1], b, h]);
    let p = inclusion_proof(&tree, LeafIndex::new(3), TreeSize::new(7)).unwrap();
    assert_eq!(p.path(), [d[2], a, h]);
    let p = inclusion_proof(&tree, LeafIndex::new(6), TreeSize::new(7)).unwrap();
    assert_eq!(p.path(), [c, g]);

    // The RFC's consistency proofs, in its lettering [c, d, g, l], [l], [i, j, k].
    let p = consistency_proof(&tree, TreeSize::new(3), TreeSize::new(7)).unwrap();
    assert_eq!(p.path(), [d[2], d[3], a, h]);
    let p = consistency_proof(&tree, TreeSize::new(4), TreeSize::new(7)).unwrap();
    assert_eq!(p.path(), [h]);
    let p = consistency_proof(&tree, TreeSize::new(6), TreeSize::new(7)).unwrap();
    assert_eq!(p.path(), [c, d[6], g]);
}

#[test]
fn generation_refuses_impossible_requests() {
    let tree: MemoryTree = leaves(5).into_iter().collect();
    assert!(matches!(
        inclusion_proof(&tree, LeafIndex::new(5), TreeSize::new(5)),
        Err(ProveError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        consistency_proof(&tree, TreeSize::new(4), TreeSize::new(3)),
        Err(ProveError::SizesReversed { .. })
    ));
    // Asking beyond what the source holds surfaces the source's error.
    assert!(matches!(
        inclusion_proof(&tree, LeafIndex::new(0), TreeSize::new(9)),
        Err(ProveError::Read { .. })
    ));
    assert!(
        consistency_proof(&tree, TreeSize::new(0), TreeSize::new(5))
            .unwrap()
            .path()
            .is_empty()
    );
    assert!(
        consistency_proof(&tree, TreeSize::new(5), TreeSize::new(5))
            .unwrap()
            .path()
            .is_empty()
    );
}

#[test]
fn memory_tree_reports_missing_nodes() {
    let tree: MemoryTree = leaves(3).into_iter().collect();
    assert!(tree.node(1, 0).is_ok());
    assert_eq!(tree.node(1, 1), Err(MissingNode { level: 1, index: 1 }));
    assert_eq!(tree.size(), TreeSize::new(3));
}
