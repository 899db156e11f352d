//! `/v1/audit/…`: proxies ship decision records in, auditors read the log
//! out.
//!
//! - `POST /v1/audit/records?first_seq=N` (agent SVIDs): a batch of encoded
//!   records, one per line, from the caller's spool starting at sequence N.
//!   Every record must decode strictly and name the caller as its proxy — a
//!   proxy cannot write records in another's name. The answer comes after
//!   the batch is durably in the tree; the proxy deletes it only then.
//! - `GET /v1/audit` (admins, `audit/read`): origin, verifier key, size and
//!   the latest checkpoint.
//! - `GET /v1/audit/log/<tlog-tiles path>`: the checkpoint, hash tiles and
//!   entry bundles, read-only, at the C2SP tlog-tiles paths, so
//!   `ward audit verify --server` (or any tlog client) can mirror them.
//! - `GET /v1/audit/records?agent=&since=&until=&decision=&policy=&decision_id=&after=&last=&limit=`:
//!   records from the query index, read back from the log (`decision_id`
//!   finds the record of the id a caller got with its answer).
//! - `GET /v1/audit/proof/{index}?size=S`: an inclusion proof.
//! - `GET /v1/audit/consistency?from=A&to=B`: a consistency proof.
//!
//! Refused ingestion is itself appended to the log as a denial decided by
//! the server, so an attempt to forge records leaves evidence.

use std::time::SystemTime;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ward_audit::record::{BodyDigest, Decision, RequestDigest, UnixMillis};
use ward_audit::{AuditRecord, LeafIndex, LogPath, TileNodes, TreeSize};
use ward_identity::PeerIdentity;

use super::{ApiError, AppState, Caller, require_admin};
use crate::audit::index::{self, Filter};
use crate::audit::{AuditError, AuditLog, chain};

/// Most records one shipped batch may hold.
pub const MAX_BATCH_RECORDS: usize = 10_000;
/// Largest shipped batch body. Above axum's 2 MB default: each append costs
/// the log a set of tile files, fsyncs and an index transaction whatever its
/// size, so under load proxies ship a few large batches, not many small
/// ones (`ward_proxy::ship`).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Most records one query returns.
const MAX_QUERY: u64 = 1000;

/// Ingestion query.
#[derive(Debug, Deserialize)]
pub(crate) struct IngestQuery {
    first_seq: u64,
}

/// Ingestion answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ingested {
    /// Every record of the caller's spool through this sequence is in the
    /// log; the proxy may delete them.
    pub through_seq: u64,
    /// Records appended by this call (re-sent ones are skipped).
    pub appended: u64,
    /// Index of the first appended record.
    pub first_index: u64,
    /// Tree size after the append.
    pub tree_size: u64,
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Busy | AuditError::Stopped => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `POST /v1/audit/records`.
pub(crate) async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<IngestQuery>,
    body: Body,
) -> Result<Json<Ingested>, ApiError> {
    let peer = caller.0.as_ref().ok_or(ApiError::Unauthenticated)?;
    let Some(agent) = peer.spiffe_id.agent_name() else {
        return refuse(
            &state,
            peer,
            "only a proxy's agent SVID may ship audit records",
        )
        .await;
    };
    if state.store.is_revoked(&agent, peer.serial.as_str()).await? {
        return refuse(&state, peer, "the shipping proxy's credential is revoked").await;
    }
    let body = read_batch(&state, peer, body).await?;
    let proxy = peer.spiffe_id.to_string();
    let mut records = Vec::new();
    for (line, bytes) in body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if records.len() >= MAX_BATCH_RECORDS {
            let reason =
                format!("a batch holds at most {MAX_BATCH_RECORDS} records; ship smaller batches");
            audit_refusal(&state, peer, "audit/ingest", &reason).await;
            return Err(ApiError::BadRequest(reason));
        }
        let record = match AuditRecord::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("record {} of the batch is invalid: {e}", line + 1);
                return refuse_invalid(&state, peer, reason).await;
            }
        };
        if record.proxy_id != proxy {
            let reason = format!(
                "record {} names proxy {:?} but the batch comes from {proxy}; a proxy ships only its own records",
                line + 1,
                record.proxy_id
            );
            return refuse(&state, peer, &reason).await;
        }
        records.push(bytes.to_vec());
    }
    let count = records.len() as u64;
    let Some(last_seq) = (count > 0).then(|| q.first_seq.saturating_add(count - 1)) else {
        let size = *state.audit.size().borrow();
        return Ok(Json(Ingested {
            through_seq: q.first_seq.saturating_sub(1),
            appended: 0,
            first_index: size,
            tree_size: size,
        }));
    };
    // Skip what an earlier, unacknowledged delivery already logged.
    let done = index::ingested_through(state.store.pool(), &proxy).await?;
    let skip = match done {
        Some(d) if d >= q.first_seq => usize::try_from(d - q.first_seq + 1).unwrap_or(usize::MAX),
        _ => 0,
    };
    let fresh: Vec<Vec<u8>> = records.into_iter().skip(skip).collect();
    let fresh_seq = q.first_seq.saturating_add(skip as u64);
    let appended = state.audit.ingest(&proxy, fresh_seq, fresh).await?;
    index::set_ingested(
        state.store.pool(),
        &proxy,
        last_seq,
        state.now().unix_timestamp(),
    )
    .await?;
    Ok(Json(Ingested {
        through_seq: last_seq,
        appended: appended.count,
        first_index: appended.first_index,
        tree_size: appended.tree_size,
    }))
}

