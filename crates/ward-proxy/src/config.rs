//! What a proxy is told at start: where the server is, which agent it
//! speaks for, where its app and listeners are, and the limits it enforces.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ward_core::AgentName;

/// Default address of the outbound listener (the local app's side).
pub const DEFAULT_OUTBOUND: &str = "127.0.0.1:15001";
/// Default address of the inbound mTLS listener (other proxies' side).
pub const DEFAULT_INBOUND: &str = "127.0.0.1:15443";
/// Default address of the admin listener (metrics, health).
pub const DEFAULT_ADMIN: &str = "127.0.0.1:15000";

/// Everything `ward proxy run` needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Control-plane API address (`host:port`).
    pub server: String,
    /// Trust bundle (SPIFFE bundle JSON) used to authenticate the server
    /// at first enrollment; later the proxy keeps its own copy.
    pub bundle: Option<PathBuf>,
    /// The agent this proxy speaks for.
    pub agent: AgentName,
    /// Single-use join token; needed only when the state directory holds no
    /// valid identity.
    pub join_token: Option<String>,
    /// The local app (`host:port`, plain HTTP).
    pub upstream: String,
    /// How the app's traffic is read (MCP, A2A, plain HTTP); `None`: from
    /// the agent's `protocol` label in the registry, else plain HTTP.
    pub protocol: Option<crate::rpc::Protocol>,
    /// Gateway mode: further agents this proxy fronts on its inbound
    /// listener, each with its own identity and app.
    pub routes: Vec<Route>,
    /// Where keys, certificates and last-known-good state live (0700/0600).
    pub state_dir: PathBuf,
    /// Outbound listener (plain HTTP, loopback).
    pub outbound: SocketAddr,
    /// Inbound listener (mTLS).
    pub inbound: SocketAddr,
    /// The address other proxies dial; default: `inbound`.
    pub advertise: Option<String>,
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// Request limits.
    pub limits: Limits,
    /// Per-caller rate limit on inbound requests; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// What to do when the audit spool cannot take a record.
    pub audit_full: AuditFull,
    /// Spool size cap in bytes.
    pub audit_spool_bytes: u64,
}

/// One further agent fronted by a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The agent.
    pub agent: AgentName,
    /// Its app (`host:port`).
    pub upstream: String,
    /// How its traffic is read; `None`: from the registry label.
    pub protocol: Option<crate::rpc::Protocol>,
    /// Its join token, until it has enrolled.
    pub join_token: Option<String>,
}

/// Bounds on what one request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + headers), HTTP/1.1; the header
    /// list for HTTP/2.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Largest request body; bodies are read whole (bounded) so the audit
    /// record can carry their digest. Responses stream.
    pub max_body_bytes: usize,
    /// Longest wait for the upstream's response head.
    pub request_timeout: Duration,
    /// Longest wait for a request head on an open connection (slow clients,
    /// idle keep-alive).
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 << 10,
            max_headers: 100,
            max_body_bytes: 8 << 20,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// A token bucket per calling identity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size (requests allowed in a burst).
    pub burst: u32,
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `RATE/s` or `RATE/s:BURST`, e.g. `100/s` or `5/s:10`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("rate limit {s:?}: expected RATE/s or RATE/s:BURST, e.g. 100/s or 5/s:10");
        let (rate, burst) = match s.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (s, None),
        };
        let per_second: f64 = rate
            .trim()
            .strip_suffix("/s")
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(bad());
        }
        let burst = match burst {
            Some(b) => b.trim().parse::<u32>().map_err(|_| bad())?,
            // One second's worth, at least one request.
            None => per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
        };
        if burst == 0 {
            return Err(bad());
        }
        Ok(Self { per_second, burst })
    }
}

/// The audit spool is full or failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditFull {
    /// Refuse requests that cannot be audited (DESIGN.md §5 default).
    #[default]
    FailClosed,
    /// Forward allowed requests anyway, counting and logging every lost
    /// record.
    FailOpen,
}

impl std::str::FromStr for AuditFull {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail-closed" | "closed" => Ok(Self::FailClosed),
            "fail-open" | "open" => Ok(Self::FailOpen),
            other => Err(format!(
                "audit-full {other:?}: expected fail-closed (default) or fail-open"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn rate_limits_parse_with_clear_errors() {
        assert_eq!(
            "5/s:10".parse::<RateLimit>().unwrap(),
            RateLimit {
                per_second: 5.0,
                burst: 10
            }
        );
        assert_eq!("0.5/s".parse::<RateLimit>().unwrap().burst, 1);
        for bad in ["5", "0/s", "-1/s", "x/s", "5/s:0", "5/s:x", "inf/s"] {
            let err = bad.parse::<RateLimit>().unwrap_err();
            assert!(err.contains("RATE/s"), "{bad}: {err}");
        }
    }
}
