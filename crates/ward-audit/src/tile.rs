//! Tile coordinates and the resource paths of C2SP tlog-tiles
//! (<https://c2sp.org/tlog-tiles>): hash tiles `tile/<L>/<N>[.p/<W>]`, entry
//! bundles `tile/entries/<N>[.p/<W>]` and the `checkpoint`, plus the byte
//! layout of a hash tile (concatenated 32-byte hashes).
//!
//! Tiles have height 8: a full tile holds 256 hashes, and the hashes of a
//! level-`L` tile are the roots of complete subtrees of `256^L` leaves.

use std::fmt;
use std::str::FromStr;

use crate::hash::{HASH_LEN, Hash};
use crate::index::TreeSize;

/// Height of every tile: a tile spans 8 levels of the Merkle tree.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile, entries in a full bundle.
pub const FULL_WIDTH: u16 = 1 << TILE_HEIGHT;
/// Highest tile level the spec allows.
pub const MAX_LEVEL: u8 = 63;

/// What is wrong with a tile path or a tile's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// A width outside `1..=256`.
    #[error("tile width {0} is outside 1..=256")]
    Width(u64),
    /// A level above 63.
    #[error("tile level {0} is above the maximum 63")]
    Level(u64),
    /// A path that names no tlog-tiles resource.
    #[error("{path:?} is not a tlog-tiles path: {reason}")]
    Path {
        /// The offending path.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Tile bytes whose length does not match the tile's width.
    #[error("tile {path} has {len} bytes; width {width} needs {expected}")]
    DataLength {
        /// Path of the tile.
        path: String,
        /// Length found.
        len: usize,
        /// Width of the tile.
        width: u16,
        /// Length required.
        expected: usize,
    },
}

/// Number of hashes in a tile or entries in a bundle: `1..=256`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TileWidth(u16);

impl TileWidth {
    /// A full tile.
    pub const FULL: TileWidth = TileWidth(FULL_WIDTH);

    /// Checks `1 <= width <= 256`.
    pub fn new(width: u64) -> Result<Self, TileError> {
        match u16::try_from(width) {
            Ok(w @ 1..=FULL_WIDTH) => Ok(Self(w)),
            _ => Err(TileError::Width(width)),
        }
    }

    /// The width as a number.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Whether this is a full (256-wide) tile.
    #[must_use]
    pub const fn is_full(self) -> bool {
        self.0 == FULL_WIDTH
    }
}

/// A hash tile: level, index within the level, width.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TileId {
    level: u8,
    index: u64,
    width: TileWidth,
}

/// An entry bundle: index (as for level-0 tiles) and width.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BundleId {
    index: u64,
    width: TileWidth,
}

impl TileId {
    /// A tile at `level <= 63`.
    pub fn new(level: u8, index: u64, width: TileWidth) -> Result<Self, TileError> {
        if level > MAX_LEVEL {
            return Err(TileError::Level(level.into()));
        }
        Ok(Self {
            level,
            index,
            width,
        })
    }

    /// The tile at `level` and `index` as it stands in the tree of `size`:
    /// full, partial, or `None` when the tree has no hash in it yet.
    #[must_use]
    pub fn in_tree(level: u8, index: u64, size: TreeSize) -> Option<Self> {
        let hashes = hashes_at_level(size, level);
        let start = index.checked_mul(u64::from(FULL_WIDTH))?;
        let width = TileWidth::new(hashes.checked_sub(start)?.min(u64::from(FULL_WIDTH))).ok()?;
        Self::new(level, index, width).ok()
    }

    /// Tile level.
    #[must_use]
    pub const fn level(&self) -> u8 {
        self.level
    }

    /// Index within the level.
    #[must_use]
    pub const fn index(&self) -> u64 {
        self.index
    }

    /// Width.
    #[must_use]
    pub const fn width(&self) -> TileWidth {
        self.width
    }

    /// The same tile, full width.
    #[must_use]
    pub const fn full(&self) -> Self {
        Self {
            width: TileWidth::FULL,
            ..*self
        }
    }

    /// `tile/<L>/<N>[.p/<W>]`.
    #[must_use]
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}",
            self.level,
            n_with_width(self.index, self.width)
        )
    }
}

impl BundleId {
    /// A bundle.
    #[must_use]
    pub const fn new(index: u64, width: TileWidth) -> Self {
        Self { index, width }
    }

    /// The bundle at `index` as it stands in the tree of `size`.
    #[must_use]
    pub fn in_tree(index: u64, size: TreeSize) -> Option<Self> {
        TileId::in_tree(0, index, size).map(|t| Self::new(index, t.width))
    }

    /// Bundle index.
    #[must_use]
    pub const fn index(&self) -> u64 {
        self.index
    }

    /// Width.
    #[must_use]
    pub const fn width(&self) -> TileWidth {
        self.width
    }

