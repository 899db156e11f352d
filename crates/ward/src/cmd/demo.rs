//! `ward demo`: zero trust working in a minute, in one process. This module
//! owns the demo's lifecycle — the working directory, setup narration,
//! the summary, `--keep-running`, Ctrl-C — and hands the parts to:
//!
//! | module | owns |
//! |---|---|
//! | [`fabric`] | server, agents, policy push, proxies; readiness; ordered shutdown |
//! | [`apps`] | the in-process MCP tool server and researcher app |
//! | [`scenes`] | the six scenes and their observed outcomes |
//! | [`narrate`] | how it is told (colour on a terminal only, pauses) |
//! | [`web`] | plain HTTP/1.1 for the apps and their calls |
//!
//! Nothing is faked: calls go through real proxies over mutual TLS, Cedar
//! decides them, the audit log is the server's, and every outcome in the
//! summary is what the demo observed.

mod apps;
mod fabric;
mod narrate;
mod scenes;
mod web;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind, signal};

use self::fabric::{AGENTS, Fabric, RESEARCHER_RATE};
use self::narrate::{Narrator, Style};
use self::scenes::{Outcome, Scenes};
use crate::cli::DemoArgs;

/// Exit code after Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(demo(args))
}

/// Where the demo's files live: the server's data directory, the
/// proxies' state, the mirrored audit log.
enum WorkDir {
    /// Ours: removed at the end unless `--keep-running`.
    Temp(tempfile::TempDir),
    /// `--dir`: the user's, always kept.
    Given(PathBuf),
}

impl WorkDir {
    fn new(dir: Option<&Path>) -> anyhow::Result<Self> {
        let Some(dir) = dir else {
            return Ok(Self::Temp(
                tempfile::Builder::new()
                    .prefix("ward-demo-")
                    .tempdir()
                    .context("creating a temporary directory")?,
            ));
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
        anyhow::ensure!(
            !dir.join("server").exists() && !dir.join("proxies").exists(),
            "{} already holds a demo; pass a new --dir or remove it",
            dir.display()
        );
        Ok(Self::Given(dir))
    }

    fn path(&self) -> &Path {
        match self {
            Self::Temp(t) => t.path(),
            Self::Given(d) => d,
        }
    }

    /// Removes our temporary directory (unless `keep`); says what stayed.
    fn finish(self, keep: bool, out: Narrator) {
        match self {
            Self::Temp(t) if keep => {
                let path = t.keep();
                out.line(&format!("working directory kept: {}", path.display()));
            }
            Self::Temp(t) => {
                let path = t.path().display().to_string();
                match t.close() {
                    Ok(()) => out.line(&format!("removed {path}")),
                    Err(e) => out.line(&format!("could not remove {path}: {e}")),
                }
            }
            Self::Given(d) => out.line(&format!("working directory kept: {}", d.display())),
        }
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // https://no-color.org: set and not empty disables colour.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let out = Narrator::new(colour, !args.non_interactive);
    // Installed before anything starts, so a signal at any point finds a
    // handler and everything started is shut down.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let workdir = WorkDir::new(args.dir.as_deref())?;
    let mut fabric = Fabric::new(workdir.path().to_owned());
    let started = Instant::now();

    let staged = tokio::select! {
        r = stage(&mut fabric, out) => Some(r),
        () = signalled(&mut term) => None,
    };
    let (code, result) = match staged {
        None => {
            out.line("");
            out.line("interrupted, shutting down");
            (ExitCode::from(EXIT_INTERRUPTED), Ok(()))
        }
        Some(Err(e)) => (ExitCode::from(crate::cmd::EXIT_ERROR), Err(e)),
        Some(Ok(outcomes)) => {
            let all_ok = summary(&outcomes, out, started);
            let written = match &args.summary_json {
                Some(path) => write_summary(path, &outcomes, all_ok),
                None => Ok(()),
            };
            if args.keep_running && written.is_ok() {
                match explore(&fabric, out) {
                    Ok(()) => signalled(&mut term).await,
                    Err(e) => out.line(&format!("cannot print the commands: {e:#}")),
                }
                out.line("");
                out.line("shutting down");
            }
            let code = if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::cmd::EXIT_DENIED)
            };
            (code, written)
        }
    };
    let late = fabric.shutdown().await;
    if late.is_empty() {
        out.line("stopped: proxies drained, apps stopped, control plane drained");
    } else {
        out.line(&format!(
            "stopped; not drained within the deadline: {}",
            late.join(", ")
        ));
    }
    workdir.finish(args.keep_running, out);
    result.map(|()| code)
}

