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
use ward_policy::registry::{self, RegistryAttributes};
use ward_policy::schema::{ADMIN_POLICY, ADMIN_POLICY_NAME};
use ward_policy::{Decision, Engine, EntityUid, LoadError, PolicySet, Request, Schema};

use crate::store::{Agent, Store, StoreError};

/// Longest delay between a registry change and the PDP seeing it (plus the
/// rebuild itself); bounds rebuild work during bulk changes.
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

pub use ward_policy::registry::{ADMIN_TEAM, risk_tier};

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

/// One consistent policy generation: schema, policies and the engine built
/// from them and the registry.
#[derive(Debug)]
struct Generation {
    schema: Schema,
    policies: PolicySet,
    /// The stored version this came from (`None`: the bootstrap bundle).
    version: Option<String>,
    engine: Engine,
}

/// The server's PDP; cheap to share.
#[derive(Debug)]
pub struct Pdp {
    current: ArcSwap<Generation>,
}

/// A bundle's files split by role: the policy files, an optional schema
/// extension, and test files.
#[derive(Debug, Default, Clone)]
pub struct BundleFiles {
    /// `*.cedar` (name, text), sorted by name.
    pub policies: Vec<(String, String)>,
    /// `schema.cedarschema`, if present.
    pub schema: Option<String>,
    /// `tests/*.yaml` (name, text).
    pub tests: Vec<(String, String)>,
}

impl BundleFiles {
    /// Reads a bundle directory (`*.cedar`, `schema.cedarschema`,
    /// `tests/*.yaml`).
    pub fn read_dir(dir: &Path) -> Result<Self, LoadError> {
        let problem = |path: &Path, e: std::io::Error| {
            LoadError::new(vec![ward_policy::Problem::new(format!(
                "{}: {e}",
                path.display()
            ))])
        };
        let mut files = Vec::new();
        for (sub, prefix) in [(dir.to_path_buf(), ""), (dir.join("tests"), "tests/")] {
            let entries = match std::fs::read_dir(&sub) {
                Ok(entries) => entries,
                Err(_) if !prefix.is_empty() => continue,
                Err(e) => return Err(problem(&sub, e)),
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_file() {
                    let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                    let text = std::fs::read_to_string(&path).map_err(|e| problem(&path, e))?;
                    files.push((name, text));
                }
            }
        }
        Ok(Self::from_files(files))
    }

    /// Sorts named files into roles; other files are ignored.
    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut out = Self::default();
        for (name, text) in files {
            if name == ward_policy::bundle::SCHEMA_FILE {
                out.schema = Some(text);
            } else if name.starts_with("tests/")
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
            {
                out.tests.push((name, text));
            } else if name.ends_with(".cedar") && !name.contains('/') {
                out.policies.push((name, text));
            }
        }
        out.policies.sort();
        out.tests.sort();
        out
    }

    /// Every file with its name (`schema.cedarschema`, `*.cedar`,
    /// `tests/*.yaml`), as a push sends them.
    pub fn into_files(self) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = self
            .schema
            .map(|text| (ward_policy::bundle::SCHEMA_FILE.to_owned(), text))
            .into_iter()
            .collect();
        files.extend(self.policies);
        files.extend(self.tests);
        files
    }

    /// Loads the bundle as the operator wrote it (no admin policy).
    pub fn load(&self) -> Result<ward_policy::bundle::Bundle, LoadError> {
        let schema = self.schema_with_extension()?;
        let policies = PolicySet::load(
            &schema,
            self.policies.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        )?;
        Ok(ward_policy::bundle::Bundle { schema, policies })
    }

    fn schema_with_extension(&self) -> Result<Schema, LoadError> {
        match &self.schema {
            Some(text) => {
                Schema::with_fragments([(ward_policy::bundle::SCHEMA_FILE, text.as_str())])
            }
            None => Schema::ward(),
        }
    }

    /// Schema and policies the server enforces: the bundle plus Ward's
    /// admin policy.
    fn load_with_admin(&self) -> Result<(Schema, PolicySet), LoadError> {
        let schema = self.schema_with_extension()?;
        let mut files: Vec<(&str, &str)> = vec![(ADMIN_POLICY_NAME, ADMIN_POLICY)];
        files.extend(self.policies.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        let policies = PolicySet::load(&schema, files)?;
        Ok((schema, policies))
    }
}

