//! gun-relay on PostgreSQL (`--store postgres`): a fleet of relays on one
//! database, the database going away and coming back, relays SIGKILLed.
//!
//! Each test starts its own throw-away PostgreSQL server
//! (`gun_store_postgres::testing`); without PostgreSQL installed the tests
//! skip with a message, except in CI (`CI=true`), where that is a failure.
//! Run by scripts/test.sh's PostgreSQL section (feature `postgres-tests`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{RawClient, RelayProc, RelaySpec, now_ms};
use gun_store_postgres::testing::TempPostgres;
use rand::Rng;
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn relay(name: &str, port: u16, pg: &TempPostgres) -> RelayProc {
    relay_with(name, port, pg, &[])
}

/// [`relay`] with more flags.
fn relay_with(name: &str, port: u16, pg: &TempPostgres, extra: &[&str]) -> RelayProc {
    let mut spec = RelaySpec::new(name);
    spec.port = port;
    spec.store = "postgres";
    spec.log = "warn,gun_core::engine::external=info,gun_store_postgres=info".into();
    spec.args = vec!["--postgres-url".into(), pg.default_url()];
    spec.args.extend(extra.iter().map(|a| (*a).to_owned()));
    RelayProc::start(spec)
}

/// What a put got back: `Some(Ok)`, `Some(Err(text))`, or `None` (no answer).
async fn put_once(
    c: &RawClient,
    soul: &str,
    key: &str,
    value: &str,
    wait: Duration,
) -> Option<Result<(), String>> {
    let id = c.put(soul, &[(key, json!(value))], now_ms());
    let ack = c.wait_for(wait, |m| m["@"] == id.as_str()).await?;
    match ack.get("err") {
        Some(e) if !e.is_null() => Some(Err(e.to_string())),
        _ => Some(Ok(())),
    }
}

/// The node `soul` as a relay answers it (meta removed), `{}` when not found.
async fn node(c: &RawClient, soul: &str) -> BTreeMap<String, Value> {
    let got = c.get_node(soul, Duration::from_secs(5)).await;
    let mut out = BTreeMap::new();
    if let Some(Value::Object(m)) = got {
        for (k, v) in m {
            if k != "_" {
                out.insert(k, v);
            }
        }
    }
    out
}

