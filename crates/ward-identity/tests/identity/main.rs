//! Integration tests of the identity core against implementations nobody
//! here wrote: the `spiffe` crate, OpenSSL, rustls handshakes, and
//! certificates crafted independently by `ward-testkit`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

mod cache;
mod common;
mod interop_openssl;
mod interop_spiffe;
mod jwt;
mod tls;
mod verifier;
