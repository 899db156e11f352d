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
//!
//! Every uid and type a scope names is numbered when the index is built; a
//! lookup resolves the request's three entities and their ancestors to
//! those numbers once, so the exact checks compare integers, not uids.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, EntityTypeName, EntityUid, PrincipalConstraint, ResourceConstraint,
};

use crate::entities::EntityStore;
use crate::policy_set::PolicySet;
use crate::request::Request;

/// Fast, randomly seeded hashing for the index's maps: keys are entity uids
/// from policies and requests, never worth SipHash's cost on this path.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A uid or type named in some policy's scope, numbered once at build time
/// so that a lookup compares integers instead of uids (each uid comparison
/// is a type-name and an id string comparison).
type Sym = u32;

/// Every uid and entity type some scope names, each with its [`Sym`].
#[derive(Debug, Default)]
struct Symbols {
    uids: Map<EntityUid, Sym>,
    types: Map<EntityTypeName, Sym>,
}

impl Symbols {
    fn uid(&mut self, uid: EntityUid) -> Sym {
        let next = self.next();
        *self.uids.entry(uid).or_insert(next)
    }

    fn ty(&mut self, ty: EntityTypeName) -> Sym {
        let next = self.next();
        *self.types.entry(ty).or_insert(next)
    }

    /// Uids and types share one numbering; they are never compared with
    /// each other anyway.
    fn next(&self) -> Sym {
        // Scopes name at most three uids per policy and PolicySet holds
        // fewer than 2^32 policies; saturating keeps this total regardless.
        u32::try_from(self.uids.len() + self.types.len()).unwrap_or(u32::MAX)
    }
}

/// A principal or resource scope constraint.
#[derive(Debug, Clone)]
enum EntityScope {
    Any,
    Eq(Sym),
    In(Sym),
    Is(Sym),
    IsIn(Sym, Sym),
}

/// A request entity resolved against the index's symbols, once per
/// request. A uid or type no scope names gets no symbol: it can equal no
/// scope's uid, so leaving it out loses no match.
struct Resolved {
    sym: Option<Sym>,
    ty: Option<Sym>,
    /// The symbols of its transitive ancestors (from the store's closure)
    /// that some scope names.
    ancestors: Vec<Sym>,
}

impl Resolved {
    fn new(uid: &EntityUid, store: &EntityStore, symbols: &Symbols) -> Self {
        Self {
            sym: symbols.uids.get(uid).copied(),
            ty: symbols.types.get(uid.type_name()).copied(),
            ancestors: store
                .ancestors(uid)
                .filter_map(|a| symbols.uids.get(a).copied())
                .collect(),
        }
    }

    /// Cedar's `uid in e`: the store's ancestor sets are already transitive.
    fn is_in(&self, e: Sym) -> bool {
        self.sym == Some(e) || self.ancestors.contains(&e)
    }

    fn is(&self, t: Sym) -> bool {
        self.ty == Some(t)
    }

    /// Itself (if any scope names it) and its named ancestors.
    fn with_ancestors(&self) -> impl Iterator<Item = Sym> {
        self.sym.into_iter().chain(self.ancestors.iter().copied())
    }
}

impl EntityScope {
    fn new(c: Constraint, symbols: &mut Symbols) -> Self {
        match c {
            Constraint::Any => Self::Any,
            Constraint::Eq(e) => Self::Eq(symbols.uid(e)),
            Constraint::In(e) => Self::In(symbols.uid(e)),
            Constraint::Is(t) => Self::Is(symbols.ty(t)),
            Constraint::IsIn(t, e) => Self::IsIn(symbols.ty(t), symbols.uid(e)),
        }
    }

