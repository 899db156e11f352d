//! Shared building blocks of Ward that every other crate may use without
//! pulling in cryptography, storage or networking:
//!
//! - [`id`]: the identity newtypes ([`SpiffeId`], [`TrustDomain`], [`AgentName`]),
//!   parsed once by the SPIFFE ID rules and trusted afterwards;
//! - [`drain`]: the shutdown signal handed to every long-lived task;
//! - [`telemetry`]: process-wide tracing setup.
//!
//! Typed configuration arrives with the control plane, which is its first user.

pub mod drain;
pub mod id;
pub mod telemetry;

pub use id::{AgentName, IdError, SpiffeId, TrustDomain};
