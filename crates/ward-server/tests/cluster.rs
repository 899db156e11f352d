//! Whole servers over real mutual TLS on 127.0.0.1, on both backends:
//! enroll → renew → retire through the client library, the watch stream
//! resuming from a revision across a restart, and — on PostgreSQL — two
//! replicas sharing one database, each streaming changes written through
//! the other.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use ward_client::{Client, Method, WatchEvent, WatchStream};
use ward_core::drain;
use ward_core::{SpiffeId, TrustDomain};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, X509Svid, csr};
use ward_server::api::enroll::SvidResponse;
use ward_server::data_dir::DataDir;
use ward_server::server::{self, RunOptions};

struct Node {
    addr: SocketAddr,
    trigger: drain::Trigger,
}

struct Cluster {
    dir: DataDir,
    store: Option<String>,
    bundle: TrustBundle,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    async fn new(store: Option<String>) -> Self {
        ward_identity::provider::install_default();
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        let td = TrustDomain::new("ward.test").unwrap();
        dir.init(&td, store.as_deref(), KeyAlgorithm::EcdsaP256)
            .await
            .unwrap();
        let bundle = TrustBundle::read(td, &dir.bundle_path()).unwrap();
        Self {
            dir,
            store,
            bundle,
            _tmp: tmp,
        }
    }

    async fn start(&self) -> Node {
        self.try_start().await.unwrap()
    }

    async fn try_start(&self) -> Result<Node, String> {
        let (trigger, watch) = drain::channel();
        let addr = server::start(
            RunOptions {
                data_dir: self.dir.clone(),
                store_url: self.store.clone(),
                listen: "127.0.0.1:0".parse().unwrap(),
                svid_ttl: Duration::from_secs(600),
                policy_dir: None,
            },
            watch,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Node { addr, trigger })
    }

    fn admin(&self, node: &Node) -> Client {
        let (cert, key) = self.dir.admin_files();
        let svid = X509Svid::read_pem(&cert).unwrap();
        let key = PrivateKey::read_pem(&key).unwrap();
        Client::new(&node.addr.to_string(), &self.bundle, Some((&svid, &key))).unwrap()
    }

    fn anonymous(&self, node: &Node) -> Client {
        Client::new(&node.addr.to_string(), &self.bundle, None).unwrap()
    }
}

