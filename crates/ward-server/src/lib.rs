//! Ward's control plane.
//!
//! Today: the [`store`] — the registry of agents, join tokens, issued
//! certificates, revocations and admins, with a change log every watcher
//! follows — on SQLite (embedded default) or PostgreSQL (several replicas).
//! Next: the CA service, enrollment and renewal, the watch stream and the
//! admin API over mTLS.

pub mod api;
pub mod data_dir;
pub mod listener;
pub mod server;
pub mod store;