    /// Index of the bundle's first entry.
    #[must_use]
    pub const fn first_entry(&self) -> u64 {
        self.index * FULL_WIDTH as u64
    }

    /// The same bundle, full width.
    #[must_use]
    pub const fn full(&self) -> Self {
        Self::new(self.index, TileWidth::FULL)
    }

    /// `tile/entries/<N>[.p/<W>]`.
    #[must_use]
    pub fn path(&self) -> String {
        format!("tile/entries/{}", n_with_width(self.index, self.width))
    }
}

/// How many hashes level `level` holds in the tree of `size`: `size / 256^level`.
#[must_use]
pub(crate) fn hashes_at_level(size: TreeSize, level: u8) -> u64 {
    size.get()
        .checked_shr(TILE_HEIGHT * u32::from(level))
        .unwrap_or(0)
}

/// A resource of the log's storage. All but [`LogPath::TreeState`] are the
/// public tlog-tiles resources.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LogPath {
    /// The latest signed checkpoint, `checkpoint`.
    Checkpoint,
    /// A hash tile.
    Tile(TileId),
    /// An entry bundle.
    Bundle(BundleId),
    /// The appender's private commit record (size and root after the last
    /// durable append), `ward-tree-state`; never served.
    TreeState,
}

impl LogPath {
    /// Parses a public tlog-tiles path (`checkpoint`, `tile/…`); refuses
    /// non-canonical spellings so one resource has one path.
    pub fn parse_public(path: &str) -> Result<Self, TileError> {
        let bad = |reason| TileError::Path {
            path: path.to_owned(),
            reason,
        };
        if path == "checkpoint" {
            return Ok(Self::Checkpoint);
        }
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| bad("unknown resource"))?;
        let (first, rest) = rest.split_once('/').ok_or_else(|| bad("no tile index"))?;
        let (n_text, width) = match rest.split_once(".p/") {
            Some((n, w)) => {
                let w = crate::index::parse_decimal(w).map_err(|_| bad("bad width"))?;
                let w = TileWidth::new(w).map_err(|_| bad("width outside 1..=255"))?;
                if w.is_full() {
                    return Err(bad("a partial tile is at most 255 wide"));
                }
                (n, w)
            }
            None => (rest, TileWidth::FULL),
        };
        let index = parse_n(n_text).ok_or_else(|| bad("bad tile index"))?;
        let parsed = if first == "entries" {
            Self::Bundle(BundleId::new(index, width))
        } else {
            let level = crate::index::parse_decimal(first).map_err(|_| bad("bad level"))?;
            let level = u8::try_from(level)
                .ok()
                .filter(|l| *l <= MAX_LEVEL)
                .ok_or_else(|| bad("level above 63"))?;
            Self::Tile(TileId::new(level, index, width)?)
        };
        if parsed.to_string() != path {
            return Err(bad("not in canonical form"));
        }
        Ok(parsed)
    }
}

impl fmt::Display for LogPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Checkpoint => f.write_str("checkpoint"),
            Self::Tile(t) => f.write_str(&t.path()),
            Self::Bundle(b) => f.write_str(&b.path()),
            Self::TreeState => f.write_str("ward-tree-state"),
        }
    }
}

impl FromStr for LogPath {
    type Err = TileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_public(s)
    }
}

/// `<N>` as zero-padded 3-digit elements, all but the last prefixed `x`,
/// followed by `.p/<W>` for partial widths.
fn n_with_width(index: u64, width: TileWidth) -> String {
    let mut groups = vec![index % 1000];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let mut out = String::new();
    for (i, g) in groups.iter().rev().enumerate() {
        if i + 1 < groups.len() {
            out.push_str(&format!("x{g:03}/"));
        } else {
            out.push_str(&format!("{g:03}"));
        }
    }
    if !width.is_full() {
        out.push_str(&format!(".p/{}", width.get()));
    }
    out
}

/// Inverse of the `<N>` encoding; canonical form is checked by the caller.
fn parse_n(text: &str) -> Option<u64> {
    let mut elements = text.split('/').peekable();
    let mut n: u64 = 0;
    while let Some(e) = elements.next() {
        let digits = if elements.peek().is_some() {
            e.strip_prefix('x')?
        } else {
            e
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    Some(n)
}

/// The bytes of a hash tile: its hashes, concatenated.
#[must_use]
pub fn encode_hashes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| *h.as_bytes()).collect()
}

/// Splits a hash tile's bytes into hashes, checking the length against the
/// tile's width.
pub fn decode_hashes(tile: &TileId, bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    let expected = usize::from(tile.width.get()) * HASH_LEN;
    if bytes.len() != expected {
        return Err(TileError::DataLength {
            path: tile.path(),
            len: bytes.len(),
            width: tile.width.get(),
            expected,
        });
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .filter_map(|c| Hash::from_slice(c).ok())
        .collect())
}

#[cfg(test)]
mod tests;
