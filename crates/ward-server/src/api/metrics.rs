//! `GET /metrics`: the control plane's Prometheus metrics — revision, the
//! fleet's receipts (applied revision and lag per proxy), agents by status,
//! CA authorities by state and the audit log's size.
//!
//! Everything is read from the store at scrape time, so every replica
//! reports the same fleet. Per-proxy series are labelled by agent name:
//! cardinality is bounded by the registry, not by requests. The endpoint
//! is an admin call (`server/metrics`; the default policy allows
//! ward-admins, and an operator may permit a monitoring agent's SVID).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{ApiError, AppState, Caller, require_admin};

type Labels = Vec<(&'static str, String)>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn family(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    registry.register(name, help, f.clone());
    f
}

fn set(f: &Family<Labels, Gauge>, labels: Labels, value: u64) {
    f.get_or_create(&labels)
        .set(i64::try_from(value).unwrap_or(i64::MAX));
}

pub(crate) async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &caller, "server/metrics", None).await?;
    let mut registry = Registry::with_prefix("ward_server");
    gauge(
        &mut registry,
        "revision",
        "Latest committed control-plane revision",
        state.store.revision().await?,
    );
    gauge(
        &mut registry,
        "audit_tree_size",
        "Entries in the audit log's Merkle tree",
        *state.audit.size().borrow(),
    );

    let agents = family(&mut registry, "agents", "Registered agents by status");
    for (status, n) in state.store.agent_counts().await? {
        set(&agents, vec![("status", status.to_string())], n);
    }

    let proxies = super::proxies::proxies(&state).await?;
    let fleet = family(
        &mut registry,
        "proxies",
        "Proxies of active or quarantined agents, by whether they reported in the last 15 s",
    );
    let connected = proxies.iter().filter(|p| p.connected).count() as u64;
    set(&fleet, vec![("state", "connected".into())], connected);
    set(
        &fleet,
        vec![("state", "disconnected".into())],
        proxies.len() as u64 - connected,
    );
    let applied = family(
        &mut registry,
        "proxy_applied_revision",
        "Revision each proxy reported enforcing",
    );
    let lag = family(
        &mut registry,
        "proxy_lag_revisions",
        "How many revisions each proxy is behind the store",
    );
    let since = family(
        &mut registry,
        "proxy_seconds_since_report",
        "Seconds since each proxy last reported",
    );
    let now = crate::store::now_ms();
    for p in &proxies {
        let labels = vec![("agent", p.agent.clone())];
        set(&applied, labels.clone(), p.revision);
        set(&lag, labels.clone(), p.lag);
        set(
            &since,
            labels,
            u64::try_from(now.saturating_sub(p.seen_at) / 1000).unwrap_or(0),
        );
    }

    let authorities = family(&mut registry, "ca_authorities", "CA authorities by state");
    for a in state.store.authorities().await? {
        authorities
            .get_or_create(&vec![("state", a.state.to_string())])
            .inc();
    }

    let mut out = String::new();
    encode(&mut out, &registry).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    ))
}