/// Reads an authenticated caller's batch under [`MAX_BATCH_BYTES`]. Read
/// here rather than by axum's body-limit extractor, which answers 413 before
/// the handler runs: an oversized batch from a proxy is refused and logged
/// like the handler's other refusals, and nothing of it is appended.
async fn read_batch(state: &AppState, peer: &PeerIdentity, body: Body) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, MAX_BATCH_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let reason =
                format!("the batch is larger than {MAX_BATCH_BYTES} bytes; ship smaller batches");
            audit_refusal(state, peer, "audit/ingest", &reason).await;
            Err(ApiError::TooLarge(reason))
        }
        // The connection failed mid-body: nothing was refused, so nothing
        // to log; the proxy re-sends.
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the batch body: {e}"
        ))),
    }
}

async fn refuse<T>(state: &AppState, peer: &PeerIdentity, reason: &str) -> Result<T, ApiError> {
    audit_refusal(state, peer, "audit/ingest", reason).await;
    Err(ApiError::Forbidden(reason.to_owned()))
}

async fn refuse_invalid<T>(
    state: &AppState,
    peer: &PeerIdentity,
    reason: String,
) -> Result<T, ApiError> {
    audit_refusal(state, peer, "audit/ingest", &reason).await;
    Err(ApiError::Invalid(reason))
}

/// Appends a denial decided by the server itself (a refused admin call or
/// ingestion). Best effort: the refusal stands whether or not it is logged,
/// and a failure to log it is logged.
pub(crate) async fn audit_refusal(
    state: &AppState,
    peer: &PeerIdentity,
    action: &str,
    reason: &str,
) {
    let record = server_record(state, Some(peer), action, reason);
    let result = match record.and_then(|r| r.encode().map_err(|e| e.to_string())) {
        Ok(bytes) => state
            .audit
            .append(vec![bytes])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, %action, "could not audit a refusal");
    }
}

fn server_record(
    state: &AppState,
    peer: Option<&PeerIdentity>,
    action: &str,
    reason: &str,
) -> Result<AuditRecord, String> {
    let time = UnixMillis::from_system_time(SystemTime::now()).map_err(|e| e.to_string())?;
    Ok(AuditRecord {
        time,
        decision_id: crate::policy::decision_id(),
        proxy_id: state.server_id.to_string(),
        principal: peer.map(|p| p.spiffe_id.clone()),
        action: action.to_owned(),
        resource: "Server::\"ward\"".to_owned(),
        decision: Decision::Deny,
        policies: Vec::new(),
        reasons: vec![reason.to_owned()],
        policy_version: "ward-server".to_owned(),
        trace_id: None,
        peer_cert_serial: peer.and_then(|p| {
            crate::api::audit::unhex(p.serial.as_str())
                .and_then(|b| ward_audit::record::CertSerial::new(&b).ok())
        }),
        request: RequestDigest {
            body_sha256: BodyDigest::of(b""),
            method: "ADMIN".to_owned(),
            path: action.to_owned(),
        },
        rpc: None,
    })
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// `GET /v1/audit`.
pub(crate) async fn info(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &caller, "audit/read", None).await?;
    let checkpoint = state
        .audit
        .read(LogPath::Checkpoint)
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(Json(json!({
        "origin": state.audit.origin().as_str(),
        "verifier_key": state.audit.verifier().to_string(),
        "size": *state.audit.size().borrow(),
        "checkpoint": checkpoint,
        "tiles": "/v1/audit/log/",
    })))
}

