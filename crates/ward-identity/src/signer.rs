//! The [`Signer`] trait: how the CA signs without holding a key itself.
//!
//! Today the implementation is a [`PrivateKey`] loaded from a 0600 file; a
//! KMS or HSM signer implements the same trait and the CA does not change.

use crate::keys::{KeyAlgorithm, PrivateKey};

/// Error from a [`Signer`].
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {reason}")]
pub struct SignerError {
    /// What the backend reported (never key material).
    pub reason: String,
}

/// Something that can sign with a private key it keeps to itself.
pub trait Signer: Send + Sync {
    /// The key's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;
    /// The raw public key bits (uncompressed EC point or Ed25519 key).
    fn public_key_raw(&self) -> &[u8];
    /// Signs `message` (ECDSA: ASN.1 DER signature over SHA-256 of it).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
}

impl Signer for PrivateKey {
    fn algorithm(&self) -> KeyAlgorithm {
        PrivateKey::algorithm(self)
    }

    fn public_key_raw(&self) -> &[u8] {
        PrivateKey::public_key_raw(self)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        rcgen::SigningKey::sign(self.rcgen(), message).map_err(|e| SignerError {
            reason: e.to_string(),
        })
    }
}

/// Adapts any [`Signer`] to the trait rcgen signs certificates with.
pub(crate) struct RcgenSigner<'a>(pub(crate) &'a dyn Signer);

impl rcgen::PublicKeyData for RcgenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm().rcgen()
    }
}

impl rcgen::SigningKey for RcgenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // rcgen's error type has no variant for a remote signer's message;
        // the reason is logged here and the caller gets a generic failure.
        self.0.sign(msg).map_err(|e| {
            tracing::error!(error = %e, "certificate signing failed");
            rcgen::Error::RemoteKeyError
        })
    }
}
