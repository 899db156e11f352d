//! The verified-chain cache never changes an answer: for any sequence of
//! chains, usages, times and authorizers, `verify` (cached) returns exactly
//! what `verify_uncached` returns.

use std::collections::HashSet;
use std::sync::LazyLock;

use proptest::prelude::*;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};
use ward_identity::TrustBundle;
use ward_identity::verify::{AnyMember, ChainVerifier, ExactIds, Usage};
use ward_testkit::{LeafSpec, TestPki};

use crate::common::{TD, agent, td};

struct World {
    base: OffsetDateTime,
    verifier: ChainVerifier,
    chains: Vec<Vec<CertificateDer<'static>>>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let base = OffsetDateTime::now_utc();
    let pki = TestPki::new(TD);
    let rogue = TestPki::new(TD);
    let spec = |name: &str, from: i64, to: i64| LeafSpec {
        not_before: base + Duration::seconds(from),
        not_after: base + Duration::seconds(to),
        ..LeafSpec::svid(&agent(name).to_string())
    };
    let mut chains: Vec<Vec<CertificateDer<'static>>> = vec![
        pki.leaf(&spec("a", -60, 60)).chain,
        pki.leaf(&spec("b", -10, 10)).chain,
        pki.leaf(&spec("c", 5, 3600)).chain,
        pki.leaf(&spec("d", -3600, -5)).chain,
        rogue.leaf(&spec("e", -60, 60)).chain,
        pki.leaf(&LeafSpec {
            extended_key_usages: vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
            ..spec("f", -60, 60)
        })
        .chain,
    ];
    // The same leaf without its intermediate, and with a foreign one.
    let a = chains[0].clone();
    chains.push(a[..1].to_vec());
    chains.push(vec![a[0].clone(), rogue.intermediate().clone()]);
    let bundle = TrustBundle::new(td(), vec![pki.root().clone()], vec![]);
    World {
        base,
        verifier: ChainVerifier::new(&bundle).unwrap(),
        chains,
    }
});

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]
    #[test]
    fn cached_equals_uncached(
        steps in proptest::collection::vec((0usize..8, -90i64..90, any::<bool>(), any::<bool>()), 1..24)
    ) {
        let w = &*WORLD;
        let only_a = ExactIds(HashSet::from([agent("a")]));
        for (chain, offset, server, restrict) in steps {
            let chain = &w.chains[chain];
            let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                u64::try_from((w.base + Duration::seconds(offset)).unix_timestamp()).unwrap(),
            ));
            let usage = if server { Usage::Server } else { Usage::Client };
            let auth: &dyn ward_identity::PeerAuthorizer = if restrict { &only_a } else { &AnyMember };
            let cached = w.verifier.verify(&chain[0], &chain[1..], usage, now, auth).map_err(|e| e.to_string());
            let uncached = w.verifier.verify_uncached(&chain[0], &chain[1..], usage, now, auth).map_err(|e| e.to_string());
            prop_assert_eq!(cached, uncached);
        }
    }
}
