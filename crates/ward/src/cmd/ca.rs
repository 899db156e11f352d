//! `ward ca`: `init` bootstraps a CA directory offline; `status`, `rotate`,
//! `activate` and `retire` drive the server's CA rotation (see
//! `ward_server::authority` for the lifecycle).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;
use ward_identity::ca::{CaOptions, CertificateAuthority};
use ward_identity::jwt::JwtSigner;
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, TrustDomain};

use base64::Engine as _;
use ward_client::Method;
use ward_server::api::ca::{CaStatus, Transition};
use ward_server::api::enroll::SvidResponse;
use ward_server::api::proxies::Receipts;

use crate::cli::{Connection, Output};
use crate::cmd::ca_dir::TRUST_DOMAIN_FILE;
use crate::cmd::client;
use crate::table;

/// The trust bundle (SPIFFE bundle JSON) in a CA directory.
pub(crate) const BUNDLE_FILE: &str = "bundle.json";
/// The JWT-SVID signing key in a CA directory.
pub(crate) const JWT_KEY_FILE: &str = "jwt.key.pem";

pub(crate) fn init(
    dir: &Path,
    trust_domain: &str,
    algorithm: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let td = TrustDomain::new(trust_domain)
        .with_context(|| format!("--trust-domain {trust_domain:?}"))?;
    let algorithm: KeyAlgorithm = algorithm.parse()?;
    if dir.join(TRUST_DOMAIN_FILE).exists() {
        bail!(
            "{} already holds a CA; choose another --dir or remove it first (this would replace its keys)",
            dir.display()
        );
    }
    let options = CaOptions {
        algorithm,
        ..CaOptions::default()
    };
    let generated = CertificateAuthority::generate(&td, &options)?;
    CertificateAuthority::write(&generated, dir)?;
    let jwt_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
    jwt_key.write_pem(&dir.join(JWT_KEY_FILE))?;
    let signer = JwtSigner::new(&jwt_key)?;
    let bundle = TrustBundle::new(
        td.clone(),
        vec![generated.ca.root().clone()],
        vec![signer.authority()],
    );
    let bundle_path = dir.join(BUNDLE_FILE);
    ward_identity::keys::write_file_atomic(&bundle_path, bundle.to_json()?.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", bundle_path.display()))?;
    let td_path = dir.join(TRUST_DOMAIN_FILE);
    ward_identity::keys::write_file_atomic(&td_path, format!("{td}\n").as_bytes(), 0o644)
        .with_context(|| format!("writing {}", td_path.display()))?;

    match output {
        Output::Json => crate::cmd::print_json(&json!({
            "trust_domain": td.as_str(),
            "algorithm": algorithm.as_str(),
            "dir": dir.display().to_string(),
            "bundle": bundle_path.display().to_string(),
            "intermediate_not_after": generated.ca.intermediate_not_after().unix_timestamp(),
        }))?,
        Output::Text => {
            eprintln!(
                "created CA for trust domain {td} ({algorithm}) in {}",
                dir.display()
            );
            eprintln!("  trust bundle: {}", bundle_path.display());
            eprintln!("  keys are mode 0600; keep root.key.pem offline when you can");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ward ca status`.
pub(crate) fn status(conn: &Connection) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let output = conn.output;
    client::runtime()?.block_on(async move {
        let status: CaStatus = api.get("/v1/ca").await?;
        match output {
            Output::Json => crate::cmd::print_json(&serde_json::to_value(&status)?)?,
            Output::Text => print_status(&status),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_status(status: &CaStatus) {
    println!(
        "trust domain {}: issuing from {} (bundle sequence {})",
        status.trust_domain, status.issuing, status.bundle_sequence
    );
    let rows: Vec<Vec<String>> = status
        .authorities
        .iter()
        .map(|a| {
            let text = |k: &str| a[k].as_str().unwrap_or("-").to_owned();
            let time = |k: &str| {
                a[k].as_i64()
                    .map_or_else(|| "-".to_owned(), crate::cmd::rfc3339)
            };
            vec![
                text("id"),
                text("state"),
                a["root_sha256"]
                    .as_str()
                    .map_or_else(|| "-".to_owned(), |s| s.chars().take(16).collect()),
                time("intermediate_not_after"),
                a["certificates"].as_u64().unwrap_or(0).to_string(),
                if a["key_here"] == true { "yes" } else { "no" }.to_owned(),
                time("activated_at"),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "AUTHORITY",
                "STATE",
                "ROOT SHA-256",
                "EXPIRES",
                "VALID CERTS",
                "KEY HERE",
                "ACTIVATED",
            ],
            &rows,
        )
    );
}

/// `ward ca rotate`.
pub(crate) fn rotate(
    root: bool,
    no_activate: bool,
    timeout: &str,
    conn: &Connection,
) -> anyhow::Result<ExitCode> {
    let timeout = crate::cmd::parse_duration(timeout)?;
    let api = client::connect(conn)?;
    let output = conn.output;
    let text = output == Output::Text;
    client::runtime()?.block_on(async move {
        let before: CaStatus = api.get("/v1/ca").await?;
        let staged: Transition = api
            .call(Method::POST, "/v1/ca/rotate", Some(&json!({ "root": root })))
            .await?;
        if text {
            eprintln!(
                "staged CA authority {} ({}) at revision {}; waiting up to {} s for every connected proxy to trust it",
                staged.id,
                if root { "new root and intermediate" } else { "new intermediate, same root" },
                staged.revision,
                timeout.as_secs()
            );
        }
        if no_activate {
            if text {
                eprintln!("not activated (--no-activate); run `ward ca activate {}` when ready", staged.id);
            } else {
                crate::cmd::print_json(&json!({ "staged": staged }))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let receipts: Receipts = api
            .get(&format!(
                "/v1/receipts/{}?timeout_ms={}",
                staged.revision,
                timeout.as_millis()
            ))
            .await?;
        if !receipts.pending.is_empty() {
            // Activating now would hand out certificates some connected
            // proxy cannot verify yet: stop, leave it staged, say why.
            if text {
                eprintln!(
                    "NOT ACTIVATED: {} connected prox{} did not apply revision {} within {} s: {}",
                    receipts.pending.len(),
                    if receipts.pending.len() == 1 { "y" } else { "ies" },
                    staged.revision,
                    timeout.as_secs(),
                    receipts.pending.iter().map(|p| p.agent.as_str()).collect::<Vec<_>>().join(", ")
                );
                eprintln!(
                    "authority {} stays staged; `ward ca activate {}` once they catch up, or `ward ca retire {}` to abandon it",
                    staged.id, staged.id, staged.id
                );
            } else {
                crate::cmd::print_json(&json!({ "staged": staged, "receipts": receipts }))?;
            }
            return Ok(ExitCode::from(crate::cmd::EXIT_DENIED));
        }
        if text {
            eprintln!(
                "trusted by {} connected prox{} in {} ms{}",
                receipts.applied.len(),
                if receipts.applied.len() == 1 { "y" } else { "ies" },
                receipts.waited_ms,
                if receipts.disconnected.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} disconnected ones get it on reconnect, before they serve)",
                        receipts.disconnected.len()
                    )
                }
            );
        }
        let active: Transition = api
            .call(
                Method::POST,
                &format!("/v1/ca/authorities/{}/activate", staged.id),
                None::<&()>,
            )
            .await?;
        if let Err(e) = refresh_credentials(&api, conn, true).await {
            eprintln!(
                "warning: this CLI's bundle and admin SVID were not refreshed ({e:#}); it may lose the server when {} is retired",
                before.issuing
            );
        }
        match output {
            Output::Json => crate::cmd::print_json(&json!({
                "previous": before.issuing,
                "staged": staged,
                "activated": active,
                "receipts": receipts,
            }))?,
            Output::Text => {
                println!(
                    "CA authority {} now issues (revision {}); {} is retiring and still trusted",
                    active.id, active.revision, before.issuing
                );
                println!(
                    "proxies re-enroll now; once {}'s certificates have expired (`ward ca status`), run `ward ca retire {}`",
                    before.issuing, before.issuing
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `ward ca activate`.
pub(crate) fn activate(id: &str, conn: &Connection) -> anyhow::Result<ExitCode> {
    transition(
        conn,
        &format!("/v1/ca/authorities/{id}/activate"),
        None,
        true,
    )
}

/// `ward ca retire`.
pub(crate) fn retire(id: &str, force: bool, conn: &Connection) -> anyhow::Result<ExitCode> {
    transition(
        conn,
        &format!("/v1/ca/authorities/{id}/retire"),
        Some(json!({ "force": force })),
        false,
    )
}

fn transition(
    conn: &Connection,
    path: &str,
    body: Option<serde_json::Value>,
    renew: bool,
) -> anyhow::Result<ExitCode> {
    let api = client::connect(conn)?;
    let output = conn.output;
    client::runtime()?.block_on(async move {
        let done: Transition = api.call(Method::POST, path, body.as_ref()).await?;
        if let Err(e) = refresh_credentials(&api, conn, renew).await {
            eprintln!(
                "warning: {done:?} done, but this CLI's bundle/SVID were not refreshed: {e:#}"
            );
        }
        match output {
            Output::Json => crate::cmd::print_json(&serde_json::to_value(&done)?)?,
            Output::Text => println!(
                "CA authority {} is {} (revision {})",
                done.id, done.state, done.revision
            ),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Keeps this CLI working across a rotation: saves the server's current
/// bundle into the client config's bundle file and, when `renew`, renews
/// the admin SVID from the issuing authority (a fresh key made here, 0600;
/// the old root may leave the bundle later).
async fn refresh_credentials(
    api: &ward_client::Client,
    conn: &Connection,
    renew: bool,
) -> anyhow::Result<()> {
    let path = client::config_path(conn)?;
    let file = client::ClientFile::read(&path)?;
    let bundle: serde_json::Value = api.get("/v1/bundle").await?;
    let text = serde_json::to_string_pretty(&bundle)?;
    // Refuse to write something this CLI could not read back.
    let td = TrustDomain::new(&file.trust_domain)?;
    TrustBundle::from_json(td, text.as_bytes()).context("the server's bundle")?;
    ward_identity::keys::write_file_atomic(&file.bundle, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", file.bundle.display()))?;
    if !renew {
        return Ok(());
    }
    let current = ward_identity::X509Svid::read_pem(&file.certificate)?;
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
    let csr = ward_identity::csr::create(&key, current.spiffe_id())?;
    let renewed: SvidResponse = api
        .call(
            Method::POST,
            "/v1/renew",
            Some(&json!({ "csr": base64::engine::general_purpose::STANDARD.encode(csr.as_ref()) })),
        )
        .await?;
    // Two files replaced one after the other: a crash in between leaves a
    // pair that does not match, which the next command reports; the admin
    // files `ward server init` wrote in the data directory still work.
    key.write_pem(&file.key)?;
    ward_identity::keys::write_file_atomic(&file.certificate, renewed.svid.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", file.certificate.display()))?;
    Ok(())
}
