//! Reading the watch stream: server-sent events, each a snapshot or a
//! change tagged with its revision.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::ClientError;

/// Longest event accepted; a snapshot of a large registry is big, but not
/// unbounded.
pub const MAX_EVENT: usize = 256 << 20;

/// One event of the watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The full state, reflecting at least `revision`.
    Snapshot {
        /// The revision.
        revision: u64,
        /// The snapshot document (`trust_domain`, `agents`, `revocations`,
        /// `bundle`).
        data: Value,
    },
    /// One change.
    Change {
        /// Its revision.
        revision: u64,
        /// The change (`kind`, `subject`, `payload`, `at`).
        data: Value,
    },
    /// Everything committed when the stream started has been sent (up to
    /// `revision`); what follows is live. A starting proxy serves only
    /// after this (or after finding the server unreachable).
    CaughtUp {
        /// The last revision sent.
        revision: u64,
    },
}

impl WatchEvent {
    /// The revision the client has applied once it has applied this event.
    pub fn revision(&self) -> u64 {
        match self {
            Self::Snapshot { revision, .. }
            | Self::Change { revision, .. }
            | Self::CaughtUp { revision } => *revision,
        }
    }
}

/// An open watch stream.
#[derive(Debug)]
pub struct WatchStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl WatchStream {
    pub(crate) fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: Vec::new(),
        }
    }

    /// The next event; `Ok(None)` when the server ended the stream (it is
    /// shutting down: reconnect, ideally to another replica, with
    /// `since` = the last revision applied).
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        loop {
            while let Some(end) = find_blank_line(&self.buf) {
                let block: Vec<u8> = self.buf.drain(..end).collect();
                if let Some(event) = parse_event(&block)? {
                    return Ok(Some(event));
                }
            }
            if self.buf.len() > MAX_EVENT {
                return Err(ClientError::Decode(format!(
                    "watch event larger than {MAX_EVENT} bytes"
                )));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Http(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// End (exclusive, including the separator) of the first complete event.
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

fn parse_event(block: &[u8]) -> Result<Option<WatchEvent>, ClientError> {
    let text = std::str::from_utf8(block)
        .map_err(|_| ClientError::Decode("watch event is not UTF-8".to_owned()))?;
    let mut kind = None;
    let mut id = None;
    let mut data = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
        // Comments (keep-alives) and unknown fields are ignored, per the
        // SSE specification.
    }
    let Some(kind) = kind else {
        return Ok(None);
    };
    let revision: u64 = id.and_then(|s| s.parse().ok()).ok_or_else(|| {
        ClientError::Decode(format!("watch event {kind:?} without a revision id"))
    })?;
    let data: Value = serde_json::from_str(&data)
        .map_err(|e| ClientError::Decode(format!("watch event {revision}: {e}")))?;
    match kind {
        "snapshot" => Ok(Some(WatchEvent::Snapshot { revision, data })),
        "change" => Ok(Some(WatchEvent::Change { revision, data })),
        "caught-up" => Ok(Some(WatchEvent::CaughtUp { revision })),
        // Newer servers may add kinds; skipping them is safe only because
        // the revision is not advanced past a change we did not apply.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn parses_events_and_ignores_comments() {
        let e = parse_event(b"event: change\nid: 7\ndata: {\"kind\":\"agent\"}\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(e.revision(), 7);
        assert!(matches!(e, WatchEvent::Change { ref data, .. } if data["kind"] == "agent"));
        assert_eq!(parse_event(b": keep-alive\n\n").unwrap(), None);
        assert_eq!(
            parse_event(b"event: caught-up\nid: 9\ndata: {\"revision\":9}\n\n").unwrap(),
            Some(WatchEvent::CaughtUp { revision: 9 })
        );
        assert!(
            parse_event(b"event: change\ndata: {}\n\n").is_err(),
            "no id"
        );
        assert!(
            parse_event(b"event: change\nid: 1\ndata: {\n\n").is_err(),
            "bad JSON"
        );
        assert_eq!(find_blank_line(b"a\n\nb"), Some(3));
        assert_eq!(find_blank_line(b"a\nb"), None);
    }
}
