//! Following the control plane: the watch stream, applied event by event,
//! persisted as last-known-good, and enforced at once — including on
//! connections that are already open.
//!
//! The stream resumes from the last applied revision on reconnect (any
//! server replica can serve it). While the server is unreachable the proxy
//! keeps enforcing the view it has (DESIGN.md §5); revocations that happened
//! meanwhile arrive, in order, on reconnect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::sync::Notify;
use ward_core::SpiffeId;
use ward_core::drain::Watch;
use ward_identity::TrustBundle;
use ward_identity::verify::{AnyMember, TrustStore, Usage};

use ward_client::WatchEvent;

use crate::Shared;
use crate::view::View;

/// Reconnects back off from this…
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// …to this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Whether a starting proxy has caught up with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Not yet known.
    Pending,
    /// The stream delivered everything the server had when it connected.
    Done,
    /// The server could not be reached; serving the last-known-good view.
    Unreachable,
}

/// Live inbound connections by peer, so a revocation — of the peer, of its
/// agent, or of the authority that issued its certificate — can cut them.
#[derive(Debug, Default)]
pub struct Conns {
    next: AtomicU64,
    map: Arc<Mutex<HashMap<u64, Conn>>>,
    /// Bumped after each trust-bundle change; see [`Conns::register`].
    bundle_generation: AtomicU64,
}

/// The chain a peer presented in its handshake, leaf first.
pub type PeerChain = Arc<[CertificateDer<'static>]>;

/// What an inbound connection's handshake established beyond the peer's
/// identity: the chain it presented and the bundle generation it was
/// verified under, for registering the connection (and its upgrades).
#[derive(Debug, Clone)]
pub struct Presented {
    /// The chain, leaf first.
    pub chain: PeerChain,
    /// [`Conns::bundle_generation`] before the handshake.
    pub generation: u64,
}

#[derive(Debug)]
struct Conn {
    peer: SpiffeId,
    agent: String,
    serial: String,
    chain: PeerChain,
    cut: Arc<Notify>,
    /// Already cut (and audited); its task has yet to deregister it.
    done: bool,
}

/// A connection [`Conns::cut`] closed, and why: each becomes an audit
/// record.
#[derive(Debug)]
pub struct Cut {
    /// The peer.
    pub peer: SpiffeId,
    /// Its certificate serial.
    pub serial: String,
    /// Why it is no longer admitted.
    pub why: String,
    /// The kind of reason, for metrics: `revoked`, `agent-inactive` or
    /// `untrusted`.
    pub kind: &'static str,
}

/// Deregisters a connection when it ends.
#[derive(Debug)]
pub struct ConnGuard {
    id: u64,
    map: Arc<Mutex<HashMap<u64, Conn>>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Conns {
    /// The trust-bundle generation; read it before a handshake and pass it
    /// to [`Conns::register`].
    pub fn bundle_generation(&self) -> u64 {
        self.bundle_generation.load(Ordering::SeqCst)
    }

    /// Records that the trust bundle changed (after the verifier has it).
    pub fn bundle_changed(&self) {
        self.bundle_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Registers a connection from `peer` (agent `agent`, certificate
    /// `serial`) with what its handshake `presented`; the returned notify
    /// fires when it must be cut. `None`: the bundle changed during the
    /// handshake and no longer verifies the chain — refuse the connection.
    /// (A change that lands after this check finds the connection
    /// registered, and cuts it.)
    pub fn register(
        &self,
        peer: &SpiffeId,
        agent: &str,
        serial: &str,
        presented: &Presented,
        trust: &TrustStore,
    ) -> Option<(ConnGuard, Arc<Notify>)> {
        let Presented { chain, generation } = presented;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let cut = Arc::new(Notify::new());
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Conn {
                    peer: peer.clone(),
                    agent: agent.to_owned(),
                    serial: serial.to_owned(),
                    chain: Arc::clone(chain),
                    cut: Arc::clone(&cut),
                    done: false,
                },
            );
        let guard = ConnGuard {
            id,
            map: Arc::clone(&self.map),
        };
        if self.bundle_generation() != *generation && unanchored(chain, trust).is_some() {
            return None;
        }
        Some((guard, cut))
    }

    /// Cuts every connection whose peer `view` no longer admits — and, when
    /// the trust bundle changed, every one whose chain `trust` no longer
    /// verifies; returns them.
    pub fn cut(&self, view: &View, trust: Option<&TrustStore>) -> Vec<Cut> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for conn in map.values_mut().filter(|c| !c.done) {
            let why = if view.is_revoked(&conn.agent, &conn.serial) {
                Some(("its credentials are revoked".to_owned(), "revoked"))
            } else if !view.agents.get(&conn.agent).is_some_and(|a| a.is_active()) {
                Some((
                    match view.agents.get(&conn.agent) {
                        Some(a) => format!("agent {} is {}", conn.agent, a.status),
                        None => format!("agent {} is no longer registered", conn.agent),
                    },
                    "agent-inactive",
                ))
            } else {
                trust
                    .and_then(|t| unanchored(&conn.chain, t))
                    .map(|why| (why, "untrusted"))
            };
            if let Some((why, kind)) = why {
                // `notify_one` keeps a permit, so a connection that is not
                // waiting right now still sees it.
                conn.cut.notify_one();
                conn.done = true;
                out.push(Cut {
                    peer: conn.peer.clone(),
                    serial: conn.serial.clone(),
                    why,
                    kind,
                });
            }
        }
        out
    }
}

/// Why the current trust bundle does not verify `chain` as a client, or
/// `None` when it does.
fn unanchored(chain: &PeerChain, trust: &TrustStore) -> Option<String> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Some("it presented no certificate".to_owned());
    };
    let now = rustls_pki_types::UnixTime::now();
    trust
        .current()
        .verify(leaf, intermediates, Usage::Client, now, &AnyMember)
        .err()
        .map(|e| format!("the trust bundle no longer verifies its certificate: {e}"))
}

