//! `ward server init` and `ward server run`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use ward_core::drain;
use ward_identity::{KeyAlgorithm, TrustDomain};
use ward_server::data_dir::DataDir;
use ward_server::server::{self, RunOptions};

use crate::cli::Output;

/// How long shutdown waits for in-flight requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn init(
    dir: &Path,
    trust_domain: &str,
    store: Option<&str>,
    algorithm: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let td = TrustDomain::new(trust_domain)
        .with_context(|| format!("--trust-domain {trust_domain:?}"))?;
    let algorithm: KeyAlgorithm = algorithm.parse()?;
    let data = DataDir::new(dir);
    let done = runtime()?.block_on(data.init(&td, store, algorithm))?;
    let (cert, key) = data.admin_files();
    match output {
        Output::Json => crate::cmd::print_json(&json!({
            "trust_domain": done.trust_domain.as_str(),
            "data_dir": dir.display().to_string(),
            "admin": done.admin_id.as_str(),
            "admin_certificate": cert.display().to_string(),
            "admin_key": key.display().to_string(),
            "bundle": data.bundle_path().display().to_string(),
        }))?,
        Output::Text => {
            eprintln!(
                "initialised trust domain {} in {}",
                done.trust_domain,
                dir.display()
            );
            eprintln!(
                "  first admin: {} (SVID and 0600 key in {})",
                done.admin_id,
                dir.join("admin").display()
            );
            eprintln!("  next: ward server run --data-dir {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(
    dir: &Path,
    store: Option<String>,
    listen: SocketAddr,
    svid_ttl: &str,
) -> anyhow::Result<ExitCode> {
    let svid_ttl = crate::cmd::parse_duration(svid_ttl)?;
    let options = RunOptions {
        data_dir: DataDir::new(dir),
        store_url: store,
        listen,
        svid_ttl,
    };
    runtime()?.block_on(async move {
        let (trigger, watch) = drain::channel();
        let addr = server::start(options, watch).await?;
        eprintln!("ward server listening on {addr}");
        wait_for_signal().await?;
        eprintln!(
            "shutting down (waiting up to {}s for in-flight requests)",
            DRAIN_DEADLINE.as_secs()
        );
        if trigger.drain(DRAIN_DEADLINE).await == drain::Outcome::TimedOut {
            eprintln!("some requests did not finish within the deadline");
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}
