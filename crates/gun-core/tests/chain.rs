//! The Chain API on one peer without network: put, get, once, on, map, set, back,
//! off, and the §9 behaviours (nested souls, links reused, once on missing data).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gun_core::{Engine, EngineOptions, Gun};
use gun_store_memory::MemoryStore;
use serde_json::{Value, json};

fn gun() -> Gun {
    Gun::from_engine(Engine::new(EngineOptions::new(
        Arc::new(MemoryStore::new()),
    )))
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

#[tokio::test]
async fn put_then_read_node_and_keys() {
    let g = gun();
    let ack = g
        .get("alice")
        .put(json!({"name": "Alice", "age": 30, "ok": true, "none": null}))
        .await
        .unwrap();
    assert_eq!(ack.accepted, 4);
    assert_eq!(
        g.get("alice").then().await.unwrap(),
        Some(json!({"age": 30, "name": "Alice", "none": null, "ok": true}))
    );
    assert_eq!(
        g.get("alice").get("age").then().await.unwrap(),
        Some(json!(30))
    );
    assert_eq!(g.get("alice").get("missing").then().await.unwrap(), None);
    // The same write again applies nothing new only if the state were equal; a
    // new put has a newer state, so it is accepted (and fires `on` again).
    let again = g.get("alice").put(json!({"age": 30})).await.unwrap();
    assert_eq!(again.accepted, 1);
}

#[tokio::test]
async fn once_resolves_on_missing_data() {
    let g = gun();
    let start = std::time::Instant::now();
    assert_eq!(g.get("nobody").then().await.unwrap(), None);
    let mut called = false;
    g.get("nobody").once(|_, _| called = true).await.unwrap();
    assert!(!called);
    // Without peers nothing is waited for.
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn nested_objects_become_linked_nodes() {
    let g = gun();
    g.get("mark")
        .put(json!({"name": "Mark", "boss": {"name": "Amber", "pet": {"kind": "cat"}}}))
        .await
        .unwrap();
    // Souls as Gun.js makes them: parent soul + "/" + key.
    assert_eq!(
        g.get("mark")
            .get("boss")
            .soul()
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        "mark/boss"
    );
    assert_eq!(
        g.get("mark").then().await.unwrap(),
        Some(json!({"boss": {"#": "mark/boss"}, "name": "Mark"}))
    );
    assert_eq!(
        g.get("mark")
            .get("boss")
            .get("pet")
            .get("kind")
            .then()
            .await
            .unwrap(),
        Some(json!("cat"))
    );
    assert_eq!(
        g.get("mark/boss/pet").get("kind").then().await.unwrap(),
        Some(json!("cat"))
    );

    // An existing link is reused, not replaced.
    g.get("x")
        .put(json!({"friend": {"#": "someone"}}))
        .await
        .unwrap();
    g.get("x")
        .put(json!({"friend": {"name": "Zed"}}))
        .await
        .unwrap();
    assert_eq!(
        g.get("someone").get("name").then().await.unwrap(),
        Some(json!("Zed"))
    );
    assert_eq!(
        g.get("x")
            .get("friend")
            .soul()
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        "someone"
    );

    // Writing through a path that does not exist yet links new nodes.
    g.get("a")
        .get("b")
        .get("c")
        .put(json!({"d": 1}))
        .await
        .unwrap();
    assert_eq!(
        g.get("a").get("b").get("c").get("d").then().await.unwrap(),
        Some(json!(1))
    );
    assert_eq!(
        g.get("a/b/c").get("d").then().await.unwrap(),
        Some(json!(1))
    );

    // A plain value on a key chain sets that key.
    g.get("mark")
        .get("boss")
        .get("name")
        .put(json!("Amy"))
        .await
        .unwrap();
    assert_eq!(
        g.get("mark/boss").get("name").then().await.unwrap(),
        Some(json!("Amy"))
    );
}

#[tokio::test]
async fn invalid_data_is_refused_with_a_path() {
    let g = gun();
    let e = g.get("a").put(json!({"list": [1, 2]})).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid data: Array at a.list");
    assert!(g.get("a").put(json!(5)).await.is_err());
    assert!(g.get("").put(json!({"x": 1})).await.is_err());
    assert!(g.get("a").put(json!({"": 1})).await.is_err());
    // Nothing of a refused put was written.
    assert_eq!(g.get("a").then().await.unwrap(), None);
}

#[tokio::test]
async fn set_and_map() {
    let g = gun();
    let list = g.get("people");
    let mut souls = Vec::new();
    for n in 0..20 {
        let item = list
            .set(json!({"name": format!("p{n}"), "n": n}))
            .await
            .unwrap();
        souls.push(item.soul().await.unwrap().unwrap());
    }
    // Each item is linked under a key equal to its soul.
    let node = g.get("people").then().await.unwrap().unwrap();
    assert_eq!(node.as_object().unwrap().len(), 20);
    for s in &souls {
        assert_eq!(node[s.as_str()], json!({"#": s.as_str()}));
    }
    let mut seen = Vec::new();
    list.map()
        .once(|d, k| seen.push((k.to_string(), d)))
        .await
        .unwrap();
    assert_eq!(seen.len(), 20);
    assert!(
        seen.iter()
            .all(|(k, d)| souls.iter().any(|s| s.as_str() == k) && d["name"].is_string())
    );
    // then() on a map gives all children.
    let all = list.map().then().await.unwrap().unwrap();
    assert_eq!(all.as_object().unwrap().len(), 20);
    // A filtered map.
    g.get("fruit")
        .put(json!({"apple": 1, "apricot": 2, "banana": 3}))
        .await
        .unwrap();
    let mut keys = Vec::new();
    g.get("fruit")
        .map_filter(gun_core::Lex::prefix("ap"))
        .once(|_, k| keys.push(k.to_string()))
        .await
        .unwrap();
    assert_eq!(keys, ["apple", "apricot"]);
}

#[tokio::test]
async fn on_fires_once_per_change_and_stops_on_off() {
    let g = gun();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s2 = seen.clone();
    let sub = g.get("counter").get("n").on(move |d, k| {
        assert_eq!(k, "n");
        s2.lock().unwrap().push(d);
    });
    settle().await;
    for i in 0..5 {
        g.get("counter").put(json!({"n": i})).await.unwrap();
        settle().await;
    }
    // A write that changes another key does not fire a key subscription.
    g.get("counter").put(json!({"other": 1})).await.unwrap();
    settle().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![json!(0), json!(1), json!(2), json!(3), json!(4)]
    );
    drop(sub);
    g.get("counter").put(json!({"n": 99})).await.unwrap();
    settle().await;
    assert_eq!(seen.lock().unwrap().len(), 5);

    // off() stops every subscription of that path.
    let count = Arc::new(Mutex::new(0));
    let c2 = count.clone();
    let _keep = g.get("counter").on(move |_, _| *c2.lock().unwrap() += 1);
    settle().await;
    assert_eq!(*count.lock().unwrap(), 1); // current data
    g.get("counter").off();
    g.get("counter").put(json!({"n": 100})).await.unwrap();
    settle().await;
    assert_eq!(*count.lock().unwrap(), 1);
}

#[tokio::test]
async fn on_follows_links_and_map_on_fires_per_child() {
    let g = gun();
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let s2 = seen.clone();
    let _sub = g
        .get("room")
        .map()
        .on(move |d, k| s2.lock().unwrap().push((k.to_string(), d)));
    settle().await;
    g.get("room")
        .get("m1")
        .put(json!({"text": "hi"}))
        .await
        .unwrap();
    settle().await;
    g.get("room")
        .get("m2")
        .put(json!({"text": "yo"}))
        .await
        .unwrap();
    settle().await;
    // A change inside a child fires for that child only.
    g.get("room/m1").put(json!({"text": "hi!"})).await.unwrap();
    settle().await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            ("m1".to_string(), json!({"text": "hi"})),
            ("m2".to_string(), json!({"text": "yo"})),
            ("m1".to_string(), json!({"text": "hi!"})),
        ]
    );
}

