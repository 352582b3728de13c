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
    let soul = boss.soul().await?;
    println!("boss soul = {soul:?}");
    let data = boss.then().await?;
    println!("boss = {data:?}");
    assert_eq!(data, Some(json!({"name": "Amber", "title": "CEO"})));

    // back(1) walks up the chain again.
    let name = boss.back(1).get("name").then().await?;
    println!("back to mark = {name:?}");
    assert_eq!(name, Some(json!("Mark")));

    // set adds items with random souls to a list node; map visits each child.
    let people = gun.get("people");
    for name in ["Ann", "Bob", "Cyd"] {
        people.set(json!({"name": name})).await?;
    }
    let names = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = names.clone();
    people
        .map()
        .once(move |person, soul| {
            println!("{soul}: {person}");
            if let (Ok(mut seen), Some(name)) = (seen.lock(), person["name"].as_str()) {
                seen.push(name.to_owned());
            }
        })
        .await?;
    let mut names = names.lock().map(|n| n.clone()).unwrap_or_default();
    names.sort();
    assert_eq!(names, ["Ann", "Bob", "Cyd"], "map visited each item once");

    // Writing a plain value to a key chain sets that key.
    gun.get("mark")
        .get("boss")
        .get("title")
        .put(json!("Chair"))
        .await?;
    let title = gun.get("mark").get("boss").get("title").then().await?;
    println!("title = {title:?}");
    assert_eq!(title, Some(json!("Chair")));
    gun.shutdown().await?;
    Ok(())
}
