//! [`Engine`]: the embedded policy decision point.
//!
//! `decide` = cache lookup → (on a miss) scope index → memoised sub-policy-set
//! → Cedar `Authorizer` → fail-closed [`Decision`]. The engine is `Sync`:
//! share it behind an `Arc` and swap it (or wrap it in a lock) to apply
//! updates, which take `&mut self` and clear the cache.
//!
//! Fail closed: Cedar skips a policy whose evaluation errors and decides with
//! the rest; Ward denies whenever any applicable policy errors (DESIGN.md
//! §4.1), so a broken `forbid` can never be the reason something is allowed.
//! Where the two agree (no errors) Ward's decision and determining policies
//! equal Cedar's on the whole set; the property tests check both.

use std::sync::Arc;

use cedar_policy::{AuthorizationError, Authorizer, Entity, EntityUid};
// quanta reads the TSC where it is invariant (falling back to the OS clock):
// two std `Instant` reads were a quarter of a cache hit on a VM.
use quanta::Instant;

use crate::cache::{DEFAULT_CAPACITY, DecisionCache};
use crate::decision::{Decision, DecisionError, Effect, Lists};
use crate::entities::{EntityError, EntityStore};
use crate::index::Index;
use crate::policy_set::PolicySet;
use crate::request::Request;
use crate::schema::Schema;
use crate::subset::{Subset, SubsetMemo};
use crate::version::PolicyVersion;

/// Distinct candidate sets memoised before the memo starts over.
const SUBSET_MEMO_CAPACITY: usize = 1 << 14;

/// Why the engine refused new policies or entities.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Policies or entities were validated against another schema.
    #[error("the {what} were validated against a different schema than the engine's")]
    SchemaMismatch {
        /// `"policies"` or `"entities"`.
        what: &'static str,
    },
    /// An entity update was rejected; the store is unchanged.
    #[error(transparent)]
    Entities(#[from] EntityError),
}

/// The policy decision point: policies, entities, index and cache.
#[derive(Debug)]
pub struct Engine {
    schema: Schema,
    policies: PolicySet,
    index: Index,
    subsets: SubsetMemo,
    entities: EntityStore,
    cache: DecisionCache,
    authorizer: Authorizer,
    /// The lists of a decision with no determining policy and no error.
    no_lists: Arc<Lists>,
}

impl Engine {
    /// An engine deciding with `policies` over `entities`; both must have
    /// been validated against `schema`. The decision cache holds
    /// [`DEFAULT_CAPACITY`] decisions; see [`Engine::with_cache_capacity`].
    pub fn new(
        policies: PolicySet,
        schema: Schema,
        entities: EntityStore,
    ) -> Result<Self, EngineError> {
        check_schema(&schema, policies.schema_digest(), "policies")?;
        check_schema(&schema, entities.schema_digest(), "entities")?;
        // The first read calibrates quanta's clock (a few milliseconds);
        // better here than inside the first request's decision.
        let _ = Instant::now();
        Ok(Self {
            index: Index::new(&policies),
            subsets: SubsetMemo::new(SUBSET_MEMO_CAPACITY),
            schema,
            policies,
            entities,
            cache: DecisionCache::new(DEFAULT_CAPACITY),
            authorizer: Authorizer::new(),
            no_lists: Arc::default(),
        })
    }

