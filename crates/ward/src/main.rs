//! The `ward` binary: thin by design. It installs the crypto provider, parses
//! the command line, sets up logging, runs one subcommand and maps its
//! outcome to an exit code (0 ok, 1 error, 2 denied / verification failed,
//! 64 bad usage).

mod cli;
mod cmd;
#[cfg_attr(
    not(feature = "server"),
    allow(
        dead_code,
        reason = "the sidecar build reads only the file's [proxy] table; the [server] table's reader stays compiled so both builds share one checked format"
    )
)]
mod config;
mod table;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: per-request allocations (hyper,
/// serde, Cedar) made malloc and free about a quarter of a loaded proxy
/// worker's CPU; mimalloc's thread-local free lists cut that (see the
/// README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ward_identity::provider::install_default();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version go to stdout and succeed; usage errors exit
            // 64 so that 2 keeps meaning "refused".
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { cmd::EXIT_USAGE } else { 0 });
        }
    };
    // The demo narrates on stdout; its components' warnings would only
    // interleave with the story.
    #[cfg(feature = "server")]
    let quiet = matches!(cli.command, cli::Command::Demo(_));
    #[cfg(not(feature = "server"))]
    let quiet = false;
    let default_log = if quiet { "error" } else { "warn" };
    let log = cli.log.clone().unwrap_or_else(|| default_log.to_owned());
    if let Err(e) = ward_core::telemetry::init(cli.log_format.into(), &log) {
        eprintln!("error: {e}");
        return ExitCode::from(cmd::EXIT_USAGE);
    }
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Refusals (the server said 401/403) exit 2, configuration mistakes 64,
/// everything else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<config::ConfigErrors>().is_some()
        || matches!(
            e.downcast_ref::<ward_proxy::ProxyError>(),
            Some(ward_proxy::ProxyError::Config(_))
        )
    {
        return cmd::EXIT_USAGE;
    }
    match e.downcast_ref::<ward_client::ClientError>() {
        Some(c) if c.is_refusal() => cmd::EXIT_DENIED,
        _ => cmd::EXIT_ERROR,
    }
}