fn csr_b64(key: &PrivateKey, id: &str) -> String {
    let der = csr::create(key, &SpiffeId::new(id).unwrap()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(der.as_ref())
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no watch event within 10 s")
        .unwrap()
        .expect("stream ended")
}

/// Skips events until a change about `subject` arrives.
async fn change_for(stream: &mut WatchStream, subject: &str) -> (u64, Value) {
    loop {
        if let WatchEvent::Change { revision, data } = next_event(stream).await
            && data["subject"] == subject
        {
            return (revision, data);
        }
    }
}

async fn lifecycle(cluster: Cluster) {
    let node = cluster.start().await;
    let admin = cluster.admin(&node);
    let _: Value = admin
        .call(
            Method::POST,
            "/v1/agents",
            Some(&json!({"name": "planner", "attributes": {"team": "research"}})),
        )
        .await
        .unwrap();
    let token: Value = admin
        .call(
            Method::POST,
            "/v1/agents/planner/tokens",
            Some(&json!({"ttl_secs": 60})),
        )
        .await
        .unwrap();
    let id = "spiffe://ward.test/agent/planner";

    // Enroll: join token + CSR, no client certificate.
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let enrolled: SvidResponse = cluster
        .anonymous(&node)
        .call(
            Method::POST,
            "/v1/enroll",
            Some(&json!({"join_token": token["token"], "csr": csr_b64(&key, id)})),
        )
        .await
        .unwrap();
    assert_eq!(enrolled.spiffe_id.as_str(), id);
    let svid = X509Svid::from_pem(&enrolled.svid).unwrap();

    // The token was single use.
    let again = cluster
        .anonymous(&node)
        .call::<SvidResponse>(
            Method::POST,
            "/v1/enroll",
            Some(&json!({"join_token": token["token"], "csr": csr_b64(&key, id)})),
        )
        .await
        .unwrap_err();
    assert!(again.is_refusal(), "{again}");

    // Renew with the current SVID and a new key.
    let agent = Client::new(&node.addr.to_string(), &cluster.bundle, Some((&svid, &key))).unwrap();
    let next_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let renewed: SvidResponse = agent
        .call(
            Method::POST,
            "/v1/renew",
            Some(&json!({"csr": csr_b64(&next_key, id)})),
        )
        .await
        .unwrap();
    assert_ne!(renewed.serial, enrolled.serial);

    // An agent is not an admin.
    let e = agent.get::<Value>("/v1/agents").await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");

    // Retire: renewal is refused from then on.
    let retired: Value = admin
        .call(Method::POST, "/v1/agents/planner/retire", None::<&()>)
        .await
        .unwrap();
    assert_eq!(retired["status"], "retired");
    let refused = agent
        .call::<SvidResponse>(
            Method::POST,
            "/v1/renew",
            Some(&json!({"csr": csr_b64(&next_key, id)})),
        )
        .await
        .unwrap_err();
    assert!(refused.is_refusal(), "{refused}");
    assert!(refused.to_string().contains("retired"), "{refused}");

    let status: Value = admin.get("/v1/status").await.unwrap();
    assert_eq!(status["agents"]["retired"], 1);
    node.trigger.drain(Duration::from_secs(5)).await;
}

async fn resume_across_restart(cluster: Cluster) {
    let node = cluster.start().await;
    let admin = cluster.admin(&node);
    let mut stream = admin.watch(None).await.unwrap();
    let WatchEvent::Snapshot { revision: r0, .. } = next_event(&mut stream).await else {
        panic!("first event must be the snapshot");
    };
    let _: Value = admin
        .call(Method::POST, "/v1/agents", Some(&json!({"name": "alpha"})))
        .await
        .unwrap();
    let (r1, _) = change_for(&mut stream, "alpha").await;
    assert!(r1 > r0);

    // Shutdown ends the stream cleanly (so the drain does not wait for it).
    let outcome = node.trigger.drain(Duration::from_secs(5)).await;
    assert_eq!(outcome, drain::Outcome::Complete);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");

    // While nobody watches, a change lands; the restarted server (a new
    // process would see the same store) resumes from r1 without a snapshot.
    let node = cluster.start().await;
    let admin = cluster.admin(&node);
    let _: Value = admin
        .call(Method::POST, "/v1/agents", Some(&json!({"name": "beta"})))
        .await
        .unwrap();
    let mut stream = admin.watch(Some(r1)).await.unwrap();
    match next_event(&mut stream).await {
        WatchEvent::Change { revision, data } => {
            assert!(revision > r1);
            assert_eq!(data["subject"], "beta");
        }
        other => panic!("resume must not start with a snapshot: {other:?}"),
    }
    node.trigger.drain(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_sqlite() {
    lifecycle(Cluster::new(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_postgres() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    lifecycle(Cluster::new(Some(url)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_sqlite() {
    resume_across_restart(Cluster::new(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_postgres() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    resume_across_restart(Cluster::new(Some(url)).await).await;
}

/// Two replicas on one PostgreSQL database: a change written through either
/// reaches the watchers of both (LISTEN/NOTIFY wakes the other replica; the
/// shared change log supplies the data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_stream_each_others_changes() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    let cluster = Cluster::new(Some(url)).await;
    let a = cluster.start().await;
    let b = cluster.start().await;
    let admin_a = cluster.admin(&a);
    let admin_b = cluster.admin(&b);
    let mut watch_a = admin_a.watch(None).await.unwrap();
    let mut watch_b = admin_b.watch(None).await.unwrap();
    assert!(matches!(
        next_event(&mut watch_a).await,
        WatchEvent::Snapshot { .. }
    ));
    assert!(matches!(
        next_event(&mut watch_b).await,
        WatchEvent::Snapshot { .. }
    ));

    let _: Value = admin_a
        .call(Method::POST, "/v1/agents", Some(&json!({"name": "via-a"})))
        .await
        .unwrap();
    let (ra, _) = change_for(&mut watch_b, "via-a").await;
    let (ra2, _) = change_for(&mut watch_a, "via-a").await;
    assert_eq!(ra, ra2, "both replicas report the same revision");

    let _: Value = admin_b
        .call(Method::POST, "/v1/agents", Some(&json!({"name": "via-b"})))
        .await
        .unwrap();
    let (rb, _) = change_for(&mut watch_a, "via-b").await;
    assert!(rb > ra);

    // A client that loses replica B resumes on replica A from its revision.
    b.trigger.drain(Duration::from_secs(5)).await;
    let _: Value = admin_a
        .call(
            Method::POST,
            "/v1/agents",
            Some(&json!({"name": "after-b"})),
        )
        .await
        .unwrap();
    let mut resumed = admin_a.watch(Some(rb)).await.unwrap();
    match next_event(&mut resumed).await {
        WatchEvent::Change { data, .. } => assert_eq!(data["subject"], "after-b"),
        other => panic!("expected the missed change, got {other:?}"),
    }
    a.trigger.drain(Duration::from_secs(5)).await;
}

/// The audit log never changes signing keys behind its auditors' backs: a
/// server whose data directory lost the key, or holds another one (a
/// replica initialised on its own), refuses to start, names the key that
/// signed the log, and makes no key; with the right key it starts.
async fn audit_key_is_the_logs_own(cluster: Cluster) {
    // One entry (an admin shipping records is refused, and the refusal is
    // logged), then wait for a checkpoint that covers it.
    let node = cluster.start().await;
    let admin = cluster.admin(&node);
    let refused: Result<Value, _> = admin
        .call(Method::POST, "/v1/audit/records?first_seq=0", None::<&()>)
        .await;
    assert!(refused.is_err());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let info: Value = admin.get("/v1/audit").await.unwrap();
        let signed = info["checkpoint"]
            .as_str()
            .and_then(|c| c.lines().nth(1))
            .is_some_and(|size| size != "0");
        if signed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.trigger.drain(Duration::from_secs(5)).await;
    let key = cluster.dir.root().join("audit-signing.key");
    let kept = cluster.dir.root().join("audit-signing.key.kept");
    std::fs::rename(&key, &kept).unwrap();

    let missing = cluster
        .try_start()
        .await
        .err()
        .expect("started without the key");
    assert!(
        missing.contains("audit-signing.key is missing"),
        "{missing}"
    );
    assert!(missing.contains("ward.test/ward-audit"), "{missing}");
    assert!(!key.exists(), "a new key was made for a signed log");

    // Another directory's key (same trust domain, so the same key name).
    let other = tempfile::tempdir().unwrap();
    let td = TrustDomain::new("ward.test").unwrap();
    ward_server::audit::signing_key(other.path(), &td).unwrap();
    std::fs::copy(other.path().join("audit-signing.key"), &key).unwrap();
    let wrong = cluster
        .try_start()
        .await
        .err()
        .expect("started with another key");
    assert!(wrong.contains("does not verify with"), "{wrong}");
    assert!(
        wrong.contains("it was signed by key ward.test/ward-audit"),
        "{wrong}"
    );

    std::fs::rename(&kept, &key).unwrap();
    let node = cluster.start().await;
    node.trigger.drain(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_key_is_the_logs_own_sqlite() {
    audit_key_is_the_logs_own(Cluster::new(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_key_is_the_logs_own_postgres() {
    let Some(url) = common::postgres_url().await else {
        return;
    };
    audit_key_is_the_logs_own(Cluster::new(Some(url)).await).await;
}
