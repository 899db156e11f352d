//! JSON-RPC 2.0 bodies (MCP, A2A) as the proxy reads them to authorize a
//! call: a strict JSON parser, the message shapes a client may send, the
//! error responses Ward answers with, and the params digest.
//!
//! The proxy must never authorize one reading of a body while the upstream
//! (typically Python: `json`, pydantic) acts on another: no parser
//! differentials. So the body is parsed strictly, anything two parsers could
//! read differently (duplicate keys, a BOM, invalid UTF-8, unpaired surrogate
//! escapes, trailing data) is refused as a whole, and the caller forwards
//! the original bytes unchanged, never a re-serialization.
//!
//! Known remaining difference: numbers. Without serde_json's
//! `arbitrary_precision`, an integer beyond 64 bits or a float with more
//! digits than an `f64` holds is read as the nearest `f64`, while Python
//! keeps it exact. Ids are therefore limited to 64-bit integers (anything
//! else is refused); policies should not compare such numbers in params.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};

/// Nesting of arrays and objects a body may have by default.
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Messages a batch may hold by default.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// serde_json refuses nesting at 128 levels with its own error; ours must
/// trigger first so the refusal says what it is.
const SERDE_MAX_DEPTH: usize = 127;

/// The call was denied by policy. In the implementation-defined range
/// (-32000..-32099) but clear of the codes A2A (-32001..-32009) and MCP
/// (-32002, -32022, -32042) define, so an SDK does not mistake it for
/// "task not found" or "resource not found".
pub const DENIED: i64 = -32050;
/// The caller exceeded its rate limit (reserved; rate limiting currently
/// answers at the HTTP layer with 429 and Retry-After).
pub const RATE_LIMITED: i64 = -32051;
/// The body is JSON but not an acceptable JSON-RPC 2.0 message or batch.
pub const INVALID_REQUEST: i64 = -32600;
/// The body is not strictly valid JSON.
pub const PARSE_ERROR: i64 = -32700;

/// Why a body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not UTF-8.
    #[error("the body is not valid UTF-8: invalid byte sequence at byte offset {offset}")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The body starts with a UTF-8 byte order mark, which JSON parsers
    /// treat differently (RFC 8259 §8.1 forbids sending one).
    #[error("the body starts with a UTF-8 byte order mark; send JSON without one")]
    Bom,
    /// Not one strictly valid JSON text: a syntax error, data after the
    /// value, an unpaired surrogate escape, a raw control character in a
    /// string, a number out of range.
    #[error("invalid JSON at line {line} column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column (0 when the error is at the start of a line).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// An object has the same key twice (after unescaping), which parsers
    /// resolve differently.
    #[error("duplicate key {key:?} in the object at {path}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Where the object is, e.g. `$.params.arguments` or `$[0].params`.
        path: String,
    },
    /// Arrays and objects nest deeper than allowed.
    #[error("JSON nests arrays and objects deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Valid JSON, but not an acceptable JSON-RPC 2.0 message.
    #[error("not a JSON-RPC 2.0 message{}: {detail}", batch_element(*.index))]
    NotJsonRpc {
        /// Position in the batch, if the body is a batch.
        index: Option<usize>,
        /// What is wrong.
        detail: String,
    },
    /// The body is an empty array.
    #[error("empty JSON-RPC batch: a batch must hold at least one message")]
    EmptyBatch,
    /// The batch holds more messages than allowed.
    #[error("JSON-RPC batch of {count} messages exceeds the limit of {max}")]
    BatchTooLarge {
        /// Messages in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
}

fn batch_element(index: Option<usize>) -> String {
    index.map_or_else(String::new, |i| format!(" (batch element {i})"))
}

