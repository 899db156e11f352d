//! Server-sent events (`text/event-stream`) in responses the proxy filters,
//! such as an MCP `tools/list` result streamed over SSE: splitting the byte
//! stream into events as they arrive, reading and replacing an event's
//! data, and a body wrapper that rewrites JSON events one by one while the
//! stream streams, never buffering more than one event.
//!
//! Parsing follows the WHATWG EventSource rules (lines end with `\r\n`,
//! `\n` or `\r`; an event ends at a blank line; a leading BOM is dropped)
//! so the proxy sees the events a client will see. Events are bounded: one
//! larger than the limit ends the body with an error, since passing it on
//! unfiltered would fail open.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;

use crate::http::{Body, BoxError};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An event (or the unterminated rest of a stream) exceeded the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "server-sent event larger than {max} bytes; the stream is cut rather than passed unfiltered"
)]
pub struct EventTooLarge {
    /// The limit in bytes.
    pub max: usize,
}

/// Incremental splitter of an SSE byte stream into events, per the WHATWG
/// EventSource parsing rules: lines end with `\r\n`, `\n` or `\r`, and an
/// event ends at a blank line.
///
/// The concatenated output is the input except for two bytes that mean
/// nothing: a leading UTF-8 BOM (which EventSource decoding drops; dropping
/// it here means a client that would not drop it still sees what the proxy
/// saw), and the `\n` of a `\r\n` that ended an event when the `\r` was the
/// last byte available (the event is emitted at the `\r` rather than wait
/// for the next chunk, and a `\r` alone ends a line just the same).
#[derive(Debug)]
pub struct EventSplitter {
    /// The current, incomplete event.
    buf: BytesMut,
    /// How much of `buf` has been scanned.
    scanned: usize,
    max_event: usize,
    /// The current line has no bytes yet (so a terminator ends the event).
    line_empty: bool,
    /// The last byte scanned was a `\r`: a `\n` next completes its `\r\n`.
    after_cr: bool,
    /// The stream's first bytes may still be a BOM.
    bom_pending: bool,
}

impl EventSplitter {
    /// A splitter refusing events longer than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        EventSplitter {
            buf: BytesMut::new(),
            scanned: 0,
            max_event,
            line_empty: true,
            after_cr: false,
            bom_pending: true,
        }
    }

    /// Feeds bytes; returns the complete events now available, each as its
    /// raw bytes including the terminating blank line.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        if self.bom_pending {
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Ok(Vec::new());
            }
            self.bom_pending = false;
            if self.buf.starts_with(BOM) {
                self.buf.advance(BOM.len());
            }
        }
        let mut events = Vec::new();
        while let Some(&byte) = self.buf.get(self.scanned) {
            let at = self.scanned;
            self.scanned += 1;
            match byte {
                b'\n' if self.after_cr => {
                    self.after_cr = false;
                    if at == 0 {
                        // Completes the `\r\n` of an event already emitted
                        // at its `\r`; part of no event.
                        self.buf.advance(1);
                        self.scanned = 0;
                    }
                }
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    if !self.line_empty {
                        self.line_empty = true;
                        continue;
                    }
                    let mut end = at + 1;
                    if self.after_cr && self.buf.get(end) == Some(&b'\n') {
                        end += 1;
                        self.after_cr = false;
                    }
                    if end > self.max_event {
                        return Err(EventTooLarge {
                            max: self.max_event,
                        });
                    }
                    events.push(self.buf.split_to(end).freeze());
                    self.scanned = 0;
                }
                _ => {
                    self.after_cr = false;
                    self.line_empty = false;
                }
            }
        }
        if self.buf.len() > self.max_event {
            return Err(EventTooLarge {
                max: self.max_event,
            });
        }
        Ok(events)
    }

    /// End of stream: the rest, an unterminated final event (possibly
    /// empty), which EventSource clients discard.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// The lines of an event up to its first blank line, without terminators.
