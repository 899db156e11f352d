//! [`SequencerLease`]: which replica appends to the audit log, as the one row
//! of `audit_sequencer`.

use std::time::Duration;

use crate::store::Store;

/// The right to append to the audit log, held until `expires_at` unless
/// renewed, and identified by an epoch that grows with every grant.
///
/// Times are unix milliseconds passed in by the caller (its clock), which
/// keeps this testable without sleeping. Holding a lease is not what makes
/// writes safe — the epoch check in every [`DbTileStore`] write is — so a
/// holder that misses a renewal or a replica whose clock runs fast only
/// causes an early or late failover.
///
/// [`DbTileStore`]: super::DbTileStore
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencerLease {
    epoch: u64,
    holder: String,
    ttl: Duration,
}

impl SequencerLease {
    /// Takes the lease for `holder` until `now_ms + ttl` if it is free: never
    /// held, expired (`expires_at <= now_ms`), released, or already
    /// `holder`'s. Every grant gets a new epoch (the first is 1), so
    /// re-acquiring also fences this holder's own earlier writers. `None`:
    /// another holder's lease is live.
    ///
    /// `holder` must be unique per process (host, pid and a random suffix,
    /// say): two processes sharing a name would take the lease from each
    /// other on every attempt — still safe, but neither would keep it.
    ///
    /// Race-safe: the check and the grant are one `UPDATE`. On PostgreSQL
    /// a concurrent acquirer blocks on the row lock and, under READ
    /// COMMITTED, re-evaluates the condition against the winner's committed
    /// row, which is no longer expired; on SQLite writers are serialised.
    pub async fn try_acquire(
        store: &Store,
        holder: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<Option<Self>, sqlx::Error> {
        let epoch: Option<i64> = sqlx::query_scalar(
            "UPDATE audit_sequencer SET epoch = epoch + 1, holder = $1, expires_at = $2 \
             WHERE id = 1 AND (expires_at <= $3 OR holder = $1) RETURNING epoch",
        )
        .bind(holder)
        .bind(expiry(now_ms, ttl))
        .bind(now_ms)
        .fetch_optional(store.pool())
        .await?;
        epoch
            .map(|epoch| {
                // The epoch RETURNING reports is the one this UPDATE wrote.
                Ok(Self {
                    epoch: u64::try_from(epoch).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                    holder: holder.to_owned(),
                    ttl,
                })
            })
            .transpose()
    }

    /// Extends the lease to `now_ms + ttl` if its epoch is still current
    /// (even past expiry, as long as nobody took it over). `false`: the lease
    /// was lost, and the caller must stop sequencing.
    pub async fn renew(&self, store: &Store, now_ms: i64) -> Result<bool, sqlx::Error> {
        let renewed =
            sqlx::query("UPDATE audit_sequencer SET expires_at = $1 WHERE id = 1 AND epoch = $2")
                .bind(expiry(now_ms, self.ttl))
                .bind(self.epoch_i64())
                .execute(store.pool())
                .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease up (on shutdown) so another replica can take over
    /// without waiting for it to expire. `false`: it had already been lost.
    /// Writers fenced by this epoch keep working until someone takes over,
    /// so stop them first.
    pub async fn release(self, store: &Store) -> Result<bool, sqlx::Error> {
        let released =
            sqlx::query("UPDATE audit_sequencer SET expires_at = 0 WHERE id = 1 AND epoch = $1")
                .bind(self.epoch_i64())
                .execute(store.pool())
                .await?;
        Ok(released.rows_affected() == 1)
    }

    /// The epoch of this grant; writes fenced by it fail once it is not the
    /// latest.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Who holds it.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How long each grant or renewal lasts.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn epoch_i64(&self) -> i64 {
        // Epochs come from a BIGINT column, so they always fit.
        i64::try_from(self.epoch).unwrap_or(i64::MAX)
    }
}

/// `now_ms + ttl` in unix milliseconds, saturating.
fn expiry(now_ms: i64, ttl: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}
