//! Basic operations: put, get, once, on.
//!
//! Run with `cargo run --example basic`.

use gun::{Gun, GunOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gun = Gun::new(GunOptions::default());

    // Listen first: `on` fires with the current data and once per change.
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let sub = gun.get("alice").on(move |data, key| {
        println!("on {key}: {data}");
        let _ = tx.send(data);
    });

    // put resolves once the write is durable in the local store.
    let ack = gun
        .get("alice")
        .put(json!({"name": "Alice", "age": 30}))
        .await?;
    println!("put applied {} keys", ack.accepted);
    assert_eq!(ack.accepted, 2, "both keys written");

    // once / then always resolve: the data, or None after a bounded wait.
    gun.get("alice")
        .get("name")
        .once(|data, key| println!("once {key}: {data}"))
        .await?;
    let age = gun.get("alice").get("age").then().await?;
    println!("age = {age:?}");
    assert_eq!(age, Some(json!(30)));
    let nobody = gun.get("nobody").then().await?;
    println!("missing node = {nobody:?}");
    assert_eq!(nobody, None, "a node nobody wrote reads as None");

    gun.get("alice").put(json!({"age": 31})).await?;
    // The subscription sees the change (bounded wait).
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(data) = seen.recv().await {
            if data["age"] == 31 {
                return;
            }
        }
    })
    .await
    .map_err(|_| "`on` did not see the change to age 31 within 5 s")?;
    drop(sub);
    gun.shutdown().await?;
    Ok(())
}