fn event_lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match rest.iter().position(|b| matches!(b, b'\n' | b'\r')) {
            None => (rest, &[][..]),
            Some(i) => {
                let (line, tail) = rest.split_at(i);
                let skip = if tail.starts_with(b"\r\n") { 2 } else { 1 };
                (line, tail.get(skip..).unwrap_or_default())
            }
        };
        if line.is_empty() {
            // A blank line ends the event.
            return None;
        }
        rest = next;
        Some(line)
    })
}

/// A line's field name and value (one leading space removed), or None for a
/// comment.
fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.starts_with(b":") {
        return None;
    }
    Some(match line.iter().position(|&b| b == b':') {
        None => (line, &[][..]),
        Some(i) => {
            let (name, value) = line.split_at(i);
            let value = value.get(1..).unwrap_or_default();
            (name, value.strip_prefix(b" ").unwrap_or(value))
        }
    })
}

/// The event's data: every `data` field's value joined with `\n` (one
/// space after the colon removed), or None if the event has no `data`
/// field. Invalid UTF-8 becomes U+FFFD, as EventSource decoding does.
pub fn event_data(event: &[u8]) -> Option<String> {
    let mut data: Option<String> = None;
    for (name, value) in event_lines(event).filter_map(field) {
        if name == b"data" {
            let text = String::from_utf8_lossy(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(&text);
                }
                None => data = Some(text.into_owned()),
            }
        }
    }
    data
}

