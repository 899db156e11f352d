//! The decision cache never changes an answer (DESIGN.md §4.5): a cached
//! engine, driven through random decisions interleaved with entity and
//! policy updates, always answers like a fresh engine built from the current
//! state — with a tiny cache, so eviction and collisions are exercised too.

use proptest::prelude::*;
use ward_policy::{Engine, Request};

use crate::common::{
    GenEntities, GenPolicies, SCHEMA, gen_entities, gen_policies, gen_request, uid,
};

#[derive(Debug, Clone)]
enum Op {
    Decide(usize),
    ReplaceEntities(GenEntities),
    RemoveAgent(usize),
    ReplacePolicies(GenPolicies),
}

fn gen_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0usize..8).prop_map(Op::Decide),
        1 => gen_entities().prop_map(Op::ReplaceEntities),
        1 => (0usize..5).prop_map(Op::RemoveAgent),
        1 => gen_policies(12).prop_map(Op::ReplacePolicies),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn cached_equals_uncached_across_updates(
        policies in gen_policies(16),
        entities in gen_entities(),
        // A small pool of requests so that they repeat and hit the cache.
        pool in prop::collection::vec(gen_request(), 8),
        ops in prop::collection::vec(gen_op(), 1..60),
        // 4: one entry per shard, so a scope and its decisions evict each
        // other; 16: a few per shard, so a scope entry can be evicted and
        // re-made while its old decisions stay (they must not be found);
        // 1024: no eviction, every repeat hits.
        capacity in prop_oneof![Just(4usize), Just(16), Just(1024)],
    ) {
        // Three (principal, action, resource) triples with varied contexts:
        // cache hits and near-misses on context alone both happen.
        let pool: Vec<Request> = pool
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let base = &pool[i % 3];
                Request::new(base.principal.clone(), base.action.clone(), base.resource.clone(), r.context.clone())
            })
            .collect();
        let mut set = policies.load();
        let mut store = entities.store();
        let mut engine = Engine::new(set.clone(), SCHEMA.clone(), store.clone())
            .unwrap()
            .with_cache_capacity(capacity);
        for op in ops {
            match op {
                Op::Decide(i) => {
                    let req: &Request = &pool[i];
                    let cached = engine.decide(req);
                    let fresh = Engine::new(set.clone(), SCHEMA.clone(), store.clone())
                        .unwrap()
                        .with_cache_capacity(0)
                        .decide(req);
                    prop_assert!(cached.same_outcome(&fresh), "{:?}\ncached {:?}\nfresh {:?}", req, cached, fresh);
                    prop_assert!(engine.decide_uncached(req).same_outcome(&fresh));
                }
                Op::ReplaceEntities(e) => {
                    store = e.store();
                    // Half the time as a store replacement, half as upserts.
                    if e.agents.len() % 2 == 0 {
                        engine.replace_entities(store.clone()).unwrap();
                    } else {
                        let all: Vec<_> = store
                            .cedar()
                            .iter()
                            .filter(|e| e.uid().type_name().to_string() != "Action")
                            .cloned()
                            .collect();
                        engine.update_entities(all, []).unwrap();
                        // Upserts keep agents the new world lacks: the
                        // engine's store is now the reference.
                        store = engine.entities().clone();
                    }
                }
                Op::RemoveAgent(i) => {
                    let agent = uid(&format!("Agent::\"a{i}\""));
                    engine.update_entities([], [agent.clone()]).unwrap();
                    store.remove([agent]).unwrap();
                }
                Op::ReplacePolicies(p) => {
                    set = p.load();
                    engine.replace_policies(set.clone()).unwrap();
                }
            }
        }
    }
}