impl Pdp {
    /// Loads the admin policy plus the bundle in `dir` (`*.cedar` and an
    /// optional `schema.cedarschema`), with no entities yet. A version
    /// pushed to the store replaces it at the first [`Pdp::refresh`].
    pub fn load(dir: Option<&Path>) -> Result<Self, PdpError> {
        let files = match dir {
            Some(dir) => BundleFiles::read_dir(dir)?,
            None => BundleFiles::default(),
        };
        let generation = build(&files, None, &[], &[])?;
        Ok(Self {
            current: ArcSwap::from_pointee(generation),
        })
    }

    /// The schema requests are checked against.
    pub fn schema(&self) -> Schema {
        self.current.load().schema.clone()
    }

    /// The stored policy version in force (`None`: the bootstrap bundle).
    pub fn version(&self) -> Option<String> {
        self.current.load().version.clone()
    }

    /// Decides one request on the current snapshot.
    pub fn decide(&self, request: &Request) -> Decision {
        self.current.load().engine.decide(request)
    }

    /// Rebuilds from the store: the active pushed version (when it changed)
    /// and the entities from the registry.
    pub async fn refresh(&self, store: &Store) -> Result<(), PdpError> {
        let agents = store.agents().await?;
        let admins = store.admins().await?;
        let current = self.current.load_full();
        let active = store.active_policy().await?;
        let generation = match active {
            Some(stored) if current.version.as_deref() != Some(stored.version.as_str()) => {
                let files = BundleFiles::from_files(
                    stored
                        .files
                        .iter()
                        .map(|f| (f.name.clone(), f.text.clone())),
                );
                build(&files, Some(stored.version.clone()), &agents, &admins)?
            }
            _ => Generation {
                engine: engine(&current.schema, &current.policies, &agents, &admins)?,
                schema: current.schema.clone(),
                policies: current.policies.clone(),
                version: current.version.clone(),
            },
        };
        self.current.store(Arc::new(generation));
        Ok(())
    }

    /// Keeps the entities current until `watch` signals shutdown.
    pub fn follow(self: &Arc<Self>, store: Store, watch: ward_core::drain::Watch) {
        let pdp = Arc::clone(self);
        // A rebuild reads the whole registry: at most one per
        // REFRESH_INTERVAL, always covering the latest change.
        store.clone().on_changes(watch, REFRESH_INTERVAL, move || {
            let (pdp, store) = (Arc::clone(&pdp), store.clone());
            async move {
                if let Err(e) = pdp.refresh(&store).await {
                    tracing::error!(error = %e, "policy entities not refreshed; deciding on the previous snapshot");
                }
            }
        });
    }
}

fn build(
    files: &BundleFiles,
    version: Option<String>,
    agents: &[Agent],
    admins: &[(ward_core::SpiffeId, String)],
) -> Result<Generation, PdpError> {
    let (schema, policies) = files.load_with_admin()?;
    Ok(Generation {
        engine: engine(&schema, &policies, agents, admins)?,
        schema,
        policies,
        version,
    })
}

fn engine(
    schema: &Schema,
    policies: &PolicySet,
    agents: &[Agent],
    admins: &[(ward_core::SpiffeId, String)],
) -> Result<Engine, PdpError> {
    let attrs: Vec<(&str, RegistryAttributes)> = agents
        .iter()
        .map(|agent| {
            let a = &agent.attributes;
            (
                agent.name.as_str(),
                RegistryAttributes {
                    team: a.team.clone(),
                    risk_tier: a.risk_tier.clone(),
                    clearance: a.clearance.clone(),
                    labels: a.labels.clone(),
                    model: a.model.clone(),
                },
            )
        })
        .collect();
    let entities = registry::entities(
        schema,
        attrs.iter().map(|(name, a)| (*name, a)),
        admins.iter().map(|(_, name)| name.as_str()),
    )
    .map_err(|e| PdpError::Entities(e.to_string()))?;
    Engine::new(policies.clone(), schema.clone(), entities)
        .map_err(|e| PdpError::Entities(e.to_string()))
}

/// `Type::"id"` for a Ward entity.
pub fn entity(type_name: &str, id: &str) -> Result<EntityUid, PdpError> {
    ward_policy::json::uid(type_name, id).map_err(|e| PdpError::Entities(e.to_string()))
}

/// A new decision id for responses and audit records: time-ordered, so the
/// audit index can find its record (see [`ward_audit::decision_id`]).
pub fn decision_id() -> String {
    let mut random = [0u8; 10];
    if aws_lc_rs::rand::fill(&mut random).is_err() {
        // The id is a correlation handle, not a secret; clock-derived bits
        // are better than failing the request.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for (r, n) in random.iter_mut().zip(nanos.to_le_bytes()) {
            *r = n;
        }
    }
    ward_audit::decision_id::now(random)
}
