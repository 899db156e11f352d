//! `/v1/audit`: ingestion from proxies (only their own records, strictly
//! decoded, re-sends skipped), refusals audited in the log itself, and the
//! read side (records, tiles, proofs) checked against an independent
//! recomputation.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use ward_audit::record::{AuditRecord, BodyDigest, Decision, RequestDigest, UnixMillis};
use ward_audit::{Hash, InclusionProof, LeafIndex, TreeSize};
use ward_core::SpiffeId;

use super::{Harness, caller_of, harness};
use crate::api::{Caller, router};

fn record(proxy: &str, id: &str, decision: Decision, policy: &str) -> Vec<u8> {
    AuditRecord {
        time: UnixMillis::new(1_700_000_000_000).unwrap(),
        decision_id: id.to_owned(),
        proxy_id: proxy.to_owned(),
        principal: Some(SpiffeId::new("spiffe://ward.test/agent/caller").unwrap()),
        action: "GET".to_owned(),
        resource: "Agent::\"tools\"".to_owned(),
        decision,
        policies: vec![policy.to_owned()],
        reasons: vec!["because".to_owned()],
        policy_version: "v1".to_owned(),
        trace_id: None,
        peer_cert_serial: None,
        request: RequestDigest {
            body_sha256: BodyDigest::of(b""),
            method: "GET".to_owned(),
            path: "/x".to_owned(),
        },
        rpc: None,
    }
    .encode()
    .unwrap()
}

