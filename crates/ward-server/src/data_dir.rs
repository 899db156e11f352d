//! The server's data directory: what `ward server init` creates and
//! `ward server run` reads.
//!
//! ```text
//! DIR/
//!   trust-domain          the trust domain name
//!   ward.db               SQLite store (unless --store names PostgreSQL)
//!   bundle.json           SPIFFE trust bundle
//!   ca/                   root + intermediate certificates and keys (0600), dir 0700,
//!                         and its own trust-domain file (usable by `ward svid mint --ca-dir`)
//!   admin/svid.pem        the first admin's SVID (spiffe://<td>/admin/admin)
//!   admin/svid.key.pem    its key (0600)
//!   admin/client.toml     the admin CLI's config (written by the `ward` binary)
//!   policy-signing.key.pem  Ed25519 key signing pushed policy versions (0600)
//!   audit-signing.key     Ed25519 signed-note key of the audit log's checkpoints (0600)
//!   audit/                the audit log's tiles (C2SP tlog-tiles layout; SQLite store only)
//! ```

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use ward_core::{SpiffeId, TrustDomain};
use ward_identity::ca::{CaError, CaOptions, CertificateAuthority};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, csr};

use crate::store::{Store, StoreError};

/// Lifetime of the first admin's SVID: long enough to set things up.
pub const ADMIN_SVID_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Why a data directory could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// `init` on a directory that already holds a server.
    #[error(
        "{0} already holds a Ward server; use `ward server run --data-dir {0}` or choose another directory"
    )]
    Exists(PathBuf),
    /// `run` on a directory without one.
    #[error(
        "{0} holds no Ward server (no trust-domain file); create one with `ward server init --data-dir {0}`"
    )]
    Missing(PathBuf),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The trust-domain file does not parse.
    #[error("{path}: {reason}")]
    BadTrustDomain {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// CA failure.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bundle encoding.
    #[error("trust bundle: {0}")]
    Bundle(String),
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What `init` produced.
#[derive(Debug)]
pub struct Initialized {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// The first admin's SPIFFE ID.
    pub admin_id: SpiffeId,
}

impl DataDir {
    /// A data directory at `root` (not touched yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CA directory.
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// The default (SQLite) store URL.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.root.join("ward.db").display())
    }

    /// The bundle file.
    pub fn bundle_path(&self) -> PathBuf {
        self.root.join("bundle.json")
    }

    /// The first admin's SVID and key files.
    pub fn admin_files(&self) -> (PathBuf, PathBuf) {
        (
            self.root.join("admin/svid.pem"),
            self.root.join("admin/svid.key.pem"),
        )
    }

    fn td_path(&self) -> PathBuf {
        self.root.join("trust-domain")
    }

    /// Creates the trust domain, CA, store, bundle and first admin.
    pub async fn init(
        &self,
        td: &TrustDomain,
        store_url: Option<&str>,
        algorithm: KeyAlgorithm,
    ) -> Result<Initialized, DataDirError> {
        if self.td_path().exists() {
            return Err(DataDirError::Exists(self.root.clone()));
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DataDirError::Io { path, source }
        };
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let generated = CertificateAuthority::generate(
            td,
            &CaOptions {
                algorithm,
                ..CaOptions::default()
            },
        )?;
        CertificateAuthority::write(&generated, &self.ca_dir())?;
        // The CA directory is self-describing, like one `ward ca init`
        // makes, so offline tools (`ward svid mint --ca-dir`) work on it.
        let ca_td = self.ca_dir().join("trust-domain");
        ward_identity::keys::write_file_atomic(&ca_td, format!("{td}\n").as_bytes(), 0o644)
            .map_err(io(&ca_td))?;
        let bundle = TrustBundle::new(td.clone(), vec![generated.ca.root().clone()], vec![]);
        let json = bundle
            .to_json()
            .map_err(|e| DataDirError::Bundle(e.to_string()))?;
        let bundle_path = self.bundle_path();
        ward_identity::keys::write_file_atomic(&bundle_path, json.as_bytes(), 0o644)
            .map_err(io(&bundle_path))?;

        let store = Store::open(store_url.unwrap_or(&self.sqlite_url())).await?;
        let admin_id = SpiffeId::new(&format!("spiffe://{td}/admin/admin")).map_err(|e| {
            DataDirError::BadTrustDomain {
                path: self.td_path(),
                reason: e.to_string(),
            }
        })?;
        let now = OffsetDateTime::now_utc();
        store
            .add_admin(&admin_id, "admin", now.unix_timestamp())
            .await?;
        store.close().await;

        // The admin key is made here, in the operator's process, and stays
        // in this directory; the CA signs its CSR like any other.
        let admin_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).map_err(CaError::from)?;
        let request = csr::create(&admin_key, &admin_id).map_err(CaError::from)?;
        let svid = generated
            .ca
            .sign_csr(&request, &admin_id, ADMIN_SVID_TTL, now)?;
        let (cert_path, key_path) = self.admin_files();
        let admin_dir = self.root.join("admin");
        std::fs::create_dir_all(&admin_dir).map_err(io(&admin_dir))?;
        ward_identity::keys::write_file_atomic(&cert_path, svid.to_pem().as_bytes(), 0o644)
            .map_err(io(&cert_path))?;
        admin_key.write_pem(&key_path).map_err(CaError::from)?;

        // The audit log's checkpoint key, made now so that replicas started
        // from copies of this directory all sign with the same key.
        crate::audit::signing_key(&self.root, td).map_err(|reason| DataDirError::Io {
            path: self.root.join("audit-signing.key"),
            source: std::io::Error::other(reason),
        })?;

        // Written last: its presence marks a complete data directory.
        let td_path = self.td_path();
        ward_identity::keys::write_file_atomic(&td_path, format!("{td}\n").as_bytes(), 0o644)
            .map_err(io(&td_path))?;
        Ok(Initialized {
            trust_domain: td.clone(),
            admin_id,
        })
    }

    /// The server's policy-signing key (Ed25519, 0600), created on first
    /// use so data directories from before policy push keep working.
    pub fn policy_signer(&self) -> Result<PrivateKey, DataDirError> {
        let path = self.root.join("policy-signing.key.pem");
        if path.exists() {
            return Ok(PrivateKey::read_pem(&path).map_err(CaError::from)?);
        }
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).map_err(CaError::from)?;
        key.write_pem(&path).map_err(CaError::from)?;
        Ok(key)
    }

    /// The trust domain of an initialised directory.
    pub fn trust_domain(&self) -> Result<TrustDomain, DataDirError> {
        let path = self.td_path();
        let text =
            std::fs::read_to_string(&path).map_err(|_| DataDirError::Missing(self.root.clone()))?;
        TrustDomain::new(text.trim()).map_err(|e| DataDirError::BadTrustDomain {
            path,
            reason: e.to_string(),
        })
    }

    /// Loads the CA and bundle of an initialised directory.
    pub fn load_ca(&self) -> Result<(CertificateAuthority, TrustBundle), DataDirError> {
        let td = self.trust_domain()?;
        let ca = CertificateAuthority::load(&self.ca_dir(), td.clone())?;
        let bundle = TrustBundle::new(td, vec![ca.root().clone()], vec![]);
        Ok((ca, bundle))
    }
}
