//! SPIFFE ID parsing: never panics; whatever parses prints back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_core::SpiffeId;

fuzz_target!(|data: &str| {
    if let Ok(id) = SpiffeId::new(data) {
        assert_eq!(id.as_str(), data);
        assert_eq!(SpiffeId::new(id.as_str()).ok(), Some(id));
    }
});