    /// Sets the decision cache's capacity (0 disables it), dropping its
    /// contents.
    #[must_use]
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = DecisionCache::new(capacity);
        self
    }

    /// Decides `req`, from the cache when the same question (as far as the
    /// applicable policies can tell) was decided since the last update.
    pub fn decide(&self, req: &Request) -> Decision {
        let start = Instant::now();
        if !self.cache.enabled() {
            return self.decide_uncached_from(req, start);
        }
        let miss = match self.cache.get(req) {
            Ok(mut hit) => {
                hit.cached = true;
                hit.eval_time = start.elapsed();
                return hit;
            }
            Err(miss) => miss,
        };
        let subset = match miss.subset() {
            Some(subset) => Arc::clone(subset),
            None => self.subset_for(req),
        };
        let decision = self.evaluate(&subset, req, start);
        self.cache.put(req, miss, &subset, decision.clone());
        decision
    }

    /// Decides `req` without consulting or filling the cache; always the
    /// same outcome as [`Engine::decide`].
    pub fn decide_uncached(&self, req: &Request) -> Decision {
        self.decide_uncached_from(req, Instant::now())
    }

    /// Names of the policies whose scope matches `req` (the ones Cedar will
    /// evaluate), in policy-set order.
    pub fn candidates(&self, req: &Request) -> Vec<&str> {
        let mut out = Vec::new();
        self.index.candidates(req, &self.entities, &mut out);
        out.iter()
            .filter_map(|&i| self.policies.infos().get(usize::try_from(i).ok()?))
            .map(|info| &*info.name)
            .collect()
    }

    /// Replaces the policy set (validated against this engine's schema).
    pub fn replace_policies(&mut self, policies: PolicySet) -> Result<(), EngineError> {
        check_schema(&self.schema, policies.schema_digest(), "policies")?;
        self.index = Index::new(&policies);
        self.subsets = SubsetMemo::new(SUBSET_MEMO_CAPACITY);
        self.policies = policies;
        self.cache.clear();
        Ok(())
    }

    /// Adds or replaces `upserts` and removes `removals`, atomically.
    pub fn update_entities(
        &mut self,
        upserts: impl IntoIterator<Item = Entity>,
        removals: impl IntoIterator<Item = EntityUid>,
    ) -> Result<(), EngineError> {
        let mut store = self.entities.clone();
        store.upsert(upserts)?;
        store.remove(removals)?;
        self.entities = store;
        self.cache.clear();
        Ok(())
    }

    /// Replaces the whole entity store.
    pub fn replace_entities(&mut self, entities: EntityStore) -> Result<(), EngineError> {
        check_schema(&self.schema, entities.schema_digest(), "entities")?;
        self.entities = entities;
        self.cache.clear();
        Ok(())
    }

    /// The policy set deciding now.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Its version.
    pub fn policy_version(&self) -> PolicyVersion {
        self.policies.version()
    }

    /// The entities deciding now.
    pub fn entities(&self) -> &EntityStore {
        &self.entities
    }

    /// The schema everything was validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn decide_uncached_from(&self, req: &Request, start: Instant) -> Decision {
        let subset = self.subset_for(req);
        self.evaluate(&subset, req, start)
    }

    fn subset_for(&self, req: &Request) -> Arc<Subset> {
        let mut candidates = Vec::new();
        self.index.candidates(req, &self.entities, &mut candidates);
        self.subsets.get(&self.policies, &candidates)
    }

    fn evaluate(&self, subset: &Subset, req: &Request, start: Instant) -> Decision {
        if subset.is_empty() {
            return self.finish(Effect::Deny, &[], Vec::new(), start);
        }
        let cedar_req = req.context.to_cedar(&subset.context).and_then(|context| {
            cedar_policy::Request::new(
                req.principal.clone(),
                req.action.clone(),
                req.resource.clone(),
                context,
                None,
            )
            .map_err(|e| crate::request::ContextError::new(e.to_string()))
        });
        let cedar_req = match cedar_req {
            Ok(r) => r,
            Err(err) => {
                let error = DecisionError {
                    policy: Arc::from("request"),
                    message: err.to_string(),
                };
                return self.finish(Effect::Deny, &[], vec![error], start);
            }
        };
        let response =
            self.authorizer
                .is_authorized(&cedar_req, &subset.cedar, self.entities.cedar());
        let diagnostics = response.diagnostics();

        let mut errors: Vec<(u32, DecisionError)> = diagnostics
            .errors()
            .map(|err| match err {
                AuthorizationError::PolicyEvaluationError(e) => {
                    let index = self.policies.index_of(e.policy_id()).unwrap_or(u32::MAX);
                    let error = DecisionError {
                        policy: self
                            .name(index)
                            .unwrap_or_else(|| Arc::from(e.policy_id().to_string())),
                        message: e.inner().to_string(),
                    };
                    (index, error)
                }
            })
            .collect();
        errors.sort_by_key(|(i, _)| *i);

        let cedar_allows = response.decision() == cedar_policy::Decision::Allow;
        let effect = if cedar_allows && errors.is_empty() {
            Effect::Allow
        } else {
            Effect::Deny
        };
        // Cedar's determining policies stand when Ward agrees with Cedar;
        // when fail-closed overrides an allow, no policy determined the deny.
        let mut determining: Vec<u32> = if cedar_allows == (effect == Effect::Allow) {
            diagnostics
                .reason()
                .filter_map(|id| self.policies.index_of(id))
                .collect()
        } else {
            Vec::new()
        };
        determining.sort_unstable();
        self.finish(
            effect,
            &determining,
            errors.into_iter().map(|(_, e)| e).collect(),
            start,
        )
    }

    fn finish(
        &self,
        effect: Effect,
        determining: &[u32],
        errors: Vec<DecisionError>,
        start: Instant,
    ) -> Decision {
        let infos = self.policies.infos();
        let chosen = determining
            .iter()
            .filter_map(|&i| infos.get(usize::try_from(i).ok()?));
        // No error and at most one determining policy is the common case:
        // share the lists built at load instead of allocating per decision.
        let shared = match (determining, errors.is_empty()) {
            ([], true) => Some(Arc::clone(&self.no_lists)),
            ([only], true) => usize::try_from(*only)
                .ok()
                .and_then(|i| infos.get(i))
                .map(|info| Arc::clone(&info.alone)),
            _ => None,
        };
        let lists = shared.unwrap_or_else(|| {
            Arc::new(Lists {
                policies: chosen.clone().map(|p| Arc::clone(&p.name)).collect(),
                reasons: chosen.filter_map(|p| p.reason.clone()).collect(),
                errors: errors.into(),
            })
        });
        Decision {
            decision: effect,
            lists,
            policy_version: self.policies.version(),
            eval_time: start.elapsed(),
            cached: false,
        }
    }

    fn name(&self, index: u32) -> Option<Arc<str>> {
        let info = self.policies.infos().get(usize::try_from(index).ok()?)?;
        Some(Arc::clone(&info.name))
    }
}

fn check_schema(schema: &Schema, digest: &[u8; 32], what: &'static str) -> Result<(), EngineError> {
    if schema.digest() == digest {
        Ok(())
    } else {
        Err(EngineError::SchemaMismatch { what })
    }
}
