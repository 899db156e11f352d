//! Audit log benchmarks: append throughput (memory and filesystem, batches
//! of 1,000 entries of 300 bytes), proof generation and verification on a
//! 1,000,000-entry log, offline verification of that whole log, and the
//! audit record's canonical encode and strict decode (which the server runs
//! on every record it ingests).
//!
//! Run with `cargo bench -p ward-audit`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmarks"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ward_audit::record::{BodyDigest, UnixMillis};
use ward_audit::{
    AuditRecord, Decision, FsStore, KeyName, LeafIndex, Log, MemoryStore, NoteSigner, Origin,
    RequestDigest, RpcCall, TileStore, TreeSize, leaf_hash, verify_log,
};
use ward_core::SpiffeId;

const ORIGIN: &str = "bench.example/ward";
const BATCH: u64 = 1_000;
const ENTRY_LEN: usize = 300;
const BIG: u64 = 1_000_000;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), &[8; 32]).unwrap()
}

fn origin() -> Origin {
    Origin::new(ORIGIN).unwrap()
}

/// A 300-byte entry whose bytes depend on its index.
fn entry(i: u64) -> Vec<u8> {
    let mut e = Vec::with_capacity(ENTRY_LEN);
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while e.len() < ENTRY_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        e.extend_from_slice(&x.to_le_bytes());
    }
    e.truncate(ENTRY_LEN);
    e
}

fn batch(start: u64) -> Vec<Vec<u8>> {
    (start..start + BATCH).map(entry).collect()
}

/// Appends `iters` batches to a fresh log and returns the time spent in `append`.
fn append_batches<S: TileStore>(store: S, iters: u64) -> Duration {
    let mut log = Log::open(store, origin(), signer()).unwrap();
    let mut spent = Duration::ZERO;
    for k in 0..iters {
        let entries = batch(k * BATCH);
        let t = Instant::now();
        black_box(log.append(&entries).unwrap());
        spent += t.elapsed();
    }
    spent
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("memory/batch_1000x300B", |b| {
        b.iter_custom(|iters| append_batches(MemoryStore::new(), iters));
    });
    g.bench_function("fs/batch_1000x300B", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            append_batches(FsStore::open(dir.path()).unwrap(), iters)
        });
    });
    g.finish();
}

/// A 1,000,000-entry log in memory with one checkpoint per 100 batches.
fn big_log() -> (Log<MemoryStore>, Vec<Vec<u8>>) {
    let mut log = Log::open(MemoryStore::new(), origin(), signer()).unwrap();
    let mut checkpoints = Vec::new();
    for k in 0..BIG / BATCH {
        log.append(&batch(k * BATCH)).unwrap();
        if (k + 1) % 100 == 0 {
            let cp = log.checkpoint(Instant::now()).unwrap().unwrap();
            checkpoints.push(cp.note().as_bytes().to_vec());
        }
    }
    (log, checkpoints)
}

fn proofs_and_verification(c: &mut Criterion) {
    let (log, checkpoints) = big_log();
    let size = TreeSize::new(BIG);
    let root = log.root();
    let mut g = c.benchmark_group("proof");
    let mut i = 0u64;
    g.bench_function("inclusion/generate_1M", |b| {
        b.iter(|| {
            i = (i + 7_919) % BIG;
            black_box(log.inclusion_proof(LeafIndex::new(i), size).unwrap())
        });
    });
    let index = LeafIndex::new(123_457);
    let proof = log.inclusion_proof(index, size).unwrap();
    let leaf = leaf_hash(&entry(index.get()));
    g.bench_function("inclusion/verify_1M", |b| {
        b.iter(|| proof.verify(black_box(&leaf), &root).unwrap());
    });
    let old = TreeSize::new(700_000);
    g.bench_function("consistency/generate_700k_to_1M", |b| {
        b.iter(|| black_box(log.consistency_proof(old, size).unwrap()));
    });
    let old_root = log.root_at(old).unwrap();
    let proof = log.consistency_proof(old, size).unwrap();
    g.bench_function("consistency/verify_700k_to_1M", |b| {
        b.iter(|| proof.verify(black_box(&old_root), &root).unwrap());
    });
    g.finish();

    let mut g = c.benchmark_group("offline_verify");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BIG));
    let verifier = signer().verifier().clone();
    g.bench_function("memory/1M_entries_10_checkpoints", |b| {
        b.iter(|| {
            let v = verify_log(log.store(), &checkpoints, &verifier, &origin()).unwrap();
            assert_eq!(v.size, size);
        });
    });
    g.finish();
}

/// A record as a proxy writes one for an allowed MCP call (schema v2 with
/// `rpc`), or for a plain HTTP call (v1) without it.
fn record(rpc: bool) -> AuditRecord {
    AuditRecord {
        time: UnixMillis::new(1_735_689_600_123).unwrap(),
        decision_id: "8d3c1f0a9b7e4d2c8a6f0e1d2c3b4a59".to_owned(),
        proxy_id: "spiffe://bench.test/agent/target".to_owned(),
        principal: Some(SpiffeId::new("spiffe://bench.test/agent/caller").unwrap()),
        action: "Action::\"tools/call\"".to_owned(),
        resource: "Agent::\"target\"".to_owned(),
        decision: Decision::Allow,
        policies: vec!["callers-may-call".to_owned()],
        reasons: vec!["callers may call the target".to_owned()],
        policy_version: "b1946ac92492d2347c6235b4d2611184b1946ac92492d2347c6235b4d2611184"
            .to_owned(),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap()),
        peer_cert_serial: Some("5a1f9c0e7d3b2a4c6e8f0a1b2c3d4e5f".parse().unwrap()),
        request: RequestDigest {
            method: "POST".to_owned(),
            path: "/mcp".to_owned(),
            body_sha256: BodyDigest::of(b"{}"),
        },
        rpc: rpc.then(|| RpcCall {
            args_sha256: BodyDigest::of(b"null"),
            method: "tools/call".to_owned(),
            protocol: "mcp".to_owned(),
            target: Some("search".to_owned()),
        }),
    }
}

fn records(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    for (name, rpc) in [("v1_http", false), ("v2_mcp", true)] {
        let rec = record(rpc);
        let bytes = rec.encode().unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(black_box(&rec).encode().unwrap()));
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| black_box(AuditRecord::decode(black_box(&bytes)).unwrap()));
        });
    }
    g.finish();
}

criterion_group!(benches, records, appends, proofs_and_verification);
criterion_main!(benches);
