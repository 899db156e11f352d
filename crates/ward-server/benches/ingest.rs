//! Audit ingestion throughput at the server, one run:
//!
//! 1. the sequencer alone: concurrent callers hand 2,000-record batches to
//!    `AuditLog::append` (group commit, fsync per append, embedded tiles);
//! 2. end to end: a real server (`server::start`, SQLite, tiles on disk)
//!    and N shippers posting 2,000-record batches of 300-byte records to
//!    `POST /v1/audit/records` over mutual TLS, each with its own proxy SVID,
//!    exactly as proxies do — new TLS connection per batch, strict decoding
//!    and proxy checks on the server, answer after the durable append.
//!
//! `cargo bench -p ward-server --bench ingest` (DURATION=10 by default).
//! Target (issue 6): ≥ 50,000 records/s sequenced at the server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "bench"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use ward_audit::record::{AuditRecord, BodyDigest, Decision, RequestDigest, UnixMillis};
use ward_client::Client;
use ward_core::{SpiffeId, TrustDomain, drain};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, csr};
use ward_server::data_dir::DataDir;
use ward_server::server::{self, RunOptions};

const BATCH: usize = 2000;

fn record(proxy: &str, n: u64) -> Vec<u8> {
    AuditRecord {
        time: UnixMillis::new(1_700_000_000_000 + n).unwrap(),
        // Time-ordered with random tails, as proxies' ids are.
        decision_id: ward_audit::decision_id::new(1_700_000_000_000 + n, {
            let mixed = u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            let mut tail = [0u8; 10];
            tail.copy_from_slice(&mixed.to_be_bytes()[6..]);
            tail
        }),
        proxy_id: proxy.to_owned(),
        principal: Some(SpiffeId::new("spiffe://bench.test/agent/caller").unwrap()),
        action: "POST".to_owned(),
        resource: "Agent::\"tools\"".to_owned(),
        decision: if n.is_multiple_of(10) {
            Decision::Deny
        } else {
            Decision::Allow
        },
        policies: vec!["caller-may-call-tools".to_owned()],
        reasons: vec!["caller may call tools".to_owned()],
        policy_version: "3f0c9a0c4b1d2e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"
            .to_owned(),
        trace_id: None,
        peer_cert_serial: None,
        request: RequestDigest {
            body_sha256: BodyDigest::of(b"{}"),
            method: "POST".to_owned(),
            path: "/v1/tasks".to_owned(),
        },
        rpc: None,
    }
    .encode()
    .unwrap()
}

fn main() {
    let duration = Duration::from_secs(
        std::env::var("DURATION")
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(10),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        ward_identity::provider::install_default();
        let sample = record("spiffe://bench.test/agent/p0", 0).len();
        println!("record size: {sample} bytes, batch: {BATCH} records");
        sequencer_only(duration).await;
        end_to_end(duration, 8).await;
    });
}

async fn sequencer_only(duration: Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let td = TrustDomain::new("bench.test").unwrap();
    let log = ward_server::audit::AuditLog::open_in(tmp.path(), &td).unwrap();
    let batch: Vec<Vec<u8>> = (0..BATCH as u64)
        .map(|n| record("spiffe://bench.test/agent/p0", n))
        .collect();
    for callers in [1usize, 8] {
        let done = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + duration;
        let start = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (log, batch, done) = (log.clone(), batch.clone(), Arc::clone(&done));
                tokio::spawn(async move {
                    while Instant::now() < end {
                        let a = log.append(batch.clone()).await.unwrap();
                        done.fetch_add(a.count, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let n = done.load(Ordering::Relaxed);
        println!(
            "sequencer only, {callers} concurrent caller(s): {n} records in {:.1} s → {:.0} records/s",
            start.elapsed().as_secs_f64(),
            n as f64 / start.elapsed().as_secs_f64()
        );
    }
    log.stop();
}

async fn end_to_end(duration: Duration, shippers: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("data"));
    let td = TrustDomain::new("bench.test").unwrap();
    dir.init(&td, None, KeyAlgorithm::EcdsaP256).await.unwrap();
    let (_trigger, watch) = drain::channel();
    let addr = server::start(
        RunOptions {
            data_dir: dir.clone(),
            store_url: None,
            listen: "127.0.0.1:0".parse().unwrap(),
            svid_ttl: Duration::from_secs(3600),
            policy_dir: None,
        },
        watch,
    )
    .await
    .unwrap();
    let (ca, _) = dir.load_ca().unwrap();
    let bundle = TrustBundle::read(td.clone(), &dir.bundle_path()).unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let start = Instant::now();
    let tasks: Vec<_> = (0..shippers)
        .map(|p| {
            let id = SpiffeId::new(&format!("spiffe://bench.test/agent/p{p}")).unwrap();
            let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
            let request = csr::create(&key, &id).unwrap();
            let svid = ca
                .sign_csr(
                    &request,
                    &id,
                    Duration::from_secs(3600),
                    OffsetDateTime::now_utc(),
                )
                .unwrap();
            let client = Client::new(&addr.to_string(), &bundle, Some((&svid, &key))).unwrap();
            let proxy = id.to_string();
            let done = Arc::clone(&done);
            // Proxies encode records when they decide, not when they ship:
            // the batch is built once, and only its spool sequence advances.
            let mut body = Vec::with_capacity(BATCH * 600);
            for n in 0..BATCH as u64 {
                body.extend_from_slice(&record(&proxy, n));
                body.push(b'\n');
            }
            tokio::spawn(async move {
                let mut seq = 0u64;
                while Instant::now() < end {
                    let body = body.clone();
                    let answer: serde_json::Value = client
                        .post_bytes(
                            &format!("/v1/audit/records?first_seq={seq}"),
                            "application/x-ndjson",
                            body,
                        )
                        .await
                        .unwrap();
                    done.fetch_add(answer["appended"].as_u64().unwrap(), Ordering::Relaxed);
                    seq += BATCH as u64;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "end to end, {shippers} shippers over mTLS to a real server (SQLite, tiles on disk): {n} records in {secs:.1} s → {:.0} records/s",
        n as f64 / secs
    );
}
