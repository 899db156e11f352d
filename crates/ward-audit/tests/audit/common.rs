//! Shared fixtures: a fixed key, realistic entries, and logs with a
//! checkpoint after every batch.

use std::time::Instant;

use ward_audit::record::{BodyDigest, TraceId, UnixMillis};
use ward_audit::{
    AuditRecord, Decision, KeyName, Log, NoteSigner, Origin, RequestDigest, SignedCheckpoint,
    TileStore,
};

pub const ORIGIN: &str = "example.com/ward-audit-test";

pub fn origin() -> Origin {
    Origin::new(ORIGIN).unwrap()
}

pub fn signer() -> NoteSigner {
    signer_from_seed(&[5; 32])
}

pub fn signer_from_seed(seed: &[u8; 32]) -> NoteSigner {
    NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), seed).unwrap()
}

/// The `i`-th entry: an encoded audit record of about 300 bytes; `variant`
/// changes its content for building forks.
pub fn entry(i: u64, variant: u8) -> Vec<u8> {
    let trace = format!("{:016x}{:016x}", i + 1, u64::from(variant));
    AuditRecord {
        time: UnixMillis::new(1_735_689_600_000 + i).unwrap(),
        decision_id: format!("decision-{i:012}-{variant}"),
        proxy_id: "proxy-b".to_owned(),
        principal: Some(ward_core::SpiffeId::new("spiffe://example.org/agent/a").unwrap()),
        action: "tools/call".to_owned(),
        resource: "Tool::\"b/search\"".to_owned(),
        decision: if i.is_multiple_of(3) {
            Decision::Deny
        } else {
            Decision::Allow
        },
        policies: vec!["allow-search".to_owned()],
        reasons: vec!["agent a may search".to_owned()],
        policy_version: "v7".to_owned(),
        trace_id: Some(trace.parse::<TraceId>().unwrap()),
        peer_cert_serial: Some("1f2e3d4c5b6a".parse().unwrap()),
        request: RequestDigest {
            method: "POST".to_owned(),
            path: "/mcp".to_owned(),
            body_sha256: BodyDigest::of(&i.to_le_bytes()),
        },
        rpc: None,
    }
    .encode()
    .unwrap()
}

/// Appends batches of the given sizes (entries `entry(i, variant)`) and
/// signs a checkpoint after each; returns the checkpoints.
pub fn fill<S: TileStore>(log: &mut Log<S>, batches: &[u64], variant: u8) -> Vec<SignedCheckpoint> {
    let mut checkpoints = Vec::new();
    for &n in batches {
        let start = log.size().get();
        let entries: Vec<Vec<u8>> = (start..start + n).map(|i| entry(i, variant)).collect();
        log.append(&entries).unwrap();
        checkpoints.push(log.checkpoint(Instant::now()).unwrap().unwrap());
    }
    checkpoints
}

pub fn notes(checkpoints: &[SignedCheckpoint]) -> Vec<Vec<u8>> {
    checkpoints
        .iter()
        .map(|c| c.note().as_bytes().to_vec())
        .collect()
}
