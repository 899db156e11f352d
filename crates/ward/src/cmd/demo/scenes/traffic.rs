//! Scenes 1–4: calls through the proxies. Allowed HTTP with the verified
//! caller, filtered MCP discovery, a destructive tool denied with the
//! policy's reason (and the tool server's own log showing nothing came),
//! and a per-caller rate limit.

use std::time::Instant;

use serde_json::json;

use super::{
    BURST, DENY_REASON, EXPECT_ALLOWED, EXPECT_DENIED, EXPECT_DISCOVERY, EXPECT_RATE_LIMITED,
    Outcome, Scenes, names, policies_text,
};
use crate::cmd::demo::apps::{self, rpc_request};
use crate::cmd::demo::fabric::{RESEARCHER_RATE, TRUST_DOMAIN};
use crate::cmd::demo::web::{self, at};

impl Scenes<'_> {
    pub(super) async fn allowed(&mut self) -> anyhow::Result<Outcome> {
        let out = self.out;
        out.scene(
            "1/6",
            "Allowed: planner → researcher (HTTP)",
            "The planner's app calls the researcher through its own proxy. The proxies \
             authenticate each other with mutual TLS (SPIFFE certificates); the \
             researcher's proxy decides the call with Cedar, then forwards it.",
        );
        let planner = self.outbound("planner")?;
        out.step(&format!(
            "planner's app → {planner} (its proxy): GET /research?topic=zero+trust, Host: researcher"
        ));
        out.fact(
            "note",
            "the app also sends a forged `ward-peer-id: …/admin/admin` header",
        );
        let forged = format!("spiffe://{TRUST_DOMAIN}/admin/admin");
        let reply = web::send(
            planner,
            web::request(
                "GET",
                "researcher",
                "/research?topic=zero+trust",
                &[(ward_proxy::http::PEER_ID, &forged)],
                None,
            )?,
        )
        .await?;
        let body = reply.json();
        let caller = at(&body, "/caller").as_str().map(str::to_owned);
        let decision_id = at(&body, "/decision_id").as_str().map(str::to_owned);
        let want = format!("spiffe://{TRUST_DOMAIN}/agent/planner");
        let forged_seen = caller.as_deref() == Some(forged.as_str());
        let ok = reply.status == 200
            && caller.as_deref() == Some(want.as_str())
            && decision_id.is_some();
        self.verdict(
            ok,
            &format!(
                "HTTP {} — the researcher's app was called by:",
                reply.status
            ),
        );
        out.fact(
            "caller",
            &format!(
                "{} ({})",
                caller.as_deref().unwrap_or("-"),
                if forged_seen {
                    "THE FORGED HEADER GOT THROUGH"
                } else {
                    "set by its proxy from planner's certificate; the forged header was dropped"
                }
            ),
        );
        out.fact("decision", decision_id.as_deref().unwrap_or("-"));
        if let Some(finding) = at(&body, "/finding").as_str() {
            out.fact(
                "answer",
                &format!("{finding}  (the researcher asked tools/search via its own proxy)"),
            );
        }
        Ok(Outcome {
            name: "allowed",
            expected: EXPECT_ALLOWED.to_owned(),
            observed: format!(
                "{}, caller {}",
                reply.status,
                caller.as_deref().unwrap_or("missing")
            ),
            ok,
            decision_id: decision_id.clone(),
            details: json!({
                "status": reply.status,
                "peer_id": caller,
                "forged_peer_id_seen": forged_seen,
                "finding": at(&body, "/finding"),
            }),
        })
    }

    pub(super) async fn discovery(&mut self) -> anyhow::Result<Outcome> {
        let out = self.out;
        out.scene(
            "2/6",
            "Filtered discovery: researcher → tools (MCP)",
            "The researcher's app opens an MCP session with the tool server. The tools' \
             proxy decides every JSON-RPC call per tool, and trims tools/list to what \
             this caller may call.",
        );
        let researcher = self.outbound("researcher")?;
        let log = &self.fabric.apps()?.tool_log;

        let init = web::send(
            researcher,
            rpc_request(
                "tools",
                "initialize",
                &json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "researcher", "version": "1.0"}}),
                Some(1),
                None,
            )?,
        )
        .await?;
        let server = at(&init.json(), "/result/serverInfo/name")
            .as_str()
            .map(str::to_owned);
        self.session = init.header("mcp-session-id").map(str::to_owned);
        out.step(&format!(
            "initialize → HTTP {}, server {}, session {}",
            init.status,
            server.as_deref().unwrap_or("-"),
            self.session.as_deref().unwrap_or("-")
        ));
        let session = self.session.clone();
        let initialized = web::send(
            researcher,
            rpc_request(
                "tools",
                "notifications/initialized",
                &json!({}),
                None,
                session.as_deref(),
            )?,
        )
        .await?;
        out.step(&format!(
            "notifications/initialized → HTTP {}",
            initialized.status
        ));

        let offered: Vec<String> = names(&apps::tool_catalogue());
        let list = web::send(
            researcher,
            rpc_request(
                "tools",
                "tools/list",
                &json!({}),
                Some(2),
                session.as_deref(),
            )?,
        )
        .await?;
        let seen: Vec<String> = names(at(&list.json(), "/result/tools"));
        out.step(&format!(
            "tools/list: the tool server offers {}",
            offered.join(", ")
        ));
        let filtered = seen == ["search", "summarize"];
        self.verdict(
            filtered,
            &format!(
                "the researcher received {} — delete_records was filtered out by its proxy",
                if seen.is_empty() {
                    "no tools".to_owned()
                } else {
                    seen.join(", ")
                }
            ),
        );

        let before = log.received().len();
        let call = web::send(
            researcher,
            rpc_request(
                "tools",
                "tools/call",
                &json!({"name": "search", "arguments": {"query": "agent identity"}}),
                Some(3),
                session.as_deref(),
            )?,
        )
        .await?;
        let answer = at(&call.json(), "/result/content/0/text")
            .as_str()
            .map(str::to_owned);
        let decision_id = log
            .received()
            .get(before..)
            .and_then(|new| new.iter().find(|r| r.tool.as_deref() == Some("search")))
            .and_then(|r| r.decision_id.clone());
        let answered = call.status == 200 && answer.is_some();
        self.verdict(
            answered,
            &format!(
                "tools/call search → {}",
                answer.as_deref().unwrap_or("no result")
            ),
        );
        out.fact("decision", decision_id.as_deref().unwrap_or("-"));
        let ok = init.status == 200 && filtered && answered;
        Ok(Outcome {
            name: "discovery",
            expected: EXPECT_DISCOVERY.to_owned(),
            observed: format!(
                "list = {}; search {}",
                seen.join(", "),
                if answered { "answered" } else { "failed" }
            ),
            ok,
            decision_id,
            details: json!({
                "offered": offered,
                "listed": seen,
                "search_answer": answer,
                "session": self.session,
            }),
        })
    }

    pub(super) async fn denied(&mut self) -> anyhow::Result<Outcome> {
        let out = self.out;
        out.scene(
            "3/6",
            "Denied: researcher → tools: tools/call delete_records",
            "A destructive tool (risk 3). The bundle's forbid carries a reason; the \
             tools' proxy answers in JSON-RPC so any MCP client shows it, and the call \
             never reaches the tool server.",
        );
        let researcher = self.outbound("researcher")?;
        let log = &self.fabric.apps()?.tool_log;
        let before = log.received().len();
        let deletes_before = log.calls_of("delete_records");
        let reply = web::send(
            researcher,
            rpc_request(
                "tools",
                "tools/call",
                &json!({"name": "delete_records", "arguments": {"older_than": "2020-01-01"}}),
                Some(4),
                self.session.as_deref(),
            )?,
        )
        .await?;
        let answer = reply.json();
        let error = at(&answer, "/error");
        let code = at(error, "/code").as_i64();
        let message = at(error, "/message").as_str().unwrap_or("").to_owned();
        let decision_id = at(error, "/data/decision_id").as_str().map(str::to_owned);
        let policies = at(error, "/data/policies").clone();
        let reached =
            log.received().len() > before || log.calls_of("delete_records") > deletes_before;
        let refused = code == Some(ward_proxy::jsonrpc::DENIED) && message.contains(DENY_REASON);
        if refused {
            out.refused(&format!(
                "JSON-RPC error {} — {message}",
                code.unwrap_or_default()
            ));
        } else {
            out.bad(&format!(
                "unexpected answer (HTTP {}): {answer}",
                reply.status
            ));
        }
        out.fact("policy", &policies_text(&policies));
        out.fact("decision", decision_id.as_deref().unwrap_or("-"));
        self.verdict(
            !reached,
            if reached {
                "the call reached the tool server!"
            } else {
                "the tool server's own log shows nothing arrived"
            },
        );
        self.denied.clone_from(&decision_id);
        Ok(Outcome {
            name: "denied",
            expected: EXPECT_DENIED.to_owned(),
            observed: format!(
                "{} \"{}\", {}",
                code.map_or_else(|| format!("HTTP {}", reply.status), |c| c.to_string()),
                if message.contains(DENY_REASON) {
                    DENY_REASON
                } else {
                    "no reason"
                },
                if reached {
                    "FORWARDED"
                } else {
                    "not forwarded"
                }
            ),
            ok: refused && !reached && decision_id.is_some(),
            decision_id,
            details: json!({
                "code": code,
                "message": message,
                "policies": policies,
                "reached_tool_server": reached,
            }),
        })
    }

    pub(super) async fn rate_limited(&mut self) -> anyhow::Result<Outcome> {
        let out = self.out;
        out.scene(
            "4/6",
            "Rate limit: planner → researcher, a burst",
            &format!(
                "The researcher's proxy allows each caller {}/s with bursts of {}; the \
                 planner's app fires {BURST} calls in quick succession.",
                RESEARCHER_RATE.per_second, RESEARCHER_RATE.burst
            ),
        );
        let planner = self.outbound("planner")?;
        let started = Instant::now();
        let mut statuses = Vec::new();
        let mut first_limited: Option<web::Reply> = None;
        for _ in 0..BURST {
            let reply = web::send(
                planner,
                web::request("GET", "researcher", "/ping", &[], None)?,
            )
            .await?;
            statuses.push(reply.status);
            if reply.status == 429 && first_limited.is_none() {
                first_limited = Some(reply);
            }
        }
        let allowed = statuses.iter().filter(|s| **s == 200).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        out.step(&format!(
            "{BURST} calls in {} ms: {}",
            started.elapsed().as_millis(),
            statuses
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let retry_after = first_limited
            .as_ref()
            .and_then(|r| r.header("retry-after"))
            .and_then(|v| v.parse::<u64>().ok());
        let problem = first_limited.as_ref().map(web::Reply::json);
        let decision_id = problem
            .as_ref()
            .and_then(|p| at(p, "/decision_id").as_str())
            .map(str::to_owned);
        match (&problem, retry_after) {
            (Some(p), Some(secs)) => {
                out.refused(&format!(
                    "429 Too Many Requests, Retry-After: {secs} — {}",
                    at(p, "/detail").as_str().unwrap_or("")
                ));
                out.fact("decision", decision_id.as_deref().unwrap_or("-"));
            }
            _ => out.bad("no call was rate-limited"),
        }
        let clean = allowed + limited == statuses.len();
        let ok = allowed > 0 && limited > 0 && retry_after.is_some() && clean;
        Ok(Outcome {
            name: "rate-limited",
            expected: EXPECT_RATE_LIMITED.to_owned(),
            observed: format!(
                "{allowed} × 200, {limited} × 429{}",
                retry_after.map_or_else(String::new, |s| format!(" (Retry-After {s}s)"))
            ),
            ok,
            decision_id,
            details: json!({
                "statuses": statuses,
                "allowed": allowed,
                "limited": limited,
                "retry_after_secs": retry_after,
                "detail": problem.as_ref().map(|p| at(p, "/detail").clone()),
            }),
        })
    }
}
