//! The audit record: one authorization decision as the log stores it, with a
//! versioned schema and a canonical encoding.
//!
//! # Encoding: canonical JSON (RFC 8785 / JCS)
//!
//! Entries are hashed, so one record must have exactly one byte encoding. We
//! use JSON restricted to what makes RFC 8785 canonicalisation trivial:
//! object keys in lexicographic order (fixed by the wire struct's field
//! order), no insignificant whitespace, strings escaped only where JSON
//! requires (serde_json's rules coincide with JCS), integers only (no
//! floats) and at most 2^53 − 1. Why JSON and not CBOR or a hand-made binary
//! format: auditors read entries with `jq` and any language's standard
//! library, and JCS gives them a spec to re-derive the bytes from.
//!
//! Decoding is strict: the version is read first (unknown versions are
//! refused), the body is parsed with unknown fields refused, and the bytes
//! must be exactly what re-encoding gives — so whitespace, key order,
//! escapes and missing `null`s are all caught ("parse, don't validate").
//! The request body is never recorded, only its SHA-256.

mod fields;

use serde::{Deserialize, Serialize};
use ward_core::SpiffeId;

pub use self::fields::{BodyDigest, CertSerial, FieldError, MAX_UNIX_MILLIS, TraceId, UnixMillis};
use crate::bundle::MAX_ENTRY_LEN;

/// The newest schema version this build writes and reads. Version 1 records
/// are still written for plain HTTP calls (so their bytes never changed);
/// version 2 adds [`RpcCall`] for JSON-RPC (MCP, A2A) calls.
pub const SCHEMA_VERSION: u64 = 2;
/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The encoding exceeds what a log entry can hold.
    #[error("audit record encodes to {0} bytes; a log entry is at most {MAX_ENTRY_LEN}")]
    TooLarge(usize),
    /// The bytes are not JSON.
    #[error("audit record is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The JSON is not an object with an integer `v`.
    #[error("audit record is not a JSON object with an integer schema version \"v\"")]
    NoVersion,
    /// A schema version this build does not know.
    #[error(
        "audit record schema version {0} is not supported (this build reads versions 1 to {SCHEMA_VERSION})"
    )]
    UnknownVersion(u64),
    /// The body does not match the schema of its version.
    #[error("audit record v1 is malformed: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The bytes parse but are not the canonical encoding.
    #[error("audit record is not in canonical form (first difference at byte {offset})")]
    NonCanonical {
        /// Offset of the first byte that differs from the canonical encoding.
        offset: usize,
    },
    /// A field value that cannot be encoded (reported by the JSON encoder).
    #[error("encoding the audit record: {0}")]
    Encode(#[source] serde_json::Error),
}

/// One authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// When the decision was made.
    pub time: UnixMillis,
    /// The decision's ID (as in the `ward-decision-id` header and deny bodies).
    pub decision_id: String,
    /// The proxy that decided.
    pub proxy_id: String,
    /// The authenticated caller; `None` when authentication itself failed
    /// (that denial is audited too, DESIGN.md §4 invariant 1).
    pub principal: Option<SpiffeId>,
    /// The Cedar action.
    pub action: String,
    /// The Cedar resource.
    pub resource: String,
    /// Allow or deny.
    pub decision: Decision,
    /// IDs of the policies that determined the decision.
    pub policies: Vec<String>,
    /// Reasons (policy `@reason` annotations, error causes).
    pub reasons: Vec<String>,
    /// Version of the policy bundle used.
    pub policy_version: String,
    /// W3C trace ID of the request, if it carried one.
    pub trace_id: Option<TraceId>,
    /// Serial of the peer's certificate, if mTLS got that far.
    pub peer_cert_serial: Option<CertSerial>,
    /// What was asked, without the body.
    pub request: RequestDigest,
    /// The JSON-RPC call this decision was about (MCP, A2A), if any.
    pub rpc: Option<RpcCall>,
}

/// One JSON-RPC call inside the request body: protocol, method, what it
/// names, and a digest of its arguments (never the arguments).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcCall {
    /// SHA-256 of the call's `params` as canonical JSON (sorted keys, no
    /// whitespace); of `null` when it has none.
    pub args_sha256: BodyDigest,
    /// The JSON-RPC method as sent (`tools/call`, `SendMessage`, ...).
    pub method: String,
    /// `mcp` or `a2a`.
    pub protocol: String,
    /// The tool, skill, resource URI or prompt the call names, if any.
    pub target: Option<String>,
}

