//! Ward's identity plane — the only crate that touches private keys,
//! certificates and TLS configuration.
//!
//! | module | owns |
//! |---|---|
//! | [`provider`] | the one crypto provider (rustls + aws-lc-rs, post-quantum hybrid key exchange first) |
//! | [`keys`] | key generation, 0600 key files, redacted key handling |
//! | [`signer`] | the [`Signer`] trait the CA signs through (key file now, KMS/HSM later) |
//! | [`ca`] | the certificate authority: root + online intermediate, CSR → X.509-SVID |
//! | [`csr`] | CSR creation (callers) and CSR checks (CA) |
//! | [`svid`] | X.509-SVID parsing by the SPIFFE rules, PEM I/O |
//! | [`bundle`] | trust bundles in the SPIFFE bundle (JWKS) format |
//! | [`jwt`] | JWT-SVID issuance and verification |
//! | [`verify`] | chain + SPIFFE verification of a peer, and peer authorizers |
//! | [`tls`] | rustls client/server configs with SPIFFE verifiers and rotating SVIDs |
//!
//! Identity newtypes ([`SpiffeId`], [`TrustDomain`]) live in `ward-core` so
//! that crates which only *name* identities (policy, audit) need no crypto.

pub mod bundle;
pub mod ca;
pub mod csr;
pub mod jwt;
pub mod keys;
pub mod provider;
pub mod signer;
pub mod svid;
pub mod tls;
pub mod verify;

pub use bundle::TrustBundle;
pub use ca::CertificateAuthority;
pub use keys::{KeyAlgorithm, PrivateKey};
pub use signer::Signer;
pub use svid::X509Svid;
pub use verify::{PeerAuthorizer, PeerIdentity};
pub use ward_core::{SpiffeId, TrustDomain};
