//! The proxy's own identity: enrollment with a join token, renewal at
//! half-life with a fresh key, and the SVID every handshake presents.
//!
//! Keys are generated here and never leave the process (DESIGN.md §4.3); the
//! server only sees CSRs. Each renewal uses a new key, so a key that leaked
//! stops being useful at the next rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use ward_client::{Client, ClientError, Method};
use ward_core::{AgentName, SpiffeId, TrustDomain};
use ward_identity::tls::SvidResolver;
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, X509Svid};

use crate::ProxyError;
use crate::state::StateDir;

/// Renewal retries back off from this…
const RETRY_MIN: Duration = Duration::from_secs(1);
/// …to this.
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Serialize)]
struct EnrollBody<'a> {
    join_token: &'a str,
    csr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
}

#[derive(Serialize)]
struct RenewBody<'a> {
    csr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
}

/// The server's answer to enroll and renew.
#[derive(Debug, Deserialize)]
pub struct SvidResponse {
    /// Chain, PEM, leaf first.
    pub svid: String,
    /// The trust bundle JSON.
    pub bundle: serde_json::Value,
}

/// The live identity: what handshakes present, and when it expires.
#[derive(Debug)]
pub struct Identity {
    /// `spiffe://<td>/agent/<name>`.
    pub spiffe_id: SpiffeId,
    /// The agent name.
    pub agent: AgentName,
    /// Hands the current SVID to rustls.
    pub resolver: Arc<SvidResolver>,
    current: arc_swap::ArcSwap<(X509Svid, PrivateKey)>,
    not_after: AtomicI64,
    /// When this process obtained the current SVID (unix seconds).
    received: AtomicI64,
    /// Bumped at every rotation; pooled connections made with an older
    /// generation are not reused.
    generation: AtomicU64,
}

impl Identity {
    /// Wraps a key and SVID.
    pub fn new(key: PrivateKey, svid: X509Svid) -> Result<Self, ProxyError> {
        let resolver = Arc::new(
            SvidResolver::new(&svid, &key)
                .map_err(|e| ProxyError::Identity(format!("SVID and key do not match: {e}")))?,
        );
        let spiffe_id = svid.spiffe_id().clone();
        let agent = spiffe_id
            .agent_name()
            .ok_or_else(|| ProxyError::Identity(format!("{spiffe_id} is not an agent identity")))?;
        Ok(Self {
            not_after: AtomicI64::new(svid.leaf().not_after),
            received: AtomicI64::new(crate::now_secs()),
            spiffe_id,
            agent,
            resolver,
            current: arc_swap::ArcSwap::from_pointee((svid, key)),
            generation: AtomicU64::new(0),
        })
    }

    /// Switches every later handshake to `svid`.
    pub fn rotate(&self, key: PrivateKey, svid: X509Svid) -> Result<(), ProxyError> {
        self.resolver
            .rotate(&svid, &key)
            .map_err(|e| ProxyError::Identity(e.to_string()))?;
        self.not_after
            .store(svid.leaf().not_after, Ordering::Release);
        self.received.store(crate::now_secs(), Ordering::Release);
        self.current.store(Arc::new((svid, key)));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Expiry of the current SVID, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after.load(Ordering::Acquire)
    }

    /// Whether the SVID has expired: the proxy then fails closed.
    pub fn expired(&self, now: i64) -> bool {
        now >= self.not_after()
    }

    /// When to renew: half-way through the lifetime left when the SVID was
    /// obtained. (Not `not_before`-based: the CA backdates `not_before` for
    /// clock skew, which would make short SVIDs look half-used at issue.)
    pub fn renew_at(&self) -> i64 {
        let received = self.received.load(Ordering::Acquire);
        received + (self.not_after() - received) / 2
    }

    /// The rotation generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current SVID and key.
    pub fn current(&self) -> Arc<(X509Svid, PrivateKey)> {
        self.current.load_full()
    }
}

fn csr_b64(key: &PrivateKey, id: &SpiffeId) -> Result<String, ProxyError> {
    let csr =
        ward_identity::csr::create(key, id).map_err(|e| ProxyError::Identity(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(csr.as_ref()))
}

fn new_key() -> Result<PrivateKey, ProxyError> {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256)
        .map_err(|e| ProxyError::Identity(format!("generating a key: {e}")))
}

/// Parses a response into an SVID (checked to be `expected`) and bundle.
fn accept(
    resp: SvidResponse,
    expected: &SpiffeId,
    td: &TrustDomain,
) -> Result<(X509Svid, TrustBundle, String), ProxyError> {
    let svid = X509Svid::from_pem(&resp.svid)
        .map_err(|e| ProxyError::Identity(format!("server sent an unusable SVID: {e}")))?;
    if svid.spiffe_id() != expected {
        return Err(ProxyError::Identity(format!(
            "server issued {} but this proxy is {expected}",
            svid.spiffe_id()
        )));
    }
    let text = resp.bundle.to_string();
    let bundle = TrustBundle::from_json(td.clone(), text.as_bytes())
        .map_err(|e| ProxyError::Identity(format!("server sent an unusable bundle: {e}")))?;
    Ok((svid, bundle, text))
}

