//! Private keys: generation, 0600 key files, and handling that keeps key
//! material out of logs.
//!
//! Keys are generated where they are used and never leave that process; the
//! CA only ever sees public keys (in CSRs). PEM text of a private key lives in
//! zeroizing buffers, and [`PrivateKey`]'s `Debug` prints only the algorithm.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Mode for files holding private keys: owner read/write only.
pub const KEY_FILE_MODE: u32 = 0o600;

/// Signature algorithms Ward generates keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256: the default, universally supported.
    #[default]
    EcdsaP256,
    /// Ed25519: smaller and faster to sign, not accepted by every TLS peer.
    Ed25519,
}

impl KeyAlgorithm {
    pub(crate) fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// The name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            "ed25519" => Ok(Self::Ed25519),
            other => Err(KeyError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// What went wrong with a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An algorithm name we do not support.
    #[error("unknown key algorithm {0:?}; use `ecdsa-p256` (default) or `ed25519`")]
    UnknownAlgorithm(String),
    /// The crypto library refused to generate or load the key.
    #[error("key {action} failed: {source}")]
    Crypto {
        /// What was being done.
        action: &'static str,
        /// The library's error.
        #[source]
        source: rcgen::Error,
    },
    /// The key is of a type Ward does not use.
    #[error("unsupported private key type in {path}; Ward uses ECDSA P-256 or Ed25519 PKCS#8 keys")]
    Unsupported {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing the key file failed.
    #[error("{action} key file {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The key file can be read by users other than its owner.
    #[error(
        "key file {path} has mode {mode:04o}, so others can read it; run `chmod 600 {path}` (Ward refuses keys readable by others)"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no PEM private key.
    #[error("{path} holds no PEM `PRIVATE KEY` block: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
}

/// A private key held in this process.
pub struct PrivateKey {
    inner: rcgen::KeyPair,
    algorithm: KeyAlgorithm,
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let inner =
            rcgen::KeyPair::generate_for(algorithm.rcgen()).map_err(|source| KeyError::Crypto {
                action: "generation",
                source,
            })?;
        Ok(Self { inner, algorithm })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_spki(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.inner)
    }

    /// The raw public key bits (uncompressed point for ECDSA, 32 bytes for Ed25519).
    pub fn public_key_raw(&self) -> &[u8] {
        self.inner.public_key_raw()
    }

    /// PKCS#8 DER, for handing to rustls. Stays in this process.
    pub fn to_pkcs8_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.inner.serialize_der()))
    }

    /// PEM text, in a buffer that is wiped when dropped.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.inner.serialize_pem())
    }

    /// Writes the key as PEM to `path`, created with mode 0600 (never briefly
    /// wider), replacing any previous file atomically.
    pub fn write_pem(&self, path: &Path) -> Result<(), KeyError> {
        write_private_file(path, self.to_pem().as_bytes()).map_err(|source| KeyError::Io {
            action: "writing",
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a PEM key written by [`PrivateKey::write_pem`] (or any PKCS#8
    /// ECDSA P-256 / Ed25519 key). Refuses files readable by group or others.
    pub fn read_pem(path: &Path) -> Result<Self, KeyError> {
        let io = |action, source| KeyError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let mode = fs::metadata(path)
            .map_err(|e| io("reading", e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions {
                path: path.to_owned(),
                mode: mode & 0o7777,
            });
        }
        let pem = Zeroizing::new(fs::read_to_string(path).map_err(|e| io("reading", e))?);
        Self::from_pem(&pem).map_err(|e| match e {
            KeyError::BadPem { reason, .. } => KeyError::BadPem {
                path: path.to_owned(),
                reason,
            },
            KeyError::Unsupported { .. } => KeyError::Unsupported {
                path: path.to_owned(),
            },
            other => other,
        })
    }

    /// Parses PEM key text.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use rustls_pki_types::pem::PemObject;
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| KeyError::BadPem {
                path: PathBuf::from("<input>"),
                reason: e.to_string(),
            })?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// Parses a PKCS#8 DER key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let unsupported = || KeyError::Unsupported {
            path: PathBuf::from("<input>"),
        };
        let der = PrivatePkcs8KeyDer::from(der.to_vec());
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            if let Ok(inner) = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, algorithm.rcgen())
            {
                return Ok(Self { inner, algorithm });
            }
        }
        Err(unsupported())
    }

    pub(crate) fn rcgen(&self) -> &rcgen::KeyPair {
        &self.inner
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.algorithm)
    }
}

/// Writes `contents` to `path` with mode 0600 via a temporary file in the
/// same directory, fsynced and renamed, so readers never see a partial key
/// and a crash leaves either the old or the new file.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_file_atomic(path, contents, KEY_FILE_MODE)
}

/// Writes a file atomically (temp file, fsync, rename, fsync directory).
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_0600_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let path = dir.path().join(format!("{alg}.key.pem"));
            let key = PrivateKey::generate(alg).unwrap();
            key.write_pem(&path).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{alg}");
            let back = PrivateKey::read_pem(&path).unwrap();
            assert_eq!(back.algorithm(), alg);
            assert_eq!(back.public_key_raw(), key.public_key_raw());
        }
    }

    #[test]
    fn refuses_key_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        PrivateKey::generate(KeyAlgorithm::EcdsaP256)
            .unwrap()
            .write_pem(&path)
            .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = PrivateKey::read_pem(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let debug = format!("{key:?}");
        assert_eq!(debug, "PrivateKey(ecdsa-p256, <redacted>)");
        let pem = key.to_pem();
        let body: String = pem.lines().nth(1).unwrap().chars().take(16).collect();
        assert!(!debug.contains(&body));
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = PrivateKey::from_pem("not a key").unwrap_err();
        assert!(matches!(err, KeyError::BadPem { .. }), "{err}");
        assert!("rsa-1024".parse::<KeyAlgorithm>().is_err());
    }
}
