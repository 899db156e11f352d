//! The control plane's state: one [`Store`] over SQLite (the embedded
//! default: one file, WAL, synchronous=FULL) or PostgreSQL (scale-out:
//! several `ward server` replicas on one database).
//!
//! Both backends run the same migrations and the same queries through
//! sqlx's `Any` driver, so there is one implementation to review and one
//! conformance suite proves both. Every write transaction starts by bumping
//! the single `revisions` row, which serialises writers (a row lock in
//! PostgreSQL, the write lock in SQLite), gives each change a revision in
//! commit order, and records the change in the `changes` log that watchers
//! resume from. PostgreSQL also `NOTIFY`s the revision so other replicas'
//! watchers wake ([`Store::listen`]); within one process a broadcast channel
//! does the same.

mod authority;
mod model;
mod policy;

use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use tokio::sync::broadcast;
use ward_core::{AgentName, SpiffeId, TrustDomain};

pub use self::authority::{AuthorityOp, AuthorityRow, AuthorityState};
pub use self::model::{
    Agent, AgentAttributes, AgentStatus, AgentUpdate, Change, ChangeKind, IssuedCert, JoinToken,
    Revocation, RevocationTarget,
};
pub use self::policy::{PolicyActivation, PolicyFile, PolicySummary, StoredPolicy};

/// PostgreSQL channel that carries new revisions between replicas.
pub const NOTIFY_CHANNEL: &str = "ward_changes";
/// Prefix of join-token secrets, so secret scanners can recognise them.
pub const JOIN_TOKEN_PREFIX: &str = "wardjt_";

/// `SELECT … FROM agents` followed by a literal tail, kept a literal so
/// sqlx's injection guard holds.
macro_rules! select_agents {
    ($tail:literal) => {
        concat!(
            "SELECT name, spiffe_id, attributes, status, endpoint, created_at, updated_at, revision FROM agents ",
            $tail
        )
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded single file.
    Sqlite,
    /// Shared server.
    Postgres,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names no supported database.
    #[error(
        "unsupported store {0:?}; use `sqlite:///path/to/ward.db` or `postgres://user@host/db`"
    )]
    UnsupportedUrl(String),
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed.
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An agent of that name exists.
    #[error("agent {0} already exists")]
    AgentExists(AgentName),
    /// No agent of that name.
    #[error("no agent named {0}; `ward agent list` shows the registered ones")]
    AgentNotFound(AgentName),
    /// A status change that the lifecycle forbids.
    #[error("agent {name} is {from} and cannot become {to}")]
    InvalidTransition {
        /// The agent.
        name: AgentName,
        /// Its current status.
        from: AgentStatus,
        /// The requested status.
        to: AgentStatus,
    },
    /// The agent's status forbids the operation.
    #[error("agent {name} is {status}; only active agents can {action}")]
    AgentNotActive {
        /// The agent.
        name: AgentName,
        /// Its status.
        status: AgentStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// A join token that is unknown, used or expired (deliberately one error,
    /// so a guesser learns nothing).
    #[error(
        "join token is invalid, already used or expired; create a new one with `ward token create`"
    )]
    InvalidToken,
    /// No stored policy version with that hash.
    #[error("no policy version {0}; `ward policy list` shows the stored ones")]
    PolicyNotFound(String),
    /// A CA authority transition the rotation lifecycle forbids.
    #[error("{0}")]
    Authority(String),
    /// A stored row does not parse (manual edits or a newer schema).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Randomness for a secret was unavailable.
    #[error("random number generator failed")]
    Random,
}

