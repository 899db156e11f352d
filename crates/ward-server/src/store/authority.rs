//! CA authorities in the store: which intermediates exist, which one issues,
//! and which roots the trust bundle carries. Certificates only — private
//! keys stay in the data directory of the server that made them.
//!
//! The lifecycle is `staged → active → retiring → retired` (a staged
//! authority may also be retired, which aborts a rotation; a retiring one may
//! be activated again, which rolls one back). Each transition is one
//! revision whose change (kind `bundle`) carries the resulting trust bundle,
//! built by the caller from the rows inside the same transaction, so the
//! bundle a proxy receives always matches the rows at that revision.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{ChangeKind, Store, StoreError, next_revision, to_i64, to_u64};

/// Where an authority is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorityState {
    /// In the trust bundle, not issuing yet (waiting for proxies to trust it).
    Staged,
    /// Issues every new SVID.
    Active,
    /// Replaced; still trusted until its certificates expire.
    Retiring,
    /// Out of the trust bundle.
    Retired,
}

impl AuthorityState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staged => "staged",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }

    /// Whether its root belongs in the trust bundle.
    pub fn trusted(self) -> bool {
        self != Self::Retired
    }
}

impl std::fmt::Display for AuthorityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuthorityState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "staged" => Ok(Self::Staged),
            "active" => Ok(Self::Active),
            "retiring" => Ok(Self::Retiring),
            "retired" => Ok(Self::Retired),
            other => Err(format!("unknown authority state {other:?}")),
        }
    }
}

/// One authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityRow {
    /// [`ward_identity::ca::authority_id`] of the intermediate.
    pub id: String,
    /// The root certificate, PEM.
    pub root_pem: String,
    /// The intermediate certificate, PEM.
    pub intermediate_pem: String,
    /// Lifecycle state.
    pub state: AuthorityState,
    /// Whether the rotation that made it introduced a new root.
    pub new_root: bool,
    /// Unix seconds (authorities are listed in creation order).
    pub created_at: i64,
    /// When it started issuing (unix seconds).
    pub activated_at: Option<i64>,
    /// When it left the bundle (unix seconds).
    pub retired_at: Option<i64>,
    /// Revision of its last transition.
    pub revision: u64,
}

/// A transition of [`Store::transition_authority`].
#[derive(Debug, Clone)]
pub enum AuthorityOp {
    /// Adds a new authority as `staged`.
    Stage(AuthorityRow),
    /// Makes a staged or retiring authority the issuing one; the current
    /// active one becomes `retiring`.
    Activate(String),
    /// Takes a staged or retiring authority out of the bundle. Without
    /// `force`, refused while certificates it signed are still valid.
    Retire {
        /// The authority.
        id: String,
        /// Retire even with valid certificates outstanding.
        force: bool,
    },
}

const SELECT: &str = "SELECT id, root_pem, intermediate_pem, state, new_root, created_at, activated_at, retired_at, revision FROM ca_authorities ORDER BY generation, id";

impl Store {
    /// Every authority, oldest first.
    pub async fn authorities(&self) -> Result<Vec<AuthorityRow>, StoreError> {
        let rows = sqlx::query(SELECT).fetch_all(&self.pool).await?;
        rows.iter().map(row_to_authority).collect()
    }

