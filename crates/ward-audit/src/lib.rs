//! Ward's audit plane: the tamper-evident log of every decision.
//!
//! The log is an RFC 6962 / RFC 9162 Merkle tree stored in the C2SP
//! tlog-tiles layout and committed by C2SP tlog-checkpoint signed notes
//! (Ed25519) — the conventions of Go's sumdb, Sigstore Rekor v2 and CT logs,
//! so its proofs verify with existing tools (DESIGN.md §3). The core is
//! synchronous and does I/O only through [`TileStore`].
//!
//! Entry points:
//! - [`Log`]: open a log in a store, [`Log::append`] batches, sign with
//!   [`Log::checkpoint`], and produce proofs;
//! - [`AuditRecord`]: the versioned, canonically encoded decision record;
//! - [`verify_log`]: offline verification of a mirrored log;
//! - [`Spool`] and [`GroupCommit`]: the proxy's durable local queue of
//!   records waiting to be shipped to the server's log;
//! - [`InclusionProof::verify`], [`ConsistencyProof::verify`],
//!   [`SignedCheckpoint::open`]: client-side checks;
//! - [`TileNodes`] with [`tree::inclusion_proof`] etc.: proofs from any
//!   reader of the store (API replicas).
//!
//! Module map: [`hash`] (leaf/node hashing), [`index`] (index and size
//! types), [`tree`] (tree heads, proof generation), [`proof`] (proof
//! verification), [`tile`] (tile coordinates and paths), [`bundle`] (entry
//! bundles), [`store`] (storage trait, memory and filesystem stores),
//! [`nodes`] (tree nodes from stored tiles), [`note`] (signed notes),
//! [`checkpoint`] (tree heads as notes), [`log`] (the appender), [`record`]
//! (the audit record), [`verify`] (offline verification), [`spool`] (the
//! proxy-side spool).

pub mod bundle;
pub mod checkpoint;
pub mod decision_id;
mod edge;
pub mod hash;
pub mod index;
pub mod log;
pub mod nodes;
pub mod note;
pub mod proof;
pub mod record;
pub mod spool;
pub mod store;
pub mod tile;
pub mod tree;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, Origin, SignedCheckpoint};
pub use edge::EdgeError;
pub use hash::{Hash, leaf_hash, node_hash};
pub use index::{LeafIndex, LeafRange, TreeSize};
pub use log::{CheckpointPolicy, Log, LogError};
pub use nodes::{TileNodes, TileReadError};
pub use note::{KeyName, NoteError, NoteSigner, NoteVerifier, SignedNote};
pub use proof::{ConsistencyProof, InclusionProof, ProofError};
pub use record::{AuditRecord, Decision, RecordError, RequestDigest, RpcCall};
pub use spool::{Batch, GroupCommit, Spool, SpoolError, SpoolOptions, SpoolStats};
pub use store::fs::FsStore;
pub use store::{MemoryStore, StoreError, TileStore};
pub use tile::{BundleId, LogPath, TileId, TileWidth};
pub use verify::{VerifiedLog, VerifyError, verify_log};
