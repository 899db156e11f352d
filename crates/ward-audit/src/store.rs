//! Where the log keeps its resources: the [`TileStore`] trait, keyed by
//! [`LogPath`], with an in-memory implementation here and a filesystem one
//! in [`fs`].
//!
//! The trait is deliberately tiny (read one resource, write a set of
//! resources durably) so that a database or object-store backend is a small
//! adapter, and so that tests can wrap a store to inject failures.

pub mod fs;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::tile::LogPath;

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on a file or directory failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done (`"read"`, `"write"`, `"rename"`, …).
        op: &'static str,
        /// The file or directory concerned.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Storage for the log's resources.
///
/// Implementations must make each resource's replacement atomic (a reader
/// sees the old bytes or the new bytes, never a mix) and every write
/// durable when [`TileStore::write`] returns. Writes *within* one call may
/// become durable in any order; callers that need an order (data before the
/// commit record) make separate calls.
pub trait TileStore {
    /// The bytes of `path`, or `None` when it does not exist.
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError>;

    /// Creates or replaces every listed resource.
    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError>;
}

impl<T: TileStore + ?Sized> TileStore for &T {
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).read(path)
    }

    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError> {
        (**self).write(files)
    }
}

impl<T: TileStore + ?Sized> TileStore for Arc<T> {
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).read(path)
    }

    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError> {
        (**self).write(files)
    }
}

/// A store in memory: for tests, benches, and verifying a log fetched into
/// memory. Clones share the same contents.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    files: Arc<RwLock<HashMap<LogPath, Arc<[u8]>>>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored path, in no particular order.
    #[must_use]
    pub fn paths(&self) -> Vec<LogPath> {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// Deletes a resource; returns whether it existed. The log never deletes:
    /// this exists to simulate loss and tampering.
    pub fn remove(&self, path: &LogPath) -> bool {
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path)
            .is_some()
    }

    /// Total bytes stored.
    #[must_use]
    pub fn total_bytes(&self) -> usize {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|v| v.len())
            .sum()
    }
}

impl TileStore for MemoryStore {
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError> {
        // A poisoned lock only means a writer panicked between two complete
        // map operations; every value in the map is still whole.
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        Ok(files.get(path).map(|b| b.to_vec()))
    }

    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError> {
        let mut map = self.files.write().unwrap_or_else(PoisonError::into_inner);
        for (path, bytes) in files {
            map.insert(*path, Arc::from(bytes.as_slice()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_reads_back_replaces_and_shares_between_clones() {
        let a = MemoryStore::new();
        let b = a.clone();
        assert_eq!(a.read(&LogPath::Checkpoint).unwrap(), None);
        a.write(&[(LogPath::Checkpoint, b"one".to_vec())]).unwrap();
        b.write(&[(LogPath::Checkpoint, b"two".to_vec())]).unwrap();
        assert_eq!(a.read(&LogPath::Checkpoint).unwrap().unwrap(), b"two");
        assert_eq!(a.paths(), vec![LogPath::Checkpoint]);
        assert_eq!(a.total_bytes(), 3);
        assert!(b.remove(&LogPath::Checkpoint));
        assert!(!a.remove(&LogPath::Checkpoint));
    }
}
