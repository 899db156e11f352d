//! Command-line definition (clap derive). One file per subcommand lives in
//! `cmd/`; this file only declares the shape.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Ward: a zero-trust fabric for AI agents.
#[derive(Debug, Parser)]
#[command(name = "ward", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Log filter in RUST_LOG syntax, e.g. `info,ward_identity=debug`.
    #[arg(long, global = true, env = "WARD_LOG", default_value = "warn")]
    pub(crate) log: String,
    /// Log line format on standard error.
    #[arg(long, global = true, env = "WARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl From<LogFormat> for ward_core::telemetry::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
}

/// Output format for commands that report something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Output {
    /// For people.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The control plane: initialise a data directory, run the server.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Certificate authority files (offline bootstrap).
    #[command(subcommand)]
    Ca(CaCommand),
    /// X.509-SVIDs: mint from a local CA, inspect and verify.
    #[command(subcommand)]
    Svid(SvidCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// Create a data directory: trust domain, CA, store, bundle, first admin.
    ///
    /// The first admin's SVID and key (0600) are written to DIR/admin/.
    Init {
        /// Data directory to create.
        #[arg(long, env = "WARD_DATA_DIR")]
        data_dir: PathBuf,
        /// Trust domain, e.g. `example.org`.
        #[arg(long, default_value = "ward.local")]
        trust_domain: String,
        /// Store URL; default is SQLite in the data directory.
        /// PostgreSQL: `postgres://user@host/db`.
        #[arg(long, env = "WARD_STORE")]
        store: Option<String>,
        /// Key algorithm for the CA: ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Serve the control-plane API (TLS 1.3, SPIFFE client certificates).
    ///
    /// Stops cleanly on SIGINT or SIGTERM, letting in-flight requests finish.
    Run {
        /// Data directory made by `ward server init`.
        #[arg(long, env = "WARD_DATA_DIR")]
        data_dir: PathBuf,
        /// Store URL; must be the one given to `init`.
        #[arg(long, env = "WARD_STORE")]
        store: Option<String>,
        /// Address to listen on.
        #[arg(long, env = "WARD_LISTEN", default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Lifetime of agent SVIDs, e.g. `15m` (capped at 24h).
        #[arg(long, default_value = "15m")]
        svid_ttl: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create a root and an online intermediate CA for a trust domain.
    ///
    /// Writes root/intermediate certificates, their keys (mode 0600) and the
    /// trust bundle (SPIFFE bundle JSON) into DIR, which must not already
    /// hold a CA.
    Init {
        /// Directory to create the CA in.
        #[arg(long)]
        dir: PathBuf,
        /// Trust domain, e.g. `example.org`.
        #[arg(long, default_value = "ward.local")]
        trust_domain: String,
        /// Key algorithm for root and intermediate: ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SvidCommand {
    /// Generate a key and an X.509-SVID signed by a local CA directory.
    ///
    /// For development and tests: in a deployment, proxies enroll with the
    /// server instead and the key never leaves them.
    Mint {
        /// CA directory made by `ward ca init`.
        #[arg(long)]
        ca_dir: PathBuf,
        /// Agent name; the SVID is for `spiffe://<trust-domain>/agent/<name>`.
        #[arg(
            long,
            conflicts_with = "spiffe_id",
            required_unless_present = "spiffe_id"
        )]
        agent: Option<String>,
        /// Full SPIFFE ID instead of an agent name.
        #[arg(long)]
        spiffe_id: Option<String>,
        /// Lifetime, e.g. `15m`, `1h` (capped by the CA at 24h).
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// Directory to write `svid.pem` and `svid.key.pem` (0600) into.
        #[arg(long)]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show what an X.509-SVID says and, with --bundle, verify it.
    ///
    /// Exit code 2 when the certificate is not a valid SVID or does not verify.
    Inspect {
        /// PEM file with the SVID chain, leaf first.
        file: PathBuf,
        /// SPIFFE bundle JSON to verify the chain against.
        #[arg(long, requires = "trust_domain")]
        bundle: Option<PathBuf>,
        /// Trust domain the bundle belongs to.
        #[arg(long)]
        trust_domain: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}
