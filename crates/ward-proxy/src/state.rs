//! The proxy's state directory: its identity and last-known-good view of
//! the control plane, so it restarts and keeps enforcing while the server
//! is down (DESIGN.md §5).
//!
//! Layout (directory 0700, files 0600, every write atomic):
//!
//! | file | what |
//! |---|---|
//! | `identity.pem` | the private key and the SVID chain, in one file so a crash mid-rotation can never pair a key with the wrong certificate |
//! | `bundle.json` | the trust bundle (SPIFFE bundle JSON) |
//! | `view.json` | the applied control-plane view ([`crate::view::View`]) |
//! | `spool/` | the audit spool (`ward-audit`) |

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ward_identity::keys::write_file_atomic;
use ward_identity::{PrivateKey, X509Svid};

use crate::ProxyError;

/// Mode of every file the proxy writes.
const FILE_MODE: u32 = 0o600;

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating, 0700) the directory.
    pub fn open(root: &Path) -> Result<Self, ProxyError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| ProxyError::State(format!("creating {}: {e}", root.display())))?;
        // An existing directory keeps whatever mode it had; tighten it, since
        // it holds a private key.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ProxyError::State(format!("chmod 0700 {}: {e}", root.display())))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the audit spool lives.
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("spool")
    }

    fn write(&self, name: &str, contents: &[u8]) -> Result<(), ProxyError> {
        let path = self.root.join(name);
        write_file_atomic(&path, contents, FILE_MODE)
            .map_err(|e| ProxyError::State(format!("writing {}: {e}", path.display())))
    }

    fn read(&self, name: &str) -> Result<Option<String>, ProxyError> {
        let path = self.root.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ProxyError::State(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }

    /// Saves key and SVID together.
    pub fn save_identity(&self, key: &PrivateKey, svid: &X509Svid) -> Result<(), ProxyError> {
        let mut text = key.to_pem().to_string();
        text.push_str(&svid.to_pem());
        self.write("identity.pem", text.as_bytes())
    }

    /// The saved key and SVID, if any.
    pub fn load_identity(&self) -> Result<Option<(PrivateKey, X509Svid)>, ProxyError> {
        let Some(text) = self.read("identity.pem")? else {
            return Ok(None);
        };
        let where_ = || self.root.join("identity.pem").display().to_string();
        let key = PrivateKey::from_pem(&text)
            .map_err(|e| ProxyError::State(format!("{}: private key: {e}", where_())))?;
        let svid = X509Svid::from_pem(&text)
            .map_err(|e| ProxyError::State(format!("{}: certificate: {e}", where_())))?;
        Ok(Some((key, svid)))
    }

    /// Saves the trust bundle JSON.
    pub fn save_bundle(&self, json: &str) -> Result<(), ProxyError> {
        self.write("bundle.json", json.as_bytes())
    }

    /// The saved trust bundle JSON, if any.
    pub fn load_bundle(&self) -> Result<Option<String>, ProxyError> {
        self.read("bundle.json")
    }

    /// Saves the applied view.
    pub fn save_view(&self, json: &[u8]) -> Result<(), ProxyError> {
        self.write("view.json", json)
    }

    /// The saved view JSON, if any.
    pub fn load_view(&self) -> Result<Option<String>, ProxyError> {
        self.read("view.json")
    }
}
