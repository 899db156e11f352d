//! Decision latency: Ward's indexed engine (cache off), a cache hit, and
//! Cedar's `Authorizer` on the whole set, at 10 to 10,000 policies.
//!
//! The policy sets look like a real deployment: mostly per-agent permits
//! (`principal == Agent::"aI"`, `resource == Agent::"aJ"`, a risk-score
//! condition), some team-wide MCP permits, and two global forbids with
//! reasons. The request matches one per-agent permit at every size, so the
//! engine evaluates about three policies whatever the set's size.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench"
)]

use std::hint::black_box;
use std::time::Duration;

use cedar_policy::Authorizer;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ward_policy::{Context, Engine, EntityStore, EntityUid, PolicySet, Request, Schema};

const TEAMS: usize = 20;

fn policies(n: usize, agents: usize) -> String {
    let mut out = String::from(
        r#"@id("no-pii-to-risky") @reason("PII may not reach high-risk agents")
forbid (principal, action, resource is Agent)
when { context.data_labels.contains("pii") && resource.risk_tier >= 3 };
@id("risk-ceiling") @reason("risk score too high")
forbid (principal, action, resource) when { context.risk_score > 90 };
"#,
    );
    for i in 0..n.saturating_sub(2) {
        let p = i % agents;
        if i % 8 == 7 {
            out.push_str(&format!(
                "@id(\"team-{i}\") permit (principal in Team::\"t{}\", action in Action::\"mcp\", resource in Team::\"t{}\");\n",
                i % TEAMS,
                (i / TEAMS) % TEAMS
            ));
        } else {
            out.push_str(&format!(
                "@id(\"agent-{i}\") permit (principal == Agent::\"a{p}\", action in Action::\"http\", resource == Agent::\"a{}\") when {{ context.risk_score < 50 }};\n",
                (p * 7 + 1) % agents
            ));
        }
    }
    out
}

fn entities(agents: usize) -> String {
    let mut all: Vec<String> = (0..TEAMS)
        .map(|t| {
            format!(r#"{{"uid": {{"type": "Team", "id": "t{t}"}}, "attrs": {{}}, "parents": []}}"#)
        })
        .collect();
    for a in 0..agents {
        all.push(format!(
            r#"{{"uid": {{"type": "Agent", "id": "a{a}"}}, "attrs": {{"team": "t{t}", "risk_tier": {r}, "labels": []}}, "parents": [{{"type": "Team", "id": "t{t}"}}]}}"#,
            t = a % TEAMS,
            r = a % 4
        ));
    }
    format!("[{}]", all.join(","))
}

struct World {
    engine: Engine,
    request: Request,
}

fn world(n: usize) -> World {
    let agents = n.max(50);
    let schema = Schema::ward().unwrap();
    let text = policies(n, agents);
    let set = PolicySet::load(&schema, [("bench.cedar", text.as_str())]).unwrap();
    assert_eq!(set.len(), n);
    let store = EntityStore::from_json_str(&schema, &entities(agents)).unwrap();
    let engine = Engine::new(set, schema, store).unwrap();
    // agent-3 permits a3 → a22 (3 * 7 + 1).
    let request = Request::new(
        uid(r#"Agent::"a3""#),
        uid(r#"Action::"GET""#),
        uid(r#"Agent::"a22""#),
        Context::new()
            .with("time", 1_700_000_000)
            .with("hour", 10)
            .with("method", "GET")
            .with("path", "/v1/items")
            .with("data_labels", vec!["internal"])
            .with("risk_score", 20),
    );
    let d = engine.decide_uncached(&request);
    assert!(d.is_allowed(), "{d:?}");
    World { engine, request }
}

fn uid(s: &str) -> EntityUid {
    s.parse().unwrap()
}

fn bench(c: &mut Criterion) {
    let sizes = [10usize, 100, 1_000, 10_000];
    let worlds: Vec<(usize, World)> = sizes.iter().map(|&n| (n, world(n))).collect();

    let mut g = c.benchmark_group("decide");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (n, w) in &worlds {
        let uncached = Engine::new(
            w.engine.policies().clone(),
            w.engine.schema().clone(),
            w.engine.entities().clone(),
        )
        .unwrap()
        .with_cache_capacity(0);
        g.bench_with_input(BenchmarkId::new("indexed", n), &w.request, |b, r| {
            b.iter(|| black_box(uncached.decide(black_box(r))));
        });
        assert!(w.engine.decide(&w.request).is_allowed());
        assert!(w.engine.decide(&w.request).cached());
        g.bench_with_input(BenchmarkId::new("cache_hit", n), &w.request, |b, r| {
            b.iter(|| black_box(w.engine.decide(black_box(r))));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("raw_cedar");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let authorizer = Authorizer::new();
    for (n, w) in &worlds {
        let request = w.request.to_cedar().unwrap();
        let set = w.engine.policies().cedar();
        let store = w.engine.entities().cedar();
        assert_eq!(
            authorizer.is_authorized(&request, set, store).decision(),
            cedar_policy::Decision::Allow
        );
        g.bench_with_input(BenchmarkId::new("whole_set", n), &request, |b, r| {
            b.iter(|| black_box(authorizer.is_authorized(black_box(r), set, store)));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