    /// Records the authority a data directory was created with as the active
    /// one, if the store has none yet (first start, or a store from before
    /// rotation). Certificates recorded without an authority are attributed
    /// to it. Returns whether it inserted.
    pub async fn bootstrap_authority(&self, row: &AuthorityRow) -> Result<bool, StoreError> {
        // No revision is taken: the bundle is the one the directory always
        // had, so there is nothing to announce, and a revision without a
        // change would leave watchers waiting for one that never comes.
        let mut tx = self.pool.begin().await?;
        let rev: i64 = sqlx::query_scalar("SELECT revision FROM revisions WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO ca_authorities (id, root_pem, intermediate_pem, state, new_root, created_at, activated_at, retired_at, revision, generation) \
             SELECT $1, $2, $3, 'active', 1, $4, $4, NULL, $5, $5 WHERE NOT EXISTS (SELECT 1 FROM ca_authorities) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(row.id.as_str())
        .bind(row.root_pem.as_str())
        .bind(row.intermediate_pem.as_str())
        .bind(row.created_at)
        .bind(rev)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if inserted {
            sqlx::query("UPDATE certificates SET authority = $1 WHERE authority IS NULL")
                .bind(row.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Applies `op` and records the change, whose payload `payload` builds
    /// from the rows as they are after the transition. Returns the revision
    /// and those rows.
    pub async fn transition_authority(
        &self,
        op: &AuthorityOp,
        now: i64,
        payload: impl FnOnce(&[AuthorityRow]) -> Result<serde_json::Value, String>,
    ) -> Result<(u64, Vec<AuthorityRow>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rev = next_revision(&mut tx).await?;
        let rows = rows_in(&mut tx).await?;
        let find = |id: &str| {
            rows.iter().find(|r| r.id == id).ok_or_else(|| {
                StoreError::Authority(format!("no CA authority {id}; `ward ca status` lists them"))
            })
        };
        let subject = match op {
            AuthorityOp::Stage(row) => {
                if rows.iter().any(|r| r.id == row.id) {
                    return Err(StoreError::Authority(format!(
                        "CA authority {} already exists",
                        row.id
                    )));
                }
                insert(&mut tx, row, AuthorityState::Staged, rev).await?;
                row.id.clone()
            }
            AuthorityOp::Activate(id) => {
                let target = find(id)?;
                match target.state {
                    AuthorityState::Staged | AuthorityState::Retiring => {}
                    AuthorityState::Active => {
                        return Err(StoreError::Authority(format!(
                            "CA authority {id} is already the active one"
                        )));
                    }
                    AuthorityState::Retired => {
                        return Err(StoreError::Authority(format!(
                            "CA authority {id} is retired and cannot issue again; rotate to a new one with `ward ca rotate`"
                        )));
                    }
                }
                sqlx::query("UPDATE ca_authorities SET state = 'retiring', revision = $1 WHERE state = 'active'")
                    .bind(to_i64(rev))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE ca_authorities SET state = 'active', activated_at = $1, revision = $2 WHERE id = $3")
                    .bind(now)
                    .bind(to_i64(rev))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                id.clone()
            }
            AuthorityOp::Retire { id, force } => {
                let target = find(id)?;
                match target.state {
                    AuthorityState::Active => {
                        return Err(StoreError::Authority(format!(
                            "CA authority {id} is the one issuing; activate another first (`ward ca rotate`)"
                        )));
                    }
                    AuthorityState::Retired => {
                        return Err(StoreError::Authority(format!(
                            "CA authority {id} is already retired"
                        )));
                    }
                    AuthorityState::Staged | AuthorityState::Retiring => {}
                }
                if !force {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n, MAX(not_after) AS last FROM certificates WHERE authority = $1 AND not_after > $2",
                    )
                    .bind(id.as_str())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    let last: Option<i64> = row.try_get("last")?;
                    if n > 0 {
                        return Err(StoreError::Authority(format!(
                            "{n} certificate(s) signed by CA authority {id} are still valid (the last until unix time {}); \
                             retire it after that, or pass --force to retire it now (holders that have not re-enrolled lose trust where its root leaves the bundle)",
                            last.unwrap_or(now)
                        )));
                    }
                }
                sqlx::query("UPDATE ca_authorities SET state = 'retired', retired_at = $1, revision = $2 WHERE id = $3")
                    .bind(now)
                    .bind(to_i64(rev))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                id.clone()
            }
        };
        let after = rows_in(&mut tx).await?;
        let payload = payload(&after).map_err(StoreError::Corrupt)?;
        self.commit_change(tx, rev, ChangeKind::Bundle, &subject, &payload, now)
            .await?;
        Ok((rev, after))
    }

    /// How many unexpired certificates each authority signed.
    pub async fn certificates_by_authority(
        &self,
        now: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT authority, COUNT(*) AS n FROM certificates WHERE not_after > $1 AND authority IS NOT NULL GROUP BY authority",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("authority")?, to_u64(r.try_get("n")?))))
            .collect()
    }
}

/// Every authority as the transaction sees it.
async fn rows_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<Vec<AuthorityRow>, StoreError> {
    sqlx::query(SELECT)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(row_to_authority)
        .collect()
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    row: &AuthorityRow,
    state: AuthorityState,
    rev: u64,
) -> Result<(), StoreError> {
    let activated_at = (state == AuthorityState::Active).then_some(row.created_at);
    sqlx::query(
        "INSERT INTO ca_authorities (id, root_pem, intermediate_pem, state, new_root, created_at, activated_at, retired_at, revision, generation) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $8)",
    )
    .bind(row.id.as_str())
    .bind(row.root_pem.as_str())
    .bind(row.intermediate_pem.as_str())
    .bind(state.as_str())
    .bind(i64::from(row.new_root))
    .bind(row.created_at)
    .bind(activated_at)
    .bind(to_i64(rev))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn row_to_authority(row: &AnyRow) -> Result<AuthorityRow, StoreError> {
    let state: String = row.try_get("state")?;
    let new_root: i64 = row.try_get("new_root")?;
    Ok(AuthorityRow {
        id: row.try_get("id")?,
        root_pem: row.try_get("root_pem")?,
        intermediate_pem: row.try_get("intermediate_pem")?,
        state: state.parse().map_err(StoreError::Corrupt)?,
        new_root: new_root != 0,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
        revision: to_u64(row.try_get("revision")?),
    })
}
