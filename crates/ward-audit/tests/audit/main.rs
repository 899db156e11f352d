//! Integration tests of `ward-audit` through its public API: interoperability
//! with independent implementations, tamper detection by the offline
//! verifier, and the filesystem store. One binary, to link once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests"
)]

mod common;
mod fs_store;
mod interop;
mod tamper;
