//! The dialing side.

use std::time::Duration;

use gun_net_ws::{Client, ClientOptions, Direction, Error};

use crate::hub::{Event, TestHub, WAIT, local_opts, start};

fn fast_opts() -> ClientOptions {
    let mut opts = ClientOptions::default();
    opts.backoff_initial = Duration::from_millis(20);
    opts.backoff_max = Duration::from_millis(200);
    opts
}

#[tokio::test]
async fn round_trip_both_ways_with_the_original_url() {
    let (server, server_hub) = start(local_opts());
    // Gun peers are often written as http://host:port/gun.
    let url = format!("http://{}/gun", server.local_addr());
    let client_hub = TestHub::new();
    let client = Client::dial(&url, client_hub.clone(), fast_opts()).unwrap();
    let client_peer = tokio::time::timeout(WAIT, client.connected())
        .await
        .unwrap()
        .unwrap();
    assert!(client.is_connected());
    assert_eq!(client.peer(), Some(client_peer));
    assert_eq!(client.url(), url);
    let (p, dir) = client_hub.attached(0).await;
    assert_eq!(
        (p, dir),
        (client_peer, Direction::Outgoing { url: url.clone() })
    );
    let (server_peer, dir) = server_hub.attached(0).await;
    assert_eq!(dir, Direction::Incoming);

    client_hub
        .send(client_peer, r##"{"#":"q1","get":{"#":"a"}}"##)
        .unwrap();
    server_hub
        .received(server_peer, r##"{"#":"q1","get":{"#":"a"}}"##)
        .await;
    for i in 0..100 {
        server_hub.send(server_peer, &format!("[{i}]")).unwrap();
    }
    client_hub.received(client_peer, "[99]").await;
    let got = client_hub.frames_from(client_peer);
    assert_eq!(
        got,
        (0..100).map(|i| format!("[{i}]")).collect::<Vec<_>>(),
        "order kept"
    );
    let stats = client.stats();
    assert!(stats.connected);
    assert_eq!(stats.connects, 1);
    assert_eq!(
        (stats.traffic.frames_out, stats.traffic.frames_in),
        (1, 100)
    );

    client.shutdown().await;
    client_hub.detached(client_peer).await;
    server_hub.detached(server_peer).await;
    server.shutdown().await;
}

#[tokio::test]
async fn client_reconnects_after_the_server_restarts() {
    let (server, hub1) = start(local_opts());
    let addr = server.local_addr();
    let url = format!("ws://{addr}/gun");
    let client_hub = TestHub::new();
    let client = Client::dial(&url, client_hub.clone(), fast_opts()).unwrap();
    let (first, dir) = client_hub.attached(0).await;
    assert_eq!(dir, Direction::Outgoing { url: url.clone() });
    hub1.attached(0).await;

    server.shutdown().await;
    client_hub.detached(first).await;
    assert!(!client.is_connected());
    // Down for a while: the client keeps trying (a Gun.js client would have given up).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut opts = local_opts();
    opts.addr = addr;
    let (server, hub2) = start(opts);
    let (second, dir) = client_hub.attached(1).await;
    assert_ne!(first, second);
    assert_eq!(
        dir,
        Direction::Outgoing { url: url.clone() },
        "same url on re-attach"
    );
    let (server_peer, _) = hub2.attached(0).await;
    client_hub.send(second, "again").unwrap();
    hub2.received(server_peer, "again").await;
    assert_eq!(client.stats().connects, 2);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn client_keeps_dialing_a_server_that_starts_late() {
    // Reserve a free port, then release it.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client_hub = TestHub::new();
    let client =
        Client::dial(&format!("ws://{addr}/gun"), client_hub.clone(), fast_opts()).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!client.is_connected());
    let mut opts = local_opts();
    opts.addr = addr;
    let (server, hub) = start(opts);
    tokio::time::timeout(WAIT, client.connected())
        .await
        .unwrap()
        .unwrap();
    hub.attached(0).await;
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn close_stops_reconnecting() {
    let (server, server_hub) = start(local_opts());
    let client_hub = TestHub::new();
    let client = Client::dial(&server.url(), client_hub.clone(), fast_opts()).unwrap();
    let peer = tokio::time::timeout(WAIT, client.connected())
        .await
        .unwrap()
        .unwrap();
    let (server_peer, _) = server_hub.attached(0).await;
    client.close();
    client_hub.detached(peer).await;
    server_hub.detached(server_peer).await;
    assert!(matches!(client.connected().await, Err(Error::Closed)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server_hub.count(|e| matches!(e, Event::Attach(..))), 1);
    assert_eq!(client_hub.count(|e| matches!(e, Event::Attach(..))), 1);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_the_handle_closes_the_client() {
    let (server, server_hub) = start(local_opts());
    let client_hub = TestHub::new();
    let client = Client::dial(&server.url(), client_hub.clone(), fast_opts()).unwrap();
    tokio::time::timeout(WAIT, client.connected())
        .await
        .unwrap()
        .unwrap();
    let (server_peer, _) = server_hub.attached(0).await;
    drop(client);
    server_hub.detached(server_peer).await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_side_close_triggers_a_reconnect() {
    let (server, server_hub) = start(local_opts());
    let client_hub = TestHub::new();
    let client = Client::dial(&server.url(), client_hub.clone(), fast_opts()).unwrap();
    let (server_peer, _) = server_hub.attached(0).await;
    server_hub.link(server_peer).close("go away");
    let (again, _) = server_hub.attached(1).await;
    assert_ne!(again, server_peer);
    assert_eq!(client_hub.count(|e| matches!(e, Event::Detach(_))), 1);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_dropped_and_redialed() {
    let mut sopts = local_opts();
    sopts.keepalive = None;
    let (server, server_hub) = start(sopts);
    let mut opts = fast_opts();
    opts.ping_interval = None;
    opts.idle_timeout = Some(Duration::from_millis(300));
    let client_hub = TestHub::new();
    let client = Client::dial(&server.url(), client_hub.clone(), opts).unwrap();
    server_hub.attached(1).await;
    client.shutdown().await;

    // With pings the server's pongs keep the connection alive.
    let mut opts = fast_opts();
    opts.ping_interval = Some(Duration::from_millis(100));
    opts.idle_timeout = Some(Duration::from_millis(300));
    let client_hub = TestHub::new();
    let client = Client::dial(&server.url(), client_hub.clone(), opts).unwrap();
    client_hub.attached(0).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(client_hub.count(|e| matches!(e, Event::Detach(_))), 0);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dial_refuses_bad_urls_and_options() {
    let hub = TestHub::new();
    for url in [
        "localhost:8765/gun",
        "ftp://x/gun",
        "ws://:80/gun",
        "ws://h:0x/",
    ] {
        assert!(
            matches!(
                Client::dial(url, hub.clone(), ClientOptions::default()),
                Err(Error::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
    let mut opts = ClientOptions::default();
    opts.send_queue = 0;
    assert!(matches!(
        Client::dial("ws://127.0.0.1:1/gun", hub.clone(), opts),
        Err(Error::InvalidOption { .. })
    ));
    #[cfg(not(feature = "tls"))]
    assert!(matches!(
        Client::dial("https://relay.example/gun", hub, ClientOptions::default()),
        Err(Error::TlsUnavailable { .. })
    ));
}

#[test]
fn dial_outside_a_runtime_is_an_error() {
    let r = Client::dial(
        "ws://127.0.0.1:1/gun",
        TestHub::new(),
        ClientOptions::default(),
    );
    assert!(matches!(r, Err(Error::NoRuntime)));
}

#[tokio::test]
async fn many_clients_one_server() {
    let (server, server_hub) = start(local_opts());
    let client_hub = TestHub::new();
    let clients: Vec<_> = (0..20)
        .map(|_| Client::dial(&server.url(), client_hub.clone(), fast_opts()).unwrap())
        .collect();
    for c in &clients {
        tokio::time::timeout(WAIT, c.connected())
            .await
            .unwrap()
            .unwrap();
    }
    server_hub.attached(19).await;
    assert_eq!(server.stats().connections_open, 20);
    for c in clients {
        c.shutdown().await;
    }
    server_hub
        .wait_for("20 detaches", |ev| {
            (ev.iter().filter(|e| matches!(e, Event::Detach(_))).count() == 20).then_some(())
        })
        .await;
    server.shutdown().await;
}
