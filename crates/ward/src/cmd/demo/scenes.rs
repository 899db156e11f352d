//! The demo's six scenes. Each one does something real through the
//! proxies or the admin API, narrates what happened and what Ward decided,
//! and reports an [`Outcome`] built only from what it observed: status
//! codes, JSON-RPC errors, the tool server's own log, receipts, proofs.
//! This module owns their order and shared state; the scenes themselves
//! live in [`traffic`] (1–4), [`revocation`] (5) and [`proof`] (6).

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::fabric::Fabric;
use super::narrate::Narrator;
use super::web::at;

mod proof;
mod revocation;
mod traffic;

/// The reason the bundle's forbid gives for destructive tools (a unit test
/// checks the bundle says it).
pub(super) const DENY_REASON: &str = "destructive tools need a human approval";
/// The forbid's policy id.
const DENY_POLICY: &str = "destructive-tools-need-approval";
/// Calls in the rate-limit scene's burst: more than the bucket holds.
const BURST: u32 = 8;
/// Longest wait for the audit pipeline (spool → server log → index →
/// checkpoint).
const AUDIT_WITHIN: Duration = Duration::from_secs(15);
/// Longest wait for the cut stream to end.
const CUT_WITHIN: Duration = Duration::from_secs(10);

const EXPECT_ALLOWED: &str = "200, caller verified";
const EXPECT_DISCOVERY: &str = "list = search, summarize";
const EXPECT_DENIED: &str = "-32050 + reason, not forwarded";
const EXPECT_RATE_LIMITED: &str = "429 + Retry-After in a burst";
const EXPECT_REVOKED: &str = "receipts, stream cut, then 403";
const EXPECT_AUDIT: &str = "log and proof of denial verify";

/// What one scene expected and what happened.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Outcome {
    pub(super) name: &'static str,
    pub(super) expected: String,
    pub(super) observed: String,
    pub(super) ok: bool,
    /// The decision the scene is about, as Ward named it.
    pub(super) decision_id: Option<String>,
    /// The facts behind `observed`, for scripts (and the demo's test).
    pub(super) details: Value,
}

/// Runs the scenes in order over a ready fabric.
pub(super) struct Scenes<'a> {
    fabric: &'a Fabric,
    out: Narrator,
    /// The MCP session the tool server handed out.
    session: Option<String>,
    /// Scene 3's denial, proven in scene 6.
    denied: Option<String>,
    /// Scene 5's refusal of the revoked researcher, found in scene 6.
    refused_revoked: Option<String>,
}

impl<'a> Scenes<'a> {
    pub(super) fn new(fabric: &'a Fabric, out: Narrator) -> Self {
        Self {
            fabric,
            out,
            session: None,
            denied: None,
            refused_revoked: None,
        }
    }

    /// Every scene, in order; a scene that fails with an error is recorded
    /// as not matching, and the next one still runs.
    pub(super) async fn run(&mut self) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(6);
        let r = self.allowed().await;
        outcomes.push(self.settle("allowed", EXPECT_ALLOWED, r));
        self.out.pause().await;
        let r = self.discovery().await;
        outcomes.push(self.settle("discovery", EXPECT_DISCOVERY, r));
        self.out.pause().await;
        let r = self.denied().await;
        outcomes.push(self.settle("denied", EXPECT_DENIED, r));
        self.out.pause().await;
        let r = self.rate_limited().await;
        outcomes.push(self.settle("rate-limited", EXPECT_RATE_LIMITED, r));
        self.out.pause().await;
        let r = self.revoked().await;
        outcomes.push(self.settle("revoked", EXPECT_REVOKED, r));
        self.out.pause().await;
        let r = self.audit().await;
        outcomes.push(self.settle("audit", EXPECT_AUDIT, r));
        outcomes
    }

    /// A scene's outcome, or its error as an outcome that did not match.
    fn settle(
        &self,
        name: &'static str,
        expected: &str,
        result: anyhow::Result<Outcome>,
    ) -> Outcome {
        result.unwrap_or_else(|e| {
            self.out.bad(&format!("error: {e:#}"));
            Outcome {
                name,
                expected: expected.to_owned(),
                observed: format!("error: {e:#}"),
                ok: false,
                decision_id: None,
                details: json!({"error": format!("{e:#}")}),
            }
        })
    }

    pub(super) fn outbound(&self, agent: &str) -> anyhow::Result<std::net::SocketAddr> {
        Ok(self.fabric.proxy(agent)?.outbound)
    }

    /// The verdict line of a scene.
    pub(super) fn verdict(&self, ok: bool, text: &str) {
        if ok {
            self.out.good(text);
        } else {
            self.out.bad(text);
        }
    }
}

/// The `name`s of a JSON array of tools.
pub(super) fn names(tools: &Value) -> Vec<String> {
    tools
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| at(t, "/name").as_str().map(str::to_owned))
        .collect()
}

pub(super) fn policies_text(policies: &Value) -> String {
    let list: Vec<&str> = policies
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(", ")
    }
}

pub(super) fn first(reasons: &Value) -> String {
    at(reasons, "/0").as_str().unwrap_or("").to_owned()
}

/// `spiffe://td/agent/name` → `name`.
pub(super) fn agent_of(principal: Option<&str>) -> String {
    match principal {
        Some(p) => p.rsplit('/').next().unwrap_or(p).to_owned(),
        None => "-".to_owned(),
    }
}

/// `Action::"tools/call"` → `tools/call` (admin refusals name the action
/// bare: `receipt/report`).
pub(super) fn action_of(action: &Value) -> String {
    let text = action.as_str().unwrap_or("-");
    text.trim_start_matches("Action::")
        .trim_matches('"')
        .to_owned()
}

/// `Tool::"tools/search"` → `tools/search`.
pub(super) fn resource_of(resource: &Value) -> String {
    let text = resource.as_str().unwrap_or("-");
    match text.split_once("::") {
        Some((_, id)) => id.trim_matches('"').to_owned(),
        None => text.to_owned(),
    }
}

/// The first 12 characters of a hash, for reading (full hashes are in
/// the JSON summary).
pub(super) fn short(hash: &str) -> String {
    let cut: String = hash.chars().take(12).collect();
    format!("{cut}…")
}
