use super::*;
use crate::hash::leaf_hash;

fn w(n: u64) -> TileWidth {
    TileWidth::new(n).unwrap()
}

#[test]
fn paths_follow_the_spec_examples() {
    let t = TileId::new(4, 1_234_067, TileWidth::FULL).unwrap();
    assert_eq!(t.path(), "tile/4/x001/x234/067");
    let t = TileId::new(4, 1_234_067, w(1)).unwrap();
    assert_eq!(t.path(), "tile/4/x001/x234/067.p/1");
    assert_eq!(TileId::new(0, 0, w(3)).unwrap().path(), "tile/0/000.p/3");
    assert_eq!(
        TileId::new(1, 999, TileWidth::FULL).unwrap().path(),
        "tile/1/999"
    );
    assert_eq!(
        TileId::new(1, 1000, TileWidth::FULL).unwrap().path(),
        "tile/1/x001/000"
    );
    assert_eq!(BundleId::new(5, w(17)).path(), "tile/entries/005.p/17");
    assert_eq!(
        BundleId::new(u64::MAX, TileWidth::FULL).path(),
        "tile/entries/x018/x446/x744/x073/x709/x551/615"
    );
    assert_eq!(LogPath::Checkpoint.to_string(), "checkpoint");
}

#[test]
fn parse_is_the_inverse_of_display() {
    for p in [
        "checkpoint",
        "tile/0/000",
        "tile/0/000.p/1",
        "tile/63/x001/x234/067.p/255",
        "tile/entries/x018/x446/x744/x073/x709/x551/615",
        "tile/entries/123.p/45",
    ] {
        assert_eq!(LogPath::parse_public(p).unwrap().to_string(), p);
    }
}

#[test]
fn parse_refuses_non_canonical_and_out_of_range_paths() {
    for p in [
        "",
        "ward-tree-state",
        "tile/0",
        "tile/0/00",
        "tile/0/0000",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/00/001",
        "tile/64/001",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/01",
        "tile/data/001",
        "tile/entries/x018/x446/x744/x073/x709/x551/616",
        "tile/-1/001",
        "/tile/0/001",
    ] {
        assert!(LogPath::parse_public(p).is_err(), "{p:?} accepted");
    }
}

#[test]
fn tiles_in_a_tree_have_the_spec_widths() {
    // The spec's example: a tree of 70,000 entries.
    let size = TreeSize::new(70_000);
    assert_eq!(
        TileId::in_tree(0, 272, size).unwrap().width(),
        TileWidth::FULL
    );
    assert_eq!(TileId::in_tree(0, 273, size).unwrap().width(), w(112));
    assert_eq!(TileId::in_tree(0, 274, size), None);
    assert_eq!(
        TileId::in_tree(1, 0, size).unwrap().width(),
        TileWidth::FULL
    );
    assert_eq!(TileId::in_tree(1, 1, size).unwrap().width(), w(17));
    assert_eq!(TileId::in_tree(2, 0, size).unwrap().width(), w(1));
    assert_eq!(TileId::in_tree(3, 0, size), None);
    assert_eq!(BundleId::in_tree(273, size).unwrap().width(), w(112));
    // A tree of 256: one full level-0 tile and a level-1 tile of width 1.
    let size = TreeSize::new(256);
    assert_eq!(
        TileId::in_tree(0, 0, size).unwrap().width(),
        TileWidth::FULL
    );
    assert_eq!(TileId::in_tree(1, 0, size).unwrap().width(), w(1));
    assert_eq!(hashes_at_level(TreeSize::new(u64::MAX), 63), 0);
}

#[test]
fn hash_tiles_round_trip_and_check_length() {
    let hashes: Vec<Hash> = (0u8..3).map(|i| leaf_hash(&[i])).collect();
    let tile = TileId::new(0, 0, w(3)).unwrap();
    let bytes = encode_hashes(&hashes);
    assert_eq!(decode_hashes(&tile, &bytes).unwrap(), hashes);
    assert!(matches!(
        decode_hashes(&tile, &bytes[1..]),
        Err(TileError::DataLength {
            len: 95,
            expected: 96,
            ..
        })
    ));
    assert_eq!(TileWidth::new(0), Err(TileError::Width(0)));
    assert_eq!(TileWidth::new(257), Err(TileError::Width(257)));
    assert_eq!(TileId::new(64, 0, w(1)), Err(TileError::Level(64)));
}
