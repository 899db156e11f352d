//! Identity hot paths: CSR signing (CA), X.509-SVID chain verification (every
//! mTLS handshake; cold and cached), JWT-SVID verification. Throughput is reported as
//! elements per second; run with `cargo bench -p ward-identity --bench identity`.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "benchmark setup"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustls_pki_types::UnixTime;
use time::OffsetDateTime;
use ward_identity::ca::{CaOptions, CertificateAuthority, DEFAULT_SVID_TTL};
use ward_identity::jwt::{self, DEFAULT_JWT_TTL, JwtSigner};
use ward_identity::verify::{AnyMember, ChainVerifier, Usage};
use ward_identity::{KeyAlgorithm, PrivateKey, SpiffeId, TrustBundle, TrustDomain, csr};

fn identity(c: &mut Criterion) {
    let td = TrustDomain::new("bench.test").unwrap();
    let ca = CertificateAuthority::generate(&td, &CaOptions::default())
        .unwrap()
        .ca;
    let id = SpiffeId::new("spiffe://bench.test/agent/worker").unwrap();
    let csrs: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
            csr::create(&key, &id).unwrap().as_ref().to_vec()
        })
        .collect();
    let now = OffsetDateTime::now_utc();

    let mut group = c.benchmark_group("identity");
    group.throughput(Throughput::Elements(1));

    let mut i = 0usize;
    group.bench_function("csr_sign_p256", |b| {
        b.iter(|| {
            i = (i + 1) % csrs.len();
            black_box(ca.sign_csr(&csrs[i], &id, DEFAULT_SVID_TTL, now).unwrap())
        })
    });

    let svid = ca.sign_csr(&csrs[0], &id, DEFAULT_SVID_TTL, now).unwrap();
    let jwt_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let signer = JwtSigner::new(&jwt_key).unwrap();
    let bundle = TrustBundle::new(
        td.clone(),
        vec![ca.root().clone()],
        vec![signer.authority()],
    );
    let verifier = ChainVerifier::new(&bundle).unwrap();
    let (leaf, intermediates) = svid.chain().split_first().unwrap();
    let at = UnixTime::now();
    // Cold: every signature checked (two ECDSA P-256 verifications).
    group.bench_function("x509_chain_verify_cold", |b| {
        b.iter(|| {
            black_box(
                verifier
                    .verify_uncached(leaf, intermediates, Usage::Client, at, &AnyMember)
                    .unwrap(),
            )
        })
    });
    // Warm: the same peer's SVID seen again (the mesh steady state).
    group.bench_function("x509_chain_verify_cached", |b| {
        b.iter(|| {
            black_box(
                verifier
                    .verify(leaf, intermediates, Usage::Client, at, &AnyMember)
                    .unwrap(),
            )
        })
    });

    let unix_now = now.unix_timestamp();
    let token = signer
        .issue(&id, &["bench"], DEFAULT_JWT_TTL, unix_now)
        .unwrap();
    group.bench_function("jwt_svid_verify", |b| {
        b.iter(|| black_box(jwt::verify(&token, &bundle, "bench", unix_now).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, identity);
criterion_main!(benches);
