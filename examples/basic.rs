//! Basic operations: put, get, once, on.
//!
//! Run with `cargo run --example basic`.

use gun::{Gun, GunOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), gun::Error> {
    let gun = Gun::new(GunOptions::default());

    // Listen first: `on` fires with the current data and once per change.
    let sub = gun.get("alice").on(|data, key| {
        println!("on {key}: {data}");
    });

    // put resolves once the write is durable in the local store.
    let ack = gun
        .get("alice")
        .put(json!({"name": "Alice", "age": 30}))
        .await?;
    println!("put applied {} keys", ack.accepted);

    // once / then always resolve: the data, or None after a bounded wait.
    gun.get("alice")
        .get("name")
        .once(|data, key| println!("once {key}: {data}"))
        .await?;
    let age = gun.get("alice").get("age").then().await?;
    println!("age = {age:?}");
    let nobody = gun.get("nobody").then().await?;
    println!("missing node = {nobody:?}");

    gun.get("alice").put(json!({"age": 31})).await?;
    // Give the subscription a moment to print the change.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(sub);
    gun.shutdown().await?;
    Ok(())
}
