//! HTTP plumbing shared by the listeners: the body type, problem
//! responses, header hygiene and W3C trace context.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

/// Errors a body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body the proxy sends or forwards.
pub type Body = BoxBody<Bytes, BoxError>;

/// Headers only a proxy sets; removed from anything arriving from an app or
/// a peer (DESIGN.md §4.2).
pub const WARD_PREFIX: &str = "ward-";
/// The verified caller, set by the receiving proxy.
pub const PEER_ID: &str = "ward-peer-id";
/// The decision that let the request through.
pub const DECISION_ID: &str = "ward-decision-id";
/// Names the target agent on the outbound listener (read, then stripped).
pub const TARGET: &str = "ward-target";

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An RFC 9457 problem response.
pub fn problem(status: StatusCode, slug: &str, detail: &str, extra: Value) -> Response<Body> {
    let mut doc = json!({
        "type": format!("urn:ward:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Some(obj), Value::Object(more)) = (doc.as_object_mut(), extra) {
        obj.extend(more);
    }
    let mut resp = Response::new(full(doc.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// Removes every `ward-*` header and the hop-by-hop headers (including those
/// the `Connection` header names), which belong to one connection only.
pub fn strip(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove(HeaderName::from_static("keep-alive"));
    headers.remove(HeaderName::from_static("proxy-connection"));
    let ward: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(WARD_PREFIX))
        .cloned()
        .collect();
    for name in ward {
        headers.remove(name);
    }
}

/// W3C trace context for a request: keeps the caller's trace id when its
/// `traceparent` is valid, starts a new trace otherwise; always a new span.
pub fn trace(headers: &HeaderMap) -> ([u8; 16], HeaderValue) {
    let incoming = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let (trace_id, flags) = incoming.unwrap_or_else(|| (random::<16>(), 1));
    let span: [u8; 8] = random();
    // 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
    let mut v = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let filled = hex::encode_to_slice(trace_id, &mut v[3..35])
        .and_then(|()| hex::encode_to_slice(span, &mut v[36..52]))
        .and_then(|()| hex::encode_to_slice([flags], &mut v[53..55]));
    // Hex digits and dashes only: always a valid header value.
    let value = filled
        .ok()
        .and_then(|()| HeaderValue::from_bytes(&v).ok())
        .unwrap_or(HeaderValue::from_static(""));
    (trace_id, value)
}

fn parse_traceparent(v: &str) -> Option<([u8; 16], u8)> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || span.len() != 16 {
        return None;
    }
    let trace: [u8; 16] = unhex(trace)?.try_into().ok()?;
    let span: [u8; 8] = unhex(span)?.try_into().ok()?;
    let flags: [u8; 1] = unhex(flags)?.try_into().ok()?;
    // All-zero ids are invalid by the spec.
    if trace == [0; 16] || span == [0; 8] {
        return None;
    }
    Some((trace, flags[0]))
}

/// A new decision id: time-ordered, so the audit index can find its record
/// (see [`ward_audit::decision_id`]).
pub fn decision_id() -> String {
    ward_audit::decision_id::now(random::<10>())
}

/// Random bytes; a clock-derived fallback keeps ids unique enough for
/// correlation if the system RNG ever failed (they are not secrets).
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if !RANDOM.with(|pool| pool.borrow_mut().take(&mut out)) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_be_bytes();
        for (o, n) in out.iter_mut().zip(nanos.iter().cycle()) {
            *o = *n;
        }
    }
    out
}

/// Random bytes for ids (decision, trace, span), drawn from aws-lc's DRBG
/// 4 KiB at a time: a DRBG call per id (three per request) cost ~3 % of a
/// loaded proxy's CPU in prediction-resistance reseeding. Every byte is
/// still DRBG output and used once.
struct RandomPool {
    buf: [u8; 4096],
    used: usize,
}

impl RandomPool {
    /// Fills `out`; `false` if the DRBG failed.
    fn take(&mut self, out: &mut [u8]) -> bool {
        if out.len() > self.buf.len() {
            return aws_lc_rs::rand::fill(out).is_ok();
        }
        if self.buf.len() - self.used < out.len() {
            if aws_lc_rs::rand::fill(&mut self.buf).is_err() {
                return false;
            }
            self.used = 0;
        }
        let end = self.used + out.len();
        let Some(taken) = self.buf.get_mut(self.used..end) else {
            return false;
        };
        out.copy_from_slice(taken);
        // Handed out once: wipe what was taken.
        taken.fill(0);
        self.used = end;
        true
    }
}

thread_local! {
    static RANDOM: std::cell::RefCell<RandomPool> = const {
        std::cell::RefCell::new(RandomPool { buf: [0; 4096], used: 4096 })
    };
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Hex to bytes (either case).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn strip_removes_ward_and_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "ward-peer-id",
            HeaderValue::from_static("spiffe://x/agent/admin"),
        );
        h.insert("Ward-Decision-Id", HeaderValue::from_static("forged"));
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("x-app", HeaderValue::from_static("kept"));
        strip(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h.get("x-app").unwrap(), "kept");
    }

    #[test]
    fn random_ids_are_distinct_across_pool_refills() {
        // 600 x 16 bytes spans two refills of the 4 KiB pool.
        let ids: std::collections::HashSet<[u8; 16]> = (0..600).map(|_| random()).collect();
        assert_eq!(ids.len(), 600);
        assert!(!ids.contains(&[0u8; 16]));
        let big: [u8; 5000] = random();
        assert!(
            big.iter().any(|b| *b != 0),
            "larger than the pool: drawn directly"
        );
    }

    #[test]
    fn trace_keeps_a_valid_parent_and_replaces_a_bad_one() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let (id, value) = trace(&h);
        assert_eq!(hex(&id), "4bf92f3577b34da6a3ce929d0e0e4736");
        let v = value.to_str().unwrap();
        assert!(v.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!v.contains("00f067aa0ba902b7"), "a new span id");
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        let (id, _) = trace(&h);
        assert_ne!(id, [0; 16]);
        assert_eq!(unhex("0aFF"), Some(vec![10, 255]));
        assert_eq!(unhex("0"), None);
    }
}
