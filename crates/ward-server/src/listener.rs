//! Serves the API over TLS 1.3 with SPIFFE client authentication.
//!
//! Client certificates are optional at the TLS layer (first enrollment has
//! none), but one that is sent must verify, or the handshake fails. The
//! verified peer — never a header — becomes the request's [`Caller`]. Every
//! connection holds a drain watch, so shutdown lets in-flight requests finish.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use ward_core::drain::Watch;

use crate::api::Caller;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` until `watch` signals shutdown.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    watch: Watch,
) {
    let acceptor = TlsAcceptor::from(tls);
    let shutdown = watch.clone().signaled();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE; back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let conn_watch = watch.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let caller = Caller(ward_identity::tls::peer_identity(stream.get_ref().1));
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                // Replaces anything a client could have smuggled in.
                req.extensions_mut().insert(caller.clone());
                router.clone().oneshot(req)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let drained = conn_watch.signaled();
            tokio::pin!(drained);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                }
                guard = &mut drained => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                    drop(guard);
                }
            }
        });
    }
}
