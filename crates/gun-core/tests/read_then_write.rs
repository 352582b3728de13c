//! Writes that reach the relay's peers in more than one part.
//!
//! A write whose data reached the relay first in a get reply it routed (the
//! holder answered a forwarded get, then its own put arrived) still reaches
//! the relay's subscribers: HAM finds nothing new in the put, but nobody was
//! pushed the reply. WebRTC signalling depends on it (a page's announcement
//! must reach the other peers as a write, whose `#` their offer answers).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gun_core::{Engine, EngineOptions, MeshConfig};
use gun_dam::{Direction, Hub, Link, LinkError, PeerId};
use gun_store_memory::MemoryStore;
use serde_json::{Value, json};

#[derive(Default)]
struct Rec(Mutex<Vec<Value>>);

impl Link for Rec {
    fn send(&self, frame: Arc<str>) -> Result<(), LinkError> {
        let v: Value = serde_json::from_str(&frame).unwrap_or(Value::Null);
        let mut got = self.0.lock().unwrap();
        match v {
            Value::Array(a) => got.extend(a),
            v => got.push(v),
        }
        Ok(())
    }
    fn close(&self, _: &str) {}
}

impl Rec {
    fn seen(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// An engine configured as a relay, on the memory store.
fn relay() -> Engine {
    let mut o = EngineOptions::new(Arc::new(MemoryStore::new()));
    o.mesh = MeshConfig::relay();
    Engine::new(o)
}

fn attach(relay: &Engine) -> (Arc<Rec>, PeerId) {
    let rec = Arc::new(Rec::default());
    let link: Arc<dyn Link> = rec.clone();
    let id = relay.attach(link, Direction::Incoming);
    (rec, id)
}

/// A relay with a writer and a full peer (greeted as a gun-rs relay) attached:
/// (relay, writer's link, writer's id, full peer's link).
fn relay_with_a_full_peer() -> (Engine, Arc<Rec>, PeerId, Arc<Rec>) {
    let relay = relay();
    let (writer, w) = attach(&relay);
    let (full, f) = attach(&relay);
    relay.receive(
        f,
        &json!({"#": "hi-f", "dam": "?", "pid": "F", "gunrs": 1}).to_string(),
    );
    // (Handled before `receive` returns: the peer is a full peer from here.)
    (relay, writer, w, full)
}

/// The writes a link received.
fn puts(rec: &Rec) -> Vec<Value> {
    rec.seen()
        .into_iter()
        .filter(|m| m.get("put").is_some())
        .collect()
}

/// How many answers to the put `w1` a link received.
fn acks_of_w1(rec: &Rec) -> usize {
    rec.seen().iter().filter(|m| m["@"] == "w1").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_read_first_through_a_routed_reply_is_still_pushed_to_subscribers() {
    let relay = relay();
    let (asker, a) = attach(&relay);
    let (sub, s) = attach(&relay);
    let (holder, h) = attach(&relay);
    // `sub` listens to the room; `asker` asks for it, the get is forwarded to
    // the holder (and the others).
    relay.receive(
        s,
        &json!({"#": "sub1", "get": {"#": "room", ".": "+"}}).to_string(),
    );
    relay.receive(a, &json!({"#": "ask1", "get": {"#": "room"}}).to_string());
    until("the get forwarded to the holder", || {
        holder
            .seen()
            .iter()
            .any(|m| m["#"] == "ask1" && m.get("get").is_some())
    })
    .await;
    let put = json!({"room": {"_": {"#": "room", ">": {"+": 1000}}, "+": "holder-pid"}});
    // The holder answers the get first, then its own write arrives.
    relay.receive(
        h,
        &json!({"#": "ans1", "@": "ask1", "put": put}).to_string(),
    );
    until("the answer routed to the asker", || {
        asker
            .seen()
            .iter()
            .any(|m| m["@"] == "ask1" && m["put"]["room"]["+"] == "holder-pid")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay.receive(h, &json!({"#": "w1", "put": put}).to_string());
    until("the holder's write acked", || {
        holder
            .seen()
            .iter()
            .any(|m| m["@"] == "w1" && m["ok"].is_boolean())
    })
    .await;
    until("the write pushed to the subscriber", || {
        sub.seen()
            .iter()
            .any(|m| m.get("@").is_none() && m["put"]["room"]["+"] == "holder-pid")
    })
    .await;
    // Its ack goes back to the write's `#`: an offer answering the push
    // reaches the announcer's put callback.
    let push = sub
        .seen()
        .into_iter()
        .find(|m| m.get("@").is_none() && m["put"]["room"]["+"] == "holder-pid")
        .unwrap();
    relay.receive(
        s,
        &json!({"#": "offer1", "@": push["#"], "ok": {"rtc": {"id": "x"}}}).to_string(),
    );
    until("the offer routed to the write's #", || {
        holder
            .seen()
            .iter()
            .any(|m| m["@"] == "w1" && m["ok"]["rtc"]["id"] == "x")
    })
    .await;
    // A second identical write is not pushed again.
    let pushes = |r: &Rec| {
        r.seen()
            .iter()
            .filter(|m| m.get("@").is_none() && m["put"]["room"]["+"] == "holder-pid")
            .count()
    };
    relay.receive(h, &json!({"#": "w2", "put": put}).to_string());
    until("the second write acked", || {
        holder.seen().iter().any(|m| m["@"] == "w2")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pushes(&sub), 1, "{:#?}", sub.seen());
}

/// A put with a key ahead of the relay's clock (Gun.js stamps the keys of one
/// put a thousandth of a millisecond apart): the key applied when due reaches
/// a full peer under a fresh `#` (it saw the put's own `#` with the other
/// key, and a Gun.js relay drops a `#` it has seen), and not the writer. The
/// writer's ack waits for the late key: an ack says the whole put is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_applied_when_due_reaches_full_peers_under_a_fresh_id() {
    let (relay, writer, w, full) = relay_with_a_full_peer();
    let now = gun_core::now_ms();
    let later = now + 150.0;
    let put = json!({"#": "w1", "put": {"s": {"_": {"#": "s", ">": {"a": now, "b": later}}, "a": 1, "b": 2}}});
    relay.receive(w, &put.to_string());
    until("the first part at the full peer", || {
        !puts(&full).is_empty()
    })
    .await;
    // Stored and published, but half the put is not applied yet: no ack.
    tokio::time::sleep(Duration::from_millis(30)).await;
    if puts(&full).len() == 1 {
        assert_eq!(
            acks_of_w1(&writer),
            0,
            "acked before the late key was applied"
        );
    }
    until("both parts at the full peer", || puts(&full).len() >= 2).await;
    let got = puts(&full);
    assert_eq!(got[0]["#"], "w1");
    assert_eq!(got[0]["put"]["s"]["a"], 1);
    assert!(got[0]["put"]["s"].get("b").is_none(), "b applied early");
    assert_ne!(got[1]["#"], "w1", "the late key went under the put's id");
    assert_eq!(got[1]["put"]["s"]["b"], 2);
    assert!(puts(&writer).is_empty(), "a part went back to the writer");
    // The writer's ack comes once the late key is applied, once.
    until("the ack", || acks_of_w1(&writer) > 0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(acks_of_w1(&writer), 1, "{:#?}", writer.seen());
}

/// A put whose keys are all ahead of the clock (a writer whose clock runs
/// ahead) is applied when due as one write: full peers get it in one message,
/// the writer one ack, not one per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_all_ahead_is_applied_when_due_as_one_write() {
    let (relay, writer, w, full) = relay_with_a_full_peer();
    let later = gun_core::now_ms() + 100.0;
    let put = json!({"#": "w1", "put": {
        "s": {"_": {"#": "s", ">": {"a": later, "b": later + 0.001, "c": later + 0.002}}, "a": 1, "b": 2, "c": 3},
        "t": {"_": {"#": "t", ">": {"a": later + 0.003, "b": later + 0.004}}, "a": 4, "b": 5}
    }});
    relay.receive(w, &put.to_string());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(puts(&full).is_empty(), "applied before due");
    assert_eq!(acks_of_w1(&writer), 0, "acked before applied");
    until("the write at the full peer", || !puts(&full).is_empty()).await;
    until("the ack", || acks_of_w1(&writer) > 0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got = puts(&full);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["put"]["s"]["c"], 3);
    assert_eq!(got[0]["put"]["t"]["b"], 5);
    assert_eq!(acks_of_w1(&writer), 1, "{:#?}", writer.seen());
    assert!(
        puts(&writer).is_empty(),
        "the write went back to the writer"
    );
}
