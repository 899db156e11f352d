//! `ward cert revoke|revocations`: per-certificate revocation.

use std::process::ExitCode;

use serde_json::json;
use ward_client::Method;
use ward_server::api::agents::RevokeResponse;
use ward_server::store::{Revocation, RevocationTarget};

use crate::cli::{CertCommand, Output};
use crate::cmd::client;
use crate::table;

pub(crate) fn run(args: crate::cli::CertArgs) -> anyhow::Result<ExitCode> {
    let output = args.conn.output;
    let api = client::connect(&args.conn)?;
    client::runtime()?.block_on(async move {
        match args.command {
            CertCommand::Revoke {
                serial,
                reason,
                wait,
            } => {
                let clean: String = serial.chars().filter(|c| *c != ':').collect();
                anyhow::ensure!(
                    !clean.is_empty() && clean.chars().all(|c| c.is_ascii_hexdigit()),
                    "serial {serial:?} is not hex; `ward svid inspect FILE` shows a certificate's serial"
                );
                let resp: RevokeResponse = api
                    .call(
                        Method::POST,
                        &format!("/v1/certificates/{clean}/revoke"),
                        Some(&json!({ "reason": reason })),
                    )
                    .await?;
                if output == Output::Text {
                    eprintln!(
                        "revoked certificate {} at revision {}",
                        clean.to_lowercase(),
                        resp.revocation.revision
                    );
                }
                let revision = resp.revocation.revision;
                return crate::cmd::receipts::after_change(
                    &api,
                    revision,
                    &wait,
                    serde_json::to_value(&resp)?,
                    output,
                )
                .await;
            }
            CertCommand::Revocations => {
                let list: Vec<Revocation> = api.get("/v1/revocations").await?;
                match output {
                    Output::Json => crate::cmd::print_json(&serde_json::to_value(&list)?)?,
                    Output::Text => {
                        let rows: Vec<Vec<String>> = list
                            .iter()
                            .map(|r| {
                                let (kind, subject) = match &r.target {
                                    RevocationTarget::Agent(a) => ("agent", a.to_string()),
                                    RevocationTarget::Serial(s) => ("serial", s.clone()),
                                };
                                vec![
                                    kind.to_owned(),
                                    subject,
                                    r.revision.to_string(),
                                    crate::cmd::rfc3339(r.revoked_at),
                                    r.reason.clone(),
                                ]
                            })
                            .collect();
                        print!(
                            "{}",
                            table::render(&["KIND", "SUBJECT", "REVISION", "REVOKED AT", "REASON"], &rows)
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
