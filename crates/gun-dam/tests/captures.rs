//! Replays frames captured from genuine Gun.js peers (gun@0.2020.1241, see
//! `tests/captures/`, copied from the protocol notes) into a gun-dam relay with
//! a minimal engine, and checks the handshake answers and routing decisions the
//! captures show.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::{Node, Rec, load, msgs, put_of, sent_to, without};
use gun_dam::{Direction, PeerId};
use gun_graph::Graph;
use serde_json::{Value, json};

const RELAY_PID: &str = "kUXNPHfr4";

fn to_relay(recs: &[Rec]) -> Vec<&Rec> {
    recs.iter().filter(|r| r.to_relay()).collect()
}

/// The greeting we send on accept: `{"#":…,"dam":"?","pid":own}` (+ our marker).
fn assert_greeting(sent: &[(PeerId, String)], peer: PeerId) {
    let m = sent_to(sent, peer);
    assert_eq!(m.len(), 1);
    assert!(m[0]["#"].is_string());
    assert_eq!(m[0]["dam"], "?");
    assert_eq!(m[0]["pid"], RELAY_PID);
    assert_eq!(m[0]["gunrs"], 1);
}

/// Merges the `put`s of several messages.
fn union(msgs: &[Value]) -> Graph {
    let mut g = Graph::new();
    for m in msgs {
        if let Some(p) = put_of(m) {
            g.merge(&p, common::machine());
        }
    }
    g
}

