//! Spool benchmarks on a real temporary directory, so every group pays a
//! real fdatasync: group-commit append throughput of 300-byte records with
//! 1, 8 and 64 concurrent appenders, raw `Spool::append_batch` of 1,000
//! records, and an acknowledgement.
//!
//! Run with `cargo bench -p ward-audit --bench spool`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmarks"
)]

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ward_audit::{GroupCommit, Spool, SpoolOptions};

const RECORD_LEN: usize = 300;
const BATCH: usize = 1_000;

fn opts() -> SpoolOptions {
    SpoolOptions {
        max_bytes: 16 << 30,
        segment_bytes: 64 << 20,
        ..SpoolOptions::default()
    }
}

fn record(i: u64) -> Vec<u8> {
    let mut r = format!("{{\"seq\":{i},\"pad\":\"").into_bytes();
    r.resize(RECORD_LEN - 2, b'x');
    r.extend_from_slice(b"\"}");
    r
}

/// `iters` appends spread over `threads` appenders on a fresh spool; the
/// time from the start barrier until every appender has its answers,
/// scaled to exactly `iters` appends.
fn appends(threads: u64, iters: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let spool = GroupCommit::open(dir.path(), opts()).unwrap();
    let each = iters.div_ceil(threads);
    let start = Arc::new(Barrier::new(usize::try_from(threads).unwrap() + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let spool = spool.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let records: Vec<Vec<u8>> = (0..each).map(|i| record(t * each + i)).collect();
                start.wait();
                for r in records {
                    spool.append(r).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = began.elapsed();
    let stats = spool.stats().unwrap();
    assert_eq!(stats.appended, each * threads);
    elapsed.mul_f64(iters as f64 / (each * threads) as f64)
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool_group_commit_300B");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));
    for threads in [1u64, 8, 64] {
        g.bench_with_input(
            BenchmarkId::new("appenders", threads),
            &threads,
            |b, &threads| b.iter_custom(|iters| appends(threads, iters)),
        );
    }
    g.finish();
}

fn append_batch(c: &mut Criterion) {
    let records: Vec<Vec<u8>> = (0..BATCH as u64).map(record).collect();
    let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let mut g = c.benchmark_group("spool_append_batch");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("1000x300B", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let mut spool = Spool::open(dir.path(), opts()).unwrap();
            let began = Instant::now();
            for _ in 0..iters {
                spool.append_batch(&slices).unwrap();
            }
            began.elapsed()
        });
    });
    g.finish();
}

/// One acknowledgement that deletes nothing: what the shipper costs the
/// writer thread (every append waits behind it) after each shipped batch.
fn ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool_ack");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    g.bench_function("no_deletion", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let mut spool = Spool::open(dir.path(), opts()).unwrap();
            // Small records, so that a million pending fit one segment.
            let tiny = vec![b'x'; 16];
            let chunk: Vec<&[u8]> = vec![tiny.as_slice(); 10_000];
            let mut appended = 0;
            while appended < iters {
                appended = spool.append_batch(&chunk).unwrap().end;
            }
            let began = Instant::now();
            for seq in 0..iters {
                spool.ack(seq).unwrap();
            }
            let elapsed = began.elapsed();
            assert_eq!(spool.stats().segments, 1, "an ack deleted a segment");
            elapsed
        });
    });
    g.finish();
}

criterion_group!(benches, group_commit, append_batch, ack);
criterion_main!(benches);
