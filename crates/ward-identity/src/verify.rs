//! Peer verification: is this certificate chain a valid X.509-SVID of our
//! trust domain, and may this peer talk to us?
//!
//! [`ChainVerifier`] checks, in order: the leaf's SPIFFE rules (one URI SAN,
//! not a CA, key usage), that its SPIFFE ID is in the bundle's trust domain,
//! the chain to a bundle root (signatures, validity, basic constraints, EKU)
//! with rustls-webpki, and finally the [`PeerAuthorizer`]. Every failure is
//! an error; there is no "verified but" state.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use ward_core::{SpiffeId, TrustDomain};
use webpki::{EndEntityCert, KeyUsage};

use crate::bundle::TrustBundle;
use crate::svid::{self, Serial, SvidError};

/// A verified peer: who it is and which certificate proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The peer's SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// Serial of the leaf certificate (what revocation by serial names).
    pub serial: Serial,
    /// When the leaf expires, seconds since the epoch.
    pub not_after: i64,
}

/// Which side of a connection a certificate must be valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// The peer is a TLS client (we are the server).
    Client,
    /// The peer is a TLS server (we are the client).
    Server,
}

/// Why a peer was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The leaf breaks an X.509-SVID rule.
    #[error("peer certificate is not a valid X.509-SVID: {0}")]
    Svid(#[from] SvidError),
    /// The peer's SPIFFE ID belongs to a trust domain we have no bundle for.
    #[error("peer {id} is not in trust domain {expected}")]
    ForeignTrustDomain {
        /// The peer's ID.
        id: SpiffeId,
        /// Our trust domain.
        expected: TrustDomain,
    },
    /// The chain does not verify against the bundle.
    #[error("peer {id} chain does not verify: {source}")]
    Chain {
        /// The peer's (claimed) ID.
        id: SpiffeId,
        /// What webpki found.
        #[source]
        source: webpki::Error,
    },
    /// The chain is fine but the authorizer said no.
    #[error("peer {id} is not authorized: {reason}")]
    Unauthorized {
        /// The peer's ID.
        id: SpiffeId,
        /// The authorizer's reason.
        reason: String,
    },
    /// A bundle root is not usable as a trust anchor.
    #[error("trust bundle authority #{index} is unusable: {source}")]
    BadAuthority {
        /// Position in the bundle.
        index: usize,
        /// What webpki found.
        #[source]
        source: webpki::Error,
    },
}

impl VerifyError {
    /// The rustls error to abort the handshake with.
    pub(crate) fn to_rustls(&self) -> rustls::Error {
        use rustls::CertificateError as C;
        let kind = match self {
            Self::Chain { source, .. } => match source {
                webpki::Error::CertExpired { .. } => C::Expired,
                webpki::Error::CertNotValidYet { .. } => C::NotValidYet,
                webpki::Error::UnknownIssuer => C::UnknownIssuer,
                webpki::Error::InvalidSignatureForPublicKey => C::BadSignature,
                _ => C::BadEncoding,
            },
            Self::Unauthorized { .. } | Self::ForeignTrustDomain { .. } => {
                C::ApplicationVerificationFailure
            }
            Self::Svid(_) | Self::BadAuthority { .. } => C::BadEncoding,
        };
        rustls::Error::InvalidCertificate(kind)
    }
}

/// Decides whether a verified peer may connect.
pub trait PeerAuthorizer: Send + Sync + fmt::Debug {
    /// `Ok` to accept; `Err(reason)` to refuse.
    fn authorize(&self, peer: &PeerIdentity) -> Result<(), String>;
}

/// Accepts any peer whose chain verified (i.e. any member of the trust domain).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyMember;

impl PeerAuthorizer for AnyMember {
    fn authorize(&self, _peer: &PeerIdentity) -> Result<(), String> {
        Ok(())
    }
}

/// Accepts only the listed SPIFFE IDs.
#[derive(Debug, Clone, Default)]
pub struct ExactIds(pub HashSet<SpiffeId>);

