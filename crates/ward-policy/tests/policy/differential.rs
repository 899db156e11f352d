//! The engine (index + sub-policy-sets + projected context + fail-closed)
//! against Cedar's `Authorizer` on the whole policy set and whole context.
//!
//! For every random world and request:
//! - the index's candidates are exactly the policies whose scope Cedar
//!   says matches (scope-only copies of the policies, evaluated by Cedar);
//! - without Cedar errors, Ward's decision and determining policies equal
//!   Cedar's and Ward reports no errors;
//! - with Cedar errors, Ward denies, reports errors for exactly the policies
//!   Cedar reports, and keeps Cedar's determining policies only when Cedar
//!   also denied.

use std::collections::BTreeSet;

use cedar_policy::{AuthorizationError, Authorizer};
use proptest::prelude::*;
use ward_policy::{Effect, Engine};

use crate::common::{SCHEMA, gen_entities, gen_policies, gen_request};

fn names(ids: impl Iterator<Item = String>) -> BTreeSet<String> {
    ids.collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_cedar(
        policies in gen_policies(24),
        entities in gen_entities(),
        requests in prop::collection::vec(gen_request(), 1..24),
    ) {
        let set = policies.load();
        let scopes = policies.scopes(&set);
        let store = entities.store();
        let engine = Engine::new(set.clone(), SCHEMA.clone(), store.clone()).unwrap();
        let cedar = Authorizer::new();
        for req in &requests {
            let cedar_req = req.to_cedar().unwrap();

            let scope_hits = cedar.is_authorized(&cedar_req, &scopes, store.cedar());
            let want: BTreeSet<String> = names(scope_hits.diagnostics().reason().map(ToString::to_string));
            let got: BTreeSet<String> = engine.candidates(req).into_iter().map(str::to_owned).collect();
            prop_assert_eq!(&got, &want, "candidates for {:?}", req);

            let expected = cedar.is_authorized(&cedar_req, set.cedar(), store.cedar());
            let cedar_allows = expected.decision() == cedar_policy::Decision::Allow;
            let cedar_reasons = names(expected.diagnostics().reason().map(ToString::to_string));
            let cedar_errors = names(expected.diagnostics().errors().map(|e| match e {
                AuthorizationError::PolicyEvaluationError(e) => e.policy_id().to_string(),
            }));

            for decision in [engine.decide_uncached(req), engine.decide(req), engine.decide(req)] {
                let policies = names(decision.policies().iter().map(ToString::to_string));
                let errors = names(decision.errors().iter().map(|e| e.policy.to_string()));
                prop_assert_eq!(&errors, &cedar_errors, "errors for {:?}", req);
                if cedar_errors.is_empty() {
                    prop_assert_eq!(decision.is_allowed(), cedar_allows, "decision for {:?}", req);
                    prop_assert_eq!(&policies, &cedar_reasons);
                } else {
                    prop_assert_eq!(decision.effect(), Effect::Deny, "fail closed for {:?}", req);
                    if cedar_allows {
                        prop_assert!(policies.is_empty());
                    } else {
                        prop_assert_eq!(&policies, &cedar_reasons);
                    }
                }
                prop_assert_eq!(decision.policy_version(), set.version());
            }
        }
    }
}
