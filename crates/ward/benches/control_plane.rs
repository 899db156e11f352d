//! Control-plane benchmark: a real `ward server run` process (SQLite, the
//! embedded default) with 10,000 registered agents. Prints:
//! - server RSS after registration (VmRSS and peak VmHWM from /proc),
//! - `GET /v1/agents` latency over mTLS (p50/p99, new connection per call,
//!   i.e. what `ward agent list` costs) and the CLI's own wall time,
//! - renewal throughput: SVIDs/s over real mutual TLS, each renewal on a new
//!   connection authenticated by the agent's current SVID.
//!
//! Run: `cargo bench -p ward --bench control_plane` (or `bench/control-plane.sh`).
//! Knobs: WARD_BENCH_AGENTS (10000), WARD_BENCH_RENEWERS (500 agents that
//! renew), WARD_BENCH_SECS (10), WARD_BENCH_CONCURRENCY (32).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    reason = "benchmark harness"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use ward_client::{Client, Method};
use ward_core::SpiffeId;
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, TrustDomain, X509Svid, csr};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes harness flags such as --bench; nothing to parse.
    ward_identity::provider::install_default();
    let agents = knob("WARD_BENCH_AGENTS", 10_000);
    let renewers = knob("WARD_BENCH_RENEWERS", 500).min(agents);
    let secs = knob("WARD_BENCH_SECS", 10) as u64;
    let concurrency = knob("WARD_BENCH_CONCURRENCY", 32);
    let ward = env!("CARGO_BIN_EXE_ward");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let xdg = tmp.path().join("xdg");
    let out = Command::new(ward)
        .args([
            "server",
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--trust-domain",
            "bench.test",
        ])
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut server = Command::new(ward)
        .args([
            "server",
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("XDG_CONFIG_HOME", &xdg)
        .env_remove("WARD_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(a) = line.strip_prefix("ward server listening on ") {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    println!("ward control-plane bench: server pid {pid} on {addr}, SQLite store");
    println!(
        "  idle RSS: {:.1} MiB",
        proc_kib(pid, "VmRSS:") as f64 / 1024.0
    );

    let td = TrustDomain::new("bench.test").unwrap();
    let bundle = TrustBundle::read(td, &data.join("bundle.json")).unwrap();
    let admin = Client::new(
        &addr,
        &bundle,
        Some((
            &X509Svid::read_pem(&data.join("admin/svid.pem")).unwrap(),
            &PrivateKey::read_pem(&data.join("admin/svid.key.pem")).unwrap(),
        )),
    )
    .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // 1. Register.
        let start = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let admin = admin.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= agents {
                        break;
                    }
                    let _: Value = admin
                        .call(
                            Method::POST,
                            "/v1/agents",
                            Some(&json!({"name": format!("agent-{i:05}"), "attributes": {"team": format!("team-{}", i % 50), "risk_tier": "low", "labels": {"env": "bench"}}})),
                        )
                        .await
                        .unwrap();
                    if i > 0 && i.is_multiple_of(2000) {
                        eprintln!("  … {i} agents registered");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let took = start.elapsed();
        println!(
            "  registered {agents} agents in {:.1} s ({:.0}/s, {concurrency} concurrent admin connections)",
            took.as_secs_f64(),
            agents as f64 / took.as_secs_f64()
        );
        println!(
            "  RSS with {agents} agents: {:.1} MiB (peak {:.1} MiB)",
            proc_kib(pid, "VmRSS:") as f64 / 1024.0,
            proc_kib(pid, "VmHWM:") as f64 / 1024.0
        );

        // 2. List latency (new mTLS connection per call, like the CLI).
        let mut samples = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            let list: Vec<Value> = admin.get("/v1/agents").await.unwrap();
            samples.push(t.elapsed());
            assert_eq!(list.len(), agents);
        }
        samples.sort();
        println!(
            "  GET /v1/agents ({agents} agents, ~{:.1} MiB JSON): p50 {:.1} ms, p99 {:.1} ms",
            serde_json::to_vec(&admin.get::<Value>("/v1/agents").await.unwrap()).unwrap().len() as f64 / 1048576.0,
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3
        );
    });
    let mut cli = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = Command::new(ward)
            .args(["agent", "list", "--server", &addr, "--output", "json"])
            .env("XDG_CONFIG_HOME", &xdg)
            .output()
            .unwrap();
        assert!(out.status.success());
        cli.push(t.elapsed());
    }
    cli.sort();
    println!(
        "  `ward agent list --output json` wall time (process start to exit): p50 {:.1} ms",
        percentile(&cli, 0.5).as_secs_f64() * 1e3
    );

    rt.block_on(async {
        // 3. Renewal throughput. Enroll `renewers` agents first; CSRs are made
        // up front so the measured loop is the server's work plus TLS.
        let anon = Client::new(&addr, &bundle, None).unwrap();
        let mut creds = Vec::new();
        for i in 0..renewers {
            let name = format!("agent-{i:05}");
            let token: Value = admin
                .call(Method::POST, &format!("/v1/agents/{name}/tokens"), Some(&json!({})))
                .await
                .unwrap();
            let id = SpiffeId::new(&format!("spiffe://bench.test/agent/{name}")).unwrap();
            let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
            let der = csr::create(&key, &id).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            let resp: Value = anon
                .call(Method::POST, "/v1/enroll", Some(&json!({"join_token": token["token"], "csr": b64})))
                .await
                .unwrap();
            let svid = X509Svid::from_pem(resp["svid"].as_str().unwrap()).unwrap();
            let client = Client::new(&addr, &bundle, Some((&svid, &key))).unwrap();
            creds.push((client, json!({"csr": b64})));
        }
        let creds = Arc::new(creds);
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let creds = creds.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < deadline {
                    let (client, body) = &creds[i % creds.len()];
                    let _: Value = client.call(Method::POST, "/v1/renew", Some(body)).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += concurrency;
                }
            }));
        }
        let start = Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        let n = done.load(Ordering::Relaxed);
        println!(
            "  renewal: {n} SVIDs in {:.1} s = {:.0} SVIDs/s ({renewers} agents, {concurrency} concurrent, new mTLS connection each; client and server share the 2 cores)",
            start.elapsed().as_secs_f64(),
            n as f64 / start.elapsed().as_secs_f64()
        );
        println!(
            "  RSS after renewals: {:.1} MiB (peak {:.1} MiB)",
            proc_kib(pid, "VmRSS:") as f64 / 1024.0,
            proc_kib(pid, "VmHWM:") as f64 / 1024.0
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}
