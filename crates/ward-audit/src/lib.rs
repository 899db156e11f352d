//! Ward's audit plane (skeleton; filled by the audit-log issue).
//!
//! Will own: the RFC 6962/9162 Merkle tree, inclusion and consistency proofs,
//! C2SP tlog-tiles storage and tlog-checkpoint signed notes, and the versioned
//! audit record. The core is synchronous with storage behind a trait.
