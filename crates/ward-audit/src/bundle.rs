//! Entry bundles of C2SP tlog-tiles: log entries, each prefixed with its
//! length as a big-endian `u16`, concatenated. The 16-bit prefix bounds one
//! entry to 65,535 bytes.

/// Largest entry a bundle can carry.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// What is wrong with an entry or a bundle's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry longer than the 16-bit length prefix can express.
    #[error("entry is {len} bytes; a bundle entry is at most {MAX_ENTRY_LEN}")]
    EntryTooLarge {
        /// The entry's length.
        len: usize,
    },
    /// The bytes end inside a length prefix or inside an entry.
    #[error("bundle ends inside entry #{position} (at byte {offset})")]
    Truncated {
        /// Position of the cut entry within the bundle.
        position: usize,
        /// Byte offset where that entry starts.
        offset: usize,
    },
}

/// Appends one length-prefixed entry to `bundle`.
pub fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), BundleError> {
    let len =
        u16::try_from(entry.len()).map_err(|_| BundleError::EntryTooLarge { len: entry.len() })?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Iterates over a bundle's entries; yields an error (and then stops) where
/// the bytes are cut short.
#[must_use]
pub fn entries(bundle: &[u8]) -> Entries<'_> {
    Entries {
        rest: bundle,
        offset: 0,
        position: 0,
        failed: false,
    }
}

/// Iterator returned by [`entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    rest: &'a [u8],
    offset: usize,
    position: usize,
    failed: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<&'a [u8], BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let truncated = BundleError::Truncated {
            position: self.position,
            offset: self.offset,
        };
        let parsed = self
            .rest
            .split_first_chunk::<2>()
            .map(|(len, rest)| (usize::from(u16::from_be_bytes(*len)), rest))
            .and_then(|(len, rest)| (rest.len() >= len).then(|| rest.split_at(len)));
        let Some((entry, rest)) = parsed else {
            self.failed = true;
            return Some(Err(truncated));
        };
        self.rest = rest;
        self.offset += 2 + entry.len();
        self.position += 1;
        Some(Ok(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_including_empty_and_largest_entries() {
        let big = vec![7u8; MAX_ENTRY_LEN];
        let mut b = Vec::new();
        for e in [&b"abc"[..], b"", &big] {
            push_entry(&mut b, e).unwrap();
        }
        assert_eq!(&b[..5], &[0, 3, b'a', b'b', b'c']);
        let got: Vec<_> = entries(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![&b"abc"[..], b"", &big]);
        assert_eq!(entries(&[]).count(), 0);
    }

    #[test]
    fn refuses_oversized_entries_and_names_truncation() {
        let mut b = Vec::new();
        assert_eq!(
            push_entry(&mut b, &vec![0; MAX_ENTRY_LEN + 1]),
            Err(BundleError::EntryTooLarge {
                len: MAX_ENTRY_LEN + 1
            })
        );
        push_entry(&mut b, b"one").unwrap();
        push_entry(&mut b, b"two").unwrap();
        for cut in [b.len() - 1, 6] {
            let got: Vec<_> = entries(&b[..cut]).collect();
            assert_eq!(got.len(), 2);
            assert_eq!(
                got[1],
                Err(BundleError::Truncated {
                    position: 1,
                    offset: 5
                })
            );
        }
    }
}
