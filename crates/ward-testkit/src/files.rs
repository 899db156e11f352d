//! Reading a running server's file-backed audit log from a test.

use std::path::{Path, PathBuf};

/// Every published file under `dir` (recursively) with its bytes, while
/// the writer may still be running. Ward's tile store writes each file
/// under a `.tmp-` name and renames it into place, so those names are
/// skipped (they may be half written), and a file listed but gone when
/// read was one of them, renamed meanwhile: a later call sees it under its
/// final name. A missing `dir` is an empty log.
///
/// # Panics
/// On any other I/O error.
pub fn published_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("list a log directory").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
            {
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => out.push((path, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
    }
    out
}
