//! Starting the control plane: load the data directory, open the store,
//! give the server its own SVID (rotated at half-life), and serve the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use ward_core::SpiffeId;
use ward_core::drain::Watch;
use ward_identity::tls::{self, ClientAuth};
use ward_identity::verify::AnyMember;

use crate::api::{self, AppState};
use crate::authority::{Authorities, AuthorityError};
use crate::data_dir::{DataDir, DataDirError};
use crate::store::Store;

/// Lifetime of the server's own SVID; it re-issues itself at half-life.
pub use crate::authority::SERVER_SVID_TTL;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The initialised data directory.
    pub data_dir: DataDir,
    /// Store URL; the data directory's SQLite file when `None`.
    pub store_url: Option<String>,
    /// Address for the API.
    pub listen: SocketAddr,
    /// Lifetime of agent SVIDs.
    pub svid_ttl: Duration,
    /// Policy bundle directory (`*.cedar`, optional `schema.cedarschema`)
    /// loaded beside Ward's admin policy; `None` = the admin policy only.
    pub policy_dir: Option<std::path::PathBuf>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Data directory problem.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}; is another server running there?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] ward_identity::tls::TlsError),
    /// Trust bundle unusable.
    #[error(transparent)]
    Verify(#[from] ward_identity::verify::VerifyError),
    /// The audit log could not open (a damaged log stops the server rather
    /// than running it without one).
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The CA authorities could not be loaded.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The policy bundle or the entities built from the registry.
    #[error(transparent)]
    Policy(#[from] crate::policy::PdpError),
}

/// Starts serving; returns the bound address. Everything spawned stops when
/// `watch` signals.
pub async fn start(options: RunOptions, watch: Watch) -> Result<SocketAddr, ServerError> {
    let dir = &options.data_dir;
    let td = dir.trust_domain()?;
    let url = options
        .store_url
        .clone()
        .unwrap_or_else(|| dir.sqlite_url());
    let store = Store::open(&url).await.map_err(DataDirError::from)?;
    store
        .listen(&url, watch.clone())
        .await
        .map_err(DataDirError::from)?;
    // Policy loads before anything listens: an invalid bundle stops the
    // server instead of running it with no admin policy (fail closed).
    let pdp = Arc::new(crate::policy::Pdp::load(options.policy_dir.as_deref())?);
    pdp.refresh(&store).await?;
    pdp.follow(store.clone(), watch.clone());
    let authorities = Authorities::open(&dir.ca_dir(), td.clone(), &store).await?;
    authorities.follow(store.clone(), watch.clone());
    let server_id = SpiffeId::new(&format!("spiffe://{td}/ward/server"))
        .map_err(|e| DataDirError::Bundle(e.to_string()))?;
    let resolver = authorities.attach_server_identity(server_id.clone())?;
    // The listener's trust store follows CA rotation: a new root is trusted
    // from the revision that staged it.
    let config = tls::server_config_with(
        resolver.clone(),
        authorities.trust(),
        Arc::new(AnyMember),
        ClientAuth::Optional,
    )?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: options.listen,
        source,
    })?;
    // The embedded default sequences in this process on tiles in the data
    // directory; replicas of a shared PostgreSQL elect one sequencer and
    // keep the tiles in the database (audit::shared).
    let audit = match store.backend() {
        crate::store::Backend::Sqlite => crate::audit::AuditLog::open_in(dir.root(), &td)?,
        crate::store::Backend::Postgres => {
            let open_err = |reason: String| crate::audit::AuditError::Open {
                dir: dir.root().display().to_string(),
                reason,
            };
            // Every replica must sign with the key that signed the shared
            // log so far (see `signing_key_for_log`).
            let checkpoint =
                crate::audit_db::DbTileStore::new(&store, tokio::runtime::Handle::current())
                    .read_async(&ward_audit::LogPath::Checkpoint)
                    .await
                    .map_err(|e| open_err(format!("reading the shared log's checkpoint: {e}")))?;
            let signer = crate::audit::signing_key_for_log(dir.root(), &td, checkpoint.as_deref())
                .map_err(open_err)?;
            let origin = ward_audit::checkpoint::Origin::new(signer.verifier().name().as_str())
                .map_err(|e| crate::audit::AuditError::Open {
                    dir: dir.root().display().to_string(),
                    reason: format!("origin: {e}"),
                })?;
            crate::audit::shared::open(
                &store,
                origin,
                &signer,
                crate::audit::shared::LEASE_TTL,
                watch.clone(),
            )?
        }
    };
    crate::audit::index::follow(audit.clone(), store.clone(), watch.clone());
    let stopping = Arc::new(tokio::sync::watch::channel(false).0);
    let state = AppState {
        store,
        authorities: authorities.clone(),
        svid_ttl: options.svid_ttl,
        stopping,
        started: std::time::Instant::now(),
        pdp,
        policy_signer: Arc::new(dir.policy_signer()?),
        audit: audit.clone(),
        server_id: server_id.clone(),
    };
    // Turns the drain signal into a flag the watch streams can poll without
    // each holding a drain guard (which would make the drain wait for them).
    let signal = watch.clone();
    let stop = state.stopping.clone();
    tokio::spawn(async move {
        let release = signal.signaled().await;
        stop.send_replace(true);
        // The sequencer signs a last checkpoint; holding the drain guard
        // until it has makes a clean shutdown leave a current checkpoint.
        let _ = tokio::task::spawn_blocking(move || audit.stop()).await;
        drop(release);
    });
    tokio::spawn(rotate_server_svid(authorities, watch.clone()));
    tokio::spawn(crate::listener::serve(
        listener,
        Arc::new(config),
        api::router(state),
        watch,
    ));
    tracing::info!(%addr, "ward server listening");
    Ok(addr)
}

async fn rotate_server_svid(authorities: Arc<Authorities>, watch: Watch) {
    let shutdown = watch.signaled();
    tokio::pin!(shutdown);
    loop {
        // Half-life; a CA rotation re-issues it on its own (Authorities).
        tokio::select! {
            _ = &mut shutdown => return,
            () = tokio::time::sleep(SERVER_SVID_TTL / 2) => {}
        }
        match authorities.reissue_server_svid() {
            Ok(()) => tracing::info!("rotated the server SVID"),
            Err(e) => tracing::error!(error = %e, "server SVID rotation failed"),
        }
    }
}
