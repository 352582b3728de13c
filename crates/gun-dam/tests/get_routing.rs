//! Get routing that does not grow with the number of clients (issue 15): a
//! get goes to every full peer, and to at most `get_fanout` client peers —
//! the soul's holders (writers, answerers, askers) first, then others at
//! random; each "not found" from an asked client asks one more, peers that
//! connect while the get is open are asked too, all within `max_get_asks`
//! clients per get; a new client is sent at most `open_gets_per_connect`
//! open gets.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{msgs, sends};
use gun_dam::router::{GET_FANOUT, MAX_GET_ASKS, OPEN_GETS_PER_CONNECT};
use gun_dam::{Direction, Get, Mesh, MeshConfig, Message, PeerId};
use gun_graph::Soul;

fn relay() -> Mesh {
    Mesh::new(MeshConfig {
        pid: Some("R".into()),
        rng_seed: Some(11),
        ..MeshConfig::relay()
    })
}

/// Client peers 1..=n (incoming, greeted, no marker).
fn clients(m: &mut Mesh, n: u64) {
    for i in 1..=n {
        m.connect(PeerId(i), Direction::Incoming, 0);
        m.receive(PeerId(i), &format!(r#"{{"dam":"?","pid":"p{i}"}}"#), 0);
    }
}

/// The peers a get with id `id` was sent to.
fn got(out: &[gun_dam::Output], id: &str) -> Vec<PeerId> {
    sends(out)
        .into_iter()
        .filter(|(_, f)| {
            msgs(f)
                .iter()
                .any(|v| v["#"] == id && v.get("get").is_some())
        })
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn a_get_goes_to_full_peers_and_a_few_clients_never_to_all() {
    let mut r = relay();
    clients(&mut r, 200);
    // A relay we dialed, and a gun-rs relay that greeted with the marker.
    r.connect(
        PeerId(1000),
        Direction::Outgoing {
            url: "ws://up/gun".into(),
        },
        0,
    );
    r.connect(PeerId(1001), Direction::Incoming, 0);
    r.receive(PeerId(1001), r#"{"dam":"?","pid":"rs","gunrs":1}"#, 0);
    let out = r.receive(PeerId(1), r##"{"#":"g1","get":{"#":"nobody"}}"##, 1);
    let to = got(&out, "g1");
    assert!(
        to.contains(&PeerId(1000)) && to.contains(&PeerId(1001)),
        "{to:?}"
    );
    let clients: Vec<_> = to.iter().filter(|p| p.0 < 1000).collect();
    assert_eq!(clients.len(), GET_FANOUT, "{to:?}");
    assert!(!to.contains(&PeerId(1)), "not back to the asker");
    // The relay's own read: the same rule.
    let (_, out) = r.request(Message::get(Get::node(Soul::new("mine").unwrap())), 2);
    let to: Vec<PeerId> = sends(&out).into_iter().map(|(p, _)| p).collect();
    assert_eq!(to.iter().filter(|p| p.0 < 1000).count(), GET_FANOUT);
    assert!(to.contains(&PeerId(1000)) && to.contains(&PeerId(1001)));
}

#[test]
fn holders_are_asked_first_writers_and_answerers_before_askers() {
    let mut r = relay();
    clients(&mut r, 100);
    // 77 wrote `s`; 55 asked for it.
    r.receive(PeerId(55), r##"{"#":"a55","get":{"#":"s"}}"##, 1);
    r.receive(
        PeerId(77),
        r##"{"#":"w77","put":{"s":{"_":{"#":"s",">":{"k":1}},"k":"v"}}}"##,
        2,
    );
    let out = r.receive(PeerId(3), r##"{"#":"g3","get":{"#":"s"}}"##, 3);
    let to = got(&out, "g3");
    assert_eq!(to.len(), GET_FANOUT);
    assert!(
        to.contains(&PeerId(77)) && to.contains(&PeerId(55)),
        "{to:?}"
    );
    // 90 answers a get for `t` with data: it is asked first next time.
    let out = r.receive(PeerId(4), r##"{"#":"g4","get":{"#":"t"}}"##, 4);
    let asked = got(&out, "g4");
    let answerer = asked[0];
    r.receive(
        answerer,
        r##"{"#":"a4","@":"g4","put":{"t":{"_":{"#":"t",">":{"k":1}},"k":"v"}}}"##,
        5,
    );
    let out = r.receive(PeerId(5), r##"{"#":"g5","get":{"#":"t"}}"##, 6);
    assert!(got(&out, "g5").contains(&answerer));
}

#[test]
fn each_not_found_asks_one_more_client_within_the_bound() {
    let mut r = relay();
    clients(&mut r, 100);
    let out = r.receive(PeerId(1), r##"{"#":"g","get":{"#":"nobody"}}"##, 1);
    let mut asked = got(&out, "g");
    let mut i = 0;
    while i < asked.len() {
        let p = asked[i];
        let out = r.receive(p, &format!(r##"{{"#":"nf{i}","@":"g"}}"##), 2);
        asked.extend(got(&out, "g"));
        i += 1;
    }
    assert_eq!(asked.len(), MAX_GET_ASKS, "{asked:?}");
    let mut unique = asked.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), asked.len(), "nobody asked twice");
    // Its budget is spent: a client connecting now is not asked.
    let out = r.connect(PeerId(500), Direction::Incoming, 3);
    assert!(got(&out, "g").is_empty(), "budget spent");
}

#[test]
fn late_clients_are_asked_within_the_bounds_and_full_peers_always() {
    let mut r = relay();
    // One asker alone: nobody to ask.
    clients(&mut r, 1);
    for i in 0..40 {
        let out = r.receive(
            PeerId(1),
            &format!(r##"{{"#":"g{i}","get":{{"#":"s{i}"}}}}"##),
            1,
        );
        assert!(got(&out, &format!("g{i}")).is_empty());
    }
    let gets_to = |r: &mut Mesh, p: u64, dir: Direction| -> Vec<String> {
        sends(&r.connect(PeerId(p), dir, 2))
            .iter()
            .flat_map(|(_, f)| msgs(f))
            .filter(|v| v.get("get").is_some())
            .map(|v| v["#"].as_str().unwrap().to_owned())
            .collect()
    };
    // A new client gets the youngest few.
    let first = gets_to(&mut r, 2, Direction::Incoming);
    assert_eq!(first.len(), OPEN_GETS_PER_CONNECT);
    assert_eq!(first.last().unwrap(), "g39");
    // Each get asks at most MAX_GET_ASKS clients in all.
    let mut per_get = std::collections::HashMap::<String, usize>::new();
    for id in &first {
        *per_get.entry(id.clone()).or_default() += 1;
    }
    for p in 3..40 {
        for id in gets_to(&mut r, p, Direction::Incoming) {
            *per_get.entry(id).or_default() += 1;
        }
    }
    assert_eq!(per_get.len(), 40, "every open get found late clients");
    assert!(per_get.values().all(|n| *n == MAX_GET_ASKS), "{per_get:?}");
    // A relay we dial is a full peer: it gets every open get.
    let up = gets_to(
        &mut r,
        100,
        Direction::Outgoing {
            url: "ws://up/gun".into(),
        },
    );
    assert_eq!(up.len(), 40);
}

/// A write is checked against the peers subscribed to its souls (an index),
/// not against every connection: with 3,000 clients each subscribed to its
/// own soul and to a shared one, a write to one client's soul is pushed to
/// that client alone, a write to the shared soul to all of them, and the index
/// forgets the clients that leave.
#[test]
fn writes_reach_their_subscribers_through_an_index_that_forgets_leavers() {
    let mut r = relay();
    let n = 3_000;
    clients(&mut r, n);
    for i in 1..=n {
        r.receive(
            PeerId(i),
            &format!(r##"{{"#":"own{i}","get":{{"#":"own/{i}"}}}}"##),
            1,
        );
        r.receive(
            PeerId(i),
            &format!(r##"{{"#":"sh{i}","get":{{"#":"shared"}}}}"##),
            1,
        );
    }
    assert_eq!(r.indexed_subscriptions(), 2 * n as usize);
    let put = |soul: &str, id: &str| {
        format!(
            r##"{{"#":"{id}","put":{{"{soul}":{{"_":{{"#":"{soul}",">":{{"k":1}}}},"k":"v"}}}}}}"##
        )
    };
    // A write to client 7's soul, from client 8: one push, to client 7.
    let out = r.receive(PeerId(8), &put("own/7", "w1"), 2);
    let pushed: Vec<PeerId> = sends(&out)
        .into_iter()
        .filter(|(_, f)| msgs(f).iter().any(|v| v.get("put").is_some()))
        .map(|(p, _)| p)
        .collect();
    assert!(
        pushed.is_empty(),
        "pushed before the engine accepted it: {pushed:?}"
    );
    let w1 = Soul::new("own/7").unwrap();
    let mut g = gun_graph::Graph::new();
    g.put(
        w1,
        "k",
        gun_graph::State::new(1.0).unwrap(),
        gun_graph::Value::from("v"),
    )
    .unwrap();
    let out = r.publish(&g, Some((PeerId(8), "w1")), 3);
    let pushed: Vec<PeerId> = sends(&out).into_iter().map(|(p, _)| p).collect();
    assert_eq!(pushed, [PeerId(7)]);
    // The shared soul reaches every subscriber (the writer too: it is pushed
    // its write with a fresh id, as before the index).
    let mut g = gun_graph::Graph::new();
    g.put(
        Soul::new("shared").unwrap(),
        "k",
        gun_graph::State::new(1.0).unwrap(),
        gun_graph::Value::from("v"),
    )
    .unwrap();
    let out = r.publish(&g, Some((PeerId(8), "w2")), 4);
    assert_eq!(sends(&out).len(), n as usize);
    // Half of the clients leave: their index entries go with them.
    for i in 1..=n / 2 {
        r.disconnect(PeerId(i));
    }
    assert_eq!(r.indexed_subscriptions(), n as usize);
    let out = r.publish(&g, Some((PeerId(n), "w3")), 5);
    assert_eq!(sends(&out).len(), (n / 2) as usize);
}
