//! WebRTC: two databases meet in a room through a relay running in this
//! process, open a direct data channel (on loopback here), and keep talking
//! after the relay is stopped.
//!
//! Run with `cargo run -p gun --features webrtc,server --example webrtc`
//! (feature `webrtc` is off by default: it adds about 200 crates).

use std::time::Duration;

use gun::server::{Relay, RelayOptions, StoreKind};
use gun::{Gun, GunOptions, RtcOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let relay = Relay::start(RelayOptions {
        listen: "127.0.0.1:0".parse()?,
        store: StoreKind::Memory,
        ..RelayOptions::default()
    })?;
    let room = format!("example-{}", std::process::id());
    let opts = || GunOptions {
        peers: vec![relay.url()],
        rtc: Some(RtcOptions {
            // Host candidates on loopback only: no STUN server needed here.
            ice_servers: Vec::new(),
            udp_addrs: vec!["127.0.0.1:0".into()],
            ..RtcOptions::new(room.clone())
        }),
        ..GunOptions::default()
    };
    let a = Gun::new(opts());
    let b = Gun::new(opts());
    let (rtc_a, rtc_b) = (a.rtc().ok_or("no rtc")?, b.rtc().ok_or("no rtc")?);
    let (pid_a, pid_b) = (rtc_a.pid().to_owned(), rtc_b.pid().to_owned());

    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let _sub = b.get("shared").on(move |data, _| {
        let _ = tx.send(data);
    });

    // The relay introduces them (Gun.js's lib/webrtc.js signalling).
    let deadline = Instant::now() + Duration::from_secs(30);
    while rtc_a.connected() != [pid_b.clone()] || rtc_b.connected() != [pid_a.clone()] {
        if Instant::now() > deadline {
            return Err("no data channel within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("data channel open between {pid_a} and {pid_b}");

    // The relay goes away; the peers keep talking over the data channel.
    relay.shutdown().await?;
    println!("relay stopped");
    a.get("shared").put(json!({"note": "over WebRTC"})).await?;
    let got = timeout(Duration::from_secs(15), async {
        while let Some(d) = rx.recv().await {
            if d["note"] == "over WebRTC" {
                return Some(d);
            }
        }
        None
    })
    .await
    .map_err(|_| "the write did not reach the other peer within 15 s")?
    .ok_or("the subscription ended")?;
    assert_eq!(got["note"], "over WebRTC");
    println!("b got {got} with the relay gone");

    a.shutdown().await?;
    b.shutdown().await?;
    println!("webrtc: ok");
    Ok(())
}