/// First enrollment: a fresh key, a CSR, the join token.
pub async fn enroll(
    server: &str,
    bundle: &TrustBundle,
    agent: &AgentName,
    token: &str,
    endpoint: Option<&str>,
    state: &StateDir,
) -> Result<(PrivateKey, X509Svid, TrustBundle), ProxyError> {
    let td = bundle.trust_domain.clone();
    let id = td.agent_id(agent);
    let key = new_key()?;
    let body = EnrollBody {
        join_token: token,
        csr: csr_b64(&key, &id)?,
        endpoint,
    };
    let client = Client::new(server, bundle, None).map_err(ProxyError::Client)?;
    let resp: SvidResponse = client
        .call(Method::POST, "/v1/enroll", Some(&body))
        .await
        .map_err(|e| match e {
            ClientError::Problem { status, detail, .. } => ProxyError::Identity(format!(
                "enrollment of {agent} refused ({status}): {detail}; create a new token with `ward token create --agent {agent}`"
            )),
            other => ProxyError::Client(other),
        })?;
    let (svid, bundle, text) = accept(resp, &id, &td)?;
    state.save_identity(&key, &svid)?;
    state.save_bundle(&text)?;
    tracing::info!(spiffe_id = %id, serial = %svid.leaf().serial, not_after = svid.leaf().not_after, "enrolled");
    Ok((key, svid, bundle))
}

/// One renewal with a fresh key.
pub async fn renew_once(
    server: &str,
    bundle: &TrustBundle,
    identity: &Identity,
    endpoint: Option<&str>,
    state: &StateDir,
) -> Result<TrustBundle, ProxyError> {
    let current = identity.current();
    let (svid, key) = (&current.0, &current.1);
    let client = Client::new(server, bundle, Some((svid, key))).map_err(ProxyError::Client)?;
    let next_key = new_key()?;
    let body = RenewBody {
        csr: csr_b64(&next_key, &identity.spiffe_id)?,
        endpoint,
    };
    let resp: SvidResponse = client
        .call(Method::POST, "/v1/renew", Some(&body))
        .await
        .map_err(ProxyError::Client)?;
    let (next, bundle, text) = accept(resp, &identity.spiffe_id, &bundle.trust_domain)?;
    // On disk first: a crash right after still restarts with a valid pair.
    state.save_identity(&next_key, &next)?;
    state.save_bundle(&text)?;
    tracing::info!(serial = %next.leaf().serial, not_after = next.leaf().not_after, "SVID renewed");
    identity.rotate(next_key, next)?;
    Ok(bundle)
}

/// Re-issue attempts after a CA rotation before falling back to half-life.
const MAX_REISSUES: u32 = 10;
/// Spacing of those attempts.
const REISSUE_RETRY: Duration = Duration::from_secs(1);

/// Whether the view names an issuing CA authority other than the one that
/// signed `identity`'s SVID.
fn issued_elsewhere(identity: &Identity, shared: &crate::Shared) -> bool {
    let compiled = shared.compiled();
    let Some(issuing) = compiled.view.issuing.as_deref() else {
        return false;
    };
    let current = identity.current();
    current
        .0
        .chain()
        .get(1)
        .is_some_and(|intermediate| ward_identity::ca::authority_id(intermediate) != issuing)
}

/// Renews at half-life until `stop`, retrying with backoff; a refused
/// renewal (revoked, retired) is retried too — the proxy keeps serving until
/// the SVID expires, then fails closed.
pub async fn renew_loop(
    shared: Arc<crate::Shared>,
    route: Option<Arc<crate::Local>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (identity, state) = match &route {
        Some(local) => (&local.identity, &local.state),
        None => (&shared.identity, &shared.state),
    };
    let mut backoff = RETRY_MIN;
    let mut applied = shared.applied.subscribe();
    let mut reissues = 0u32;
    loop {
        // After a CA rotation the SVID is renewed at once, so the old
        // authority can leave the bundle; a replica that has not switched
        // yet may answer from the old one, hence a few spaced retries.
        let stale = issued_elsewhere(identity, &shared);
        let wait = if stale && reissues < MAX_REISSUES {
            reissues += 1;
            if reissues == 1 {
                Duration::ZERO
            } else {
                REISSUE_RETRY
            }
        } else {
            if !stale {
                reissues = 0;
            }
            let due = identity.renew_at();
            Duration::from_secs(u64::try_from(due - crate::now_secs()).unwrap_or(0))
        };
        let renew_now = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(wait) => true,
            changed = applied.changed() => {
                if changed.is_err() {
                    return;
                }
                issued_elsewhere(identity, &shared) && reissues < MAX_REISSUES
            }
        };
        if !renew_now {
            continue;
        }
        let bundle = shared.trust_bundle();
        match renew_once(
            &shared.config.server,
            &bundle,
            identity,
            Some(shared.advertise()),
            state,
        )
        .await
        {
            Ok(bundle) => {
                shared.set_bundle(bundle);
                backoff = RETRY_MIN;
            }
            Err(e) => {
                let left = identity.not_after() - crate::now_secs();
                tracing::warn!(agent = %identity.agent, error = %e, seconds_left = left, "SVID renewal failed; retrying");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}
