//! The client conformance suite: the Chain API of a Rust client (`gun::Gun`)
//! against gun-relay (in process, sled store) AND against a genuine Gun.js
//! relay (npm gun 0.2020.1241 with radisk, AXE and SEA: interop/lib/gunjs-relay.js,
//! in its own process). Every case runs against both, with the same
//! assertions; where the relays differ, the case says so.
//!
//! Writers and readers are separate `Gun` instances (separate caches and
//! stores), so a read proves what the relay holds and serves.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Kind, TestRelay, client, connected, free_port, kinds, soul, url};
use gun::{Gun, GunOptions, PutOptions};
use serde_json::{Value, json};

/// Runs `case` against every relay kind.
macro_rules! against_both {
    ($name:ident, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for kind in kinds() {
                eprintln!("--- {} against {kind:?}", stringify!($name));
                $case(kind).await;
            }
        }
    };
}

fn without_meta(v: Option<Value>) -> Value {
    let mut v = v.unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("_");
    }
    v
}

/// A write, then `shutdown()` with no ack asked for: the relay has it (the
/// outbox is delivered before shutdown returns).
async fn put_then_shutdown(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let s = soul("pts");
    let a = client(&relay.url());
    a.get(&s)
        .put(json!({"name": "Alice", "n": 1}))
        .await
        .unwrap();
    let report = a.shutdown().await.unwrap();
    assert_eq!(
        report.undelivered, 0,
        "{kind:?}: every write acked before shutdown returned"
    );
    let b = client(&relay.url());
    let got = without_meta(b.get(&s).then().await.unwrap());
    assert_eq!(got, json!({"name": "Alice", "n": 1}), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(put_then_shutdown_reaches_the_relay, put_then_shutdown);

/// `put_with(acks: 1)` resolves with the relay's ack.
async fn put_with_ack(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let a = client(&relay.url());
    connected(&a).await;
    let ack = a
        .get(soul("ack"))
        .put_with(
            json!({"k": "v"}),
            PutOptions {
                acks: 1,
                timeout: Duration::from_secs(10),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ack.acked_by.len(), 1, "{kind:?}");
    assert_eq!(
        a.engine().undelivered(),
        0,
        "{kind:?}: the acked write left the outbox"
    );
    a.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(put_with_ack_is_acked_by_the_relay, put_with_ack);

/// Nested objects become linked nodes; key, node and path reads from another
/// client follow the links through the relay.
async fn nested_links(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let s = soul("nest");
    let a = client(&relay.url());
    a.get(&s)
        .put(json!({"name": "Alice", "pet": {"kind": "cat", "toy": {"color": "red"}}}))
        .await
        .unwrap();
    assert_eq!(a.shutdown().await.unwrap().undelivered, 0);
    let b = client(&relay.url());
    let color = b
        .get(&s)
        .get("pet")
        .get("toy")
        .get("color")
        .then()
        .await
        .unwrap();
    assert_eq!(color, Some(json!("red")), "{kind:?}");
    let pet = without_meta(b.get(&s).get("pet").then().await.unwrap());
    assert_eq!(pet["kind"], json!("cat"), "{kind:?}");
    assert!(
        pet["toy"].get("#").is_some(),
        "{kind:?}: toy is a link: {pet}"
    );
    let name = b.get(&s).get("name").then().await.unwrap();
    assert_eq!(name, Some(json!("Alice")), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(nested_links_read_through_the_relay, nested_links);

/// `on` gets each change a peer writes, once; `off` stops it.
async fn on_and_off(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let s = soul("on");
    let a = client(&relay.url());
    let b = client(&relay.url());
    connected(&a).await;
    connected(&b).await;
    a.get(&s).put(json!({"v": 0})).await.unwrap();
    assert_eq!(a.engine().deliver_outbox(Duration::from_secs(10)).await, 0);
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = seen.clone();
    let _sub = b
        .get(&s)
        .get("v")
        .on(move |data, _key| sink.lock().unwrap().push(data));
    let wait_for = |want: Value| {
        let seen = seen.clone();
        async move {
            for _ in 0..500 {
                if seen.lock().unwrap().contains(&want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!(
                "{kind:?}: `on` never saw {want}: {:?}",
                seen.lock().unwrap()
            );
        }
    };
    wait_for(json!(0)).await;
    for v in 1..=3 {
        a.get(&s).put(json!({"v": v})).await.unwrap();
        wait_for(json!(v)).await;
    }
    let ones = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|d| **d == json!(1))
        .count();
    assert_eq!(
        ones,
        1,
        "{kind:?}: one change fires once: {:?}",
        seen.lock().unwrap()
    );
    b.get(&s).get("v").off();
    let before = seen.lock().unwrap().len();
    a.get(&s).put(json!({"v": 99})).await.unwrap();
    assert_eq!(a.engine().deliver_outbox(Duration::from_secs(10)).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "{kind:?}: nothing after off()"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(on_sees_every_change_and_off_stops_it, on_and_off);

/// Ten `set`s, `shutdown`, and another client's `map().once` sees all ten.
async fn set_then_map(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let s = soul("list");
    let a = client(&relay.url());
    for i in 0..10 {
        a.get(&s).set(json!({"i": i})).await.unwrap();
    }
    assert_eq!(a.shutdown().await.unwrap().undelivered, 0, "{kind:?}");
    let b = client(&relay.url());
    let mut items = Vec::new();
    b.get(&s)
        .map()
        .once(|item, _soul| items.push(item["i"].as_i64().unwrap()))
        .await
        .unwrap();
    items.sort_unstable();
    assert_eq!(items, (0..10).collect::<Vec<_>>(), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(set_then_map_once_sees_every_item, set_then_map);

/// `back` walks up the chain; it names the same data either way.
async fn back(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let s = soul("back");
    let a = client(&relay.url());
    a.get(&s)
        .put(json!({"a": {"b": "deep"}, "top": 1}))
        .await
        .unwrap();
    assert_eq!(a.shutdown().await.unwrap().undelivered, 0);
    let b = client(&relay.url());
    let deep = b.get(&s).get("a").get("b");
    assert_eq!(deep.back(1).path(), format!("{s}.a"));
    let top = deep.back(2).get("top").then().await.unwrap();
    assert_eq!(top, Some(json!(1)), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(back_walks_up_to_data_on_the_relay, back);

/// A write made while the relay is down is delivered when it comes up (the
/// client dials again within its backoff; shutdown waits for the ack).
async fn offline_then_connect(kind: Kind) {
    let port = free_port();
    let s = soul("offline");
    let a = client(&url(port));
    a.get(&s).put(json!({"made": "offline"})).await.unwrap();
    assert_eq!(
        a.engine().undelivered(),
        1,
        "{kind:?}: waiting in the outbox"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let relay = TestRelay::start(kind, port).await;
    assert_eq!(
        a.engine().deliver_outbox(Duration::from_secs(15)).await,
        0,
        "{kind:?}: the offline write reached the relay once it came up"
    );
    a.shutdown().await.unwrap();
    let b = client(&relay.url());
    let got = without_meta(b.get(&s).then().await.unwrap());
    assert_eq!(got, json!({"made": "offline"}), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(
    offline_write_is_delivered_when_the_relay_comes_up,
    offline_then_connect
);

/// A node read after a one-key read has every key the relay holds.
async fn whole_node_after_key_read(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let s = soul("whole");
    let a = client(&relay.url());
    a.get(&s)
        .put(json!({"x": 1, "y": 2, "z": 3}))
        .await
        .unwrap();
    assert_eq!(a.shutdown().await.unwrap().undelivered, 0);
    let b = client(&relay.url());
    assert_eq!(b.get(&s).get("x").then().await.unwrap(), Some(json!(1)));
    let node = without_meta(b.get(&s).then().await.unwrap());
    assert_eq!(node, json!({"x": 1, "y": 2, "z": 3}), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(node_read_after_key_read_is_whole, whole_node_after_key_read);

/// Killed with SIGKILL after `put` resolved and before any peer acked it, a
/// program on a durable store sends the write when it starts again (the
/// store's outbox). The writer is this test binary run as a child process.
async fn durable_outbox(kind: Kind) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("client");
    let s = soul("outbox");
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["outbox_writer_child", "--exact", "--ignored", "--nocapture"])
        .env(
            "GUN_OUTBOX_CHILD",
            format!("{}|{}|{s}", data.display(), url(port)),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let resolved = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("PUT_RESOLVED"))
    });
    let resolved = tokio::time::timeout(Duration::from_secs(60), resolved)
        .await
        .expect("the writer did not report its put in 60 s")
        .unwrap();
    assert!(resolved, "the writer exited without resolving its put");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let relay = TestRelay::start(kind, port).await;
    let store = Arc::new(gun::SledStore::open(&data).unwrap());
    let again = Gun::new(GunOptions {
        peers: vec![relay.url()],
        store: Some(store),
        ..Default::default()
    });
    assert_eq!(
        again.shutdown().await.unwrap().undelivered,
        0,
        "{kind:?}: the restarted program delivered the write of the killed one"
    );
    let b = client(&relay.url());
    let got = without_meta(b.get(&s).then().await.unwrap());
    assert_eq!(got, json!({"written": "before SIGKILL"}), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(durable_outbox_survives_sigkill, durable_outbox);

/// The writer of `durable_outbox_survives_sigkill`, run in a child process by
/// it (ignored otherwise): puts one node on a sled store with the relay down,
/// says PUT_RESOLVED, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by durable_outbox_survives_sigkill"]
async fn outbox_writer_child() {
    let spec = std::env::var("GUN_OUTBOX_CHILD").expect("run by durable_outbox_survives_sigkill");
    let mut parts = spec.splitn(3, '|');
    let (data, peer, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let store = Arc::new(gun::SledStore::open(data).unwrap());
    let gun = Gun::new(GunOptions {
        peers: vec![peer.to_owned()],
        store: Some(store),
        ..Default::default()
    });
    gun.get(s)
        .put(json!({"written": "before SIGKILL"}))
        .await
        .unwrap();
    assert_eq!(gun.engine().undelivered(), 1);
    println!("PUT_RESOLVED");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// SEA user space: a user created here writes signed data; another client
/// reads it verified through the relay (both relays enforce SEA).
async fn user_space(kind: Kind) {
    let relay = TestRelay::start(kind, 0).await;
    let a = client(&relay.url());
    connected(&a).await;
    let alias = soul("alice");
    let pub_ = a
        .user()
        .create(&alias, "correct horse battery")
        .await
        .unwrap();
    a.user()
        .get("profile")
        .put(json!({"name": "Alice"}))
        .await
        .unwrap();
    assert_eq!(a.shutdown().await.unwrap().undelivered, 0, "{kind:?}");
    let b = client(&relay.url());
    let name = b
        .user_of(&pub_)
        .get("profile")
        .get("name")
        .then()
        .await
        .unwrap();
    assert_eq!(name, Some(json!("Alice")), "{kind:?}");
    b.shutdown().await.unwrap();
    relay.stop().await;
}
against_both!(user_space_is_signed_and_read_verified, user_space);