/// Every `(soul, key, value)` that `c` received in a put (pushes and answers).
fn seen(c: &RawClient) -> std::collections::HashSet<(String, String, Value)> {
    let mut out = std::collections::HashSet::new();
    for m in c.messages() {
        if let Some(put) = m["put"].as_object() {
            for (soul, node) in put {
                for (k, v) in node.as_object().into_iter().flatten() {
                    out.insert((soul.clone(), k.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_relay_reaches_subscribers_of_another() {
    let Some(pg) = TempPostgres::start_or_skip("fleet push") else {
        return;
    };
    let r1 = relay("r1", free_port(), &pg);
    let r2 = relay("r2", free_port(), &pg);
    let writer = RawClient::connect(&r1.addr, "writer").await;
    let reader = RawClient::connect(&r2.addr, "reader").await;
    // The reader reads (and so subscribes to) the soul first: r2 caches it.
    reader
        .put_acked(
            "room",
            &[("topic", json!("old"))],
            Duration::from_secs(10),
            "seed",
        )
        .await;
    assert_eq!(
        node(&reader, "room").await.get("topic"),
        Some(&json!("old"))
    );
    let t0 = Instant::now();
    assert_eq!(
        put_once(&writer, "room", "topic", "new", Duration::from_secs(10)).await,
        Some(Ok(()))
    );
    let pushed = reader
        .wait_for(Duration::from_secs(5), |m| {
            m["put"]["room"]["topic"] == "new"
        })
        .await;
    assert!(
        pushed.is_some(),
        "r2's subscriber got no push of r1's write"
    );
    eprintln!("push across relays after {:?}", t0.elapsed());
    // r2's cache is not older than the database after the notification.
    assert_eq!(
        node(&reader, "room").await.get("topic"),
        Some(&json!("new"))
    );
    // A value too large for one notification travels by its ids.
    let big = "x".repeat(20_000);
    assert_eq!(
        put_once(&writer, "room", "big", &big, Duration::from_secs(10)).await,
        Some(Ok(()))
    );
    let pushed = reader
        .wait_for(Duration::from_secs(5), |m| {
            m["put"]["room"]["big"] == big.as_str()
        })
        .await;
    assert!(
        pushed.is_some(),
        "a large write was not pushed across relays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_err_acks_then_recovers() {
    let Some(pg) = TempPostgres::start_or_skip("database outage") else {
        return;
    };
    let r = relay("r", free_port(), &pg);
    let c = RawClient::connect(&r.addr, "c").await;
    assert_eq!(
        put_once(&c, "o", "before", "1", Duration::from_secs(10)).await,
        Some(Ok(()))
    );
    assert_eq!(node(&c, "o").await.get("before"), Some(&json!("1")));
    pg.stop().expect("stop postgres");
    let down = Instant::now();
    // Writes while the database is down: an err ack, never ok.
    let mut errs = 0;
    while down.elapsed() < Duration::from_secs(10) {
        let key = format!("down{errs}");
        match put_once(&c, "o", &key, "x", Duration::from_secs(12)).await {
            Some(Err(_)) => errs += 1,
            Some(Ok(())) => panic!("a write was acked ok while the database was down"),
            None => panic!("a write got no ack while the database was down"),
        }
        // Reads of what is cached are still answered.
        assert_eq!(node(&c, "o").await.get("before"), Some(&json!("1")));
    }
    assert!(errs >= 1);
    pg.resume().expect("start postgres again");
    // The relay recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match put_once(&c, "o", "after", "2", Duration::from_secs(12)).await {
            Some(Ok(())) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(300)).await,
            other => panic!("the relay did not recover after the database came back: {other:?}"),
        }
    }
    let n = node(&c, "o").await;
    assert_eq!(n.get("after"), Some(&json!("2")));
    assert!(
        n.keys().all(|k| !k.starts_with("down")),
        "a refused write was stored: {n:?}"
    );
}

/// Acked writes, by soul: key -> value.
type Acked = Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_survives_kills_and_a_database_restart() {
    let Some(pg) = TempPostgres::start_or_skip("jepsen-style fleet") else {
        return;
    };
    let pg = Arc::new(pg);
    let ports = [free_port(), free_port(), free_port()];
    let relays: Vec<Arc<Mutex<RelayProc>>> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| Arc::new(Mutex::new(relay(&format!("r{i}"), *p, &pg))))
        .collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let souls: Vec<String> = (0..4).map(|i| format!("jepsen/{i}")).collect();
    // Subscribers on the relays that are not killed (r1, r2), one per soul each.
    let mut subs = Vec::new();
    for a in &addrs[1..] {
        for s in &souls {
            let c = RawClient::connect(a, "sub").await;
            let _ = c
                .get_answer(s, None, Duration::from_secs(5), "subscribe")
                .await;
            subs.push((s.clone(), c));
        }
    }
    let acked: Acked = Arc::default();
    let via: Arc<Mutex<HashMap<String, (String, Instant)>>> = Arc::default();
    let t0 = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (addrs, souls, acked, stop) =
            (addrs.clone(), souls.clone(), acked.clone(), stop.clone());
        let via = via.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0u32;
            let mut client: Option<RawClient> = None;
            let mut addr = String::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.closed().is_some()) {
                    let a = &addrs[rand::rng().random_range(0..addrs.len())];
                    addr = a.clone();
                    client = RawClient::try_connect(a, &format!("w{w}")).await.ok();
                    if client.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                let Some(c) = client.as_ref() else { continue };
                let soul = &souls[n as usize % souls.len()];
                let key = format!("w{w}k{n}");
                let value = format!("v{w}-{n}");
                n += 1;
                if let Some(Ok(())) = put_once(c, soul, &key, &value, Duration::from_secs(8)).await
                {
                    acked
                        .lock()
                        .unwrap()
                        .entry(soul.clone())
                        .or_default()
                        .insert(key, value);
                    via.lock().unwrap().insert(
                        format!("{soul}.w{w}k{}", n - 1),
                        (addr.clone(), Instant::now()),
                    );
                }
                // Writers move between relays now and then.
                if rand::rng().random_range(0..10) == 0 {
                    client = None;
                }
            }
        }));
    }
    // Chaos: r0 SIGKILLed and restarted 5 times, the database restarted once.
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        {
            let mut r = relays[0].lock().unwrap();
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fresh = relay("r0", ports[0], &pg);
        *relays[0].lock().unwrap() = fresh;
        eprintln!("r0 restarted at {:?}", t0.elapsed());
        if round == 2 {
            let pg2 = pg.clone();
            tokio::task::spawn_blocking(move || pg2.restart())
                .await
                .unwrap()
                .expect("restart postgres");
            eprintln!("postgres restarted at {:?}", t0.elapsed());
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(BTreeMap::len).sum();
    eprintln!("acked writes: {total}");
    assert!(
        total >= 20,
        "too few writes were acked to mean anything: {total}"
    );
    // Every acked write reads back from every relay, and all answer alike.
    let mut answers: Vec<BTreeMap<String, BTreeMap<String, Value>>> = Vec::new();
    for a in &addrs {
        let c = RawClient::connect(a, "check").await;
        let mut all = BTreeMap::new();
        for s in &souls {
            // A node of thousands of keys is answered in chunks
            // (`reply_chunk_keys`): merge them all.
            let want = acked.get(s).cloned().unwrap_or_default();
            let n: BTreeMap<String, Value> = c
                .get_merged(s, None, Duration::from_secs(10), |n| {
                    want.keys().all(|k| n.contains_key(k))
                })
                .await
                .into_iter()
                .filter(|(k, _)| k != "_")
                .collect();
            for (k, v) in acked.get(s).into_iter().flatten() {
                if n.get(k) != Some(&json!(v)) {
                    let via = via.lock().unwrap().get(&format!("{s}.{k}")).cloned();
                    let mut lost: Vec<String> = acked
                        .get(s)
                        .into_iter()
                        .flatten()
                        .filter(|(k, v)| n.get(*k) != Some(&json!(v)))
                        .map(|(k, _)| k.clone())
                        .collect();
                    lost.truncate(30);
                    panic!(
                        "relay {a} (relays {addrs:?}): acked {s}.{k} missing (acked by {:?} at {:?}); all missing here: {lost:?}",
                        via.as_ref().map(|v| v.0.clone()),
                        via.map(|v| v.1 - t0)
                    );
                }
            }
            all.insert(s.clone(), n);
        }
        answers.push(all);
    }
    assert_eq!(answers[0], answers[1], "r0 and r1 answer different nodes");
    assert_eq!(answers[1], answers[2], "r1 and r2 answer different nodes");
    // Every subscriber saw every acked write to its soul.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut missed = Vec::new();
    for (i, (s, c)) in subs.iter().enumerate() {
        let want = |k: &String, v: &String| (s.clone(), k.clone(), json!(v));
        let mut got = seen(c);
        while acked
            .get(s)
            .into_iter()
            .flatten()
            .any(|(k, v)| !got.contains(&want(k, v)))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            got = seen(c);
        }
        for (k, v) in acked.get(s).into_iter().flatten() {
            if !got.contains(&want(k, v)) {
                let via = via.lock().unwrap().get(&format!("{s}.{k}")).cloned();
                missed.push(format!(
                    "subscriber {i} (on r{}) of {s} never saw {k}={v} (acked by {:?} at {:?})",
                    1 + i / souls.len(),
                    via.as_ref().map(|v| v.0.clone()),
                    via.map(|v| v.1 - t0)
                ));
            }
        }
    }
    if !missed.is_empty() {
        eprintln!("relays: {addrs:?}");
        for r in &relays[1..] {
            let r = r.lock().unwrap();
            eprintln!("--- {} log:\n{}", r.name, r.log.tail(40));
        }
    }
    assert!(
        missed.is_empty(),
        "{} misses:\n{}",
        missed.len(),
        missed[..missed.len().min(20)].join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_writes_across_a_database_restart() {
    let Some(pg) = TempPostgres::start_or_skip("restart push") else {
        return;
    };
    let r1 = relay("r1", free_port(), &pg);
    let r2 = relay("r2", free_port(), &pg);
    let writer = RawClient::connect(&r2.addr, "writer").await;
    let sub = RawClient::connect(&r1.addr, "sub").await;
    assert_eq!(
        put_once(&writer, "s", "a", "1", Duration::from_secs(10)).await,
        Some(Ok(()))
    );
    let _ = sub
        .get_answer("s", None, Duration::from_secs(5), "subscribe")
        .await;
    pg.restart().expect("restart");
    // Writes right after the restart, before the relays' feeds are back.
    let mut acked = Vec::new();
    for i in 0..40 {
        let k = format!("k{i}");
        if let Some(Ok(())) = put_once(&writer, "s", &k, "v", Duration::from_secs(10)).await {
            acked.push(k);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!acked.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = seen(&sub);
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| !got.contains(&("s".to_owned(), (*k).clone(), json!("v"))))
        .collect();
    if !missing.is_empty() {
        eprintln!("--- r1 log:\n{}", r1.log.tail(30));
    }
    assert!(
        missing.is_empty(),
        "subscriber on r1 missed {missing:?} of {acked:?}"
    );
}

/// The online export of a PostgreSQL relay reads the store page by page
/// (`Store::scan`, 512 souls a page) and still gives every node whole; the
/// offline `export` and `import` subcommands work on the database too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_of_a_postgres_relay_give_every_node() {
    let Some(pg) = TempPostgres::start_or_skip("online export") else {
        return;
    };
    let relay = relay_with("export", free_port(), &pg, &["--admin-token", "s3cret"]);
    let c = RawClient::connect(&relay.addr, "writer").await;
    // Three pages and a bit, in one put; every node with two keys.
    let souls = 1_300;
    let state = now_ms();
    let mut graph = serde_json::Map::new();
    for i in 0..souls {
        let soul = format!("bulk/{i:05}");
        graph.insert(
            soul.clone(),
            json!({"_": {"#": soul, ">": {"text": state, "i": state}}, "text": format!("node {i}"), "i": i}),
        );
    }
    c.send(&json!({"#": "bulk", "put": Value::Object(graph)}));
    let ack = c
        .wait_for(Duration::from_secs(60), |m| m["@"] == "bulk")
        .await
        .expect("no ack for the bulk put");
    assert!(ack["err"].is_null(), "{ack}");

    let (status, text) = common::http_get_with(
        &relay.addr,
        "/admin/export",
        "Authorization: Bearer s3cret\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let mut got: BTreeMap<String, Value> = BTreeMap::new();
    for line in text.lines() {
        let node: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let soul = node["_"]["#"].as_str().unwrap().to_owned();
        assert!(got.insert(soul.clone(), node).is_none(), "{soul} twice");
    }
    assert_eq!(got.len(), souls, "souls exported");
    for i in 0..souls {
        let soul = format!("bulk/{i:05}");
        let node = got.get(&soul).unwrap_or_else(|| panic!("{soul} missing"));
        assert_eq!(node["text"], json!(format!("node {i}")), "{soul}");
        assert_eq!(node["i"], json!(i), "{soul}");
        assert_eq!(node["_"][">"]["i"].as_f64(), Some(state), "{soul}");
    }

    // The offline subcommands reach the database too (relays running or not):
    // `export` gives the same lines, `import` fills another schema, which a
    // relay then serves.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.jsonl");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::RELAY_BIN)
            .args(["--store", "postgres", "--postgres-url", &pg.default_url()])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "gun-relay {args:?}: {err}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), err)
    };
    let (_, said) = cli(&["export", "--out", file.to_str().unwrap()]);
    assert!(
        said.contains(&format!("exported {souls} souls, {} keys", 2 * souls))
            && said.contains("postgres schema public"),
        "{said}"
    );
    let offline = std::fs::read_to_string(&file).unwrap();
    let sorted = |t: &str| {
        let mut l: Vec<String> = t.lines().map(str::to_owned).collect();
        l.sort();
        l
    };
    assert_eq!(
        sorted(&offline),
        sorted(&text),
        "offline and online exports differ"
    );
    let (report, _) = cli(&[
        "--postgres-schema",
        "restored",
        "import",
        file.to_str().unwrap(),
    ]);
    assert!(
        report.contains(&format!("imported {souls} souls, {} keys", 2 * souls)),
        "{report}"
    );
    let restored = relay_with(
        "restored",
        free_port(),
        &pg,
        &["--postgres-schema", "restored"],
    );
    let reader = RawClient::connect(&restored.addr, "reader").await;
    for i in [0, 511, 512, 1_299] {
        let got = node(&reader, &format!("bulk/{i:05}")).await;
        assert_eq!(
            got.get("text"),
            Some(&json!(format!("node {i}"))),
            "bulk/{i:05}"
        );
    }
}
