//! The records the store keeps, as typed values. Parsing from rows happens
//! in [`super`]; everything here is already valid.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ward_core::{AgentName, SpiffeId};

/// Lifecycle state of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Enrolls, renews and may be called and call.
    Active,
    /// Contained: reaches only what the quarantine policy allows; can be released.
    Quarantined,
    /// Credentials refused everywhere; cannot renew.
    Revoked,
    /// Permanently out of service; final.
    Retired,
}

impl AgentStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Quarantined => "quarantined",
            Self::Revoked => "revoked",
            Self::Retired => "retired",
        }
    }

    /// Whether an agent in this state may receive new certificates.
    pub fn may_renew(self) -> bool {
        matches!(self, Self::Active | Self::Quarantined)
    }

    /// Whether moving from `self` to `to` is allowed. Retired is final;
    /// revoked can only be retired (a new identity needs a new name).
    pub fn can_become(self, to: Self) -> bool {
        match (self, to) {
            (Self::Retired, _) => false,
            (Self::Revoked, Self::Retired) => true,
            (Self::Revoked, _) => false,
            (from, to) => from != to,
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "quarantined" => Ok(Self::Quarantined),
            "revoked" => Ok(Self::Revoked),
            "retired" => Ok(Self::Retired),
            other => Err(format!("unknown agent status {other:?}")),
        }
    }
}

/// What policy can know about an agent besides its name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentAttributes {
    /// Owning team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Risk tier, e.g. `low`, `medium`, `high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_tier: Option<String>,
    /// Highest data classification it may handle, e.g. `internal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clearance: Option<String>,
    /// Free-form labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Model metadata (provider, name, version...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub model: BTreeMap<String, String>,
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Its name, unique in the trust domain.
    pub name: AgentName,
    /// `spiffe://<td>/agent/<name>`.
    pub spiffe_id: SpiffeId,
    /// Attributes for policy.
    pub attributes: AgentAttributes,
    /// Lifecycle state.
    pub status: AgentStatus,
    /// Address of its proxy's inbound listener, once known.
    pub endpoint: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Revision of the last change to this agent.
    pub revision: u64,
}

/// Fields of an agent that an update may change; `None` leaves one alone.
#[derive(Debug, Clone, Default)]
pub struct AgentUpdate {
    /// New attributes (replaces all of them).
    pub attributes: Option<AgentAttributes>,
    /// New endpoint; `Some(None)` clears it.
    pub endpoint: Option<Option<String>>,
}

/// A freshly created join token. The secret exists only in this value and
/// in the hands of whoever it is given to; the store keeps its hash.
#[derive(Clone)]
pub struct JoinToken {
    /// The secret to hand to the agent's proxy.
    pub secret: String,
    /// The agent it enrolls.
    pub agent: AgentName,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("secret", &"<redacted>")
            .field("agent", &self.agent)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Serial, lowercase hex.
    pub serial: String,
    /// The identity in it.
    pub spiffe_id: SpiffeId,
    /// The agent it was issued to, if any.
    pub agent: Option<AgentName>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// The issuing authority (`ward ca status`), when recorded.
    #[serde(default)]
    pub authority: Option<String>,
}

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "subject", rename_all = "lowercase")]
pub enum RevocationTarget {
    /// Every certificate of an agent, now and later.
    Agent(AgentName),
    /// One certificate.
    Serial(String),
}

/// A stored revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What is revoked.
    pub target: RevocationTarget,
    /// Why (operator's words).
    pub reason: String,
    /// Unix seconds.
    pub revoked_at: i64,
    /// Revision that introduced it.
    pub revision: u64,
}

/// Kinds of change in the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// An agent was registered or changed; payload is the [`Agent`].
    Agent,
    /// A revocation was added; payload is the [`Revocation`].
    Revocation,
    /// A policy version became active; payload is the
    /// [`PolicyActivation`](super::PolicyActivation).
    Policy,
    /// The CA authorities changed (rotation); payload is the new trust
    /// bundle and the issuing authority.
    Bundle,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Revocation => "revocation",
            Self::Policy => "policy",
            Self::Bundle => "bundle",
        }
    }
}

impl FromStr for ChangeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(Self::Agent),
            "revocation" => Ok(Self::Revocation),
            "policy" => Ok(Self::Policy),
            "bundle" => Ok(Self::Bundle),
            other => Err(format!("unknown change kind {other:?}")),
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Its revision; strictly increasing in commit order.
    pub revision: u64,
    /// What changed.
    pub kind: ChangeKind,
    /// Key within the kind (agent name, revocation subject).
    pub subject: String,
    /// The new state, as JSON.
    pub payload: serde_json::Value,
    /// Unix seconds.
    pub at: i64,
}
