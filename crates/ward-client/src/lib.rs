//! A client for the control plane's `/v1` API over mutual TLS.
//!
//! Used by the admin CLI (with an admin SVID), by proxies (enrollment with a
//! join token, renewal and the watch stream with their agent SVID) and by
//! benchmarks. It only ever talks to a server whose certificate is the
//! trust domain's `spiffe://<td>/ward/server` SVID; server errors arrive as
//! RFC 9457 problems and keep their status, so callers can tell "refused"
//! from "broken".

mod watch;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use ward_core::{SpiffeId, TrustDomain};
use ward_identity::tls::{self, SpiffeVerifier, SvidResolver};
use ward_identity::verify::{ExactIds, TrustStore};
use ward_identity::{PrivateKey, TrustBundle, X509Svid};

pub use self::watch::{WatchEvent, WatchStream};
pub use hyper::Method;

/// How long connecting (TCP + TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a unary request may take end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read for a unary call.
pub const MAX_RESPONSE: usize = 64 << 20;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed.
    #[error(
        "cannot reach the Ward server at {addr}: {source}; is `ward server run` up, and is the address right?"
    )]
    Connect {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TLS failed: usually a certificate from another trust domain, an
    /// expired SVID, or not a Ward server.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Connecting or the request took too long.
    #[error("the Ward server at {0} did not answer in time")]
    Timeout(String),
    /// HTTP framing failed.
    #[error("HTTP error talking to the Ward server: {0}")]
    Http(String),
    /// The server answered with an error (RFC 9457 problem).
    #[error("{detail} (HTTP {status})")]
    Problem {
        /// HTTP status.
        status: u16,
        /// Problem type URI, e.g. `urn:ward:problem:forbidden`.
        kind: String,
        /// What the server said.
        detail: String,
    },
    /// The response was not what the API promises.
    #[error("unexpected response from the Ward server: {0}")]
    Decode(String),
    /// Local credentials or bundle unusable.
    #[error("{0}")]
    Credentials(String),
}

impl ClientError {
    /// Whether the server refused (401/403: authentication or authorization
    /// said no; 422: it refused the content, e.g. a policy bundle whose
    /// tests fail), as opposed to a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Problem { status, .. } if matches!(*status, 401 | 403 | 422))
    }

    /// HTTP status of a server-side error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Problem { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A connection recipe for one server: address, TLS identity and trust.
#[derive(Clone)]
pub struct Client {
    addr: String,
    tls: tokio_rustls::TlsConnector,
    server_id: SpiffeId,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

/// The SPIFFE ID every Ward server presents.
pub fn server_id(td: &TrustDomain) -> Result<SpiffeId, ClientError> {
    SpiffeId::new(&format!("spiffe://{td}/ward/server"))
        .map_err(|e| ClientError::Credentials(e.to_string()))
}

impl Client {
    /// A client for the server at `addr` (`host:port`, or an `https://` URL)
    /// that trusts `bundle` and authenticates with `identity` (`None` for
    /// anonymous calls such as enrollment).
    pub fn new(
        addr: &str,
        bundle: &TrustBundle,
        identity: Option<(&X509Svid, &PrivateKey)>,
    ) -> Result<Self, ClientError> {
        let cred = |e: &dyn std::fmt::Display| ClientError::Credentials(e.to_string());
        let trust = Arc::new(TrustStore::new(bundle).map_err(|e| cred(&e))?);
        let server_id = server_id(&bundle.trust_domain)?;
        let only_server = Arc::new(ExactIds(HashSet::from([server_id.clone()])));
        let config = match identity {
            Some((svid, key)) => {
                let resolver = Arc::new(SvidResolver::new(svid, key).map_err(|e| cred(&e))?);
                tls::client_config(resolver, trust, only_server).map_err(|e| cred(&e))?
            }
            None => rustls::ClientConfig::builder_with_provider(
                ward_identity::provider::crypto_provider(),
            )
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| cred(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SpiffeVerifier::new(trust, only_server)))
            .with_no_client_auth(),
        };
        Ok(Self {
            addr: normalise_addr(addr),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_id,
        })
    }

    /// The server address (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        let connect = async {
            let tcp =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|source| ClientError::Connect {
                        addr: self.addr.clone(),
                        source,
                    })?;
            let _ = tcp.set_nodelay(true);
            // SNI is not how we identify the server (its SPIFFE ID is), but
            // rustls needs a syntactically valid name.
            let name = ServerName::try_from("ward-server")
                .map_err(|e| ClientError::Credentials(e.to_string()))?;
            self.tls
                .connect(name, tcp)
                .await
                .map_err(|e| ClientError::Tls {
                    addr: self.addr.clone(),
                    reason: e.to_string(),
                })
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Timeout(self.addr.clone()))??;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr)
            .header("user-agent", concat!("ward/", env!("CARGO_PKG_VERSION")));
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))
    }

    /// One JSON request; decodes a 2xx body as `T`, anything else as a
    /// [`ClientError::Problem`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.exchange(method, path, body, &[]).await
    }

    /// `POST path` with a non-JSON body of `content_type` (audit batches are
    /// newline-delimited records); decodes a 2xx JSON answer as `T`.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        self.exchange(
            Method::POST,
            path,
            Some(body),
            &[("content-type", content_type.to_owned())],
        )
        .await
    }

    /// `GET path` returning the raw body of a 2xx answer (log tiles).
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, ClientError> {
        self.raw(Method::GET, path, None, &[]).await
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let bytes = self.raw(method, path, body, headers).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<Bytes, ClientError> {
        let exchange = async {
            let mut sender = self.connect().await?;
            let req = self.build(method, path, body, headers)?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let status = resp.status();
            let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.addr.clone()))??;
        if !status.is_success() {
            return Err(problem(status, &bytes));
        }
        Ok(bytes)
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// Opens the watch stream, resuming after `since` when given.
    pub async fn watch(&self, since: Option<u64>) -> Result<WatchStream, ClientError> {
        let mut sender = self.connect().await?;
        let path = match since {
            Some(rev) => format!("/v1/watch?since={rev}"),
            None => "/v1/watch".to_owned(),
        };
        let req = self.build(
            Method::GET,
            &path,
            None,
            &[("accept", "text/event-stream".to_owned())],
        )?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| ClientError::Timeout(self.addr.clone()))?
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = http_body_util::Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(problem(status, &bytes));
        }
        Ok(WatchStream::new(resp.into_body()))
    }
}

fn normalise_addr(addr: &str) -> String {
    let addr = addr
        .strip_prefix("https://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    addr.to_owned()
}

fn problem(status: StatusCode, bytes: &[u8]) -> ClientError {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    ClientError::Problem {
        status: status.as_u16(),
        kind: text("type").unwrap_or_else(|| "about:blank".to_owned()),
        detail: text("detail")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase()),
    }
}
