//! `ward server init` then `ward server run` as a real process: the first
//! admin's SVID opens the API over mTLS, an anonymous client is refused the
//! registry, and SIGTERM shuts the server down cleanly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use ward_identity::tls::{self, SvidResolver};
use ward_identity::verify::{AnyMember, TrustStore};
use ward_identity::{PrivateKey, TrustBundle, TrustDomain, X509Svid};

fn ward() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
    // `server init` writes a user-level client config when none exists;
    // keep it out of the real home directory.
    c.env(
        "XDG_CONFIG_HOME",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/xdg-server"),
    )
    .env_remove("WARD_LOG")
    .env_remove("WARD_STORE")
    .env_remove("WARD_DATA_DIR");
    c
}

/// One HTTP/1.1 request over blocking rustls; returns the status code.
fn get(addr: &str, path: &str, client: Arc<rustls::ClientConfig>) -> std::io::Result<u16> {
    let name = rustls_pki_types::ServerName::try_from("ward-server").unwrap();
    let conn = rustls::ClientConnection::new(client, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr)?);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: ward\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    tls.read_to_string(&mut response)?;
    Ok(response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

#[test]
fn init_run_and_shutdown() {
    ward_identity::provider::install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    let out = ward()
        .args([
            "server",
            "init",
            "--data-dir",
            d,
            "--trust-domain",
            "example.org",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["admin"], "spiffe://example.org/admin/admin");
    let key_path = dir.join("admin/svid.key.pem");
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = ward()
        .args(["server", "init", "--data-dir", d])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a Ward server"));

    let (mut server, addr) = common::spawn_server(ward().args([
        "server",
        "run",
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
    ]));

    let td = TrustDomain::new("example.org").unwrap();
    let bundle = TrustBundle::read(td, &dir.join("bundle.json")).unwrap();
    let trust = Arc::new(TrustStore::new(&bundle).unwrap());
    let svid = X509Svid::read_pem(&dir.join("admin/svid.pem")).unwrap();
    let key = PrivateKey::read_pem(&key_path).unwrap();
    let admin = Arc::new(
        tls::client_config(
            Arc::new(SvidResolver::new(&svid, &key).unwrap()),
            trust.clone(),
            Arc::new(AnyMember),
        )
        .unwrap(),
    );
    assert_eq!(get(&addr, "/v1/agents", admin).unwrap(), 200);
    let anonymous = Arc::new(
        rustls::ClientConfig::builder_with_provider(ward_identity::provider::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(tls::SpiffeVerifier::new(
                trust,
                Arc::new(AnyMember),
            )))
            .with_no_client_auth(),
    );
    assert_eq!(get(&addr, "/v1/agents", anonymous.clone()).unwrap(), 401);
    assert_eq!(get(&addr, "/v1/bundle", anonymous).unwrap(), 200);

    // SIGTERM: clean exit within the drain deadline.
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
