//! End-to-end runs over the deterministic in-memory network: clients and relays
//! (with the small test engine of `common`) exchanging gets and writes, with
//! duplicated, reordered and dropped frames.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Node, TestHub, World};
use gun_dam::Get;
use gun_dam::mock::{Faults, Stats};
use gun_graph::{Graph, Soul, Value};

fn write(soul: &str, key: &str, value: &str, state: u64) -> Graph {
    Graph::from_wire(&format!(
        r##"{{"{soul}":{{"_":{{"#":"{soul}",">":{{"{key}":{state}}}}},"{key}":"{value}"}}}}"##
    ))
    .unwrap()
}

fn value(h: &TestHub, soul: &str, key: &str) -> Option<Value> {
    h.graph().get(soul).and_then(|n| n.value(key)).cloned()
}

/// Client A and client B on relay R: B subscribes by reading, A writes, B gets
/// the push; A's write is acked (nothing left pending).
fn star(seed: u64, faults: Faults) -> (World, Stats) {
    let mut w = World::new(seed);
    let r = w.add(Node::relay("R", seed));
    let a = w.add(Node::client("A", seed + 1));
    let b = w.add(Node::client("B", seed + 2));
    w.net.connect(a, r, "ws://r/gun");
    w.net.connect(b, r, "ws://r/gun");
    w.settle();
    w.net.set_faults(faults);
    w.hubs[b].read(Get::node(Soul::new("room").unwrap()));
    w.settle();
    w.hubs[a].write(write("room", "topic", "hello", 1));
    w.settle();
    w.hubs[a].write(write("room", "topic", "hello2", 2));
    w.settle();
    let stats = w.net.stats();
    (w, stats)
}

#[test]
fn writes_reach_subscribers_through_a_relay() {
    let (w, _) = star(1, Faults::default());
    assert_eq!(
        value(&w.hubs[0], "room", "topic"),
        Some(Value::from("hello2"))
    );
    assert_eq!(
        value(&w.hubs[2], "room", "topic"),
        Some(Value::from("hello2"))
    );
    assert_eq!(
        w.hubs[1]
            .node
            .lock()
            .unwrap()
            .mesh
            .pending_puts("ws://r/gun"),
        0
    );
}

#[test]
fn duplicated_and_reordered_frames_still_converge() {
    for seed in 0..20 {
        let faults = Faults {
            drop: 0.0,
            duplicate: 0.3,
            reorder: 0.5,
        };
        let (w, stats) = star(seed * 7 + 3, faults);
        assert!(stats.duplicated > 0 && stats.reordered > 0, "{stats:?}");
        // HAM makes the order irrelevant: everyone ends with the newest value.
        for h in &w.hubs {
            assert_eq!(
                value(h, "room", "topic"),
                Some(Value::from("hello2")),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn runs_are_deterministic() {
    let faults = Faults {
        drop: 0.1,
        duplicate: 0.2,
        reorder: 0.3,
    };
    let (w1, s1) = star(42, faults);
    let (w2, s2) = star(42, faults);
    assert_eq!(s1, s2);
    for (a, b) in w1.hubs.iter().zip(&w2.hubs) {
        assert_eq!(a.graph(), b.graph());
    }
}

#[test]
fn lossy_network_never_panics() {
    for seed in 0..10 {
        let (w, stats) = star(
            seed,
            Faults {
                drop: 0.4,
                duplicate: 0.2,
                reorder: 0.5,
            },
        );
        assert!(stats.dropped > 0);
        // The writer always has its own write.
        assert_eq!(
            value(&w.hubs[1], "room", "topic"),
            Some(Value::from("hello2"))
        );
    }
}

/// Two gun-rs relays peered (R2 dials R1): writes sync in full between them
/// (full peers), and reach a subscriber on the other relay.
#[test]
fn peered_relays_sync_in_full() {
    let mut w = World::new(5);
    let r1 = w.add(Node::relay("R1", 10));
    let r2 = w.add(Node::relay("R2", 20));
    let a = w.add(Node::client("A", 30));
    let b = w.add(Node::client("B", 40));
    w.net.connect(r2, r1, "ws://r1/gun");
    w.net.connect(a, r1, "ws://r1/gun");
    w.net.connect(b, r2, "ws://r2/gun");
    w.settle();
    w.hubs[b].read(Get::key(Soul::new("doc").unwrap(), "title"));
    w.settle();
    w.hubs[a].write(write("doc", "title", "Hi", 1));
    w.hubs[a].write(write("other", "x", "never asked", 1));
    w.settle();
    // Both relays store everything; B only what it asked for.
    for r in [r1, r2] {
        assert_eq!(value(&w.hubs[r], "doc", "title"), Some(Value::from("Hi")));
        assert_eq!(
            value(&w.hubs[r], "other", "x"),
            Some(Value::from("never asked"))
        );
    }
    assert_eq!(value(&w.hubs[b], "doc", "title"), Some(Value::from("Hi")));
    assert!(w.hubs[b].graph().get("other").is_none());
    // A write on R2's side reaches R1 (R2 dialed it: an outgoing full peer).
    w.hubs[b].write(write("doc", "title", "Hello", 2));
    w.settle();
    assert_eq!(
        value(&w.hubs[r1], "doc", "title"),
        Some(Value::from("Hello"))
    );
    // A wrote "Hi" itself but never subscribed: no push of "Hello".
    assert_eq!(value(&w.hubs[a], "doc", "title"), Some(Value::from("Hi")));
}

/// A client writes while its relay is unreachable; the write is sent when the
/// connection comes back (Gun.js clients lose it, §14.2).
#[test]
fn offline_writes_are_sent_on_reconnect() {
    let mut w = World::new(9);
    let r = w.add(Node::relay("R", 1));
    let a = w.add(Node::client("A", 2));
    let conn = w.net.connect(a, r, "ws://r/gun");
    w.settle();
    w.hubs[a].read(Get::node(Soul::new("s").unwrap()));
    w.settle();
    w.net.disconnect(conn);
    w.hubs[a].write(write("s", "k", "offline", 1));
    w.settle();
    assert!(w.hubs[r].graph().get("s").is_none());
    w.net.connect(a, r, "ws://r/gun");
    w.settle();
    assert_eq!(value(&w.hubs[r], "s", "k"), Some(Value::from("offline")));
    assert_eq!(
        w.hubs[a]
            .node
            .lock()
            .unwrap()
            .mesh
            .pending_puts("ws://r/gun"),
        0
    );
    // The re-sent get re-subscribed A: a later write from elsewhere reaches it.
    let c = w.add(Node::client("C", 3));
    w.net.connect(c, r, "ws://r/gun");
    w.settle();
    w.hubs[c].write(write("s", "k", "from C", 2));
    w.settle();
    assert_eq!(value(&w.hubs[a], "s", "k"), Some(Value::from("from C")));
}

#[test]
fn full_queues_and_closed_links() {
    use gun_dam::LinkError;
    let mut w = World::new(1);
    let r = w.add(Node::relay("R", 1));
    let a = w.add(Node::client("A", 2));
    let conn = w.net.connect(a, r, "ws://r/gun");
    w.settle();
    w.net.set_capacity(Some(0));
    w.hubs[a].write(write("s", "k", "v", 1)); // dropped: queue full
    w.net.set_capacity(None);
    w.settle();
    assert!(w.hubs[r].graph().get("s").is_none());
    w.net.disconnect(conn);
    w.settle();
    let _ = LinkError::Closed;
    assert_eq!(w.net.queued(), 0);
}