/// Method, path and body digest of the request (never the body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDigest {
    /// SHA-256 of the request body.
    pub body_sha256: BodyDigest,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
}

/// The outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The request was forwarded.
    Allow,
    /// The request was refused.
    Deny,
}

impl AuditRecord {
    /// The canonical bytes that go into the log.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let bytes = match &self.rpc {
            None => serde_json::to_vec(&WireV1::from(self)),
            Some(rpc) => serde_json::to_vec(&WireV2 {
                rpc: rpc.clone(),
                v1: WireV1::from(self),
            }),
        }
        .map_err(RecordError::Encode)?;
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Decodes a log entry, refusing unknown versions, unknown fields, bad
    /// values and any non-canonical spelling.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let record = Self::parse(bytes)?;
        let canonical = record.encode()?;
        if canonical != bytes {
            let offset = canonical
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(canonical.len().min(bytes.len()));
            return Err(RecordError::NonCanonical { offset });
        }
        Ok(record)
    }

    /// Decodes an entry read back from a log, which [`AuditRecord::decode`]
    /// accepted when it was appended: the same typed parse, without the
    /// canonical re-encoding (a third of decoding's cost). For what a log
    /// already holds — the server's query index — never for input.
    pub fn decode_logged(bytes: &[u8]) -> Result<Self, RecordError> {
        Self::parse(bytes)
    }

    /// The typed parse: schema version, fields, values.
    fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        // Canonical keys are sorted, so `v` comes last: a record that ends
        // `"v":1}` or `"v":2}` is parsed as that version at once. Anything
        // else — and any record that then fails — takes the probe, whose
        // errors say what is wrong.
        let hinted = match bytes {
            [.., b',', b'"', b'v', b'"', b':', b'1', b'}'] => {
                serde_json::from_slice::<WireV1>(bytes).ok().map(Self::from)
            }
            [.., b',', b'"', b'v', b'"', b':', b'2', b'}'] => {
                serde_json::from_slice::<WireV2Read>(bytes)
                    .ok()
                    .map(|w| Self::from_v2(WireV2::from(w)))
            }
            _ => None,
        };
        if let Some(record) = hinted {
            return Ok(record);
        }
        let v = match serde_json::from_slice::<VersionProbe>(bytes) {
            Ok(VersionProbe(v)) => v,
            Err(e) if e.is_data() => return Err(RecordError::NoVersion),
            Err(e) => return Err(RecordError::NotJson(e)),
        };
        match v {
            1 => Ok(Self::from(
                serde_json::from_slice::<WireV1>(bytes).map_err(RecordError::Malformed)?,
            )),
            2 => Ok(Self::from_v2(WireV2::from(
                serde_json::from_slice::<WireV2Read>(bytes).map_err(RecordError::Malformed)?,
            ))),
            _ => Err(RecordError::UnknownVersion(v)),
        }
    }

    fn from_v2(wire: WireV2) -> Self {
        let mut record = Self::from(wire.v1);
        record.rpc = Some(wire.rpc);
        record
    }
}

/// The schema version of an encoded record, read without building the
/// rest: the server decodes every record it ingests, and parsing the whole
/// entry into a `serde_json::Value` (a map per object, a `String` per
/// string) just to read `v` cost as much as the typed parse that follows.
/// Other keys are skipped unparsed; anything but an object, or an object
/// without an integer `v`, is a data error (`NoVersion`).
struct VersionProbe(u64);

impl<'de> Deserialize<'de> for VersionProbe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A key of the record object: `v` or any other.
        #[derive(Deserialize)]
        #[serde(field_identifier)]
        enum Key {
            #[serde(rename = "v")]
            V,
            #[serde(other)]
            Other,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VersionProbe;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an audit record object with an integer \"v\"")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<VersionProbe, A::Error> {
                let mut v = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::V => v = Some(map.next_value::<u64>()?),
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                v.map(VersionProbe)
                    .ok_or_else(|| serde::de::Error::missing_field("v"))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Schema v1 on the wire. Field order is the encoding's key order and must
/// stay lexicographic; never change this struct, add a `WireV2`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireV1 {
    action: String,
    decision: Decision,
    decision_id: String,
    peer_cert_serial: Option<CertSerial>,
    policies: Vec<String>,
    policy_version: String,
    principal: Option<SpiffeId>,
    proxy_id: String,
    reasons: Vec<String>,
    request: RequestDigest,
    resource: String,
    time_ms: UnixMillis,
    trace_id: Option<TraceId>,
    v: u64,
}

