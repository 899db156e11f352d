//! Ward's control plane (skeleton; filled by the control-plane issue).
//!
//! Will own: the `Store` interface with SQLite and PostgreSQL backends, the
//! CA service (enrollment and renewal over CSRs, using `ward-identity`), the
//! agent registry, revocations, the watch stream and the admin API.
