//! Backups: `gun-relay export` / `gun-relay import` (JSON Lines) round trips
//! for the file and sled stores, a malformed line refused with its number,
//! and the online `GET /admin/export` of a memory relay behind its token.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod ops;

use std::collections::BTreeMap;
use std::path::Path;

use common::http_get_with as http_get;
use ops::{Proc, path};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

/// Several souls linking each other, unicode, numbers, null, booleans and
/// escapes, each key with its own state.
fn dataset() -> Vec<Value> {
    let now = common::now_ms();
    let node = |soul: &str, fields: Vec<(&str, Value)>| {
        let mut states = serde_json::Map::new();
        let mut node = serde_json::Map::new();
        for (i, (k, v)) in fields.into_iter().enumerate() {
            // Distinct states, some fractional.
            states.insert(
                k.to_owned(),
                json!(now - 1000.0 * i as f64 - 0.5 * (i % 2) as f64),
            );
            node.insert(k.to_owned(), v);
        }
        node.insert("_".into(), json!({"#": soul, ">": states}));
        Value::Object(node)
    };
    vec![
        node(
            "people",
            vec![
                ("alice", json!({"#": "people/alice"})),
                ("bob", json!({"#": "people/bob"})),
            ],
        ),
        node(
            "people/alice",
            vec![
                ("name", json!("Alice Ünïcødé 😀")),
                ("age", json!(31)),
                ("score", json!(-1.25)),
                ("friend", json!({"#": "people/bob"})),
                ("gone", Value::Null),
                ("admin", json!(true)),
            ],
        ),
        node(
            "people/bob",
            vec![
                ("name", json!("Bob 李")),
                ("age", json!(0)),
                ("big", json!(1e21)),
                ("small", json!(5e-7)),
                ("friend", json!({"#": "people/alice"})),
                ("quote\"key\\", json!("line\nbreak\t\u{1}")),
            ],
        ),
        node(
            "日本/ключ",
            vec![("🔑", json!("värde")), ("n", json!(-0.0))],
        ),
    ]
}

/// JSON equality with numbers compared as f64 (`31` equals `31.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

fn assert_nodes(what: &str, got: &BTreeMap<String, Value>, want: &[Value]) {
    assert_eq!(got.len(), want.len(), "{what}: souls {:?}", got.keys());
    for node in want {
        let soul = node["_"]["#"].as_str().unwrap();
        let g = got
            .get(soul)
            .unwrap_or_else(|| panic!("{what}: {soul} missing"));
        assert!(same(g, node), "{what}: {soul}\n got {g}\nwant {node}");
    }
}

async fn ws(addr: &str) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(format!("ws://{addr}/gun"), tcp)
        .await
        .unwrap()
        .0
}

async fn put_all(addr: &str, nodes: &[Value]) {
    let mut ws = ws(addr).await;
    for n in nodes {
        ops::put(&mut ws, n).await;
    }
}

/// Reads every soul of `want` back from the relay at `addr` and compares
/// values and states.
async fn check_relay(addr: &str, want: &[Value]) {
    let mut ws = ws(addr).await;
    let mut got = BTreeMap::new();
    for n in want {
        let soul = n["_"]["#"].as_str().unwrap();
        if let Some(node) = ops::get(&mut ws, soul).await {
            got.insert(soul.to_owned(), node);
        }
    }
    assert_nodes("read back", &got, want);
}

