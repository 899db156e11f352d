//! Policy bundle versions in the store: immutable, content-addressed,
//! server-signed; one active at a time, each activation a revision in the
//! change log (so the watch stream carries it to proxies).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{ChangeKind, Store, StoreError, next_revision, to_i64};

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    /// File name (`*.cedar`, `schema.cedarschema`, `tests/*.yaml`).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// A stored bundle version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// SHA-256 of the policy files (hex).
    pub version: String,
    /// The files.
    pub files: Vec<PolicyFile>,
    /// The server's Ed25519 signature over the version, base64.
    pub signature: String,
    /// SPIFFE ID of the admin who pushed it.
    pub pushed_by: String,
    /// Unix seconds.
    pub pushed_at: i64,
}

/// What the change log records when a version becomes active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyActivation {
    /// The active version.
    pub version: String,
    /// Its signature.
    pub signature: String,
    /// The files, so a watcher needs no second request.
    pub files: Vec<PolicyFile>,
}

/// A row of `ward policy list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// Version.
    pub version: String,
    /// Who pushed it.
    pub pushed_by: String,
    /// When (unix seconds).
    pub pushed_at: i64,
    /// Whether it is the active one.
    pub active: bool,
}

impl Store {
    /// Stores `policy` (a no-op if that version exists) and makes it the
    /// active version, in one transaction; returns the revision.
    pub async fn push_policy(&self, policy: &StoredPolicy, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rev = next_revision(&mut tx).await?;
        let files =
            serde_json::to_string(&policy.files).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO policy_versions (version, files, signature, pushed_by, pushed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (version) DO NOTHING",
        )
        .bind(policy.version.as_str())
        .bind(files)
        .bind(policy.signature.as_str())
        .bind(policy.pushed_by.as_str())
        .bind(policy.pushed_at)
        .execute(&mut *tx)
        .await?;
        self.activate_in(tx, rev, &policy.version, now).await
    }

    /// Makes a stored version active again (rollback).
    pub async fn activate_policy(&self, version: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rev = next_revision(&mut tx).await?;
        self.activate_in(tx, rev, version, now).await
    }

    async fn activate_in(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        rev: u64,
        version: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let Some(stored) = fetch(&mut *tx, version).await? else {
            return Err(StoreError::PolicyNotFound(version.to_owned()));
        };
        sqlx::query(
            "INSERT INTO policy_active (id, version, activated_at, revision) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET version = $1, activated_at = $2, revision = $3",
        )
        .bind(version)
        .bind(now)
        .bind(to_i64(rev))
        .execute(&mut *tx)
        .await?;
        let activation = PolicyActivation {
            version: stored.version,
            signature: stored.signature,
            files: stored.files,
        };
        self.commit_change(tx, rev, ChangeKind::Policy, version, &activation, now)
            .await?;
        Ok(rev)
    }

    /// The active version, if any was ever pushed.
    pub async fn active_policy(&self) -> Result<Option<StoredPolicy>, StoreError> {
        let version: Option<String> =
            sqlx::query_scalar("SELECT version FROM policy_active WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        match version {
            Some(v) => self.policy(&v).await,
            None => Ok(None),
        }
    }

    /// One stored version.
    pub async fn policy(&self, version: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch(&mut *conn, version).await
    }

    /// Every stored version, newest first.
    pub async fn policies(&self) -> Result<Vec<PolicySummary>, StoreError> {
        let active: Option<String> =
            sqlx::query_scalar("SELECT version FROM policy_active WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        let rows = sqlx::query(
            "SELECT version, pushed_by, pushed_at FROM policy_versions ORDER BY pushed_at DESC, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let version: String = row.try_get("version")?;
                Ok(PolicySummary {
                    active: active.as_deref() == Some(version.as_str()),
                    version,
                    pushed_by: row.try_get("pushed_by")?,
                    pushed_at: row.try_get("pushed_at")?,
                })
            })
            .collect()
    }
}

async fn fetch<'e, E>(executor: E, version: &str) -> Result<Option<StoredPolicy>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT version, files, signature, pushed_by, pushed_at FROM policy_versions WHERE version = $1",
    )
    .bind(version)
    .fetch_optional(executor)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let files: String = row.try_get("files")?;
    Ok(Some(StoredPolicy {
        version: row.try_get("version")?,
        files: serde_json::from_str(&files).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        signature: row.try_get("signature")?,
        pushed_by: row.try_get("pushed_by")?,
        pushed_at: row.try_get("pushed_at")?,
    }))
}
