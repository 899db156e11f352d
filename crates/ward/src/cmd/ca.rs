//! `ward ca init`: bootstrap a CA directory offline.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;
use ward_identity::ca::{CaOptions, CertificateAuthority};
use ward_identity::jwt::JwtSigner;
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, TrustDomain};

use crate::cli::Output;

/// File in a CA directory naming its trust domain.
pub(crate) const TRUST_DOMAIN_FILE: &str = "trust-domain";
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

/// Reads the trust domain a CA directory was made for.
pub(crate) fn trust_domain_of(dir: &Path) -> anyhow::Result<TrustDomain> {
    let path = dir.join(TRUST_DOMAIN_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is not a CA directory (no {TRUST_DOMAIN_FILE}); create one with `ward ca init`",
            dir.display()
        )
    })?;
    TrustDomain::new(text.trim()).with_context(|| format!("{}", path.display()))
}
