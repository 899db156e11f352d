//! Helpers shared by the integration tests.

pub use ward_testkit::postgres_url;
