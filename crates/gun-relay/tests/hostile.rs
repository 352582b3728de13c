//! Hostile input against a running `gun-relay` (issue #4), once on the memory
//! store and once on sled:
//!
//! * every malformed frame of the shared interop kit's case j
//!   (`/work/shared/interop/lib/cases.js`, `malformedFrames`), one at a time;
//! * puts with bad nodes that carry a `#`, alone and in a batch between valid
//!   puts: the valid ones are acked, the bad ones answered with `err`;
//! * souls and keys named `constructor`, `toString`, `hasOwnProperty`,
//!   `__proto__` (and `valueOf`, `prototype`): stored and read back like any
//!   other, with their states;
//! * deeply nested JSON (100 000 levels), bare and inside puts and gets;
//! * one frame holding a batch of 10 000 valid puts: every one acked and
//!   stored; a batch of 10 001 (over the relay's batch bound) must not hurt;
//! * frames over the 8 MiB size limit (text, binary, and a message fragmented
//!   into frames each under the limit): the connection may be closed.
//!
//! After every frame or case, a well-behaved client connected since the start
//! gets its put acked (`ok: true`) and its get answered with that value, a new
//! connection gets answered too, and the relay process is still running. Where
//! the relay answers (valid puts, invalid puts with an id) the answer is
//! asserted; where it drops input, only liveness is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{RawClient, RelayProc, RelaySpec, now_ms, put_msg};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Time allowed for one answer (an ack, a get reply).
const ANSWER: Duration = Duration::from_secs(10);
/// Time allowed for the 10 000 acks of the big batch (debug build, sled).
const BATCH_ACKS: Duration = Duration::from_secs(180);
/// The relay's largest WebSocket message (gun-net-ws DEFAULT_MAX_MESSAGE_BYTES).
const MAX_MESSAGE: usize = 8 << 20;

/// A relay under attack and the well-behaved client that checks on it.
struct Target {
    relay: RelayProc,
    good: RawClient,
    /// Prefix of every soul this run writes (the relay may be reused by hand).
    tag: String,
    checks: usize,
}

impl Target {
    async fn start(store: &'static str) -> Target {
        let mut spec = RelaySpec::new(&format!("hostile-{store}"));
        spec.store = store;
        let relay = tokio::task::spawn_blocking(move || RelayProc::start(spec))
            .await
            .unwrap();
        let good = RawClient::connect(&relay.addr, "good").await;
        Target {
            relay,
            good,
            tag: format!("h{}-{}", std::process::id(), now_ms() as u64),
            checks: 0,
        }
    }

