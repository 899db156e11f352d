//! The trust domain's signing authorities, live: which CA issues SVIDs,
//! which roots the trust bundle carries, and CA rotation
//! (`ward ca rotate|activate|retire|status`).
//!
//! A rotation never breaks a connection because trust always widens before
//! issuance moves and narrows only after:
//!
//! 1. **stage** — a new intermediate (under the same root, or under a new
//!    root with `--root`) is added as `staged`: its root joins the bundle,
//!    the watch stream carries the bundle to every proxy, nothing issues
//!    from it yet;
//! 2. **activate** — once every connected proxy has applied the staged
//!    revision (receipts; `ward ca rotate` waits for them), the new
//!    authority issues; the old one becomes `retiring`, still trusted.
//!    Proxies see the new issuing authority in the stream and re-enroll at
//!    once;
//! 3. **retire** — after the old authority's certificates have expired (or
//!    with `--force`), its root leaves the bundle, and the server re-issues
//!    its own SVID from the active authority. (Until then the server keeps
//!    an SVID from the oldest trusted authority, so admin clients holding
//!    the pre-rotation bundle keep working; `ward ca` refreshes the CLI's.)
//!
//! The store holds the certificates and the state (every replica agrees on
//! the bundle); the private keys stay in `DATA_DIR/ca` of the server that
//! generated them (`ca/` for the authority `ward server init` made,
//! `ca/authorities/<id>/` for rotated ones), mode 0600. A replica that lacks
//! the active authority's key keeps issuing from the one it has and says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use ward_core::drain::Watch;
use ward_core::{SpiffeId, TrustDomain};
use ward_identity::ca::{self, CaError, CaOptions, CertificateAuthority};
use ward_identity::tls::SvidResolver;
use ward_identity::verify::TrustStore;
use ward_identity::{TrustBundle, svid};

use crate::store::{AuthorityOp, AuthorityRow, AuthorityState, Store, StoreError};

/// Where rotated authorities live inside the CA directory.
const AUTHORITIES_DIR: &str = "authorities";
/// Coalesces bursts of store changes into one refresh.
const REFRESH_DELAY: Duration = Duration::from_millis(20);

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// Generating, reading or writing CA material failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operation cannot be done on this server.
    #[error("{0}")]
    Unavailable(String),
    /// Stored CA material does not parse.
    #[error("stored CA authority {id}: {reason}")]
    Corrupt {
        /// The authority.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// The authorities as of one revision.
pub struct Current {
    /// Signs new SVIDs.
    pub ca: Arc<CertificateAuthority>,
    /// Its id ([`ca::authority_id`]).
    pub id: String,
    /// Signs the server's own SVID: the oldest authority still trusted
    /// (retiring before active), so clients holding the bundle from before
    /// a rotation keep reaching the server until the old root is retired.
    pub server_ca: Arc<CertificateAuthority>,
    /// Its id.
    pub server_id: String,
    /// Every trusted root.
    pub bundle: Arc<TrustBundle>,
    /// The stored rows (empty for a fixed authority).
    pub rows: Vec<AuthorityRow>,
}

/// One row of `ward ca status`.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorityStatus {
    /// Authority id.
    pub id: String,
    /// Lifecycle state.
    pub state: AuthorityState,
    /// SHA-256 of the root certificate.
    pub root_sha256: String,
    /// Whether the rotation that made it introduced a new root.
    pub new_root: bool,
    /// When the intermediate expires (unix seconds).
    pub intermediate_not_after: i64,
    /// When the root expires (unix seconds).
    pub root_not_after: i64,
    /// Unexpired certificates it signed.
    pub certificates: u64,
    /// Whether this replica holds its private key.
    pub key_here: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub activated_at: Option<i64>,
    /// Unix seconds.
    pub retired_at: Option<i64>,
    /// Revision of its last transition.
    pub revision: u64,
}

