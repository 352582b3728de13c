//! Chain operations: get, put, back, map, set.
//!
//! Run with `cargo run --example chain`.

use gun::{Gun, GunOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), gun::Error> {
    let gun = Gun::new(GunOptions::default());

    // Nested objects become linked nodes: `mark/boss` linked from `mark.boss`.
    gun.get("mark")
        .put(json!({"name": "Mark", "boss": {"name": "Amber", "title": "CEO"}}))
        .await?;
    let boss = gun.get("mark").get("boss");
    println!("boss soul = {:?}", boss.soul().await?);
    println!("boss = {:?}", boss.then().await?);

    // back(1) walks up the chain again.
    println!(
        "back to mark = {:?}",
        boss.back(1).get("name").then().await?
    );

    // set adds items with random souls to a list node; map visits each child.
    let people = gun.get("people");
    for name in ["Ann", "Bob", "Cyd"] {
        people.set(json!({"name": name})).await?;
    }
    people
        .map()
        .once(|person, soul| println!("{soul}: {person}"))
        .await?;

    // Writing a plain value to a key chain sets that key.
    gun.get("mark")
        .get("boss")
        .get("title")
        .put(json!("Chair"))
        .await?;
    println!(
        "title = {:?}",
        gun.get("mark").get("boss").get("title").then().await?
    );
    gun.shutdown().await?;
    Ok(())
}