#[test]
fn raw_basic_replies_match_gun() {
    let recs = load("raw-basic.jsonl");
    let mut relay = Node::relay(RELAY_PID, 1);
    let peer = PeerId(0);
    assert_greeting(&relay.connect(peer, Direction::Incoming, 0), peer);

    // What the genuine relay answered, by the `@` it answered.
    let mut gun: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in recs.iter().filter(|r| !r.to_relay()) {
        for m in msgs(&r.frame) {
            if let Some(at) = m["@"].as_str() {
                gun.entry(at.to_owned()).or_default().push(m);
            }
        }
    }
    let mut ours: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut handshake_answer = None;
    for r in to_relay(&recs) {
        let sent = relay.receive(peer, &r.frame, r.ms);
        for m in sent_to(&sent, peer) {
            if m["dam"] == "?" {
                handshake_answer = Some(m.clone());
            }
            if let Some(at) = m["@"].as_str() {
                ours.entry(at.to_owned()).or_default().push(m);
            }
        }
        // Ignored frames get no answer at all.
        if ["[]", "not json"].contains(&r.frame.as_str()) || r.frame.starts_with('"') {
            assert!(sent.is_empty(), "{}", r.frame);
        }
    }
    // `{"dam":"?","pid":"raw-basic"}` came without `#`: we invented one and
    // answered it with our pid, as the relay did.
    let hs = handshake_answer.unwrap();
    assert_eq!(
        (hs["dam"].as_str(), hs["pid"].as_str()),
        (Some("?"), Some(RELAY_PID))
    );
    assert_eq!(relay.mesh.peer_pid(peer), Some("raw-basic"));
    ours.remove(hs["@"].as_str().unwrap());
    gun.retain(|_, v| v.iter().all(|m| m["dam"].is_null()));

    // Every request the relay answered, we answered, with the same data (the
    // union of its chunks), or with a not-found / ack where it did.
    assert_eq!(
        gun.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    for (at, theirs) in &gun {
        let mine = &ours[at];
        let acked = theirs.iter().any(|m| m["ok"] == true);
        assert_eq!(acked, mine.iter().any(|m| m["ok"] == true), "{at}");
        assert_eq!(union(theirs), union(mine), "{at}");
    }
    // The duplicate `get-node-2ie3` (sent twice within 9 s) was answered once.
    assert_eq!(ours["get-node-2ie3"].len(), 1);
    // The batch with "junk" in the middle: both gets answered.
    assert!(ours.contains_key("arr1-2ie3") && ours.contains_key("arr2-2ie3"));
}

#[test]
fn raw_invalid_puts_are_reported_per_message() {
    let recs = load("raw-invalid.jsonl");
    let mut relay = Node::relay(RELAY_PID, 2);
    let peer = PeerId(0);
    relay.connect(peer, Direction::Incoming, 0);
    let mut answers = Vec::new();
    for r in to_relay(&recs) {
        answers.extend(sent_to(&relay.receive(peer, &r.frame, r.ms), peer));
    }
    let ids: Vec<&str> = relay
        .invalid
        .iter()
        .map(|(_, id, _)| id.as_deref().unwrap())
        .collect();
    // gun-graph refuses a put as a whole, including `e-missing-state` (Gun.js
    // applies its valid key `a` and acks); every other one Gun.js drops too.
    assert_eq!(
        ids,
        [
            "e-missing-state-xuvs",
            "e-array-xuvs",
            "e-soul-mismatch-xuvs",
            "e-object-xuvs",
            "e-no-meta-xuvs",
            "e-no-states-xuvs",
            "e-link-extra-key-xuvs",
            "e-empty-link-xuvs"
        ]
    );
    // Nothing was delivered as a write, nothing acked; the get finds nothing.
    assert!(answers.iter().all(|m| m["ok"].is_null()));
    assert!(
        answers
            .iter()
            .any(|m| m["@"] == "e-get-xuvs" && m["put"].is_null())
    );
}

#[test]
fn non_finite_state_from_a_relay_fails_only_that_message() {
    let recs = load("raw-ham.jsonl");
    let frame = &recs
        .iter()
        .find(|r| r.frame.contains("-Infinity"))
        .unwrap()
        .frame;
    let v = gun_dam::parse_frame(frame);
    assert!(matches!(
        v.as_slice(),
        [Err(gun_dam::Error::InvalidPut { id: Some(id), .. })] if id == "wJoFUBGBk"
    ));
}

/// raw-routing-3peers: three raw peers A, B, C on one relay (AXE).
#[test]
fn routing_three_peers_like_axe() {
    let recs = load("raw-routing-3peers.jsonl");
    let (a, b, c) = (PeerId(0), PeerId(1), PeerId(2));
    let mut relay = Node::relay(RELAY_PID, 3);
    for p in [a, b, c] {
        assert_greeting(&relay.connect(p, Direction::Incoming, 0), p);
    }
    let gun_out = |conn: u64, pred: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        recs.iter()
            .filter(|r| !r.to_relay() && r.conn == conn)
            .flat_map(|r| msgs(&r.frame))
            .filter(|m| pred(m))
            .collect()
    };
    let inputs = to_relay(&recs);
    let feed = |relay: &mut Node, i: usize| {
        let r = inputs[i];
        relay.receive(PeerId(r.conn), &r.frame, r.ms)
    };

    // Handshakes: each `?` (without `#`) is answered with `@` and our pid.
    for (i, p, pid) in [(0, a, "peerA"), (1, b, "peerB"), (2, c, "peerC")] {
        let m = sent_to(&feed(&mut relay, i), p);
        assert_eq!(m.len(), 1);
        assert_eq!(
            without(&m[0], &["#", "@", "gunrs"]),
            json!({"dam":"?","pid":RELAY_PID})
        );
        assert!(m[0]["@"].is_string());
        assert_eq!(relay.mesh.peer_pid(p), Some(pid));
    }

    // A asks for room7kih: answered (not found), and forwarded to B and C with
    // the same `#` and our peers in `><` — byte for byte what the relay sent.
    let sent = feed(&mut relay, 3);
    let to_a = sent_to(&sent, a);
    assert_eq!(to_a.len(), 1);
    assert_eq!(without(&to_a[0], &["#"]), json!({"@":"A-get-7kih"}));
    let gun_fwd = &recs[11].frame;
    assert!(gun_fwd.contains(r#""><":"peerA,peerB,peerC""#));
    for p in [b, c] {
        let frames: Vec<&String> = sent
            .iter()
            .filter(|(to, _)| *to == p)
            .map(|(_, f)| f)
            .collect();
        assert_eq!(frames, [gun_fwd]);
    }
    assert!(relay.mesh.is_subscribed(a, "room7kih", None));

    // B writes room7kih.topic: acked to B, pushed to subscriber A with a fresh
    // `#`, `ok:{"@":2,"/":3}` and `><` — nothing for B or C (not subscribed).
    let sent = feed(&mut relay, 4);
    let to_a = sent_to(&sent, a);
    assert_eq!(to_a.len(), 1);
    let gun_push = &gun_out(0, &|m| m["put"]["room7kih"]["topic"] == "hello")[0];
    assert_eq!(without(&to_a[0], &["#"]), without(gun_push, &["#"]));
    assert_ne!(to_a[0]["#"], "B-put1-7kih");
    let push1 = to_a[0]["#"].as_str().unwrap().to_owned();
    let to_b = sent_to(&sent, b);
    assert_eq!(to_b.len(), 1);
    assert_eq!(
        without(&to_b[0], &["#"]),
        json!({"@":"B-put1-7kih","ok":true})
    );
    assert!(sent_to(&sent, c).is_empty());

    // C asks for the key `topic`: answered from the graph as the relay did,
    // and the get is forwarded with the same `#` and, as Gun does, the `##`
    // of the relay's answer: equal to the one genuine Gun.js computed.
    let sent = feed(&mut relay, 5);
    let to_c = sent_to(&sent, c);
    let gun_reply = &gun_out(2, &|m| m["@"] == "C-get-key-7kih")[0];
    assert_eq!(put_of(&to_c[0]), put_of(gun_reply));
    assert_eq!(to_c[0]["##"], gun_reply["##"]);
    let gun_fwd = &gun_out(0, &|m| m["#"] == "C-get-key-7kih")[0];
    for p in [a, b] {
        let m = sent_to(&sent, p);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0], *gun_fwd);
    }
    assert!(relay.mesh.is_subscribed(c, "room7kih", Some("topic")));
    assert!(!relay.mesh.is_subscribed(c, "room7kih", Some("other")));

    // B writes topic again: pushed to A (whole soul) and C (that key).
    let sent = feed(&mut relay, 6);
    for (p, conn) in [(a, 0), (c, 2)] {
        let m = sent_to(&sent, p);
        assert_eq!(m.len(), 1, "{p:?}");
        let gun_push = &gun_out(conn, &|m| m["put"]["room7kih"]["topic"] == "hello2")[0];
        assert_eq!(without(&m[0], &["#"]), without(gun_push, &["#"]));
    }
    let push2_to_c = sent_to(&sent, c)[0]["#"].as_str().unwrap().to_owned();

    // A writes key `other`: echoed to A (subscribed to the soul), not to C
    // (subscribed to `topic` only).
    let sent = feed(&mut relay, 7);
    let to_a = sent_to(&sent, a);
    let gun_echo = &gun_out(0, &|m| m["put"]["room7kih"]["other"] == "fromA")[0];
    assert!(
        to_a.iter()
            .any(|m| without(m, &["#"]) == without(gun_echo, &["#"]))
    );
    assert!(
        to_a.iter()
            .any(|m| m["@"] == "A-put-7kih" && m["ok"] == true)
    );
    assert!(sent_to(&sent, c).is_empty());

    // C asks for onlyA7kih: not found here, forwarded to A and B.
    let sent = feed(&mut relay, 8);
    assert_eq!(
        without(&sent_to(&sent, c)[0], &["#"]),
        json!({"@":"C-ask-7kih"})
    );
    for p in [a, b] {
        assert_eq!(
            sent.iter()
                .filter(|(to, _)| *to == p)
                .map(|(_, f)| f)
                .collect::<Vec<_>>(),
            [&recs[28].frame]
        );
    }

    // A answers: the reply goes to C only, unchanged (same `#`), and is stored
    // here and acked to A, as the relay did.
    let sent = feed(&mut relay, 9);
    let to_c: Vec<&String> = sent
        .iter()
        .filter(|(to, _)| *to == c)
        .map(|(_, f)| f)
        .collect();
    assert_eq!(to_c, [&recs[31].frame]);
    assert!(sent_to(&sent, b).is_empty());
    let to_a = sent_to(&sent, a);
    assert_eq!(
        without(&to_a[0], &["#"]),
        json!({"@":"A-reply-7kih","ok":true})
    );
    assert!(relay.graph.get("onlyA7kih").is_some());
    // AXE subscribes the replier too.
    assert!(relay.mesh.is_subscribed(a, "onlyA7kih", None));

    // C asks again: now answered from memory; still forwarded (same `#`).
    let sent = feed(&mut relay, 10);
    let gun_reply = &gun_out(2, &|m| m["@"] == "C-ask2-7kih")[0];
    assert_eq!(put_of(&sent_to(&sent, c)[0]), put_of(gun_reply));
    assert_eq!(sent_to(&sent, a)[0]["#"], "C-ask2-7kih");

    // Acks for pushes are translated back to the original write's id.
    let sent = relay.receive(
        a,
        &format!(r##"{{"#":"ackA","@":"{push1}","ok":{{"":1}}}}"##),
        4000,
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, b);
    assert_eq!(
        msgs(&sent[0].1)[0],
        json!({"#":"ackA","@":"B-put1-7kih","ok":{"":1}})
    );
    let sent = relay.receive(
        c,
        &format!(r##"{{"#":"ackC","@":"{push2_to_c}","ok":true}}"##),
        4001,
    );
    assert_eq!(
        msgs(&sent[0].1)[0],
        json!({"#":"ackC","@":"B-put2-7kih","ok":true})
    );
    assert_eq!(sent[0].0, b);

    // A reply from B to A's get goes to A only; a reply to an unknown id goes
    // nowhere.
    let sent = relay.receive(b, r##"{"#":"B-ans","@":"A-get-7kih"}"##, 4002);
    assert_eq!(sent.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [a]);
    assert!(
        relay
            .receive(b, r##"{"#":"B-ans2","@":"nobody-asked"}"##, 4003)
            .is_empty()
    );
}

/// relay-to-relay: a Gun.js relay (relay2, `super:false`) dials us (as relay1);
/// client Y is on us. Frames from relay-to-relay.jsonl and
/// raw-relay-to-relay-clients.jsonl.
#[test]
fn relay_to_relay_like_gun() {
    let r2r = load("relay-to-relay.jsonl");
    let clients = load("raw-relay-to-relay-clients.jsonl");
    let from_relay2 = |id: &str| {
        r2r.iter()
            .find(|r| r.to_relay() && r.frame.contains(id))
            .unwrap()
            .frame
            .clone()
    };
    let to_relay2 = |id: &str| {
        r2r.iter()
            .find(|r| !r.to_relay() && r.frame.contains(id))
            .unwrap()
            .frame
            .clone()
    };
    let from_y = |id: &str| {
        clients
            .iter()
            .find(|r| r.conn == 1 && r.to_relay() && r.frame.contains(id))
            .unwrap()
            .frame
            .clone()
    };
    let to_y = |id: &str| {
        clients
            .iter()
            .find(|r| r.conn == 1 && !r.to_relay() && r.frame.contains(id))
            .unwrap()
            .frame
            .clone()
    };

    let (relay2, y) = (PeerId(1), PeerId(2));
    let mut relay1 = Node::relay(RELAY_PID, 4);
    assert_greeting(&relay1.connect(relay2, Direction::Incoming, 0), relay2);
    // relay2 says hi (ignored), then answers our `?` with pid and `@`: no reply.
    assert!(
        relay1
            .receive(relay2, &from_relay2(r#""dam":"hi""#), 1)
            .is_empty()
    );
    assert!(
        relay1
            .receive(relay2, &from_relay2(r#""dam":"?""#), 2)
            .is_empty()
    );
    assert_eq!(relay1.mesh.peer_pid(relay2), Some("WJIk5cMqJ"));
    // A Gun.js relay does not carry our marker: not a full peer.
    assert!(!relay1.mesh.is_full_peer(relay2));

    relay1.connect(y, Direction::Incoming, 3);
    relay1.receive(y, &from_y(r#""pid":"Y-on-relay1""#), 4);

    // Y asks for sharedab03: forwarded to relay2 exactly as relay1 did.
    let sent = relay1.receive(y, &from_y("Y-get-ab03"), 10);
    let fwd: Vec<&String> = sent
        .iter()
        .filter(|(p, _)| *p == relay2)
        .map(|(_, f)| f)
        .collect();
    assert_eq!(fwd, [&to_relay2("Y-get-ab03")]);

    // relay2 answers (with `##` and `FOO`): routed to Y unchanged, stored, and
    // acked to relay2.
    let sent = relay1.receive(relay2, &from_relay2("OIslBDaLR"), 11);
    let routed: Vec<&String> = sent
        .iter()
        .filter(|(p, _)| *p == y)
        .map(|(_, f)| f)
        .collect();
    assert_eq!(routed, [&to_y("OIslBDaLR")]);
    assert_eq!(
        without(&sent_to(&sent, relay2)[0], &["#"]),
        json!({"@":"OIslBDaLR","ok":true})
    );

    // relay2 pushes X's second write: pushed on to subscriber Y, and echoed to
    // relay2 (subscribed as the replier), as relay1 did; acked to relay2.
    let sent = relay1.receive(relay2, &from_relay2("kl1jCLpF9"), 12);
    let gun_to_y = msgs(&to_y("second from X"));
    assert_eq!(
        without(&sent_to(&sent, y)[0], &["#"]),
        without(&gun_to_y[0], &["#"])
    );
    let to_r2 = sent_to(&sent, relay2);
    let gun_echo = msgs(&to_relay2("C5qFEiGXZ"));
    assert!(
        to_r2
            .iter()
            .any(|m| without(m, &["#"]) == without(&gun_echo[0], &["#"]))
    );
    assert!(
        to_r2
            .iter()
            .any(|m| m["@"] == "kl1jCLpF9" && m["ok"] == true)
    );

    // Y writes fromYab03; relay2 asks for it (its `><` names X and a url, not
    // Y): answered here, and forwarded to Y with the same `#`.
    relay1.receive(y, &from_y("Y-put-ab03"), 13);
    let sent = relay1.receive(relay2, &from_relay2("X-get-ab03"), 14);
    let reply = &sent_to(&sent, relay2)[0];
    assert_eq!(put_of(reply), put_of(&msgs(&to_relay2("ooHnleMFi"))[0]));
    assert_eq!(sent_to(&sent, y)[0]["#"], "X-get-ab03");

    // relay2 acks our reply: nothing to route.
    assert!(
        relay1
            .receive(relay2, &from_relay2("IKCZisdUK"), 15)
            .is_empty()
    );
}
