//! Open gets over the mock network: a get that no data answered stays open
//! for `MeshConfig::open_get_ms`, and a peer that connects (or reconnects)
//! meanwhile is asked too; its answer reaches the asker even though the relay
//! said "not found" first.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Node, World, msgs, sends};
use gun_dam::{Direction, Get, Mesh, MeshConfig, Message, PeerId};
use gun_graph::{Graph, Soul, Value};

fn write(soul: &str, key: &str, value: &str, state: u64) -> Graph {
    Graph::from_wire(&format!(
        r##"{{"{soul}":{{"_":{{"#":"{soul}",">":{{"{key}":{state}}}}},"{key}":"{value}"}}}}"##
    ))
    .unwrap()
}

impl World {
    fn value(&self, hub: usize, soul: &str, key: &str) -> Option<Value> {
        self.hubs[hub]
            .graph()
            .get(soul)
            .and_then(|n| n.value(key))
            .cloned()
    }

    /// Data replies the engine of `hub` received (answers to its own gets).
    fn data_replies(&self, hub: usize) -> usize {
        let n = self.hubs[hub].node.lock().unwrap();
        n.delivered
            .iter()
            .filter(|(_, m)| m.reply_to.is_some() && m.put.as_ref().is_some_and(|g| !g.is_empty()))
            .count()
    }

    fn not_founds(&self, hub: usize) -> usize {
        let n = self.hubs[hub].node.lock().unwrap();
        n.delivered
            .iter()
            .filter(|(_, m)| m.reply_to.is_some() && m.put.is_none() && m.ok.is_none())
            .count()
    }
}

/// Relay R, asker A connected; holder B has `room.topic` but is not connected.
fn world(seed: u64) -> (World, usize, usize, usize) {
    let mut w = World::new(seed);
    let r = w.add(Node::relay("R", seed));
    let a = w.add(Node::client("A", seed + 1));
    let b = w.add(Node::client("B", seed + 2));
    w.hubs[b].node.lock().unwrap().graph = write("room", "topic", "hello", 1);
    w.net.connect(a, r, "ws://r/gun");
    w.settle();
    (w, r, a, b)
}

#[test]
fn a_holder_that_connects_after_the_get_is_asked() {
    let (mut w, r, a, b) = world(1);
    w.hubs[a].read(Get::node(Soul::new("room").unwrap()));
    w.settle();
    // The relay knew nothing and nobody else was there: "not found".
    assert_eq!(w.not_founds(a), 1);
    assert_eq!(w.value(a, "room", "topic"), None);
    // B connects 4 ms later: the relay forwards the open get to it, and B's
    // answer is routed to A under the same `@`.
    w.net.advance(4);
    w.net.connect(b, r, "ws://r/gun");
    w.settle();
    assert_eq!(w.value(a, "room", "topic"), Some(Value::from("hello")));
    assert_eq!(w.data_replies(a), 1);
    // The relay stored what it routed, and the get is no longer open: a
    // third peer connecting is not asked.
    assert_eq!(w.value(r, "room", "topic"), Some(Value::from("hello")));
    let c = w.add(Node::client("C", 9));
    w.net.connect(c, r, "ws://r/gun");
    w.settle();
    let asked_c = w.hubs[c]
        .node
        .lock()
        .unwrap()
        .delivered
        .iter()
        .any(|(_, m)| m.get.is_some());
    assert!(!asked_c, "an answered get is not open");
}

#[test]
fn a_holder_that_reconnects_after_the_get_is_asked() {
    let (mut w, r, a, b) = world(2);
    let conn = w.net.connect(b, r, "ws://r/gun");
    w.settle();
    // B goes away (its connection, or the relay, restarted) before A asks.
    w.net.disconnect(conn);
    w.settle();
    w.hubs[a].read(Get::node(Soul::new("room").unwrap()));
    w.settle();
    assert_eq!(w.value(a, "room", "topic"), None);
    w.net.advance(500);
    w.net.connect(b, r, "ws://r/gun");
    w.settle();
    assert_eq!(w.value(a, "room", "topic"), Some(Value::from("hello")));
    assert_eq!(w.data_replies(a), 1);
}

#[test]
fn an_open_get_expires() {
    let (mut w, r, a, b) = world(3);
    w.hubs[a].read(Get::node(Soul::new("room").unwrap()));
    w.settle();
    w.net.advance(MeshConfig::relay().open_get_ms);
    w.hubs[r].exec(|n, now| n.mesh.tick(now));
    w.net.connect(b, r, "ws://r/gun");
    w.settle();
    assert_eq!(w.value(a, "room", "topic"), None);
    assert_eq!(w.data_replies(a), 0);
}

fn relay(cfg: MeshConfig) -> Mesh {
    Mesh::new(MeshConfig {
        pid: Some("R".into()),
        rng_seed: Some(7),
        ..cfg
    })
}

fn incoming(m: &mut Mesh, p: PeerId, pid: &str) {
    m.connect(p, Direction::Incoming, 0);
    m.receive(p, &format!(r#"{{"dam":"?","pid":"{pid}"}}"#), 0);
}

/// The gets a newly connected peer is sent (its greeting left out).
fn gets_to_new_peer(m: &mut Mesh, p: PeerId, now: u64) -> Vec<String> {
    sends(&m.connect(p, Direction::Incoming, now))
        .iter()
        .flat_map(|(_, f)| msgs(f))
        .filter(|v| v.get("get").is_some())
        .map(|v| v["#"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn open_gets_are_bounded_per_asker_and_in_total() {
    let mut r = relay(MeshConfig {
        max_open_gets: 3,
        max_open_gets_per_peer: 2,
        ..MeshConfig::relay()
    });
    incoming(&mut r, PeerId(1), "A");
    incoming(&mut r, PeerId(2), "B");
    for (p, id) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (2, "b2")] {
        r.receive(
            PeerId(p),
            &format!(r##"{{"#":"{id}","get":{{"#":"s{id}"}}}}"##),
            1,
        );
    }
    // A's oldest went at its bound (2), then the oldest of all at 3.
    assert_eq!(gets_to_new_peer(&mut r, PeerId(3), 2), ["a3", "b1", "b2"]);
}

#[test]
fn data_closes_an_open_get_and_not_found_does_not() {
    let mut r = relay(MeshConfig::relay());
    incoming(&mut r, PeerId(1), "A");
    r.receive(PeerId(1), r##"{"#":"g1","get":{"#":"s1"}}"##, 1);
    r.receive(PeerId(1), r##"{"#":"g2","get":{"#":"s2"}}"##, 1);
    r.receive(PeerId(1), r##"{"#":"g3","get":{"#":"s3"}}"##, 1);
    r.reply(PeerId(1), Message::not_found("g1"), 2);
    r.reply(PeerId(1), Message::reply("g2", write("s2", "k", "v", 1)), 2);
    // g3 is answered by the first late peer with data; routed to A.
    let first = gets_to_new_peer(&mut r, PeerId(2), 3);
    assert_eq!(first, ["g1", "g3"]);
    let out = sends(&r.receive(
        PeerId(2),
        &format!(
            r##"{{"#":"r3","@":"g3","put":{}}}"##,
            write("s3", "k", "v", 1).to_wire()
        ),
        4,
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, PeerId(1));
    assert_eq!(gets_to_new_peer(&mut r, PeerId(3), 5), ["g1"]);
    // The asker leaving closes its gets.
    r.disconnect(PeerId(1));
    assert!(gets_to_new_peer(&mut r, PeerId(4), 6).is_empty());
}
