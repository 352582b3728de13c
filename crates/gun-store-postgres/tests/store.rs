//! The PostgreSQL store beyond the shared suite: HAM ties decided in SQL as
//! gun-ham decides them, the change feed between two stores, and a database
//! that goes away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use gun_graph::{Graph, Soul, State, Value};
use gun_store::{ExternalChange, Store, machine_state};
use gun_store_postgres::testing::TempPostgres;
use gun_store_postgres::{Options, PostgresStore};

fn texts() -> Vec<Value> {
    let mut v: Vec<Value> = [
        "",
        "a",
        "b",
        "é",
        "z",
        "日本",
        "\u{D7FF}",
        "\u{E000}",
        "\u{F8FF}",
        "\u{FFFD}",
        "\u{FFFF}",
        "😀",
        "𝄞",
        "\u{10000}",
        "\u{10FFFF}",
        "a😀",
        "a\u{E000}",
        "a\u{FFFF}b",
        "\"",
        "\\",
        "\u{0}",
        "\n",
    ]
    .iter()
    .map(|s| Value::from(*s))
    .collect();
    v.extend([
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::Number(9.0),
        Value::Number(10.0),
        Value::Number(-0.5),
        Value::Link(Soul::new("😀").unwrap()),
        Value::Link(Soul::new("\u{E000}").unwrap()),
    ]);
    v
}

/// Equal states, every ordered pair of values: the store keeps what gun-ham
/// keeps (JSON texts compared in UTF-16 code units, where a supplementary
/// character sorts before U+E000..U+FFFF, unlike UTF-8 or a C collation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_are_decided_as_gun_ham_decides() {
    let Some(pg) = common::server() else { return };
    let store = PostgresStore::connect(Options::new(pg.default_url()).schema("ties"))
        .await
        .unwrap();
    let vals = texts();
    let soul = Soul::new("ties").unwrap();
    let st = State::new(5.0).unwrap();
    let (mut first, mut second) = (Graph::new(), Graph::new());
    for (i, a) in vals.iter().enumerate() {
        for (j, b) in vals.iter().enumerate() {
            let k = format!("{i}-{j}");
            first.put(soul.clone(), k.as_str(), st, a.clone()).unwrap();
            second.put(soul.clone(), k.as_str(), st, b.clone()).unwrap();
        }
    }
    let applied = store.put(&first).await.unwrap();
    assert_eq!(applied, first);
    let applied = store.put(&second).await.unwrap();
    let mut want = first.clone();
    let want_applied = want.merge(&second, machine_state()).accepted;
    assert_eq!(applied, want_applied, "what the tie-breaking put applied");
    let got = store.get_node("ties").await.unwrap().unwrap();
    assert_eq!(Some(&got), want.get("ties"));
    // Spot check the case a byte-order (C collation) comparison gets wrong.
    let i = vals.iter().position(|v| *v == Value::from("😀")).unwrap();
    let j = vals
        .iter()
        .position(|v| *v == Value::from("\u{FFFF}"))
        .unwrap();
    assert_eq!(
        got.value(&format!("{i}-{j}")),
        Some(&Value::from("\u{FFFF}"))
    );
    assert_eq!(
        got.value(&format!("{j}-{i}")),
        Some(&Value::from("\u{FFFF}"))
    );
}

/// A write through one store reaches another store's feed (carried in the
/// notification, or by ids when too large), never its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_carries_other_writers_changes() {
    let Some(pg) = common::server() else { return };
    let opts = Options::new(pg.default_url()).schema("feed");
    let a = PostgresStore::connect(opts.clone()).await.unwrap();
    let b = PostgresStore::connect(opts).await.unwrap();
    let mut fa = a.changes().unwrap();
    let mut fb = b.changes().unwrap();
    assert!(a.listening(Duration::from_secs(10)).await);
    assert!(b.listening(Duration::from_secs(10)).await);
    // Each feed reports a gap when it starts listening: drain it.
    for f in [&mut fa, &mut fb] {
        while let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(300), f.next()).await {
            assert_eq!(c, ExternalChange::Gap);
        }
    }
    let mut small = Graph::new();
    small
        .put(
            Soul::new("s").unwrap(),
            "k",
            State::new(1.0).unwrap(),
            Value::from("v"),
        )
        .unwrap();
    let mut big = Graph::new();
    big.put(
        Soul::new("s").unwrap(),
        "big",
        State::new(1.0).unwrap(),
        Value::from("x".repeat(20_000)),
    )
    .unwrap();
    a.put(&small).await.unwrap();
    a.put(&big).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), fb.next())
            .await
            .unwrap(),
        Some(ExternalChange::Applied(small))
    );
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), fb.next())
            .await
            .unwrap(),
        Some(ExternalChange::Applied(big))
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), fa.next())
            .await
            .is_err(),
        "a store's own writes are not in its feed"
    );
}

/// The database stops: puts fail (never a false success) within the
/// timeout; it comes back: the store works again by itself and its feed
/// reports the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_fails_puts_then_recovers() {
    let Some(pg) = TempPostgres::start_or_skip("lost database") else {
        return;
    };
    let store =
        PostgresStore::connect(Options::new(pg.default_url()).timeout(Duration::from_secs(2)))
            .await
            .unwrap();
    let mut feed = store.changes().unwrap();
    assert!(store.listening(Duration::from_secs(10)).await);
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), feed.next()).await {}
    let put = |k: &str| {
        let mut g = Graph::new();
        g.put(
            Soul::new("x").unwrap(),
            k,
            State::new(1.0).unwrap(),
            Value::from(k),
        )
        .unwrap();
        g
    };
    store.put(&put("before")).await.unwrap();
    pg.stop().unwrap();
    let t = std::time::Instant::now();
    assert!(
        store.put(&put("during")).await.is_err(),
        "a put succeeded with the database down"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the failure took {:?}",
        t.elapsed()
    );
    assert!(store.get_node("x").await.is_err());
    pg.resume().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.put(&put("after")).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n = store.get_node("x").await.unwrap().unwrap();
    assert!(n.value("before").is_some() && n.value("after").is_some());
    assert!(n.value("during").is_none(), "a failed put was applied");
    let gap = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .unwrap();
    assert_eq!(gap, Some(ExternalChange::Gap));
}
