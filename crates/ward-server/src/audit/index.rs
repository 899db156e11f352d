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
/// Rows per multi-row INSERT (11 binds each: 2,816 at most, far below
/// PostgreSQL's 65,535 and SQLite's 32,766).
const ROWS_PER_INSERT: usize = 256;

/// The SQL text of bind parameter `n` (1-based). PostgreSQL needs `$N`.
/// SQLite gets anonymous `?`: sqlx binds each parameter by asking SQLite
/// its name, and for a named one (`$N`) SQLite scans the statement's
/// parameter list, so binding a multi-row INSERT was quadratic in its
/// parameters (at 256 rows, half the server's CPU while proxies shipped
/// under load). An anonymous parameter has no name to look up, and sqlx
/// takes it as the next argument in order, which is how they are bound.
fn param(sqlite: bool, n: usize) -> String {
    if sqlite {
        "?".to_owned()
    } else {
        format!("${n}")
    }
}

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
    /// One decision id. A time-ordered id (see [`ward_audit::decision_id`])
    /// is looked for only among the records written from
    /// [`ID_WINDOW_BEFORE_MS`] before its time to [`ID_WINDOW_AFTER_MS`]
    /// after it, through the time index; any other id means a full scan.
    pub decision_id: Option<String>,
    /// Only indexes above this one (paging forward).
    pub after: Option<u64>,
    /// The newest `limit` matches instead of the oldest.
    pub newest: bool,
    /// At most this many.
    pub limit: u64,
}

