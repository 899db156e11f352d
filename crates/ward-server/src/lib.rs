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

pub mod api;
pub mod data_dir;
pub mod listener;
pub mod policy;
pub mod server;
pub mod store;
