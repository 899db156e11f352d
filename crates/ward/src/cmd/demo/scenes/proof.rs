//! Scene 6: the audit log. Waits until every proxy's records are in the
//! server's log, verifies the whole log with the CLI's own code (`ward
//! audit verify`), and proves the denial of scene 3 is in it (`ward audit
//! prove`).

use anyhow::Context;
use serde_json::{Value, json};

use super::{
    AUDIT_WITHIN, DENY_POLICY, EXPECT_AUDIT, Outcome, Scenes, action_of, agent_of, first,
    policies_text, resource_of, short,
};
use crate::cmd::audit;
use crate::cmd::demo::fabric::{TRUST_DOMAIN, poll, wait_until};
use crate::cmd::demo::narrate::Style;
use crate::cmd::demo::web::at;

impl Scenes<'_> {
    pub(super) async fn audit(&mut self) -> anyhow::Result<Outcome> {
        let out = self.out;
        out.scene(
            "6/6",
            "Audit: the tamper-evident log",
            "Every decision above, allowed or denied, at every proxy, is a record in the \
             server's Merkle log. The demo verifies the whole log as `ward audit verify` \
             does, and proves the delete_records denial is in it.",
        );
        let fabric = self.fabric;
        let admin = fabric.admin()?;
        let server = fabric.server()?;
        for (name, proxy) in &fabric.proxies {
            wait_until(
                &format!("{name}'s proxy to ship its audit records"),
                AUDIT_WITHIN,
                || proxy.shared.audit.backlog() == 0,
            )
            .await?;
        }
        out.step("every proxy has shipped its records to the server (their spools are empty)");

        let denied = self
            .denied
            .clone()
            .context("scene 3 produced no decision id to look for")?;
        let refused_revoked = self.refused_revoked.clone();
        // Each refusal is found by the decision id its caller was given,
        // as `ward audit query --decision-id` finds it. Shipped means
        // sequenced; the query index follows the log a moment later.
        let by_id = async |id: &str| -> anyhow::Result<Option<(u64, Value)>> {
            anyhow::ensure!(
                id.bytes().all(|b| b.is_ascii_alphanumeric()),
                "decision id {id:?} is not the hex id Ward gives out"
            );
            let page: Value = admin
                .get(&format!("/v1/audit/records?decision_id={id}"))
                .await?;
            Ok(at(&page, "/records/0/index")
                .as_u64()
                .map(|i| (i, at(&page, "/records/0/record").clone())))
        };
        let (index, record, revoked_index) = poll(
            "scene 3's and scene 5's refusals to appear in the log's index",
            AUDIT_WITHIN,
            async || {
                let revoked_index = match refused_revoked.as_deref() {
                    Some(id) => match by_id(id).await? {
                        Some((i, _)) => Some(i),
                        None => return Ok(None),
                    },
                    None => None,
                };
                Ok(by_id(&denied)
                    .await?
                    .map(|(index, record)| (index, record, revoked_index)))
            },
        )
        .await?;

        // Pin the log's key from the server's data directory rather than
        // take the key the server announces.
        let td = ward_core::TrustDomain::new(TRUST_DOMAIN).context("trust domain")?;
        let vkey = ward_server::audit::signing_key(server.data.root(), &td)
            .map_err(|e| anyhow::anyhow!("the log's key: {e}"))?
            .verifier()
            .to_string();
        let (verifier, origin) = audit::verifier(admin, Some(vkey)).await?;
        let proved = poll(
            &format!("a signed checkpoint covering entry {index}"),
            AUDIT_WITHIN,
            async || {
                Ok(Some(
                    audit::prove_entry(admin, index, &verifier, &origin).await?,
                ))
            },
        )
        .await?;

        let mirror = fabric.workdir.join("audit-mirror");
        let size = audit::mirror_log(admin, &verifier, &origin, &mirror, false).await?;
        let verdict = audit::check_dir(&mirror, &verifier, Some(origin.as_str()), &[])?;
        match &verdict {
            Ok(v) => out.good(&format!(
                "log verified: {} entries, the tree recomputed from every entry matches the signed checkpoint (root {})",
                v.size.get(),
                short(&v.root.to_string())
            )),
            Err(e) => out.bad(&format!("log verification FAILED: {e}")),
        }
        out.fact(
            "key",
            &format!(
                "{} (pinned from the server's data directory)",
                verifier.name()
            ),
        );
        self.tail(admin).await;

        out.step(&format!(
            "the delete_records denial, found by its decision id (`ward audit query --decision-id {denied}`), is entry {index}:"
        ));
        out.fact(
            "record",
            &format!(
                "{}: {} → {} {} (decided at the proxy of {})",
                at(&record, "/decision")
                    .as_str()
                    .unwrap_or("-")
                    .to_uppercase(),
                agent_of(at(&record, "/principal").as_str()),
                action_of(at(&record, "/action")),
                resource_of(at(&record, "/resource")),
                agent_of(at(&record, "/proxy_id").as_str()),
            ),
        );
        out.fact("reason", &first(at(&record, "/reasons")));
        out.fact("policy", &policies_text(at(&record, "/policies")));
        if let Some(i) = revoked_index {
            out.fact(
                "also",
                &format!("scene 5's refusal of the revoked researcher is entry {i}"),
            );
        }
        let proof_ok = proved.verdict.is_ok();
        self.verdict(
            proof_ok,
            &format!(
                "inclusion proof: leaf {index} in the signed tree of size {} (root {}) — {}",
                proved.size.get(),
                short(&proved.root.to_base64()),
                match &proved.verdict {
                    Ok(()) => "proof verified".to_owned(),
                    Err(e) => format!("PROOF FAILED: {e}"),
                }
            ),
        );
        let is_the_denial = at(&record, "/decision") == "deny"
            && at(&record, "/policies")
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p == DENY_POLICY));
        let ok = verdict.is_ok() && proof_ok && is_the_denial;
        Ok(Outcome {
            name: "audit",
            expected: EXPECT_AUDIT.to_owned(),
            observed: format!(
                "{} entries {}; proof of entry {index} {}",
                size.get(),
                if verdict.is_ok() {
                    "verified"
                } else {
                    "NOT verified"
                },
                if proof_ok { "verified" } else { "FAILED" }
            ),
            ok,
            decision_id: self.denied.clone(),
            details: json!({
                "verified": verdict.is_ok(),
                "verify_error": verdict.as_ref().err(),
                "size": size.get(),
                "leaf_index": index,
                "proof_tree_size": proved.size.get(),
                "proof_root": proved.root.to_base64(),
                "proof_verified": proof_ok,
                "record": record,
                "revoked_refusal_index": revoked_index,
            }),
        })
    }

    /// The newest decisions, as `ward audit tail` shows them (abridged).
    /// Illustration only: if the query fails, the scene's checks above
    /// and below still stand, so it is skipped.
    pub(super) async fn tail(&self, admin: &ward_client::Client) {
        let Ok(page) = admin.get::<Value>("/v1/audit/records?last=8").await else {
            return;
        };
        let rows: Vec<Vec<String>> = at(&page, "/records")
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let rec = at(r, "/record");
                let target = at(rec, "/rpc/target").as_str();
                vec![
                    at(r, "/index").to_string(),
                    at(rec, "/decision").as_str().unwrap_or("-").to_uppercase(),
                    agent_of(at(rec, "/principal").as_str()),
                    action_of(at(rec, "/action")),
                    match (target, resource_of(at(rec, "/resource"))) {
                        // The tool or skill says more than the resource
                        // when the resource is the agent (as `audit tail`).
                        (Some(t), resource) if !resource.contains(t) => {
                            format!("{resource} ({t})")
                        }
                        (_, resource) => resource,
                    },
                    first(at(rec, "/reasons")),
                ]
            })
            .collect();
        self.out
            .step("the newest decisions in the log (`ward audit tail`):");
        let table = crate::table::render(
            &[
                "INDEX", "DECISION", "CALLER", "ACTION", "RESOURCE", "REASON",
            ],
            &rows,
        );
        for line in table.lines() {
            self.out
                .line(&format!("      {}", self.out.paint(Style::Dim, line)));
        }
    }
}