/// How long before the time in a decision id its record may be written:
/// the id and the record's time come from one clock, id first, so only a
/// clock stepped back between the two puts the record before its id.
pub const ID_WINDOW_BEFORE_MS: i64 = 60_000;
/// How long after the time in a decision id its record may be written: a
/// record is built right after its decision, but a decision that waited on
/// a slow request body or a full spool comes later.
pub const ID_WINDOW_AFTER_MS: i64 = 600_000;

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
        // Entries come from the log, which took them only strictly decoded.
        match AuditRecord::decode_logged(bytes) {
            Ok(record) => rows.push((*idx, record)),
            Err(e) => tracing::warn!(index = idx, error = %e, "audit entry not indexed"),
        }
    }
    let mut tx = pool.begin().await?;
    let sqlite = tx.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
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
                sql.push_str(&param(sqlite, b + k));
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
        for part in pairs.chunks(ROWS_PER_INSERT * 4) {
            let mut sql = String::from("INSERT INTO audit_index_policies (policy, idx) VALUES ");
            for i in 0..part.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "({}, {})",
                    param(sqlite, 2 * i + 1),
                    param(sqlite, 2 * i + 2)
                ));
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
    let id_window = filter.decision_id.as_deref().and_then(|id| {
        let t = i64::try_from(ward_audit::decision_id::time_ms(id)?).ok()?;
        Some((
            t.saturating_sub(ID_WINDOW_BEFORE_MS),
            t.saturating_add(ID_WINDOW_AFTER_MS),
        ))
    });
    if filter.decision_id.is_some() {
        sql.push_str(&format!(" AND decision_id = {}", next()));
        if id_window.is_some() {
            let (a, b) = (next(), next());
            sql.push_str(&format!(" AND time_ms >= {a} AND time_ms < {b}"));
        }
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
    if let Some(v) = &filter.decision_id {
        q = q.bind(v.clone());
        if let Some((from, to)) = id_window {
            q = q.bind(from).bind(to);
        }
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
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use ward_audit::record::{BodyDigest, RequestDigest, UnixMillis};
    use ward_core::SpiffeId;

    use super::*;

    /// Entries indexed by the round-trip test: more than two multi-row
    /// INSERTs' worth, so chunk boundaries and the last partial chunk are
    /// covered.
    const N: u64 = 2 * ROWS_PER_INSERT as u64 + 37;

    /// Record `i`: caller `a{i % 3}` calls `t{i % 2}`; odd ones are denied
    /// by two policies, even ones allowed by one; one record without a
    /// principal (the server's own refusals have none).
    fn record(i: u64) -> AuditRecord {
        let deny = i % 2 == 1;
        AuditRecord {
            time: UnixMillis::new(1_800_000_000_000 + i * 10).unwrap(),
            decision_id: format!("d{i}"),
            proxy_id: format!("spiffe://t.test/agent/t{}", i % 2),
            principal: (i != 5)
                .then(|| SpiffeId::new(&format!("spiffe://t.test/agent/a{}", i % 3)).unwrap()),
            action: "Action::\"GET\"".to_owned(),
            resource: format!("Agent::\"t{}\"", i % 2),
            decision: if deny {
                Decision::Deny
            } else {
                Decision::Allow
            },
            policies: if deny {
                vec!["deny-a".to_owned(), format!("deny-{}", i % 5)]
            } else {
                vec!["allow-all".to_owned()]
            },
            reasons: vec![],
            policy_version: "v1".to_owned(),
            trace_id: None,
            peer_cert_serial: None,
            request: RequestDigest {
                body_sha256: BodyDigest::of(b""),
                method: "GET".to_owned(),
                path: "/".to_owned(),
            },
            rpc: None,
        }
    }

    fn expected(keep: impl Fn(u64) -> bool) -> Vec<u64> {
        (0..N).filter(|&i| keep(i)).collect()
    }

    async fn insert_and_query(store: Store) {
        let pool = store.pool();
        let entries: Vec<(u64, Vec<u8>)> =
            (0..N).map(|i| (i, record(i).encode().unwrap())).collect();
        // Two batches, the second overlapping the first (a re-index after
        // a crash), plus an entry that does not decode, which is skipped.
        insert(pool, &entries[..300]).await.unwrap();
        let mut rest = entries[200..].to_vec();
        rest.push((N, b"{\"v\":99}".to_vec()));
        insert(pool, &rest).await.unwrap();
        assert_eq!(indexed_below(pool).await.unwrap(), N);

        let all = |f: Filter| Filter { limit: 10_000, ..f };
        let q = |f: Filter| async move { query(pool, &all(f)).await.unwrap() };
        assert_eq!(q(Filter::default()).await, expected(|_| true));
        let deny = q(Filter {
            decision: Some("deny".to_owned()),
            ..Filter::default()
        });
        assert_eq!(deny.await, expected(|i| i % 2 == 1));
        let by_policy = q(Filter {
            policy: Some("deny-3".to_owned()),
            ..Filter::default()
        });
        assert_eq!(by_policy.await, expected(|i| i % 2 == 1 && i % 5 == 3));
        // An agent matches as caller or as target.
        let a2 = q(Filter {
            agent: Some("a2".to_owned()),
            ..Filter::default()
        });
        assert_eq!(a2.await, expected(|i| i % 3 == 2 && i != 5));
        let t0 = q(Filter {
            agent: Some("t0".to_owned()),
            ..Filter::default()
        });
        assert_eq!(t0.await, expected(|i| i % 2 == 0));
        let window = q(Filter {
            since_ms: Some(1_800_000_000_000 + 1000),
            until_ms: Some(1_800_000_000_000 + 2000),
            ..Filter::default()
        });
        assert_eq!(window.await, expected(|i| (100..200).contains(&i)));
        let page = query(
            pool,
            &Filter {
                after: Some(500),
                limit: 5,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(page, vec![501, 502, 503, 504, 505]);
        let newest = query(
            pool,
            &Filter {
                newest: true,
                decision: Some("allow".to_owned()),
                limit: 3,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
        let allowed = expected(|i| i % 2 == 0);
        assert_eq!(newest, allowed[allowed.len() - 3..]);
    }

    /// A time-ordered decision id is looked up among the records written
    /// around its time, an id of another kind by a scan.
    async fn find_by_decision_id(store: Store) {
        let pool = store.pool();
        let at = 1_800_000_000_000u64;
        let id = |ms: u64, r: u8| ward_audit::decision_id::new(ms, [r; 10]);
        let with = |i: u64, decision_id: String, record_ms: u64| {
            let mut r = record(i);
            r.decision_id = decision_id;
            r.time = UnixMillis::new(record_ms).unwrap();
            (i, r.encode().unwrap())
        };
        let in_window = [
            // Written 2 s after the id was made (the usual case).
            with(0, id(at, 1), at + 2_000),
            // A clock stepped back 30 s between the id and the record.
            with(1, id(at, 2), at - 30_000),
            // A decision that waited 9 minutes (a very slow body).
            with(2, id(at, 3), at + 540_000),
        ];
        let outside = [
            // Later than the window: not found (the window is the design).
            with(3, id(at, 4), at + ID_WINDOW_AFTER_MS as u64 + 1),
            with(4, id(at, 5), at - ID_WINDOW_BEFORE_MS as u64 - 1),
        ];
        let legacy = with(5, "3f2a9c1e5b7d4e0fa1b2c3d4e5f60718".to_owned(), at + 7);
        let mut all = in_window.to_vec();
        all.extend(outside.iter().cloned());
        all.push(legacy.clone());
        insert(pool, &all).await.unwrap();
        let find = |decision_id: String| async move {
            query(
                pool,
                &Filter {
                    decision_id: Some(decision_id),
                    limit: 10,
                    ..Filter::default()
                },
            )
            .await
            .unwrap()
        };
        for (i, r) in [(0, 1), (1, 2), (2, 3)] {
            assert_eq!(find(id(at, r)).await, [i], "record {i}");
        }
        assert_eq!(find(id(at, 4)).await, Vec::<u64>::new());
        assert_eq!(find(id(at, 5)).await, Vec::<u64>::new());
        assert_eq!(
            find("3f2a9c1e5b7d4e0fa1b2c3d4e5f60718".to_owned()).await,
            [5]
        );
        // Another id of the same millisecond, and a prefix: nothing.
        assert_eq!(find(id(at, 6)).await, Vec::<u64>::new());
        assert_eq!(find(id(at, 1)[..31].to_owned()).await, Vec::<u64>::new());
        // Combined with other filters, as AND.
        let denied = query(
            pool,
            &Filter {
                decision_id: Some(id(at, 2)),
                decision: Some("allow".to_owned()),
                limit: 10,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(denied, Vec::<u64>::new(), "record 1 is a deny");
    }

    #[tokio::test]
    async fn decision_ids_are_found_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ward.db").display());
        find_by_decision_id(Store::open(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn decision_ids_are_found_on_postgres() {
        let Some(url) = ward_testkit::postgres_url().await else {
            return;
        };
        find_by_decision_id(Store::open(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn entries_index_and_query_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ward.db").display());
        insert_and_query(Store::open(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn entries_index_and_query_on_postgres() {
        let Some(url) = ward_testkit::postgres_url().await else {
            return;
        };
        insert_and_query(Store::open(&url).await.unwrap()).await;
    }

    #[test]
    fn resources_name_their_agent() {
        assert_eq!(resource_agent(r#"Agent::"billing""#).unwrap(), "billing");
        assert_eq!(resource_agent(r#"Tool::"files/delete""#).unwrap(), "files");
        assert_eq!(resource_agent(r#"Server::"ward""#), None);
        assert_eq!(resource_agent(r#"Agent::"""#), None);
    }
}
