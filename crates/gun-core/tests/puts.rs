//! The engine updates its cache from the store's answer to a write (issue 14):
//! answers that come back out of order never replace a newer cached value, a
//! write that lands while its soul is being loaded is not lost by the load,
//! listeners hear only what was applied, and the counts of a write are the
//! store's.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use gun_core::{Engine, EngineOptions, Graph, Node, PutOptions, Soul, State, Value};
use gun_store::{BoxFuture, Error, Store, StoreStats};
use gun_store_memory::MemoryStore;

/// A memory store whose answers are held back: a put is applied at once and
/// answered after a delay chosen by its value (`"slow"`: 300 ms); a read of a
/// node waits `read_delay` after reading.
struct Delayed {
    inner: MemoryStore,
    read_delay: Duration,
}

impl Store for Delayed {
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move {
            let n = self.inner.get_node(soul).await?;
            tokio::time::sleep(self.read_delay).await;
            Ok(n)
        })
    }
    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        self.inner.get_key(soul, key)
    }
    fn query<'a>(
        &'a self,
        souls: &'a gun_core::Lex,
        keys: &'a gun_core::Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>> {
        self.inner.query(souls, keys, budget)
    }
    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move {
            let slow = diff
                .nodes()
                .any(|n| n.iter().any(|(_, e)| e.value == Value::from("slow")));
            let answer = self.inner.put(diff).await?;
            if slow {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(answer)
        })
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.flush()
    }
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
        self.inner.stats()
    }
}

fn engine(read_delay: Duration) -> (Engine, Arc<Delayed>) {
    let store = Arc::new(Delayed {
        inner: MemoryStore::new(),
        read_delay,
    });
    (Engine::new(EngineOptions::new(store.clone())), store)
}

fn write(soul: &str, key: &str, state: f64, value: &str) -> Graph {
    let mut g = Graph::new();
    g.put(
        Soul::new(soul).unwrap(),
        key,
        State::new(state).unwrap(),
        Value::from(value),
    )
    .unwrap();
    g
}

