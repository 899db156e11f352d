//! Ward's policy plane (skeleton; filled by the policy-engine issue).
//!
//! Will own: the Cedar schema Ward ships, the embedded decision engine (PDP)
//! with its policy index and decision cache, policy bundles (policies, schema
//! and test cases) and the AuthZEN request/response mapping. Synchronous and
//! I/O-free so it can be property-tested, fuzzed and benchmarked in isolation.
