//! rustls configurations for Ward's mutual TLS: SPIFFE verifiers on both
//! sides, TLS 1.3 only, and certificates that rotate without rebuilding the
//! config.
//!
//! Server names play no part: a peer is identified by the SPIFFE ID in its
//! certificate and accepted by a [`PeerAuthorizer`], never by DNS.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::keys::PrivateKey;
use crate::svid::{self, X509Svid};
use crate::verify::{PeerAuthorizer, PeerIdentity, TrustStore, Usage};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the key, certificate or settings.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Our current SVID and key, handed to rustls for every handshake and
/// replaceable at any moment (rotation at half-life).
pub struct SvidResolver {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for SvidResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SvidResolver(<key redacted>)")
    }
}

impl SvidResolver {
    /// Starts with `svid` and its `key`; fails if they do not match.
    pub fn new(svid: &X509Svid, key: &PrivateKey) -> Result<Self, TlsError> {
        Ok(Self {
            current: ArcSwap::from_pointee(certified_key(svid, key)?),
        })
    }

    /// Switches to a new SVID for all later handshakes.
    pub fn rotate(&self, svid: &X509Svid, key: &PrivateKey) -> Result<(), TlsError> {
        self.current.store(Arc::new(certified_key(svid, key)?));
        Ok(())
    }
}

fn certified_key(svid: &X509Svid, key: &PrivateKey) -> Result<CertifiedKey, TlsError> {
    let provider = crate::provider::crypto_provider();
    Ok(CertifiedKey::from_der(
        svid.chain().to_vec(),
        key.to_pkcs8_der(),
        &provider,
    )?)
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Whether a server demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No certificate, no handshake: the default everywhere in the mesh.
    #[default]
    Required,
    /// A certificate, if sent, must verify; none is also accepted. Only for
    /// endpoints that authenticate another way (first enrollment with a
    /// join token), and each handler then decides what an anonymous caller
    /// may do.
    Optional,
}

/// Verifies TLS peers as SPIFFE workloads of the current trust bundle.
pub struct SpiffeVerifier {
    trust: Arc<TrustStore>,
    authorizer: Arc<dyn PeerAuthorizer>,
    algorithms: WebPkiSupportedAlgorithms,
    client_auth: ClientAuth,
}

impl fmt::Debug for SpiffeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeVerifier")
            .field("trust", &self.trust)
            .field("authorizer", &self.authorizer)
            .finish()
    }
}

impl SpiffeVerifier {
    /// A verifier over `trust` that admits peers `authorizer` accepts.
    pub fn new(trust: Arc<TrustStore>, authorizer: Arc<dyn PeerAuthorizer>) -> Self {
        Self {
            trust,
            authorizer,
            algorithms: crate::provider::signature_algorithms(),
            client_auth: ClientAuth::Required,
        }
    }

    /// The same verifier with a different client-certificate requirement.
    pub fn with_client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        usage: Usage,
        now: UnixTime,
    ) -> Result<PeerIdentity, rustls::Error> {
        self.trust
            .current()
            .verify(
                end_entity,
                intermediates,
                usage,
                now,
                self.authorizer.as_ref(),
            )
            .map_err(|e| {
                tracing::warn!(error = %e, ?usage, "refused TLS peer");
                e.to_rustls()
            })
    }
}

impl ClientCertVerifier for SpiffeVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.client_auth == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, Usage::Client, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, Usage::Server, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    crate::provider::crypto_provider()
}

/// A TLS 1.3 server config that requires a client SVID accepted by `authorizer`.
pub fn server_config(
    resolver: Arc<SvidResolver>,
    trust: Arc<TrustStore>,
    authorizer: Arc<dyn PeerAuthorizer>,
) -> Result<ServerConfig, TlsError> {
    server_config_with(resolver, trust, authorizer, ClientAuth::Required)
}

/// [`server_config`] with an explicit client-certificate requirement.
pub fn server_config_with(
    resolver: Arc<SvidResolver>,
    trust: Arc<TrustStore>,
    authorizer: Arc<dyn PeerAuthorizer>,
    client_auth: ClientAuth,
) -> Result<ServerConfig, TlsError> {
    let verifier = SpiffeVerifier::new(trust, authorizer).with_client_auth(client_auth);
    Ok(ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(resolver))
}

/// A TLS 1.3 client config that presents our SVID and accepts servers
/// `authorizer` accepts.
pub fn client_config(
    resolver: Arc<SvidResolver>,
    trust: Arc<TrustStore>,
    authorizer: Arc<dyn PeerAuthorizer>,
) -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeVerifier::new(trust, authorizer)))
        .with_client_cert_resolver(resolver))
}

/// The verified peer of an established connection. Returns `None` before the
/// handshake completes; after it, the certificate has already passed
/// [`SpiffeVerifier`], so this only re-reads its identity.
pub fn peer_identity(conn: &rustls::CommonState) -> Option<PeerIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    let info = svid::parse_leaf(leaf).ok()?;
    Some(PeerIdentity {
        spiffe_id: info.spiffe_id,
        serial: info.serial,
        not_after: info.not_after,
    })
}