/// `GET /v1/audit/log/{*path}`.
pub(crate) async fn tile(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&state, &caller, "audit/read", None).await?;
    let parsed = LogPath::parse_public(&path).map_err(|e| ApiError::NotFound(e.to_string()))?;
    let Some(bytes) = state.audit.read(parsed).await? else {
        return Err(ApiError::NotFound(format!(
            "{path} is not in the log (yet)"
        )));
    };
    // Full tiles and bundles never change; the checkpoint and partial
    // resources do (tlog-tiles caching rules).
    let immutable = match parsed {
        LogPath::Tile(t) => t.width().is_full(),
        LogPath::Bundle(b) => b.width().is_full(),
        LogPath::Checkpoint | LogPath::TreeState => false,
    };
    let content_type = if parsed == LogPath::Checkpoint {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let cache = if immutable {
        "private, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}

/// Longest `decision_id` a records query takes.
const MAX_DECISION_ID: usize = 128;

/// Query of `GET /v1/audit/records`.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordsQuery {
    agent: Option<String>,
    /// Unix millis.
    since: Option<i64>,
    /// Unix millis.
    until: Option<i64>,
    decision: Option<String>,
    policy: Option<String>,
    decision_id: Option<String>,
    after: Option<u64>,
    /// The newest N instead of the oldest.
    last: Option<u64>,
    limit: Option<u64>,
}

/// `GET /v1/audit/records`.
pub(crate) async fn records(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RecordsQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &caller, "audit/read", None).await?;
    if let Some(d) = &q.decision
        && d != "allow"
        && d != "deny"
    {
        return Err(ApiError::BadRequest(format!(
            "decision must be allow or deny, not {d:?}"
        )));
    }
    let decision_id = match q.decision_id.as_deref().map(str::trim) {
        None => None,
        Some(id) if id.is_empty() || id.len() > MAX_DECISION_ID => {
            return Err(ApiError::BadRequest(format!(
                "decision_id must be 1 to {MAX_DECISION_ID} characters (Ward's are 32 hex digits), not {} characters",
                id.len()
            )));
        }
        // Ward writes ids in lower case; a pasted upper-case one is the same id.
        Some(id) if id.bytes().all(|b| b.is_ascii_hexdigit()) => Some(id.to_ascii_lowercase()),
        Some(id) => Some(id.to_owned()),
    };
    let limit = q.last.or(q.limit).unwrap_or(100).clamp(1, MAX_QUERY);
    let filter = Filter {
        agent: q.agent,
        since_ms: q.since,
        until_ms: q.until,
        decision: q.decision,
        policy: q.policy,
        decision_id,
        after: q.after,
        newest: q.last.is_some(),
        limit,
    };
    let indexes = index::query(state.store.pool(), &filter).await?;
    let size = *state.audit.size().borrow();
    let indexed = index::indexed_below(state.store.pool()).await?;
    let reader = state.audit.store().clone();
    let wanted = indexes.clone();
    let entries =
        tokio::task::spawn_blocking(move || -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
            let mut out = Vec::with_capacity(wanted.len());
            let mut iter = wanted.iter().peekable();
            while let Some(&first) = iter.next() {
                // Read each bundle once for the indexes that fall in it.
                let end = (first / 256 + 1) * 256;
                let mut last = first;
                while let Some(&&n) = iter.peek() {
                    if n >= end {
                        break;
                    }
                    last = n;
                    iter.next();
                }
                for (i, e) in AuditLog::entries(&*reader, first, last + 1, size)? {
                    if wanted.binary_search(&i).is_ok() {
                        out.push((i, e));
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut out = Vec::with_capacity(entries.len());
    for (i, bytes) in entries {
        let record: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Internal(format!("entry {i}: {e}")))?;
        out.push(json!({ "index": i, "record": record }));
    }
    Ok(Json(json!({
        "records": out,
        "tree_size": size,
        "indexed_below": indexed,
        "next_after": indexes.last(),
    })))
}

/// Query of the proof endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct ProofQuery {
    size: Option<u64>,
}

/// `GET /v1/audit/proof/{index}`.
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    caller: Caller,
    Path(index): Path<u64>,
    Query(q): Query<ProofQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &caller, "audit/read", None).await?;
    let size = q.size.unwrap_or(*state.audit.size().borrow());
    if index >= size {
        return Err(ApiError::NotFound(format!(
            "entry {index} is not in the tree of size {size}"
        )));
    }
    if size > *state.audit.size().borrow() {
        return Err(ApiError::BadRequest(format!(
            "size {size} is beyond the log's size {}",
            *state.audit.size().borrow()
        )));
    }
    let reader = state.audit.store().clone();
    let (proof, entry) = tokio::task::spawn_blocking(move || {
        let nodes = TileNodes::new(&*reader, TreeSize::new(size));
        let proof =
            ward_audit::tree::inclusion_proof(&nodes, LeafIndex::new(index), TreeSize::new(size))
                .map_err(|e| AuditError::Read(chain(&e)))?;
        let entry = AuditLog::entries(&*reader, index, index + 1, size)?;
        Ok::<_, AuditError>((proof, entry))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let entry = entry
        .into_iter()
        .next()
        .map(|(_, e)| String::from_utf8_lossy(&e).into_owned());
    Ok(Json(json!({
        "index": index,
        "size": size,
        "hashes": proof.path().iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
        "entry": entry,
    })))
}

/// Query of `GET /v1/audit/consistency`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

/// `GET /v1/audit/consistency`.
pub(crate) async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &caller, "audit/read", None).await?;
    let current = *state.audit.size().borrow();
    let to = q.to.unwrap_or(current);
    if q.from > to || to > current {
        return Err(ApiError::BadRequest(format!(
            "need from <= to <= {current} (the log's size); got from {} to {to}",
            q.from
        )));
    }
    let reader = state.audit.store().clone();
    let from = q.from;
    let proof = tokio::task::spawn_blocking(move || {
        let nodes = TileNodes::new(&*reader, TreeSize::new(to));
        ward_audit::tree::consistency_proof(&nodes, TreeSize::new(from), TreeSize::new(to))
            .map_err(|e| AuditError::Read(chain(&e)))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(json!({
        "from": from,
        "to": to,
        "hashes": proof.path().iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
    })))
}