async fn ship(
    h: &Harness,
    caller: &Caller,
    first_seq: u64,
    lines: &[Vec<u8>],
) -> (StatusCode, Value) {
    let mut body = Vec::new();
    for l in lines {
        body.extend_from_slice(l);
        body.push(b'\n');
    }
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("/v1/audit/records?first_seq={first_seq}"))
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut().insert(caller.clone());
    let resp = router(h.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Every entry of the log, decoded.
pub(super) fn log_entries(h: &Harness) -> Vec<AuditRecord> {
    let size = *h.state.audit.size().borrow();
    crate::audit::AuditLog::entries(&**h.state.audit.store(), 0, size, size)
        .unwrap()
        .into_iter()
        .map(|(_, e)| AuditRecord::decode(&e).unwrap())
        .collect()
}

async fn wait_indexed(h: &Harness) {
    for _ in 0..200 {
        let size = *h.state.audit.size().borrow();
        if crate::audit::index::indexed_below(h.state.store.pool())
            .await
            .unwrap()
            >= size
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the index never caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_ship_their_records_once_and_admins_read_them_back() {
    let h = harness().await;
    let (_trigger, watch) = ward_core::drain::channel();
    crate::audit::index::follow(h.state.audit.clone(), h.state.store.clone(), watch);
    let (_, svid, _) = h.enroll("tools").await;
    let proxy = caller_of(&svid);
    let me = svid.spiffe_id().to_string();
    let batch = vec![
        record(&me, "d1", Decision::Allow, "p-allow"),
        record(&me, "d2", Decision::Deny, "p-deny"),
        record(&me, "d3", Decision::Allow, "p-allow"),
    ];
    let (s, body) = ship(&h, &proxy, 0, &batch).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["through_seq"], 2);
    assert_eq!(body["appended"], 3);
    // A lost acknowledgement: the proxy sends seqs 0..=2 again plus 3.
    let mut again = batch.clone();
    again.push(record(&me, "d4", Decision::Deny, "p-deny"));
    let (s, body) = ship(&h, &proxy, 0, &again).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["through_seq"], 3);
    assert_eq!(body["appended"], 1, "re-sent records are skipped: {body}");
    let ids: Vec<String> = log_entries(&h).into_iter().map(|r| r.decision_id).collect();
    assert_eq!(ids, ["d1", "d2", "d3", "d4"]);

    wait_indexed(&h).await;
    let (s, body, _) = h
        .call(
            "GET",
            "/v1/audit/records?decision=deny&agent=tools",
            &h.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let got: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"]["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["d2", "d4"]);
    let (_, body, _) = h
        .call(
            "GET",
            "/v1/audit/records?policy=p-allow&last=1",
            &h.admin,
            None,
        )
        .await;
    assert_eq!(body["records"][0]["record"]["decision_id"], "d3");
    assert_eq!(body["records"][0]["index"], 2);
    let (_, body, _) = h
        .call("GET", "/v1/audit/records?agent=nobody", &h.admin, None)
        .await;
    assert!(body["records"].as_array().unwrap().is_empty());

    // The inclusion proof verifies against the root recomputed here from
    // the entries alone.
    let (s, body, _) = h
        .call("GET", "/v1/audit/proof/1?size=4", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let leaves: Vec<Hash> = [&batch[0], &batch[1], &batch[2], &again[3]]
        .iter()
        .map(|e| ward_audit::leaf_hash(e))
        .collect();
    let root = ward_audit::tree::merkle_root(&leaves);
    let path: Vec<Hash> = body["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    let proof = InclusionProof::new(LeafIndex::new(1), TreeSize::new(4), path);
    proof.verify(&leaves[1], &root).unwrap();
    assert!(proof.verify(&leaves[2], &root).is_err());
    assert_eq!(body["entry"].as_str().unwrap().as_bytes(), &batch[1][..]);

    // Tiles are served at their tlog-tiles paths; the private commit record
    // and malformed paths are not.
    let (s, _, ctype) = h
        .call("GET", "/v1/audit/log/checkpoint", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let (s, _, _) = h
        .call("GET", "/v1/audit/log/tile/entries/000.p/4", &h.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for bad in ["ward-tree-state", "tile/entries/0.p/4", "../ward.db"] {
        let (s, _, _) = h
            .call("GET", &format!("/v1/audit/log/{bad}"), &h.admin, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{bad}");
    }

    // One decision by its id: a time-ordered id (found through the time
    // index), pasted in upper case, and an id of the older random kind
    // (found by a scan); an unknown id finds nothing, a silly one is refused.
    let v7 = ward_audit::decision_id::new(1_700_000_000_000 - 1_500, [9; 10]);
    let (s, body) = ship(&h, &proxy, 4, &[record(&me, &v7, Decision::Deny, "p-deny")]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    wait_indexed(&h).await;
    let by_id = |id: String| {
        let h = &h;
        async move {
            let (s, body, _) = h
                .call(
                    "GET",
                    &format!("/v1/audit/records?decision_id={id}"),
                    &h.admin,
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{id}: {body}");
            body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["index"].as_u64().unwrap(),
                        r["record"]["decision_id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by_id(v7.to_uppercase()).await, [(4, v7.clone())]);
    assert_eq!(by_id("d2".to_owned()).await, [(1, "d2".to_owned())]);
    let other = ward_audit::decision_id::new(1_700_000_000_000, [8; 10]);
    assert_eq!(by_id(other).await, []);
    let (s, body, _) = h
        .call(
            "GET",
            &format!("/v1/audit/records?decision_id={}", "a".repeat(129)),
            &h.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("decision_id"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_batches_are_refused_and_the_refusal_is_logged() {
    let h = harness().await;
    let (_, svid, _) = h.enroll("tools").await;
    let proxy = caller_of(&svid);
    let me = svid.spiffe_id().to_string();

    // Records in another proxy's name: refused as a whole, nothing of the
    // batch logged, the attempt logged as a denial naming the caller.
    let forged = vec![
        record(&me, "mine", Decision::Allow, "p"),
        record(
            "spiffe://ward.test/agent/other",
            "theirs",
            Decision::Allow,
            "p",
        ),
    ];
    let (s, body) = ship(&h, &proxy, 0, &forged).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("record 2"),
        "{body}"
    );
    let entries = log_entries(&h);
    assert_eq!(entries.len(), 1, "only the refusal is logged: {entries:?}");
    let refusal = &entries[0];
    assert_eq!(refusal.decision, Decision::Deny);
    assert_eq!(refusal.action, "audit/ingest");
    assert_eq!(refusal.principal.as_ref(), Some(svid.spiffe_id()));
    assert_eq!(refusal.proxy_id, "spiffe://ward.test/ward/server");

    // Not canonical (whitespace added): 422, logged too.
    let mut loose = record(&me, "x", Decision::Allow, "p");
    loose.insert(1, b' ');
    let (s, _) = ship(&h, &proxy, 0, &[loose]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(log_entries(&h).len(), 2);

    // No client certificate at all: 401 (there is nobody to attribute).
    let (s, _) = ship(
        &h,
        &Caller::default(),
        0,
        &[record(&me, "y", Decision::Allow, "p")],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // An admin SVID is not a proxy.
    let (s, _) = ship(&h, &h.admin, 0, &[record(&me, "z", Decision::Allow, "p")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A revoked proxy ships nothing more.
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/agents/tools/revoke",
            &h.admin,
            Some(serde_json::json!({"reason": "stolen"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = ship(&h, &proxy, 0, &[record(&me, "late", Decision::Allow, "p")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let entries = log_entries(&h);
    assert!(entries.iter().all(|r| r.decision_id != "late"));
    assert_eq!(entries.len(), 4, "four refusals: {entries:?}");

    // Agents may not read the log: refused by policy, and that is logged.
    let (s, _, _) = h.call("GET", "/v1/audit/records", &proxy, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let last = log_entries(&h).pop().unwrap();
    assert_eq!(last.action, "audit/read");
    assert_eq!(last.principal.as_ref(), Some(svid.spiffe_id()));
}

/// A proxy's full batch (`ward_proxy::ship`: up to 4 MiB) is larger than
/// axum's 2 MB default body limit; it is taken whole, and a body over
/// [`MAX_BATCH_BYTES`] (or over `MAX_BATCH_RECORDS` records) is refused:
/// nothing of it is appended, and the refusal is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_proxy_batches_are_taken_and_oversized_bodies_refused() {
    use crate::api::audit::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
    let h = harness().await;
    let (_, svid, _) = h.enroll("tools").await;
    let proxy = caller_of(&svid);
    let me = svid.spiffe_id().to_string();
    let big = |i: usize| {
        let mut r =
            AuditRecord::decode(&record(&me, &format!("big-{i}"), Decision::Allow, "p")).unwrap();
        r.reasons = vec!["r".repeat(1500)];
        r.encode().unwrap()
    };
    let batch: Vec<Vec<u8>> = (0..2000).map(big).collect();
    let bytes: usize = batch.iter().map(|r| r.len() + 1).sum();
    assert!((3 << 20..MAX_BATCH_BYTES).contains(&bytes), "{bytes}");
    let (s, body) = ship(&h, &proxy, 0, &batch).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["appended"], 2000, "{body}");
    assert_eq!(body["through_seq"], 1999, "{body}");

    let oversized: Vec<Vec<u8>> = (2000..6500).map(big).collect();
    let bytes: usize = oversized.iter().map(|r| r.len() + 1).sum();
    assert!(bytes > MAX_BATCH_BYTES, "{bytes}");
    let (s, body) = ship(&h, &proxy, 2000, &oversized).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["type"], "urn:ward:problem:too-large", "{body}");
    // Nothing of it is logged but the refusal, in the shipping proxy's name.
    let entries = log_entries(&h);
    assert_eq!(entries.len(), 2001, "the batch is not appended");
    let refusal = &entries[2000];
    assert_eq!(refusal.decision, Decision::Deny);
    assert_eq!(refusal.action, "audit/ingest");
    assert_eq!(refusal.principal.as_ref(), Some(svid.spiffe_id()));
    assert!(
        refusal.reasons[0].contains(&MAX_BATCH_BYTES.to_string()),
        "{refusal:?}"
    );

    // So is a batch of too many records.
    let tiny = |i: usize| record(&me, &format!("n-{i}"), Decision::Allow, "p");
    let many: Vec<Vec<u8>> = (0..=MAX_BATCH_RECORDS).map(tiny).collect();
    let (s, body) = ship(&h, &proxy, 2000, &many).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let entries = log_entries(&h);
    assert_eq!(entries.len(), 2002, "the batch is not appended");
    assert!(
        entries[2001].reasons[0].contains("at most"),
        "{:?}",
        entries[2001]
    );
}

/// Receipts: a proxy's report moves its revision forward only; the wait
/// answers once it applied; an admin or revoked proxy cannot report, and
/// the attempt is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_come_only_from_unrevoked_proxies() {
    let h = harness().await;
    let (_, svid, _) = h.enroll("tools").await;
    let proxy = caller_of(&svid);
    let revision = h.state.store.revision().await.unwrap();
    let (s, body, _) = h
        .call(
            "POST",
            "/v1/receipts",
            &proxy,
            Some(serde_json::json!({"revision": revision})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // An older report does not move it back.
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/receipts",
            &proxy,
            Some(serde_json::json!({"revision": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, body, _) = h
        .call(
            "GET",
            &format!("/v1/receipts/{revision}?timeout_ms=100"),
            &h.admin,
            None,
        )
        .await;
    assert_eq!(body["applied"][0]["agent"], "tools", "{body}");
    assert_eq!(body["pending"], serde_json::json!([]));
    let (_, body, _) = h
        .call(
            "GET",
            &format!("/v1/receipts/{}?timeout_ms=50", revision + 1),
            &h.admin,
            None,
        )
        .await;
    assert_eq!(body["pending"][0]["agent"], "tools", "{body}");
    assert!(body["waited_ms"].as_u64().unwrap() >= 50);

    // The fleet's receipts as Prometheus metrics, for admins only.
    let scrape = |caller: Caller| {
        let mut req = Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(caller);
        let state = h.state.clone();
        async move {
            let resp = router(state).oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let (s, text) = scrape(h.admin.clone()).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    for line in [
        format!(
            "ward_server_revision {}",
            h.state.store.revision().await.unwrap()
        ),
        format!("ward_server_proxy_applied_revision{{agent=\"tools\"}} {revision}"),
        "ward_server_proxy_lag_revisions{agent=\"tools\"} 0".to_owned(),
        "ward_server_proxies{state=\"connected\"} 1".to_owned(),
        "ward_server_agents{status=\"active\"} 1".to_owned(),
        "ward_server_ca_authorities{state=\"active\"} 1".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let (s, _) = scrape(proxy.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "agents may not scrape by default");

    let (s, _, _) = h
        .call(
            "POST",
            "/v1/receipts",
            &h.admin,
            Some(serde_json::json!({"revision": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/agents/tools/revoke",
            &h.admin,
            Some(serde_json::json!({"reason": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = h
        .call(
            "POST",
            "/v1/receipts",
            &proxy,
            Some(serde_json::json!({"revision": 99})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let refusals: Vec<AuditRecord> = log_entries(&h)
        .into_iter()
        .filter(|r| r.action == "receipt/report")
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert_eq!(
        log_entries(&h)
            .iter()
            .filter(|r| r.action == "server/metrics")
            .count(),
        1,
        "the refused scrape is logged"
    );
    assert_eq!(refusals[1].principal.as_ref(), Some(svid.spiffe_id()));
    // A revoked agent's proxy no longer counts.
    let (_, body, _) = h.call("GET", "/v1/proxies", &h.admin, None).await;
    assert_eq!(body, serde_json::json!([]));
}
