//! `##` as Gun.js uses it: our get replies carry the hash of their `put`; a
//! relay forwards a get it can answer with the hash of its answer; a peer
//! holding the same data does not answer; the same `@`+`##` goes to the asker
//! once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{Node, TestHub, msgs, sends};
use gun_dam::mock::MockNet;
use gun_dam::{Direction, Get, Hub, Mesh, MeshConfig, Message, Output, PeerId};
use gun_graph::hash::graph_hash;
use gun_graph::{Graph, Soul};

fn write(soul: &str, key: &str, value: &str, state: u64) -> Graph {
    Graph::from_wire(&format!(
        r##"{{"{soul}":{{"_":{{"#":"{soul}",">":{{"{key}":{state}}}}},"{key}":"{value}"}}}}"##
    ))
    .unwrap()
}

fn relay() -> Mesh {
    Mesh::new(MeshConfig {
        pid: Some("R".into()),
        rng_seed: Some(3),
        ..MeshConfig::relay()
    })
}

fn incoming(m: &mut Mesh, p: PeerId, pid: &str) {
    m.connect(p, Direction::Incoming, 0);
    m.receive(p, &format!(r#"{{"dam":"?","pid":"{pid}"}}"#), 0);
}

#[test]
fn replies_carry_their_hash_and_the_same_answer_goes_once() {
    let mut r = relay();
    let (a, b) = (PeerId(1), PeerId(2));
    incoming(&mut r, a, "A");
    incoming(&mut r, b, "B");
    r.receive(a, r##"{"#":"g","get":{"#":"s"}}"##, 1);
    let g = write("s", "k", "v", 1);
    let out = sends(&r.reply(a, Message::reply("g", g.clone()), 2));
    assert_eq!(out.len(), 1);
    assert_eq!(msgs(&out[0].1)[0]["##"], graph_hash(&g));
    // Memory and disk answering alike: the second is not sent.
    assert!(r.reply(a, Message::reply("g", g.clone()), 3).is_empty());
    // B (the get was forwarded to it) answers the same data: dropped.
    let same = format!(
        r###"{{"#":"rb","@":"g","##":{},"put":{}}}"###,
        graph_hash(&g),
        g.to_wire()
    );
    assert!(sends(&r.receive(b, &same, 4)).is_empty());
    // Different data from B is a distinct answer: routed to A.
    let other = write("s", "k", "w", 2);
    let diff = format!(
        r###"{{"#":"rc","@":"g","##":{},"put":{}}}"###,
        graph_hash(&other),
        other.to_wire()
    );
    let out = sends(&r.receive(b, &diff, 5));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, a);
    // A "not found" after data is not sent.
    assert!(r.reply(a, Message::not_found("g"), 6).is_empty());
}

#[test]
fn a_get_with_the_hash_of_our_copy_is_not_answered() {
    let mut r = relay();
    let a = PeerId(1);
    incoming(&mut r, a, "A");
    let g = write("s", "k", "v", 1);
    let h = graph_hash(&g);
    r.receive(
        a,
        &format!(r###"{{"#":"g","##":{h},"get":{{"#":"s"}}}}"###),
        1,
    );
    assert!(r.reply(a, Message::reply("g", g.clone()), 2).is_empty());
    // Nor with a "not found": the asker has data.
    assert!(r.reply(a, Message::not_found("g"), 2).is_empty());
    // Another hash: answered.
    r.receive(a, r###"{"#":"g2","##":12345,"get":{"#":"s"}}"###, 3);
    assert_eq!(sends(&r.reply(a, Message::reply("g2", g), 4)).len(), 1);
}

#[test]
fn forwarded_gets_carry_the_hash_the_engine_knows() {
    let mut r = relay();
    let (a, b) = (PeerId(1), PeerId(2));
    incoming(&mut r, a, "A");
    incoming(&mut r, b, "B");
    let fwd = |out: &[Output]| msgs(&sends(out)[0].1)[0].clone();
    let out = r.receive_with(a, r##"{"#":"g1","get":{"#":"s"}}"##, 1, &mut |_| Some(42));
    assert_eq!(fwd(&out)["##"], 42);
    // Not known here: forwarded at once, without `##`.
    let out = r.receive_with(a, r##"{"#":"g2","get":{"#":"t"}}"##, 1, &mut |_| None);
    assert!(fwd(&out).get("##").is_none());
    // The asker's own `##` is kept.
    let out = r.receive_with(
        a,
        r###"{"#":"g3","##":7,"get":{"#":"s"}}"###,
        1,
        &mut |_| Some(42),
    );
    assert_eq!(fwd(&out)["##"], 7);
}

/// A line A — R — B (+ C): how many data answers reach A.
fn line(r_has: bool, b_has: Graph, c_has: Option<Graph>) -> (usize, usize) {
    let mut net = MockNet::new(5);
    let mut hubs = Vec::new();
    let mut add = |net: &mut MockNet, node: Node| {
        let h = TestHub::new(node, net.clock());
        hubs.push(h.clone());
        net.add_hub(h as Arc<dyn Hub>)
    };
    let r = add(&mut net, Node::relay("R", 5));
    let a = add(&mut net, Node::client("A", 6));
    let b = add(&mut net, Node::client("B", 7));
    let c = add(&mut net, Node::client("C", 8));
    if r_has {
        hubs[r].node.lock().unwrap().graph = write("s", "k", "v", 1);
    }
    hubs[b].node.lock().unwrap().graph = b_has;
    if let Some(g) = c_has {
        hubs[c].node.lock().unwrap().graph = g;
        net.connect(c, r, "ws://r/gun");
    }
    net.connect(a, r, "ws://r/gun");
    net.connect(b, r, "ws://r/gun");
    net.advance(1);
    net.run_until_idle(100_000);
    hubs[a].read(Get::node(Soul::new("s").unwrap()));
    net.advance(1);
    net.run_until_idle(100_000);
    let at_a = hubs[a]
        .node
        .lock()
        .unwrap()
        .delivered
        .iter()
        .filter(|(_, m)| m.reply_to.is_some() && m.put.is_some())
        .count();
    // Data answers R received from B (handed to R's engine as Relayed).
    let from_b = hubs[r]
        .node
        .lock()
        .unwrap()
        .delivered
        .iter()
        .filter(|(_, m)| m.reply_to.is_some() && m.put.is_some())
        .count();
    (at_a, from_b)
}

#[test]
fn a_holder_of_the_same_data_stays_silent() {
    // R answers and forwards with its `##`: B, holding the same, says nothing.
    assert_eq!(line(true, write("s", "k", "v", 1), None), (1, 0));
    // B holds something else: a distinct answer, routed to A.
    assert_eq!(line(true, write("s", "k", "w", 2), None), (2, 1));
}

#[test]
fn two_holders_of_the_same_data_reach_the_asker_once() {
    // R has nothing: B and C answer alike; R routes the first only.
    let (at_a, _) = line(
        false,
        write("s", "k", "v", 1),
        Some(write("s", "k", "v", 1)),
    );
    assert_eq!(at_a, 1);
}
