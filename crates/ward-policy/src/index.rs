//! The scope index: from a request to exactly the policies whose scope
//! (`principal`, `action`, `resource` constraints) it satisfies.
//!
//! Cedar evaluates a policy as `scope && conditions`, left to right, so a
//! policy whose scope is false is neither satisfied nor erroring: leaving it
//! out cannot change the decision or its diagnostics. That is what makes
//! evaluating only the candidates sound.
//!
//! Each policy is filed once, under its most selective constraint (`==` over
//! `is … in` over `in` over `is`, principal before resource before action).
//! A lookup gathers the posting lists for the request's entities and their
//! ancestors (from the [`EntityStore`]'s transitive closure), then checks all
//! three constraints of each gathered policy exactly. Policies with no
//! constraint at all are in an always-evaluate bucket.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, EntityTypeName, EntityUid, PrincipalConstraint, ResourceConstraint,
};

use crate::entities::EntityStore;
use crate::policy_set::PolicySet;
use crate::request::Request;

/// A principal or resource scope constraint.
#[derive(Debug, Clone)]
enum EntityScope {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    Is(EntityTypeName),
    IsIn(EntityTypeName, EntityUid),
}

/// A request entity with its transitive ancestors, looked up once per
/// request: comparing against this short list is much cheaper than a hash
/// lookup in the store per candidate policy.
struct Resolved<'a> {
    uid: &'a EntityUid,
    ancestors: Vec<&'a EntityUid>,
}

impl<'a> Resolved<'a> {
    fn new(uid: &'a EntityUid, store: &'a EntityStore) -> Self {
        Self {
            uid,
            ancestors: store.ancestors(uid).collect(),
        }
    }

    /// Cedar's `uid in e`: the store's ancestor sets are already transitive.
    fn is_in(&self, e: &EntityUid) -> bool {
        self.uid == e || self.ancestors.contains(&e)
    }
}

impl EntityScope {
    fn matches(&self, r: &Resolved<'_>) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(e) => r.uid == e,
            Self::In(e) => r.is_in(e),
            Self::Is(t) => r.uid.type_name() == t,
            Self::IsIn(t, e) => r.uid.type_name() == t && r.is_in(e),
        }
    }

    /// Lower is more selective; `None` for no constraint.
    fn selectivity(&self) -> Option<u8> {
        match self {
            Self::Any => None,
            Self::Eq(_) => Some(0),
            Self::IsIn(..) => Some(1),
            Self::In(_) => Some(2),
            Self::Is(_) => Some(4),
        }
    }
}

impl From<PrincipalConstraint> for EntityScope {
    fn from(c: PrincipalConstraint) -> Self {
        match c {
            PrincipalConstraint::Any => Self::Any,
            PrincipalConstraint::Eq(e) => Self::Eq(e),
            PrincipalConstraint::In(e) => Self::In(e),
            PrincipalConstraint::Is(t) => Self::Is(t),
            PrincipalConstraint::IsIn(t, e) => Self::IsIn(t, e),
        }
    }
}

impl From<ResourceConstraint> for EntityScope {
    fn from(c: ResourceConstraint) -> Self {
        match c {
            ResourceConstraint::Any => Self::Any,
            ResourceConstraint::Eq(e) => Self::Eq(e),
            ResourceConstraint::In(e) => Self::In(e),
            ResourceConstraint::Is(t) => Self::Is(t),
            ResourceConstraint::IsIn(t, e) => Self::IsIn(t, e),
        }
    }
}

/// An action scope constraint.
#[derive(Debug, Clone)]
enum ActionScope {
    Any,
    Eq(EntityUid),
    In(Vec<EntityUid>),
}

impl ActionScope {
    fn matches(&self, r: &Resolved<'_>) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(e) => r.uid == e,
            Self::In(es) => es.iter().any(|e| r.is_in(e)),
        }
    }
}

#[derive(Debug, Clone)]
struct Scope {
    principal: EntityScope,
    action: ActionScope,
    resource: EntityScope,
}

impl Scope {
    fn matches(
        &self,
        principal: &Resolved<'_>,
        action: &Resolved<'_>,
        resource: &Resolved<'_>,
    ) -> bool {
        self.principal.matches(principal)
            && self.action.matches(action)
            && self.resource.matches(resource)
    }
}

/// Posting lists for one entity dimension (principal or resource).
#[derive(Debug, Default)]
struct EntityPostings {
    eq: HashMap<EntityUid, Vec<u32>>,
    // `in e` and `is T in e` are both found through `e`; the exact check
    // afterwards tests the type.
    in_: HashMap<EntityUid, Vec<u32>>,
    is: HashMap<EntityTypeName, Vec<u32>>,
}

impl EntityPostings {
    fn file(&mut self, scope: &EntityScope, policy: u32) {
        match scope {
            EntityScope::Any => {}
            EntityScope::Eq(e) => self.eq.entry(e.clone()).or_default().push(policy),
            EntityScope::In(e) | EntityScope::IsIn(_, e) => {
                self.in_.entry(e.clone()).or_default().push(policy);
            }
            EntityScope::Is(t) => self.is.entry(t.clone()).or_default().push(policy),
        }
    }

    fn gather(&self, r: &Resolved<'_>, out: &mut Vec<u32>) {
        let lists = [
            self.eq.get(r.uid),
            self.in_.get(r.uid),
            self.is.get(r.uid.type_name()),
        ];
        for list in lists.into_iter().flatten() {
            out.extend_from_slice(list);
        }
        if self.in_.is_empty() {
            return;
        }
        for &ancestor in &r.ancestors {
            if let Some(list) = self.in_.get(ancestor) {
                out.extend_from_slice(list);
            }
        }
    }
}

