//! The proxy's view of the control plane — registry, revocations, trust
//! bundle, signed policy bundle — built from the watch stream, persisted as
//! last-known-good, and compiled into what the request path reads.
//!
//! Applying an event never mutates the view in place: a new view is built
//! and swapped in whole ([`Compiled`] behind an `ArcSwap`), so a request
//! sees one consistent revision.
//!
//! A policy bundle is activated only if the server's Ed25519 signature over
//! its version verifies with the key the server sent over the authenticated
//! stream *and* the version equals the hash of the files received; anything
//! else is refused and the previous verified bundle stays in force (DESIGN.md
//! §5: proxies never activate an unverified bundle).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ward_client::WatchEvent;
use ward_policy::registry::{self, RegistryAttributes};
use ward_policy::{Engine, PolicySet, Schema};

/// The control-plane state a proxy enforces.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct View {
    /// The last revision applied.
    pub revision: u64,
    /// The trust domain.
    pub trust_domain: String,
    /// Registered agents by name.
    pub agents: BTreeMap<String, AgentEntry>,
    /// Agents all of whose certificates are revoked.
    pub revoked_agents: BTreeSet<String>,
    /// Revoked certificate serials (lowercase hex).
    pub revoked_serials: BTreeSet<String>,
    /// The trust bundle (SPIFFE bundle JSON).
    pub bundle: Value,
    /// The CA authority issuing now: an SVID another authority signed is
    /// renewed at once (CA rotation).
    #[serde(default)]
    pub issuing: Option<String>,
    /// The active, verified policy bundle.
    pub policy: Option<SignedPolicy>,
    /// The server's policy-signing key (base64 of the raw Ed25519 key).
    pub policy_signing_key: Option<String>,
}

/// What the proxy needs of a registered agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEntry {
    /// `active`, `quarantined`, `revoked` or `retired`.
    pub status: String,
    /// Its proxy's inbound address, once known.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Attributes for policy.
    #[serde(default)]
    pub attributes: RegistryAttributes,
}

impl AgentEntry {
    /// Whether the agent may call and be called at all.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// A policy bundle as the server signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPolicy {
    /// SHA-256 of the policy files (hex).
    pub version: String,
    /// Ed25519 over `ward-policy-v1\n<version>\n`, base64.
    pub signature: String,
    /// The files.
    pub files: Vec<PolicyFile>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    /// File name.
    pub name: String,
    /// Its text.
    pub text: String,
}

#[derive(Deserialize)]
struct WireAgent {
    name: String,
    status: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    attributes: RegistryAttributes,
}

#[derive(Deserialize)]
struct WireRevocation {
    target: WireTarget,
}

#[derive(Deserialize)]
struct WireTarget {
    kind: String,
    subject: String,
}

#[derive(Deserialize)]
struct WireSnapshot {
    trust_domain: String,
    agents: Vec<WireAgent>,
    revocations: Vec<WireRevocation>,
    bundle: Value,
    #[serde(default)]
    issuing: Option<String>,
    policy: Option<SignedPolicy>,
    policy_signing_key: String,
}

#[derive(Deserialize)]
struct WireBundle {
    bundle: Value,
    issuing: String,
}

