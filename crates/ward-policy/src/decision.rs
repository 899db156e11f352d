//! [`Decision`]: the engine's answer, with what an audit record and a deny
//! response need (determining policies, their reasons, errors, policy
//! version, time taken).

use std::sync::Arc;
use std::time::Duration;

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

/// The answer to one [`crate::Request`]. Cloning is cheap (shared lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub(crate) decision: Effect,
    /// For an allow, the permits that matched; for a deny by policy, the
    /// forbids that matched; empty for a default deny and for a deny forced
    /// by errors.
    pub(crate) policies: Arc<[Arc<str>]>,
    /// The `@reason` of each determining policy that has one, same order.
    pub(crate) reasons: Arc<[Arc<str>]>,
    pub(crate) errors: Arc<[DecisionError]>,
    pub(crate) policy_version: PolicyVersion,
    #[serde(rename = "eval_ns", serialize_with = "nanos")]
    pub(crate) eval_time: Duration,
    pub(crate) cached: bool,
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

    /// Names of the determining policies, in policy-set order.
    pub fn policies(&self) -> &[Arc<str>] {
        &self.policies
    }

    /// The `@reason` annotations of the determining policies.
    pub fn reasons(&self) -> &[Arc<str>] {
        &self.reasons
    }

    /// Evaluation errors. Any error means [`Effect::Deny`].
    pub fn errors(&self) -> &[DecisionError] {
        &self.errors
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
            && self.policies == other.policies
            && self.reasons == other.reasons
            && self.errors == other.errors
            && self.policy_version == other.policy_version
    }
}

fn nanos<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
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
            policies: vec![Arc::from("no-pii")].into(),
            reasons: vec![Arc::from("PII leaves the segment")].into(),
            errors: Vec::new().into(),
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
    }
}
