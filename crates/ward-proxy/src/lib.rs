//! Ward's data plane (skeleton; filled by the proxy issue).
//!
//! Will own: the outbound (plain HTTP from the local agent), inbound (mTLS)
//! and admin listeners; peer verification with `ward-identity`; the embedded
//! decision engine from `ward-policy`; and audit spooling.
