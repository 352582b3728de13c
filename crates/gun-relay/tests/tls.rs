//! `gun-relay --tls-cert --tls-key`: wss:// and https:// on the relay's port
//! with a self-signed certificate, plain ws:// off, and the certificate
//! reloaded on SIGHUP (a bad file at reload keeps the old one).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod ops;

use std::path::Path;
use std::sync::Arc;

use ops::{Proc, WAIT, path};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A self-signed certificate for localhost/127.0.0.1 with common name `cn`:
/// (cert PEM, key PEM, cert DER).
fn self_signed(cn: &str) -> (String, String, Vec<u8>) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

/// A TLS connection to the relay trusting `roots`; returns it and the DER of
/// the certificate the relay presented.
async fn tls_connect(port: u16, roots: &[&[u8]]) -> (TlsStream<TcpStream>, Vec<u8>) {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(CertificateDer::from(r.to_vec())).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("TLS handshake timed out")
    .expect("TLS handshake");
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, peer)
}

/// A put acked and read back over wss:// on `tls`.
async fn put_and_get(tls: TlsStream<TcpStream>, port: u16, soul: &str, value: &str) {
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{port}/gun"), tls)
        .await
        .unwrap();
    let node = json!({"_": {"#": soul, ">": {"v": common::now_ms()}}, "v": value});
    ops::put(&mut ws, &node).await;
    let got = ops::get(&mut ws, soul).await.expect("node read back");
    assert_eq!(got["v"], value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_https_and_certificate_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (cert1, key1, der1) = self_signed("gun-relay test one");
    let (cert2, key2, der2) = self_signed("gun-relay test two");
    assert_ne!(der1, der2);
    write_pair(dir.path(), &cert1, &key1);
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let relay = Proc::start(
        "wss",
        &[
            "--store",
            "memory",
            "--data",
            path(&data),
            "--tls-cert",
            path(&cert_file),
            "--tls-key",
            path(&key_file),
        ],
    );
    let port = relay.port();

    // wss://: put, ack, get.
    let (tls, peer) = tls_connect(port, &[&der1]).await;
    assert_eq!(peer, der1);
    put_and_get(tls, port, "tls-one", "über wss ✓").await;

    // https://: the health document.
    let (mut tls, _) = tls_connect(port, &[&der1]).await;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The body is complete even if the close is not a clean close_notify.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap().trim()).unwrap();
    assert!(body.is_object(), "{body}");

    // Plain ws:// is off on a TLS port.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let plain = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/gun"), tcp),
    )
    .await
    .expect("a plain handshake on the TLS port must fail, not hang");
    assert!(plain.is_err());

    // A bad certificate at reload: logged at error, the old one stays.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    relay.signal("HUP");
    let deadline = std::time::Instant::now() + WAIT;
    while relay
        .log
        .find(|l| l.contains("ERROR") && l.contains("SIGHUP"))
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no error logged for a bad certificate:\n{}",
            relay.log.tail(20)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (tls, peer) = tls_connect(port, &[&der1, &der2]).await;
    assert_eq!(peer, der1, "a bad file must not replace the certificate");
    put_and_get(tls, port, "tls-still-one", "old cert").await;

    // The second certificate: new connections get it.
    write_pair(dir.path(), &cert2, &key2);
    relay.signal("HUP");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (tls, peer) = tls_connect(port, &[&der1, &der2]).await;
        if peer == der2 {
            put_and_get(tls, port, "tls-two", "new cert").await;
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still the old certificate after SIGHUP:\n{}",
            relay.log.tail(20)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        relay
            .log
            .find(|l| l.contains("TLS certificate reloaded"))
            .is_some()
    );
    relay.stop();
}

#[test]
fn a_bad_certificate_at_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key, _) = self_signed("x");
    write_pair(dir.path(), "not pem", &key);
    let out = ops::run(&[
        "--port",
        "0",
        "--store",
        "memory",
        "--data",
        path(&dir.path().join("data")),
        "--tls-cert",
        path(&dir.path().join("cert.pem")),
        "--tls-key",
        path(&dir.path().join("key.pem")),
    ]);
    assert!(!out.status.success());
    let err = ops::text(&out.stderr);
    assert!(err.contains("cannot load TLS certificate"), "{err}");
    assert!(!dir.path().join("data").exists(), "a store was created");
}
