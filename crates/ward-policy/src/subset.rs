//! Memoised sub-policy-sets: for each distinct set of candidate policies, the
//! Cedar `PolicySet` holding just those and the context keys they read.
//!
//! Requests with the same principal, action and resource (and, more widely,
//! the same entities' shapes) hit the same few candidate sets, so building
//! each once keeps Cedar's per-set construction off the hot path. The memo is
//! a pure function of the policy set (keys are policy indexes), so entity
//! updates never invalidate it; it is dropped with the policy set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context_refs::ContextRefs;
use crate::policy_set::PolicySet;

/// The candidates for some requests, ready to hand to Cedar.
#[derive(Debug)]
pub struct Subset {
    /// Indexes into the policy set, ascending.
    pub(crate) policies: Box<[u32]>,
    /// Cedar's set of just those policies.
    pub(crate) cedar: cedar_policy::PolicySet,
    /// The context keys any of them can read.
    pub(crate) context: ContextRefs,
}

impl Subset {
    fn build(set: &PolicySet, policies: &[u32]) -> Self {
        let infos = policies
            .iter()
            .filter_map(|&i| set.infos().get(usize::try_from(i).ok()?));
        let cedar = cedar_policy::PolicySet::from_policies(infos.clone().map(|p| p.policy.clone()))
            // Unreachable: ids are unique in the full set, hence in any subset.
            // Falling back to the full set keeps the answer correct regardless.
            .unwrap_or_else(|_| set.cedar().clone());
        Self {
            policies: policies.into(),
            cedar,
            context: ContextRefs::union(infos.map(|p| &p.context)),
        }
    }

    /// True if no policy applies (the decision is the default deny).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// Bounded memo from candidate sets to [`Subset`]s.
#[derive(Debug)]
pub(crate) struct SubsetMemo {
    map: Mutex<HashMap<Box<[u32]>, Arc<Subset>, foldhash::fast::RandomState>>,
    capacity: usize,
}

impl SubsetMemo {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::default()),
            capacity,
        }
    }

    /// The subset for `policies` (ascending indexes into `set`).
    pub(crate) fn get(&self, set: &PolicySet, policies: &[u32]) -> Arc<Subset> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map holds immutable values and is still consistent.
        let lock = || {
            self.map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(subset) = lock().get(policies) {
            return Arc::clone(subset);
        }
        // Built outside the lock so one slow build does not stall others.
        let subset = Arc::new(Subset::build(set, policies));
        if self.capacity > 0 {
            let mut map = lock();
            if map.len() >= self.capacity {
                // Rare (distinct candidate sets are few); start over rather
                // than track recency.
                map.clear();
            }
            map.insert(policies.into(), Arc::clone(&subset));
        }
        subset
    }
}
