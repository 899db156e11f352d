//! `ward token create`: a single-use join token for one agent.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use ward_client::Method;
use ward_server::api::agents::TokenResponse;

use crate::cli::{Output, TokenCommand};
use crate::cmd::client;

pub(crate) fn run(args: crate::cli::TokenArgs) -> anyhow::Result<ExitCode> {
    let output = args.conn.output;
    let api = client::connect(&args.conn)?;
    let TokenCommand::Create { agent, ttl } = args.command;
    let ttl = crate::cmd::parse_duration(&ttl)?;
    let name = ward_core::AgentName::new(&agent).with_context(|| format!("--agent {agent:?}"))?;
    let token: TokenResponse = client::runtime()?.block_on(api.call(
        Method::POST,
        &format!("/v1/agents/{name}/tokens"),
        Some(&json!({ "ttl_secs": ttl.as_secs() })),
    ))?;
    match output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(&token)?)?,
        Output::Text => {
            // The secret alone on stdout, so `$(ward token create …)` works;
            // guidance on stderr.
            println!("{}", token.token);
            eprintln!(
                "join token for {} (single use, expires {}); enroll with:",
                token.agent,
                crate::cmd::rfc3339(token.expires_at)
            );
            eprintln!(
                "  ward proxy run --server {} --bundle <server-data-dir>/bundle.json --agent {} --join-token <token> --upstream <app host:port>",
                api.addr(),
                token.agent
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
