//! Scene 5: revocation mid-stream. The researcher holds an event stream
//! through both proxies; the admin revokes it; the receipt says who
//! enforces it, the stream is cut, the next call is refused.

use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::BodyExt;
use serde_json::json;
use ward_server::api::agents::RevokeResponse;
use ward_server::api::proxies::Receipts;

use super::{AUDIT_WITHIN, CUT_WITHIN, EXPECT_REVOKED, Outcome, Scenes};
use crate::cmd::demo::apps::rpc_request;
use crate::cmd::demo::fabric::wait_until;
use crate::cmd::demo::web::{self, at};

impl Scenes<'_> {
    pub(super) async fn revoked(&mut self) -> anyhow::Result<Outcome> {
        let out = self.out;
        out.scene(
            "5/6",
            "Revocation mid-stream: the admin revokes researcher",
            "The researcher holds a live MCP event stream from the tool server through \
             both proxies. The admin revokes it (as `ward agent revoke researcher --wait` \
             does): every proxy applies it, the open stream is cut, the next call is refused.",
        );
        let researcher_proxy = self.fabric.proxy("researcher")?;
        let researcher = researcher_proxy.outbound;
        let apps = self.fabric.apps()?;
        let admin = self.fabric.admin()?;
        // A revoked proxy's audit batches are refused by the server, so
        // the researcher's proxy ships what it recorded first.
        wait_until(
            "the researcher's proxy to ship its audit records",
            AUDIT_WITHIN,
            || researcher_proxy.shared.audit.backlog() == 0,
        )
        .await?;

        let mut headers = vec![("accept", "text/event-stream")];
        let session = self.session.clone();
        if let Some(s) = session.as_deref() {
            headers.push(("mcp-session-id", s));
        }
        let resp = web::open(
            researcher,
            web::request("GET", "tools", "/mcp", &headers, None)?,
        )
        .await?;
        anyhow::ensure!(
            resp.status() == 200,
            "the event stream was refused: HTTP {}",
            resp.status()
        );
        let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
        let mut reader = Reader(tokio::spawn(read_events(resp.into_body(), count_tx)));
        let so_far = *tokio::time::timeout(Duration::from_secs(5), count_rx.wait_for(|n| *n >= 3))
            .await
            .context("the event stream sent no 3 events within 5s")?
            .context("the event stream ended before 3 events")?;
        out.step(&format!(
            "researcher's app holds GET /mcp (text/event-stream) from tools through both proxies: \
             {so_far} events so far, one every 100 ms"
        ));

        let started = Instant::now();
        let revoked: RevokeResponse = admin
            .call(
                hyper::Method::POST,
                "/v1/agents/researcher/revoke",
                Some(&json!({"reason": "demo: the researcher's key may have leaked"})),
            )
            .await
            .context("revoking researcher")?;
        let revision = revoked.revocation.revision;
        out.step(&format!(
            "admin: POST /v1/agents/researcher/revoke → revision {revision}, acknowledged in {} ms",
            started.elapsed().as_millis()
        ));
        let receipts: Receipts = admin
            .get(&format!("/v1/receipts/{revision}?timeout_ms=10000"))
            .await
            .context("waiting for the proxies' receipts")?;
        // Timings count from the admin's call, as an operator sees them.
        let receipt_ms = started.elapsed().as_millis();
        let applied: Vec<String> = receipts.applied.iter().map(|p| p.agent.clone()).collect();
        let pending: Vec<String> = receipts.pending.iter().map(|p| p.agent.clone()).collect();
        let receipted = pending.is_empty() && !applied.is_empty();
        self.verdict(
            receipted,
            &format!(
                "receipt: {} of {} connected proxies enforce revision {revision}, {receipt_ms} ms after the call ({}; researcher's own no longer counts)",
                applied.len(),
                applied.len() + pending.len(),
                applied.join(", ")
            ),
        );
        if !pending.is_empty() {
            out.fact("pending", &pending.join(", "));
        }

        let end = tokio::time::timeout(CUT_WITHIN, &mut reader.0).await;
        let (cut, events_before, events_after, cut_ms, how) = match end {
            Ok(Ok(end)) => {
                let after = end.events.iter().filter(|t| **t > started).count();
                let ms = end.ended.saturating_duration_since(started).as_millis();
                (
                    end.ended > started,
                    end.events.len() - after,
                    after,
                    Some(ms),
                    end.how,
                )
            }
            Ok(Err(e)) => (false, 0, 0, None, format!("reader failed: {e}")),
            Err(_) => (
                false,
                0,
                0,
                None,
                format!("still open {}s later", CUT_WITHIN.as_secs()),
            ),
        };
        let opened = apps.tool_log.streams().0;
        self.verdict(
            cut,
            &match cut_ms {
                Some(ms) if cut => format!(
                    "the open stream was cut {ms} ms after the call ({events_before} events before it, {events_after} after; {how})"
                ),
                Some(_) => format!("the stream had already ended before the revocation ({how})"),
                None => format!("the stream was not cut: {how}"),
            },
        );
        // The tool server notices on its next write (≤ 100 ms).
        let app_saw_close = wait_until(
            "the tool server to see its stream closed",
            Duration::from_secs(2),
            || apps.tool_log.streams().1 >= opened,
        )
        .await
        .is_ok();
        out.fact(
            "tools app",
            &format!(
                "{} of {opened} event stream(s) closed, {} events written in all",
                apps.tool_log.streams().1,
                apps.tool_log.events_sent()
            ),
        );

        let next = web::send(
            researcher,
            rpc_request(
                "tools",
                "tools/call",
                &json!({"name": "search", "arguments": {"query": "anything"}}),
                Some(5),
                session.as_deref(),
            )?,
        )
        .await?;
        let problem = next.json();
        let kind = at(&problem, "/type").as_str().unwrap_or("").to_owned();
        let decision_id = at(&problem, "/decision_id").as_str().map(str::to_owned);
        let refused = next.status == 403 && kind == "urn:ward:problem:revoked";
        if refused {
            out.refused(&format!(
                "next call from researcher: 403 — {}",
                at(&problem, "/detail").as_str().unwrap_or("")
            ));
            out.fact("decision", decision_id.as_deref().unwrap_or("-"));
        } else {
            out.bad(&format!(
                "next call from researcher: HTTP {} {}",
                next.status, problem
            ));
        }
        self.refused_revoked.clone_from(&decision_id);
        let ok = receipted && cut && refused;
        Ok(Outcome {
            name: "revoked",
            expected: EXPECT_REVOKED.to_owned(),
            observed: format!(
                "{}/{} receipts in {receipt_ms} ms; stream {}; {}",
                applied.len(),
                applied.len() + pending.len(),
                if cut { "cut" } else { "NOT cut" },
                if refused {
                    "403 revoked".to_owned()
                } else {
                    format!("next call {}", next.status)
                }
            ),
            ok,
            decision_id,
            details: json!({
                "revision": revision,
                "receipt_ms": receipt_ms,
                "server_waited_ms": receipts.waited_ms,
                "applied": applied,
                "pending": pending,
                "stream_cut": cut,
                "stream_cut_ms": cut_ms,
                "events_before": events_before,
                "events_after": events_after,
                "tool_server_saw_close": app_saw_close,
                "next_status": next.status,
                "next_problem": kind,
            }),
        })
    }
}

/// The task reading the event stream; stopped if the scene ends early
/// (an error, a stream never cut), so nothing outlives the scene.
struct Reader(tokio::task::JoinHandle<StreamEnd>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How an event stream ended.
struct StreamEnd {
    /// When each event arrived.
    events: Vec<Instant>,
    /// When the stream ended.
    ended: Instant,
    /// How: ended cleanly, or the connection was reset.
    how: String,
}

/// Reads an event stream to its end, counting events as they come.
async fn read_events(
    mut body: hyper::body::Incoming,
    count: tokio::sync::watch::Sender<usize>,
) -> StreamEnd {
    let mut events = Vec::new();
    let how = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.windows(6).filter(|w| *w == b"data: ").count();
                    for _ in 0..n {
                        events.push(Instant::now());
                    }
                    count.send_replace(events.len());
                }
            }
            // The proxies cut the connection: the body ends in an error.
            Some(Err(_)) => break "connection reset".to_owned(),
            None => break "ended".to_owned(),
        }
    };
    StreamEnd {
        events,
        ended: Instant::now(),
        how,
    }
}