/// Policies filed by their most selective scope constraint.
#[derive(Debug, Default)]
pub struct Index {
    scopes: Vec<Scope>,
    principal: EntityPostings,
    resource: EntityPostings,
    action: HashMap<EntityUid, Vec<u32>>,
    always: Vec<u32>,
}

impl Index {
    /// Files every policy of `policies`.
    pub fn new(policies: &PolicySet) -> Self {
        let mut index = Self::default();
        for (i, info) in policies.infos().iter().enumerate() {
            // PolicySet guarantees fewer than 2^32 policies.
            let Ok(i) = u32::try_from(i) else { break };
            let scope = Scope {
                principal: info.policy.principal_constraint().into(),
                action: match info.policy.action_constraint() {
                    ActionConstraint::Any => ActionScope::Any,
                    ActionConstraint::Eq(e) => ActionScope::Eq(e),
                    ActionConstraint::In(es) => ActionScope::In(es),
                },
                resource: info.policy.resource_constraint().into(),
            };
            let p = scope.principal.selectivity();
            let r = scope.resource.selectivity();
            let a = match &scope.action {
                ActionScope::Any => None,
                ActionScope::Eq(_) => Some(3),
                ActionScope::In(_) => Some(5),
            };
            let best = [p, r, a].into_iter().flatten().min();
            match best {
                None => index.always.push(i),
                Some(best) if p == Some(best) => index.principal.file(&scope.principal, i),
                Some(best) if r == Some(best) => index.resource.file(&scope.resource, i),
                Some(_) => match &scope.action {
                    ActionScope::Eq(e) => index.action.entry(e.clone()).or_default().push(i),
                    ActionScope::In(es) => {
                        for e in es {
                            index.action.entry(e.clone()).or_default().push(i);
                        }
                    }
                    // Unreachable: `a` is `None` for `Any`; file it safely anyway.
                    ActionScope::Any => index.always.push(i),
                },
            }
            index.scopes.push(scope);
        }
        index
    }

    /// The policies whose scope `req` satisfies, ascending and without
    /// duplicates, written into `out` (cleared first).
    pub fn candidates(&self, req: &Request, store: &EntityStore, out: &mut Vec<u32>) {
        out.clear();
        let principal = Resolved::new(&req.principal, store);
        let action = Resolved::new(&req.action, store);
        let resource = Resolved::new(&req.resource, store);
        self.principal.gather(&principal, out);
        self.resource.gather(&resource, out);
        for a in std::iter::once(action.uid).chain(action.ancestors.iter().copied()) {
            if let Some(list) = self.action.get(a) {
                out.extend_from_slice(list);
            }
        }
        out.extend_from_slice(&self.always);
        out.sort_unstable();
        out.dedup();
        out.retain(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| self.scopes.get(i))
                .is_some_and(|scope| scope.matches(&principal, &action, &resource))
        });
    }

    /// Number of policies filed.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// True if no policy is filed.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }
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

    use std::str::FromStr;

    use super::*;
    use crate::request::Context;
    use crate::schema::Schema;

    const POLICIES: &str = r#"
        permit(principal == Agent::"a", action == Action::"GET", resource == Agent::"b");
        permit(principal in Team::"ops", action in Action::"http", resource);
        permit(principal is Agent, action in [Action::"mcp", Action::"a2a"], resource is Tool in Agent::"b");
        forbid(principal, action, resource);
        permit(principal, action == Action::"POST", resource);
        permit(principal is Human in Team::"ops", action, resource);
        permit(principal, action, resource in Agent::"b");
    "#;

    const ENTITIES: &str = r#"[
        {"uid": {"type": "Team", "id": "ops"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Agent", "id": "a"}, "attrs": {"team": "ops", "risk_tier": 1, "labels": []},
         "parents": [{"type": "Team", "id": "ops"}]},
        {"uid": {"type": "Agent", "id": "b"}, "attrs": {"team": "x", "risk_tier": 1, "labels": []}, "parents": []},
        {"uid": {"type": "Tool", "id": "b/t"}, "attrs": {"owner": {"type": "Agent", "id": "b"}},
         "parents": [{"type": "Agent", "id": "b"}]}
    ]"#;

    fn uid(s: &str) -> EntityUid {
        EntityUid::from_str(s).unwrap()
    }

    fn candidates(p: &str, a: &str, r: &str) -> Vec<u32> {
        let schema = Schema::ward().unwrap();
        let set = PolicySet::load(&schema, [("p.cedar", POLICIES)]).unwrap();
        let store = EntityStore::from_json_str(&schema, ENTITIES).unwrap();
        let index = Index::new(&set);
        let req = Request::new(
            uid(p),
            uid(&format!("Action::\"{a}\"")),
            uid(r),
            Context::new(),
        );
        let mut out = Vec::new();
        index.candidates(&req, &store, &mut out);
        out
    }

    #[test]
    fn finds_exactly_the_matching_scopes() {
        assert_eq!(
            candidates(r#"Agent::"a""#, "GET", r#"Agent::"b""#),
            [0, 1, 3, 6]
        );
        assert_eq!(
            candidates(r#"Agent::"a""#, "POST", r#"Agent::"c""#),
            [1, 3, 4]
        );
        assert_eq!(
            candidates(r#"Agent::"z""#, "tools/call", r#"Tool::"b/t""#),
            [2, 3, 6]
        );
        assert_eq!(
            candidates(r#"Agent::"z""#, "tools/call", r#"Tool::"c/t""#),
            [3]
        );
        // `is Human in Team` does not match an Agent in that team.
        assert_eq!(
            candidates(r#"Agent::"a""#, "agent/list", r#"Server::"s""#),
            [3]
        );
    }
}
