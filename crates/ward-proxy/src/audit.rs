//! Every decision, allow and deny, becomes an [`AuditRecord`] in the local
//! spool before the request goes anywhere (DESIGN.md §4.4): the spool's
//! group commit makes it durable, and only then is the request forwarded or
//! the denial sent. [`crate::ship`] sends the spool to the server's log and
//! deletes records only once the server acknowledges them; while the server
//! is unreachable they wait in the spool, which is bounded — and a full
//! spool fails closed unless configured otherwise.

use std::time::SystemTime;

use ward_audit::record::{
    AuditRecord, BodyDigest, CertSerial, Decision, RequestDigest, TraceId, UnixMillis,
};
use ward_audit::{GroupCommit, SpoolError, SpoolOptions};
use ward_core::SpiffeId;

use crate::ProxyError;

/// Resolves once a queued record is durable (its sequence) or failed.
type Durable = tokio::sync::oneshot::Receiver<Result<u64, SpoolError>>;

/// The proxy's handle on its spool.
#[derive(Debug, Clone)]
pub struct AuditSink {
    spool: GroupCommit,
    proxy_id: String,
}

/// What one decision is about, gathered along the request path.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The decision id (also in headers and deny bodies).
    pub decision_id: String,
    /// The authenticated caller.
    pub principal: Option<SpiffeId>,
    /// Cedar action.
    pub action: String,
    /// Cedar resource.
    pub resource: String,
    /// Determining policies.
    pub policies: Vec<String>,
    /// Reasons.
    pub reasons: Vec<String>,
    /// Policy version, or `none`.
    pub policy_version: String,
    /// W3C trace id.
    pub trace_id: Option<[u8; 16]>,
    /// Peer certificate serial, hex.
    pub serial: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path without the query (queries can carry secrets).
    pub path: String,
    /// SHA-256 of the request body (`None`: no body was read).
    pub body: Option<BodyDigest>,
    /// The JSON-RPC call decided (MCP, A2A).
    pub rpc: Option<ward_audit::RpcCall>,
}

impl AuditSink {
    /// Opens the spool in `dir`.
    pub fn open(
        dir: &std::path::Path,
        max_bytes: u64,
        proxy_id: String,
    ) -> Result<Self, ProxyError> {
        let defaults = SpoolOptions::default();
        let opts = SpoolOptions {
            max_bytes: max_bytes.max(defaults.segment_bytes),
            ..defaults
        };
        let spool = GroupCommit::open(dir, opts)
            .map_err(|e| ProxyError::State(format!("audit spool: {e}")))?;
        Ok(Self { spool, proxy_id })
    }

    /// Records are waiting to be shipped.
    pub fn backlog(&self) -> u64 {
        self.spool.stats().map(|s| s.pending_records).unwrap_or(0)
    }

    /// Writes the record for `facts` and waits until it is durable; the
    /// error says why it is not.
    pub async fn write(&self, facts: &Facts, allowed: bool) -> Result<u64, String> {
        Self::durable(self.queue(facts, allowed)).await
    }

    /// Writes the records of several decisions and waits until all are
    /// durable: queued together, they share the spool's group commits
    /// instead of waiting for one each in turn (an AuthZEN batch, a
    /// JSON-RPC batch). One outcome per decision, in order.
    pub async fn write_all<'a>(
        &self,
        decisions: impl IntoIterator<Item = (&'a Facts, bool)>,
    ) -> Vec<Result<u64, String>> {
        let queued: Vec<_> = decisions
            .into_iter()
            .map(|(facts, allowed)| self.queue(facts, allowed))
            .collect();
        let mut outcomes = Vec::with_capacity(queued.len());
        for q in queued {
            outcomes.push(Self::durable(q).await);
        }
        outcomes
    }