/// Returns once SIGINT (Ctrl-C) or SIGTERM arrives.
async fn signalled(term: &mut Signal) {
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                // No SIGINT handler: only SIGTERM can stop the demo early.
                term.recv().await;
            }
        }
        _ = term.recv() => {}
    }
}

/// Setup, then the scenes.
async fn stage(fabric: &mut Fabric, out: Narrator) -> anyhow::Result<Vec<Outcome>> {
    out.title("Ward demo — zero trust for AI agents, in one process");
    out.line(&out.paint(
        Style::Dim,
        "planner ──HTTP──▶ researcher ──MCP──▶ tools    (each agent behind its own Ward proxy)",
    ));
    setup(fabric, out).await?;
    out.pause().await;
    Ok(Scenes::new(fabric, out).run().await)
}

async fn setup(fabric: &mut Fabric, out: Narrator) -> anyhow::Result<()> {
    out.scene(
        "setup",
        "A control plane and three agents, each behind its own proxy",
        "Everything runs in this process on 127.0.0.1, on free ports.",
    );
    let began = Instant::now();
    let server = fabric.start_server().await?;
    out.step(&format!(
        "control plane on {}: CA, agent registry, policy store, audit log (SQLite in {})",
        server.addr,
        server.data.root().display()
    ));
    fabric.register_agents().await?;
    let tools = AGENTS
        .iter()
        .find(|a| a.name == "tools")
        .map(|a| {
            a.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    out.step(&format!(
        "registered planner, researcher (team research) and tools (team platform; {tools})"
    ));
    let pushed = fabric.push_policy().await?;
    out.step(&format!(
        "pushed the policy bundle (examples/demo/policy): {} test cases passed on the server; signed and active at revision {}",
        pushed.tests_passed, pushed.revision
    ));

    let apps = fabric.start_apps().await?;
    let (tools_app, researcher_app, planner_app) = (apps.tools, apps.researcher, apps.planner);
    let outbound_slot = std::sync::Arc::clone(&apps.researcher_outbound);
    // The tool server's proxy first: the others learn its address.
    fabric.start_proxy("tools", tools_app, None).await?;
    let researcher = fabric
        .start_proxy("researcher", researcher_app, Some(RESEARCHER_RATE))
        .await?
        .outbound;
    // The researcher's app calls out through its proxy's outbound listener.
    let _ = outbound_slot.set(researcher);
    // The planner's app is this demo, calling out; no policy lets anyone
    // call the planner, so its stand-in app behind the proxy stays idle.
    fabric.start_proxy("planner", planner_app, None).await?;
    fabric.wait_ready().await?;
    out.step(
        "each proxy enrolled with a single-use join token (not shown) and holds a SPIFFE certificate:",
    );
    let rows: Vec<Vec<String>> = fabric
        .proxies
        .iter()
        .rev()
        .map(|(name, p)| {
            vec![
                (*name).to_owned(),
                p.shared.identity.spiffe_id.to_string(),
                p.outbound.to_string(),
                p.inbound.to_string(),
                match *name {
                    "planner" => "this demo".to_owned(),
                    "researcher" => format!(
                        "{researcher_app}; {}/s per caller, burst {}",
                        RESEARCHER_RATE.per_second, RESEARCHER_RATE.burst
                    ),
                    _ => format!("{tools_app} (MCP)"),
                },
            ]
        })
        .collect();
    let table = crate::table::render(
        &[
            "AGENT",
            "SPIFFE ID",
            "OUTBOUND (app)",
            "INBOUND (mTLS)",
            "APP",
        ],
        &rows,
    );
    for line in table.lines() {
        out.line(&format!("      {line}"));
    }
    out.good(&format!(
        "every proxy enforces policy version {}… ({:.1} s)",
        pushed.version.chars().take(12).collect::<String>(),
        began.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Prints the summary table; true when every scene matched.
fn summary(outcomes: &[Outcome], out: Narrator, started: Instant) -> bool {
    out.scene(
        "summary",
        "What each scene expected and what happened",
        "Observed from status codes, JSON-RPC errors, the tool server's log, receipts and proofs.",
    );
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            vec![
                (i + 1).to_string(),
                o.name.to_owned(),
                o.expected.clone(),
                o.observed.clone(),
                // Last column: colour codes cannot upset the alignment.
                if o.ok {
                    out.paint(Style::Green, "✓")
                } else {
                    out.paint(Style::Red, "✗")
                },
            ]
        })
        .collect();
    let table = crate::table::render(&["#", "SCENE", "EXPECTED", "OBSERVED", "OK"], &rows);
    for line in table.lines() {
        out.line(&format!("  {line}"));
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let took = started.elapsed().as_secs_f64();
    out.line("");
    if failed == 0 {
        out.good(&format!(
            "all {} scenes went as expected ({took:.1} s)",
            outcomes.len()
        ));
    } else {
        out.bad(&format!(
            "{failed} of {} scenes did not go as expected ({took:.1} s)",
            outcomes.len()
        ));
    }
    failed == 0 && !outcomes.is_empty()
}

fn write_summary(path: &Path, outcomes: &[Outcome], ok: bool) -> anyhow::Result<()> {
    let doc = json!({"scenes": outcomes, "ok": ok});
    let text = serde_json::to_string_pretty(&doc).context("encoding the summary")?;
    std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {}", path.display()))
}

/// `--keep-running`: copy-pasteable commands against what still runs.
fn explore(fabric: &Fabric, out: Narrator) -> anyhow::Result<()> {
    let config = fabric.write_client_config()?;
    let server = fabric.server()?.addr;
    let ward = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ward".to_owned());
    let conn = format!("--server {server} --client-config {}", config.display());
    let planner = fabric.proxy("planner")?;
    let tools = fabric.proxy("tools")?;
    out.scene(
        "explore",
        "Still running — Ctrl-C stops everything",
        "Copy and paste; the admin CLI talks to this server over mutual TLS too.",
    );
    let lines = [
        format!("{ward} agent list {conn}"),
        format!("{ward} proxy list {conn}"),
        format!("{ward} audit tail -n 30 {conn}"),
        format!("{ward} audit verify {conn}"),
        format!("{ward} audit query --decision deny {conn}"),
        format!(
            "curl -s -H 'Host: researcher' http://{}/research   # refused at planner's proxy: researcher is revoked",
            planner.outbound
        ),
        format!(
            "curl -s -H 'Host: tools' http://{}/mcp   # default deny: no policy lets planner call tools",
            planner.outbound
        ),
        format!(
            "curl -s http://{}/metrics | grep ward_proxy_requests_total",
            tools.admin
        ),
    ];
    for line in lines {
        out.line(&format!("  {line}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fabric::POLICY_FILES;
    use super::scenes::DENY_REASON;

    #[test]
    fn the_bundle_gives_the_reason_the_denied_scene_checks() {
        let cedar = POLICY_FILES
            .iter()
            .find(|(name, _)| name.ends_with(".cedar"))
            .map(|(_, text)| *text)
            .unwrap();
        assert!(cedar.contains(&format!("@reason(\"{DENY_REASON}\")")));
        assert!(cedar.contains("@id(\"destructive-tools-need-approval\")"));
    }
}
