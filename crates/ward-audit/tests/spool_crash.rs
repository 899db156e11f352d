//! `kill -9` during appends: every record whose append returned is still in
//! the spool, intact, after re-opening (DESIGN.md §4 invariant 4).
//!
//! The test binary re-executes itself as the writer: with
//! `WARD_SPOOL_CRASH_CHILD` naming a spool directory, the test function runs
//! a child instead — several threads appending through `GroupCommit` and a
//! shipper acknowledging the oldest records (so segments are deleted while
//! the kill lands) — printing each acknowledged sequence number with the
//! SHA-256 of its payload, one flushed line each. The parent reads those
//! lines, sends SIGKILL after a few hundred, re-opens the spool and checks
//! every acknowledged record. Five rounds on the same directory, so
//! recovery after a kill is followed by more appends and another kill.
//!
//! A kill loses what the process had not yet handed to the kernel; losing
//! what the kernel had not yet written (power loss) cannot be simulated
//! here and rests on the fsync discipline the unit tests check the
//! recovery side of.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests"
)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use ward_audit::{GroupCommit, Spool, SpoolOptions};

const CHILD_ENV: &str = "WARD_SPOOL_CRASH_CHILD";
const ROUND_ENV: &str = "WARD_SPOOL_CRASH_ROUND";
const TEST_NAME: &str = "acknowledged_records_survive_kill_9";
const ROUNDS: u32 = 5;
const WRITERS: usize = 4;
/// Appends per writer thread: a bound, never reached before the kill.
const APPENDS_PER_WRITER: usize = 50_000;
/// Kill after this many acknowledged appends, plus a per-round offset so
/// the kill lands at different points.
const ACKS_BEFORE_KILL: usize = 300;
/// The shipper leaves at least this many records pending, so most
/// acknowledged appends are still in the spool to be checked.
const SHIP_LAG: u64 = 150;
const DEADLINE: Duration = Duration::from_secs(60);

fn opts() -> SpoolOptions {
    SpoolOptions {
        max_bytes: 256 << 20,
        // Small segments: the kill often lands near a roll or a deletion.
        segment_bytes: 16 << 10,
        // Zero-filled a few records ahead: kills land inside that space
        // and while it is extended.
        preallocate_bytes: 3 << 10,
        max_record_bytes: 4096,
    }
}

fn payload(round: u32, writer: usize, i: usize) -> Vec<u8> {
    let mut p =
        format!("{{\"round\":{round},\"writer\":{writer},\"i\":{i},\"pad\":\"").into_bytes();
    let pad = 30 + (writer * 131 + i * 37) % 900;
    p.extend((0..pad).map(|k| b'a' + ((k + i) % 26) as u8));
    p.extend_from_slice(b"\"}");
    p
}

fn hex_digest(bytes: &[u8]) -> String {
    digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn acknowledged_records_survive_kill_9() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let round = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
        child(&PathBuf::from(dir), round);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut shipped_through: Option<u64> = None;
    for round in 0..ROUNDS {
        let started = Instant::now();
        let lines = run_and_kill_child(dir.path(), round);
        let mut this_round = 0;
        for line in &lines {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("rec"), Some(seq), Some(d)) => {
                    let seq: u64 = seq.parse().unwrap();
                    let old = acked.insert(seq, d.to_owned());
                    assert!(old.is_none(), "sequence number {seq} handed out twice");
                    this_round += 1;
                }
                (Some("ack"), Some(seq), None) => {
                    shipped_through = shipped_through.max(Some(seq.parse().unwrap()));
                }
                _ => {} // the test harness's own output
            }
        }
        assert!(
            this_round >= ACKS_BEFORE_KILL,
            "round {round}: {this_round} acks"
        );

        let spool = Spool::open(dir.path(), opts()).unwrap();
        let batch = spool.read_batch(0, usize::MAX, usize::MAX).unwrap();
        let pending: BTreeMap<u64, &[u8]> = batch.iter().collect();
        // The shipper's acknowledgements held too.
        let floor = batch.first_seq();
        assert!(
            shipped_through.is_none_or(|s| floor > s),
            "ack cursor {floor} behind the shipped {shipped_through:?}"
        );
        let mut checked = 0;
        for (&seq, want) in acked.range(floor..) {
            let record = pending
                .get(&seq)
                .unwrap_or_else(|| panic!("round {round}: acknowledged record {seq} is lost"));
            assert_eq!(
                &hex_digest(record),
                want,
                "round {round}: record {seq} damaged"
            );
            checked += 1;
        }
        let last = spool.stats().last_seq.unwrap();
        assert!(last >= *acked.keys().next_back().unwrap());
        eprintln!(
            "round {round}: {this_round} acks seen, {checked} checked in the spool \
             (cursor {floor}, last {last}) in {:?}",
            started.elapsed()
        );
        assert!(checked > 0);
    }
}

/// Starts the child writer, reads its lines until enough appends are
/// acknowledged, kills it with SIGKILL, and returns every line it printed.
fn run_and_kill_child(dir: &Path, round: u32) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + DEADLINE;
    let mut lines = Vec::new();
    let mut recs = 0;
    let kill_after = ACKS_BEFORE_KILL + 37 * round as usize;
    while recs < kill_after {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                recs += usize::from(line.starts_with("rec "));
                lines.push(line);
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child stopped or stalled after {recs} acks: {e}");
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(9), "child was not killed: {status}");
    }
    // What it printed before dying was acknowledged as well. The pipe
    // closes with the process, so this ends promptly.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        lines.push(line);
    }
    reader.join().unwrap();
    lines
}

/// The writer process: appends until killed (or a bound), printing each
/// acknowledged record; a shipper thread acknowledges the oldest ones.
fn child(dir: &Path, round: u32) {
    let spool = GroupCommit::open(dir, opts()).unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let spool = spool.clone();
            thread::spawn(move || {
                for i in 0..APPENDS_PER_WRITER {
                    let p = payload(round, w, i);
                    let d = hex_digest(&p);
                    let seq = spool.append(p).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "rec {seq} {d}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let shipper = {
        let spool = spool.clone();
        let done = Arc::clone(&done);
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(2));
                let last = spool.stats().unwrap().last_seq;
                let batch = spool.read_batch(0, 40, usize::MAX).unwrap();
                let Some(through) = batch.last_seq() else {
                    continue;
                };
                if last.is_some_and(|l| l >= through + SHIP_LAG) {
                    spool.ack(through).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {through}").unwrap();
                    out.flush().unwrap();
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    shipper.join().unwrap();
}
