//! SPIFFE bundle documents: arbitrary JSON never panics, and what parses
//! survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_identity::{TrustBundle, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let td = TrustDomain::new("fuzz.test").unwrap();
    if let Ok(bundle) = TrustBundle::from_json(td.clone(), data) {
        if let Ok(json) = bundle.to_json() {
            let again = TrustBundle::from_json(td, json.as_bytes()).unwrap();
            assert_eq!(again.x509_authorities, bundle.x509_authorities);
        }
    }
});
