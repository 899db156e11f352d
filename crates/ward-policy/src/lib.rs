//! Ward's policy plane: the Cedar schema Ward ships and the embedded decision
//! engine (PDP) every proxy runs.
//!
//! The core is synchronous and I/O-free (DESIGN.md §3, STYLE.md rule 6) so it
//! can be property-tested against Cedar itself and benchmarked in isolation;
//! only [`bundle`] touches the file system.
//!
//! Entry points:
//! - [`Schema`]: Ward's default schema ([`schema::WARD_SCHEMA`]), optionally
//!   extended with user fragments;
//! - [`PolicySet`]: policy files parsed and strictly validated against the
//!   schema, every problem reported at once with `file:line:column`;
//! - [`EntityStore`]: agents, teams, tools… and their parents;
//! - [`Engine`]: [`Engine::decide`] turns a [`Request`] into a [`Decision`].
//!
//! How a decision is made: the [`index`] picks the policies whose scope
//! matches the request (usually a handful out of thousands), Cedar's
//! `Authorizer` evaluates only those, and the [`cache`] remembers the answer
//! keyed on everything those policies can read. Unlike Cedar, which skips a
//! policy whose evaluation errors, Ward denies whenever any policy that
//! applies errors (fail closed, DESIGN.md §4.1).
//!
//! Module map: [`schema`], [`policy_set`], [`problem`] (load errors with
//! locations), [`version`], [`entities`], [`request`], [`index`],
//! [`context_refs`] (which context keys a policy reads), [`subset`]
//! (memoised sub-policy-sets), [`cache`], [`decision`], [`engine`],
//! [`bundle`] (directory loading), [`json`] (validated requests from JSON),
//! [`registry`] (entities from Ward's agent registry).

pub mod authzen;
pub mod bundle;
pub mod cache;
pub mod context_refs;
pub mod decision;
pub mod engine;
pub mod entities;
pub mod index;
pub mod json;
pub mod policy_set;
pub mod problem;
pub mod registry;
pub mod request;
pub mod schema;
pub mod subset;
#[cfg(feature = "testing")]
pub mod testing;
pub mod version;

pub use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid};
pub use decision::{Decision, DecisionError, Effect};
pub use engine::{Engine, EngineError};
pub use entities::{EntityError, EntityStore};
pub use policy_set::PolicySet;
pub use problem::{LoadError, Location, Problem};
pub use request::{Context, Request, Value};
pub use schema::Schema;
pub use version::PolicyVersion;