/// Handle to the control plane's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    changes: broadcast::Sender<u64>,
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `url`:
    /// `sqlite:///abs/path.db`, `sqlite:relative.db`, or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, pool) = if url.starts_with("sqlite:") {
            let url = if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            let pool = AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // WAL lets readers run beside the writer; FULL makes a
                        // committed transaction survive power loss, not just a
                        // crash; busy_timeout queues writers instead of failing.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await?;
            (Backend::Sqlite, pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            (Backend::Postgres, pool)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        MIGRATOR.run(&pool).await?;
        let (changes, _) = broadcast::channel(1024);
        Ok(Self {
            pool,
            backend,
            changes,
        })
    }

    /// The connection pool, for modules that keep their own tables beside
    /// the registry (the audit log's tiles and query index).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; pending writes have committed or failed.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The latest committed revision.
    pub async fn revision(&self) -> Result<u64, StoreError> {
        let rev: i64 = sqlx::query_scalar("SELECT revision FROM revisions WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(to_u64(rev))
    }

    /// Revision hints: a value is sent after each commit (and, on PostgreSQL
    /// with [`Store::listen`] running, for commits by other replicas). A
    /// watcher that lags or misses one reads [`Store::changes_since`] anyway.
    pub fn subscribe(&self) -> broadcast::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Runs `refresh` after every burst of commits until `watch` signals:
    /// a burst (bulk registration) is coalesced into one run at most every
    /// `delay`, always covering the latest commit. For state derived from
    /// the whole store (policy entities, CA authorities).
    pub fn on_changes<F, Fut>(
        &self,
        watch: ward_core::drain::Watch,
        delay: Duration,
        mut refresh: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let mut changes = self.subscribe();
        tokio::spawn(async move {
            let shutdown = watch.signaled();
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    received = changes.recv() => {
                        if let Err(broadcast::error::RecvError::Closed) = received {
                            return;
                        }
                    }
                }
                tokio::time::sleep(delay).await;
                while changes.try_recv().is_ok() {}
                refresh().await;
            }
        });
    }

    /// On PostgreSQL, forwards every replica's `NOTIFY` to [`Store::subscribe`]
    /// until `watch` signals shutdown. A no-op on SQLite (one process).
    pub async fn listen(
        &self,
        url: &str,
        watch: ward_core::drain::Watch,
    ) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let changes = self.changes.clone();
        tokio::spawn(async move {
            let shutdown = watch.signaled();
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    next = listener.recv() => match next {
                        Ok(n) => {
                            if let Ok(rev) = n.payload().parse::<u64>() {
                                let _ = changes.send(rev);
                            }
                        }
                        // PgListener reconnects by itself on the next recv;
                        // tell watchers to re-read in case something was missed.
                        Err(e) => {
                            tracing::warn!(error = %e, "PostgreSQL change listener error; reconnecting");
                            let _ = changes.send(0);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                }
            }
        });
        Ok(())
    }

    /// Changes after `revision`, oldest first, at most `limit`.
    pub async fn changes_since(
        &self,
        revision: u64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query(
            "SELECT revision, kind, subject, payload, at FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
        )
        .bind(to_i64(revision))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_from_row).collect()
    }

    /// Registers a new, active agent in `td`.
    pub async fn register_agent(
        &self,
        td: &TrustDomain,
        name: &AgentName,
        attributes: AgentAttributes,
        now: i64,
    ) -> Result<Agent, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rev = next_revision(&mut tx).await?;
        if fetch_agent(&mut *tx, name).await?.is_some() {
            return Err(StoreError::AgentExists(name.clone()));
        }
        let agent = Agent {
            name: name.clone(),
            spiffe_id: td.agent_id(name),
            attributes,
            status: AgentStatus::Active,
            endpoint: None,
            created_at: now,
            updated_at: now,
            revision: rev,
        };
        sqlx::query(
            "INSERT INTO agents (name, spiffe_id, attributes, status, endpoint, created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(agent.name.as_str())
        .bind(agent.spiffe_id.as_str())
        .bind(to_json(&agent.attributes)?)
        .bind(agent.status.as_str())
        .bind(agent.endpoint.clone())
        .bind(now)
        .bind(now)
        .bind(to_i64(rev))
        .execute(&mut *tx)
        .await?;
        self.commit_change(tx, rev, ChangeKind::Agent, name.as_str(), &agent, now)
            .await?;
        Ok(agent)
    }

    /// The agent named `name`.
    pub async fn agent(&self, name: &AgentName) -> Result<Option<Agent>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch_agent(&mut *conn, name).await
    }

    /// Every agent, by name.
    pub async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query(select_agents!("ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// How many agents are in each status (statuses with none are omitted).
    pub async fn agent_counts(&self) -> Result<Vec<(AgentStatus, u64)>, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM agents GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let n: i64 = row.try_get("n")?;
                Ok((status.parse().map_err(StoreError::Corrupt)?, to_u64(n)))
            })
            .collect()
    }

    /// Changes an agent's attributes or endpoint.
    pub async fn update_agent(
        &self,
        name: &AgentName,
        update: AgentUpdate,
        now: i64,
    ) -> Result<Agent, StoreError> {
        self.modify_agent(name, now, |agent| {
            if let Some(attributes) = update.attributes {
                agent.attributes = attributes;
            }
            if let Some(endpoint) = update.endpoint {
                agent.endpoint = endpoint;
            }
            Ok(())
        })
        .await
    }

    /// Moves an agent to `status`, if its lifecycle allows.
    pub async fn set_agent_status(
        &self,
        name: &AgentName,
        status: AgentStatus,
        now: i64,
    ) -> Result<Agent, StoreError> {
        self.modify_agent(name, now, |agent| {
            if !agent.status.can_become(status) {
                return Err(StoreError::InvalidTransition {
                    name: agent.name.clone(),
                    from: agent.status,
                    to: status,
                });
            }
            agent.status = status;
            Ok(())
        })
        .await
    }

    async fn modify_agent(
        &self,
        name: &AgentName,
        now: i64,
        edit: impl FnOnce(&mut Agent) -> Result<(), StoreError>,
    ) -> Result<Agent, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rev = next_revision(&mut tx).await?;
        let mut agent = fetch_agent(&mut *tx, name)
            .await?
            .ok_or_else(|| StoreError::AgentNotFound(name.clone()))?;
        edit(&mut agent)?;
        agent.updated_at = now;
        agent.revision = rev;
        sqlx::query(
            "UPDATE agents SET attributes = $1, status = $2, endpoint = $3, updated_at = $4, revision = $5 WHERE name = $6",
        )
        .bind(to_json(&agent.attributes)?)
        .bind(agent.status.as_str())
        .bind(agent.endpoint.clone())
        .bind(now)
        .bind(to_i64(rev))
        .bind(name.as_str())
        .execute(&mut *tx)
        .await?;
        self.commit_change(tx, rev, ChangeKind::Agent, name.as_str(), &agent, now)
            .await?;
        Ok(agent)
    }

    /// Creates a single-use join token for an active agent, valid for
    /// `ttl_secs`. Only its SHA-256 is stored.
    pub async fn create_join_token(
        &self,
        name: &AgentName,
        ttl_secs: i64,
        now: i64,
    ) -> Result<JoinToken, StoreError> {
        let agent = self
            .agent(name)
            .await?
            .ok_or_else(|| StoreError::AgentNotFound(name.clone()))?;
        if agent.status != AgentStatus::Active {
            return Err(StoreError::AgentNotActive {
                name: name.clone(),
                status: agent.status,
                action: "receive join tokens",
            });
        }
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| StoreError::Random)?;
        let secret = format!(
            "{JOIN_TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let expires_at = now.saturating_add(ttl_secs);
        sqlx::query(
            "INSERT INTO join_tokens (token_hash, agent_name, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(token_hash(&secret))
        .bind(name.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(JoinToken {
            secret,
            agent: name.clone(),
            expires_at,
        })
    }

    /// Consumes a join token and returns the agent it enrolls. One atomic
    /// statement marks it used, so two redeemers cannot both win.
    pub async fn redeem_join_token(&self, secret: &str, now: i64) -> Result<Agent, StoreError> {
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE join_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING agent_name",
        )
        .bind(now)
        .bind(token_hash(secret))
        .fetch_optional(&self.pool)
        .await?;
        let name = name.ok_or(StoreError::InvalidToken)?;
        let name = AgentName::new(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let agent = self
            .agent(&name)
            .await?
            .ok_or_else(|| StoreError::AgentNotFound(name.clone()))?;
        if agent.status != AgentStatus::Active {
            return Err(StoreError::AgentNotActive {
                name,
                status: agent.status,
                action: "enroll",
            });
        }
        Ok(agent)
    }

    /// Records a certificate the CA issued.
    pub async fn record_certificate(&self, cert: &IssuedCert) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO certificates (serial, spiffe_id, agent_name, issued_at, not_after, authority) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(cert.serial.as_str())
        .bind(cert.spiffe_id.as_str())
        .bind(cert.agent.as_ref().map(|a| a.as_str().to_owned()))
        .bind(cert.issued_at)
        .bind(cert.not_after)
        .bind(cert.authority.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The certificate with `serial`.
    pub async fn certificate(&self, serial: &str) -> Result<Option<IssuedCert>, StoreError> {
        let row = sqlx::query(
            "SELECT serial, spiffe_id, agent_name, issued_at, not_after, authority FROM certificates WHERE serial = $1",
        )
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(cert_from_row).transpose()
    }

    /// Revokes an agent (and sets it to `revoked`) or one certificate.
    /// Revoking something already revoked returns the existing revocation.
    pub async fn revoke(
        &self,
        target: &RevocationTarget,
        reason: &str,
        now: i64,
    ) -> Result<Revocation, StoreError> {
        let (kind, subject) = match target {
            RevocationTarget::Agent(name) => ("agent", name.as_str().to_owned()),
            RevocationTarget::Serial(serial) => ("serial", serial.clone()),
        };
        let mut tx = self.pool.begin().await?;
        let rev = next_revision(&mut tx).await?;
        let existing = sqlx::query(
            "SELECT reason, revoked_at, revision FROM revocations WHERE kind = $1 AND subject = $2",
        )
        .bind(kind)
        .bind(subject.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            // Nothing changes; the bumped revision is rolled back with the tx.
            tx.rollback().await?;
            return Ok(Revocation {
                target: target.clone(),
                reason: row.try_get("reason")?,
                revoked_at: row.try_get("revoked_at")?,
                revision: to_u64(row.try_get("revision")?),
            });
        }
        if let RevocationTarget::Agent(name) = target {
            let mut agent = fetch_agent(&mut *tx, name)
                .await?
                .ok_or_else(|| StoreError::AgentNotFound(name.clone()))?;
            if agent.status != AgentStatus::Retired {
                agent.status = AgentStatus::Revoked;
            }
            sqlx::query(
                "UPDATE agents SET status = $1, updated_at = $2, revision = $3 WHERE name = $4",
            )
            .bind(agent.status.as_str())
            .bind(now)
            .bind(to_i64(rev))
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT INTO revocations (kind, subject, reason, revoked_at, revision) VALUES ($1, $2, $3, $4, $5)")
            .bind(kind)
            .bind(subject.as_str())
            .bind(reason)
            .bind(now)
            .bind(to_i64(rev))
            .execute(&mut *tx)
            .await?;
        let revocation = Revocation {
            target: target.clone(),
            reason: reason.to_owned(),
            revoked_at: now,
            revision: rev,
        };
        self.commit_change(
            tx,
            rev,
            ChangeKind::Revocation,
            &format!("{kind}/{subject}"),
            &revocation,
            now,
        )
        .await?;
        Ok(revocation)
    }

    /// Whether `agent` or the certificate `serial` is revoked (one indexed
    /// lookup; used on every renewal).
    pub async fn is_revoked(&self, agent: &AgentName, serial: &str) -> Result<bool, StoreError> {
        let hit: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM revocations WHERE (kind = 'agent' AND subject = $1) OR (kind = 'serial' AND subject = $2) LIMIT 1",
        )
        .bind(agent.as_str())
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        Ok(hit.is_some())
    }

    /// Every revocation, oldest first.
    pub async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, subject, reason, revoked_at, revision FROM revocations ORDER BY revision",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let subject: String = row.try_get("subject")?;
                let target = match kind.as_str() {
                    "agent" => RevocationTarget::Agent(
                        AgentName::new(&subject).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    ),
                    "serial" => RevocationTarget::Serial(subject),
                    other => return Err(StoreError::Corrupt(format!("revocation kind {other:?}"))),
                };
                Ok(Revocation {
                    target,
                    reason: row.try_get("reason")?,
                    revoked_at: row.try_get("revoked_at")?,
                    revision: to_u64(row.try_get("revision")?),
                })
            })
            .collect()
    }

    /// Grants admin rights to a SPIFFE ID (idempotent).
    pub async fn add_admin(&self, id: &SpiffeId, name: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admins (spiffe_id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (spiffe_id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether `id` is an admin.
    pub async fn is_admin(&self, id: &SpiffeId) -> Result<bool, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT spiffe_id FROM admins WHERE spiffe_id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// The admin name of `id`, if it is an admin.
    pub async fn admin_name(&self, id: &SpiffeId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM admins WHERE spiffe_id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every admin: SPIFFE ID and name.
    pub async fn admins(&self) -> Result<Vec<(SpiffeId, String)>, StoreError> {
        let rows = sqlx::query("SELECT spiffe_id, name FROM admins ORDER BY spiffe_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("spiffe_id")?;
                Ok((
                    SpiffeId::new(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    row.try_get("name")?,
                ))
            })
            .collect()
    }

    async fn commit_change<T: serde::Serialize>(
        &self,
        mut tx: Transaction<'_, Any>,
        rev: u64,
        kind: ChangeKind,
        subject: &str,
        payload: &T,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO changes (revision, kind, subject, payload, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(to_i64(rev))
            .bind(kind.as_str())
            .bind(subject)
            .bind(to_json(payload)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if self.backend == Backend::Postgres {
            // Delivered to every listening replica when (and only if) the
            // transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(rev.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let _ = self.changes.send(rev);
        Ok(())
    }
}

/// Bumps the revision; the first statement of every write transaction, so
/// writers serialise here before reading anything they will change.
async fn next_revision(tx: &mut Transaction<'_, Any>) -> Result<u64, StoreError> {
    let rev: i64 = sqlx::query_scalar(
        "UPDATE revisions SET revision = revision + 1 WHERE id = 1 RETURNING revision",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(to_u64(rev))
}

async fn fetch_agent<'e, E>(executor: E, name: &AgentName) -> Result<Option<Agent>, StoreError>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query(select_agents!("WHERE name = $1"))
        .bind(name.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(agent_from_row).transpose()
}

fn agent_from_row(row: &AnyRow) -> Result<Agent, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let name: String = row.try_get("name")?;
    let spiffe_id: String = row.try_get("spiffe_id")?;
    let attributes: String = row.try_get("attributes")?;
    let status: String = row.try_get("status")?;
    Ok(Agent {
        name: AgentName::new(&name).map_err(|e| corrupt(e.to_string()))?,
        spiffe_id: SpiffeId::new(&spiffe_id).map_err(|e| corrupt(e.to_string()))?,
        attributes: serde_json::from_str(&attributes)
            .map_err(|e| corrupt(format!("agent {name} attributes: {e}")))?,
        status: AgentStatus::from_str(&status).map_err(corrupt)?,
        endpoint: row.try_get("endpoint")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision: to_u64(row.try_get("revision")?),
    })
}

fn cert_from_row(row: &AnyRow) -> Result<IssuedCert, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let spiffe_id: String = row.try_get("spiffe_id")?;
    let agent: Option<String> = row.try_get("agent_name")?;
    Ok(IssuedCert {
        serial: row.try_get("serial")?,
        spiffe_id: SpiffeId::new(&spiffe_id).map_err(|e| corrupt(e.to_string()))?,
        agent: agent
            .map(|a| AgentName::new(&a))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?,
        issued_at: row.try_get("issued_at")?,
        not_after: row.try_get("not_after")?,
        authority: row.try_get("authority")?,
    })
}

fn change_from_row(row: &AnyRow) -> Result<Change, StoreError> {
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    Ok(Change {
        revision: to_u64(row.try_get("revision")?),
        kind: ChangeKind::from_str(&kind).map_err(StoreError::Corrupt)?,
        subject: row.try_get("subject")?,
        payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        at: row.try_get("at")?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Hex SHA-256 of a join-token secret.
fn token_hash(secret: &str) -> String {
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Revisions are stored as BIGINT; they start at 0 and only grow.
/// The wall clock in unix milliseconds, as the audit and receipt tables
/// store it.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A store URL with any password replaced, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = url.get(scheme_end + 3..at).unwrap_or_default();
            let user = userinfo.split(':').next().unwrap_or_default();
            let rest = url.get(at..).unwrap_or_default();
            let scheme = url.get(..scheme_end + 3).unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}{user}:***{rest}")
            } else {
                url.to_owned()
            }
        }
        _ => url.to_owned(),
    }
}
