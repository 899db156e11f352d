//! Subcommand dispatch and the exit codes every subcommand shares.

#[cfg(feature = "server")]
mod agent;
mod audit;
#[cfg(feature = "server")]
mod ca;
mod ca_dir;
#[cfg(feature = "server")]
mod cert;
pub(crate) mod client;
#[cfg(feature = "server")]
mod demo;
#[cfg(feature = "server")]
mod policy;
mod proxy;
#[cfg(feature = "server")]
mod receipts;
#[cfg(feature = "server")]
mod server;
mod svid;
#[cfg(feature = "server")]
mod token;

use std::process::ExitCode;

use anyhow::Context as _;

#[cfg(feature = "server")]
use crate::cli::{CaCommand, PolicyCommand, ServerCommand};
use crate::cli::{Cli, Command, ProxyCommand, SvidCommand};

/// Something failed; the message says what and how to fix it.
pub(crate) const EXIT_ERROR: u8 = 1;
/// A verification or authorization said no.
pub(crate) const EXIT_DENIED: u8 = 2;
/// The command line or configuration is invalid (sysexits EX_USAGE).
pub(crate) const EXIT_USAGE: u8 = 64;

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        #[cfg(feature = "server")]
        Command::Server(ServerCommand::Init {
            data_dir,
            trust_domain,
            store,
            algorithm,
            output,
        }) => server::init(
            &data_dir,
            &trust_domain,
            store.as_deref(),
            &algorithm,
            output,
        ),
        #[cfg(feature = "server")]
        Command::Server(ServerCommand::Run {
            config,
            data_dir,
            store,
            listen,
            svid_ttl,
            policy_dir,
            check,
            output,
        }) => server::run(&server::RunFlags {
            config,
            data_dir,
            store,
            listen,
            svid_ttl,
            policy_dir,
            check,
            output,
        }),
        #[cfg(feature = "server")]
        Command::Server(ServerCommand::Status { conn }) => server::status(&conn),
        Command::Proxy(ProxyCommand::Run(args)) => proxy::run(*args),
        #[cfg(feature = "server")]
        Command::Proxy(ProxyCommand::List { conn }) => receipts::list(&conn),
        #[cfg(feature = "server")]
        Command::Agent(args) => agent::run(args),
        #[cfg(feature = "server")]
        Command::Token(args) => token::run(args),
        #[cfg(feature = "server")]
        Command::Cert(args) => cert::run(args),
        #[cfg(feature = "server")]
        Command::Policy(PolicyCommand::Validate { dir, output }) => policy::validate(&dir, output),
        #[cfg(feature = "server")]
        Command::Policy(PolicyCommand::Test { dir, output }) => policy::test(&dir, output),
        #[cfg(feature = "server")]
        Command::Policy(PolicyCommand::Push { dir, conn }) => policy::push(&dir, &conn),
        #[cfg(feature = "server")]
        Command::Policy(PolicyCommand::List { conn }) => policy::list(&conn),
        #[cfg(feature = "server")]
        Command::Policy(PolicyCommand::Show { version, conn }) => policy::show(&version, &conn),
        #[cfg(feature = "server")]
        Command::Policy(PolicyCommand::Rollback { version, conn }) => {
            policy::rollback(&version, &conn)
        }
        #[cfg(feature = "server")]
        Command::Policy(PolicyCommand::Diff { from, to, conn }) => policy::diff(&from, &to, &conn),
        Command::Audit(args) => audit::run(args),
        #[cfg(feature = "server")]
        Command::Demo(args) => demo::run(args),
        #[cfg(feature = "server")]
        Command::Ca(CaCommand::Init {
            dir,
            trust_domain,
            algorithm,
            output,
        }) => ca::init(&dir, &trust_domain, &algorithm, output),
        #[cfg(feature = "server")]
        Command::Ca(CaCommand::Status { conn }) => ca::status(&conn),
        #[cfg(feature = "server")]
        Command::Ca(CaCommand::Rotate {
            root,
            no_activate,
            timeout,
            conn,
        }) => ca::rotate(root, no_activate, &timeout, &conn),
        #[cfg(feature = "server")]
        Command::Ca(CaCommand::Activate { id, conn }) => ca::activate(&id, &conn),
        #[cfg(feature = "server")]
        Command::Ca(CaCommand::Retire { id, force, conn }) => ca::retire(&id, force, &conn),
        Command::Svid(SvidCommand::Mint {
            ca_dir,
            agent,
            spiffe_id,
            ttl,
            out,
            output,
        }) => svid::mint(
            &ca_dir,
            agent.as_deref(),
            spiffe_id.as_deref(),
            &ttl,
            &out,
            output,
        ),
        Command::Svid(SvidCommand::Inspect {
            file,
            bundle,
            trust_domain,
            output,
        }) => svid::inspect(&file, bundle.as_deref(), trust_domain.as_deref(), output),
    }
}

/// Resolves on SIGINT or SIGTERM: what `server run` and `proxy run` drain on.
pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}

/// Parses durations like `90s`, `15m`, `1h`, `2d`.
pub(crate) fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?}; use e.g. 90s, 15m, 1h or 2d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => anyhow::bail!("invalid duration unit in {s:?}; use s, m, h or d"),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Unix seconds as RFC 3339 (UTC), or the number if out of range.
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Writes a value as pretty JSON to standard output.
pub(crate) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
