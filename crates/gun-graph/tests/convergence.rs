//! Property tests: HAM merge converges whatever the order, duplication and
//! grouping of writes, and deferred writes are applied once due, never lost.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gun_graph::{Decision, Graph, Soul, State, Value};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Write {
    soul: usize,
    key: usize,
    state: f64,
    value: Value,
}

const SOULS: [&str; 3] = ["a", "b", "~x/y"];
const KEYS: [&str; 4] = ["k", "name", "😀", "\u{e000}"];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(5.0),
            Just(-5.0),
            Just(10.0),
            Just(9.0),
            Just(0.5),
            Just(1e21)
        ]
        .prop_map(Value::Number),
        prop_oneof![
            Just("5"),
            Just("x"),
            Just("😀"),
            Just("\u{e000}"),
            Just(""),
            Just("a\"b")
        ]
        .prop_map(Value::from),
        prop_oneof![Just("a"), Just("b")].prop_map(|s| Value::Link(Soul::new(s).unwrap())),
    ]
}

fn write() -> impl Strategy<Value = Write> {
    // Few distinct states so that ties are common.
    (0..SOULS.len(), 0..KEYS.len(), 0u8..4, value()).prop_map(|(soul, key, s, value)| Write {
        soul,
        key,
        state: 1_000.0 + f64::from(s),
        value,
    })
}

fn one(w: &Write) -> Graph {
    let mut g = Graph::new();
    g.put(
        Soul::new(SOULS[w.soul]).unwrap(),
        KEYS[w.key],
        State::new(w.state).unwrap(),
        w.value.clone(),
    )
    .unwrap();
    g
}

fn now() -> State {
    State::new(1e12).unwrap()
}

fn apply_each(writes: &[Write]) -> Graph {
    let mut g = Graph::new();
    for w in writes {
        g.merge(&one(w), now());
    }
    g
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// N replicas receiving the same writes in different orders, with duplicates
    /// and in batches of different shapes, end with identical graphs.
    #[test]
    fn replicas_converge(writes in prop::collection::vec(write(), 0..40), seeds in prop::collection::vec(any::<u64>(), 2..5)) {
        let reference = apply_each(&writes);
        for seed in seeds {
            let mut order = writes.clone();
            // Deterministic shuffle + duplication from the seed.
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let dups: Vec<Write> = order.iter().step_by(3).cloned().collect();
            order.extend(dups);
            // Apply in batches: consecutive writes grouped into one incoming graph
            // (a later write in a batch replaces an earlier one of the same key
            // only through HAM, so batch with merge too).
            let mut replica = Graph::new();
            for chunk in order.chunks(((seed % 4) + 1) as usize) {
                let mut batch = Graph::new();
                for w in chunk { batch.merge(&one(w), now()); }
                replica.merge(&batch, now());
            }
            prop_assert_eq!(&replica, &reference);
        }
    }

    /// merge(a, b) == merge(b, a) and merging twice changes nothing.
    #[test]
    fn merge_commutative_and_idempotent(a in prop::collection::vec(write(), 0..20), b in prop::collection::vec(write(), 0..20)) {
        let (ga, gb) = (apply_each(&a), apply_each(&b));
        let mut ab = ga.clone();
        ab.merge(&gb, now());
        let mut ba = gb.clone();
        ba.merge(&ga, now());
        prop_assert_eq!(&ab, &ba);
        let again = ab.merge(&gb, now());
        prop_assert!(again.accepted.is_empty());
        prop_assert_eq!(&ab, &ba);
    }

    /// A write whose state is in the future is deferred, not lost: once the clock
    /// reaches it, merging the deferred writes yields the same graph as a replica
    /// that saw everything with the clock already there.
    #[test]
    fn deferred_writes_apply_when_due(writes in prop::collection::vec(write(), 0..30)) {
        let early = State::new(1_001.5).unwrap();
        let mut g = Graph::new();
        let mut deferred = Vec::new();
        for w in &writes {
            let m = g.merge(&one(w), early);
            for d in &m.deferred { let due = d.state > early; prop_assert!(due); }
            deferred.extend(m.deferred);
        }
        // Apply deferred writes in order of their states once the clock reaches them.
        deferred.sort_by_key(|d| d.state);
        for d in &deferred {
            let r = g.merge_deferred(d, d.state);
            let still_deferred = matches!(r, Decision::Defer { .. });
            prop_assert!(!still_deferred);
        }
        prop_assert_eq!(&g, &apply_each(&writes));
    }

    /// The wire form round-trips.
    #[test]
    fn wire_round_trip(writes in prop::collection::vec(write(), 0..30)) {
        let g = apply_each(&writes);
        prop_assert_eq!(Graph::from_wire(&g.to_wire()).unwrap(), g);
    }
}