fn cached_value(e: &Engine, soul: &str, key: &str) -> Option<Value> {
    e.cached(soul).and_then(|n| n.value(key).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_does_not_replace_a_newer_cached_value() {
    let (e, _store) = engine(Duration::ZERO);
    let soul = Soul::new("s").unwrap();
    e.put_local(write("s", "k", 1.0, "first"), &PutOptions::default())
        .await
        .unwrap();
    e.read_node(&soul, None, None).await.unwrap();
    assert_eq!(cached_value(&e, "s", "k"), Some(Value::from("first")));

    // The older write (state 2, "slow") is applied by the store first but
    // answered last; the newer one (state 3) is answered first.
    let e1 = e.clone();
    let older = tokio::spawn(async move {
        e1.put_local(write("s", "k", 2.0, "slow"), &PutOptions::default())
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_id, mut changes) = e.listen(&soul);
    let newer = e
        .put_local(write("s", "k", 3.0, "newer"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!((newer.accepted, newer.rejected, newer.deferred), (1, 0, 0));
    let older = older.await.unwrap().unwrap();
    // The store applied it (it was newer than what was stored then).
    assert_eq!((older.accepted, older.rejected), (1, 0));
    assert_eq!(cached_value(&e, "s", "k"), Some(Value::from("newer")));
    // Listeners heard the newer value only: the late answer lost against the cache.
    let c = changes.recv().await.unwrap();
    assert_eq!(c.node.value("k"), Some(&Value::from("newer")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        changes.try_recv().is_err(),
        "the late, older answer was announced"
    );
}

/// A load can read the store after the store applied a write and before the
/// write's answer reaches the engine: the cache then holds the write already
/// and merging the answer changes nothing. The write is still news: listeners
/// (and, through the mesh, peers) hear it. (Found as a lost `set` link: a
/// client's read-after-write warm-up cached the link first, and the client
/// never sent it to its relay.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_a_load_cached_before_its_answer_is_still_announced() {
    let (e, _store) = engine(Duration::ZERO);
    let soul = Soul::new("s").unwrap();
    e.put_local(write("s", "k", 1.0, "first"), &PutOptions::default())
        .await
        .unwrap();
    let (_id, mut changes) = e.listen(&soul);
    while changes.try_recv().is_ok() {}
    // Applied by the store at once, answered 300 ms later.
    let e1 = e.clone();
    let write_b = tokio::spawn(async move {
        e1.put_local(write("s", "b", 2.0, "slow"), &PutOptions::default())
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A load now reads the store, write included, and caches it.
    let node = e.read_node(&soul, None, None).await.unwrap().unwrap();
    assert_eq!(node.value("b"), Some(&Value::from("slow")));
    let ack = write_b.await.unwrap().unwrap();
    assert_eq!(ack.accepted, 1);
    let mut heard = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !heard && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), changes.recv()).await {
            Ok(Some(c)) => heard = c.node.value("b") == Some(&Value::from("slow")),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    assert!(heard, "the write the load cached first was never announced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_load_is_not_lost_by_the_load() {
    let (e, _store) = engine(Duration::from_millis(200));
    let soul = Soul::new("s").unwrap();
    e.put_local(write("s", "k", 1.0, "old"), &PutOptions::default())
        .await
        .unwrap();
    assert!(
        e.cached("s").is_none(),
        "a write alone does not load its soul"
    );
    // The load reads "old", then waits; meanwhile a write applies "new".
    let e1 = e.clone();
    let s1 = soul.clone();
    let load = tokio::spawn(async move { e1.read_node(&s1, None, None).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ack = e
        .put_local(write("s", "k", 2.0, "new"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.accepted, 1);
    let node = load.await.unwrap().unwrap().unwrap();
    assert_eq!(node.value("k"), Some(&Value::from("new")));
    assert_eq!(cached_value(&e, "s", "k"), Some(Value::from("new")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_the_stores_and_future_states_wait() {
    let (e, _store) = engine(Duration::ZERO);
    e.put_local(write("s", "a", 5.0, "x"), &PutOptions::default())
        .await
        .unwrap();
    let mut g = write("s", "a", 4.0, "older");
    let future = gun_core::now_ms() + 300.0;
    g.put(
        Soul::new("s").unwrap(),
        "b",
        State::new(future).unwrap(),
        Value::from("later"),
    )
    .unwrap();
    g.put(
        Soul::new("s").unwrap(),
        "c",
        State::new(6.0).unwrap(),
        Value::from("y"),
    )
    .unwrap();
    let ack = e.put_local(g, &PutOptions::default()).await.unwrap();
    assert_eq!((ack.accepted, ack.deferred, ack.rejected), (1, 1, 1));
    let soul = Soul::new("s").unwrap();
    let n = e.read_node(&soul, None, None).await.unwrap().unwrap();
    assert_eq!(n.value("a"), Some(&Value::from("x")));
    assert_eq!(n.value("c"), Some(&Value::from("y")));
    assert!(n.value("b").is_none(), "a future state was applied early");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let n = e.read_node(&soul, None, None).await.unwrap().unwrap();
    assert_eq!(n.value("b"), Some(&Value::from("later")));
}

/// Keys waiting for a future state are bounded: past
/// `max_deferred_keys`, a write with more is refused whole (its current keys
/// too), and room comes back as the waiting keys come due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_state_keys_waiting_are_bounded() {
    let store = Arc::new(MemoryStore::new());
    let e = Engine::new(EngineOptions {
        max_deferred_keys: 2,
        ..EngineOptions::new(store)
    });
    let soon = gun_core::now_ms() + 300.0;
    let ack = e
        .put_local(write("s", "a", soon, "1"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.deferred, 1);
    // One now and two ahead: three waiting would pass the bound.
    let mut g = write("s", "now", 1.0, "x");
    for k in ["b", "c"] {
        g.put(
            Soul::new("s").unwrap(),
            k,
            State::new(soon).unwrap(),
            Value::from(k),
        )
        .unwrap();
    }
    let err = e.put_local(g, &PutOptions::default()).await.unwrap_err();
    assert_eq!(err, gun_core::Error::TooManyDeferred { limit: 2 });
    let soul = Soul::new("s").unwrap();
    assert!(
        e.read_node(&soul, None, None).await.unwrap().is_none(),
        "a refused write was applied in part"
    );
    // One more fits.
    let ack = e
        .put_local(write("s", "b", soon, "2"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(ack.deferred, 1);
    // Once they came due, the queue is empty again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let n = e.read_node(&soul, None, None).await.unwrap().unwrap();
    assert_eq!(n.value("a"), Some(&Value::from("1")));
    let ack = e
        .put_local(
            write("s", "c", gun_core::now_ms() + 300.0, "3"),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(ack.deferred, 1);
}

/// A state within the current millisecond but not ahead of the wall clock
/// (Gun.js stamps fractions of a millisecond) is applied at once, not held
/// until the next millisecond.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_earlier_in_this_millisecond_is_not_ahead() {
    let (e, _store) = engine(Duration::ZERO);
    let precise = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0
    };
    // Wait for a moment well inside a millisecond, then stamp a state a
    // little before it: past the whole millisecond, not past the clock.
    let state = loop {
        let p = precise();
        if (0.3..0.8).contains(&p.fract()) {
            break p - 0.2;
        }
        std::thread::yield_now();
    };
    assert!(state > state.floor() + 0.05);
    let ack = e
        .put_local(write("s", "k", state, "v"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!((ack.accepted, ack.deferred), (1, 0));
}

/// Our own writes are stamped as Gun.js stamps them (the millisecond, plus
/// n/999 for our n-th write within it), however many writes come in: a stamp
/// pushed ahead of the wall clock makes a Gun.js relay defer the write, and
/// then not ack it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_writes_do_not_push_our_stamps_ahead() {
    let (e, _store) = engine(Duration::ZERO);
    for attempt in 0..20 {
        let first = e.next_state().as_f64();
        for i in 0..50 {
            e.put_local(
                write("in", "k", 1.0 + f64::from(i), "v"),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        }
        let second = e.next_state().as_f64();
        if second.floor() == first.floor() {
            // Within one millisecond: the next of our stamps, nothing more.
            let step = second - first;
            assert!(
                (step - 1.0 / 999.0).abs() < 5e-4, // an f64 near 1.8e12 steps by 2.4e-4
                "attempt {attempt}: {first} then {second}"
            );
        } else {
            // A new millisecond: its first stamp has no fraction.
            assert_eq!(second, second.floor(), "attempt {attempt}");
        }
        assert!(second <= gun_core::now_ms() + 1.0);
    }
}
