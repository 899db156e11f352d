//! The decision cache (DESIGN.md §4.5: a cached decision always equals the
//! uncached one).
//!
//! One bounded table, split into shards behind their own mutex, holding two
//! kinds of entries:
//! - a *scope* entry per `(principal, action, resource)`: the candidate
//!   [`Subset`], which saves the index walk and tells which context keys
//!   matter, and an id never reused by this cache;
//! - a *decision* entry per `(scope id, values of those context keys)`:
//!   the [`Decision`].
//!
//! Both entries of a question live in the shard its scope fingerprint picks,
//! so a hit takes one lock: find the scope entry, hash just the context keys
//! its subset reads, find the decision entry. A decision entry names its
//! scope by id rather than by the three uids: the scope entry was compared
//! in full, and an id is never reused, so a decision left behind by an
//! evicted scope can never be found again (CLOCK reclaims it).
//!
//! Why that key is complete: the candidates are exactly the policies whose
//! scope matches (see [`crate::index`]), and they are evaluated on a context
//! holding only the keys they can read ([`crate::context_refs`]); everything
//! else they can read (entity attributes and ancestors, the policies
//! themselves) is fixed until `Engine::update_entities` or
//! `Engine::replace_policies`, which clear the cache. So the decision is a
//! function of the key.
//!
//! Keys are looked up by a 64-bit fingerprint (foldhash, randomly seeded per
//! cache so request contents cannot aim at collisions) and then compared in
//! full, so a fingerprint collision is a miss, never a wrong answer; the hit
//! path allocates nothing. Eviction is CLOCK (second chance): hits set a bit,
//! the hand clears bits until it finds an entry not used since its last pass.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cedar_policy::EntityUid;

use crate::context_refs::ContextRefs;
use crate::decision::Decision;
use crate::request::{Context, Request, Value};
use crate::subset::Subset;

const SHARDS: usize = 8;

/// Default number of cached decisions.
pub const DEFAULT_CAPACITY: usize = 1 << 16;

/// The engine's decision cache.
#[derive(Debug)]
pub struct DecisionCache {
    seed: foldhash::fast::RandomState,
    shards: Vec<Mutex<Shard>>,
    capacity: usize,
}

/// What [`DecisionCache::get`] found short of a decision; hand it back to
/// [`DecisionCache::put`] with the decision once evaluated.
#[derive(Debug)]
pub(crate) struct Miss {
    scope_fp: u64,
    /// The cached scope, if only the decision was missing.
    scope: Option<(u64, Arc<Subset>)>,
}

impl Miss {
    /// The cached candidates for this request, if the scope was cached.
    pub(crate) fn subset(&self) -> Option<&Arc<Subset>> {
        self.scope.as_ref().map(|(_, subset)| subset)
    }
}

impl DecisionCache {
    /// A cache of about `capacity` decisions (and as many scopes); 0 turns
    /// caching off.
    pub fn new(capacity: usize) -> Self {
        // Scopes and decisions share the table: room for both.
        let per_shard = capacity.saturating_mul(2).div_ceil(SHARDS);
        Self {
            seed: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            capacity,
        }
    }

    /// True if caching is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// The cached decision for `req`, or what is known towards one.
    pub(crate) fn get(&self, req: &Request) -> Result<Decision, Miss> {
        let scope_fp = self.scope_fingerprint(req);
        let mut miss = Miss {
            scope_fp,
            scope: None,
        };
        if !self.enabled() {
            return Err(miss);
        }
        let Some(mut shard) = self.shard(scope_fp) else {
            return Err(miss);
        };
        let table = &mut shard.table;
        // Positions first, reference bits after: the scope's subset is
        // only borrowed on a hit, not cloned.
        let Some(at_scope) =
            table.position(scope_fp, |k| matches!(k, Key::Scope(s) if s.matches(req)))
        else {
            return Err(miss);
        };
        let Some(Val::Scope { id, subset }) = table.value(at_scope) else {
            return Err(miss);
        };
        let id = *id;
        let fp = self.decision_fingerprint(scope_fp, &subset.context, &req.context);
        let at_decision = table.position(fp, |k| match k {
            Key::Decision { scope, context } => {
                *scope == id && context.matches(&subset.context, &req.context)
            }
            Key::Scope(_) => false,
        });
        let found = match at_decision.and_then(|i| table.value(i)) {
            Some(Val::Decision(decision)) => Ok(decision.clone()),
            _ => Err(Arc::clone(subset)),
        };
        table.touch(at_scope);
        if let Some(i) = at_decision {
            table.touch(i);
        }
        found.map_err(|subset| {
            miss.scope = Some((id, subset));
            miss
        })
    }

