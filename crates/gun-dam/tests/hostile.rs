//! Hostile input: prototype-ish souls, deep nesting (also on a small stack),
//! huge batches, oversized frames, random bytes. Nothing may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Node, delivered, msgs, sent_to};
use gun_dam::{Direction, Error, Limits, Mesh, MeshConfig, PeerId, parse_frame, parse_frame_with};
use proptest::prelude::*;

#[test]
fn prototype_souls_and_keys_are_plain_strings() {
    let mut relay = Node::relay("R", 1);
    let (a, b) = (PeerId(1), PeerId(2));
    relay.connect(a, Direction::Incoming, 0);
    relay.connect(b, Direction::Incoming, 0);
    for soul in [
        "constructor",
        "__proto__",
        "toString",
        "hasOwnProperty",
        "big",
        "prototype",
    ] {
        relay.receive(
            b,
            &format!(r##"{{"#":"g-{soul}","get":{{"#":"{soul}"}}}}"##),
            1,
        );
        let put = format!(
            r##"{{"#":"p-{soul}","__proto__":{{"x":1}},"constructor":1,"put":{{"{soul}":{{"_":{{"#":"{soul}",">":{{"__proto__":1,"constructor":1}}}},"__proto__":"a","constructor":"b"}}}}}}"##
        );
        let sent = relay.receive(a, &put, 2);
        let to_a = sent_to(&sent, a);
        assert!(
            to_a.iter()
                .any(|m| m["@"] == format!("p-{soul}") && m["ok"] == true),
            "{soul}"
        );
        let push = &sent_to(&sent, b)[0];
        assert_eq!(push["put"][soul]["__proto__"], "a");
        let node = relay.graph.get(soul).unwrap();
        assert_eq!(node.len(), 2);
    }
    // Unknown fields named like prototype members are kept as data.
    let (_, m) = relay
        .delivered
        .iter()
        .find(|(_, m)| m.id.as_deref() == Some("p-constructor"))
        .unwrap();
    assert_eq!(m.extra["__proto__"], serde_json::json!({"x":1}));
}

fn deep(n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let body = format!("{}1{}", open.repeat(n), close.repeat(n));
        v.push(body.clone());
        v.push(format!("[{body}]"));
        for field in ["x", "put", "get", "ok", "%", "#", "@"] {
            v.push(format!("{{\"{field}\":{body}}}"));
            v.push(format!("[{{\"#\":\"m\",\"{field}\":{body}}}]"));
            v.push(format!(
                "{{\"put\":{{\"s\":{{\"_\":{{\"#\":\"s\",\">\":{{\"k\":1}}}},\"k\":{body}}}}}}}"
            ));
        }
    }
    v
}

fn parse_all_deep() {
    for t in deep(5000) {
        let r = parse_frame(&t);
        assert!(r.iter().all(Result::is_err), "{}", &t[..40]);
    }
    // Within the depth limit (32 levels in a field) it still works.
    let nested = |n: usize| format!("{{\"#\":\"m\",\"x\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    assert!(parse_frame(&nested(32))[0].is_ok());
    assert!(matches!(
        parse_frame(&nested(33)).as_slice(),
        [Err(Error::InvalidMessage {
            id: Some(_),
            reason: "a field is nested too deeply"
        })]
    ));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    parse_all_deep();
}

#[test]
fn deep_nesting_on_a_small_stack() {
    let h = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            parse_all_deep();
            let mut m = Mesh::new(MeshConfig::relay());
            m.connect(PeerId(1), Direction::Incoming, 0);
            for t in deep(5000) {
                m.receive(PeerId(1), &t, 1);
            }
        });
    h.unwrap().join().unwrap();
}

#[test]
fn ten_thousand_message_batches() {
    let one = r##"{"get":{"#":"s"}}"##;
    let batch = format!("[{}]", vec![one; 10_000].join(","));
    let v = parse_frame(&batch);
    assert_eq!(v.len(), 10_000);
    assert!(v.iter().all(Result::is_ok));
    let too_many = format!("[{}]", vec![one; 10_001].join(","));
    assert!(matches!(
        parse_frame(&too_many).as_slice(),
        [Err(Error::TooManyMessages { max: 10_000 })]
    ));
    // Through the mesh: each message gets its own id and is delivered once.
    let mut m = Mesh::new(MeshConfig::relay());
    m.connect(PeerId(1), Direction::Incoming, 0);
    m.connect(PeerId(2), Direction::Incoming, 0);
    let out = m.receive(PeerId(1), &batch, 1);
    assert_eq!(delivered(&out).len(), 10_000);
    // A batch of puts with ids repeating: deduplicated within the frame.
    let puts: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r##"{{"#":"p{}","put":{{"s{i}":{{"_":{{"#":"s{i}",">":{{"k":1}}}},"k":{i}}}}}}}"##,
                i % 100
            )
        })
        .collect();
    let out = m.receive(PeerId(1), &format!("[{}]", puts.join(",")), 2);
    assert_eq!(delivered(&out).len(), 100);
}

