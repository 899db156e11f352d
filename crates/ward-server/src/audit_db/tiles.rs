//! [`DbTileStore`]: the log's resources as rows of `audit_tiles`, keyed by
//! their tlog-tiles path, with writes fenced by the sequencer lease.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::AnyPool;
use tokio::runtime::Handle;
use ward_audit::{LogPath, StoreError, TileStore};

use super::SequencerLease;
use crate::store::Store;

/// A [`TileStore`] in the control plane's database.
///
/// [`TileStore`] is synchronous (the log's core does no async I/O), so this
/// adapter runs each query to completion with [`Handle::block_on`]. Call
/// [`TileStore::read`] and [`TileStore::write`] only from a thread that is not
/// driving the runtime — the sequencer's dedicated `std::thread`, or
/// [`tokio::task::spawn_blocking`] — because `block_on` panics on a runtime
/// worker thread. Async code (handlers serving tiles) uses
/// [`DbTileStore::read_async`] instead.
///
/// Each write is one transaction, so a batch of resources becomes visible
/// and durable together when [`TileStore::write`] returns (SQLite runs with
/// `synchronous = FULL`, PostgreSQL commits durably by default).
#[derive(Debug, Clone)]
pub struct DbTileStore {
    pool: AnyPool,
    handle: Handle,
    /// The lease epoch every write re-checks; `None` writes unfenced.
    epoch: Option<u64>,
}

impl DbTileStore {
    /// A store whose writes are not fenced: for readers, and for writers that
    /// cannot have a rival (one process on an embedded SQLite file). Where
    /// replicas share a database, the sequencer uses
    /// [`DbTileStore::fenced`].
    #[must_use]
    pub fn new(store: &Store, handle: Handle) -> Self {
        Self {
            pool: store.pool().clone(),
            handle,
            epoch: None,
        }
    }

    /// A store whose every write first checks, in the same transaction, that
    /// `lease` is still the current one, and fails with [`LeaseLost`]
    /// (writing nothing) once another replica has taken the lease over.
    #[must_use]
    pub fn fenced(store: &Store, handle: Handle, lease: &SequencerLease) -> Self {
        Self {
            pool: store.pool().clone(),
            handle,
            epoch: Some(lease.epoch()),
        }
    }

    /// The lease epoch writes are fenced by, if any.
    #[must_use]
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The bytes of `path`, or `None` when it does not exist; for async
    /// code. The store holds the private `ward-tree-state` beside the public
    /// resources: a handler serving tiles takes its path from
    /// [`LogPath::parse_public`], which never names it.
    pub async fn read_async(&self, path: &LogPath) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let data: Option<String> =
            sqlx::query_scalar("SELECT data FROM audit_tiles WHERE path = $1")
                .bind(path.to_string())
                .fetch_optional(&self.pool)
                .await?;
        data.map(|text| {
            STANDARD
                .decode(text)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .transpose()
    }

    async fn write_async(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), WriteError> {
        let mut tx = self.pool.begin().await?;
        if let Some(epoch) = self.epoch {
            // A no-op write rather than a SELECT: it takes the lease row's
            // lock (PostgreSQL) or the write lock (SQLite) until commit, so
            // a takeover cannot slip in between this check and the commit.
            let current =
                sqlx::query("UPDATE audit_sequencer SET epoch = epoch WHERE id = 1 AND epoch = $1")
                    .bind(i64::try_from(epoch).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
            if current.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(WriteError::Fenced(LeaseLost { epoch }));
            }
        }
        for (path, bytes) in files {
            sqlx::query(
                "INSERT INTO audit_tiles (path, data) VALUES ($1, $2) \
                 ON CONFLICT (path) DO UPDATE SET data = excluded.data",
            )
            .bind(path.to_string())
            .bind(STANDARD.encode(bytes))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl TileStore for DbTileStore {
    fn read(&self, path: &LogPath) -> Result<Option<Vec<u8>>, StoreError> {
        self.handle
            .block_on(self.read_async(path))
            .map_err(|e| StoreError::Io {
                op: "read",
                path: path.to_string(),
                source: std::io::Error::other(e),
            })
    }

    fn write(&self, files: &[(LogPath, Vec<u8>)]) -> Result<(), StoreError> {
        self.handle
            .block_on(self.write_async(files))
            .map_err(|e| StoreError::Io {
                op: "write",
                path: describe(files),
                source: match e {
                    WriteError::Fenced(lost) => std::io::Error::other(lost),
                    WriteError::Database(e) => std::io::Error::other(e),
                },
            })
    }
}

/// A fenced write was refused: the lease it carried is no longer current.
/// The replica must stop sequencing (drop its `Log`) rather than retry; the
/// new holder reopens the log from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the sequencer lease was lost (fenced at epoch {epoch}): another replica now appends to the audit log"
)]
pub struct LeaseLost {
    /// The epoch the refused write carried.
    pub epoch: u64,
}

/// Whether `err`, from a [`DbTileStore`] write, is a lost lease rather than
/// a database failure (which is worth retrying).
#[must_use]
pub fn is_lease_lost(err: &StoreError) -> bool {
    match err {
        StoreError::Io { source, .. } => source
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<LeaseLost>().is_some()),
    }
}

/// Why [`DbTileStore::write_async`] failed.
#[derive(Debug)]
enum WriteError {
    Fenced(LeaseLost),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Names a batch in an error: its first resource and how many others.
fn describe(files: &[(LogPath, Vec<u8>)]) -> String {
    match files {
        [] => "an empty batch".to_owned(),
        [(path, _)] => path.to_string(),
        [(path, _), rest @ ..] => format!("{path} and {} more", rest.len()),
    }
}