    /// Remembers `decision` for `req`, evaluated with `subset` (which must
    /// be the cached one in `miss` if there was one; that one is used).
    pub(crate) fn put(&self, req: &Request, miss: Miss, subset: &Arc<Subset>, decision: Decision) {
        if !self.enabled() {
            return;
        }
        let Miss { scope_fp, scope } = miss;
        // A cached scope's own subset fixes which keys its decisions key on.
        let subset = scope.as_ref().map_or(subset, |(_, cached)| cached);
        let fp = self.decision_fingerprint(scope_fp, &subset.context, &req.context);
        // Built before taking the lock, which then only guards the inserts.
        let context = Projected::of(&subset.context, &req.context);
        let Some(mut shard) = self.shard(scope_fp) else {
            return;
        };
        let id = match scope {
            Some((id, _)) => id,
            None => {
                let id = shard.next_id;
                shard.next_id = id.wrapping_add(1);
                shard.table.insert(
                    scope_fp,
                    Key::Scope(Box::new(ScopeKey::of(req))),
                    Val::Scope {
                        id,
                        subset: Arc::clone(subset),
                    },
                );
                id
            }
        };
        shard.table.insert(
            fp,
            Key::Decision { scope: id, context },
            Val::Decision(decision),
        );
    }

    fn shard(&self, fp: u64) -> Option<MutexGuard<'_, Shard>> {
        // The top bits pick the shard; the map inside uses the low bits.
        let i = usize::try_from(fp >> 61).ok()? % SHARDS;
        // A poisoned shard only means a panic elsewhere while it was held;
        // each operation leaves the shard consistent, so keep using it.
        Some(
            self.shards
                .get(i)?
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn scope_fingerprint(&self, req: &Request) -> u64 {
        let mut h = self.seed.build_hasher();
        req.principal.hash(&mut h);
        req.action.hash(&mut h);
        req.resource.hash(&mut h);
        h.finish()
    }

    fn decision_fingerprint(&self, scope_fp: u64, refs: &ContextRefs, ctx: &Context) -> u64 {
        match refs {
            ContextRefs::Whole => {
                let mut h = self.seed.build_hasher();
                h.write_u64(scope_fp);
                ctx.hash(&mut h);
                h.finish()
            }
            ContextRefs::Keys(keys) => {
                self.values_fingerprint(scope_fp, keys.iter().map(|k| ctx.get(k)))
            }
        }
    }

    /// The fingerprint of a decision whose scope reads keys with these
    /// values (in the keys' order); the one place it is computed, so `get`
    /// and `put` agree.
    fn values_fingerprint<'a>(
        &self,
        scope_fp: u64,
        values: impl Iterator<Item = Option<&'a Value>>,
    ) -> u64 {
        let mut h = self.seed.build_hasher();
        h.write_u64(scope_fp);
        for value in values {
            value.hash(&mut h);
        }
        h.finish()
    }
}

/// One shard: its part of the table and the next scope id it hands out.
#[derive(Debug)]
struct Shard {
    table: Clock<Key, Val>,
    /// Ids are per shard: a decision entry is only ever looked up in the
    /// shard of its scope. 2^64 scope insertions never happen, so ids are
    /// never reused.
    next_id: u64,
}

impl Shard {
    fn new(capacity: usize) -> Self {
        Self {
            table: Clock::new(capacity),
            next_id: 0,
        }
    }

    fn clear(&mut self) {
        // `next_id` keeps counting: ids stay unique for the cache's life.
        self.table.clear();
    }
}

#[derive(Debug)]
enum Key {
    /// Boxed: three uids are large, and most entries are decisions.
    Scope(Box<ScopeKey>),
    /// `scope` is the id of the scope entry the decision was made under;
    /// `context` holds the values of the keys its subset reads.
    Decision { scope: u64, context: Projected },
}

#[derive(Debug)]
enum Val {
    Scope { id: u64, subset: Arc<Subset> },
    Decision(Decision),
}

#[derive(Debug)]
struct ScopeKey {
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
}

impl ScopeKey {
    fn of(req: &Request) -> Self {
        Self {
            principal: req.principal.clone(),
            action: req.action.clone(),
            resource: req.resource.clone(),
        }
    }

    fn matches(&self, req: &Request) -> bool {
        self.principal == req.principal
            && self.action == req.action
            && self.resource == req.resource
    }
}

/// The part of a context a scope's policies can read.
#[derive(Debug)]
enum Projected {
    /// The values (or absence) of the scope's keys, in the same order.
    Keys(Box<[Option<Value>]>),
    Whole(Context),
}

