//! `ward svid mint` and `ward svid inspect`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use time::OffsetDateTime;
use ward_identity::ca::CertificateAuthority;
use ward_identity::verify::{AnyMember, ChainVerifier, Usage};
use ward_identity::{KeyAlgorithm, PrivateKey, SpiffeId, TrustBundle, TrustDomain, X509Svid, csr};

use crate::cli::Output;
use crate::cmd::{EXIT_DENIED, ca_dir};

pub(crate) fn mint(
    ca_dir: &Path,
    agent: Option<&str>,
    spiffe_id: Option<&str>,
    ttl: &str,
    out: &Path,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let ttl = crate::cmd::parse_duration(ttl)?;
    let td = ca_dir::trust_domain_of(ca_dir)?;
    let id = match (agent, spiffe_id) {
        (Some(name), _) => td.agent_id(&name.parse().with_context(|| format!("--agent {name:?}"))?),
        (None, Some(id)) => SpiffeId::new(id).with_context(|| format!("--spiffe-id {id:?}"))?,
        (None, None) => anyhow::bail!("give --agent NAME or --spiffe-id ID"),
    };
    let authority = CertificateAuthority::load(ca_dir, td)?;
    // The key is made here and written only to `out`; the CA sees the CSR.
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
    let request = csr::create(&key, &id)?;
    let svid = authority.sign_csr(&request, &id, ttl, OffsetDateTime::now_utc())?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cert_path = out.join("svid.pem");
    let key_path = out.join("svid.key.pem");
    ward_identity::keys::write_file_atomic(&cert_path, svid.to_pem().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    key.write_pem(&key_path)?;
    let leaf = svid.leaf();
    match output {
        Output::Json => crate::cmd::print_json(&json!({
            "spiffe_id": id.as_str(),
            "serial": leaf.serial.as_str(),
            "not_after": leaf.not_after,
            "certificate": cert_path.display().to_string(),
            "key": key_path.display().to_string(),
        }))?,
        Output::Text => {
            eprintln!(
                "issued {id} (serial {}) until {}",
                leaf.serial,
                rfc3339(leaf.not_after)
            );
            eprintln!("  certificate: {}", cert_path.display());
            eprintln!("  key (0600):  {}", key_path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn inspect(
    file: &Path,
    bundle: Option<&Path>,
    trust_domain: Option<&str>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let svid = match X509Svid::read_pem(file) {
        Ok(svid) => svid,
        Err(e) => return Ok(report(output, file, None, Err(e.to_string()))),
    };
    let verdict = match (bundle, trust_domain) {
        (Some(path), Some(td)) => {
            let td = TrustDomain::new(td).with_context(|| format!("--trust-domain {td:?}"))?;
            let bundle = TrustBundle::read(td, path)?;
            let verifier = ChainVerifier::new(&bundle)?;
            let (leaf, intermediates) = svid.chain().split_first().context("empty chain")?;
            let result = verifier
                .verify(leaf, intermediates, Usage::Client, rustls_now(), &AnyMember)
                .map(|_| ())
                .map_err(|e| e.to_string());
            Some(result)
        }
        _ => None,
    };
    Ok(report(output, file, Some(&svid), verdict.unwrap_or(Ok(()))))
}

fn report(
    output: Output,
    file: &Path,
    svid: Option<&X509Svid>,
    verdict: Result<(), String>,
) -> ExitCode {
    let code = if verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DENIED)
    };
    let leaf = svid.map(|s| s.leaf());
    match output {
        Output::Json => {
            let value = json!({
                "file": file.display().to_string(),
                "spiffe_id": leaf.map(|l| l.spiffe_id.to_string()),
                "serial": leaf.map(|l| l.serial.to_string()),
                "not_before": leaf.map(|l| l.not_before),
                "not_after": leaf.map(|l| l.not_after),
                "chain_length": svid.map(|s| s.chain().len()),
                "valid": verdict.is_ok(),
                "error": verdict.as_ref().err(),
            });
            if let Err(e) = crate::cmd::print_json(&value) {
                eprintln!("error: {e}");
            }
        }
        Output::Text => {
            if let Some(l) = leaf {
                eprintln!("SPIFFE ID:  {}", l.spiffe_id);
                eprintln!("serial:     {}", l.serial);
                eprintln!("valid from: {}", rfc3339(l.not_before));
                eprintln!("valid to:   {}", rfc3339(l.not_after));
            }
            match &verdict {
                Ok(()) => eprintln!("result:     ok"),
                Err(e) => eprintln!("result:     REFUSED: {e}"),
            }
        }
    }
    code
}

fn rustls_now() -> rustls_pki_types::UnixTime {
    rustls_pki_types::UnixTime::now()
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
