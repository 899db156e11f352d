//! `ward agent register|list|show|update|retire`: the registry, through the
//! server's admin API.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use ward_client::Method;
use ward_server::api::agents::RevokeResponse;
use ward_server::store::{Agent, AgentAttributes};

use crate::cli::{AgentCommand, AttributeFlags, Output};
use crate::cmd::{client, receipts};
use crate::table;

pub(crate) fn run(args: crate::cli::AgentArgs) -> anyhow::Result<ExitCode> {
    let output = args.conn.output;
    let api = client::connect(&args.conn)?;
    client::runtime()?.block_on(async move {
        match args.command {
            AgentCommand::Register { name, attributes } => {
                let attrs = apply(AgentAttributes::default(), &attributes)?;
                let agent: Agent = api
                    .call(
                        Method::POST,
                        "/v1/agents",
                        Some(&json!({"name": name, "attributes": attrs})),
                    )
                    .await?;
                if output == Output::Text {
                    eprintln!("registered {} ({})", agent.name, agent.spiffe_id);
                    eprintln!(
                        "  next: ward token create --agent {} — then give the token to its proxy",
                        agent.name
                    );
                }
                print_one(&agent, output)
            }
            AgentCommand::List => {
                let agents: Vec<Agent> = api.get("/v1/agents").await?;
                print_many(&agents, output)
            }
            AgentCommand::Show { name } => {
                let agent: Agent = api.get(&agent_path(&name)?).await?;
                print_one(&agent, output)
            }
            AgentCommand::Update {
                name,
                attributes,
                remove_labels,
                endpoint,
            } => {
                let path = agent_path(&name)?;
                // Read-modify-write so unset flags keep their values; the
                // API replaces the attribute set as a whole.
                let current: Agent = api.get(&path).await?;
                let mut attrs = apply(current.attributes, &attributes)?;
                for key in &remove_labels {
                    if attrs.labels.remove(key).is_none() {
                        anyhow::bail!("agent {name} has no label {key:?}");
                    }
                }
                let body = match endpoint {
                    Some(endpoint) => json!({ "attributes": attrs, "endpoint": endpoint }),
                    None => json!({ "attributes": attrs }),
                };
                let agent: Agent = api.call(Method::PATCH, &path, Some(&body)).await?;
                print_one(&agent, output)
            }
            AgentCommand::Revoke { name, reason, wait } => {
                let resp: RevokeResponse = api
                    .call(
                        Method::POST,
                        &format!("{}/revoke", agent_path(&name)?),
                        Some(&json!({ "reason": reason })),
                    )
                    .await?;
                if output == Output::Text {
                    eprintln!(
                        "revoked {name} at revision {} ({}); proxies refuse its certificates as they apply it",
                        resp.revocation.revision, resp.revocation.reason
                    );
                }
                let revision = resp.revocation.revision;
                receipts::after_change(&api, revision, &wait, serde_json::to_value(&resp)?, output)
                    .await
            }
            AgentCommand::Quarantine { name, wait } => {
                let agent: Agent = api
                    .call(
                        Method::POST,
                        &format!("{}/quarantine", agent_path(&name)?),
                        None::<&()>,
                    )
                    .await?;
                if output == Output::Text {
                    eprintln!("quarantined {}; `ward agent release {0}` ends it", agent.name);
                    print_one(&agent, output)?;
                }
                receipts::after_change(&api, agent.revision, &wait, serde_json::to_value(&agent)?, output)
                    .await
            }
            AgentCommand::Release { name, wait } => {
                let agent: Agent = api
                    .call(
                        Method::POST,
                        &format!("{}/release", agent_path(&name)?),
                        None::<&()>,
                    )
                    .await?;
                if output == Output::Text {
                    print_one(&agent, output)?;
                }
                receipts::after_change(&api, agent.revision, &wait, serde_json::to_value(&agent)?, output)
                    .await
            }
            AgentCommand::Retire { name } => {
                let agent: Agent = api
                    .call(
                        Method::POST,
                        &format!("{}/retire", agent_path(&name)?),
                        None::<&()>,
                    )
                    .await?;
                if output == Output::Text {
                    eprintln!(
                        "retired {}; its certificates will not be renewed",
                        agent.name
                    );
                }
                print_one(&agent, output)
            }
        }
    })
}

/// `/v1/agents/<name>` for a syntactically valid name (checked here so a
/// typo gets the naming rules, not a 404).
fn agent_path(name: &str) -> anyhow::Result<String> {
    let name = ward_core::AgentName::new(name).with_context(|| format!("agent name {name:?}"))?;
    Ok(format!("/v1/agents/{name}"))
}

fn pairs(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--{flag} {item:?}: expected KEY=VALUE"))
        })
        .collect()
}

fn apply(mut attrs: AgentAttributes, flags: &AttributeFlags) -> anyhow::Result<AgentAttributes> {
    if let Some(team) = &flags.team {
        attrs.team = Some(team.clone());
    }
    if let Some(tier) = &flags.risk_tier {
        attrs.risk_tier = Some(tier.clone());
    }
    if let Some(clearance) = &flags.clearance {
        attrs.clearance = Some(clearance.clone());
    }
    attrs.labels.extend(pairs("label", &flags.labels)?);
    attrs.model.extend(pairs("model", &flags.model)?);
    Ok(attrs)
}

fn joined(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn dash(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "-".to_owned())
}

fn print_one(agent: &Agent, output: Output) -> anyhow::Result<ExitCode> {
    match output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(agent)?)?,
        Output::Text => {
            let a = &agent.attributes;
            print!(
                "{}",
                table::fields(&[
                    ("name", agent.name.to_string()),
                    ("spiffe id", agent.spiffe_id.to_string()),
                    ("status", agent.status.to_string()),
                    ("team", dash(a.team.as_ref())),
                    ("risk tier", dash(a.risk_tier.as_ref())),
                    ("clearance", dash(a.clearance.as_ref())),
                    ("labels", joined(&a.labels)),
                    ("model", joined(&a.model)),
                    ("endpoint", dash(agent.endpoint.as_ref())),
                    ("revision", agent.revision.to_string()),
                ])
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_many(agents: &[Agent], output: Output) -> anyhow::Result<ExitCode> {
    match output {
        Output::Json => crate::cmd::print_json(&serde_json::to_value(agents)?)?,
        Output::Text => {
            let rows: Vec<Vec<String>> = agents
                .iter()
                .map(|a| {
                    vec![
                        a.name.to_string(),
                        a.status.to_string(),
                        dash(a.attributes.team.as_ref()),
                        dash(a.attributes.risk_tier.as_ref()),
                        dash(a.attributes.clearance.as_ref()),
                        a.spiffe_id.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &["NAME", "STATUS", "TEAM", "RISK", "CLEARANCE", "SPIFFE ID"],
                    &rows
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
