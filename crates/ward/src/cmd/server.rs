//! `ward server init` and `ward server run`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use ward_core::drain;
use ward_identity::{KeyAlgorithm, TrustDomain};
use ward_server::data_dir::DataDir;
use ward_server::server::{self, RunOptions};

use crate::cli::{Connection, Output};
use crate::cmd::client::{self, ClientFile};
use crate::{config, table};

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
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let client_file = ClientFile {
        server: config::DEFAULT_LISTEN.to_owned(),
        trust_domain: td.to_string(),
        bundle: absolute(data.bundle_path()),
        certificate: absolute(cert.clone()),
        key: absolute(key.clone()),
    };
    let own_config = dir.join("admin/client.toml");
    client_file.write(&own_config)?;
    // The CLI finds the user-level config by itself; never overwrite one
    // that points at another server.
    let user_config = client::default_path().filter(|p| !p.exists());
    if let Some(path) = &user_config {
        client_file.write(path)?;
    }
    match output {
        Output::Json => crate::cmd::print_json(&json!({
            "trust_domain": done.trust_domain.as_str(),
            "data_dir": dir.display().to_string(),
            "admin": done.admin_id.as_str(),
            "admin_certificate": cert.display().to_string(),
            "admin_key": key.display().to_string(),
            "bundle": data.bundle_path().display().to_string(),
            "client_config": own_config.display().to_string(),
            "user_client_config": user_config.as_ref().map(|p| p.display().to_string()),
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
            match &user_config {
                Some(path) => eprintln!("  admin CLI config: {} (used by default)", path.display()),
                None => eprintln!(
                    "  admin CLI config: {} (export WARD_CLIENT_CONFIG={0} to use it)",
                    own_config.display()
                ),
            }
            eprintln!("  next: ward server run --data-dir {}", dir.display());
            eprintln!("  then: ward agent register <name>; ward token create --agent <name>");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ward server run` flags (already merged with `WARD_*` by clap).
pub(crate) struct RunFlags {
    pub(crate) config: Option<PathBuf>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) store: Option<String>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) svid_ttl: Option<String>,
    pub(crate) policy_dir: Option<PathBuf>,
    pub(crate) check: bool,
    pub(crate) output: Output,
}

/// Defaults < config file < environment < flags.
fn effective(flags: &RunFlags) -> anyhow::Result<RunOptions> {
    let file = match &flags.config {
        Some(path) => config::load(path)?,
        None => config::ServerFile::default(),
    };
    let data_dir = flags.data_dir.clone().or(file.data_dir).ok_or_else(|| {
        config::ConfigErrors {
            path: flags.config.clone().unwrap_or_else(|| PathBuf::from("(command line)")),
            problems: vec![config::Problem {
                at: None,
                key: "server.data_dir".to_owned(),
                message: "no data directory: pass --data-dir, set WARD_DATA_DIR, or set data_dir in [server]".to_owned(),
            }],
        }
    })?;
    let svid_ttl = match &flags.svid_ttl {
        Some(text) => {
            let ttl = crate::cmd::parse_duration(text)?;
            anyhow::ensure!(
                (60..=86_400).contains(&ttl.as_secs()),
                "--svid-ttl {text}: must be between 1m and 24h"
            );
            ttl
        }
        None => match file.svid_ttl {
            Some(ttl) => ttl,
            None => crate::cmd::parse_duration(config::DEFAULT_SVID_TTL)?,
        },
    };
    let listen = match flags.listen.or(file.listen) {
        Some(addr) => addr,
        None => config::DEFAULT_LISTEN
            .parse()
            .context("built-in listen address")?,
    };
    Ok(RunOptions {
        data_dir: DataDir::new(data_dir),
        store_url: flags.store.clone().or(file.store),
        listen,
        svid_ttl,
        policy_dir: flags.policy_dir.clone().or(file.policy_dir),
    })
}

pub(crate) fn run(flags: &RunFlags) -> anyhow::Result<ExitCode> {
    let options = effective(flags)?;
    if flags.check {
        let store = options.store_url.as_deref().map_or_else(
            || options.data_dir.sqlite_url(),
            ward_server::store::redact_url,
        );
        match flags.output {
            Output::Json => crate::cmd::print_json(&json!({
                "data_dir": options.data_dir.root().display().to_string(),
                "store": store,
                "listen": options.listen.to_string(),
                "svid_ttl_secs": options.svid_ttl.as_secs(),
                "policy_dir": options.policy_dir.as_ref().map(|p| p.display().to_string()),
            }))?,
            Output::Text => print!(
                "{}",
                crate::table::fields(&[
                    ("data_dir", options.data_dir.root().display().to_string()),
                    ("store", store),
                    ("listen", options.listen.to_string()),
                    ("svid_ttl", format!("{}s", options.svid_ttl.as_secs())),
                ])
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    runtime()?.block_on(async move {
        let (trigger, watch) = drain::channel();
        let addr = server::start(options, watch).await?;
        eprintln!("ward server listening on {addr}");
        crate::cmd::wait_for_signal().await?;
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

pub(crate) fn status(conn: &Connection) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let status: ward_server::api::status::Status =
        client::runtime()?.block_on(api.get("/v1/status"))?;
    match conn.output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(&status)?)?,
        Output::Text => {
            let agents = if status.agents.is_empty() {
                "none".to_owned()
            } else {
                status
                    .agents
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            print!(
                "{}",
                table::fields(&[
                    ("server", api.addr().to_owned()),
                    ("version", status.version.clone()),
                    ("trust domain", status.trust_domain.clone()),
                    ("store", status.store.clone()),
                    ("revision", status.revision.to_string()),
                    ("agents", agents),
                    ("revocations", status.revocations.to_string()),
                    (
                        "intermediate CA expires",
                        status.intermediate_not_after.clone()
                    ),
                    ("SVID lifetime", format!("{}s", status.svid_ttl_secs)),
                    ("uptime", format!("{}s", status.uptime_secs)),
                ])
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