impl View {
    /// The view after `event`. Malformed events are errors (the caller
    /// reconnects and resumes); a bundle that fails verification is logged
    /// and not activated.
    pub fn apply(&self, event: &WatchEvent) -> Result<Self, String> {
        match event {
            WatchEvent::Snapshot { revision, data } => {
                let snap: WireSnapshot = serde_json::from_value(data.clone())
                    .map_err(|e| format!("snapshot {revision}: {e}"))?;
                let mut next = Self {
                    revision: *revision,
                    trust_domain: snap.trust_domain,
                    bundle: snap.bundle,
                    issuing: snap.issuing,
                    policy_signing_key: Some(snap.policy_signing_key),
                    // Kept until the snapshot's bundle verifies.
                    policy: self.policy.clone(),
                    ..Self::default()
                };
                for a in snap.agents {
                    next.agents.insert(a.name.clone(), a.into_entry());
                }
                for r in snap.revocations {
                    next.revoke(&r.target);
                }
                match snap.policy {
                    Some(policy) => next.activate(policy),
                    None => next.policy = None,
                }
                Ok(next)
            }
            // A marker, not state (the watcher acts on it).
            WatchEvent::CaughtUp { .. } => Ok(self.clone()),
            WatchEvent::Change { revision, data } => {
                let kind = data.get("kind").and_then(Value::as_str).unwrap_or("");
                let payload = data.get("payload").cloned().unwrap_or(Value::Null);
                let bad = |e: serde_json::Error| format!("change {revision} ({kind}): {e}");
                let mut next = self.clone();
                next.revision = *revision;
                match kind {
                    "agent" => {
                        let a: WireAgent = serde_json::from_value(payload).map_err(bad)?;
                        next.agents.insert(a.name.clone(), a.into_entry());
                    }
                    "revocation" => {
                        let r: WireRevocation = serde_json::from_value(payload).map_err(bad)?;
                        next.revoke(&r.target);
                    }
                    "policy" => {
                        let p: SignedPolicy = serde_json::from_value(payload).map_err(bad)?;
                        next.activate(p);
                    }
                    "bundle" => {
                        // CA rotation: the bundle widens before issuance
                        // moves and narrows after; the watcher installs it.
                        let b: WireBundle = serde_json::from_value(payload).map_err(bad)?;
                        next.bundle = b.bundle;
                        next.issuing = Some(b.issuing);
                    }
                    other => {
                        // A kind this proxy does not know may carry something
                        // it must enforce; refuse to move past it.
                        return Err(format!(
                            "change {revision} has unknown kind {other:?}; upgrade the proxy"
                        ));
                    }
                }
                Ok(next)
            }
        }
    }

    fn revoke(&mut self, target: &WireTarget) {
        match target.kind.as_str() {
            "agent" => {
                self.revoked_agents.insert(target.subject.clone());
            }
            _ => {
                self.revoked_serials
                    .insert(target.subject.to_ascii_lowercase());
            }
        }
    }

    fn activate(&mut self, policy: SignedPolicy) {
        match verify_policy(&policy, self.policy_signing_key.as_deref()) {
            Ok(()) => self.policy = Some(policy),
            Err(e) => tracing::error!(
                version = %policy.version,
                error = %e,
                "policy bundle refused; the previous verified bundle stays in force"
            ),
        }
    }

    /// Whether a certificate of `agent` with `serial` is revoked.
    pub fn is_revoked(&self, agent: &str, serial: &str) -> bool {
        self.revoked_agents.contains(agent) || self.revoked_serials.contains(serial)
    }
}

impl WireAgent {
    fn into_entry(self) -> AgentEntry {
        AgentEntry {
            status: self.status,
            endpoint: self.endpoint,
            attributes: self.attributes,
        }
    }
}

/// The message the server signs for a policy version.
fn signed_message(version: &str) -> Vec<u8> {
    format!("ward-policy-v1\n{version}\n").into_bytes()
}

/// Checks the signature and that the files hash to the signed version.
pub fn verify_policy(policy: &SignedPolicy, key_b64: Option<&str>) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(key_b64.ok_or("no policy-signing key from the server")?)
        .map_err(|_| "policy-signing key is not base64".to_owned())?;
    let signature = b64
        .decode(&policy.signature)
        .map_err(|_| "signature is not base64".to_owned())?;
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &key)
        .verify(&signed_message(&policy.version), &signature)
        .map_err(|_| "signature does not verify with the server's policy-signing key".to_owned())?;
    // The version hashes the bundle's own files, without Ward's built-ins.
    let (_, policies) =
        load_with(policy, None).map_err(|e| format!("bundle does not load: {e}"))?;
    let actual = policies.version().to_string();
    if actual != policy.version {
        return Err(format!(
            "files hash to {actual}, not the signed version {}",
            policy.version
        ));
    }
    Ok(())
}