    fn matches(&self, r: &Resolved) -> bool {
        match *self {
            Self::Any => true,
            Self::Eq(e) => r.sym == Some(e),
            Self::In(e) => r.is_in(e),
            Self::Is(t) => r.is(t),
            Self::IsIn(t, e) => r.is(t) && r.is_in(e),
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

/// Cedar's principal and resource constraints, which have the same shape.
enum Constraint {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    Is(EntityTypeName),
    IsIn(EntityTypeName, EntityUid),
}

impl From<PrincipalConstraint> for Constraint {
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

impl From<ResourceConstraint> for Constraint {
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
    Eq(Sym),
    In(Vec<Sym>),
}

impl ActionScope {
    fn matches(&self, r: &Resolved) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(e) => r.sym == Some(*e),
            Self::In(es) => es.iter().any(|&e| r.is_in(e)),
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
    fn matches(&self, principal: &Resolved, action: &Resolved, resource: &Resolved) -> bool {
        // Action first: a posting list gathered by principal or resource
        // (e.g. every policy for a team) mostly fails on the action.
        self.action.matches(action)
            && self.principal.matches(principal)
            && self.resource.matches(resource)
    }
}

/// Posting lists for one entity dimension (principal or resource).
#[derive(Debug, Default)]
struct EntityPostings {
    eq: Map<Sym, Vec<u32>>,
    // `in e` and `is T in e` are both found through `e`; the exact check
    // afterwards tests the type.
    in_: Map<Sym, Vec<u32>>,
    is: Map<Sym, Vec<u32>>,
}

impl EntityPostings {
    fn file(&mut self, scope: &EntityScope, policy: u32) {
        match *scope {
            EntityScope::Any => {}
            EntityScope::Eq(e) => self.eq.entry(e).or_default().push(policy),
            EntityScope::In(e) | EntityScope::IsIn(_, e) => {
                self.in_.entry(e).or_default().push(policy);
            }
            EntityScope::Is(t) => self.is.entry(t).or_default().push(policy),
        }
    }

    fn gather(&self, r: &Resolved, out: &mut Vec<u32>) {
        if let Some(list) = r.sym.and_then(|s| self.eq.get(&s)) {
            out.extend_from_slice(list);
        }
        if let Some(list) = r.ty.and_then(|t| self.is.get(&t)) {
            out.extend_from_slice(list);
        }
        if self.in_.is_empty() {
            return;
        }
        for s in r.with_ancestors() {
            if let Some(list) = self.in_.get(&s) {
                out.extend_from_slice(list);
            }
        }
    }
}

/// Policies filed by their most selective scope constraint.
#[derive(Debug, Default)]
pub struct Index {
    symbols: Symbols,
    scopes: Vec<Scope>,
    principal: EntityPostings,
    resource: EntityPostings,
    action: Map<Sym, Vec<u32>>,
    always: Vec<u32>,
}

impl Index {
    /// Files every policy of `policies`.
    pub fn new(policies: &PolicySet) -> Self {
        let mut index = Self::default();
        for (i, info) in policies.infos().iter().enumerate() {
            // PolicySet guarantees fewer than 2^32 policies.
            let Ok(i) = u32::try_from(i) else { break };
            let symbols = &mut index.symbols;
            let scope = Scope {
                principal: EntityScope::new(info.policy.principal_constraint().into(), symbols),
                action: match info.policy.action_constraint() {
                    ActionConstraint::Any => ActionScope::Any,
                    ActionConstraint::Eq(e) => ActionScope::Eq(symbols.uid(e)),
                    ActionConstraint::In(es) => {
                        ActionScope::In(es.into_iter().map(|e| symbols.uid(e)).collect())
                    }
                },
                resource: EntityScope::new(info.policy.resource_constraint().into(), symbols),
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
                    ActionScope::Eq(e) => index.action.entry(*e).or_default().push(i),
                    ActionScope::In(es) => {
                        for &e in es {
                            index.action.entry(e).or_default().push(i);
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
        let principal = Resolved::new(&req.principal, store, &self.symbols);
        let action = Resolved::new(&req.action, store, &self.symbols);
        let resource = Resolved::new(&req.resource, store, &self.symbols);
        self.principal.gather(&principal, out);
        self.resource.gather(&resource, out);
        for a in action.with_ancestors() {
            if let Some(list) = self.action.get(&a) {
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
