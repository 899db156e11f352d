//! Positions and sizes in the log: [`LeafIndex`], [`TreeSize`] and the
//! [`LeafRange`] an append returns.
//!
//! Both are plain `u64`s underneath; the types exist so that a size is never
//! passed where an index is expected, which is the classic off-by-one of
//! Merkle proof code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why text is not a leaf index or tree size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Not a canonical decimal `u64` (digits only, no sign, no leading zero).
    #[error("{0:?} is not a decimal number without sign or leading zeros that fits in 64 bits")]
    NotDecimal(String),
}

/// Zero-based position of an entry in the log.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeafIndex(u64);

/// Number of entries in a tree; the tree of size `n` holds indexes `0..n`.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TreeSize(u64);

/// The consecutive indexes assigned to one appended batch: `start..end`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LeafRange {
    start: u64,
    end: u64,
}

impl LeafIndex {
    /// Wraps a raw index.
    #[must_use]
    pub const fn new(index: u64) -> Self {
        Self(index)
    }

    /// The raw index.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl TreeSize {
    /// The empty tree.
    pub const ZERO: TreeSize = TreeSize(0);

    /// Wraps a raw size.
    #[must_use]
    pub const fn new(size: u64) -> Self {
        Self(size)
    }

    /// The raw size.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether the tree of this size contains `index`.
    #[must_use]
    pub const fn contains(self, index: LeafIndex) -> bool {
        index.0 < self.0
    }
}

impl LeafRange {
    pub(crate) const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Index of the first entry of the batch (equal to [`LeafRange::end`] for an empty batch).
    #[must_use]
    pub const fn start(&self) -> LeafIndex {
        LeafIndex(self.start)
    }

    /// One past the last index: the tree size right after the batch.
    #[must_use]
    pub const fn end(&self) -> TreeSize {
        TreeSize(self.end)
    }

    /// Number of entries in the batch.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the batch was empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The assigned indexes, in the order the entries were given.
    pub fn iter(&self) -> impl Iterator<Item = LeafIndex> + use<> {
        (self.start..self.end).map(LeafIndex)
    }
}

/// Parses a canonical decimal: the form the checkpoint spec requires for sizes.
pub(crate) fn parse_decimal(s: &str) -> Result<u64, IndexError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    match s.parse::<u64>() {
        Ok(n) if canonical => Ok(n),
        _ => Err(IndexError::NotDecimal(s.to_owned())),
    }
}

macro_rules! decimal_text {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $ty {
            type Err = IndexError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_decimal(s).map(Self)
            }
        }
    };
}

decimal_text!(LeafIndex);
decimal_text!(TreeSize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_canonical() {
        assert_eq!("0".parse::<TreeSize>().unwrap(), TreeSize::ZERO);
        assert_eq!("42".parse::<LeafIndex>().unwrap(), LeafIndex::new(42));
        for bad in [
            "",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "18446744073709551616",
            "1e3",
        ] {
            assert!(bad.parse::<TreeSize>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(TreeSize::new(u64::MAX).to_string(), u64::MAX.to_string());
    }

    #[test]
    fn range_lists_indexes() {
        let r = LeafRange::new(3, 6);
        assert_eq!(r.len(), 3);
        assert_eq!(r.start(), LeafIndex::new(3));
        assert_eq!(r.end(), TreeSize::new(6));
        assert_eq!(r.iter().map(LeafIndex::get).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(TreeSize::new(6).contains(LeafIndex::new(5)));
        assert!(!TreeSize::new(6).contains(LeafIndex::new(6)));
    }
}