    fn soul(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// The relay still runs and serves: the well-behaved client's put is acked
    /// and read back, and a new connection is answered.
    async fn check_alive(&mut self, what: &str) {
        self.checks += 1;
        assert!(
            self.relay.alive(),
            "after {what}: the relay exited:\n{}",
            self.relay.log.tail(30)
        );
        assert!(
            self.good.closed().is_none(),
            "after {what}: the relay closed the well-behaved client's connection ({:?})",
            self.good.closed()
        );
        let soul = self.soul("alive");
        let value = json!(format!("{} {what}", self.checks));
        let ack = self
            .good
            .put_acked(
                &soul,
                &[("case", value.clone())],
                ANSWER,
                &format!("after {what}"),
            )
            .await;
        assert_eq!(ack["ok"], true, "after {what}: the put was refused: {ack}");
        let node = self
            .good
            .get_merged(&soul, None, ANSWER, |n| n.get("case") == Some(&value))
            .await;
        assert_eq!(
            node.get("case"),
            Some(&value),
            "after {what}: the get did not return the put"
        );
        let fresh = RawClient::connect(&self.relay.addr, "fresh").await;
        let answer = fresh
            .get_answer(&soul, Some("case"), ANSWER, &format!("after {what}"))
            .await;
        assert_eq!(
            answer["put"][&soul]["case"], value,
            "after {what}: a new connection's get: {answer}"
        );
    }
}

/// A connection for hostile frames, replaced when the relay closed it.
async fn hostile_conn(t: &Target, conn: &mut Option<RawClient>) -> usize {
    let closed = conn.as_ref().is_none_or(|c| c.closed().is_some());
    if closed {
        *conn = Some(RawClient::connect(&t.relay.addr, "hostile").await);
    }
    usize::from(closed)
}

// ------------------------------------------------------------------ case j

/// A frame of case j.
enum Bad {
    Text(String),
    Binary(Vec<u8>),
}

/// The 45 frames of the kit's `malformedFrames(soulPrefix)`, in its order.
fn kit_case_j_frames(prefix: &str) -> Vec<(String, Bad)> {
    let now = now_ms();
    let s = |tag: &str| format!("{prefix}-{tag}");
    let node = |soul: &str, meta_soul: &str, states: Value, fields: Value| {
        let mut n = json!({"_": {"#": meta_soul, ">": states}});
        for (k, v) in fields.as_object().unwrap() {
            n[k] = v.clone();
        }
        json!({"put": {soul: n}}).to_string()
    };
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let big = "x".repeat(5 * 1024 * 1024);
    let mut frames: Vec<Bad> = [
        // not JSON at all
        "garbage",
        "{not json",
        "[1,2,",
        "",
        " ",
        "\u{0}\u{1}",
    ]
    .into_iter()
    .map(|t| Bad::Text(t.to_owned()))
    .collect();
    frames.push(Bad::Binary(vec![0xff, 0xfe, 0x00, 0x01]));
    let more: Vec<String> = vec![
        // JSON, but not a message
        "null".into(),
        "true".into(),
        "42".into(),
        r#""str""#.into(),
        "[]".into(),
        "{}".into(),
        r#"[null,1,"x"]"#.into(),
        deep,
        // messages with wrong types
        r#"{"get":5}"#.into(),
        r#"{"get":null}"#.into(),
        r#"{"get":"str"}"#.into(),
        r##"{"get":{"#":null}}"##.into(),
        r##"{"get":{"#":{"x":1}}}"##.into(),
        r##"{"get":{"#":5}}"##.into(),
        r##"{"get":{"#":["a"]}}"##.into(),
        json!({"get": {"#": s("g"), ".": {"x": [1]}}}).to_string(),
        r#"{"put":"string"}"#.into(),
        r#"{"put":5}"#.into(),
        r#"{"put":null}"#.into(),
        r#"{"put":[1,2]}"#.into(),
        json!({"put": {s("p1"): 5}}).to_string(),
        json!({"put": {s("p2"): {}}}).to_string(),
        json!({"put": {s("p3"): {"_": 5}}}).to_string(),
        // soul mismatch
        node(&s("p4"), &s("other"), json!({"a": 1}), json!({"a": 1})),
        // bad state (Gun stores it anyway)
        node(&s("p5"), &s("p5"), json!({"a": "notanumber"}), json!({"a": "v"})),
        // objects must be links
        node(&s("p6"), &s("p6"), json!({"a": now}), json!({"a": {"nested": "object"}})),
        // arrays are not valid values
        node(&s("p7"), &s("p7"), json!({"a": now}), json!({"a": [1, 2, 3]})),
        node(&s("p8"), &s("p8"), json!({}), json!({"a": "no state"})),
        json!({"#": 123, "get": {"#": s("x")}}).to_string(),
        json!({"#": {"a": 1}, "get": {"#": s("x")}}).to_string(),
        json!({"@": {"a": 1}, "ok": 1}).to_string(),
        json!({"@": "nonexistent-ack", "put": {s("p9"): {"_": {"#": s("p9"), ">": {"a": now}}, "a": "v"}}})
            .to_string(),
        json!({"dam": 5}).to_string(),
        json!({"dam": "no-such-dam"}).to_string(),
        json!({"dam": "?", "pid": {"x": 1}}).to_string(),
        format!("[{}{{}}]", r#"{"get":5},"#.repeat(100)),
        // huge frames (5 MiB each)
        json!({"junk": big}).to_string(),
    ];
    frames.extend(more.into_iter().map(Bad::Text));
    frames.insert(frames.len() - 1, Bad::Text(big));
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let label = match &f {
                Bad::Text(t) if t.len() > 60 => format!("j#{i} ({} bytes: {}…)", t.len(), &t[..40]),
                Bad::Text(t) => format!("j#{i} {t:?}"),
                Bad::Binary(b) => format!("j#{i} binary {b:?}"),
            };
            (label, f)
        })
        .collect()
}

