//! The admin CLI's connection to the server: the client config file that
//! `ward server init` writes and every client command finds by itself.
//!
//! ```toml
//! server = "127.0.0.1:8443"
//! trust_domain = "example.org"
//! bundle = "/path/to/data/bundle.json"
//! certificate = "/path/to/data/admin/svid.pem"
//! key = "/path/to/data/admin/svid.key.pem"
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use ward_client::Client;
use ward_identity::{PrivateKey, TrustBundle, TrustDomain, X509Svid};

use crate::cli::Connection;

/// The client config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientFile {
    /// Server address, `host:port`.
    pub(crate) server: String,
    /// Trust domain of the server.
    pub(crate) trust_domain: String,
    /// SPIFFE bundle JSON.
    pub(crate) bundle: PathBuf,
    /// Admin SVID (PEM chain).
    pub(crate) certificate: PathBuf,
    /// Its key (0600).
    pub(crate) key: PathBuf,
}

/// Where the CLI looks when neither --client-config nor WARD_CLIENT_CONFIG
/// is given.
pub(crate) fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("ward/client.toml"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".config/ward/client.toml"))
}

impl ClientFile {
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the client config {}; run `ward server init`, or pass --client-config",
                path.display()
            )
        })?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))
    }

    #[cfg(feature = "server")]
    pub(crate) fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self).context("encoding the client config")?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let body = format!(
            "# Ward admin client config, written by `ward server init`.\n# The key file it names is this admin's credential: keep it 0600.\n{text}"
        );
        ward_identity::keys::write_file_atomic(path, body.as_bytes(), 0o600)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The client config file the connection names.
pub(crate) fn config_path(conn: &Connection) -> anyhow::Result<PathBuf> {
    conn.client_config
        .clone()
        .or_else(default_path)
        .context("no client config: pass --client-config or set WARD_CLIENT_CONFIG")
}

/// A client for the server the connection flags and config name.
pub(crate) fn connect(conn: &Connection) -> anyhow::Result<Client> {
    let path = config_path(conn)?;
    let file = ClientFile::read(&path)?;
    let td = TrustDomain::new(&file.trust_domain)
        .with_context(|| format!("{}: trust_domain", path.display()))?;
    let bundle = TrustBundle::read(td, &file.bundle)
        .with_context(|| format!("{}: bundle {}", path.display(), file.bundle.display()))?;
    let svid = X509Svid::read_pem(&file.certificate).with_context(|| {
        format!(
            "{}: certificate {}",
            path.display(),
            file.certificate.display()
        )
    })?;
    let key = PrivateKey::read_pem(&file.key)
        .with_context(|| format!("{}: key {}", path.display(), file.key.display()))?;
    let addr = conn.server.clone().unwrap_or(file.server);
    Ok(Client::new(&addr, &bundle, Some((&svid, &key)))?)
}

/// A runtime for one client command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