/// Schema and policies a proxy enforces: the bundle plus Ward's built-in
/// quarantine policy, which rides with every bundle so quarantine holds
/// whatever the operator's policies say.
pub fn load(policy: &SignedPolicy) -> Result<(Schema, PolicySet), ward_policy::LoadError> {
    load_with(
        policy,
        Some((
            ward_policy::schema::QUARANTINE_POLICY_NAME,
            ward_policy::schema::QUARANTINE_POLICY,
        )),
    )
}

fn load_with(
    policy: &SignedPolicy,
    builtin: Option<(&str, &str)>,
) -> Result<(Schema, PolicySet), ward_policy::LoadError> {
    let schema = match policy
        .files
        .iter()
        .find(|f| f.name == ward_policy::bundle::SCHEMA_FILE)
    {
        Some(f) => Schema::with_fragments([(f.name.as_str(), f.text.as_str())])?,
        None => Schema::ward()?,
    };
    let policies = PolicySet::load(
        &schema,
        builtin.into_iter().chain(
            policy
                .files
                .iter()
                .filter(|f| f.name.ends_with(".cedar") && !f.name.contains('/'))
                .map(|f| (f.name.as_str(), f.text.as_str())),
        ),
    )?;
    Ok((schema, policies))
}

/// What policy entities are built from: each agent's attributes and
/// whether it is quarantined (its status otherwise only matters to the
/// peer checks, which read the view).
fn entity_inputs(view: &View) -> impl Iterator<Item = (&str, &RegistryAttributes, bool)> {
    view.agents
        .iter()
        .map(|(n, a)| (n.as_str(), &a.attributes, a.status == "quarantined"))
}

fn engine_for(view: &View, schema: Schema, policies: PolicySet) -> Result<Arc<Engine>, String> {
    let entities = registry::entities_with(
        &schema,
        view.agents.iter().map(|(n, a)| (n.as_str(), &a.attributes)),
        std::iter::empty(),
        |name| {
            view.agents
                .get(name)
                .is_some_and(|a| a.status == "quarantined")
        },
    )
    .map_err(|e| e.to_string())?;
    Engine::new(policies, schema, entities)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn log_failure(built: Result<Arc<Engine>, String>) -> Option<Arc<Engine>> {
    built
        .inspect_err(|e| {
            tracing::error!(error = %e, "policy bundle cannot be compiled; denying every request");
        })
        .ok()
}

/// What the request path reads: a view and the engine compiled from it.
#[derive(Debug)]
pub struct Compiled {
    /// The view.
    pub view: View,
    /// The engine (with its schema); `None` until a verified bundle is
    /// active — every request is then denied. Shared between views whose
    /// policy and entities are the same.
    pub engine: Option<Arc<Engine>>,
}

impl Compiled {
    /// Compiles `view`. A bundle that verified but cannot be compiled with
    /// the registry (entity data the schema refuses) leaves no engine: deny.
    pub fn new(view: View) -> Self {
        let engine = view.policy.as_ref().and_then(|p| {
            let built = load(p)
                .map_err(|e| e.to_string())
                .and_then(|(schema, policies)| engine_for(&view, schema, policies));
            log_failure(built)
        });
        Self { view, engine }
    }

    /// Compiles `view`, the successor of `self`, reusing what did not
    /// change: a revocation (the commonest change, and the one that must
    /// bite fastest) touches neither the policy nor the entities, so the
    /// engine — and its decision cache — carries over untouched; a registry
    /// change rebuilds the entities on the already-parsed policies; only a
    /// new policy version is parsed and validated again.
    pub fn after(&self, view: View) -> Self {
        let (Some(previous), true) = (
            self.engine.as_ref(),
            view.policy.as_ref().map(|p| &p.version)
                == self.view.policy.as_ref().map(|p| &p.version),
        ) else {
            return Self::new(view);
        };
        if entity_inputs(&view).eq(entity_inputs(&self.view)) {
            return Self {
                view,
                engine: Some(Arc::clone(previous)),
            };
        }
        let engine = log_failure(engine_for(
            &view,
            previous.schema().clone(),
            previous.policies().clone(),
        ));
        Self { view, engine }
    }

    /// The active policy version, if any.
    pub fn policy_version(&self) -> Option<&str> {
        self.view.policy.as_ref().map(|p| p.version.as_str())
    }
}

#[cfg(test)]
mod tests;
