//! Network synchronization: two databases sync through a relay running in this
//! process.
//!
//! 1. live: Bob subscribes with `on`; Alice's write reaches him through the relay;
//! 2. offline: the relay stops, Alice writes anyway (her `put` resolves: the
//!    write is applied here and waits in her outbox), the relay starts again on
//!    the same address and data directory, both reconnect by themselves, and the
//!    write reaches Bob.
//!
//! Run with `cargo run -p gun --features server --example network_sync`; it
//! exits 0 when both steps were seen.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use gun::server::{Relay, RelayOptions, StoreKind};
use gun::{Gun, GunOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A relay on `port` storing in `dir` (sled), retried while the port is still
/// held by the relay stopped just before.
async fn start_relay(port: u16, dir: &Path) -> Result<Relay, gun::server::ServerError> {
    let mut tries = 0;
    loop {
        match Relay::start(RelayOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            store: StoreKind::Sled,
            data_dir: dir.to_path_buf(),
            ..RelayOptions::default()
        }) {
            Ok(relay) => return Ok(relay),
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("relay not started yet ({e}), retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits (at most `secs`) for a value on `rx` that `want` accepts.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Value>,
    secs: u64,
    want: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(v) = rx.recv().await {
            if want(&v) {
                return Ok(v);
            }
        }
        Err("the subscription ended".to_string())
    })
    .await
    .map_err(|_| format!("nothing matching arrived within {secs} s"))?
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // A fixed port, so that the relay comes back at the address the clients
    // dial: one that is free now.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let relay = start_relay(port, dir.path()).await?;
    let url = format!("http://127.0.0.1:{port}/gun");
    println!("relay on {url}");

    let alice = Gun::new(GunOptions {
        peers: vec![url.clone()],
        ..Default::default()
    });
    let bob = Gun::new(GunOptions {
        peers: vec![url.clone()],
        ..Default::default()
    });

    // 1. Live: Bob listens, Alice writes.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = bob.get("chat").on(move |data, _key| {
        let _ = tx.send(data);
    });
    alice.get("chat").put(json!({"msg": "hello"})).await?;
    let got = wait_for(&mut rx, 15, |d| d["msg"] == "hello").await?;
    println!("bob got live: {got}");

    // 2. Offline: the relay stops; Alice's write is applied locally and waits
    // in her outbox.
    relay.shutdown().await?;
    println!("relay stopped");
    alice
        .get("chat")
        .put(json!({"msg": "written offline"}))
        .await?;
    assert_eq!(
        alice.get("chat").get("msg").then().await?,
        Some(json!("written offline")),
        "an offline write is readable here at once"
    );

    // The relay comes back on the same port and data; both clients redial it
    // (at most 4 s apart), Alice's outbox is delivered, Bob's subscription is
    // sent again and the relay pushes him the write.
    let relay = start_relay(port, dir.path()).await?;
    println!("relay started again");
    let got = wait_for(&mut rx, 30, |d| d["msg"] == "written offline").await?;
    println!("bob got after the reconnect: {got}");

    let report = alice.shutdown().await?;
    assert_eq!(
        report.undelivered, 0,
        "the relay acked every write of Alice"
    );
    bob.shutdown().await?;
    let kept = relay
        .gun()
        .engine()
        .store()
        .get_node("chat")
        .await?
        .and_then(|n| n.value("msg").map(|v| v.to_json()));
    assert_eq!(kept, Some(json!("written offline")), "the relay stored it");
    relay.shutdown().await?;
    println!("network_sync: ok");
    Ok(())
}