impl From<&AuditRecord> for WireV1 {
    fn from(r: &AuditRecord) -> Self {
        Self {
            action: r.action.clone(),
            decision: r.decision,
            decision_id: r.decision_id.clone(),
            peer_cert_serial: r.peer_cert_serial.clone(),
            policies: r.policies.clone(),
            policy_version: r.policy_version.clone(),
            principal: r.principal.clone(),
            proxy_id: r.proxy_id.clone(),
            reasons: r.reasons.clone(),
            request: r.request.clone(),
            resource: r.resource.clone(),
            time_ms: r.time,
            trace_id: r.trace_id,
            v: 1,
        }
    }
}

/// Schema v2: v1 plus `rpc`, always present. Serialized by hand so the key
/// order stays lexicographic (`rpc` sorts between `resource` and `time_ms`).
struct WireV2 {
    rpc: RpcCall,
    v1: WireV1,
}

impl Serialize for WireV2 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let w = &self.v1;
        let mut st = s.serialize_struct("WireV2", 15)?;
        st.serialize_field("action", &w.action)?;
        st.serialize_field("decision", &w.decision)?;
        st.serialize_field("decision_id", &w.decision_id)?;
        st.serialize_field("peer_cert_serial", &w.peer_cert_serial)?;
        st.serialize_field("policies", &w.policies)?;
        st.serialize_field("policy_version", &w.policy_version)?;
        st.serialize_field("principal", &w.principal)?;
        st.serialize_field("proxy_id", &w.proxy_id)?;
        st.serialize_field("reasons", &w.reasons)?;
        st.serialize_field("request", &w.request)?;
        st.serialize_field("resource", &w.resource)?;
        st.serialize_field("rpc", &self.rpc)?;
        st.serialize_field("time_ms", &w.time_ms)?;
        st.serialize_field("trace_id", &w.trace_id)?;
        st.serialize_field("v", &2u64)?;
        st.end()
    }
}

/// Schema v2 as read: every v1 field, `rpc` and `v`, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireV2Read {
    action: String,
    decision: Decision,
    decision_id: String,
    peer_cert_serial: Option<CertSerial>,
    policies: Vec<String>,
    policy_version: String,
    principal: Option<SpiffeId>,
    proxy_id: String,
    reasons: Vec<String>,
    request: RequestDigest,
    resource: String,
    rpc: RpcCall,
    time_ms: UnixMillis,
    trace_id: Option<TraceId>,
    #[allow(dead_code, reason = "checked before this struct is read")]
    v: u64,
}

impl From<WireV1> for AuditRecord {
    fn from(w: WireV1) -> Self {
        Self {
            time: w.time_ms,
            decision_id: w.decision_id,
            proxy_id: w.proxy_id,
            principal: w.principal,
            action: w.action,
            resource: w.resource,
            decision: w.decision,
            policies: w.policies,
            reasons: w.reasons,
            policy_version: w.policy_version,
            trace_id: w.trace_id,
            peer_cert_serial: w.peer_cert_serial,
            request: w.request,
            rpc: None,
        }
    }
}

impl From<WireV2Read> for WireV2 {
    fn from(w: WireV2Read) -> Self {
        Self {
            rpc: w.rpc,
            v1: WireV1 {
                action: w.action,
                decision: w.decision,
                decision_id: w.decision_id,
                peer_cert_serial: w.peer_cert_serial,
                policies: w.policies,
                policy_version: w.policy_version,
                principal: w.principal,
                proxy_id: w.proxy_id,
                reasons: w.reasons,
                request: w.request,
                resource: w.resource,
                time_ms: w.time_ms,
                trace_id: w.trace_id,
                v: 1,
            },
        }
    }
}

#[cfg(test)]
mod tests;