impl Projected {
    fn of(refs: &ContextRefs, ctx: &Context) -> Self {
        match refs {
            ContextRefs::Whole => Self::Whole(ctx.clone()),
            ContextRefs::Keys(keys) => {
                Self::Keys(keys.iter().map(|k| ctx.get(k).cloned()).collect())
            }
        }
    }

    /// True if `ctx` projects onto `self` through `refs`, the refs of the
    /// scope this projection was stored under.
    fn matches(&self, refs: &ContextRefs, ctx: &Context) -> bool {
        match (self, refs) {
            (Self::Whole(stored), ContextRefs::Whole) => stored == ctx,
            (Self::Keys(values), ContextRefs::Keys(keys)) => {
                values.len() == keys.len()
                    && values
                        .iter()
                        .zip(keys.iter())
                        .all(|(v, k)| v.as_ref() == ctx.get(k))
            }
            _ => false,
        }
    }
}

/// The fingerprints are already uniformly random; hashing them again is
/// wasted work.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug)]
struct Slot<K, V> {
    fp: u64,
    key: K,
    value: V,
    referenced: bool,
}

/// A bounded map with CLOCK eviction, keyed by fingerprint and checked by
/// full key.
#[derive(Debug)]
struct Clock<K, V> {
    index: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>,
    slots: Vec<Slot<K, V>>,
    hand: usize,
    capacity: usize,
}