/// Follows the watch stream until shutdown.
pub async fn follow(shared: Arc<Shared>, watch: Watch) {
    let signaled = watch.signaled();
    tokio::pin!(signaled);
    let mut backoff = BACKOFF_MIN;
    loop {
        let outcome = tokio::select! {
            _ = &mut signaled => return,
            outcome = session(&shared) => outcome,
        };
        match outcome {
            Ok(applied) => {
                tracing::info!(applied, "watch stream ended by the server; reconnecting");
                if applied > 0 {
                    backoff = BACKOFF_MIN;
                }
            }
            Err(e) => {
                // A proxy starting while the server is down serves its
                // last-known-good view rather than nothing (DESIGN.md §5).
                shared.caught_up.send_if_modified(|state| {
                    let pending = *state == CatchUp::Pending;
                    if pending {
                        *state = CatchUp::Unreachable;
                    }
                    pending
                });
                tracing::warn!(error = %e, "watch stream failed; enforcing the last-known-good view")
            }
        }
        tokio::select! {
            _ = &mut signaled => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection to the stream; returns how many events it applied.
async fn session(shared: &Arc<Shared>) -> Result<u64, String> {
    let client = shared.server_client()?;
    let since = Some(shared.compiled().view.revision).filter(|r| *r > 0);
    let mut stream = client.watch(since).await.map_err(|e| e.to_string())?;
    tracing::info!(since, "watch stream connected");
    let mut applied = 0;
    while let Some(event) = stream.next().await.map_err(|e| e.to_string())? {
        if let WatchEvent::CaughtUp { revision } = event {
            tracing::debug!(revision, "watch stream caught up");
            shared.caught_up.send_replace(CatchUp::Done);
            continue;
        }
        let view = shared.compiled().view.apply(&event)?;
        apply(shared, view);
        applied += 1;
    }
    Ok(applied)
}

/// The audit record of a connection closed (or a tunnel not opened) for
/// `why`: a denied `connect` by the peer.
pub(crate) fn cut_facts(
    resource: &str,
    policy_version: &str,
    peer: SpiffeId,
    serial: String,
    why: &str,
) -> crate::audit::Facts {
    crate::audit::Facts {
        decision_id: crate::http::decision_id(),
        principal: Some(peer),
        action: "connect".to_owned(),
        resource: resource.to_owned(),
        reasons: vec![format!("open connection cut: {why}")],
        policy_version: policy_version.to_owned(),
        serial: Some(serial),
        method: "CONNECT".to_owned(),
        ..crate::audit::Facts::default()
    }
}

/// Records each cut connection as a denied `connect` (in the background:
/// the connections are already closed, and enforcement must not wait for
/// the spool).
fn audit_cuts(shared: &Shared, cuts: Vec<Cut>) {
    if cuts.is_empty() {
        return;
    }
    for cut in &cuts {
        shared.metrics.connection_cut(cut.kind);
    }
    let audit = shared.audit.clone();
    let failures = shared.metrics.audit_failures.clone();
    let resource = format!("Agent::\"{}\"", shared.identity.agent);
    let policy_version = shared
        .compiled()
        .policy_version()
        .unwrap_or("none")
        .to_owned();
    tokio::spawn(async move {
        let all: Vec<crate::audit::Facts> = cuts
            .into_iter()
            .map(|cut| cut_facts(&resource, &policy_version, cut.peer, cut.serial, &cut.why))
            .collect();
        let outcomes = audit
            .write_all(all.iter().map(|facts| (facts, false)))
            .await;
        for outcome in outcomes {
            if let Err(e) = outcome {
                failures.inc();
                tracing::error!(error = %e, "audit record for a cut connection not written");
            }
        }
    });
}

/// Enforces and persists `view`, then reports the revision to the server.
///
/// Enforcement comes first: a revocation must bite before anything else
/// happens. Persisting after it is safe — a crash in between restarts with
/// the older view and the stream re-delivers the change.
pub fn apply(shared: &Shared, view: View) {
    let old = shared.compiled();
    let bundle_changed = old.view.bundle != view.bundle;
    // An authority left the bundle (`ward ca retire`): what it issued must
    // stop working now, not when pooled connections happen to close.
    let mut authority_removed = false;
    if bundle_changed {
        match ward_core::TrustDomain::new(&view.trust_domain)
            .map_err(|e| e.to_string())
            .and_then(|td| {
                TrustBundle::from_json(td, view.bundle.to_string().as_bytes())
                    .map_err(|e| e.to_string())
            }) {
            Ok(bundle) => {
                authority_removed = shared
                    .trust_bundle()
                    .x509_authorities
                    .iter()
                    .any(|a| !bundle.x509_authorities.contains(a));
                shared.set_bundle(bundle);
            }
            Err(e) => tracing::error!(error = %e, "trust bundle from the server refused"),
        }
    }
    let revision = view.revision;
    let compiled = old.after(view);
    if compiled.policy_version() != old.policy_version() {
        tracing::info!(
            version = compiled.policy_version().unwrap_or("none"),
            "policy bundle activated"
        );
    }
    // New requests see the new view first; then open connections of
    // refused peers are cut.
    shared.install(compiled);
    let now = shared.compiled();
    let cut = shared
        .conns
        .cut(&now.view, bundle_changed.then_some(&*shared.trust));
    // Pooled connections to other proxies were verified against the old
    // bundle too: when it lost an authority they are all dropped, and the
    // next call verifies a fresh handshake against the new one.
    let evicted = if authority_removed {
        shared.peers.evict_all()
    } else {
        shared.peers.evict(&now.view)
    };
    if !cut.is_empty() || evicted > 0 {
        tracing::warn!(
            revision,
            cut = cut.len(),
            evicted,
            "connections of refused peers closed"
        );
        audit_cuts(shared, cut);
    }
    match serde_json::to_vec(&now.view) {
        Ok(bytes) => {
            if let Err(e) = shared.state.save_view(&bytes) {
                tracing::error!(error = %e, "could not persist the view; enforcing it anyway");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not serialise the view"),
    }
    shared.applied.send_replace(revision);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use ward_core::TrustDomain;
    use ward_testkit::{LeafSpec, TestPki};

    use super::*;
    use crate::view::AgentEntry;

    fn trust(pki: &TestPki) -> TrustStore {
        let td = TrustDomain::new("example.org").unwrap();
        TrustStore::new(&TrustBundle::new(td, vec![pki.root().clone()], vec![])).unwrap()
    }

    fn view_with_a() -> View {
        let mut view = View::default();
        view.agents.insert(
            "a".to_owned(),
            AgentEntry {
                status: "active".to_owned(),
                ..AgentEntry::default()
            },
        );
        view
    }

    fn presented(pki: &TestPki, generation: u64) -> Presented {
        let leaf = pki.leaf(&LeafSpec::svid("spiffe://example.org/agent/a"));
        Presented {
            chain: leaf.chain.into(),
            generation,
        }
    }

    fn agent_a() -> SpiffeId {
        SpiffeId::new("spiffe://example.org/agent/a").unwrap()
    }

    /// `conns` with one connection of `a`, whose chain `pki` issued.
    fn one_connection(pki: &TestPki) -> (Conns, ConnGuard) {
        let conns = Conns::default();
        let (guard, _cut) = conns
            .register(&agent_a(), "a", "01", &presented(pki, 0), &trust(pki))
            .unwrap();
        (conns, guard)
    }

    #[test]
    fn a_connection_is_cut_and_reported_once() {
        let pki = TestPki::new("example.org");
        let (conns, _guard) = one_connection(&pki);
        let mut view = view_with_a();
        assert!(conns.cut(&view, Some(&trust(&pki))).is_empty());
        view.revoked_agents.insert("a".to_owned());
        let cut = conns.cut(&view, None);
        assert_eq!(cut.len(), 1);
        assert_eq!(
            (cut[0].kind, cut[0].why.as_str()),
            ("revoked", "its credentials are revoked")
        );
        // A later view change before the connection's task has gone does
        // not cut (nor audit) it again.
        assert!(conns.cut(&view, None).is_empty());
    }

    #[test]
    fn a_bundle_that_no_longer_verifies_the_chain_cuts_it_or_refuses_it() {
        let old = TestPki::new("example.org");
        let new = TestPki::new("example.org");
        let (conns, _guard) = one_connection(&old);
        let a = agent_a();
        let view = view_with_a();
        let cut = conns.cut(&view, Some(&trust(&new)));
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].kind, "untrusted");
        assert!(
            cut[0]
                .why
                .starts_with("the trust bundle no longer verifies"),
            "{}",
            cut[0].why
        );

        // A handshake verified before a bundle change that registers after
        // the watcher's sweep is refused at registration...
        let racing = presented(&old, conns.bundle_generation());
        conns.bundle_changed();
        assert!(
            conns
                .register(&a, "a", "02", &racing, &trust(&new))
                .is_none()
        );
        // ...unless the new bundle still verifies it.
        let racing = presented(&new, 0);
        assert!(
            conns
                .register(&a, "a", "03", &racing, &trust(&new))
                .is_some()
        );
    }
}
