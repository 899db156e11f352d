//! The audit log's query index (`audit_index`, `audit_index_policies`) and
//! the per-proxy ingestion marks (`audit_ingest`), in the control plane's
//! store (SQLite or PostgreSQL).
//!
//! The index is derived: [`follow`] reads the log's entries past the last
//! indexed one and inserts them, after every append and on start, so a
//! crash between an append and its indexing only delays the index. Queries
//! return log indexes; the records themselves are read back from the tiles,
//! so what a query shows is what the Merkle tree commits to.

use std::time::Duration;

use sqlx::{AnyPool, AssertSqlSafe, Row};
use ward_audit::AuditRecord;
use ward_audit::record::Decision;
use ward_core::drain::Watch;

use super::AuditLog;
use crate::store::{Store, StoreError};

/// Entries indexed per transaction.
const CHUNK: u64 = 2048;
/// Rows per multi-row INSERT on PostgreSQL (11 binds each; far below its
/// bind limit).
const ROWS_PER_INSERT: usize = 256;
/// The same on SQLite. sqlx binds `$N` parameters by asking SQLite each
/// one's name, a linear scan of the statement's parameters, so binding is
/// quadratic in the parameters per statement: at 256 rows it was half the
/// server's CPU while proxies shipped under load. 16 rows (176 binds) keep
/// the statements multi-row and the scan short.
const ROWS_PER_INSERT_SQLITE: usize = 16;

/// What an index query selects. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Caller or target agent name.
    pub agent: Option<String>,
    /// Records at or after this time (unix millis).
    pub since_ms: Option<i64>,
    /// Records before this time (unix millis).
    pub until_ms: Option<i64>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// A determining policy id.
    pub policy: Option<String>,
    /// Only indexes above this one (paging forward).
    pub after: Option<u64>,
    /// The newest `limit` matches instead of the oldest.
    pub newest: bool,
    /// At most this many.
    pub limit: u64,
}

/// Index of the next entry to index (everything below it is indexed).
pub async fn indexed_below(pool: &AnyPool) -> Result<u64, StoreError> {
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_index")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(next).unwrap_or(0))
}

