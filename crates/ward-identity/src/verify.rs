//! Peer verification: is this certificate chain a valid X.509-SVID of our
//! trust domain, and may this peer talk to us?
//!
//! [`ChainVerifier`] checks, in order: the leaf's SPIFFE rules (one URI SAN,
//! not a CA, key usage), that its SPIFFE ID is in the bundle's trust domain,
//! the chain to a bundle root (signatures, validity, basic constraints, EKU)
//! with rustls-webpki, and finally the [`PeerAuthorizer`]. Every failure is
//! an error; there is no "verified but" state.
//!
//! Chain signatures dominate the cost (two ECDSA verifications per chain,
//! ~160 µs here), and the same peer presents the same SVID on every
//! connection until it rotates. So a verifier remembers chains it has
//! verified: the result of the signature, structure and EKU checks is a pure
//! function of the chain bytes, the usage and the (fixed) trust anchors. On a
//! hit only the validity window is rechecked against `now`, and if that fails
//! the full verification runs again, so a cached answer always equals an
//! uncached one. Failures are never cached. The authorizer runs every time.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

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

/// Most chains a verifier remembers; past this the cache starts over
/// (bounded memory; a full reset costs one cold verification per live peer).
pub const CHAIN_CACHE_CAPACITY: usize = 16 * 1024;

/// What a successful verification established, valid while `now` stays in
/// the window where every certificate of the verified path is valid.
#[derive(Debug, Clone)]
struct VerifiedChain {
    peer: PeerIdentity,
    /// Latest `notBefore` on the path.
    not_before: u64,
    /// Earliest `notAfter` on the path.
    not_after: u64,
}

/// Verifies peer chains against one trust bundle.
pub struct ChainVerifier {
    trust_domain: TrustDomain,
    anchors: Vec<TrustAnchor<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
    sequence: u64,
    cache: RwLock<HashMap<[u8; 32], VerifiedChain>>,
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
            cache: RwLock::new(HashMap::new()),
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
    /// `authorizer`. Uses the verified-chain cache (see the module docs).
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        usage: Usage,
        now: UnixTime,
        authorizer: &dyn PeerAuthorizer,
    ) -> Result<PeerIdentity, VerifyError> {
        let key = chain_key(leaf, intermediates, usage);
        let secs = now.as_secs();
        let cached = self
            .cache
            .read()
            .ok()
            .and_then(|cache| cache.get(&key).cloned())
            .filter(|c| c.not_before <= secs && secs <= c.not_after);
        let peer = match cached {
            Some(hit) => hit.peer,
            None => {
                let verified = self.verify_chain(leaf, intermediates, usage, now)?;
                let peer = verified.peer.clone();
                if let Ok(mut cache) = self.cache.write() {
                    if cache.len() >= CHAIN_CACHE_CAPACITY {
                        cache.clear();
                    }
                    cache.insert(key, verified);
                }
                peer
            }
        };
        authorize(authorizer, peer)
    }

    /// [`ChainVerifier::verify`] without the cache: every check, every time.
    pub fn verify_uncached(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        usage: Usage,
        now: UnixTime,
        authorizer: &dyn PeerAuthorizer,
    ) -> Result<PeerIdentity, VerifyError> {
        let verified = self.verify_chain(leaf, intermediates, usage, now)?;
        authorize(authorizer, verified.peer)
    }

    fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        usage: Usage,
        now: UnixTime,
    ) -> Result<VerifiedChain, VerifyError> {
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
        let path = cert
            .verify_for_usage(
                self.algorithms.all,
                &self.anchors,
                intermediates,
                now,
                eku,
                None,
                None,
            )
            .map_err(chain_err)?;
        // The window in which webpki's time checks pass for this exact path
        // (it checks `notBefore <= now <= notAfter` on the leaf and each
        // intermediate, never on the anchor).
        let mut not_before = u64::try_from(info.not_before).unwrap_or(u64::MAX);
        let mut not_after = u64::try_from(info.not_after).unwrap_or(0);
        for intermediate in path.intermediate_certificates() {
            let der = intermediate.der();
            let parsed = svid::parse_one(&der)?;
            let validity = parsed.validity();
            not_before =
                not_before.max(u64::try_from(validity.not_before.timestamp()).unwrap_or(u64::MAX));
            not_after = not_after.min(u64::try_from(validity.not_after.timestamp()).unwrap_or(0));
        }
        Ok(VerifiedChain {
            peer: PeerIdentity {
                spiffe_id: info.spiffe_id,
                serial: info.serial,
                not_after: info.not_after,
            },
            not_before,
            not_after,
        })
    }
}

fn authorize(
    authorizer: &dyn PeerAuthorizer,
    peer: PeerIdentity,
) -> Result<PeerIdentity, VerifyError> {
    match authorizer.authorize(&peer) {
        Ok(()) => Ok(peer),
        Err(reason) => Err(VerifyError::Unauthorized {
            id: peer.spiffe_id,
            reason,
        }),
    }
}

/// SHA-256 over the usage and each certificate, length-prefixed so no two
/// different chains share an encoding.
fn chain_key(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    usage: Usage,
) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&[usage as u8]);
    for cert in std::iter::once(leaf).chain(intermediates) {
        ctx.update(&(cert.len() as u64).to_be_bytes());
        ctx.update(cert.as_ref());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
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