/// Strictly parses one JSON text.
///
/// Refuses invalid UTF-8, a leading BOM, duplicate object keys at any depth
/// (compared after unescaping, so `"a"` and `"\u0061"` are the same key),
/// nesting of arrays and objects deeper than `max_depth` (a scalar is depth
/// 0, `[]` depth 1; values above 127 act as 127, serde_json's own limit),
/// unpaired surrogate escapes, raw control characters in strings, and
/// anything but whitespace after the value. Numbers are read as serde_json
/// reads them.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, ParseError> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(ParseError::Bom);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let max = max_depth.min(SERDE_MAX_DEPTH);
    let ctx = Ctx {
        max,
        failure: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Strict {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    parsed.map_err(|e| match ctx.failure.into_inner() {
        Some(Failure::TooDeep) => ParseError::TooDeep { max },
        Some(Failure::Duplicate { key, mut path }) => {
            // Segments were collected innermost first, while unwinding.
            path.reverse();
            ParseError::DuplicateKey {
                key,
                path: render_path(&path),
            }
        }
        None => syntax(&e, max),
    })
}

fn syntax(e: &serde_json::Error, max: usize) -> ParseError {
    let full = e.to_string();
    if full.starts_with("recursion limit exceeded") {
        return ParseError::TooDeep { max };
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    ParseError::Syntax {
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// The state the strict visitor shares across levels. Errors raised inside
/// serde only carry a string; the precise reason waits here.
struct Ctx {
    max: usize,
    failure: RefCell<Option<Failure>>,
}

enum Failure {
    TooDeep,
    Duplicate { key: String, path: Vec<Segment> },
}

enum Segment {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Segment]) -> String {
    let mut out = String::from("$");
    for segment in path {
        match segment {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(k) if is_identifier(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Key(k) => {
                out.push('[');
                out.push_str(&serde_json::to_string(k).unwrap_or_else(|_| format!("{k:?}")));
                out.push(']');
            }
        }
    }
    out
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Ctx {
    /// On the way out of a failed child, records where the child was, so a
    /// duplicate key's path is built only when there is one.
    fn unwind(&self, segment: Segment) {
        if let Some(Failure::Duplicate { path, .. }) = &mut *self.failure.borrow_mut() {
            path.push(segment);
        }
    }
}

/// Deserializes one value at `depth` (the number of arrays and objects
/// around it) into a [`Value`], refusing duplicates and excess depth.
#[derive(Clone, Copy)]
struct Strict<'c> {
    ctx: &'c Ctx,
    depth: usize,
}

impl Strict<'_> {
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        let depth = self.depth + 1;
        if depth > self.ctx.max {
            *self.ctx.failure.borrow_mut() = Some(Failure::TooDeep);
            return Err(E::custom("nested too deep"));
        }
        Ok(Strict {
            ctx: self.ctx,
            depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own Value does (the parser never yields a
        // non-finite number, so this is always a Number).
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.enter()?;
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(child) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    self.ctx.unwind(Segment::Index(items.len()));
                    return Err(e);
                }
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let child = self.enter()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                *self.ctx.failure.borrow_mut() = Some(Failure::Duplicate {
                    key,
                    path: Vec::new(),
                });
                return Err(de::Error::custom(message));
            }
            match access.next_value_seed(child) {
                Ok(value) => {
                    map.insert(key, value);
                }
                Err(e) => {
                    self.ctx.unwind(Segment::Key(key));
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// A JSON-RPC 2.0 message as sent by a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Has an id: expects a response.
    Request {
        /// A string, an integer or null.
        id: Value,
        /// The method called.
        method: String,
        /// An object or an array, if present.
        params: Option<Value>,
    },
    /// No id: expects no response.
    Notification {
        /// The method called.
        method: String,
        /// An object or an array, if present.
        params: Option<Value>,
    },
    /// A client's answer to a server-initiated request (has a result or an
    /// error, no method).
    Response {
        /// The id of the request answered: a string, an integer or null.
        id: Value,
    },
}

impl Message {
    /// The method, for requests and notifications.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response { .. } => None,
        }
    }

    /// The id, for requests and responses.
    pub fn id(&self) -> Option<&Value> {
        match self {
            Message::Request { id, .. } | Message::Response { id } => Some(id),
            Message::Notification { .. } => None,
        }
    }

    /// The params, for requests and notifications that have them.
    pub fn params(&self) -> Option<&Value> {
        match self {
            Message::Request { params, .. } | Message::Notification { params, .. } => {
                params.as_ref()
            }
            Message::Response { .. } => None,
        }
    }
}

/// A parsed body: one message or a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Whether the body was an array (a batch, even of one message).
    pub batch: bool,
    /// The messages, in body order.
    pub messages: Vec<Message>,
}

/// Parses a client's JSON-RPC body strictly: [`parse_strict`], then each
/// message is checked.
///
/// Each message must be an object with `"jsonrpc": "2.0"` exactly and no
/// members besides `jsonrpc`, `id`, `method`, `params`, `result`, `error`.
/// Requests and notifications have a string `method`, `params` (if present)
/// an object or an array, and `id` (if present) a string, a 64-bit integer
/// or null. Responses have such an `id` and exactly one of `result` and
/// `error` (an object). An object with both `method` and `result`/`error`
/// is refused. A batch is a non-empty array of at most `max_batch` messages.
pub fn parse(bytes: &[u8], max_depth: usize, max_batch: usize) -> Result<Envelope, ParseError> {
    match parse_strict(bytes, max_depth)? {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ParseError::EmptyBatch);
            }
            if items.len() > max_batch {
                return Err(ParseError::BatchTooLarge {
                    count: items.len(),
                    max: max_batch,
                });
            }
            let messages = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    message(item).map_err(|detail| ParseError::NotJsonRpc {
                        index: Some(i),
                        detail,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Envelope {
                batch: true,
                messages,
            })
        }
        Value::Object(object) => {
            let message = message_of(object).map_err(|detail| ParseError::NotJsonRpc {
                index: None,
                detail,
            })?;
            Ok(Envelope {
                batch: false,
                messages: vec![message],
            })
        }
        other => Err(ParseError::NotJsonRpc {
            index: None,
            detail: format!(
                "the body is {}, not an object or an array of objects",
                kind(&other)
            ),
        }),
    }
}

const MEMBERS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

fn message(value: Value) -> Result<Message, String> {
    match value {
        Value::Object(object) => message_of(object),
        other => Err(format!("{} instead of an object", kind(&other))),
    }
}

fn message_of(mut object: Map<String, Value>) -> Result<Message, String> {
    if let Some(unknown) = object.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        return Err(format!(
            "unknown member {unknown:?} (allowed: jsonrpc, id, method, params, result, error)"
        ));
    }
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(other) => {
            return Err(format!(
                "\"jsonrpc\" must be the string \"2.0\", not {}",
                describe(other)
            ));
        }
        None => return Err("missing \"jsonrpc\": \"2.0\"".to_owned()),
    }
    let has_result = object.contains_key("result");
    let has_error = object.contains_key("error");
    if let Some(method) = object.remove("method") {
        if has_result || has_error {
            return Err(
                "both \"method\" and \"result\"/\"error\": neither a request nor a response"
                    .to_owned(),
            );
        }
        let Value::String(method) = method else {
            return Err(format!(
                "\"method\" must be a string, not {}",
                kind(&method)
            ));
        };
        let params = match object.remove("params") {
            None => None,
            Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
            Some(other) => {
                return Err(format!(
                    "\"params\" must be an object or an array, not {}",
                    kind(&other)
                ));
            }
        };
        return match object.remove("id") {
            None => Ok(Message::Notification { method, params }),
            Some(id) => Ok(Message::Request {
                id: checked_id(id)?,
                method,
                params,
            }),
        };
    }
    if !has_result && !has_error {
        return Err(
            "neither \"method\" (a request) nor \"result\"/\"error\" (a response)".to_owned(),
        );
    }
    if has_result && has_error {
        return Err("a response has \"result\" or \"error\", not both".to_owned());
    }
    if object.contains_key("params") {
        return Err("a response has no \"params\"".to_owned());
    }
    if let Some(error) = object.get("error")
        && !error.is_object()
    {
        return Err(format!("\"error\" must be an object, not {}", kind(error)));
    }
    match object.remove("id") {
        Some(id) => Ok(Message::Response {
            id: checked_id(id)?,
        }),
        None => Err("a response needs an \"id\"".to_owned()),
    }
}