    /// Hands the record for `facts` to the spool's writer.
    fn queue(&self, facts: &Facts, allowed: bool) -> Result<Durable, String> {
        let bytes = self
            .record(facts, allowed)?
            .encode()
            .map_err(|e| format!("audit record: {e}"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spool.append_then(bytes, move |outcome| {
            let _ = tx.send(outcome);
        });
        Ok(rx)
    }

    async fn durable(queued: Result<Durable, String>) -> Result<u64, String> {
        queued?
            .await
            .map_err(|_| SpoolError::Closed.to_string())?
            .map_err(|e| e.to_string())
    }

    fn record(&self, f: &Facts, allowed: bool) -> Result<AuditRecord, String> {
        let time = UnixMillis::from_system_time(SystemTime::now())
            .map_err(|e| format!("audit record time: {e}"))?;
        Ok(AuditRecord {
            time,
            decision_id: f.decision_id.clone(),
            proxy_id: self.proxy_id.clone(),
            principal: f.principal.clone(),
            action: f.action.clone(),
            resource: f.resource.clone(),
            decision: if allowed {
                Decision::Allow
            } else {
                Decision::Deny
            },
            policies: f.policies.clone(),
            reasons: f.reasons.clone(),
            policy_version: f.policy_version.clone(),
            trace_id: f.trace_id.and_then(|t| TraceId::new(t).ok()),
            peer_cert_serial: f
                .serial
                .as_deref()
                .and_then(crate::http::unhex)
                .and_then(|b| CertSerial::new(&b).ok()),
            request: RequestDigest {
                body_sha256: f.body.unwrap_or_else(|| BodyDigest::of(b"")),
                method: f.method.clone(),
                path: f.path.clone(),
            },
            rpc: f.rpc.clone(),
        })
    }

    /// Commits what is queued and stops the spool writer.
    pub fn close(&self) {
        self.spool.close();
    }
}

impl AuditSink {
    /// The next batch to ship: up to `max_records` unacknowledged records
    /// (at most `max_bytes`, but at least one).
    pub fn next_batch(
        &self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ward_audit::Batch, SpoolError> {
        self.spool.read_batch(0, max_records, max_bytes)
    }

    /// The server sequenced everything through `seq`: delete it locally.
    pub fn ack(&self, seq: u64) -> Result<(), SpoolError> {
        self.spool.ack(seq)
    }

    /// Up to `max` records from sequence `from` that the server has not yet
    /// acknowledged (for `ward audit tail` on a proxy, and tests).
    pub fn pending(&self, from: u64, max: usize) -> Result<Vec<AuditRecord>, String> {
        let batch = self
            .spool
            .read_batch(from, max, usize::MAX)
            .map_err(|e| e.to_string())?;
        batch
            .records()
            .iter()
            .map(|r| AuditRecord::decode(r).map_err(|e| e.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(id: &str, path: String) -> Facts {
        Facts {
            decision_id: id.to_owned(),
            action: "Action::\"GET\"".to_owned(),
            resource: "Agent::\"tools\"".to_owned(),
            policy_version: "none".to_owned(),
            method: "GET".to_owned(),
            path,
            ..Facts::default()
        }
    }

    #[tokio::test]
    async fn write_all_reports_each_decision_in_order_and_keeps_the_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let sink =
            AuditSink::open(dir.path(), 1 << 30, "spiffe://ward.test/agent/tools".into()).unwrap();
        let a = facts("a", "/a".into());
        // Larger than any spool record may be: refused, alone.
        let b = facts("b", "/".repeat(ward_audit::bundle::MAX_ENTRY_LEN + 1));
        let c = facts("c", "/c".into());
        let outcomes = sink.write_all([(&a, true), (&b, true), (&c, false)]).await;
        assert_eq!(outcomes.len(), 3);
        assert_eq!(outcomes[0], Ok(0));
        assert!(outcomes[1].is_err(), "{outcomes:?}");
        assert_eq!(outcomes[2], Ok(1));
        let spooled = sink.pending(0, 10).unwrap();
        let got: Vec<(&str, Decision)> = spooled
            .iter()
            .map(|r| (r.decision_id.as_str(), r.decision))
            .collect();
        assert_eq!(got, [("a", Decision::Allow), ("c", Decision::Deny)]);
        assert!(sink.write_all([]).await.is_empty());
        sink.close();
    }
}