#[test]
fn nine_mib_frame_is_refused_with_an_answer() {
    let big = format!(
        r##"{{"#":"big","put":{{"s":{{"_":{{"#":"s",">":{{"k":1}}}},"k":"{}"}}}}}}"##,
        "x".repeat(9 << 20)
    );
    assert!(
        matches!(parse_frame(&big).as_slice(), [Err(Error::TooBig { max, .. })] if *max == 8 << 20)
    );
    let mut m = Mesh::new(MeshConfig::relay());
    m.connect(PeerId(1), Direction::Incoming, 0);
    let out = common::sends(&m.receive(PeerId(1), &big, 1));
    assert_eq!(msgs(&out[0].1)[0]["err"], "Message too big!");
    // A larger limit accepts it.
    let l = Limits {
        max_frame_bytes: 16 << 20,
        ..Limits::default()
    };
    assert!(parse_frame_with(&big, &l)[0].is_ok());
}

#[test]
fn odd_but_valid_text() {
    for t in [
        "\u{feff}{}",
        "{\"#\":\"\\ud800\"}",
        "{\"#\":\"a\\u0000b\",\"\\u0000\":1}",
        "[{\"#\":\"a\"},]",
        "{\"#\":\"a\",\"#\":\"b\"}",
        "{\"put\":{\"s\":{\"_\":{\"#\":\"s\",\">\":{\"k\":1e400}},\"k\":1}}}",
        "{\"put\":{\"s\":{\"_\":{\"#\":\"s\",\">\":{\"k\":NaN}},\"k\":Infinity}}}",
        "{\"get\":{\"#\":\"s\",\".\":{\"*\":5}}}",
        "{\"##\":99999999999,\"%\":-Infinity}",
        "  \n\t[ ]",
        "{\"put\":[1]}",
        "{\"put\":{\"\":{}}}",
    ] {
        let _ = parse_frame(t);
    }
    // Last duplicate wins, as in JSON.parse.
    assert_eq!(
        parse_frame("{\"#\":\"a\",\"#\":\"b\"}")[0]
            .as_ref()
            .unwrap()
            .id
            .as_deref(),
        Some("b")
    );
}

/// Pieces of JSON (and of what Gun relays emit), glued at random.
const ATOMS: [&str; 28] = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"#\"",
    "\"@\"",
    "\"put\"",
    "\"get\"",
    "\"dam\"",
    "\"?\"",
    "\"_\"",
    "\">\"",
    "\"s\"",
    "1",
    "-Infinity",
    "NaN",
    "null",
    "\"\\u0000\"",
    "a",
    "\"",
    "\\",
    "e",
    "-",
    ".",
    "0",
    "\"##\"",
];

fn jsonish() -> impl Strategy<Value = String> {
    // Indices, not a union of strategies: generation stays cheap in debug builds.
    prop::collection::vec(0..ATOMS.len(), 0..60)
        .prop_map(|v| v.into_iter().map(|i| ATOMS[i]).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_frame(&text);
        let mut prefixed = String::from("{");
        prefixed.push_str(&text);
        let _ = parse_frame(&prefixed);
    }

    #[test]
    fn random_json_like_text_never_panics(text in jsonish()) {
        let _ = parse_frame(&text);
        let mut m = Mesh::new(MeshConfig { rng_seed: Some(1), ..MeshConfig::relay() });
        m.connect(PeerId(1), Direction::Incoming, 0);
        m.connect(PeerId(2), Direction::Outgoing { url: "ws://x/gun".into() }, 0);
        let _ = m.receive(PeerId(1), &text, 1);
        let _ = m.receive(PeerId(2), &format!("[{text}]"), 2);
    }

    #[test]
    fn parsed_messages_round_trip(text in jsonish()) {
        for m in parse_frame(&text).into_iter().flatten() {
            let again = parse_frame(&m.to_json());
            prop_assert_eq!(again.len(), 1);
            prop_assert_eq!(again[0].as_ref().ok(), Some(&m));
        }
    }
}
