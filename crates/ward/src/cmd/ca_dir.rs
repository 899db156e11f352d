//! The offline CA directory's trust-domain file: written by `ward ca init`,
//! read by `ward svid mint`. Apart from `ca.rs` because `svid` is in the
//! sidecar build (`--no-default-features`) and the rest of `ca` is not.

use std::path::Path;

use anyhow::Context;
use ward_identity::TrustDomain;

/// File in a CA directory naming its trust domain.
pub(crate) const TRUST_DOMAIN_FILE: &str = "trust-domain";

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