impl<K, V> Clock<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            index: HashMap::default(),
            slots: Vec::new(),
            hand: 0,
            capacity,
        }
    }

    #[cfg(test)]
    fn get(&mut self, fp: u64, matches: impl Fn(&K) -> bool) -> Option<&V> {
        let i = self.position(fp, matches)?;
        self.touch(i);
        self.value(i)
    }

    /// Where the entry with fingerprint `fp` and a key that `matches` is.
    fn position(&self, fp: u64, matches: impl Fn(&K) -> bool) -> Option<usize> {
        let &i = self.index.get(&fp)?;
        matches(&self.slots.get(i)?.key).then_some(i)
    }

    fn value(&self, i: usize) -> Option<&V> {
        self.slots.get(i).map(|slot| &slot.value)
    }

    /// Marks the entry at `i` used since the hand last passed.
    fn touch(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.referenced = true;
        }
    }

    fn insert(&mut self, fp: u64, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        let new = Slot {
            fp,
            key,
            value,
            referenced: false,
        };
        // Same fingerprint: replace (a different key with a colliding
        // fingerprint simply takes the slot over).
        if let Some(slot) = self.index.get(&fp).and_then(|&i| self.slots.get_mut(i)) {
            *slot = new;
            return;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(fp, self.slots.len());
            self.slots.push(new);
            return;
        }
        // Second chance: at most one full sweep clears every bit, so this
        // terminates within two passes.
        let len = self.slots.len();
        for _ in 0..=2 * len {
            let Some(slot) = self.slots.get_mut(self.hand) else {
                self.hand = 0;
                continue;
            };
            if slot.referenced {
                slot.referenced = false;
                self.hand = (self.hand + 1) % len;
                continue;
            }
            self.index.remove(&slot.fp);
            *slot = new;
            self.index.insert(fp, self.hand);
            self.hand = (self.hand + 1) % len;
            return;
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
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

    use super::*;

    #[test]
    fn clock_is_bounded_and_gives_used_entries_a_second_chance() {
        let mut c: Clock<u32, u32> = Clock::new(3);
        for k in 0..3 {
            c.insert(u64::from(k), k, k * 10);
        }
        // Touch 0 and 2; inserting 3 must evict 1, the unused one.
        assert_eq!(c.get(0, |k| *k == 0), Some(&0));
        assert_eq!(c.get(2, |k| *k == 2), Some(&20));
        c.insert(3, 3, 30);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(1, |k| *k == 1), None);
        assert_eq!(c.get(0, |k| *k == 0), Some(&0));
        assert_eq!(c.get(3, |k| *k == 3), Some(&30));
        for k in 4..100 {
            c.insert(u64::from(k), k, k);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.index.len(), 3);
    }

    #[test]
    fn a_fingerprint_collision_is_a_miss_not_a_wrong_answer() {
        let mut c: Clock<&str, u32> = Clock::new(4);
        c.insert(7, "a", 1);
        assert_eq!(c.get(7, |k| *k == "b"), None);
        c.insert(7, "b", 2);
        assert_eq!(c.get(7, |k| *k == "a"), None);
        assert_eq!(c.get(7, |k| *k == "b"), Some(&2));
    }

    fn world() -> (Arc<Subset>, impl Fn(i64, i64) -> Request) {
        world_of("permit(principal, action, resource) when { context.risk_score < 5 };")
    }

    fn world_of(policy: &str) -> (Arc<Subset>, impl Fn(i64, i64) -> Request) {
        let schema = crate::Schema::ward().unwrap();
        let set = crate::PolicySet::load(&schema, [("p.cedar", policy)]).unwrap();
        let subset = crate::subset::SubsetMemo::new(4).get(&set, &[0]);
        let req = |risk: i64, time: i64| {
            Request::new(
                r#"Agent::"a""#.parse().unwrap(),
                r#"Action::"GET""#.parse().unwrap(),
                r#"Agent::"b""#.parse().unwrap(),
                Context::new().with("risk_score", risk).with("time", time),
            )
        };
        (subset, req)
    }

    fn decision(effect: crate::decision::Effect) -> Decision {
        Decision {
            decision: effect,
            lists: Arc::default(),
            policy_version: crate::PolicyVersion::of_sources([("a", "b")]),
            eval_time: std::time::Duration::ZERO,
            cached: false,
        }
    }

    #[test]
    fn keys_on_the_context_keys_the_scope_reads_only() {
        use crate::decision::Effect;
        let (subset, req) = world();
        let cache = DecisionCache::new(64);
        let miss = cache.get(&req(1, 10)).unwrap_err();
        assert!(miss.subset().is_none());
        cache.put(&req(1, 10), miss, &subset, decision(Effect::Allow));
        // `time` is read by no policy of the scope: same key.
        assert_eq!(cache.get(&req(1, 99)).unwrap().effect(), Effect::Allow);
        // `risk_score` is: the scope is known, the decision is not.
        let miss = cache.get(&req(7, 10)).unwrap_err();
        assert!(Arc::ptr_eq(miss.subset().unwrap(), &subset));
        cache.put(&req(7, 10), miss, &subset, decision(Effect::Deny));
        assert_eq!(cache.get(&req(7, 10)).unwrap().effect(), Effect::Deny);
        assert_eq!(cache.get(&req(1, 10)).unwrap().effect(), Effect::Allow);
        cache.clear();
        assert!(cache.get(&req(1, 10)).is_err());
    }

    #[test]
    fn a_scope_reading_the_whole_context_keys_on_all_of_it() {
        use crate::decision::Effect;
        let (subset, req) = world_of(
            "permit(principal, action, resource) when { context == context && context.risk_score < 5 };",
        );
        assert_eq!(subset.context, ContextRefs::Whole);
        let cache = DecisionCache::new(64);
        let miss = cache.get(&req(1, 10)).unwrap_err();
        cache.put(&req(1, 10), miss, &subset, decision(Effect::Allow));
        assert_eq!(cache.get(&req(1, 10)).unwrap().effect(), Effect::Allow);
        let miss = cache.get(&req(1, 11)).unwrap_err();
        assert!(miss.subset().is_some());
    }

    #[test]
    fn decisions_of_a_replaced_scope_entry_are_never_found() {
        use crate::decision::Effect;
        let (subset, req) = world();
        let cache = DecisionCache::new(64);
        let miss = cache.get(&req(1, 0)).unwrap_err();
        cache.put(&req(1, 0), miss, &subset, decision(Effect::Allow));
        // The scope entry is replaced (as after its eviction and a new miss)
        // while the decision for risk 1 stays in the table under the old id.
        let miss = cache.get(&req(2, 0)).unwrap_err();
        let fresh = Miss {
            scope_fp: miss.scope_fp,
            scope: None,
        };
        cache.put(&req(2, 0), fresh, &subset, decision(Effect::Deny));
        let miss = cache.get(&req(1, 0)).unwrap_err();
        assert!(miss.subset().is_some(), "the new scope entry is found");
        assert_eq!(cache.get(&req(2, 0)).unwrap().effect(), Effect::Deny);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let cache = DecisionCache::new(0);
        assert!(!cache.enabled());
        let (subset, req) = world();
        let miss = cache.get(&req(1, 0)).unwrap_err();
        cache.put(
            &req(1, 0),
            miss,
            &subset,
            decision(crate::decision::Effect::Allow),
        );
        assert!(cache.get(&req(1, 0)).is_err());
        let mut c: Clock<u32, u32> = Clock::new(0);
        c.insert(1, 1, 1);
        assert_eq!(c.len(), 0);
    }
}
