//! The decision cache (DESIGN.md §4.5: a cached decision always equals the
//! uncached one).
//!
//! Two bounded maps, each split into shards behind their own mutex:
//! - *scopes*: `(principal, action, resource)` → the candidate [`Subset`],
//!   which saves the index walk and tells which context keys matter;
//! - *decisions*: `(principal, action, resource, values of those context
//!   keys)` → [`Decision`].
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
//! cache so request contents cannot aim at collisions) and then compared in full, so a fingerprint collision is a
//! miss, never a wrong answer; the hit path allocates nothing. Eviction is
//! CLOCK (second chance): hits set a bit, the hand clears bits until it finds
//! an entry not used since its last pass.

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
    scopes: Sharded<ScopeKey, Arc<Subset>>,
    decisions: Sharded<DecisionKey, Decision>,
}

impl DecisionCache {
    /// A cache of about `capacity` decisions (and as many scopes); 0 turns
    /// caching off.
    pub fn new(capacity: usize) -> Self {
        Self {
            seed: foldhash::fast::RandomState::default(),
            scopes: Sharded::new(capacity),
            decisions: Sharded::new(capacity),
        }
    }

    /// True if caching is on.
    pub fn enabled(&self) -> bool {
        self.decisions.capacity > 0
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.scopes.clear();
        self.decisions.clear();
    }

    pub(crate) fn scope_fingerprint(&self, req: &Request) -> u64 {
        let mut h = self.seed.build_hasher();
        req.principal.hash(&mut h);
        req.action.hash(&mut h);
        req.resource.hash(&mut h);
        h.finish()
    }

    pub(crate) fn scope(&self, fp: u64, req: &Request) -> Option<Arc<Subset>> {
        self.scopes.get(fp, |k| k.matches(req))
    }

    pub(crate) fn put_scope(&self, fp: u64, req: &Request, subset: Arc<Subset>) {
        self.scopes.insert(fp, ScopeKey::of(req), subset);
    }

    pub(crate) fn decision_fingerprint(
        &self,
        scope_fp: u64,
        refs: &ContextRefs,
        ctx: &Context,
    ) -> u64 {
        let mut h = self.seed.build_hasher();
        h.write_u64(scope_fp);
        match refs {
            ContextRefs::Whole => ctx.hash(&mut h),
            ContextRefs::Keys(keys) => {
                for key in keys.iter() {
                    ctx.get(key).hash(&mut h);
                }
            }
        }
        h.finish()
    }

    pub(crate) fn decision(&self, fp: u64, req: &Request, refs: &ContextRefs) -> Option<Decision> {
        self.decisions.get(fp, |k| k.matches(req, refs))
    }

    pub(crate) fn put_decision(
        &self,
        fp: u64,
        req: &Request,
        refs: &ContextRefs,
        decision: Decision,
    ) {
        self.decisions
            .insert(fp, DecisionKey::of(req, refs), decision);
    }
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

#[derive(Debug)]
enum Projected {
    /// The values (or absence) of these keys, in the same order.
    Keys(Arc<[String]>, Box<[Option<Value>]>),
    Whole(Context),
}

#[derive(Debug)]
struct DecisionKey {
    scope: ScopeKey,
    context: Projected,
}

impl DecisionKey {
    fn of(req: &Request, refs: &ContextRefs) -> Self {
        Self {
            scope: ScopeKey::of(req),
            context: match refs {
                ContextRefs::Whole => Projected::Whole(req.context.clone()),
                ContextRefs::Keys(keys) => Projected::Keys(
                    Arc::clone(keys),
                    keys.iter().map(|k| req.context.get(k).cloned()).collect(),
                ),
            },
        }
    }

    fn matches(&self, req: &Request, refs: &ContextRefs) -> bool {
        self.scope.matches(req)
            && match (&self.context, refs) {
                (Projected::Whole(ctx), ContextRefs::Whole) => *ctx == req.context,
                (Projected::Keys(stored_keys, values), ContextRefs::Keys(keys)) => {
                    (Arc::ptr_eq(stored_keys, keys) || stored_keys == keys)
                        && values.len() == keys.len()
                        && values
                            .iter()
                            .zip(keys.iter())
                            .all(|(v, k)| v.as_ref() == req.context.get(k))
                }
                _ => false,
            }
    }
}

#[derive(Debug)]
struct Sharded<K, V> {
    shards: Vec<Mutex<Clock<K, V>>>,
    capacity: usize,
}

impl<K, V: Clone> Sharded<K, V> {
    fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Clock::new(per_shard)))
                .collect(),
            capacity,
        }
    }

    fn shard(&self, fp: u64) -> Option<MutexGuard<'_, Clock<K, V>>> {
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

    fn get(&self, fp: u64, matches: impl Fn(&K) -> bool) -> Option<V> {
        if self.capacity == 0 {
            return None;
        }
        self.shard(fp)?.get(fp, matches).cloned()
    }

    fn insert(&self, fp: u64, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if let Some(mut shard) = self.shard(fp) {
            shard.insert(fp, key, value);
        }
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
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

    fn get(&mut self, fp: u64, matches: impl Fn(&K) -> bool) -> Option<&V> {
        let &i = self.index.get(&fp)?;
        let slot = self.slots.get_mut(i)?;
        if !matches(&slot.key) {
            return None;
        }
        slot.referenced = true;
        Some(&slot.value)
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

    #[test]
    fn zero_capacity_stores_nothing() {
        let s: Sharded<u32, u32> = Sharded::new(0);
        s.insert(1, 1, 1);
        assert_eq!(s.get(1, |_| true), None);
        let mut c: Clock<u32, u32> = Clock::new(0);
        c.insert(1, 1, 1);
        assert_eq!(c.len(), 0);
    }
}
