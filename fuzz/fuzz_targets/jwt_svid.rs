//! JWT-SVID parsing and verification: arbitrary tokens never panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ward_identity::jwt::{self, JwtSigner};
use ward_identity::{KeyAlgorithm, PrivateKey, TrustBundle, TrustDomain};

static BUNDLE: LazyLock<TrustBundle> = LazyLock::new(|| {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let signer = JwtSigner::new(&key).unwrap();
    TrustBundle::new(TrustDomain::new("fuzz.test").unwrap(), vec![], vec![signer.authority()])
});

fuzz_target!(|data: &str| {
    let _ = jwt::verify(data, &BUNDLE, "fuzz", 1_700_000_000);
});