/// The nodes of a JSON Lines export, by soul.
fn parse_export(text: &str) -> BTreeMap<String, Value> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["_"]["#"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

fn import(store: &str, data: &Path, file: &Path) -> String {
    let out = ops::run(&["--store", store, "--data", path(data), "import", path(file)]);
    assert!(out.status.success(), "import: {}", ops::text(&out.stderr));
    ops::text(&out.stdout)
}

async fn offline_round_trip(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("from"), dir.path().join("to"));
    let mut nodes = dataset();
    // Enough more souls for an export of several pages (the stores read
    // 512 nodes at a time).
    let st = common::now_ms() - 500.0;
    nodes.extend((0..1300).map(|i| {
        let soul = format!("bulk/{i:05}");
        json!({"_": {"#": soul, ">": {"i": st, "t": st}}, "i": i, "t": format!("n{i}")})
    }));
    let relay = Proc::start("ws", &["--store", store, "--data", path(&from)]);
    put_all(&relay.addr, &nodes).await;
    relay.stop();

    let file = dir.path().join("backup.jsonl");
    let out = ops::run(&[
        "--store",
        store,
        "--data",
        path(&from),
        "export",
        "--out",
        path(&file),
    ]);
    assert!(out.status.success(), "export: {}", ops::text(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_nodes("export", &parse_export(&text), &nodes);
    // Without --out: the same lines on stdout.
    let out = ops::run(&["--store", store, "--data", path(&from), "export"]);
    assert!(out.status.success());
    assert_eq!(ops::text(&out.stdout), text);

    // A directory without that store, or the memory store: an error, not an empty export.
    for (kind, data) in [(store, &to), ("memory", &from)] {
        let out = ops::run(&["--store", kind, "--data", path(data), "export"]);
        assert!(
            !out.status.success(),
            "export of {kind} in {data:?} succeeded"
        );
        assert!(ops::text(&out.stdout).is_empty());
    }

    let report = import(store, &to, &file);
    assert!(
        report.contains("imported 1304 souls, 2616 keys"),
        "{report}"
    );
    // Importing again changes nothing (HAM: equal states, equal values).
    import(store, &to, &file);

    let relay = Proc::start("ws", &["--store", store, "--data", path(&to)]);
    check_relay(&relay.addr, &nodes).await;
    relay.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_round_trip() {
    offline_round_trip("file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_store_round_trip() {
    offline_round_trip("sled").await;
}

#[test]
fn a_malformed_line_is_refused_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("bad.jsonl");
    let good = r##"{"_":{"#":"ok",">":{"v":1}},"v":1}"##;
    for (bad, why) in [
        (r##"{"_":{"#":"half","##, "not JSON"),
        (r#"{"v":1}"#, "no soul"),
        (
            r##"{"_":{"#":"nostate",">":{}},"v":1}"##,
            "not a valid node",
        ),
    ] {
        std::fs::write(&file, format!("{good}\n\n{bad}\n{good}\n")).unwrap();
        let out = ops::run(&[
            "--store",
            "file",
            "--data",
            path(&data),
            "import",
            path(&file),
        ]);
        assert!(!out.status.success(), "{bad} was accepted");
        let err = ops::text(&out.stderr);
        assert!(err.contains("line 3") && err.contains(why), "{bad}: {err}");
    }
    // The line before the bad one was imported, nothing of the bad ones.
    let out = ops::run(&["--store", "file", "--data", path(&data), "export"]);
    let got = parse_export(&ops::text(&out.stdout));
    assert_eq!(got.keys().collect::<Vec<_>>(), ["ok"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_export_of_a_memory_relay() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dataset();

    // No token configured: no export.
    let relay = Proc::start(
        "ws",
        &["--store", "memory", "--data", path(&dir.path().join("m0"))],
    );
    let (status, _) = http_get(&relay.addr, "/admin/export", "Authorization: Bearer x\r\n").await;
    assert_eq!(status, 404);
    relay.stop();

    let relay = Proc::start(
        "ws",
        &[
            "--store",
            "memory",
            "--data",
            path(&dir.path().join("m1")),
            "--admin-token",
            "s3cret",
        ],
    );
    put_all(&relay.addr, &nodes).await;
    // Enough more souls, in one put, for an export of several chunks (64 KiB each).
    let bulk = 3000;
    let mut graph = serde_json::Map::new();
    for i in 0..bulk {
        let soul = format!("bulk/{i:05}");
        graph.insert(
            soul.clone(),
            json!({"_": {"#": soul, ">": {"text": 1.0, "i": 2.0}}, "text": "x".repeat(60), "i": i}),
        );
    }
    let mut socket = ws(&relay.addr).await;
    let ack = ops::ask(
        &mut socket,
        &json!({"#": "bulk", "put": Value::Object(graph)}),
        "bulk",
    )
    .await;
    assert!(ack["err"].is_null(), "{ack}");
    for headers in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: s3cret\r\n",
    ] {
        let (status, _) = http_get(&relay.addr, "/admin/export", headers).await;
        assert_eq!(status, 401, "{headers:?}");
    }
    let (status, text) = http_get(
        &relay.addr,
        "/admin/export",
        "Authorization: Bearer s3cret\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.len() > 3 * 64 * 1024, "{} bytes", text.len());
    let mut exported = parse_export(&text);
    assert_eq!(exported.len(), nodes.len() + bulk);
    exported.retain(|soul, _| !soul.starts_with("bulk/"));
    assert_nodes("online export", &exported, &nodes);
    // The other pages still answer.
    assert_eq!(http_get(&relay.addr, "/health", "").await.0, 200);
    relay.stop();

    // Restored into a file store, served again.
    let file = dir.path().join("online.jsonl");
    std::fs::write(&file, &text).unwrap();
    let to = dir.path().join("to");
    let report = import("file", &to, &file);
    assert!(
        report.contains(&format!("imported {} souls", nodes.len() + bulk)),
        "{report}"
    );
    let relay = Proc::start("ws", &["--store", "file", "--data", path(&to)]);
    check_relay(&relay.addr, &nodes).await;
    relay.stop();
}