impl PeerAuthorizer for ExactIds {
    fn authorize(&self, peer: &PeerIdentity) -> Result<(), String> {
        if self.0.contains(&peer.spiffe_id) {
            Ok(())
        } else {
            Err(format!(
                "{} is not in the allowed peer list",
                peer.spiffe_id
            ))
        }
    }
}

/// Accepts peers from the listed trust domains.
#[derive(Debug, Clone, Default)]
pub struct TrustDomains(pub HashSet<TrustDomain>);

impl PeerAuthorizer for TrustDomains {
    fn authorize(&self, peer: &PeerIdentity) -> Result<(), String> {
        if self.0.contains(peer.spiffe_id.trust_domain()) {
            Ok(())
        } else {
            Err(format!(
                "trust domain {} is not allowed",
                peer.spiffe_id.trust_domain()
            ))
        }
    }
}

/// Verifies peer chains against one trust bundle.
pub struct ChainVerifier {
    trust_domain: TrustDomain,
    anchors: Vec<TrustAnchor<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
    sequence: u64,
}

impl fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("trust_domain", &self.trust_domain)
            .field("anchors", &self.anchors.len())
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl ChainVerifier {
    /// Prepares trust anchors from every X.509 authority of `bundle`.
    pub fn new(bundle: &TrustBundle) -> Result<Self, VerifyError> {
        let anchors = bundle
            .x509_authorities
            .iter()
            .enumerate()
            .map(|(index, der)| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|source| VerifyError::BadAuthority { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            trust_domain: bundle.trust_domain.clone(),
            anchors,
            algorithms: crate::provider::signature_algorithms(),
            sequence: bundle.sequence,
        })
    }

    /// The trust domain this verifier accepts.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The bundle sequence it was built from.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Verifies `leaf` + `intermediates` for `usage` at `now`, then asks
    /// `authorizer`.
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        usage: Usage,
        now: UnixTime,
        authorizer: &dyn PeerAuthorizer,
    ) -> Result<PeerIdentity, VerifyError> {
        let info = svid::parse_leaf(leaf)?;
        if !info.spiffe_id.is_member_of(&self.trust_domain) {
            return Err(VerifyError::ForeignTrustDomain {
                id: info.spiffe_id,
                expected: self.trust_domain.clone(),
            });
        }
        let chain_err = |source| VerifyError::Chain {
            id: info.spiffe_id.clone(),
            source,
        };
        let cert = EndEntityCert::try_from(leaf).map_err(chain_err)?;
        let eku = match usage {
            Usage::Client => KeyUsage::client_auth(),
            Usage::Server => KeyUsage::server_auth(),
        };
        cert.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            intermediates,
            now,
            eku,
            None,
            None,
        )
        .map_err(chain_err)?;
        let peer = PeerIdentity {
            spiffe_id: info.spiffe_id,
            serial: info.serial,
            not_after: info.not_after,
        };
        authorizer
            .authorize(&peer)
            .map_err(|reason| VerifyError::Unauthorized {
                id: peer.spiffe_id.clone(),
                reason,
            })?;
        Ok(peer)
    }
}

/// The current trust bundle, swappable while connections are being verified
/// (bundle rotation never blocks a handshake).
#[derive(Debug)]
pub struct TrustStore {
    current: ArcSwap<ChainVerifier>,
}

impl TrustStore {
    /// Starts with `bundle`.
    pub fn new(bundle: &TrustBundle) -> Result<Self, VerifyError> {
        Ok(Self {
            current: ArcSwap::from_pointee(ChainVerifier::new(bundle)?),
        })
    }

    /// Replaces the bundle; handshakes already past verification are unaffected.
    pub fn update(&self, bundle: &TrustBundle) -> Result<(), VerifyError> {
        self.current.store(Arc::new(ChainVerifier::new(bundle)?));
        Ok(())
    }

    /// The verifier for the current bundle.
    pub fn current(&self) -> Arc<ChainVerifier> {
        self.current.load_full()
    }
}