/// The event with its data replaced: the other lines (`id`, `event`,
/// `retry`, comments) kept in order, the new data written where the first
/// `data` line was (at the end if there was none) as one `data: ` line per
/// line of `new_data`, then a blank line. Lines end with `\n`.
pub fn with_data(event: &[u8], new_data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(event.len() + new_data.len() + 8);
    let mut written = false;
    for line in event_lines(event) {
        if field(line).is_some_and(|(name, _)| name == b"data") {
            if !written {
                write_data(&mut out, new_data);
                written = true;
            }
        } else {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\n");
        }
    }
    if !written {
        write_data(&mut out, new_data);
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

fn write_data(out: &mut BytesMut, data: &str) {
    // Every line terminator a client recognises splits the data, so none
    // can smuggle a field of its own.
    let mut rest = data;
    loop {
        let (line, next) = match rest.find(['\n', '\r']) {
            None => (rest, None),
            Some(i) => {
                let (line, tail) = rest.split_at(i);
                let skip = if tail.starts_with("\r\n") { 2 } else { 1 };
                (line, Some(tail.get(skip..).unwrap_or_default()))
            }
        };
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\n");
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
}

/// Wraps a response body so that each SSE event whose data is a JSON value
/// goes through `rewrite`: `Some(value)` replaces the data (written as
/// compact JSON on one line), `None` keeps the event byte for byte. Events
/// without data, or whose data is not JSON, pass unchanged — except data
/// that starts like JSON (`{`, `[`) yet does not parse: that ends the body
/// with an error, as a client might read it and see it unfiltered.
///
/// Each event is emitted as soon as it is complete. An event larger than
/// `max_event` ends the body with an error. An unterminated final event
/// (which clients discard) passes unchanged unless `rewrite` would change
/// it, in which case it is dropped. Trailers pass through.
pub fn rewrite_events<F>(body: Body, max_event: usize, rewrite: F) -> Body
where
    F: FnMut(&Value) -> Option<Value> + Send + Sync + 'static,
{
    RewriteEvents {
        inner: body,
        splitter: Some(EventSplitter::new(max_event)),
        rewrite,
        ready: VecDeque::new(),
        trailers: None,
    }
    .boxed()
}

struct RewriteEvents<F> {
    inner: Body,
    /// None once the inner body has ended or failed.
    splitter: Option<EventSplitter>,
    rewrite: F,
    /// Events ready to send, in order.
    ready: VecDeque<Bytes>,
    /// Sent after the last event.
    trailers: Option<HeaderMap>,
}

// `rewrite` is never pinned (it is only called through `&mut`), so the
// wrapper can move whatever the closure is.
impl<F> Unpin for RewriteEvents<F> {}

/// What `rewrite` makes of one event: None to keep it, else its new bytes.
fn rewritten<F>(rewrite: &mut F, event: &[u8]) -> Result<Option<Bytes>, BoxError>
where
    F: FnMut(&Value) -> Option<Value>,
{
    let Some(data) = event_data(event) else {
        return Ok(None);
    };
    let Ok(value) = serde_json::from_str::<Value>(&data) else {
        // Fail closed: what looks like a JSON-RPC message but does not parse
        // here might parse in the client, unfiltered.
        if data.trim_start().starts_with(['{', '[']) {
            return Err("an event's data looks like JSON but does not parse; the stream is cut rather than passed on unfiltered".into());
        }
        return Ok(None);
    };
    let Some(new) = rewrite(&value) else {
        return Ok(None);
    };
    let text = serde_json::to_string(&new)?;
    Ok(Some(with_data(event, &escape_separators(text))))
}

/// serde_json writes U+0085, U+2028 and U+2029 raw, and some SSE clients
/// (those splitting lines like Python's `str.splitlines`) break lines at
/// them. In serde_json's output they only occur inside strings, where the
/// `\u` escape means the same.
fn escape_separators(text: String) -> String {
    const SEPARATORS: [char; 3] = ['\u{85}', '\u{2028}', '\u{2029}'];
    if !text.contains(SEPARATORS) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\u{85}' => out.push_str("\\u0085"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

impl<F> RewriteEvents<F>
where
    F: FnMut(&Value) -> Option<Value>,
{
    fn queue(&mut self, events: Vec<Bytes>) -> Result<(), BoxError> {
        for event in events {
            let out = rewritten(&mut self.rewrite, &event)?.unwrap_or(event);
            self.ready.push_back(out);
        }
        Ok(())
    }

    /// The inner body ended: what is left of the stream.
    fn finish(&mut self) -> Result<(), BoxError> {
        if let Some(splitter) = self.splitter.take() {
            let rest = splitter.finish();
            // Clients discard an unterminated event; if it would need
            // filtering, drop it rather than let a lenient client see it.
            if !rest.is_empty() && rewritten(&mut self.rewrite, &rest)?.is_none() {
                self.ready.push_back(rest);
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.splitter = None;
        self.ready.clear();
        self.trailers = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl<F> HttpBody for RewriteEvents<F>
where
    F: FnMut(&Value) -> Option<Value>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(event))));
            }
            let Some(splitter) = this.splitter.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let step = splitter
                            .push(&data)
                            .map_err(BoxError::from)
                            .and_then(|events| this.queue(events));
                        if let Err(e) = step {
                            return this.fail(e);
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.trailers = Some(trailers);
                            if let Err(e) = this.finish() {
                                return this.fail(e);
                            }
                        }
                    }
                },
                Some(Err(e)) => return this.fail(e),
                None => {
                    if let Err(e) = this.finish() {
                        return this.fail(e);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.splitter.is_none() && self.ready.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use serde_json::json;
    use std::time::Duration;
    use tokio::sync::mpsc;

    const STREAM: &[u8] = b": ping\n\n\
        event: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\n\
        data: line one\rdata: line two\r\r\
        id: 2\ndata:{\"b\":\n: mid comment\ndata: 2}\n\n\
        retry: 100\r\n\r\n\
        data\n\n\
        data: tail";

    fn split_all(chunks: &[&[u8]], max: usize) -> (Vec<Bytes>, Bytes) {
        let mut s = EventSplitter::new(max);
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(s.push(chunk).unwrap());
        }
        (events, s.finish())
    }

    fn expected_events() -> Vec<&'static [u8]> {
        vec![
            b": ping\n\n",
            b"event: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\n",
            b"data: line one\rdata: line two\r\r",
            b"id: 2\ndata:{\"b\":\n: mid comment\ndata: 2}\n\n",
            b"retry: 100\r\n\r\n",
            b"data\n\n",
        ]
    }

    #[test]
    fn splits_whole_stream() {
        let (events, rest) = split_all(&[STREAM], 1024);
        assert_eq!(events, expected_events());
        assert_eq!(rest, &b"data: tail"[..]);
    }

    #[test]
    fn splits_at_every_boundary() {
        for at in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(at);
            let (events, rest) = split_all(&[a, b], 1024);
            assert_eq!(rest, &b"data: tail"[..], "split at {at}");
            let events: Vec<&[u8]> = events.iter().map(|e| e.as_ref()).collect();
            // Splitting right after the CR that ends "...\r\n\r" of an
            // event emits it at the CR and drops the LF that follows.
            let mut want = expected_events();
            let cut = b"event: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r";
            let start = b": ping\n\n".len();
            let retry_end = STREAM.len() - b"data\n\ndata: tail".len();
            if at == start + cut.len() {
                want[1] = cut;
            } else if at == retry_end - 1 {
                want[4] = b"retry: 100\r\n\r";
            }
            assert_eq!(events, want, "split at {at}");
        }
        // Byte by byte.
        let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
        let (events, rest) = split_all(&chunks, 1024);
        assert_eq!(rest, &b"data: tail"[..]);
        assert_eq!(events.len(), 6);
        assert_eq!(
            events.iter().map(|e| event_data(e)).collect::<Vec<_>>(),
            vec![
                None,
                Some("{\"a\":1}".to_owned()),
                Some("line one\nline two".to_owned()),
                Some("{\"b\":\n2}".to_owned()),
                None,
                Some(String::new()),
            ]
        );
    }

    #[test]
    fn three_way_splits() {
        let want = split_all(&[STREAM], 1024);
        for i in (0..STREAM.len()).step_by(3) {
            for j in (i..STREAM.len()).step_by(5) {
                let got = split_all(&[&STREAM[..i], &STREAM[i..j], &STREAM[j..]], 1024);
                // Same data in every event, whatever the chunking.
                let data = |e: &Vec<Bytes>| e.iter().map(|e| event_data(e)).collect::<Vec<_>>();
                assert_eq!(data(&got.0), data(&want.0), "{i} {j}");
                assert_eq!(got.1, want.1);
            }
        }
    }

    #[test]
    fn crlf_split_between_events_keeps_meaning() {
        let (events, rest) = split_all(&[b"data: a\r\n\r", b"\ndata: b\r\n\r\n"], 64);
        assert_eq!(events, vec![&b"data: a\r\n\r"[..], &b"data: b\r\n\r\n"[..]]);
        assert!(rest.is_empty());
        // A CR then something else: the CR alone ended the event.
        let (events, _) = split_all(&[b"data: a\r\r", b"data: b\n\n"], 64);
        assert_eq!(events, vec![&b"data: a\r\r"[..], &b"data: b\n\n"[..]]);
        // A CR ending a line (not the event), then LF in the next chunk.
        let (events, _) = split_all(&[b"data: a\r", b"\n\r\n"], 64);
        assert_eq!(events, vec![&b"data: a\r\n\r\n"[..]]);
    }

    #[test]
    fn leading_bom_dropped_once() {
        let (events, _) = split_all(
            &[b"\xEF", b"\xBB", b"\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n"],
            64,
        );
        assert_eq!(
            events,
            vec![&b"data: x\n\n"[..], &b"\xEF\xBB\xBFdata: y\n\n"[..]]
        );
        assert_eq!(event_data(&events[0]).as_deref(), Some("x"));
        // Mid-stream a BOM is part of the field name, as for clients.
        assert_eq!(event_data(&events[1]), None);
        let (events, rest) = split_all(&[b"\xEF\xBB"], 64);
        assert!(events.is_empty());
        assert_eq!(rest, &b"\xEF\xBB"[..]);
    }

    #[test]
    fn too_large_event() {
        let mut s = EventSplitter::new(10);
        assert_eq!(s.push(b"data: 1\n\n").unwrap().len(), 1);
        let err = s.push(b"data: 12345").unwrap_err();
        assert_eq!(err, EventTooLarge { max: 10 });
        assert_eq!(
            err.to_string(),
            "server-sent event larger than 10 bytes; the stream is cut rather than passed unfiltered"
        );
        // Complete but too large.
        let mut s = EventSplitter::new(10);
        assert!(s.push(b"data: 1234\n\n").is_err());
        // Exactly the limit.
        let mut s = EventSplitter::new(10);
        assert_eq!(s.push(b"data: 12\n\n").unwrap().len(), 1);
    }

    #[test]
    fn data_of_events() {
        assert_eq!(event_data(b": c\nid: 1\n\n"), None);
        assert_eq!(event_data(b"data: x\n\n").as_deref(), Some("x"));
        assert_eq!(event_data(b"data:x\n\n").as_deref(), Some("x"));
        assert_eq!(event_data(b"data:  x\n\n").as_deref(), Some(" x"));
        assert_eq!(event_data(b"data\n\n").as_deref(), Some(""));
        assert_eq!(event_data(b"data:\ndata:\n\n").as_deref(), Some("\n"));
        assert_eq!(event_data(b"data: a:b\n\n").as_deref(), Some("a:b"));
        assert_eq!(event_data(b"Data: x\n\n"), None);
        assert_eq!(event_data(b"data : x\n\n"), None);
        assert_eq!(event_data(b":data: x\n\n"), None);
        assert_eq!(event_data(b"data: \xFF\n\n").as_deref(), Some("\u{FFFD}"));
        // Stops at the first blank line, as a client dispatches there.
        assert_eq!(event_data(b"data: a\n\ndata: b\n\n").as_deref(), Some("a"));
    }

    #[test]
    fn replaces_data() {
        let event =
            b": keep\r\nevent: message\r\ndata: {\"old\":\r\nid: 7\r\ndata: 1}\r\nretry: 5\r\n\r\n";
        let out = with_data(event, "{\"new\":true}");
        assert_eq!(
            out,
            &b": keep\nevent: message\ndata: {\"new\":true}\nid: 7\nretry: 5\n\n"[..]
        );
        assert_eq!(
            with_data(b"id: 1\n\n", "a\nb"),
            &b"id: 1\ndata: a\ndata: b\n\n"[..]
        );
        assert_eq!(
            with_data(b"data: x\n\n", "a\r\nb\rc\n"),
            &b"data: a\ndata: b\ndata: c\ndata: \n\n"[..]
        );
        assert_eq!(with_data(b"data: x\n\n", ""), &b"data: \n\n"[..]);
        assert_eq!(with_data(b"data: x\n\n", " y"), &b"data:  y\n\n"[..]);
        // Reading back gives the new data.
        for new in ["", "x", " lead", "a\nb", "a\n", "\n\n"] {
            assert_eq!(
                event_data(&with_data(b"event: e\ndata: old\n\n", new)).as_deref(),
                Some(new)
            );
        }
    }

    /// A body fed frame by frame by the test.
    struct ChannelBody(mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

    impl HttpBody for ChannelBody {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx)
        }
    }

    fn channel() -> (mpsc::Sender<Result<Frame<Bytes>, BoxError>>, Body) {
        let (tx, rx) = mpsc::channel(8);
        (tx, ChannelBody(rx).boxed())
    }

    async fn send(tx: &mpsc::Sender<Result<Frame<Bytes>, BoxError>>, bytes: &'static [u8]) {
        tx.send(Ok(Frame::data(Bytes::from_static(bytes))))
            .await
            .unwrap();
    }

    async fn next_data(body: &mut Body) -> Bytes {
        tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap()
    }

    async fn stalls(body: &mut Body) -> bool {
        tokio::time::timeout(Duration::from_millis(50), body.frame())
            .await
            .is_err()
    }

    /// Drops tools named "hidden" from a tools/list result.
    fn filter(value: &Value) -> Option<Value> {
        let tools = value.pointer("/result/tools")?.as_array()?;
        let kept: Vec<Value> = tools
            .iter()
            .filter(|t| t.get("name") != Some(&json!("hidden")))
            .cloned()
            .collect();
        if kept.len() == tools.len() {
            return None;
        }
        let mut new = value.clone();
        *new.pointer_mut("/result/tools")? = Value::Array(kept);
        Some(new)
    }

    #[tokio::test]
    async fn rewrites_while_streaming() {
        let (tx, body) = channel();
        let mut body = rewrite_events(body, 4096, filter);

        send(
            &tx,
            b"event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"hidden\"}]}}\n\n: pi",
        )
        .await;
        let first = next_data(&mut body).await;
        // The data's key order depends on serde_json's `preserve_order`.
        let (head, data) = first.split_at(b"event: message\nid: 1\ndata: ".len());
        assert_eq!(head, b"event: message\nid: 1\ndata: ");
        assert!(data.ends_with(b"}\n\n") && !data[..data.len() - 2].contains(&b'\n'));
        assert_eq!(
            serde_json::from_str::<Value>(&event_data(&first).unwrap()).unwrap(),
            json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}})
        );
        // Nothing more until the next event completes.
        assert!(stalls(&mut body).await);
        send(&tx, b"ng\r\n\r\n").await;
        assert_eq!(next_data(&mut body).await, &b": ping\r\n\r\n"[..]);

        // Not JSON, JSON left alone, and no data: unchanged bytes.
        send(&tx, b"data: not json\r\rdata: {\"jsonrpc\":\"2.0\",  \"id\":2,\"result\":{}}\r\n\r\nretry: 1\n\n").await;
        assert_eq!(next_data(&mut body).await, &b"data: not json\r\r"[..]);
        assert_eq!(
            next_data(&mut body).await,
            &b"data: {\"jsonrpc\":\"2.0\",  \"id\":2,\"result\":{}}\r\n\r\n"[..]
        );
        assert_eq!(next_data(&mut body).await, &b"retry: 1\n\n"[..]);

        // Multi-line JSON data, split over frames.
        send(
            &tx,
            b"data: {\"result\":\ndata: {\"tools\":[{\"name\":\"hidden\"}]}}",
        )
        .await;
        assert!(stalls(&mut body).await);
        send(&tx, b"\n\n").await;
        assert_eq!(
            next_data(&mut body).await,
            &b"data: {\"result\":{\"tools\":[]}}\n\n"[..]
        );

        // Trailers pass through after the last event.
        send(&tx, b"data: x\n\ndata: \"unterminated\"").await;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        tx.send(Ok(Frame::trailers(trailers.clone())))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(next_data(&mut body).await, &b"data: x\n\n"[..]);
        assert_eq!(next_data(&mut body).await, &b"data: \"unterminated\""[..]);
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_trailers().unwrap(), trailers);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn escapes_line_separators_in_rewritten_data() {
        let (tx, body) = channel();
        let mut body = rewrite_events(body, 4096, |_| Some(json!({"s": "a\u{2028}b\u{85}c\nd"})));
        send(&tx, b"data: {}\n\n").await;
        drop(tx);
        let out = next_data(&mut body).await;
        assert_eq!(out, &b"data: {\"s\":\"a\\u2028b\\u0085c\\nd\"}\n\n"[..]);
        assert_eq!(
            serde_json::from_str::<Value>(&event_data(&out).unwrap()).unwrap(),
            json!({"s": "a\u{2028}b\u{85}c\nd"})
        );
    }

    #[tokio::test]
    async fn unterminated_event_needing_a_rewrite_is_dropped() {
        let (tx, body) = channel();
        let mut body = rewrite_events(body, 4096, filter);
        send(
            &tx,
            b"data: {\"result\":{\"tools\":[{\"name\":\"hidden\"}]}}",
        )
        .await;
        drop(tx);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn oversized_event_ends_with_error() {
        let (tx, body) = channel();
        let mut body = rewrite_events(body, 16, filter);
        send(&tx, b"data: 1\n\n").await;
        assert_eq!(next_data(&mut body).await, &b"data: 1\n\n"[..]);
        send(&tx, b"data: 0123456789").await;
        assert!(stalls(&mut body).await);
        send(&tx, b"abcdef").await;
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "server-sent event larger than 16 bytes; the stream is cut rather than passed unfiltered"
        );
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn inner_error_passes_through() {
        let (tx, body) = channel();
        let mut body = rewrite_events(body, 64, filter);
        tx.send(Err("upstream reset".into())).await.unwrap();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "upstream reset");
        assert!(body.frame().await.is_none());
    }
}
