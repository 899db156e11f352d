//! HTTP/1.1 protocol upgrades (WebSocket): allowed like any other request —
//! after authentication, the decision and the audit record — and then the
//! two upgraded connections are spliced byte for byte until either side
//! closes or the peer is revoked.
//!
//! Between proxies an upgrade travels over its own HTTP/1.1 mTLS
//! connection: HTTP/2 has no `Upgrade`, and a tunnel must not pin a pooled
//! multiplexed connection.

use std::sync::Arc;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Version, http};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use crate::watcher::ConnGuard;

/// The `Upgrade` value when the request asks for an upgrade.
pub fn requested(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    headers.get(header::UPGRADE).cloned()
}

/// Puts the upgrade headers back after [`crate::http::strip`] removed them
/// with the other hop-by-hop headers.
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// Takes the pending upgrade of an incoming request.
pub fn take(extensions: &mut http::Extensions) -> Option<OnUpgrade> {
    extensions.remove::<OnUpgrade>()
}

/// Splices the two sides once both upgrades complete; ends on close, error
/// or `cut`.
pub fn splice(
    client: OnUpgrade,
    server: OnUpgrade,
    cut: Option<(ConnGuard, Arc<Notify>)>,
    what: String,
) {
    tokio::spawn(async move {
        let (client, server) = match tokio::try_join!(client, server) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(tunnel = %what, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut server = TokioIo::new(server);
        let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
        match cut {
            Some((_guard, notify)) => {
                tokio::select! {
                    result = copy => {
                        tracing::debug!(tunnel = %what, ?result, "upgraded connection closed");
                    }
                    () = notify.notified() => {
                        tracing::warn!(tunnel = %what, "upgraded connection cut: peer no longer admitted");
                    }
                }
            }
            None => {
                let result = copy.await;
                tracing::debug!(tunnel = %what, ?result, "upgraded connection closed");
            }
        }
    });
}
