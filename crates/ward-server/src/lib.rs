//! Ward's control plane.
//!
//! - [`store`]: the registry of agents, join tokens, issued certificates,
//!   revocations and admins, with the change log every watcher follows — on
//!   SQLite (embedded default) or PostgreSQL (several replicas).
//! - [`data_dir`]: what `ward server init` creates (trust domain, CA, first
//!   admin) and `ward server run` reads.
//! - [`api`]: the `/v1` API — enrollment, renewal, the admin registry, the
//!   watch stream, status and the OpenAPI document; [`listener`] serves it
//!   over TLS 1.3 with SPIFFE client certificates; [`server`] wires it up.
//! - [`audit`]: the tamper-evident decision log proxies ship to — the
//!   sequencer, its tiles, checkpoints and query index.
//! - [`audit_db`]: the audit log's tiles and the sequencer lease in the same
//!   database, so one replica at a time appends and a stale one cannot.
//! - [`authority`]: the live CA authorities — which one issues, which roots
//!   are trusted — and their rotation.

pub mod api;
pub mod audit;
pub mod audit_db;
pub mod authority;
pub mod data_dir;
pub mod listener;
pub mod policy;
pub mod server;
pub mod store;
