//! Receipts on the CLI: `--wait` after revoke / quarantine / release, and
//! `ward proxy list`.

use std::process::ExitCode;

use serde_json::{Value, json};
use ward_client::Client;
use ward_server::api::proxies::{ProxyState, Receipts};

use crate::cli::{Connection, Output, WaitFlags};
use crate::cmd::client;
use crate::table;

/// Prints `result` (the change's own answer); with `--wait`, first waits
/// for every connected proxy to enforce `revision` and prints who does.
/// Exit 2 when a connected proxy does not within the timeout.
pub(crate) async fn after_change(
    api: &Client,
    revision: u64,
    flags: &WaitFlags,
    result: Value,
    output: Output,
) -> anyhow::Result<ExitCode> {
    if !flags.wait {
        if output == Output::Json {
            crate::cmd::print_json(&result)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let timeout = crate::cmd::parse_duration(&flags.timeout)?;
    let receipts: Receipts = api
        .get(&format!(
            "/v1/receipts/{revision}?timeout_ms={}",
            timeout.as_millis()
        ))
        .await?;
    match output {
        Output::Json => crate::cmd::print_json(&json!({
            "result": result,
            "receipts": serde_json::to_value(&receipts)?,
        }))?,
        Output::Text => print_receipts(&receipts),
    }
    Ok(if receipts.pending.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::cmd::EXIT_DENIED)
    })
}

fn print_receipts(r: &Receipts) {
    let connected = r.applied.len() + r.pending.len();
    if r.pending.is_empty() {
        println!(
            "enforced by {} of {connected} connected prox{} in {} ms (revision {})",
            r.applied.len(),
            if connected == 1 { "y" } else { "ies" },
            r.waited_ms,
            r.revision
        );
    } else {
        println!(
            "NOT YET ENFORCED by {} of {connected} connected proxies after {} ms (revision {}):",
            r.pending.len(),
            r.waited_ms,
            r.revision
        );
        print!("{}", proxy_table(&r.pending));
    }
    if !r.disconnected.is_empty() {
        println!(
            "{} disconnected prox{} will apply it on reconnect; until then their certificates expire at:",
            r.disconnected.len(),
            if r.disconnected.len() == 1 {
                "y"
            } else {
                "ies"
            }
        );
        print!("{}", proxy_table(&r.disconnected));
    }
}

fn proxy_table(proxies: &[ProxyState]) -> String {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let rows: Vec<Vec<String>> = proxies
        .iter()
        .map(|p| {
            vec![
                p.agent.clone(),
                p.revision.to_string(),
                p.lag.to_string(),
                format!("{}s ago", (now_ms - p.seen_at).max(0) / 1000),
                if p.connected { "yes" } else { "no" }.to_owned(),
                p.cert_not_after
                    .map_or_else(|| "-".to_owned(), crate::cmd::rfc3339),
            ]
        })
        .collect();
    table::render(
        &[
            "AGENT",
            "REVISION",
            "LAG",
            "LAST SEEN",
            "CONNECTED",
            "CERT EXPIRES",
        ],
        &rows,
    )
}

/// `ward proxy list`.
pub(crate) fn list(conn: &Connection) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let output = conn.output;
    client::runtime()?.block_on(async move {
        let proxies: Vec<ProxyState> = api.get("/v1/proxies").await?;
        match output {
            Output::Json => crate::cmd::print_json(&serde_json::to_value(&proxies)?)?,
            Output::Text => print!("{}", proxy_table(&proxies)),
        }
        Ok(ExitCode::SUCCESS)
    })
}
