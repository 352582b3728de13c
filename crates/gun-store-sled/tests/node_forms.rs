//! Small nodes are kept whole (one sled record) and move to one record per key
//! when they outgrow the limits: reads, lexical queries, stats and reopening
//! must not see the difference, and HAM must keep working across the move.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gun_graph::{Graph, Lex, Soul, State, Value, lex};
use gun_store::Store;
use gun_store_sled::SledStore;

fn put_keys(soul: &str, keys: impl IntoIterator<Item = (String, f64, Value)>) -> Graph {
    let mut g = Graph::new();
    for (k, s, v) in keys {
        g.put(Soul::new(soul).unwrap(), k, State::new(s).unwrap(), v)
            .unwrap();
    }
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_grows_from_one_record_to_one_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut model = Graph::new();
    {
        let store = SledStore::open(&path).unwrap();
        // 10 puts of 10 keys: the node crosses the 64-key limit on the 7th.
        for round in 0..10u32 {
            let diff = put_keys(
                "grow",
                (0..10).map(|i| {
                    (
                        format!("k{:03}", round * 10 + i),
                        1.0 + f64::from(round),
                        Value::from(format!("v{round}-{i}")),
                    )
                }),
            );
            store.put(&diff).await.unwrap();
            model.merge(&diff, State::new(1e15).unwrap());
            let got = store.get_node("grow").await.unwrap().unwrap();
            assert_eq!(&got, model.get("grow").unwrap(), "after round {round}");
        }
        // HAM across the move: an older write is ignored, a newer one wins,
        // an equal state with a greater value wins the tie.
        let diff = put_keys(
            "grow",
            [
                ("k000".to_string(), 0.5, Value::from("old")),
                ("k001".to_string(), 50.0, Value::from("new")),
                ("k002".to_string(), 1.0, Value::from("v0-9")),
            ],
        );
        store.put(&diff).await.unwrap();
        model.merge(&diff, State::new(1e15).unwrap());
        let got = store.get_node("grow").await.unwrap().unwrap();
        assert_eq!(got.value("k000"), Some(&Value::from("v0-0")));
        assert_eq!(got.value("k001"), Some(&Value::from("new")));
        assert_eq!(got.value("k002"), Some(&Value::from("v0-9")));
        assert_eq!(&got, model.get("grow").unwrap());
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.souls, stats.keys), (1, 100));
    }
    // Reopened: same node, same answers to key reads and lexical queries.
    let store = SledStore::open(&path).unwrap();
    assert_eq!(
        &store.get_node("grow").await.unwrap().unwrap(),
        model.get("grow").unwrap()
    );
    let one = store.get_key("grow", "k042").await.unwrap().unwrap();
    assert_eq!(one.value("k042"), Some(&Value::from("v4-2")));
    let q = store
        .query(&Lex::exact("grow"), &Lex::prefix("k04"), None)
        .await
        .unwrap();
    let want = lex::query_graph(&model, &Lex::exact("grow"), &Lex::prefix("k04"), None);
    assert_eq!(q, want);
    assert_eq!(q.get("grow").unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_nodes_answer_queries_like_the_in_memory_graph() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("db")).unwrap();
    let mut model = Graph::new();
    for s in ["a", "ab", "abc", "b", "b\u{0}x", "\u{0}", "zz"] {
        let diff = put_keys(
            s,
            ["x", "xy", "y", "z"]
                .iter()
                .enumerate()
                .map(|(i, k)| (k.to_string(), 2.0, Value::from(format!("{s}:{k}:{i}")))),
        );
        store.put(&diff).await.unwrap();
        model.merge(&diff, State::new(1e15).unwrap());
    }
    let cases = [
        (Lex::prefix("a"), Lex::prefix("x"), None),
        (Lex::default(), Lex::range(Some("xy"), Some("z")), None),
        (Lex::prefix("b"), Lex::default(), Some(10)),
        (Lex::default(), Lex::default(), Some(25)),
        (Lex::exact("abc"), Lex::exact("y"), None),
    ];
    for (souls, keys, budget) in cases {
        let got = store.query(&souls, &keys, budget).await.unwrap();
        let want = lex::query_graph(&model, &souls, &keys, budget);
        assert_eq!(got, want, "souls {souls:?} keys {keys:?} budget {budget:?}");
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.souls, stats.keys), (7, 28));
    assert!(store.get_key("abc", "nope").await.unwrap().is_none());
    assert!(store.get_node("nope").await.unwrap().is_none());
}
