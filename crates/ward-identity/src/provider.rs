//! The one place that chooses Ward's cryptography.
//!
//! rustls with aws-lc-rs: the fastest handshakes and signatures available to
//! rustls, and — with the `prefer-post-quantum` feature — X25519MLKEM768 hybrid
//! key exchange offered first, falling back to X25519 for classical peers.
//! Everything in Ward that builds a TLS config or verifies a signature takes
//! its algorithms from here, so switching provider (e.g. to the FIPS build) is
//! a change to this file alone.

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};

/// The crypto provider every Ward TLS config uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs [`crypto_provider`] as the process default. Idempotent; `main`
/// calls it first so that any rustls use outside Ward's builders agrees.
pub fn install_default() {
    // Err means a provider is already installed — ours, by an earlier call.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Signature algorithms accepted in certificates and TLS handshakes.
pub fn signature_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// Fills `buf` from the provider's CSPRNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), aws_lc_rs::error::Unspecified> {
    aws_lc_rs::rand::fill(buf)
}
