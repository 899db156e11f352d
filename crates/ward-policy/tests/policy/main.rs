//! Integration tests of `ward-policy` through its public API: the engine
//! against Cedar's own authorizer on random policies and entities, the
//! decision cache against the uncached engine across updates, and worked
//! examples of the fail-closed and reporting rules. One binary, to link once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests"
)]

mod cache;
mod common;
mod differential;
mod examples;
