//! Prometheus metrics, served on the admin listener's `/metrics`.
//!
//! Label values come from small fixed sets (direction, decision, reason
//! kind), never from request data, so cardinality stays bounded.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// The proxy's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    decision_seconds: Histogram,
    upstream_seconds: Histogram,
    /// Seconds until the SVID expires.
    pub cert_expiry_seconds: Gauge,
    /// Revision of the control-plane view in force.
    pub applied_revision: Gauge,
    /// Records in the audit spool waiting to be shipped.
    pub audit_backlog: Gauge,
    /// Audit records that could not be written.
    pub audit_failures: Counter,
    /// Audit records the server acknowledged as sequenced.
    pub audit_shipped: Counter,
    /// Shipping attempts that failed (the records stay spooled).
    pub audit_ship_failures: Counter,
    policy: Family<Vec<(&'static str, String)>, Gauge>,
    connections_cut: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ward_proxy");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Requests by direction, decision and reason kind",
            requests.clone(),
        );
        // 1 µs .. ~16 s.
        let decision_seconds = Histogram::new(exponential_buckets(1e-6, 4.0, 12));
        registry.register(
            "decision_seconds",
            "Time to authenticate, decide and audit a request",
            decision_seconds.clone(),
        );
        let upstream_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 18));
        registry.register(
            "upstream_seconds",
            "Time until the upstream's response head",
            upstream_seconds.clone(),
        );
        let cert_expiry_seconds = Gauge::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until this proxy's SVID expires",
            cert_expiry_seconds.clone(),
        );
        let applied_revision = Gauge::default();
        registry.register(
            "applied_revision",
            "Control-plane revision (registry, revocations, policy) in force",
            applied_revision.clone(),
        );
        let audit_backlog = Gauge::default();
        registry.register(
            "audit_backlog_records",
            "Audit records spooled and not yet acknowledged by the server",
            audit_backlog.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_failures",
            "Decisions whose audit record could not be written",
            audit_failures.clone(),
        );
        let audit_shipped = Counter::default();
        registry.register(
            "audit_shipped_records",
            "Audit records the server acknowledged as durably sequenced (then deleted locally)",
            audit_shipped.clone(),
        );
        let audit_ship_failures = Counter::default();
        registry.register(
            "audit_ship_failures",
            "Failed attempts to ship audit batches; the records stay in the spool",
            audit_ship_failures.clone(),
        );
        let policy = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register(
            "policy_bundle",
            "The active policy bundle version (value 1)",
            policy.clone(),
        );
        let connections_cut = Family::<Labels, Counter>::default();
        registry.register(
            "connections_cut",
            "Open inbound connections closed because their peer is no longer admitted, by reason",
            connections_cut.clone(),
        );
        Self {
            registry,
            connections_cut,
            requests,
            decision_seconds,
            upstream_seconds,
            cert_expiry_seconds,
            applied_revision,
            audit_backlog,
            audit_failures,
            audit_shipped,
            audit_ship_failures,
            policy,
        }
    }

    /// Counts one cut connection (`revoked`, `agent-inactive`, `untrusted`).
    pub fn connection_cut(&self, reason: &'static str) {
        self.connections_cut
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Counts one request.
    pub fn request(&self, direction: &'static str, decision: &'static str, reason: &'static str) {
        self.requests
            .get_or_create(&vec![
                ("direction", direction),
                ("decision", decision),
                ("reason", reason),
            ])
            .inc();
    }

    /// Observes decision latency.
    pub fn decision(&self, seconds: f64) {
        self.decision_seconds.observe(seconds);
    }

    /// Observes upstream latency.
    pub fn upstream(&self, seconds: f64) {
        self.upstream_seconds.observe(seconds);
    }

    /// Marks `version` as the active bundle.
    pub fn set_policy(&self, version: Option<&str>) {
        self.policy.clear();
        self.policy
            .get_or_create(&vec![("version", version.unwrap_or("none").to_owned())])
            .set(1);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
