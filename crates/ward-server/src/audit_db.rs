//! The audit log's storage on the control plane's database: the Merkle log's
//! tiles ([`DbTileStore`], a [`ward_audit::TileStore`] over the
//! `audit_tiles` table) and the lease that decides which replica appends to
//! the log ([`SequencerLease`], the one row of `audit_sequencer`). Both run
//! on SQLite and PostgreSQL through the [`Store`](crate::store::Store)'s
//! pool, with the tables of `migrations/0004_audit_tiles.sql`.
//!
//! One replica sequences: whoever holds the lease; every tile write is fenced
//! by the lease epoch in the same transaction, so a replica that lost its
//! lease (paused, partitioned) cannot corrupt the log; clock skew only
//! affects how fast a lease fails over, never safety.
//!
//! How that holds:
//! - taking the lease is one conditional `UPDATE` of the lease row that
//!   succeeds only when the lease has expired (or is already the caller's)
//!   and bumps the epoch, so two replicas racing for it cannot both win,
//!   and every grant has an epoch no earlier grant had;
//! - a fenced write's transaction first touches the lease row with its
//!   epoch and rolls back, having written nothing, when the epoch moved on.
//!   The touch is a write, so it also orders the batch against a takeover:
//!   on PostgreSQL it row-locks the lease until commit (a takeover waits
//!   for the batch, then bumps the epoch), on SQLite the database write lock
//!   does the same;
//! - expiry times are unix milliseconds read from the replicas' own clocks;
//!   they only decide *when* another replica may take over. Who may write is
//!   decided by the epoch, which no clock touches.

mod lease;
mod tiles;

pub use self::lease::SequencerLease;
pub use self::tiles::{DbTileStore, LeaseLost, is_lease_lost};

#[cfg(test)]
mod tests;