/// The live authorities of one server.
pub struct Authorities {
    td: TrustDomain,
    dir: Option<PathBuf>,
    current: ArcSwap<Current>,
    trust: Arc<TrustStore>,
    loaded: Mutex<HashMap<String, Arc<CertificateAuthority>>>,
    issuing: tokio::sync::watch::Sender<String>,
    admin: tokio::sync::Mutex<()>,
    server_svid: Mutex<Option<(SpiffeId, Arc<SvidResolver>)>>,
}

impl std::fmt::Debug for Authorities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorities")
            .field("trust_domain", &self.td)
            .field("issuing", &self.current.load().id)
            .finish_non_exhaustive()
    }
}

impl Authorities {
    /// One authority that never rotates (tests and embedders).
    pub fn fixed(ca: Arc<CertificateAuthority>) -> Result<Arc<Self>, AuthorityError> {
        let td = ca.trust_domain().clone();
        let bundle = TrustBundle::new(td.clone(), vec![ca.root().clone()], vec![]);
        let id = ca::authority_id(ca.intermediate());
        let this = Self::assemble(td, None, Arc::clone(&ca), id.clone(), bundle, Vec::new())?;
        this.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, ca);
        Ok(this)
    }

    /// The authorities of a data directory's CA (`DATA_DIR/ca`) as the store
    /// records them; the first start records the directory's own authority.
    pub async fn open(
        ca_dir: &Path,
        td: TrustDomain,
        store: &Store,
    ) -> Result<Arc<Self>, AuthorityError> {
        let first = Arc::new(CertificateAuthority::load(ca_dir, td.clone())?);
        let id = ca::authority_id(first.intermediate());
        let row = AuthorityRow {
            id: id.clone(),
            root_pem: svid::certs_to_pem(std::slice::from_ref(first.root())),
            intermediate_pem: svid::certs_to_pem(std::slice::from_ref(first.intermediate())),
            state: AuthorityState::Active,
            new_root: true,
            created_at: crate::store::now_ms() / 1000,
            activated_at: None,
            retired_at: None,
            revision: 0,
        };
        if store.bootstrap_authority(&row).await? {
            tracing::info!(authority = %id, "recorded the data directory's CA as the active authority");
        }
        let bundle = TrustBundle::new(td.clone(), vec![first.root().clone()], vec![]);
        let this = Self::assemble(
            td,
            Some(ca_dir.to_owned()),
            first.clone(),
            id.clone(),
            bundle,
            Vec::new(),
        )?;
        this.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, first);
        this.refresh(store).await?;
        Ok(this)
    }

    fn assemble(
        td: TrustDomain,
        dir: Option<PathBuf>,
        ca: Arc<CertificateAuthority>,
        id: String,
        bundle: TrustBundle,
        rows: Vec<AuthorityRow>,
    ) -> Result<Arc<Self>, AuthorityError> {
        let trust = Arc::new(
            TrustStore::new(&bundle).map_err(|e| AuthorityError::Corrupt {
                id: id.clone(),
                reason: e.to_string(),
            })?,
        );
        Ok(Arc::new(Self {
            td,
            dir,
            issuing: tokio::sync::watch::channel(id.clone()).0,
            current: ArcSwap::from_pointee(Current {
                server_ca: Arc::clone(&ca),
                server_id: id.clone(),
                ca,
                id,
                bundle: Arc::new(bundle),
                rows,
            }),
            trust,
            loaded: Mutex::new(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
            server_svid: Mutex::new(None),
        }))
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.td
    }

    /// The authorities now.
    pub fn current(&self) -> Arc<Current> {
        self.current.load_full()
    }

    /// The trust store the server's listener verifies clients with; it
    /// follows every bundle change.
    pub fn trust(&self) -> Arc<TrustStore> {
        Arc::clone(&self.trust)
    }

    /// Changes whenever the authority of the server's own SVID does.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<String> {
        self.issuing.subscribe()
    }

    /// Issues the server's own SVID (`id`, key made here) and keeps it
    /// current: re-issued by every refresh that moves the server's
    /// authority, before that refresh returns — so once a retirement is
    /// acknowledged the server already presents a certificate the narrowed
    /// bundle trusts.
    pub fn attach_server_identity(
        &self,
        id: SpiffeId,
    ) -> Result<Arc<SvidResolver>, AuthorityError> {
        let (svid, key) = issue_server_svid(&self.current().server_ca, &id)?;
        let resolver =
            Arc::new(
                SvidResolver::new(&svid, &key).map_err(|e| AuthorityError::Corrupt {
                    id: "server".to_owned(),
                    reason: e.to_string(),
                })?,
            );
        *self
            .server_svid
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((id, Arc::clone(&resolver)));
        Ok(resolver)
    }

    /// Re-issues the server's SVID from the current server authority.
    pub fn reissue_server_svid(&self) -> Result<(), AuthorityError> {
        let attached = self
            .server_svid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some((id, resolver)) = attached else {
            return Ok(());
        };
        let (svid, key) = issue_server_svid(&self.current().server_ca, &id)?;
        resolver
            .rotate(&svid, &key)
            .map_err(|e| AuthorityError::Corrupt {
                id: "server".to_owned(),
                reason: e.to_string(),
            })
    }

    /// The change payload for the watch stream: the bundle and the issuing
    /// authority as `rows` say.
    pub fn payload(&self, rows: &[AuthorityRow]) -> Result<serde_json::Value, String> {
        let bundle = bundle_of(&self.td, rows).map_err(|e| e.to_string())?;
        let issuing = rows
            .iter()
            .find(|r| r.state == AuthorityState::Active)
            .map(|r| r.id.clone())
            .ok_or("no active CA authority")?;
        wire(&bundle, &issuing)
    }

    /// The bundle and issuing authority as the store has them now, for a
    /// watch snapshot (read from the store, not from memory, so a snapshot
    /// never shows an older bundle than its revision promises).
    pub async fn snapshot(&self, store: &Store) -> Result<BundleChange, AuthorityError> {
        let rows = store.authorities().await?;
        let corrupt = |reason| AuthorityError::Corrupt {
            id: "-".to_owned(),
            reason,
        };
        if rows.is_empty() {
            let current = self.current();
            return bundle_change(&current.bundle, &current.id).map_err(corrupt);
        }
        let bundle = bundle_of(&self.td, &rows)?;
        let issuing = rows
            .iter()
            .find(|r| r.state == AuthorityState::Active)
            .map(|r| r.id.clone())
            .ok_or_else(|| corrupt("no active CA authority".to_owned()))?;
        bundle_change(&bundle, &issuing).map_err(corrupt)
    }

    /// Re-reads the rows and switches bundle, trust store and issuer.
    pub async fn refresh(&self, store: &Store) -> Result<(), AuthorityError> {
        let rows = store.authorities().await?;
        if rows.is_empty() {
            return Ok(());
        }
        let previous = self.current();
        if previous.rows == rows {
            return Ok(());
        }
        let bundle = bundle_of(&self.td, &rows)?;
        let active = rows
            .iter()
            .find(|r| r.state == AuthorityState::Active)
            .ok_or_else(|| AuthorityError::Corrupt {
                id: "-".to_owned(),
                reason: "no authority is active".to_owned(),
            })?;
        let (ca, id) = match self.load(&active.id) {
            Ok(ca) => (ca, active.id.clone()),
            Err(e) => {
                tracing::error!(
                    authority = %active.id,
                    error = %e,
                    "this replica does not hold the active CA authority's key; issuing from {} until it does (copy DATA_DIR/ca/{AUTHORITIES_DIR}/{} from the replica that rotated)",
                    previous.id,
                    active.id
                );
                (previous.ca.clone(), previous.id.clone())
            }
        };
        self.trust
            .update(&bundle)
            .map_err(|e| AuthorityError::Corrupt {
                id: active.id.clone(),
                reason: e.to_string(),
            })?;
        if id != previous.id {
            tracing::info!(authority = %id, "CA authority now issuing");
        }
        // The oldest trusted, non-staged authority this replica can sign
        // with: every client's bundle, old or new, trusts its root.
        let (server_ca, server_id) = rows
            .iter()
            .filter(|r| matches!(r.state, AuthorityState::Retiring | AuthorityState::Active))
            .find_map(|r| self.load(&r.id).ok().map(|ca| (ca, r.id.clone())))
            .unwrap_or_else(|| (Arc::clone(&ca), id.clone()));
        self.current.store(Arc::new(Current {
            ca,
            id,
            server_ca,
            server_id: server_id.clone(),
            bundle: Arc::new(bundle),
            rows,
        }));
        let moved = self.issuing.send_if_modified(|old| {
            if *old == server_id {
                false
            } else {
                *old = server_id;
                true
            }
        });
        if moved {
            self.reissue_server_svid()?;
            tracing::info!("re-issued the server SVID from the oldest trusted CA authority");
        }
        Ok(())
    }

    /// Refreshes after every store change until `watch` signals.
    pub fn follow(self: &Arc<Self>, store: Store, watch: Watch) {
        let this = Arc::clone(self);
        store.clone().on_changes(watch, REFRESH_DELAY, move || {
            let (this, store) = (Arc::clone(&this), store.clone());
            async move {
                if let Err(e) = this.refresh(&store).await {
                    tracing::error!(error = %e, "CA authorities not refreshed; keeping the previous bundle");
                }
            }
        });
    }

    /// Stages a new authority: a new intermediate under the active root, or
    /// with `new_root` a new root and intermediate. Returns the revision
    /// that put it in the bundle and the new row.
    pub async fn rotate(
        &self,
        store: &Store,
        new_root: bool,
        options: &CaOptions,
    ) -> Result<(u64, AuthorityRow), AuthorityError> {
        let _one_at_a_time = self.admin.lock().await;
        let dir = self.dir()?;
        self.refresh(store).await?;
        let current = self.current();
        if let Some(staged) = current
            .rows
            .iter()
            .find(|r| r.state == AuthorityState::Staged)
        {
            return Err(StoreError::Authority(format!(
                "CA authority {} is already staged; activate it (`ward ca activate {}`) or retire it (`ward ca retire {}`) first",
                staged.id, staged.id, staged.id
            ))
            .into());
        }
        let (ca, root_key, key) = if new_root {
            let generated = CertificateAuthority::generate(&self.td, options)?;
            (
                generated.ca,
                Some(generated.root_key),
                generated.intermediate_key,
            )
        } else {
            let root = current.ca.root().clone();
            let root_key = self.root_key(dir, &root)?.ok_or_else(|| {
                AuthorityError::Unavailable(format!(
                    "the active root's private key is not in {}; rotate to a new root with `ward ca rotate --root`, or put the root key back",
                    dir.display()
                ))
            })?;
            let (ca, key) =
                CertificateAuthority::new_intermediate(&self.td, &root, &root_key, options)?;
            (ca, None, key)
        };
        let id = ca::authority_id(ca.intermediate());
        // The keys are on disk before the row exists: a crash in between
        // leaves an unused directory, never a row without its key.
        ca.write_authority(
            &dir.join(AUTHORITIES_DIR).join(&id),
            root_key.as_ref(),
            &key,
        )?;
        let row = AuthorityRow {
            id: id.clone(),
            root_pem: svid::certs_to_pem(std::slice::from_ref(ca.root())),
            intermediate_pem: svid::certs_to_pem(std::slice::from_ref(ca.intermediate())),
            state: AuthorityState::Staged,
            new_root,
            created_at: crate::store::now_ms() / 1000,
            activated_at: None,
            retired_at: None,
            revision: 0,
        };
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), Arc::new(ca));
        let (rev, rows) = store
            .transition_authority(&AuthorityOp::Stage(row), row_now(), |rows| {
                self.payload(rows)
            })
            .await?;
        self.refresh(store).await?;
        let row = rows
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| AuthorityError::Corrupt {
                id,
                reason: "staged row vanished".to_owned(),
            })?;
        tracing::info!(authority = %row.id, new_root, revision = rev, "CA authority staged");
        Ok((rev, row))
    }

    /// Makes a staged (or retiring) authority the issuing one.
    pub async fn activate(&self, store: &Store, id: &str) -> Result<u64, AuthorityError> {
        let _one_at_a_time = self.admin.lock().await;
        self.dir()?;
        // Refuse before the store moves: a replica must not announce an
        // issuer it cannot sign with.
        self.load(id).map_err(|e| {
            AuthorityError::Unavailable(format!(
                "this server cannot activate CA authority {id}: {e}"
            ))
        })?;
        let (rev, _) = store
            .transition_authority(&AuthorityOp::Activate(id.to_owned()), row_now(), |rows| {
                self.payload(rows)
            })
            .await?;
        self.refresh(store).await?;
        tracing::info!(authority = %id, revision = rev, "CA authority activated");
        Ok(rev)
    }

    /// Takes an authority out of the bundle.
    pub async fn retire(
        &self,
        store: &Store,
        id: &str,
        force: bool,
    ) -> Result<u64, AuthorityError> {
        let _one_at_a_time = self.admin.lock().await;
        self.dir()?;
        let (rev, _) = store
            .transition_authority(
                &AuthorityOp::Retire {
                    id: id.to_owned(),
                    force,
                },
                row_now(),
                |rows| self.payload(rows),
            )
            .await?;
        self.refresh(store).await?;
        tracing::warn!(authority = %id, revision = rev, force, "CA authority retired");
        Ok(rev)
    }

    /// `ward ca status`.
    pub async fn status(&self, store: &Store) -> Result<Vec<AuthorityStatus>, AuthorityError> {
        let now = row_now();
        let counts: HashMap<String, u64> = store
            .certificates_by_authority(now)
            .await?
            .into_iter()
            .collect();
        let rows = store.authorities().await?;
        let rows = if rows.is_empty() {
            // A fixed authority (no store rows): describe it alone.
            let current = self.current();
            vec![AuthorityRow {
                id: current.id.clone(),
                root_pem: svid::certs_to_pem(std::slice::from_ref(current.ca.root())),
                intermediate_pem: svid::certs_to_pem(std::slice::from_ref(
                    current.ca.intermediate(),
                )),
                state: AuthorityState::Active,
                new_root: true,
                created_at: 0,
                activated_at: None,
                retired_at: None,
                revision: 0,
            }]
        } else {
            rows
        };
        rows.iter()
            .map(|r| {
                let root = parse_pem(&r.id, &r.root_pem)?;
                let intermediate = parse_pem(&r.id, &r.intermediate_pem)?;
                let not_after = |der: &CertificateDer<'_>| {
                    svid::not_after(der).map_err(|e| AuthorityError::Corrupt {
                        id: r.id.clone(),
                        reason: e.to_string(),
                    })
                };
                Ok(AuthorityStatus {
                    id: r.id.clone(),
                    state: r.state,
                    root_sha256: ca::fingerprint(&root),
                    new_root: r.new_root,
                    intermediate_not_after: not_after(&intermediate)?,
                    root_not_after: not_after(&root)?,
                    certificates: counts.get(&r.id).copied().unwrap_or(0),
                    key_here: self.load(&r.id).is_ok(),
                    created_at: r.created_at,
                    activated_at: r.activated_at,
                    retired_at: r.retired_at,
                    revision: r.revision,
                })
            })
            .collect()
    }

    fn dir(&self) -> Result<&Path, AuthorityError> {
        self.dir.as_deref().ok_or_else(|| {
            AuthorityError::Unavailable(
                "this server has a fixed CA and cannot rotate it".to_owned(),
            )
        })
    }

    /// The CA of authority `id`, from this replica's CA directory.
    fn load(&self, id: &str) -> Result<Arc<CertificateAuthority>, AuthorityError> {
        if let Some(ca) = self
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(Arc::clone(ca));
        }
        let dir = self.dir()?;
        // Ids are hex; anything else never reaches the file system.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthorityError::Unavailable(format!(
                "{id:?} is not a CA authority id"
            )));
        }
        let ca = Arc::new(CertificateAuthority::load(
            &dir.join(AUTHORITIES_DIR).join(id),
            self.td.clone(),
        )?);
        if ca::authority_id(ca.intermediate()) != id {
            return Err(AuthorityError::Corrupt {
                id: id.to_owned(),
                reason: "the intermediate on disk is not this authority's".to_owned(),
            });
        }
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), Arc::clone(&ca));
        Ok(ca)
    }

    /// The private key of `root`, wherever in the CA directory it is.
    fn root_key(
        &self,
        dir: &Path,
        root: &CertificateDer<'static>,
    ) -> Result<Option<ward_identity::PrivateKey>, AuthorityError> {
        let mut candidates = vec![dir.to_owned()];
        if let Ok(entries) = std::fs::read_dir(dir.join(AUTHORITIES_DIR)) {
            candidates.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
        for candidate in candidates {
            if let Ok((cert, Some(key))) = CertificateAuthority::read_root(&candidate)
                && &cert == root
            {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }
}

/// Lifetime of the server's own SVID; it re-issues itself at half-life.
pub const SERVER_SVID_TTL: Duration = Duration::from_secs(3600);

fn issue_server_svid(
    ca: &CertificateAuthority,
    id: &SpiffeId,
) -> Result<(ward_identity::X509Svid, ward_identity::PrivateKey), AuthorityError> {
    let key = ward_identity::PrivateKey::generate(ward_identity::KeyAlgorithm::EcdsaP256)
        .map_err(CaError::from)?;
    let request = ward_identity::csr::create(&key, id).map_err(CaError::from)?;
    let svid = ca.sign_csr(
        &request,
        id,
        SERVER_SVID_TTL,
        time::OffsetDateTime::now_utc(),
    )?;
    Ok((svid, key))
}

fn row_now() -> i64 {
    crate::store::now_ms() / 1000
}

fn parse_pem(id: &str, pem: &str) -> Result<CertificateDer<'static>, AuthorityError> {
    svid::certs_from_pem(pem.as_bytes(), Path::new("<store>"))
        .map_err(|e| AuthorityError::Corrupt {
            id: id.to_owned(),
            reason: e.to_string(),
        })?
        .into_iter()
        .next()
        .ok_or_else(|| AuthorityError::Corrupt {
            id: id.to_owned(),
            reason: "no certificate".to_owned(),
        })
}

/// The bundle `rows` make: every distinct root of a trusted authority, the
/// active one's first; its sequence is the newest row's revision.
fn bundle_of(td: &TrustDomain, rows: &[AuthorityRow]) -> Result<TrustBundle, AuthorityError> {
    let mut ordered: Vec<&AuthorityRow> = rows.iter().filter(|r| r.state.trusted()).collect();
    ordered.sort_by_key(|r| r.state != AuthorityState::Active);
    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    for row in ordered {
        let root = parse_pem(&row.id, &row.root_pem)?;
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    let mut bundle = TrustBundle::new(td.clone(), roots, vec![]);
    bundle.sequence = rows.iter().map(|r| r.revision).max().unwrap_or(1).max(1);
    Ok(bundle)
}

/// What a `bundle` change (and the watch snapshot) carries.
#[derive(Debug, Clone, Serialize)]
pub struct BundleChange {
    /// The trust bundle (SPIFFE bundle JSON).
    pub bundle: serde_json::Value,
    /// The issuing authority.
    pub issuing: String,
}

fn bundle_change(bundle: &TrustBundle, issuing: &str) -> Result<BundleChange, String> {
    let text = bundle.to_json().map_err(|e| e.to_string())?;
    Ok(BundleChange {
        bundle: serde_json::from_str(&text).map_err(|e| e.to_string())?,
        issuing: issuing.to_owned(),
    })
}

fn wire(bundle: &TrustBundle, issuing: &str) -> Result<serde_json::Value, String> {
    serde_json::to_value(bundle_change(bundle, issuing)?).map_err(|e| e.to_string())
}