/// Indexes `entries` (log index, encoded record). Entries that do not
/// decode as records are skipped with a warning: the log accepts only
/// decoded records, so that means a newer schema, not tampering (which
/// `ward audit verify` is for).
pub async fn insert(pool: &AnyPool, entries: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
    let mut rows = Vec::with_capacity(entries.len());
    for (idx, bytes) in entries {
        match AuditRecord::decode(bytes) {
            Ok(record) => rows.push((*idx, record)),
            Err(e) => tracing::warn!(index = idx, error = %e, "audit entry not indexed"),
        }
    }
    let mut tx = pool.begin().await?;
    let per_insert = if tx.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME {
        ROWS_PER_INSERT_SQLITE
    } else {
        ROWS_PER_INSERT
    };
    for chunk in rows.chunks(per_insert) {
        let mut sql = String::from(
            "INSERT INTO audit_index (idx, time_ms, decision_id, proxy_id, principal, principal_agent, \
             resource, resource_agent, action, decision, policy_version) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 11;
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for k in 1..=11 {
                if k > 1 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", b + k));
            }
            sql.push(')');
        }
        // Re-indexing after a crash may meet rows that already exist.
        sql.push_str(" ON CONFLICT (idx) DO NOTHING");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (idx, r) in chunk {
            query = query
                .bind(to_i64(*idx))
                .bind(i64::try_from(r.time.get()).unwrap_or(i64::MAX))
                .bind(r.decision_id.clone())
                .bind(r.proxy_id.clone())
                .bind(r.principal.as_ref().map(ToString::to_string))
                .bind(
                    r.principal
                        .as_ref()
                        .and_then(|p| p.agent_name())
                        .map(|n| n.as_str().to_owned()),
                )
                .bind(r.resource.clone())
                .bind(resource_agent(&r.resource))
                .bind(r.action.clone())
                .bind(decision_text(r.decision).to_owned())
                .bind(r.policy_version.clone());
        }
        query.execute(&mut *tx).await?;
        // One multi-row statement for the chunk's policy rows too: a
        // statement per row costs more than the rest of the indexing.
        let pairs: Vec<(&String, u64)> = chunk
            .iter()
            .flat_map(|(idx, r)| r.policies.iter().map(move |p| (p, *idx)))
            .collect();
        for part in pairs.chunks(per_insert * 4) {
            let mut sql = String::from("INSERT INTO audit_index_policies (policy, idx) VALUES ");
            for i in 0..part.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            }
            sql.push_str(" ON CONFLICT (policy, idx) DO NOTHING");
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (policy, idx) in part {
                query = query.bind((*policy).clone()).bind(to_i64(*idx));
            }
            query.execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Log indexes matching `filter`, ascending.
pub async fn query(pool: &AnyPool, filter: &Filter) -> Result<Vec<u64>, StoreError> {
    let mut sql = String::from("SELECT idx FROM audit_index WHERE 1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    // Only fixed fragments and numbered placeholders reach the SQL text.
    if filter.agent.is_some() {
        let (a, b) = (next(), next());
        sql.push_str(&format!(
            " AND (principal_agent = {a} OR resource_agent = {b})"
        ));
    }
    if filter.since_ms.is_some() {
        sql.push_str(&format!(" AND time_ms >= {}", next()));
    }
    if filter.until_ms.is_some() {
        sql.push_str(&format!(" AND time_ms < {}", next()));
    }
    if filter.decision.is_some() {
        sql.push_str(&format!(" AND decision = {}", next()));
    }
    if filter.policy.is_some() {
        sql.push_str(&format!(
            " AND idx IN (SELECT idx FROM audit_index_policies WHERE policy = {})",
            next()
        ));
    }
    if filter.after.is_some() {
        sql.push_str(&format!(" AND idx > {}", next()));
    }
    sql.push_str(if filter.newest {
        " ORDER BY idx DESC"
    } else {
        " ORDER BY idx ASC"
    });
    sql.push_str(&format!(" LIMIT {}", next()));
    let mut q = sqlx::query(AssertSqlSafe(sql));
    if let Some(agent) = &filter.agent {
        q = q.bind(agent.clone()).bind(agent.clone());
    }
    if let Some(v) = filter.since_ms {
        q = q.bind(v);
    }
    if let Some(v) = filter.until_ms {
        q = q.bind(v);
    }
    if let Some(v) = &filter.decision {
        q = q.bind(v.clone());
    }
    if let Some(v) = &filter.policy {
        q = q.bind(v.clone());
    }
    if let Some(v) = filter.after {
        q = q.bind(to_i64(v));
    }
    q = q.bind(to_i64(filter.limit));
    let rows = q.fetch_all(pool).await?;
    let mut out = rows
        .iter()
        .map(|r| {
            r.try_get::<i64, _>(0)
                .map(|v| u64::try_from(v).unwrap_or(0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    Ok(out)
}

/// The highest spool sequence of `proxy` already in the log.
pub async fn ingested_through(pool: &AnyPool, proxy: &str) -> Result<Option<u64>, StoreError> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT through_seq FROM audit_ingest WHERE proxy = $1")
            .bind(proxy.to_owned())
            .fetch_optional(pool)
            .await?;
    Ok(v.map(|v| u64::try_from(v).unwrap_or(0)))
}

/// Records that `proxy`'s records through `seq` are in the log.
pub async fn set_ingested(
    pool: &AnyPool,
    proxy: &str,
    seq: u64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_ingest (proxy, through_seq, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (proxy) DO UPDATE SET through_seq = excluded.through_seq, updated_at = excluded.updated_at \
         WHERE audit_ingest.through_seq < excluded.through_seq",
    )
    .bind(proxy.to_owned())
    .bind(to_i64(seq))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Keeps the index caught up with the log until `watch` signals.
pub fn follow(log: AuditLog, store: Store, watch: Watch) {
    tokio::spawn(async move {
        let shutdown = watch.signaled();
        tokio::pin!(shutdown);
        let mut size = log.size();
        let mut next: Option<u64> = None;
        loop {
            let target = *size.borrow_and_update();
            match catch_up(&log, &store, &mut next, target).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "audit index update failed; retrying");
                    next = None;
                    tokio::select! {
                        _ = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                changed = size.changed() => if changed.is_err() { return },
            }
        }
    });
}

/// Indexes one chunk towards `target`; `Ok(true)` when more remain.
async fn catch_up(
    log: &AuditLog,
    store: &Store,
    next: &mut Option<u64>,
    target: u64,
) -> Result<bool, String> {
    let from = match *next {
        Some(n) => n,
        None => indexed_below(store.pool())
            .await
            .map_err(|e| e.to_string())?,
    };
    if from >= target {
        *next = Some(from);
        return Ok(false);
    }
    let to = target.min(from + CHUNK);
    let reader = log.store().clone();
    let entries =
        tokio::task::spawn_blocking(move || AuditLog::entries(&*reader, from, to, target))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    insert(store.pool(), &entries)
        .await
        .map_err(|e| e.to_string())?;
    *next = Some(to);
    Ok(to < target)
}

/// `allow` or `deny`.
pub fn decision_text(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
    }
}

/// The agent a resource belongs to: `Agent::"a"` → `a`, `Tool::"a/t"` → `a`.
pub fn resource_agent(resource: &str) -> Option<String> {
    let inner = resource
        .strip_prefix("Agent::\"")
        .or_else(|| resource.strip_prefix("Tool::\""))?
        .strip_suffix('"')?;
    let agent = inner.split('/').next().unwrap_or(inner);
    (!agent.is_empty()).then(|| agent.to_owned())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn resources_name_their_agent() {
        assert_eq!(resource_agent(r#"Agent::"billing""#).unwrap(), "billing");
        assert_eq!(resource_agent(r#"Tool::"files/delete""#).unwrap(), "files");
        assert_eq!(resource_agent(r#"Server::"ward""#), None);
        assert_eq!(resource_agent(r#"Agent::"""#), None);
    }
}
