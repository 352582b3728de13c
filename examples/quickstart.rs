//! The program of the README's "Use it from Rust", exactly: a test
//! (crates/gun/tests/readme.rs) checks that the two are the same text and runs
//! it against a relay on 127.0.0.1:8765, which must then hold the data.
use gun::{Gun, GunOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), gun::Error> {
    let gun = Gun::new(GunOptions {
        peers: vec!["http://127.0.0.1:8765/gun".into()],
        ..Default::default()
    });
    // Resolves once applied (and stored, with a durable store) here; peers get it
    // in the background, and shutdown() waits until one acked it.
    gun.get("user")
        .put(json!({"name": "Alice", "pet": {"kind": "cat"}}))
        .await?;
    let kind = gun.get("user").get("pet").get("kind").then().await?; // Some("cat")
    println!("kind: {kind:?}");
    let _sub = gun.get("user").on(|data, key| println!("{key}: {data}")); // once per change
    gun.get("people").set(json!({"name": "Bob"})).await?;
    gun.get("people")
        .map()
        .once(|person, soul| println!("{soul}: {person}"))
        .await?;
    let report = gun.shutdown().await?; // waits (at most 5 s) for peers to ack every write
    println!("undelivered writes: {}", report.undelivered);
    Ok(())
}
