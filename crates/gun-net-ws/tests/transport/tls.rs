//! `wss://` with a self-signed certificate (feature `tls`).

use std::sync::Arc;

use gun_net_ws::{Client, ClientOptions, NotFound, Server, TlsClientConfig, TlsServerConfig};

use crate::hub::{TestHub, WAIT, local_opts};

fn self_signed() -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

#[tokio::test]
async fn wss_round_trip_with_a_self_signed_certificate() {
    let (cert_pem, key_pem) = self_signed();
    let dir = std::env::temp_dir().join(format!("gun-net-ws-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, &key_pem).unwrap();

    let mut opts = local_opts();
    opts.tls = Some(TlsServerConfig::from_pem_files(&cert_file, &key_file).unwrap());
    let server_hub = TestHub::new();
    let server = Server::bind(opts, server_hub.clone(), Arc::new(NotFound)).unwrap();
    assert!(server.url().starts_with("wss://127.0.0.1:"));

    for url in [
        format!("wss://localhost:{}/gun", server.local_addr().port()),
        format!("https://127.0.0.1:{}/gun?x=1", server.local_addr().port()),
    ] {
        let mut copts = ClientOptions::default();
        copts.tls = Some(TlsClientConfig::from_root_pem_file(&cert_file).unwrap());
        let hub = TestHub::new();
        let client = Client::dial(&url, hub.clone(), copts).unwrap();
        let peer = tokio::time::timeout(WAIT, client.connected())
            .await
            .unwrap()
            .unwrap();
        hub.send(peer, "over tls").unwrap();
        let n = server_hub.count(|e| matches!(e, crate::hub::Event::Attach(..)));
        let (server_peer, _) = server_hub.attached(n - 1).await;
        server_hub.received(server_peer, "over tls").await;
        server_hub.send(server_peer, "and back").unwrap();
        hub.received(peer, "and back").await;
        client.shutdown().await;
    }

    // The default roots (webpki) do not trust a self-signed certificate: no connection.
    let hub = TestHub::new();
    let url = format!("wss://localhost:{}/gun", server.local_addr().port());
    let client = Client::dial(&url, hub.clone(), ClientOptions::default()).unwrap();
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), client.connected())
            .await
            .is_err()
    );
    client.shutdown().await;

    // Plain text to a TLS port fails without harming the server.
    let plain = format!("ws://127.0.0.1:{}/gun", server.local_addr().port());
    assert!(tokio_tungstenite::connect_async(&plain).await.is_err());

    server.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
    assert!(TlsServerConfig::from_pem(b"not pem", key_pem.as_bytes()).is_err());
    assert!(TlsServerConfig::from_pem(cert_pem.as_bytes(), b"").is_err());
    assert!(TlsClientConfig::from_root_pem(b"").is_err());
}

#[tokio::test]
async fn replace_swaps_the_certificate_of_a_running_server() {
    let (a_cert, a_key) = self_signed();
    let (b_cert, b_key) = self_signed();
    let config = TlsServerConfig::from_pem(a_cert.as_bytes(), a_key.as_bytes()).unwrap();
    let mut opts = local_opts();
    opts.tls = Some(config.clone());
    let server = Server::bind(opts, TestHub::new(), Arc::new(NotFound)).unwrap();
    let url = format!("wss://localhost:{}/gun", server.local_addr().port());
    let connects = |root: &str| {
        let url = url.clone();
        let root = root.to_owned();
        async move {
            let mut copts = ClientOptions::default();
            copts.tls = Some(TlsClientConfig::from_root_pem(root.as_bytes()).unwrap());
            let client = Client::dial(&url, TestHub::new(), copts).unwrap();
            let ok =
                tokio::time::timeout(std::time::Duration::from_millis(700), client.connected())
                    .await
                    .is_ok_and(|r| r.is_ok());
            client.shutdown().await;
            ok
        }
    };
    assert!(connects(&a_cert).await);
    assert!(!connects(&b_cert).await);
    // A clone shares the cell: replacing through it changes what the server presents.
    config.replace(&TlsServerConfig::from_pem(b_cert.as_bytes(), b_key.as_bytes()).unwrap());
    assert!(connects(&b_cert).await);
    assert!(!connects(&a_cert).await);
    server.shutdown().await;
}
