//! Routing rules of the mesh that the captures do not cover: publishing to full
//! peers and subscribers, local requests, reconnect re-sending, dam handling,
//! dedup and bounds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{delivered, msgs, sends, sent_to, without};
use gun_dam::{Direction, Get, Mesh, MeshConfig, Message, Output, PeerId};
use gun_graph::{Graph, Soul};
use serde_json::json;

fn graph(soul: &str, key: &str, value: &str, state: u64) -> Graph {
    Graph::from_wire(&format!(
        r##"{{"{soul}":{{"_":{{"#":"{soul}",">":{{"{key}":{state}}}}},"{key}":"{value}"}}}}"##
    ))
    .unwrap()
}

fn relay(seed: u64) -> Mesh {
    Mesh::new(MeshConfig {
        pid: Some("R".into()),
        rng_seed: Some(seed),
        ..MeshConfig::relay()
    })
}

fn client(seed: u64) -> Mesh {
    Mesh::new(MeshConfig {
        pid: Some("C".into()),
        rng_seed: Some(seed),
        ..MeshConfig::client()
    })
}

/// Connects an incoming peer and runs its `?` greeting (with `extra` fields).
fn incoming(m: &mut Mesh, p: PeerId, pid: &str, extra: &str) {
    m.connect(p, Direction::Incoming, 0);
    let out = m.receive(p, &format!(r#"{{"dam":"?","pid":"{pid}"{extra}}}"#), 0);
    assert_eq!(sends(&out).len(), 1);
}

fn outgoing(m: &mut Mesh, p: PeerId, url: &str) -> Vec<Output> {
    m.connect(p, Direction::Outgoing { url: url.into() }, 0)
}

#[test]
fn handshake_and_dam() {
    let mut r = relay(1);
    let p = PeerId(1);
    let greet = sends(&r.connect(p, Direction::Incoming, 0));
    let g = &msgs(&greet[0].1)[0];
    assert_eq!(without(g, &["#"]), json!({"dam":"?","pid":"R","gunrs":1}));
    // `?` with pid and @: recorded, not answered. First pid wins.
    assert!(
        sends(&r.receive(
            p,
            &format!(r##"{{"#":"x1","dam":"?","pid":"P","@":{}}}"##, g["#"]),
            1
        ))
        .is_empty()
    );
    let again = sends(&r.receive(p, r##"{"#":"x2","dam":"?","pid":"Q"}"##, 2));
    assert_eq!(
        without(&msgs(&again[0].1)[0], &["#"]),
        json!({"@":"x2","dam":"?","pid":"R","gunrs":1})
    );
    assert_eq!(r.peer_pid(p), Some("P"));
    assert!(!r.is_full_peer(p));
    // hi, !, mob, opt, unknown: never delivered, never obeyed.
    for f in [
        r##"{"#":"h","dam":"hi"}"##,
        r##"{"#":"e","dam":"!","err":"oops"}"##,
        r##"{"#":"m","dam":"mob","mob":9999,"peers":{"http://elsewhere/gun":{}}}"##,
        r##"{"#":"o","dam":"opt","opt":{"peers":"http://attacker.invalid/gun"}}"##,
        r##"{"#":"u","dam":"zzz","get":{"#":"s"}}"##,
    ] {
        assert!(r.receive(p, f, 3).is_empty(), "{f}");
    }
    assert_eq!(r.peers().collect::<Vec<_>>(), [p]);
    // A peer greeting with the marker is a full peer.
    incoming(&mut r, PeerId(2), "G", r#","gunrs":1"#);
    assert!(r.is_full_peer(PeerId(2)));
    // A client says hi on outgoing connections; a relay does not.
    let mut c = client(2);
    let hi = sends(&outgoing(&mut c, PeerId(1), "ws://r/gun"));
    assert_eq!(without(&msgs(&hi[0].1)[0], &["#"]), json!({"dam":"hi"}));
    assert!(sends(&outgoing(&mut relay(3), PeerId(1), "ws://r/gun")).is_empty());
    // A client answers a relay's `?` without the marker.
    let ans = sends(&c.receive(PeerId(1), r##"{"#":"g","dam":"?","pid":"R"}"##, 1));
    assert_eq!(
        without(&msgs(&ans[0].1)[0], &["#"]),
        json!({"@":"g","dam":"?","pid":"C"})
    );
}

#[test]
fn connecting_to_ourselves_is_closed() {
    let mut r = relay(1);
    outgoing(&mut r, PeerId(1), "ws://self/gun");
    let out = r.receive(PeerId(1), r##"{"#":"g","dam":"?","pid":"R"}"##, 1);
    assert!(matches!(
        out.as_slice(),
        [Output::Close {
            peer: PeerId(1),
            ..
        }]
    ));
    assert_eq!(r.peers().count(), 0);
}

#[test]
fn dedup_drops_repeats_and_same_hash_replies() {
    let mut r = relay(1);
    incoming(&mut r, PeerId(1), "A", "");
    incoming(&mut r, PeerId(2), "B", "");
    incoming(&mut r, PeerId(3), "C", "");
    let get = r##"{"#":"g1","get":{"#":"s"}}"##;
    assert_eq!(delivered(&r.receive(PeerId(1), get, 100)).len(), 1);
    assert!(r.receive(PeerId(2), get, 5_000).is_empty());
    assert!(r.receive(PeerId(1), get, 13_000).is_empty()); // refreshed at 5 s
    // B and C answer with the same data (same ##): only the first goes to A.
    let reply = |id: &str| {
        format!(
            r###"{{"#":"{id}","@":"g1","##":42,"put":{{"s":{{"_":{{"#":"s",">":{{"k":1}}}},"k":1}}}}}}"###
        )
    };
    let first = r.receive(PeerId(2), &reply("rB"), 13_001);
    assert_eq!(
        sends(&first).iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [PeerId(1)]
    );
    assert!(r.receive(PeerId(3), &reply("rC"), 13_002).is_empty());
    // A message without `#` gets one (and is processed).
    let d = delivered(&r.receive(PeerId(1), r##"{"get":{"#":"t"}}"##, 13_003));
    assert_eq!(d[0].1.id.as_ref().map(String::len), Some(9));
}

#[test]
fn unknown_fields_survive_forwarding_and_routing() {
    let mut r = relay(1);
    incoming(&mut r, PeerId(1), "A", "");
    incoming(&mut r, PeerId(2), "B", "");
    let get = r##"{"#":"g1","DBG":{"t":[1,2.5]},"get":{"#":"s","-":1,"zz":{"x":null}},"nts":1e21,"FOO":1}"##;
    let out = sends(&r.receive(PeerId(1), get, 0));
    let fwd = &sent_to(&out, PeerId(2))[0];
    assert_eq!(fwd["DBG"], json!({"t":[1,2.5]}));
    assert_eq!(fwd["get"], json!({"#":"s","-":1,"zz":{"x":null}}));
    assert!(out[0].1.contains(r#""nts":1e+21"#));
    assert_eq!(fwd["FOO"], 1);
    assert_eq!(fwd["><"], "A,B");
    let reply = r##"{"#":"r1","@":"g1","ok":{"rtc":{"id":"x","candidate":"c"}},"X-Extra":[true]}"##;
    let out = sends(&r.receive(PeerId(2), reply, 1));
    assert_eq!(out[0].0, PeerId(1));
    assert_eq!(
        msgs(&out[0].1)[0],
        serde_json::from_str::<serde_json::Value>(reply).unwrap()
    );
}

#[test]
fn gets_are_forwarded_except_to_origin_and_seen() {
    let mut r = relay(1);
    for (i, pid) in ["A", "B", "C"].into_iter().enumerate() {
        incoming(&mut r, PeerId(i as u64 + 1), pid, "");
    }
    outgoing(&mut r, PeerId(4), "ws://up/gun");
    let out = sends(&r.receive(
        PeerId(1),
        r##"{"#":"g","><":"B,ws://up/gun","get":{"#":"s",".":"k"}}"##,
        0,
    ));
    let to: Vec<PeerId> = out.iter().map(|(p, _)| *p).collect();
    assert_eq!(to, [PeerId(3)]);
    assert_eq!(msgs(&out[0].1)[0]["><"], "A,B,C,ws://up/gun");
    assert!(r.is_subscribed(PeerId(1), "s", Some("k")));
    assert!(!r.is_subscribed(PeerId(1), "s", Some("j")));
    // No other peer: nothing to forward.
    let mut lone = relay(2);
    incoming(&mut lone, PeerId(1), "A", "");
    let out = lone.receive(PeerId(1), r##"{"#":"g","get":{"#":"s"}}"##, 0);
    assert_eq!(delivered(&out).len(), 1);
    assert!(sends(&out).is_empty());
}

/// O writes; full peers (outgoing U, marked G) get the put with O's `#`;
/// subscriber B gets a push; acks route back to O.
#[test]
fn publish_full_peers_and_subscribers() {
    let (o, b, g, u, x) = (PeerId(1), PeerId(2), PeerId(3), PeerId(4), PeerId(5));
    let mut r = relay(1);
    incoming(&mut r, o, "O", "");
    incoming(&mut r, b, "B", "");
    incoming(&mut r, g, "G", r#","gunrs":1"#);
    outgoing(&mut r, u, "ws://up/gun");
    incoming(&mut r, x, "X", r#","gunrs":1"#);
    r.receive(b, r##"{"#":"gb","get":{"#":"s",".":"k"}}"##, 0);
    r.receive(g, r##"{"#":"gg","get":{"#":"s"}}"##, 0);
    // O writes s.k and s.j, telling us X already has it.
    let put =
        r##"{"#":"w1","><":"X","put":{"s":{"_":{"#":"s",">":{"j":1,"k":1}},"j":"J","k":"K"}}}"##;
    let out = r.receive(o, put, 1);
    let d = delivered(&out);
    assert_eq!(d.len(), 1);
    assert!(
        sends(&out).is_empty(),
        "writes are not forwarded before HAM"
    );
    let diff = d[0].1.put.clone().unwrap();
    let out = sends(&r.publish(&diff, Some((o, "w1")), 2));
    // (a) G and U: the whole diff with the original id, not O, not X (in `><`).
    for p in [g, u] {
        let m = sent_to(&out, p);
        assert_eq!(m.len(), 1, "{p:?}");
        assert_eq!(m[0]["#"], "w1");
        assert_eq!(m[0]["><"], "O,B,G,ws://up/gun,X");
        assert_eq!(Graph::from_json(&m[0]["put"]).unwrap(), diff);
        assert!(m[0]["ok"].is_null());
    }
    assert!(sent_to(&out, x).is_empty() && sent_to(&out, o).is_empty());
    // (b) B: only s.k, as a push with a fresh id.
    let m = &sent_to(&out, b)[0];
    assert_ne!(m["#"], "w1");
    assert_eq!(m["ok"], json!({"@":2,"/":5}));
    assert!(m["@"].is_null());
    assert_eq!(
        Graph::from_json(&m["put"]).unwrap(),
        graph("s", "k", "K", 1)
    );
    let push = m["#"].as_str().unwrap().to_owned();
    assert_eq!(r.pending_puts("ws://up/gun"), 1);
    // Acks: U's (after its disk write) goes to O as is; B's is translated.
    let a = sends(&r.receive(u, r##"{"#":"au","@":"w1","ok":true}"##, 3));
    assert_eq!(a, [(o, r##"{"#":"au","@":"w1","ok":true}"##.to_string())]);
    assert_eq!(r.pending_puts("ws://up/gun"), 0);
    let a = sends(&r.receive(
        b,
        &format!(r##"{{"#":"ab","@":"{push}","ok":{{"":1}}}}"##),
        3,
    ));
    assert_eq!(a, [(o, r##"{"#":"ab","@":"w1","ok":{"":1}}"##.to_string())]);
    // The origin gets the echo when subscribed.
    r.receive(o, r##"{"#":"go","get":{"#":"s"}}"##, 4);
    let out = sends(&r.publish(&graph("s", "k", "K2", 5), Some((o, "w2")), 5));
    assert_eq!(sent_to(&out, o).len(), 1);
    assert_ne!(sent_to(&out, o)[0]["#"], "w2");
}

/// The part of a put applied late (states that were ahead of the clock) goes
/// to full peers under a fresh id: they saw the put's own `#` with its first
/// part, and a Gun.js relay drops a `#` it has seen. Not back to the writer.
/// Answers to it (a full peer's ack, a subscriber's answer to its push: a
/// WebRTC offer answering an announcement) reach the writer under its own `#`.
#[test]
fn a_late_part_goes_to_full_peers_under_a_fresh_id() {
    let (o, s, g, u) = (PeerId(1), PeerId(2), PeerId(3), PeerId(4));
    let mut r = relay(1);
    incoming(&mut r, o, "O", "");
    incoming(&mut r, s, "S", "");
    incoming(&mut r, g, "G", r#","gunrs":1"#);
    outgoing(&mut r, u, "ws://up/gun");
    r.receive(s, r##"{"#":"gs","get":{"#":"s"}}"##, 0);
    let first = sends(&r.publish(&graph("s", "by", "X", 1), Some((o, "w1")), 1));
    let late = sends(&r.publish_late(&graph("s", "n", "3", 2), o, "w1", 2));
    let mut fresh = None;
    for p in [g, u] {
        assert_eq!(sent_to(&first, p)[0]["#"], "w1", "{p:?}");
        let m = sent_to(&late, p);
        assert_eq!(m.len(), 1, "{p:?}");
        assert_ne!(m[0]["#"], "w1", "the late part reused the put's id");
        assert_eq!(
            Graph::from_json(&m[0]["put"]).unwrap(),
            graph("s", "n", "3", 2)
        );
        fresh = Some(m[0]["#"].as_str().unwrap().to_owned());
    }
    assert!(sent_to(&late, o).is_empty(), "sent back to the writer");
    // The subscriber's push, and its answer, which goes to the writer as an
    // answer to w1.
    let push = sent_to(&late, s);
    assert_eq!(push.len(), 1);
    let push_id = push[0]["#"].as_str().unwrap().to_owned();
    let out = sends(&r.receive(
        s,
        &format!(r##"{{"#":"offer","@":"{push_id}","ok":{{"rtc":{{"id":"S"}}}}}}"##),
        3,
    ));
    let to_o = sent_to(&out, o);
    assert_eq!(to_o.len(), 1, "{out:?}");
    assert_eq!(to_o[0]["@"], "w1");
    assert_eq!(to_o[0]["ok"], json!({"rtc":{"id":"S"}}));
    // A full peer's answer to the fresh id: to the writer, as an answer to w1.
    let fresh = fresh.unwrap();
    let out = sends(&r.receive(
        g,
        &format!(r##"{{"#":"ga","@":"{fresh}","ok":{{"":1}}}}"##),
        4,
    ));
    let to_o = sent_to(&out, o);
    assert_eq!(to_o.len(), 1, "{out:?}");
    assert_eq!(to_o[0]["@"], "w1");
    assert!(r.publish_late(&Graph::new(), o, "w1", 5).is_empty());
}

#[test]
fn full_peers_get_no_push_echo() {
    // U (dialed), X and Y (gun-rs relays) are full peers; all three asked for s
    // through us, so they are subscribed here.
    let (u, x, y) = (PeerId(1), PeerId(2), PeerId(3));
    let mut r = relay(7);
    outgoing(&mut r, u, "ws://up/gun");
    incoming(&mut r, x, "X", r#","gunrs":1"#);
    incoming(&mut r, y, "Y", r#","gunrs":1"#);
    r.receive(u, r##"{"#":"gu","get":{"#":"s"}}"##, 0);
    r.receive(x, r##"{"#":"gx","get":{"#":"s"}}"##, 0);
    r.receive(y, r##"{"#":"gy","get":{"#":"s"}}"##, 0);
    // X writes, telling us Y has it: U gets the full copy; X (the origin) and
    // Y (in `><`) get nothing, not even a push of their subscription.
    r.receive(
        x,
        r##"{"#":"w1","><":"Y","put":{"s":{"_":{"#":"s",">":{"k":1}},"k":"K"}}}"##,
        1,
    );
    let out = sends(&r.publish(&graph("s", "k", "K", 1), Some((x, "w1")), 2));
    assert_eq!(sent_to(&out, u).len(), 1);
    assert_eq!(sent_to(&out, u)[0]["#"], "w1");
    assert!(sent_to(&out, x).is_empty(), "echo to the origin: {out:?}");
    assert!(sent_to(&out, y).is_empty(), "push to a peer in ><: {out:?}");
}

#[test]
fn local_requests_are_tracked_as_ours() {
    let (u, b) = (PeerId(1), PeerId(2));
    let mut r = relay(1);
    outgoing(&mut r, u, "ws://up/gun");
    incoming(&mut r, b, "B", "");
    r.receive(b, r##"{"#":"gb","get":{"#":"s"}}"##, 0);
    // A local write: full copy to U, push to B; acks of both reach the engine.
    let (id, out) = r.request(Message::put(graph("s", "k", "v", 1)), 1);
    let out = sends(&out);
    assert_eq!(sent_to(&out, u)[0]["#"], id.as_str());
    let push = sent_to(&out, b)[0]["#"].as_str().unwrap().to_owned();
    let d = delivered(&r.receive(u, &format!(r##"{{"#":"a1","@":"{id}","ok":true}}"##), 2));
    assert_eq!(d[0].1.reply_to.as_deref(), Some(id.as_str()));
    let d = delivered(&r.receive(
        b,
        &format!(r##"{{"#":"a2","@":"{push}","ok":{{"":1}}}}"##),
        2,
    ));
    assert_eq!((d[0].0, d[0].1.reply_to.as_deref()), (b, Some(id.as_str())));
    // A local get: to every peer; replies delivered, `#` kept when given.
    let get = Message {
        id: Some("mine".into()),
        ..Message::get(Get::node(Soul::new("t").unwrap()))
    };
    let (id, out) = r.request(get, 3);
    assert_eq!(id, "mine");
    assert_eq!(sends(&out).len(), 2);
    let d = delivered(&r.receive(
        u,
        r##"{"#":"rr","@":"mine","put":{"t":{"_":{"#":"t",">":{"a":1}},"a":1}}}"##,
        4,
    ));
    assert_eq!(d.len(), 1);
    // A reply to the engine's own answer is not a request of ours: dropped.
    let out = r.reply(b, Message::not_found("gb"), 5);
    let rid = msgs(&sends(&out)[0].1)[0]["#"].as_str().unwrap().to_owned();
    assert!(
        r.receive(b, &format!(r##"{{"#":"z","@":"{rid}","ok":1}}"##), 6)
            .is_empty()
    );
    // Replies to peers that are gone are dropped.
    assert!(r.reply(PeerId(99), Message::ack_ok("x"), 7).is_empty());
}

#[test]
fn reconnect_resends_gets_and_unacked_puts() {
    let url = "ws://relay/gun";
    let mut c = Mesh::new(MeshConfig {
        pending_put_max_age_ms: 60_000,
        ..MeshConfig::client()
    });
    outgoing(&mut c, PeerId(1), url);
    let (_, out) = c.request(Message::get(Get::key(Soul::new("s").unwrap(), "k")), 10);
    assert_eq!(sends(&out).len(), 1);
    let (w1, _) = c.request(Message::put(graph("s", "k", "v1", 1)), 11);
    let (w2, _) = c.request(Message::put(graph("s", "k", "v2", 2)), 12);
    assert_eq!(c.pending_puts(url), 2);
    c.receive(
        PeerId(1),
        &format!(r##"{{"#":"a","@":"{w1}","ok":true}}"##),
        13,
    );
    assert_eq!(c.pending_puts(url), 1);
    c.disconnect(PeerId(1));
    // Written while down: kept for the url.
    let (w3, out) = c.request(Message::put(graph("s", "j", "v3", 3)), 14);
    assert!(out.is_empty());
    assert_eq!(c.pending_puts(url), 2);
    // Reconnect (new connection id, same url): hi, the get with a fresh id,
    // then the un-acked puts with their own ids.
    c.tick(30_000); // the dedup window (and the puts' routes) passed
    let out = sends(&c.connect(PeerId(2), Direction::Outgoing { url: url.into() }, 30_000));
    let m: Vec<_> = out.iter().flat_map(|(_, f)| msgs(f)).collect();
    assert_eq!(m[0]["dam"], "hi");
    assert_eq!(m[1]["get"], json!({"#":"s",".":"k"}));
    assert_eq!(m[2]["#"], w2.as_str());
    assert_eq!(m[3]["#"], w3.as_str());
    assert_eq!(m.len(), 4);
    // The re-sent get's reply reaches the engine; acks for old ids too, even
    // after the dedup window.
    let gid = m[1]["#"].as_str().unwrap();
    let d = delivered(&c.receive(PeerId(2), &format!(r##"{{"#":"r","@":"{gid}"}}"##), 30_001));
    assert_eq!(d.len(), 1);
    let d = delivered(&c.receive(
        PeerId(2),
        &format!(r##"{{"#":"a2","@":"{w2}","ok":true}}"##),
        30_002,
    ));
    assert_eq!(d.len(), 1);
    assert_eq!(c.pending_puts(url), 1);
    // Too old puts are no longer re-sent.
    c.tick(14 + 60_000);
    assert_eq!(c.pending_puts(url), 0);
    // Puts are forgotten with the url.
    c.forget_url(url);
    assert_eq!(c.pending_puts(url), 0);
}

#[test]
fn writes_before_the_first_connection_wait_for_add_url() {
    let mut c = client(1);
    c.add_url("ws://r/gun");
    let (id, out) = c.request(Message::put(graph("s", "k", "v", 1)), 0);
    assert!(out.is_empty());
    let out = sends(&outgoing(&mut c, PeerId(1), "ws://r/gun"));
    assert!(out.iter().any(|(_, f)| msgs(f)[0]["#"] == id.as_str()));
}

#[test]
fn pending_puts_are_bounded() {
    let cfg = MeshConfig {
        max_pending_puts: 3,
        ..MeshConfig::client()
    };
    let mut c = Mesh::new(cfg);
    c.add_url("ws://r/gun");
    for i in 0..10 {
        c.request(Message::put(graph("s", "k", "v", i + 1)), i);
    }
    assert_eq!(c.pending_puts("ws://r/gun"), 3);
    let cfg = MeshConfig {
        max_pending_bytes: 300,
        ..MeshConfig::client()
    };
    let mut c = Mesh::new(cfg);
    c.add_url("ws://r/gun");
    for i in 0..10 {
        c.request(Message::put(graph("s", "k", "v", i + 1)), i);
    }
    assert!(c.pending_puts("ws://r/gun") < 10);
}

#[test]
fn subscriptions_are_bounded_oldest_first() {
    let cfg = MeshConfig {
        max_subscriptions_per_peer: 3,
        ..MeshConfig::relay()
    };
    let mut r = Mesh::new(cfg);
    incoming(&mut r, PeerId(1), "A", "");
    for s in ["a", "b", "c", "d", "e"] {
        r.receive(PeerId(1), &format!(r##"{{"get":{{"#":"{s}"}}}}"##), 0);
    }
    let subs: Vec<&str> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .filter(|s| r.is_subscribed(PeerId(1), s, None))
        .collect();
    assert_eq!(subs, ["c", "d", "e"]);
    // Too many keys of one soul: widened to the whole soul.
    for k in 0..10 {
        r.receive(
            PeerId(1),
            &format!(r##"{{"get":{{"#":"e",".":"k{k}"}}}}"##),
            0,
        );
    }
    assert!(r.is_subscribed(PeerId(1), "e", Some("other")));
    // Soul queries subscribe every matching soul.
    r.receive(PeerId(1), r##"{"get":{"#":{"*":"fruit/"}}}"##, 0);
    assert!(r.is_subscribed(PeerId(1), "fruit/apple", Some("x")));
    assert!(!r.is_subscribed(PeerId(1), "veg/leek", None));
}

#[test]
fn routes_expire_with_the_dedup_window() {
    let mut r = relay(1);
    incoming(&mut r, PeerId(1), "A", "");
    incoming(&mut r, PeerId(2), "B", "");
    r.receive(PeerId(1), r##"{"#":"g","get":{"#":"s"}}"##, 0);
    // A streamed answer keeps the route alive.
    assert_eq!(
        sends(&r.receive(PeerId(2), r##"{"#":"r1","@":"g"}"##, 8_000)).len(),
        1
    );
    assert_eq!(
        sends(&r.receive(PeerId(2), r##"{"#":"r2","@":"g"}"##, 16_000)).len(),
        1
    );
    r.tick(25_001);
    assert!(
        r.receive(PeerId(2), r##"{"#":"r3","@":"g"}"##, 25_001)
            .is_empty()
    );
    // A bounded table forgets the oldest routes first.
    let mut small = Mesh::new(MeshConfig {
        dedup_max_entries: 4,
        ..MeshConfig::relay()
    });
    incoming(&mut small, PeerId(1), "A", "");
    incoming(&mut small, PeerId(2), "B", "");
    small.receive(PeerId(1), r##"{"#":"old","get":{"#":"s"}}"##, 0);
    for i in 0..10 {
        small.receive(
            PeerId(1),
            &format!(r##"{{"#":"n{i}","get":{{"#":"s"}}}}"##),
            1,
        );
    }
    assert!(
        small
            .receive(PeerId(2), r##"{"#":"r","@":"old"}"##, 2)
            .is_empty()
    );
}

#[test]
fn keepalive_from_relays_only() {
    let mut r = relay(1);
    incoming(&mut r, PeerId(1), "A", "");
    incoming(&mut r, PeerId(2), "B", "");
    assert!(r.tick(19_999).is_empty());
    let out = sends(&r.tick(20_000));
    assert_eq!(out, [(PeerId(1), "[]".into()), (PeerId(2), "[]".into())]);
    assert!(r.tick(30_000).is_empty());
    assert_eq!(sends(&r.tick(40_000)).len(), 2);
    let mut c = client(1);
    outgoing(&mut c, PeerId(1), "ws://r/gun");
    assert!(c.tick(100_000).is_empty());
    // Keep-alives from others are ignored.
    assert!(r.receive(PeerId(1), "[]", 40_001).is_empty());
}

#[test]
fn oversized_frames_get_gun_error_answer() {
    let cfg = MeshConfig {
        limits: gun_dam::Limits {
            max_frame_bytes: 64,
            ..Default::default()
        },
        ..MeshConfig::relay()
    };
    let mut r = Mesh::new(cfg);
    incoming(&mut r, PeerId(1), "A", "");
    let big = format!(r##"{{"#":"x","get":{{"#":"{}"}}}}"##, "s".repeat(100));
    let out = sends(&r.receive(PeerId(1), &big, 0));
    assert_eq!(
        without(&msgs(&out[0].1)[0], &["#"]),
        json!({"dam":"!","err":"Message too big!"})
    );
}

#[test]
fn invalid_puts_are_reported_once() {
    let mut r = relay(1);
    incoming(&mut r, PeerId(1), "A", "");
    let bad = r##"[{"#":"bad","put":{"s":{"_":{"#":"t",">":{}}}}},{"#":"ok","get":{"#":"s"}}]"##;
    let out = r.receive(PeerId(1), bad, 0);
    assert!(matches!(&out[0], Output::InvalidPut { id: Some(i), .. } if i == "bad"));
    assert_eq!(delivered(&out).len(), 1);
    assert!(r.receive(PeerId(1), bad, 1).is_empty());
}

/// WebRTC signalling (spec §11.3) through a relay: A announces with a write, B
/// answers A's push with an offer whose `#` is B's ask, A answers that `#`, and
/// B's candidates answer the push. Every `ok.rtc` reaches the other side intact.
#[test]
fn rtc_signalling_routes_through_a_relay() {
    let (a, b) = (PeerId(1), PeerId(2));
    let mut r = relay(7);
    incoming(&mut r, a, "A", "");
    incoming(&mut r, b, "B", "");
    r.receive(b, r##"{"#":"gb","get":{"#":"/RTC/x<?99",".":"+"}}"##, 0);
    let put = r##"{"#":"ann","put":{"/RTC/x<?99":{"_":{"#":"/RTC/x<?99",">":{"+":5}},"+":"A"}}}"##;
    let out = r.receive(a, put, 1);
    let diff = delivered(&out)[0].1.put.clone().unwrap();
    let out = sends(&r.publish(&diff, Some((a, "ann")), 2));
    let push = sent_to(&out, b)[0]["#"].as_str().unwrap().to_owned();
    // B's offer answers the push; it reaches A as an answer to A's write, same `#`.
    let offer = r#"{"rtc":{"offer":{"type":"offer","sdp":"v=0\r\n"},"id":"B"}}"#;
    let out = sends(&r.receive(
        b,
        &format!(r##"{{"#":"askB","@":"{push}","ok":{offer}}}"##),
        3,
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, a);
    let m = &msgs(&out[0].1)[0];
    assert_eq!(m["#"], "askB");
    assert_eq!(m["@"], "ann");
    assert_eq!(
        m["ok"],
        serde_json::from_str::<serde_json::Value>(offer).unwrap()
    );
    // A's answer to B's offer goes to B, unchanged.
    let answer = r##"{"#":"ansA","@":"askB","ok":{"rtc":{"answer":{"type":"answer","sdp":"v=0"},"id":"A"}}}"##;
    let out = sends(&r.receive(a, answer, 4));
    assert_eq!(out, [(b, answer.to_string())]);
    // A's candidates too, and B's candidates (answering the push) reach A.
    let cand = r##"{"#":"cA","@":"askB","ok":{"rtc":{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMid":"0","sdpMLineIndex":0},"id":"A"}}}"##;
    assert_eq!(sends(&r.receive(a, cand, 5)), [(b, cand.to_string())]);
    let out = sends(&r.receive(
        b,
        &format!(r##"{{"#":"cB","@":"{push}","ok":{{"rtc":{{"candidate":{{"candidate":"c"}},"id":"B"}}}}}}"##),
        5,
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, a);
    assert_eq!(
        msgs(&out[0].1)[0]["ok"]["rtc"]["candidate"]["candidate"],
        "c"
    );
    // Nobody gets an answer to their own message back.
    assert!(sends(&r.receive(b, r##"{"#":"z","@":"askB","ok":1}"##, 6)).is_empty());
}

/// A peer answers a message it received back the way it came, and replies to
/// its answer are delivered to it.
#[test]
fn answers_go_back_the_way_the_message_came() {
    let (relay_link, other) = (PeerId(1), PeerId(2));
    let mut c = client(3);
    outgoing(&mut c, relay_link, "ws://r/gun");
    outgoing(&mut c, other, "ws://o/gun");
    let push = r##"{"#":"p1","ok":{"@":2,"/":2},"put":{"/RTC/x<?99":{"_":{"#":"/RTC/x<?99",">":{"+":5}},"+":"A"}}}"##;
    assert_eq!(delivered(&c.receive(relay_link, push, 1)).len(), 1);
    let offer = Message {
        reply_to: Some("p1".into()),
        ok: Some(json!({"rtc":{"offer":{"type":"offer","sdp":"x"},"id":"C"}})),
        ..Message::default()
    };
    let (id, out) = c.answer(offer, 2);
    let out = sends(&out);
    assert_eq!(out.len(), 1, "only to the peer the push came from");
    assert_eq!(out[0].0, relay_link);
    let m = &msgs(&out[0].1)[0];
    assert_eq!(
        (m["#"].as_str(), m["@"].as_str()),
        (Some(id.as_str()), Some("p1"))
    );
    // The answer to our offer is delivered to us.
    let ans = format!(r##"{{"#":"a1","@":"{id}","ok":{{"rtc":{{"answer":{{}},"id":"A"}}}}}}"##);
    let d = delivered(&c.receive(relay_link, &ans, 3));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1.ok.as_ref().unwrap()["rtc"]["id"], "A");
    // Unknown routes send nothing.
    let lost = Message {
        reply_to: Some("nope".into()),
        ..Message::default()
    };
    assert!(c.answer(lost, 4).1.is_empty());
}

/// A direct link (WebRTC): no greeting, the pid is known, writes go to it in
/// full, and `request_to` reaches it alone.
#[test]
fn direct_peers_are_full_and_silent() {
    let (up, d) = (PeerId(1), PeerId(2));
    let mut c = client(4);
    outgoing(&mut c, up, "ws://r/gun");
    assert!(
        c.connect(d, Direction::Direct { pid: "B".into() }, 0)
            .is_empty()
    );
    assert_eq!(c.peer_pid(d), Some("B"));
    assert!(c.is_full_peer(d));
    let (id, out) = c.request(Message::put(graph("s", "k", "v", 1)), 1);
    let out = sends(&out);
    assert_eq!(sent_to(&out, d).len(), 1);
    assert_eq!(sent_to(&out, d)[0]["#"], id.as_str());
    let (gid, out) = c.request_to(d, Message::get(Get::node(Soul::new("s").unwrap())), 2);
    let out = sends(&out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, d);
    // The reply is ours.
    let reply = format!(
        r##"{{"#":"r","@":"{gid}","put":{{"s":{{"_":{{"#":"s",">":{{"k":1}}}},"k":"v"}}}}}}"##
    );
    assert_eq!(delivered(&c.receive(d, &reply, 3)).len(), 1);
    // No reconnect bookkeeping for it.
    c.disconnect(d);
    assert_eq!(c.pending_puts("B"), 0);
}
