//! [`Decision`]: the engine's answer, with what an audit record and a deny
//! response need (determining policies, their reasons, errors, policy
//! version, time taken).

use std::sync::Arc;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::version::PolicyVersion;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The call may proceed.
    Allow,
    /// The call is refused.
    Deny,
}

/// A policy that failed to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionError {
    /// The policy's name (`@id` or `<file>#<n>`), or `"request"` when the
    /// request itself could not be built.
    pub policy: Arc<str>,
    /// What went wrong.
    pub message: String,
}

/// The answer to one [`crate::Request`]. Cloning is cheap: the lists are
/// behind one shared pointer (one reference count to touch, which matters on
/// the cache-hit path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub(crate) decision: Effect,
    pub(crate) lists: Arc<Lists>,
    pub(crate) policy_version: PolicyVersion,
    pub(crate) eval_time: Duration,
    pub(crate) cached: bool,
}

/// What a decision reports besides its effect.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Lists {
    /// For an allow, the permits that matched; for a deny by policy, the
    /// forbids that matched; empty for a default deny and for a deny forced
    /// by errors.
    pub(crate) policies: Box<[Arc<str>]>,
    /// The `@reason` of each determining policy that has one, same order.
    pub(crate) reasons: Box<[Arc<str>]>,
    pub(crate) errors: Box<[DecisionError]>,
}

impl Decision {
    /// True for [`Effect::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.decision == Effect::Allow
    }

    /// Allow or deny.
    pub fn effect(&self) -> Effect {
        self.decision
    }

    /// Names of the determining policies, in policy-set order: for an allow,
    /// the permits that matched; for a deny by policy, the forbids that
    /// matched; empty for a default deny and for a deny forced by errors.
    pub fn policies(&self) -> &[Arc<str>] {
        &self.lists.policies
    }

    /// The `@reason` annotations of the determining policies.
    pub fn reasons(&self) -> &[Arc<str>] {
        &self.lists.reasons
    }

    /// Evaluation errors. Any error means [`Effect::Deny`].
    pub fn errors(&self) -> &[DecisionError] {
        &self.lists.errors
    }

    /// The policy set that decided.
    pub fn policy_version(&self) -> PolicyVersion {
        self.policy_version
    }

    /// How long this call to `decide` took.
    pub fn eval_time(&self) -> Duration {
        self.eval_time
    }

    /// True if the answer came from the decision cache.
    pub fn cached(&self) -> bool {
        self.cached
    }

    /// Same decision, policies, reasons, errors and version: what the cache
    /// must preserve (time and the cached flag may differ).
    pub fn same_outcome(&self, other: &Self) -> bool {
        self.decision == other.decision
            && self.lists == other.lists
            && self.policy_version == other.policy_version
    }
}

/// The audit and response form: `decision`, `policies`, `reasons`,
/// `errors`, `policy_version`, `eval_ns`, `cached`.
impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Decision", 7)?;
        st.serialize_field("decision", &self.decision)?;
        st.serialize_field("policies", self.policies())?;
        st.serialize_field("reasons", self.reasons())?;
        st.serialize_field("errors", self.errors())?;
        st.serialize_field("policy_version", &self.policy_version)?;
        st.serialize_field("eval_ns", &nanos(self.eval_time))?;
        st.serialize_field("cached", &self.cached)?;
        st.end()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use super::*;

    #[test]
    fn serializes_for_audit_and_responses() {
        let d = Decision {
            decision: Effect::Deny,
            lists: Arc::new(Lists {
                policies: vec![Arc::from("no-pii")].into(),
                reasons: vec![Arc::from("PII leaves the segment")].into(),
                errors: Box::default(),
            }),
            policy_version: PolicyVersion::of_sources([("a", "b")]),
            eval_time: Duration::from_nanos(1500),
            cached: false,
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["decision"], "deny");
        assert_eq!(json["policies"][0], "no-pii");
        assert_eq!(json["reasons"][0], "PII leaves the segment");
        assert_eq!(json["eval_ns"], 1500);
        assert_eq!(json["policy_version"], d.policy_version().to_string());
        assert_eq!(json["cached"], false);
        assert_eq!(json["errors"], serde_json::json!([]));
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
    }
}