fn checked_id(id: Value) -> Result<Value, String> {
    match &id {
        Value::String(_) | Value::Null => Ok(id),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(id),
        Value::Number(_) => Err(format!(
            "\"id\" must be a string, an integer or null, not the number {id} (fractional, exponent or beyond 64 bits)"
        )),
        other => Err(format!(
            "\"id\" must be a string, an integer or null, not {}",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a scalar for messages; containers by kind only.
fn describe(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => kind(value).to_owned(),
        scalar => {
            let text = scalar.to_string();
            if text.chars().count() <= 40 {
                text
            } else {
                format!("{} (too long to show)", kind(scalar))
            }
        }
    }
}

/// A JSON-RPC error response:
/// `{"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message,"data":data}}`,
/// without `data` when it is null.
pub fn error_response(id: &Value, code: i64, message: &str, data: Value) -> Value {
    let mut error = Map::new();
    error.insert("code".to_owned(), Value::from(code));
    error.insert("message".to_owned(), Value::from(message));
    if !data.is_null() {
        error.insert("data".to_owned(), data);
    }
    let mut response = Map::new();
    response.insert("jsonrpc".to_owned(), Value::from("2.0"));
    response.insert("id".to_owned(), id.clone());
    response.insert("error".to_owned(), Value::Object(error));
    Value::Object(response)
}

/// SHA-256 of the canonical serialization of `params`: serde_json's compact
/// form with object keys sorted (bytewise) at every level, so the digest
/// does not depend on key order. Absent params digest as `null`; `{}` and
/// `[]` digest as themselves.
///
/// Keys are sorted here rather than relying on serde_json's `Map`: another
/// crate in the workspace (cedar-policy-core) enables serde_json's
/// `preserve_order`, which makes `Map` keep insertion order.
pub fn digest_params(params: Option<&Value>) -> [u8; 32] {
    let mut hasher = Hasher(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256));
    let value = params.unwrap_or(&Value::Null);
    if serde_json::to_writer(&mut hasher, &Canonical(value)).is_err() {
        // Unreachable (the writer cannot fail and a Value always
        // serializes), but if it were reached the digest must not collide
        // with a real one: 0xFF never occurs in UTF-8 JSON.
        hasher.0.update(&[0xFF]);
    }
    let digest = hasher.0.finish();
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    out
}

struct Hasher(aws_lc_rs::digest::Context);

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes a value with object keys sorted, whatever `Map`'s order.
struct Canonical<'a>(&'a Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Canonical(value))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Canonical(item))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use serde_json::json;

    fn strict(text: &str) -> Result<Value, ParseError> {
        parse_strict(text.as_bytes(), DEFAULT_MAX_DEPTH)
    }

    fn rpc(text: &str) -> Result<Envelope, ParseError> {
        parse(text.as_bytes(), DEFAULT_MAX_DEPTH, DEFAULT_MAX_BATCH)
    }

    fn not_rpc(text: &str) -> (Option<usize>, String) {
        match rpc(text) {
            Err(ParseError::NotJsonRpc { index, detail }) => (index, detail),
            other => panic!("{text}: expected NotJsonRpc, got {other:?}"),
        }
    }

    #[test]
    fn accepts_plain_json() {
        assert_eq!(
            strict(r#" {"a": [1, -2, 3.5, "x", null, true], "b": {}} "#).unwrap(),
            json!({"a": [1, -2, 3.5, "x", null, true], "b": {}})
        );
        assert_eq!(strict("\t\r\n 7 \n").unwrap(), json!(7));
    }

    #[test]
    fn invalid_utf8_reports_offset() {
        let err = parse_strict(b"{\"a\": \"x\xFFy\"}", 32).unwrap_err();
        assert_eq!(err, ParseError::NotUtf8 { offset: 8 });
        assert_eq!(
            err.to_string(),
            "the body is not valid UTF-8: invalid byte sequence at byte offset 8"
        );
        // An overlong encoding and a UTF-8-encoded surrogate are invalid too.
        assert_eq!(
            parse_strict(b"\"\xC0\xAF\"", 32),
            Err(ParseError::NotUtf8 { offset: 1 })
        );
        assert_eq!(
            parse_strict(b"\"\xED\xA0\x80\"", 32),
            Err(ParseError::NotUtf8 { offset: 1 })
        );
    }

    #[test]
    fn bom_refused() {
        let err = parse_strict(b"\xEF\xBB\xBF{}", 32).unwrap_err();
        assert_eq!(err, ParseError::Bom);
        assert_eq!(
            err.to_string(),
            "the body starts with a UTF-8 byte order mark; send JSON without one"
        );
    }

    #[test]
    fn syntax_errors() {
        let err = strict("{\"a\": 1}\n x").unwrap_err();
        assert_eq!(
            err,
            ParseError::Syntax {
                line: 2,
                column: 2,
                message: "trailing characters".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid JSON at line 2 column 2: trailing characters"
        );
        for text in [
            "",
            "{",
            "{} {}",
            "[1,]",
            "{\"a\":1,}",
            "'a'",
            "NaN",
            "Infinity",
            "-Infinity",
            "01",
            "1e400",
            "{a: 1}",
            "\"tab\there\"",
            "\"nul\u{0}\"",
            "\"\\x41\"",
            "[1] // comment",
            "\u{a0}1",
        ] {
            assert!(
                matches!(strict(text), Err(ParseError::Syntax { .. })),
                "{text:?}: {:?}",
                strict(text)
            );
        }
    }

    #[test]
    fn lone_surrogates_refused() {
        // serde_json refuses unpaired surrogate escapes when reading a
        // string (Python's json would accept them).
        for text in [
            r#""\ud800""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            r#""\udfff\ud800""#,
            r#"{"\ud800": 1}"#,
        ] {
            let err = strict(text).unwrap_err();
            assert!(matches!(err, ParseError::Syntax { .. }), "{text}: {err:?}");
        }
        assert_eq!(
            strict(r#""\ud800""#).unwrap_err().to_string(),
            "invalid JSON at line 1 column 8: unexpected end of hex escape"
        );
        assert_eq!(
            strict(r#""\udc00""#).unwrap_err().to_string(),
            "invalid JSON at line 1 column 7: lone leading surrogate in hex escape"
        );
        // A proper pair is fine.
        assert_eq!(strict(r#""\ud83d\ude00""#).unwrap(), json!("😀"));
    }

    #[test]
    fn duplicate_keys_refused_at_any_depth() {
        let err = strict(r#"{"a":1,"a":1}"#).unwrap_err();
        assert_eq!(
            err,
            ParseError::DuplicateKey {
                key: "a".to_owned(),
                path: "$".to_owned()
            }
        );
        assert_eq!(err.to_string(), r#"duplicate key "a" in the object at $"#);

        let err = rpc(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"name":"t","arguments":{"path":"/ok","path":"/etc/passwd"}}}"#)
        .unwrap_err();
        assert_eq!(
            err,
            ParseError::DuplicateKey {
                key: "path".to_owned(),
                path: "$.params.arguments".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            r#"duplicate key "path" in the object at $.params.arguments"#
        );

        let err = strict(r#"[{"m":1},{"p":{"x":[0,{"k":1,"k":2}]}}]"#).unwrap_err();
        assert_eq!(
            err,
            ParseError::DuplicateKey {
                key: "k".to_owned(),
                path: "$[1].p.x[1]".to_owned()
            }
        );

        // Compared after unescaping.
        let err = strict(r#"{"params":{"a b":{"n":1,"\u006e":2}}}"#).unwrap_err();
        assert_eq!(
            err,
            ParseError::DuplicateKey {
                key: "n".to_owned(),
                path: r#"$.params["a b"]"#.to_owned()
            }
        );

        // Same key in sibling objects is fine.
        assert!(strict(r#"[{"a":1},{"a":1}]"#).is_ok());
        assert!(strict(r#"{"a":{"a":{"a":1}}}"#).is_ok());
    }

    fn nested(levels: usize) -> String {
        let mut s = String::new();
        for i in 0..levels {
            s.push_str(if i % 2 == 0 { "[" } else { "{\"k\":" });
        }
        s.push('1');
        for i in (0..levels).rev() {
            s.push(if i % 2 == 0 { ']' } else { '}' });
        }
        s
    }

    #[test]
    fn depth_limit() {
        assert!(parse_strict(nested(32).as_bytes(), 32).is_ok());
        let err = parse_strict(nested(33).as_bytes(), 32).unwrap_err();
        assert_eq!(err, ParseError::TooDeep { max: 32 });
        assert_eq!(
            err.to_string(),
            "JSON nests arrays and objects deeper than 32 levels"
        );
        assert!(parse_strict(b"1", 0).is_ok());
        assert_eq!(parse_strict(b"[]", 0), Err(ParseError::TooDeep { max: 0 }));
        // Deeper than serde_json's own limit: still reported as TooDeep.
        assert!(parse_strict(nested(127).as_bytes(), 1000).is_ok());
        assert_eq!(
            parse_strict(nested(128).as_bytes(), 1000),
            Err(ParseError::TooDeep { max: 127 })
        );
        assert_eq!(
            parse_strict(nested(10_000).as_bytes(), usize::MAX),
            Err(ParseError::TooDeep { max: 127 })
        );
    }

    #[test]
    fn parses_single_messages() {
        let env = rpc(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}"#)
            .unwrap();
        assert!(!env.batch);
        assert_eq!(
            env.messages,
            vec![Message::Request {
                id: json!("a"),
                method: "tools/call".to_owned(),
                params: Some(json!({"name": "x"}))
            }]
        );
        let m = &env.messages[0];
        assert_eq!(m.method(), Some("tools/call"));
        assert_eq!(m.id(), Some(&json!("a")));
        assert_eq!(m.params(), Some(&json!({"name": "x"})));

        let env = rpc(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(
            env.messages,
            vec![Message::Notification {
                method: "notifications/initialized".to_owned(),
                params: None
            }]
        );
        assert_eq!(env.messages[0].id(), None);

        let env = rpc(r#"{"jsonrpc":"2.0","id":null,"method":"m","params":[1,2]}"#).unwrap();
        assert_eq!(env.messages[0].id(), Some(&Value::Null));
        let env = rpc(r#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"m"}"#).unwrap();
        assert_eq!(env.messages[0].id(), Some(&json!(i64::MIN)));
        let env = rpc(r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"m"}"#).unwrap();
        assert_eq!(env.messages[0].id(), Some(&json!(u64::MAX)));
        let env = rpc(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#).unwrap();
        assert_eq!(env.messages, vec![Message::Response { id: json!(7) }]);
        assert_eq!(env.messages[0].method(), None);
        let env = rpc(r#"{"jsonrpc":"2.0","id":"s","error":{"code":1,"message":"no"}}"#).unwrap();
        assert_eq!(env.messages, vec![Message::Response { id: json!("s") }]);
        // result may be any value, including null.
        assert!(rpc(r#"{"jsonrpc":"2.0","id":1,"result":null}"#).is_ok());
    }

    #[test]
    fn parses_mixed_batch() {
        let env = rpc(r#"[
            {"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","method":"notifications/progress","params":{"p":1}},
            {"jsonrpc":"2.0","id":"srv-1","result":{"ok":true}}
        ]"#)
        .unwrap();
        assert!(env.batch);
        assert_eq!(
            env.messages,
            vec![
                Message::Request {
                    id: json!(1),
                    method: "tools/list".to_owned(),
                    params: None
                },
                Message::Notification {
                    method: "notifications/progress".to_owned(),
                    params: Some(json!({"p": 1}))
                },
                Message::Response { id: json!("srv-1") },
            ]
        );
        // A batch of one is still a batch.
        assert!(rpc(r#"[{"jsonrpc":"2.0","method":"m"}]"#).unwrap().batch);
    }

    #[test]
    fn batch_limits() {
        let err = rpc("[]").unwrap_err();
        assert_eq!(err, ParseError::EmptyBatch);
        assert_eq!(
            err.to_string(),
            "empty JSON-RPC batch: a batch must hold at least one message"
        );
        let one = r#"{"jsonrpc":"2.0","method":"m"}"#;
        let three = format!("[{one},{one},{one}]");
        assert!(parse(three.as_bytes(), 32, 3).is_ok());
        let err = parse(three.as_bytes(), 32, 2).unwrap_err();
        assert_eq!(err, ParseError::BatchTooLarge { count: 3, max: 2 });
        assert_eq!(
            err.to_string(),
            "JSON-RPC batch of 3 messages exceeds the limit of 2"
        );
    }

    #[test]
    fn invalid_messages() {
        let cases: &[(&str, Option<usize>, &str)] = &[
            (
                "1",
                None,
                "the body is a number, not an object or an array of objects",
            ),
            (
                "\"x\"",
                None,
                "the body is a string, not an object or an array of objects",
            ),
            (
                "null",
                None,
                "the body is null, not an object or an array of objects",
            ),
            ("{}", None, "missing \"jsonrpc\": \"2.0\""),
            (r#"{"method":"m"}"#, None, "missing \"jsonrpc\": \"2.0\""),
            (
                r#"{"jsonrpc":"1.0","method":"m"}"#,
                None,
                "\"jsonrpc\" must be the string \"2.0\", not \"1.0\"",
            ),
            (
                r#"{"jsonrpc":2.0,"method":"m"}"#,
                None,
                "\"jsonrpc\" must be the string \"2.0\", not 2.0",
            ),
            (
                r#"{"jsonrpc":"2.0 ","method":"m"}"#,
                None,
                "\"jsonrpc\" must be the string \"2.0\", not \"2.0 \"",
            ),
            (
                r#"{"jsonrpc":"2.0","method":1}"#,
                None,
                "\"method\" must be a string, not a number",
            ),
            (
                r#"{"jsonrpc":"2.0","method":null}"#,
                None,
                "\"method\" must be a string, not null",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","params":"x"}"#,
                None,
                "\"params\" must be an object or an array, not a string",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","params":null}"#,
                None,
                "\"params\" must be an object or an array, not null",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","params":3}"#,
                None,
                "\"params\" must be an object or an array, not a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#,
                None,
                "\"id\" must be a string, an integer or null, not the number 1.5 (fractional, exponent or beyond 64 bits)",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.0,"method":"m"}"#,
                None,
                "\"id\" must be a string, an integer or null, not the number 1.0 (fractional, exponent or beyond 64 bits)",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1e2,"method":"m"}"#,
                None,
                "\"id\" must be a string, an integer or null, not the number 100.0 (fractional, exponent or beyond 64 bits)",
            ),
            (
                r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"m"}"#,
                None,
                "\"id\" must be a string, an integer or null, not the number 1.8446744073709552e+19 (fractional, exponent or beyond 64 bits)",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"m"}"#,
                None,
                "\"id\" must be a string, an integer or null, not a boolean",
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"m"}"#,
                None,
                "\"id\" must be a string, an integer or null, not an object",
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"m"}"#,
                None,
                "\"id\" must be a string, an integer or null, not an array",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"m","result":1}"#,
                None,
                "both \"method\" and \"result\"/\"error\": neither a request nor a response",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","error":{}}"#,
                None,
                "both \"method\" and \"result\"/\"error\": neither a request nor a response",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1}"#,
                None,
                "neither \"method\" (a request) nor \"result\"/\"error\" (a response)",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
                None,
                "a response has \"result\" or \"error\", not both",
            ),
            (
                r#"{"jsonrpc":"2.0","result":1}"#,
                None,
                "a response needs an \"id\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":1,"params":{}}"#,
                None,
                "a response has no \"params\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":"bad"}"#,
                None,
                "\"error\" must be an object, not a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"result":1}"#,
                None,
                "\"id\" must be a string, an integer or null, not a boolean",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","Method":"x"}"#,
                None,
                "unknown member \"Method\" (allowed: jsonrpc, id, method, params, result, error)",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","_meta":{}}"#,
                None,
                "unknown member \"_meta\" (allowed: jsonrpc, id, method, params, result, error)",
            ),
            (
                r#"[{"jsonrpc":"2.0","method":"m"},1]"#,
                Some(1),
                "a number instead of an object",
            ),
            (
                r#"[[{"jsonrpc":"2.0","method":"m"}]]"#,
                Some(0),
                "an array instead of an object",
            ),
            (
                r#"[{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","id":false,"method":"m"}]"#,
                Some(1),
                "\"id\" must be a string, an integer or null, not a boolean",
            ),
        ];
        for (text, index, detail) in cases {
            let (got_index, got_detail) = not_rpc(text);
            assert_eq!(
                (got_index, got_detail.as_str()),
                (*index, *detail),
                "{text}"
            );
        }
        let err = rpc(r#"[{"jsonrpc":"2.0","method":"m"},7]"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a JSON-RPC 2.0 message (batch element 1): a number instead of an object"
        );
        let err = rpc(r#"{"jsonrpc":"2.0"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a JSON-RPC 2.0 message: neither \"method\" (a request) nor \"result\"/\"error\" (a response)"
        );
        let long = format!(r#"{{"jsonrpc":"{}","method":"m"}}"#, "x".repeat(100));
        assert_eq!(
            not_rpc(&long).1,
            "\"jsonrpc\" must be the string \"2.0\", not a string (too long to show)"
        );
    }

    #[test]
    fn error_response_shape() {
        let r = error_response(&json!(3), DENIED, "denied by policy", Value::Null);
        // Compared as values: the text's key order depends on whether
        // serde_json's `preserve_order` is on.
        assert_eq!(
            r,
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32050,"message":"denied by policy"}})
        );
        let r = error_response(
            &Value::Null,
            PARSE_ERROR,
            "parse error",
            json!({"decision": "d-1"}),
        );
        assert_eq!(
            r,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error","data":{"decision":"d-1"}}})
        );
        assert_eq!(
            (DENIED, RATE_LIMITED, INVALID_REQUEST, PARSE_ERROR),
            (-32050, -32051, -32600, -32700)
        );
    }

    fn sha256(bytes: &[u8]) -> [u8; 32] {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    #[test]
    fn params_digest_is_canonical() {
        assert_eq!(digest_params(None), sha256(b"null"));
        assert_eq!(digest_params(Some(&Value::Null)), sha256(b"null"));
        assert_eq!(digest_params(Some(&json!({}))), sha256(b"{}"));
        let a = strict(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"\u00e9"}}"#).unwrap();
        let b = strict(r#"{"a":{"x":"é","y":[1,{"c":3,"d":2}]},"b":1}"#).unwrap();
        assert_eq!(digest_params(Some(&a)), digest_params(Some(&b)));
        assert_eq!(
            digest_params(Some(&a)),
            sha256(r#"{"a":{"x":"é","y":[1,{"c":3,"d":2}]},"b":1}"#.as_bytes())
        );
        let c = json!({"a": {"x": "é", "y": [1, {"c": 3, "d": 3}]}, "b": 1});
        assert_ne!(digest_params(Some(&a)), digest_params(Some(&c)));
        // Array order matters.
        assert_ne!(
            digest_params(Some(&json!([1, 2]))),
            digest_params(Some(&json!([2, 1])))
        );
    }

    /// A small deterministic generator (xorshift) of JSON values whose
    /// floats survive a text round trip exactly.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn string(&mut self) -> String {
            const PIECES: [&str; 14] = [
                "a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1f}", "é", "€", "😀",
                "\u{2028}",
            ];
            let len = self.below(6);
            (0..len)
                .map(|_| PIECES[usize::try_from(self.below(14)).unwrap()])
                .collect()
        }

        fn value(&mut self, depth: usize) -> Value {
            let choice = if depth >= 5 {
                self.below(5)
            } else {
                self.below(7)
            };
            match choice {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 1),
                2 => match self.below(4) {
                    0 => json!(self.next()),
                    1 => json!(-i64::try_from(self.next() >> 1).unwrap()),
                    2 => json!(i64::try_from(self.below(2000)).unwrap() - 1000),
                    _ => {
                        let k = f64::from(u32::try_from(self.below(1 << 20)).unwrap());
                        json!(k / 64.0 - 4096.5)
                    }
                },
                3 | 4 => Value::String(self.string()),
                5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
                _ => {
                    let mut map = Map::new();
                    for _ in 0..self.below(5) {
                        let key = self.string();
                        let value = self.value(depth + 1);
                        map.insert(key, value);
                    }
                    Value::Object(map)
                }
            }
        }
    }

    #[test]
    fn round_trips_generated_values() {
        let mut generator = Gen(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            let value = generator.value(0);
            let compact = serde_json::to_vec(&value).unwrap();
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            assert_eq!(parse_strict(&compact, 32).unwrap(), value);
            assert_eq!(parse_strict(&pretty, 32).unwrap(), value);
            // And exactly as serde_json reads it.
            assert_eq!(
                parse_strict(&compact, 32).unwrap(),
                serde_json::from_slice::<Value>(&compact).unwrap()
            );
            // Key order does not change the digest: reverse every object.
            assert_eq!(
                digest_params(Some(&value)),
                digest_params(Some(&reversed(&value)))
            );
        }
    }

    fn reversed(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.reverse();
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), reversed(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
            scalar => scalar.clone(),
        }
    }
}
