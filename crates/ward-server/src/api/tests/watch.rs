//! The watch stream, status and OpenAPI endpoints, through the router
//! without sockets.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Harness, harness};
use crate::api::{Caller, router};
use crate::store::RevocationTarget;

/// Reads server-sent events from a streaming response body.
pub(super) struct Events {
    body: Body,
    buf: String,
}

#[derive(Debug)]
pub(super) struct Sse {
    pub(super) event: String,
    pub(super) id: u64,
    pub(super) data: Value,
}

impl Events {
    /// The next event, skipping keep-alive comments; panics after 10 s.
    pub(super) async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = String::new();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if event.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return Sse {
                    event,
                    id: id.unwrap(),
                    data: serde_json::from_str(&data).unwrap(),
                };
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("no event within 10 s")
                .expect("stream ended")
                .unwrap();
            if let Ok(bytes) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    }

    /// Asserts nothing arrives for a short while (bounded wait).
    async fn quiet(&mut self) {
        let got = tokio::time::timeout(Duration::from_millis(300), self.body.frame()).await;
        assert!(got.is_err(), "unexpected data on the stream: {got:?}");
    }
}

impl Harness {
    pub(super) async fn watch(
        &self,
        query: &str,
        caller: &Caller,
        last_event_id: Option<&str>,
    ) -> (StatusCode, Events) {
        let mut req = Request::builder().uri(format!("/v1/watch{query}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut().insert(caller.clone());
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        (
            status,
            Events {
                body: resp.into_body(),
                buf: String::new(),
            },
        )
    }

    async fn register(&self, name: &str) -> Value {
        let (s, body, _) = self
            .call(
                "POST",
                "/v1/agents",
                &self.admin,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body
    }
}

#[tokio::test]
async fn snapshot_then_every_change_in_revision_order() {
    let h = harness().await;
    let a = h.register("alpha").await;
    let (s, mut events) = h.watch("", &h.admin, None).await;
    assert_eq!(s, StatusCode::OK);
    let snap = events.next().await;
    assert_eq!(snap.event, "snapshot");
    assert_eq!(snap.id, a["revision"].as_u64().unwrap());
    assert_eq!(snap.data["trust_domain"], "ward.test");
    assert_eq!(snap.data["agents"][0]["name"], "alpha");
    assert!(snap.data["bundle"]["keys"].is_array());
    assert_eq!(
        snap.data["issuing"],
        h.state.authorities.current().id.as_str()
    );
    // The backlog is out: the stream says so once, at the snapshot's revision.
    let up = events.next().await;
    assert_eq!(up.event, "caught-up");
    assert_eq!(up.id, snap.id);

    let b = h.register("beta").await;
    let change = events.next().await;
    assert_eq!(change.event, "change");
    assert_eq!(change.data["kind"], "agent");
    assert_eq!(change.data["subject"], "beta");
    assert_eq!(change.id, b["revision"].as_u64().unwrap());
    assert!(change.id > snap.id);

    let rev = h
        .state
        .store
        .revoke(
            &RevocationTarget::Agent(ward_core::AgentName::new("alpha").unwrap()),
            "compromised",
            0,
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|c: &Sse| c.data["kind"] != "revocation")
    {
        seen.push(events.next().await);
    }
    let ids: Vec<u64> = seen.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids.iter().all(|&id| id > change.id && id <= rev.revision));
    events.quiet().await;
}

#[tokio::test]
async fn resumes_after_a_revision_without_a_snapshot() {
    let h = harness().await;
    let a = h.register("alpha").await;
    let r = a["revision"].as_u64().unwrap();
    h.register("beta").await;
    h.register("gamma").await;

    for (query, header) in [
        (format!("?since={r}"), None),
        (String::new(), Some(r.to_string())),
    ] {
        let (s, mut events) = h.watch(&query, &h.admin, header.as_deref()).await;
        assert_eq!(s, StatusCode::OK);
        let first = events.next().await;
        assert_eq!(first.event, "change", "resume must not resend a snapshot");
        assert_eq!(first.data["subject"], "beta");
        let gamma = events.next().await;
        assert_eq!(gamma.data["subject"], "gamma");
        let up = events.next().await;
        assert_eq!((up.event.as_str(), up.id), ("caught-up", gamma.id));
        events.quiet().await;
    }

    // A revision the store never reached (another or a restored database):
    // the client's state cannot be trusted, so it gets a snapshot.
    let (_, mut events) = h.watch("?since=999999", &h.admin, None).await;
    let first = events.next().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.data["agents"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn watch_refusals() {
    let h = harness().await;
    let (s, _) = h.watch("", &Caller::default(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h.watch("", &h.admin, Some("not-a-number")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h.watch("?since=-1", &h.admin, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // An agent whose credential is revoked learns nothing more.
    let (_, svid, _) = h.enroll("mole").await;
    let mole = super::caller_of(&svid);
    let (s, _) = h.watch("", &mole, None).await;
    assert_eq!(s, StatusCode::OK, "an active agent may watch");
    h.state
        .store
        .revoke(
            &RevocationTarget::Serial(svid.leaf().serial.to_string()),
            "key leaked",
            0,
        )
        .await
        .unwrap();
    let (s, _) = h.watch("", &mole, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn stream_ends_when_the_server_stops() {
    let h = harness().await;
    let (_, mut events) = h.watch("", &h.admin, None).await;
    assert_eq!(events.next().await.event, "snapshot");
    h.state.stopping.send_replace(true);
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.body.frame().await {
                None => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream must end on shutdown");
}

#[tokio::test]
async fn status_reports_the_registry() {
    let h = harness().await;
    h.register("alpha").await;
    h.register("beta").await;
    let (s, _, _) = h
        .call("POST", "/v1/agents/beta/retire", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body, _) = h.call("GET", "/v1/status", &h.admin, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["store"], "sqlite");
    assert_eq!(body["agents"]["active"], 1);
    assert_eq!(body["agents"]["retired"], 1);
    assert_eq!(body["trust_domain"], "ward.test");
    assert!(body["revision"].as_u64().unwrap() >= 3);
    let (s, body, ctype) = h.call("GET", "/v1/status", &Caller::default(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(body["type"], "urn:ward:problem:unauthenticated");
}

/// Every path and method the OpenAPI document lists reaches a handler (not
/// the 404 fallback, not 405), so the document cannot describe routes that
/// do not exist.
#[tokio::test]
async fn openapi_document_matches_the_router() {
    let h = harness().await;
    let (s, doc, ctype) = h
        .call("GET", "/v1/openapi.json", &Caller::default(), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ctype, "application/json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let uri = path
            .replace("{name}", "alpha")
            .replace("{serial}", "ab01")
            .replace("{version}", "00")
            .replace("{path}", "checkpoint")
            .replace("{index}", "0")
            .replace("{revision}", "1")
            .replace("{id}", "00000000000000ff");
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let method = method.to_uppercase();
            let mut req = Request::builder().method(method.as_str()).uri(&uri);
            if method != "GET" {
                req = req.header("content-type", "application/json");
            }
            let req = req
                .body(Body::from(if method == "GET" { "" } else { "{}" }))
                .unwrap();
            let resp = router(h.state.clone()).oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&bytes);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !text.contains("no such endpoint"),
                "{method} {path} is not routed"
            );
        }
    }
    assert_eq!(operations, 38, "update the count when adding endpoints");
}

#[tokio::test]
async fn revoke_quarantine_release() {
    let h = harness().await;
    h.register("alpha").await;
    let (s, body, _) = h
        .call("POST", "/v1/agents/alpha/quarantine", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "quarantined");
    let (s, body, _) = h
        .call("POST", "/v1/agents/alpha/release", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
    let (s, body, _) = h
        .call("POST", "/v1/agents/alpha/release", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");

    let (s, body, _) = h
        .call(
            "POST",
            "/v1/agents/alpha/revoke",
            &h.admin,
            Some(json!({"reason": "key leaked"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "revoked");
    assert_eq!(body["revocation"]["reason"], "key leaked");
    // Revoked is final: no quarantine, no release back to active.
    let (s, _, _) = h
        .call("POST", "/v1/agents/alpha/quarantine", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) = h
        .call("POST", "/v1/agents/alpha/release", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Unknown serials and malformed input are refused, not silently "revoked".
    let (s, body, _) = h
        .call("POST", "/v1/certificates/abcdef/revoke", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, _, _) = h
        .call("POST", "/v1/certificates/xyz/revoke", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/agents/alpha/revoke",
            &h.admin,
            Some(json!({"reason": "a\nb"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Only admins.
    let (s, _, _) = h
        .call("POST", "/v1/agents/alpha/revoke", &Caller::default(), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, list, _) = h.call("GET", "/v1/revocations", &h.admin, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["target"]["subject"], "alpha");
}

#[tokio::test]
async fn revoke_one_certificate_by_serial() {
    let h = harness().await;
    let (_, _, body) = h.enroll("beta").await;
    let serial = body["serial"].as_str().unwrap().to_owned();
    // Upper case with colons is the same serial.
    let pretty: String = serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let (s, body, _) = h
        .call(
            "POST",
            &format!("/v1/certificates/{pretty}/revoke"),
            &h.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["revocation"]["target"]["subject"], serial);
    assert!(body.get("agent").is_none());
    // The agent itself stays active; only that certificate is dead.
    let (_, agent, _) = h.call("GET", "/v1/agents/beta", &h.admin, None).await;
    assert_eq!(agent["status"], "active");
    assert!(
        h.state
            .store
            .is_revoked(&ward_core::AgentName::new("beta").unwrap(), &serial)
            .await
            .unwrap()
    );
}
