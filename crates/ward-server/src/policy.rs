//! The control plane's policy decision point: Ward's admin policy plus the
//! operator's bundle, over entities built from the registry.
//!
//! It decides every admin API call (the admin plane is zero-trust too) and
//! answers AuthZEN requests. Entities — agents with their team parents and
//! attributes, admins as `Human`s in `Team::"ward-admins"` — are rebuilt from
//! the store after every change; until a rebuild lands, decisions use the
//! previous snapshot, and an identity the snapshot does not know is in no
//! team, so admin rights are never granted early (fail closed).

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use ward_policy::schema::{ADMIN_POLICY, ADMIN_POLICY_NAME};
use ward_policy::{
    Decision, Engine, EntityStore, EntityUid, LoadError, PolicySet, Request, Schema,
};

use crate::store::{Agent, Store, StoreError};

/// The team whose members the default admin policy admits.
pub const ADMIN_TEAM: &str = "ward-admins";

/// Why the PDP could not be built or refreshed.
#[derive(Debug, thiserror::Error)]
pub enum PdpError {
    /// The policy bundle is invalid.
    #[error("policy bundle: {0}")]
    Load(#[from] LoadError),
    /// Registry data did not fit the schema.
    #[error("building policy entities from the registry: {0}")]
    Entities(String),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The server's PDP; cheap to share.
#[derive(Debug)]
pub struct Pdp {
    schema: Schema,
    policies: PolicySet,
    engine: ArcSwap<Engine>,
}

impl Pdp {
    /// Loads the admin policy plus the bundle in `dir` (`*.cedar` and an
    /// optional `schema.cedarschema`), with no entities yet.
    pub fn load(dir: Option<&Path>) -> Result<Self, PdpError> {
        let mut files = vec![(ADMIN_POLICY_NAME.to_owned(), ADMIN_POLICY.to_owned())];
        let mut schema_ext = None;
        if let Some(dir) = dir {
            let read = |path: &Path| {
                std::fs::read_to_string(path).map_err(|e| {
                    LoadError::new(vec![ward_policy::Problem::new(format!(
                        "{}: {e}",
                        path.display()
                    ))])
                })
            };
            let entries = std::fs::read_dir(dir).map_err(|e| {
                LoadError::new(vec![ward_policy::Problem::new(format!(
                    "{}: {e}",
                    dir.display()
                ))])
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == ward_policy::bundle::SCHEMA_FILE {
                    schema_ext = Some(read(&path)?);
                } else if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
                    files.push((name, read(&path)?));
                }
            }
        }
        files.sort();
        let schema = match &schema_ext {
            Some(text) => {
                Schema::with_fragments([(ward_policy::bundle::SCHEMA_FILE, text.as_str())])?
            }
            None => Schema::ward()?,
        };
        let policies =
            PolicySet::load(&schema, files.iter().map(|(n, t)| (n.as_str(), t.as_str())))?;
        let entities =
            EntityStore::new(&schema, []).map_err(|e| PdpError::Entities(e.to_string()))?;
        let engine = Engine::new(policies.clone(), schema.clone(), entities)
            .map_err(|e| PdpError::Entities(e.to_string()))?;
        Ok(Self {
            schema,
            policies,
            engine: ArcSwap::from_pointee(engine),
        })
    }

    /// The schema requests are checked against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Decides one request on the current snapshot.
    pub fn decide(&self, request: &Request) -> Decision {
        self.engine.load().decide(request)
    }

    /// Rebuilds the entities from the registry.
    pub async fn refresh(&self, store: &Store) -> Result<(), PdpError> {
        let agents = store.agents().await?;
        let admins = store.admins().await?;
        let json = entities_json(&agents, &admins);
        let entities = EntityStore::from_json_str(&self.schema, &json.to_string())
            .map_err(|e| PdpError::Entities(e.to_string()))?;
        let engine = Engine::new(self.policies.clone(), self.schema.clone(), entities)
            .map_err(|e| PdpError::Entities(e.to_string()))?;
        self.engine.store(Arc::new(engine));
        Ok(())
    }

    /// Keeps the entities current until `watch` signals shutdown.
    pub fn follow(self: &Arc<Self>, store: Store, watch: ward_core::drain::Watch) {
        let pdp = Arc::clone(self);
        let mut changes = store.subscribe();
        tokio::spawn(async move {
            let shutdown = watch.signaled();
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    received = changes.recv() => {
                        if let Err(tokio::sync::broadcast::error::RecvError::Closed) = received {
                            return;
                        }
                    }
                }
                // Coalesce a burst of changes into one rebuild.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                while changes.try_recv().is_ok() {}
                if let Err(e) = pdp.refresh(&store).await {
                    tracing::error!(error = %e, "policy entities not refreshed; deciding on the previous snapshot");
                }
            }
        });
    }
}

/// Registry risk tiers as the schema's 0..3. Unknown or missing tiers are
/// treated as the riskiest, so a typo cannot lower an agent's risk.
pub fn risk_tier(tier: Option<&str>) -> i64 {
    match tier.map(str::to_ascii_lowercase).as_deref() {
        Some("0" | "none") => 0,
        Some("1" | "low") => 1,
        Some("2" | "medium") => 2,
        _ => 3,
    }
}

fn entities_json(agents: &[Agent], admins: &[(ward_core::SpiffeId, String)]) -> Value {
    let mut out = Vec::new();
    let mut teams = std::collections::BTreeSet::new();
    teams.insert(ADMIN_TEAM.to_owned());
    for agent in agents {
        let a = &agent.attributes;
        let team = a.team.clone().unwrap_or_default();
        let mut attrs = json!({
            "team": team,
            "risk_tier": risk_tier(a.risk_tier.as_deref()),
            "labels": a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        });
        if let (Some(clearance), Some(obj)) = (&a.clearance, attrs.as_object_mut()) {
            obj.insert("clearance".into(), json!(clearance));
        }
        if let (Some(model), Some(obj)) = (a.model.get("name"), attrs.as_object_mut()) {
            obj.insert("model".into(), json!(model));
        }
        let parents = if team.is_empty() {
            vec![]
        } else {
            teams.insert(team.clone());
            vec![json!({"type": "Team", "id": team})]
        };
        out.push(json!({
            "uid": {"type": "Agent", "id": agent.name.as_str()},
            "attrs": attrs,
            "parents": parents,
        }));
    }
    for (_, name) in admins {
        out.push(json!({
            "uid": {"type": "Human", "id": name},
            "attrs": {},
            "parents": [{"type": "Team", "id": ADMIN_TEAM}],
        }));
    }
    for team in teams {
        out.push(json!({"uid": {"type": "Team", "id": team}, "attrs": {}, "parents": []}));
    }
    out.push(json!({"uid": {"type": "Server", "id": "ward"}, "attrs": {}, "parents": []}));
    Value::Array(out)
}

/// `Type::"id"` for a Ward entity.
pub fn entity(type_name: &str, id: &str) -> Result<EntityUid, PdpError> {
    ward_policy::json::uid(type_name, id).map_err(|e| PdpError::Entities(e.to_string()))
}

/// A random decision id (128 bits, hex) for responses and audit records.
pub fn decision_id() -> String {
    let mut raw = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut raw).is_err() {
        // The id is a correlation handle, not a secret; a clock-derived one
        // is better than failing the request.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        raw = nanos.to_be_bytes();
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
