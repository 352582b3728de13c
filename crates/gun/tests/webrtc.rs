//! The facade's WebRTC option: two `Gun`s meet in a room through an in-process
//! relay, connect by WebRTC on loopback, and keep syncing after the relay is
//! shut down.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use gun::{Engine, EngineOptions, Gun, GunOptions, RtcOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

async fn until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_room_peer_after_the_relay_is_gone() {
    // RUST_LOG=gun_net_webrtc=debug shows the signalling.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let relay = Engine::new(EngineOptions::new(Arc::new(
        gun_store_memory::MemoryStore::new(),
    )));
    let server = gun_net_ws::Server::bind(
        gun_net_ws::ServerOptions::new("127.0.0.1:0".parse().unwrap()),
        Arc::new(relay.clone()),
        Arc::new(gun_net_ws::NotFound),
    )
    .unwrap();
    let room = format!("facade-{}", std::process::id());
    let opts = || GunOptions {
        peers: vec![server.url()],
        rtc: Some(RtcOptions {
            ice_servers: Vec::new(),
            udp_addrs: vec!["127.0.0.1:0".into()],
            ..RtcOptions::new(room.clone())
        }),
        ..GunOptions::default()
    };
    let a = Gun::new(opts());
    let b = Gun::new(opts());
    let (pa, pb) = (
        a.rtc().unwrap().pid().to_owned(),
        b.rtc().unwrap().pid().to_owned(),
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let _sub = b.get("shared").on(move |data, _| {
        let _ = tx.send(data);
    });
    until("the data channel", 30, || {
        a.rtc().unwrap().connected() == [pb.clone()] && b.rtc().unwrap().connected() == [pa.clone()]
    })
    .await;
    server.shutdown().await;
    assert_eq!(relay.peer_count(), 0, "the relay let go of both peers");

    a.get("shared")
        .put(json!({"note": "over WebRTC"}))
        .await
        .unwrap();
    let got = timeout(Duration::from_secs(15), async {
        while let Some(d) = rx.recv().await {
            if d["note"] == "over WebRTC" {
                return d;
            }
        }
        panic!("subscription ended");
    })
    .await
    .expect("the write did not reach the other peer");
    assert_eq!(got["note"], "over WebRTC");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
