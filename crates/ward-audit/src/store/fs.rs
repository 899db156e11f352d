//! [`FsStore`]: the log's resources as files under one directory, laid out
//! exactly as the tlog-tiles URL paths so the directory can be served as
//! static files or mirrored with any file tool.
//!
//! Every write goes to a temporary file in the target's directory, is
//! fsynced, renamed over the target, and then the directory is fsynced: a
//! reader never sees a half-written tile, and after [`TileStore::write`]
//! returns the data survives power loss (DESIGN.md §4 invariant 4).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{StoreError, TileStore};
use crate::tile::LogPath;

/// Prefix of in-flight temporary files; never a valid tlog-tiles name.
const TMP_PREFIX: &str = ".tmp-";

/// A [`TileStore`] on the local filesystem.
#[derive(Debug)]
pub struct FsStore {
    root: PathBuf,
    /// Makes temporary names unique among this process's concurrent writes.
    counter: AtomicU64,
}

impl FsStore {
    /// Uses `root` (created if missing) as the log's directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| io("create directory", &root, source))?;
        Ok(Self {
            root,
            counter: AtomicU64::new(0),
        })
    }

    /// The log's directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `path` lives on disk.
    #[must_use]
    pub fn file_path(&self, path: &LogPath) -> PathBuf {
        self.root.join(path.to_string())
    }

    /// Creates the missing directories down to `dir`, remembering the parents
    /// whose entries changed so they are fsynced with the batch.
    fn create_dirs(&self, dir: &Path, changed: &mut BTreeSet<PathBuf>) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        for ancestor in dir.ancestors() {
            if ancestor == self.root || ancestor.is_dir() {
                break;
            }
            missing.push(ancestor);
        }
        for d in missing.into_iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create directory", d, e)),
            }
            if let Some(parent) = d.parent() {
                changed.insert(parent.to_path_buf());
            }
        }
        Ok(())
    }

    fn stage(
        &self,
        target: &Path,
        bytes: &[u8],
        changed: &mut BTreeSet<PathBuf>,
    ) -> Result<PathBuf, StoreError> {
        let dir = target.parent().unwrap_or(&self.root);
        self.create_dirs(dir, changed)?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TMP_PREFIX}{name}-{}-{n}", std::process::id()));
        let mut file = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io("write", &tmp, e));
        }
        Ok(tmp)
    }
}

impl TileStore for FsStore {
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError> {
        let file = self.file_path(path);
        match fs::read(&file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &file, e)),
        }
    }

    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError> {
        let mut changed_dirs = BTreeSet::new();
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
        let cleanup = |staged: &[(PathBuf, PathBuf)]| {
            for (tmp, _) in staged {
                let _ = fs::remove_file(tmp);
            }
        };
        // All data first, each file fsynced, so that the renames below only
        // ever expose complete files.
        for (path, bytes) in files {
            let target = self.file_path(path);
            match self.stage(&target, bytes, &mut changed_dirs) {
                Ok(tmp) => staged.push((tmp, target)),
                Err(e) => {
                    cleanup(&staged);
                    return Err(e);
                }
            }
        }
        for (i, (tmp, target)) in staged.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, target) {
                cleanup(staged.get(i..).unwrap_or_default());
                return Err(io("rename", target, e));
            }
            if let Some(dir) = target.parent() {
                changed_dirs.insert(dir.to_path_buf());
            }
        }
        // Make the renames (and new directories) themselves durable.
        for dir in &changed_dirs {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("sync directory", dir, e))?;
        }
        Ok(())
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::{TileId, TileWidth};

    #[test]
    fn writes_land_at_the_tlog_tiles_paths_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path().join("log")).unwrap();
        let tile = LogPath::Tile(TileId::new(0, 1_234_067, TileWidth::new(5).unwrap()).unwrap());
        store
            .write(&[
                (tile, vec![1; 160]),
                (LogPath::Checkpoint, b"cp\n".to_vec()),
            ])
            .unwrap();
        assert!(dir.path().join("log/tile/0/x001/x234/067.p/5").is_file());
        assert_eq!(store.read(&tile).unwrap().unwrap(), vec![1; 160]);
        store.write(&[(tile, vec![2; 160])]).unwrap();
        assert_eq!(store.read(&tile).unwrap().unwrap(), vec![2; 160]);
        assert_eq!(store.read(&LogPath::TreeState).unwrap(), None);
        // No temporary file is left behind.
        let leftovers = walk(store.root())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(TMP_PREFIX))
            .count();
        assert_eq!(leftovers, 0);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