#[tokio::test]
async fn on_stream_and_back() {
    let g = gun();
    g.get("s").put(json!({"v": 1})).await.unwrap();
    let mut st = g.get("s").get("v").on_stream();
    assert_eq!(st.next().await, Some((json!(1), "v".to_string())));
    g.get("s").put(json!({"v": 2})).await.unwrap();
    assert_eq!(st.next().await, Some((json!(2), "v".to_string())));
    let c = g.get("a").get("b").get("c");
    assert_eq!(c.back(1).path(), "a.b");
    assert_eq!(c.back(2).path(), "a");
    assert_eq!(c.back(-1).path(), "");
}

#[tokio::test]
async fn deferred_future_write_applies_when_due() {
    let g = gun();
    let now = gun_core::now_ms();
    let text = format!(
        r##"{{"f":{{"_":{{"#":"f",">":{{"k":{}}}}},"k":"later"}}}}"##,
        now + 300.0
    );
    let graph = gun_graph::Graph::from_wire(&text).unwrap();
    let r = g
        .engine()
        .put_local(graph, &Default::default())
        .await
        .unwrap();
    assert_eq!((r.accepted, r.deferred), (0, 1));
    assert_eq!(g.get("f").get("k").then().await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        g.get("f").get("k").then().await.unwrap(),
        Some(json!("later"))
    );
}