async fn case_j(t: &mut Target) {
    let prefix = t.soul("junk");
    let frames = kit_case_j_frames(&prefix);
    assert_eq!(frames.len(), 45, "the kit's case j has 45 frames");
    let mut conn = None;
    let mut reconnects = 0;
    for (label, frame) in frames {
        reconnects += hostile_conn(t, &mut conn).await;
        let c = conn.as_ref().unwrap();
        match frame {
            Bad::Text(s) => c.send_text(s),
            Bad::Binary(b) => c.send_binary(b),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        t.check_alive(&label).await;
    }
    // Like the kit: the invalid nodes among them are not served.
    for tag in ["p4", "other", "p6", "p7", "p8"] {
        let soul = format!("{prefix}-{tag}");
        let node = t
            .good
            .get_merged(&soul, None, Duration::from_millis(500), |_| false)
            .await;
        assert!(
            node.get("a").is_none(),
            "the relay stores and serves the invalid node {soul}: {node:?}"
        );
    }
    eprintln!(
        "case j: 45 frames sent, hostile connection replaced {} times",
        reconnects - 1
    );
}

// ------------------------------------------------------------------ invalid puts with ids

async fn invalid_puts_with_ids(t: &mut Target) {
    let c = RawClient::connect(&t.relay.addr, "invalid").await;
    let now = now_ms();
    let bad = |id: &str, soul: &str, value: Value| json!({"#": id, "put": {soul: {"_": {"#": soul, ">": {"a": now}}, "a": value}}});
    let s = t.soul("invalid");
    // Alone: an object value, an array value, a soul mismatch.
    let alone = [
        bad(&c.id("obj"), &s, json!({"nested": 1})),
        bad(&c.id("arr"), &s, json!([1, 2])),
        json!({"#": c.id("mismatch"), "put": {s.clone(): {"_": {"#": "elsewhere", ">": {"a": now}}, "a": 1}}}),
    ];
    for m in &alone {
        c.send(m);
        let id = m["#"].as_str().unwrap();
        let answer = c.wait_for(ANSWER, |r| r["@"] == id).await;
        let answer = answer.unwrap_or_else(|| panic!("no answer to the invalid put {m}"));
        assert!(
            answer["err"].is_string(),
            "invalid put {m} answered {answer}"
        );
        assert!(answer["ok"].is_null(), "invalid put {m} acked: {answer}");
    }
    // In one batch between valid puts: each message answered on its own.
    let v1 = put_msg(
        &c.id("valid"),
        &t.soul("batch-ok-1"),
        &[("a", json!(1))],
        now,
    );
    let b = bad(&c.id("bad"), &t.soul("batch-bad"), json!([1]));
    let v2 = put_msg(
        &c.id("valid"),
        &t.soul("batch-ok-2"),
        &[("a", json!(2))],
        now,
    );
    c.send_text(format!("[{v1},{b},{v2}]"));
    for (m, ok) in [(&v1, true), (&b, false), (&v2, true)] {
        let id = m["#"].as_str().unwrap();
        let answer = c.wait_for(ANSWER, |r| r["@"] == id).await;
        let answer = answer.unwrap_or_else(|| panic!("no answer to {m} in a mixed batch"));
        if ok {
            assert_eq!(
                answer["ok"], true,
                "valid put {m} in a mixed batch answered {answer}"
            );
        } else {
            assert!(
                answer["err"].is_string(),
                "invalid put {m} in a mixed batch answered {answer}"
            );
        }
    }
    let node = c
        .get_merged(
            &t.soul("batch-bad"),
            None,
            Duration::from_millis(500),
            |_| false,
        )
        .await;
    assert!(
        node.get("a").is_none(),
        "the invalid put of the batch was stored: {node:?}"
    );
    t.check_alive("invalid puts with ids").await;
}

// ------------------------------------------------------------------ prototype names

const PROTO_NAMES: [&str; 6] = [
    "constructor",
    "toString",
    "hasOwnProperty",
    "__proto__",
    "valueOf",
    "prototype",
];

async fn prototype_names(t: &mut Target) {
    let c = RawClient::connect(&t.relay.addr, "proto").await;
    // The bare names as souls (the relay is fresh, so they are ours), and the
    // same names as keys of each, with values of every kind.
    for (i, soul) in PROTO_NAMES.iter().enumerate() {
        let fields: Vec<(&str, Value)> = vec![
            ("constructor", json!(format!("c of {soul}"))),
            ("toString", json!(i)),
            ("hasOwnProperty", json!(false)),
            (
                "__proto__",
                json!({"#": PROTO_NAMES[(i + 1) % PROTO_NAMES.len()]}),
            ),
            ("valueOf", json!(null)),
            ("prototype", json!(format!("p of {soul}"))),
            ("plain", json!("x")),
        ];
        let state = now_ms();
        let id = c.put(soul, &fields, state);
        let ack = c.wait_for(ANSWER, |m| m["@"] == id.as_str()).await;
        let ack = ack.unwrap_or_else(|| panic!("no ack for the put to soul {soul:?}"));
        assert_eq!(ack["ok"], true, "put to soul {soul:?} answered {ack}");

        let node = c
            .get_merged(soul, None, ANSWER, |n| {
                fields.iter().all(|(k, v)| n.get(*k) == Some(v))
            })
            .await;
        for (k, v) in &fields {
            assert_eq!(
                node.get(*k),
                Some(v),
                "soul {soul:?} key {k:?}: got node {node:?}"
            );
            assert_eq!(
                node["_"][">"][*k].as_f64(),
                Some(state),
                "soul {soul:?} key {k:?}: state"
            );
        }
        assert_eq!(node["_"]["#"], json!(soul), "soul {soul:?}: meta soul");
        // One key at a time: just that key (and its state).
        for (k, v) in &fields {
            let answer = c
                .get_answer(soul, Some(k), ANSWER, &format!("get {soul}.{k}"))
                .await;
            let got = answer["put"][*soul]
                .as_object()
                .cloned()
                .unwrap_or_default();
            assert_eq!(got.get(*k), Some(v), "get {soul:?}.{k:?} answered {answer}");
            let keys: Vec<&str> = got
                .keys()
                .map(String::as_str)
                .filter(|x| *x != "_")
                .collect();
            assert_eq!(
                keys,
                vec![*k],
                "get {soul:?}.{k:?} returned other keys: {answer}"
            );
        }
        t.check_alive(&format!("soul {soul:?}")).await;
    }
    // A later write to one of them merges like anywhere else.
    let id = c.put(
        "__proto__",
        &[("constructor", json!("newer"))],
        now_ms() + 1.0,
    );
    let ack = c.wait_for(ANSWER, |m| m["@"] == id.as_str()).await;
    assert_eq!(
        ack.map(|a| a["ok"].clone()),
        Some(json!(true)),
        "update of __proto__"
    );
    let node = c
        .get_merged("__proto__", None, ANSWER, |n| {
            n.get("constructor") == Some(&json!("newer"))
        })
        .await;
    assert_eq!(node.get("constructor"), Some(&json!("newer")));
    assert_eq!(
        node.get("plain"),
        Some(&json!("x")),
        "other keys of __proto__ kept"
    );
    t.check_alive("update of soul __proto__").await;
}

// ------------------------------------------------------------------ deep nesting

async fn deep_nesting(t: &mut Target) {
    const N: usize = 100_000;
    let open = "[".repeat(N);
    let close = "]".repeat(N);
    let objs = format!("{}1{}", r#"{"a":"#.repeat(N), "}".repeat(N));
    let s = t.soul("deep");
    let put_deep = format!(
        r##"{{"#":"{}","put":{{"{s}":{{"_":{{"#":"{s}",">":{{"a":1}}}},"a":{open}{close}}}}}}}"##,
        t.good.id("deep-put")
    );
    let get_deep = format!(
        r##"{{"#":"{}","get":{{"#":{}"x"{}}}}}"##,
        t.good.id("deep-get"),
        r##"{"#":"##.repeat(N),
        "}".repeat(N)
    );
    let field_deep = format!(
        r##"{{"#":"{}","x":{open}{close},"put":{}}}"##,
        t.good.id("deep-field"),
        put_msg("unused", &s, &[("b", json!(1))], now_ms())["put"]
    );
    let cases = [
        ("100k unclosed '['", open.clone()),
        ("100k nested arrays", format!("{open}{close}")),
        ("100k nested objects", objs.clone()),
        ("a put whose value nests 100k arrays", put_deep),
        ("a get whose soul nests 100k objects", get_deep),
        ("a put message with a 100k-deep extra field", field_deep),
        (
            "a batch whose first element nests 100k objects",
            format!("[{objs},{{}}]"),
        ),
    ];
    let mut conn = None;
    for (what, frame) in cases {
        hostile_conn(t, &mut conn).await;
        conn.as_ref().unwrap().send_text(frame);
        t.check_alive(&format!("deep nesting: {what}")).await;
    }
    let node = t
        .good
        .get_merged(&s, None, Duration::from_millis(500), |_| false)
        .await;
    assert!(
        node.get("a").is_none(),
        "the deep array value was stored: {node:?}"
    );
}

// ------------------------------------------------------------------ big batch

async fn big_batch(t: &mut Target) {
    const PUTS: usize = 10_000;
    const SOULS: usize = 100;
    let c = RawClient::connect(&t.relay.addr, "batch").await;
    let state = now_ms();
    let mut ids = Vec::with_capacity(PUTS);
    let mut frame = String::from("[");
    for i in 0..PUTS {
        let id = c.id("b");
        let key = format!("k{}", i / SOULS);
        let m = put_msg(
            &id,
            &t.soul(&format!("batch-{}", i % SOULS)),
            &[(key.as_str(), json!(i))],
            state,
        );
        if i > 0 {
            frame.push(',');
        }
        frame.push_str(&m.to_string());
        ids.push(id);
    }
    frame.push(']');
    assert!(
        frame.len() < MAX_MESSAGE,
        "the batch fits in one frame ({} bytes)",
        frame.len()
    );
    c.send_text(frame);

    // Every put acked with ok.
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = tokio::time::Instant::now() + BATCH_ACKS;
    let (acked, errs) = loop {
        let msgs = c.messages();
        let acked: HashSet<String> = msgs
            .iter()
            .filter(|m| m["ok"] == true)
            .filter_map(|m| m["@"].as_str())
            .filter(|id| want.contains(id))
            .map(str::to_owned)
            .collect();
        let errs: Vec<Value> = msgs
            .iter()
            .filter(|m| m["err"].is_string())
            .cloned()
            .collect();
        if acked.len() == PUTS
            || !errs.is_empty()
            || c.closed().is_some()
            || tokio::time::Instant::now() > deadline
        {
            break (acked, errs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        errs.is_empty(),
        "puts of the batch refused: {:?}",
        &errs[..errs.len().min(3)]
    );
    assert_eq!(
        acked.len(),
        PUTS,
        "{} of {PUTS} puts of one batch acked (connection closed: {:?}); relay log:\n{}",
        acked.len(),
        c.closed(),
        t.relay.log.tail(10)
    );
    // And stored: every soul holds its 100 keys.
    for n in 0..SOULS {
        let soul = t.soul(&format!("batch-{n}"));
        let expect = |k: usize| json!(k * SOULS + n);
        let node = t
            .good
            .get_merged(&soul, None, ANSWER, |m| {
                (0..PUTS / SOULS).all(|k| m.get(&format!("k{k}")) == Some(&expect(k)))
            })
            .await;
        for k in 0..PUTS / SOULS {
            assert_eq!(
                node.get(&format!("k{k}")),
                Some(&expect(k)),
                "{soul}.k{k} after the batch"
            );
        }
    }
    eprintln!("big batch: {PUTS}/{PUTS} puts acked and read back");
    t.check_alive("a batch of 10 000 puts").await;

    // One more than the batch bound: whatever the relay does with it, it lives.
    let mut frame = String::from("[");
    for i in 0..=PUTS {
        if i > 0 {
            frame.push(',');
        }
        frame.push_str(
            &put_msg(&c.id("over"), &t.soul("over"), &[("k", json!(i))], state).to_string(),
        );
    }
    frame.push(']');
    c.send_text(frame);
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.check_alive("a batch of 10 001 puts").await;
}

// ------------------------------------------------------------------ oversize

async fn oversize(t: &mut Target) {
    let s = t.soul("oversize");
    let big_put = |id: &str, len: usize| {
        let head = format!(
            r##"{{"#":"{id}","put":{{"{s}":{{"_":{{"#":"{s}",">":{{"a":{}}}}},"a":""##,
            now_ms()
        );
        let tail = r#""}}}"#;
        format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
    };
    let mut closed = 0;
    // A put one byte over the limit, then one of 32 MiB.
    for (what, len) in [
        ("one byte over the limit", MAX_MESSAGE + 1),
        ("32 MiB", 32 << 20),
    ] {
        let c = RawClient::connect(&t.relay.addr, "oversize").await;
        let id = c.id("big");
        let frame = big_put(&id, len);
        assert_eq!(frame.len(), len);
        c.send_text(frame);
        let ack = c
            .wait_for(Duration::from_secs(2), |m| m["@"] == id.as_str())
            .await;
        assert!(
            ack.as_ref().is_none_or(|a| a["ok"] != true),
            "a {what} put was acked: {ack:?}"
        );
        closed += usize::from(c.closed().is_some());
        t.check_alive(&format!("a text frame {what}")).await;
    }
    // Binary, over the limit.
    let c = RawClient::connect(&t.relay.addr, "oversize").await;
    c.send_binary(vec![b'{'; MAX_MESSAGE + 1024]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    closed += usize::from(c.closed().is_some());
    t.check_alive("a binary frame over the limit").await;
    // A text message in 1 MiB fragments, 10 MiB in all: each frame is under
    // the limit, the message is not.
    let c = RawClient::connect(&t.relay.addr, "fragments").await;
    let id = c.id("frag");
    let text = big_put(&id, 10 << 20).into_bytes();
    let parts: Vec<&[u8]> = text.chunks(1 << 20).collect();
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        c.send_ws(WsMessage::Frame(Frame::message(
            part.to_vec(),
            opcode,
            i + 1 == parts.len(),
        )));
    }
    let ack = c
        .wait_for(Duration::from_secs(2), |m| m["@"] == id.as_str())
        .await;
    assert!(
        ack.as_ref().is_none_or(|a| a["ok"] != true),
        "a fragmented 10 MiB put was acked: {ack:?}"
    );
    closed += usize::from(c.closed().is_some());
    t.check_alive("a fragmented text message over the limit")
        .await;
    let node = t
        .good
        .get_merged(&s, None, Duration::from_millis(500), |_| false)
        .await;
    assert!(node.get("a").is_none(), "an oversized put was stored");
    eprintln!("oversize: the relay closed {closed} of 4 connections");
}

// ------------------------------------------------------------------ tests

async fn all_cases(store: &'static str) {
    let mut t = Target::start(store).await;
    t.check_alive("start").await;
    case_j(&mut t).await;
    invalid_puts_with_ids(&mut t).await;
    prototype_names(&mut t).await;
    deep_nesting(&mut t).await;
    big_batch(&mut t).await;
    oversize(&mut t).await;
    eprintln!("hostile ({store}): {} liveness checks passed", t.checks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_memory_store() {
    all_cases("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_sled_store() {
    all_cases("sled").await;
}
