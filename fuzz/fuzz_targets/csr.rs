//! CSR checks: arbitrary bytes are refused cleanly, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_core::SpiffeId;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = SpiffeId::new("spiffe://fuzz.test/agent/a") {
        let _ = ward_identity::csr::check(data, &id);
    }
});
