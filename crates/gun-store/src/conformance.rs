//! The conformance suite: what every [`Store`] backend must do, as async test
//! functions the backend runs from its own tests.
//!
//! Each function opens stores through an [`Opener`] (a function from an empty
//! directory to a store; volatile backends ignore the directory), does its work,
//! and panics with a message naming what differed. Lexical reads are compared
//! with [`gun_graph::lex::query_graph`] on an in-memory [`Graph`] holding the same
//! data, so every backend answers exactly what the reference answers.
//!
//! The easiest way to run everything is the [`conformance_tests!`](crate::conformance_tests)
//! macro in the backend's `tests/conformance.rs` (the backend needs `tokio` with
//! the `macros` and `rt-multi-thread` features as a dev-dependency):
//!
//! ```ignore
//! async fn open(dir: std::path::PathBuf) -> Result<MyStore, gun_store::Error> {
//!     MyStore::open(&dir)
//! }
//! gun_store::conformance_tests!(open, gun_store::conformance::Capabilities::new());
//! ```
//!
//! Backends that can simulate a failing disk also call
//! [`failed_write_leaves_store_unchanged`] with an opener whose store fails its
//! next write midway.
//!
//! Backends that are not durable declare it with
//! [`Capabilities::durable`]`(false)`; only [`reopen_after_close`] is skipped for
//! them (and says so on stderr).

use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use gun_graph::{Graph, Lex, Node, Soul, State, Value, lex};

use crate::{BoxFuture, Error, Store, machine_state};

/// Opens a store in a directory (which exists and is empty on first use, and is
/// passed again to reopen). Implemented for every `Fn(PathBuf) -> impl Future`.
pub trait Opener: Send + Sync + 'static {
    /// The store this opens.
    type Store: Store;
    /// Opens (or reopens) the store kept in `dir`.
    fn open(&self, dir: PathBuf) -> BoxFuture<'static, Result<Self::Store, Error>>;
}

impl<F, Fut, S> Opener for F
where
    F: Fn(PathBuf) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<S, Error>> + Send + 'static,
    S: Store,
{
    type Store = S;
    fn open(&self, dir: PathBuf) -> BoxFuture<'static, Result<S, Error>> {
        Box::pin(self(dir))
    }
}

/// What a backend promises beyond the trait.
#[derive(Debug, Clone)]
pub struct Capabilities {
    durable: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::new()
    }
}

impl Capabilities {
    /// A durable backend (the default).
    pub fn new() -> Capabilities {
        Capabilities { durable: true }
    }

    /// Whether data survives closing and reopening the store. Volatile backends
    /// skip [`reopen_after_close`].
    pub fn durable(mut self, durable: bool) -> Capabilities {
        self.durable = durable;
        self
    }

    /// Whether the backend declared itself durable.
    pub fn is_durable(&self) -> bool {
        self.durable
    }
}

/// Generates one `#[tokio::test]` per conformance function, for a backend's
/// `tests/conformance.rs`: `conformance_tests!(opener, capabilities)`.
///
/// `opener` is an expression implementing [`Opener`] (for example an
/// `async fn(PathBuf) -> Result<S, Error>`); `capabilities` a [`Capabilities`].
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`).
#[macro_export]
macro_rules! conformance_tests {
    ($opener:expr, $caps:expr $(,)?) => {
        $crate::conformance_tests!(@each $opener, $caps;
            put_and_get, ham_merge, put_answers_what_it_applied, tombstones, numbers_round_trip, empty_puts_and_misses,
            lexical_key_ranges_and_budgets, lexical_soul_queries, node_with_100k_keys,
            concurrent_writers, reopen_after_close, unicode_souls_and_keys, hostile_souls,
            stats_count_souls, outbox_keeps_unacked_writes, scan_pages);
    };
    (@each $opener:expr, $caps:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::$name(&$opener, &$caps).await;
            }
        )*
    };
}

/// Runs every test of the suite in turn (except
/// [`failed_write_leaves_store_unchanged`], which needs a failing opener).
pub async fn run_all<O: Opener>(opener: &O, caps: &Capabilities) {
    put_and_get(opener, caps).await;
    ham_merge(opener, caps).await;
    put_answers_what_it_applied(opener, caps).await;
    tombstones(opener, caps).await;
    numbers_round_trip(opener, caps).await;
    empty_puts_and_misses(opener, caps).await;
    lexical_key_ranges_and_budgets(opener, caps).await;
    lexical_soul_queries(opener, caps).await;
    node_with_100k_keys(opener, caps).await;
    concurrent_writers(opener, caps).await;
    reopen_after_close(opener, caps).await;
    unicode_souls_and_keys(opener, caps).await;
    hostile_souls(opener, caps).await;
    stats_count_souls(opener, caps).await;
    outbox_keeps_unacked_writes(opener, caps).await;
    scan_pages(opener, caps).await;
}

// ---------------------------------------------------------------------------
// helpers

/// A temporary directory holding the store's directory `store/` and nothing else
/// (so that a store writing outside its directory is noticed).
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = match tempfile::Builder::new()
            .prefix("gun-store-conformance")
            .tempdir()
        {
            Ok(t) => t,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        if let Err(e) = std::fs::create_dir(tmp.path().join("store")) {
            panic!("cannot create the store directory: {e}");
        }
        Sandbox { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("store")
    }

    /// Panics if anything but `store` appeared next to the store's directory.
    fn assert_nothing_outside(&self) {
        let entries = match std::fs::read_dir(self.tmp.path()) {
            Ok(e) => e,
            Err(e) => panic!("cannot list the sandbox: {e}"),
        };
        let names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["store"], "the store wrote outside its directory");
    }
}

async fn open<O: Opener>(opener: &O, sandbox: &Sandbox) -> O::Store {
    match opener.open(sandbox.dir()).await {
        Ok(s) => s,
        Err(e) => panic!("opening the store failed: {e}"),
    }
}

fn must<T>(r: Result<T, Error>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

fn soul(s: &str) -> Soul {
    match Soul::new(s) {
        Ok(s) => s,
        Err(e) => panic!("bad soul {}: {e}", short(s)),
    }
}

fn st(ms: f64) -> State {
    match State::new(ms) {
        Ok(s) => s,
        Err(e) => panic!("bad state: {e}"),
    }
}

fn num(n: f64) -> Value {
    match Value::number(n) {
        Ok(v) => v,
        Err(e) => panic!("bad number {n}: {e}"),
    }
}

fn link(s: &str) -> Value {
    Value::Link(soul(s))
}

fn put(g: &mut Graph, s: &str, key: &str, state: f64, value: Value) {
    if let Err(e) = g.put(soul(s), key, st(state), value) {
        panic!("cannot build the diff ({}.{}): {e}", short(s), short(key));
    }
}

/// A diff from `(soul, key, state, value)` rows.
fn diff(rows: &[(&str, &str, f64, Value)]) -> Graph {
    let mut g = Graph::new();
    for (s, k, state, v) in rows {
        put(&mut g, s, k, *state, v.clone());
    }
    g
}

/// A string for messages: long ones are cut, control characters escaped.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(40).flat_map(char::escape_debug).collect();
    if s.chars().count() > 40 {
        let _ = write!(out, "…({} bytes)", s.len());
    }
    format!("\"{out}\"")
}

fn describe(g: &Graph) -> String {
    let mut out = String::new();
    for (s, n) in g.iter().take(8) {
        let keys: Vec<String> = n.keys().take(8).map(short).collect();
        let _ = write!(
            out,
            "{}: [{}{}] ",
            short(s.as_str()),
            keys.join(", "),
            if n.len() > 8 { ", …" } else { "" }
        );
    }
    if g.len() > 8 {
        out.push('…');
    }
    out
}

/// Panics with the first differences when `got != want`.
fn assert_same(got: &Graph, want: &Graph, what: &str) {
    if got == want {
        return;
    }
    let mut diffs = Vec::new();
    for (s, n) in want.iter() {
        match got.get(s.as_str()) {
            None => diffs.push(format!("soul {} missing", short(s.as_str()))),
            Some(g) => {
                for (k, e) in n.iter() {
                    match g.get(k) {
                        None => diffs.push(format!("{}.{} missing", short(s.as_str()), short(k))),
                        Some(ge) if ge != e => diffs.push(format!(
                            "{}.{}: got {:?}@{}, want {:?}@{}",
                            short(s.as_str()),
                            short(k),
                            ge.value,
                            ge.state.as_f64(),
                            e.value,
                            e.state.as_f64()
                        )),
                        Some(_) => {}
                    }
                }
                for k in g.keys() {
                    if n.get(k).is_none() {
                        diffs.push(format!("{}.{} unexpected", short(s.as_str()), short(k)));
                    }
                }
            }
        }
    }
    for s in got.souls() {
        if want.get(s.as_str()).is_none() {
            diffs.push(format!("soul {} unexpected", short(s.as_str())));
        }
    }
    diffs.truncate(10);
    panic!(
        "{what}: the store answered differently from the reference:\n  {}\n  got:  {}\n  want: {}",
        diffs.join("\n  "),
        describe(got),
        describe(want)
    );
}

fn assert_node(got: Option<Node>, want: Option<&Node>, what: &str) {
    let g: Graph = got.into_iter().collect();
    let w: Graph = want.cloned().into_iter().collect();
    assert_same(&g, &w, what);
}

/// The reference: `diffs` merged, in order, into an empty graph (HAM at the
/// store's machine state).
fn reference(diffs: &[&Graph]) -> Graph {
    let mut g = Graph::new();
    for d in diffs {
        g.merge(d, machine_state());
    }
    g
}

/// Checks that the store holds exactly `want`: node by node, key by key, and a
/// full lexical read.
async fn assert_holds<S: Store + ?Sized>(store: &S, want: &Graph, what: &str) {
    for (s, n) in want.iter() {
        let got = must(store.get_node(s.as_str()).await, "get_node");
        assert_node(
            got,
            Some(n),
            &format!("{what}: get_node({})", short(s.as_str())),
        );
        for (k, _) in n.iter().take(50) {
            let got = must(store.get_key(s.as_str(), k).await, "get_key");
            assert_node(
                got,
                Some(&n.select([&**k])),
                &format!("{what}: get_key({}, {})", short(s.as_str()), short(k)),
            );
        }
    }
    let all = must(
        store.query(&Lex::default(), &Lex::default(), None).await,
        "query",
    );
    assert_same(&all, want, &format!("{what}: query of everything"));
}

// ---------------------------------------------------------------------------
// the tests

/// Whole nodes and single keys come back as they were put; missing souls and
/// keys are `None`.
pub async fn put_and_get<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let d = diff(&[
        ("alice", "name", 10.0, Value::from("Alice")),
        ("alice", "age", 10.0, num(30.0)),
        ("alice", "car", 11.0, link("car1")),
        ("alice", "admin", 12.0, Value::Bool(false)),
        ("car1", "make", 5.0, Value::from("Saab")),
        ("car1", "", 5.0, Value::from("the empty key")),
    ]);
    must(store.put(&d).await, "put");
    assert_holds(&store, &d, "after one put").await;

    let alice = must(store.get_key("alice", "car").await, "get_key");
    let alice = alice.unwrap_or_else(|| panic!("get_key(alice, car) found nothing"));
    assert_eq!(
        alice.len(),
        1,
        "get_key answers a node holding just that key"
    );
    assert_eq!(alice.soul().as_str(), "alice");
    assert_eq!(alice.value("car"), Some(&link("car1")));
    assert_eq!(alice.state("car"), Some(st(11.0)));

    assert!(
        must(store.get_node("bob").await, "get_node").is_none(),
        "a missing soul is None"
    );
    assert!(
        must(store.get_key("alice", "nope").await, "get_key").is_none(),
        "a missing key of an existing soul is None"
    );
    assert!(
        must(store.get_key("bob", "name").await, "get_key").is_none(),
        "a key of a missing soul is None"
    );

    // A second put adds keys to an existing node and adds a node.
    let d2 = diff(&[
        ("alice", "email", 13.0, Value::from("a@x")),
        ("bob", "name", 13.0, Value::from("Bob")),
    ]);
    must(store.put(&d2).await, "put");
    assert_holds(&store, &reference(&[&d, &d2]), "after two puts").await;
}

/// HAM on put: older writes are ignored, newer ones win, equal states are won by
/// the greater JSON text, replays change nothing, far-future states are stored.
pub async fn ham_merge<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let base = diff(&[
        ("h", "old", 100.0, Value::from("kept")),
        ("h", "new", 100.0, Value::from("replaced")),
        ("h", "tie", 100.0, Value::from("bbb")),
        ("h", "tie2", 100.0, Value::from("bbb")),
        ("h", "numtie", 100.0, num(5.0)),
        ("h", "texttie", 100.0, num(10.0)),
        ("h", "kinds", 100.0, Value::from("zzz")),
    ]);
    must(store.put(&base).await, "put");
    let second = diff(&[
        ("h", "old", 99.0, Value::from("older: ignored")),
        ("h", "new", 101.0, Value::from("newer: wins")),
        ("h", "tie", 100.0, Value::from("ccc")), // "ccc" > "bbb": wins
        ("h", "tie2", 100.0, Value::from("aaa")), // "aaa" < "bbb": loses
        ("h", "numtie", 100.0, num(6.0)),        // 6 > 5
        ("h", "texttie", 100.0, num(9.0)),       // "9" > "10" as text: wins
        ("h", "kinds", 100.0, Value::Null),      // `null` > `"zzz"` as text: wins
        (
            "h",
            "future",
            1e300,
            Value::from("far future: stored, not deferred"),
        ),
        ("h2", "fresh", 1.0, Value::Bool(true)),
    ]);
    must(store.put(&second).await, "put");
    let want = reference(&[&base, &second]);
    // Spot checks, so that a wrong reference cannot hide a wrong store.
    let h = want.get("h").unwrap_or_else(|| panic!("reference lost h"));
    assert_eq!(h.value("old"), Some(&Value::from("kept")));
    assert_eq!(h.value("tie2"), Some(&Value::from("bbb")));
    assert_eq!(h.value("texttie"), Some(&num(9.0)));
    assert_holds(&store, &want, "after a HAM merge").await;

    // Replaying everything (also in the other order) changes nothing.
    must(store.put(&second).await, "replay");
    must(store.put(&base).await, "replay");
    must(store.put(&second).await, "replay");
    assert_holds(&store, &want, "after replays").await;

    // One diff mixing losing and winning keys of the same node applies the winners only.
    let mixed = diff(&[
        ("h", "old", 1.0, Value::from("loses")),
        ("h", "new", 200.0, Value::from("wins again")),
        ("h", "added", 1.0, Value::from("new key")),
    ]);
    must(store.put(&mixed).await, "put");
    assert_holds(
        &store,
        &reference(&[&base, &second, &mixed]),
        "after a mixed diff",
    )
    .await;
}

/// `put` answers the part of its diff that changed the store, exactly what
/// HAM applies: winning keys with the state and value they were given; losing
/// keys, ties lost and values equal to what is stored are left out.
pub async fn put_answers_what_it_applied<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let mut shadow = Graph::new();
    let steps = [
        diff(&[
            ("a", "x", 100.0, Value::from("first")),
            ("a", "y", 100.0, num(1.0)),
            ("b", "z", 5.0, link("a")),
        ]),
        // Everything again: nothing changes, so the answer is empty.
        diff(&[
            ("a", "x", 100.0, Value::from("first")),
            ("a", "y", 100.0, num(1.0)),
            ("b", "z", 5.0, link("a")),
        ]),
        diff(&[
            ("a", "x", 99.0, Value::from("older: loses")),
            ("a", "y", 100.0, num(2.0)), // "2" > "1" at the same state: wins
            ("b", "z", 5.0, Value::from("a")), // `"a"` < `{"#":"a"}` as text: loses
            ("b", "new", 1.0, Value::Null),
            ("c", "only", 7.0, Value::Bool(false)),
        ]),
        diff(&[
            ("a", "x", 101.0, Value::Null),
            ("c", "only", 6.0, Value::Bool(true)),
        ]),
    ];
    for (i, d) in steps.iter().enumerate() {
        let want = shadow.merge(d, machine_state()).accepted;
        let got = must(store.put(d).await, "put");
        assert_same(&got, &want, &format!("the answer of put #{i}"));
    }
    // Spot checks, so that a wrong shadow cannot hide a wrong answer.
    let replay = must(store.put(&steps[0]).await, "replay");
    assert!(replay.is_empty(), "a replay answered {}", describe(&replay));
    let last = must(store.put(&steps[3]).await, "replay");
    assert!(last.is_empty(), "a replay answered {}", describe(&last));
    assert_holds(&store, &shadow, "after the answered puts").await;
}

/// `null` (deletion) is stored with its state, and an older write cannot bring the
/// key back.
pub async fn tombstones<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let a = diff(&[
        ("t", "gone", 10.0, Value::from("here")),
        ("t", "stay", 10.0, Value::from("x")),
    ]);
    let b = diff(&[("t", "gone", 20.0, Value::Null)]);
    let c = diff(&[("t", "gone", 15.0, Value::from("resurrected?"))]);
    let only_null = diff(&[("n", "k", 5.0, Value::Null)]);
    for d in [&a, &b, &c, &only_null] {
        must(store.put(d).await, "put");
    }
    let want = reference(&[&a, &b, &c, &only_null]);
    assert_holds(&store, &want, "tombstones").await;
    let t = must(store.get_key("t", "gone").await, "get_key");
    let t = t.unwrap_or_else(|| panic!("a tombstone must be kept, not removed"));
    assert_eq!(t.value("gone"), Some(&Value::Null));
    assert_eq!(t.state("gone"), Some(st(20.0)));
    assert!(
        must(store.get_node("n").await, "get_node").is_some(),
        "a node holding only a tombstone still exists"
    );
}

/// Numbers and states come back bit for bit (fractions, extremes, negative zero
/// as zero).
pub async fn numbers_round_trip<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let values = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        0.1,
        1e21,
        1e-7,
        5e-324,
        f64::MAX,
        f64::MIN,
        9_007_199_254_740_993.0,
        1795643451809.001,
        -123456789.125,
    ];
    let states = [
        0.0,
        -5.0,
        1.5,
        1795643451809.001,
        1e-300,
        8.64e15,
        f64::MAX / 2.0,
        -1e300,
    ];
    let mut d = Graph::new();
    for (i, v) in values.iter().enumerate() {
        put(&mut d, "nums", &format!("v{i:02}"), 1.0, num(*v));
    }
    for (i, s) in states.iter().enumerate() {
        put(
            &mut d,
            "states",
            &format!("s{i:02}"),
            *s,
            Value::from(i as u32),
        );
    }
    put(&mut d, "bools", "t", 1.0, Value::Bool(true));
    put(&mut d, "bools", "f", 1.0, Value::Bool(false));
    put(&mut d, "strings", "empty", 1.0, Value::from(""));
    put(
        &mut d,
        "strings",
        "json",
        1.0,
        Value::from("{\"#\":\"not a link\"}"),
    );
    put(
        &mut d,
        "strings",
        "ctl",
        1.0,
        Value::from("a\u{0}b\u{1b}c\n\"\\"),
    );
    put(
        &mut d,
        "strings",
        "big",
        1.0,
        Value::from("x".repeat(100_000)),
    );
    must(store.put(&d).await, "put");
    assert_holds(&store, &d, "numbers").await;
    let n = must(store.get_key("nums", "v08").await, "get_key");
    let got = n.and_then(|n| n.value("v08").and_then(Value::as_f64));
    assert_eq!(got.map(f64::to_bits), Some(f64::MAX.to_bits()));
}

/// Empty puts, and reads of things never written.
pub async fn empty_puts_and_misses<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    must(store.put(&Graph::new()).await, "put of an empty graph");
    let mut empty_node = Graph::new();
    empty_node.insert_node(Node::new(soul("nothing")));
    must(store.put(&empty_node).await, "put of a node without keys");
    assert!(
        must(store.get_node("nothing").await, "get_node").is_none(),
        "a node without keys is not stored"
    );
    let all = must(
        store.query(&Lex::default(), &Lex::default(), None).await,
        "query",
    );
    assert!(all.is_empty(), "an empty store answers an empty graph");
    let q = must(
        store
            .query(&Lex::prefix("a"), &Lex::default(), Some(1))
            .await,
        "query",
    );
    assert!(q.is_empty());
    must(store.flush().await, "flush");
}

fn key_set() -> Vec<(&'static str, Value)> {
    vec![
        ("", Value::from("empty key")),
        ("a", Value::from("x")),
        ("a\u{0}", num(1.0)),
        ("aa", Value::from("")),
        ("ab", Value::Null),
        ("abc", Value::from("abcdefghij")),
        ("ap", Value::Bool(true)),
        ("apple", Value::from("red")),
        ("apricot", Value::from("orange fruit")),
        ("b", num(2.0)),
        ("ba", Value::from("ba")),
        ("banana", Value::from("yellow")),
        ("c", link("c-node")),
        ("cherry", Value::from("dark red, small")),
        ("d", Value::from("d")),
        ("date", num(-3.5)),
        ("k00", num(0.0)),
        ("k01", Value::from("one")),
        ("k02", Value::from("two two")),
        ("k10", num(10.0)),
        ("k11", Value::from("eleven")),
        ("k2", Value::from("k2")),
        ("z", Value::from("zz")),
        ("~", Value::from("tilde")),
        ("\u{7f}", Value::from("del")),
        ("é", Value::from("e acute")),
        ("日本", Value::from("日本語")),
        ("\u{D7FF}", Value::from("last before surrogates")),
        ("\u{E000}", Value::from("private use")),
        ("\u{E000}x", Value::from("private use x")),
        ("\u{FFFF}", Value::from("bmp max")),
        ("😀", Value::from("grin")),
        ("😀a", Value::from("grin a")),
        ("\u{10FFFF}", Value::from("max")),
    ]
}

fn bounds() -> Vec<Option<&'static str>> {
    vec![
        None,
        Some(""),
        Some("a"),
        Some("ap"),
        Some("apple"),
        Some("b"),
        Some("banana"),
        Some("k0"),
        Some("k1"),
        Some("z"),
        Some("é"),
        Some("\u{D7FF}"),
        Some("\u{E000}"),
        Some("\u{FFFF}"),
        Some("😀"),
        Some("\u{10FFFF}"),
    ]
}

/// Every lexical shape over `bounds()`: all, exact, prefix, ranges, combinations,
/// each forwards and in reverse.
fn lex_variants() -> Vec<Lex> {
    let mut out = vec![Lex::default()];
    let bs = bounds();
    for b in bs.iter().flatten() {
        out.push(Lex::exact(*b));
        out.push(Lex::prefix(*b));
        let mut pr = Lex::prefix(*b);
        pr.start = Some(format!("{b}p"));
        out.push(pr);
        let mut ex = Lex::exact(*b);
        ex.end = Some("m".into());
        out.push(ex);
    }
    for s in &bs {
        for e in &bs {
            out.push(Lex::range(*s, *e));
        }
    }
    let mut rev: Vec<Lex> = out
        .iter()
        .cloned()
        .map(|mut l| {
            l.reverse = true;
            l
        })
        .collect();
    out.append(&mut rev);
    out
}

const BUDGETS: [Option<u64>; 7] = [
    None,
    Some(1),
    Some(9),
    Some(10),
    Some(25),
    Some(60),
    Some(100_000),
];

/// Lexical key reads (`=`, `*`, `>`, `<`, `-`) and `%` budgets answer exactly what
/// `gun_graph::lex::query_node`/`query_graph` answer, including keys where
/// JavaScript's UTF-16 order differs from UTF-8 order.
pub async fn lexical_key_ranges_and_budgets<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let mut d = Graph::new();
    for (k, v) in key_set() {
        put(&mut d, "fruit", k, 7.0, v);
    }
    // Neighbours that a scan of "fruit" must not leak into.
    put(&mut d, "frui", "a", 1.0, Value::from("before"));
    put(
        &mut d,
        "fruit\u{0}",
        "a",
        1.0,
        Value::from("after, with NUL"),
    );
    put(&mut d, "fruits", "a", 1.0, Value::from("after"));
    must(store.put(&d).await, "put");
    let node = d
        .get("fruit")
        .cloned()
        .unwrap_or_else(|| panic!("no fruit"));

    let souls = Lex::exact("fruit");
    let mut checked = 0usize;
    for keys in lex_variants() {
        for budget in BUDGETS {
            let got = must(store.query(&souls, &keys, budget).await, "query");
            let want = lex::query_graph(&d, &souls, &keys, budget);
            assert_same(
                &got,
                &want,
                &format!("query(fruit, {:?}, {budget:?})", keys.to_json()),
            );
            // And the per-node reference agrees with the graph reference.
            let n = lex::query_node(&node, &keys, budget);
            assert_eq!(want.get("fruit").map(Node::len).unwrap_or(0), n.len());
            checked += 1;
        }
    }
    assert!(checked > 1000);
}

/// Soul queries (prefix, ranges, reverse) with key filters and budgets shared
/// over nodes, as `gun_graph::lex::query_graph` answers them.
pub async fn lexical_soul_queries<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let souls = [
        "a",
        "a\u{0}",
        "a\u{0}b",
        "ab",
        "ap",
        "apple",
        "b",
        "banana",
        "fruit",
        "fruit/apple",
        "fruit/banana",
        "fruits",
        "k0",
        "k1",
        "z",
        "é",
        "\u{D7FF}",
        "\u{E000}",
        "\u{FFFF}",
        "😀",
        "😀/x",
        "\u{10FFFF}",
    ];
    let mut d = Graph::new();
    for (i, s) in souls.iter().enumerate() {
        put(&mut d, s, "k", 3.0, Value::from(format!("value of {s}")));
        if i % 2 == 0 {
            put(&mut d, s, "k2", 3.0, num(i as f64));
            put(&mut d, s, "other", 3.0, Value::from("o"));
        }
    }
    must(store.put(&d).await, "put");
    let key_filters = [
        Lex::default(),
        Lex::exact("k"),
        Lex::prefix("k"),
        Lex::range(Some("l"), None),
    ];
    let budgets = [None, Some(1), Some(20), Some(40), Some(100_000)];
    for soul_lex in lex_variants() {
        for keys in &key_filters {
            for budget in budgets {
                let got = must(store.query(&soul_lex, keys, budget).await, "query");
                let want = lex::query_graph(&d, &soul_lex, keys, budget);
                assert_same(
                    &got,
                    &want,
                    &format!(
                        "query({:?}, {:?}, {budget:?})",
                        soul_lex.to_json(),
                        keys.to_json()
                    ),
                );
            }
        }
    }
}

/// A node with 100 000 keys: put in one diff, read back whole, by key, and by
/// ranges with budgets; then 1000 of its keys updated; then (durable backends)
/// read back after reopening.
pub async fn node_with_100k_keys<O: Opener>(opener: &O, caps: &Capabilities) {
    const N: usize = 100_000;
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let mut d = Graph::new();
    let s = soul("big");
    let mut node = Node::new(s.clone());
    for i in 0..N {
        let v = if i % 3 == 0 {
            num(i as f64)
        } else {
            Value::from(format!("v{i}"))
        };
        if let Err(e) = node.insert(format!("k{i:06}"), st(1000.0 + (i % 7) as f64), v) {
            panic!("cannot build the node: {e}");
        }
    }
    d.insert_node(node);
    put(&mut d, "big0", "k", 1.0, Value::from("neighbour"));
    must(store.put(&d).await, "put of 100k keys");

    let got = must(store.get_node("big").await, "get_node");
    let got = got.unwrap_or_else(|| panic!("the 100k-key node is missing"));
    assert_eq!(got.len(), N, "all keys come back");
    assert_node(Some(got), d.get("big"), "get_node(big)");
    let k = must(store.get_key("big", "k054322").await, "get_key");
    assert_eq!(
        k.and_then(|n| n.value("k054322").cloned()),
        Some(Value::from("v54322"))
    );

    let node = d.get("big").cloned().unwrap_or_else(|| panic!("no big"));
    let exact = Lex::exact("big");
    let mut rev_prefix = Lex::prefix("k0999");
    rev_prefix.reverse = true;
    let rev_all = Lex {
        reverse: true,
        ..Lex::default()
    };
    let cases: Vec<(Lex, Option<u64>)> = vec![
        (Lex::range(Some("k050000"), Some("k050099")), None),
        (Lex::range(Some("k050000"), None), Some(1)),
        (Lex::range(Some("k050000"), None), Some(100)),
        (Lex::prefix("k0999"), None),
        (Lex::prefix("k0999"), Some(30)),
        (rev_prefix, Some(30)),
        (rev_all, Some(50)),
        (Lex::range(None, Some("k000010")), None),
        (Lex::default(), Some(1000)),
    ];
    for (keys, budget) in cases {
        let got = must(store.query(&exact, &keys, budget).await, "query");
        let want: Graph = Some(lex::query_node(&node, &keys, budget))
            .filter(|n| !n.is_empty())
            .into_iter()
            .collect();
        assert_same(
            &got,
            &want,
            &format!(
                "ranged read of the 100k-key node {:?} {budget:?}",
                keys.to_json()
            ),
        );
    }

    // Update 1000 keys (half older, half newer).
    let mut upd = Graph::new();
    for i in (0..N).step_by(100) {
        let state = if i % 200 == 0 { 2000.0 } else { 1.0 };
        put(
            &mut upd,
            "big",
            &format!("k{i:06}"),
            state,
            Value::from("updated"),
        );
    }
    must(store.put(&upd).await, "put of 1000 updates");
    let want = reference(&[&d, &upd]);
    let got = must(store.get_node("big").await, "get_node");
    assert_node(got, want.get("big"), "100k-key node after updates");
    if caps.is_durable() {
        drop(store);
        let store = open(opener, &sb).await;
        let got = must(store.get_node("big").await, "get_node");
        assert_node(got, want.get("big"), "100k-key node after reopening");
    }
}

/// Many tasks putting overlapping diffs at once: every put succeeds and the
/// result is what HAM gives for all diffs in any order.
pub async fn concurrent_writers<O: Opener>(opener: &O, _caps: &Capabilities) {
    const TASKS: usize = 8;
    const PUTS: usize = 25;
    let sb = Sandbox::new();
    let store = Arc::new(open(opener, &sb).await);
    let mut all = Vec::new();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let mut diffs = Vec::new();
        for i in 0..PUTS {
            let mut d = Graph::new();
            for s in 0..4 {
                for k in 0..6 {
                    // Few distinct states, so that ties between tasks are common.
                    let state = ((t * 7 + i * 13 + s * 3 + k) % 11) as f64 + 1.0;
                    let v = match (t + i + k) % 4 {
                        0 => Value::from(format!("t{t}i{i}")),
                        1 => num((t * 100 + i) as f64),
                        2 => Value::Null,
                        _ => link(&format!("t{t}")),
                    };
                    put(&mut d, &format!("c/{s}"), &format!("k{k}"), state, v);
                }
            }
            put(
                &mut d,
                &format!("own/{t}"),
                &format!("i{i}"),
                1.0,
                Value::from(i as u32),
            );
            diffs.push(d);
        }
        all.extend(diffs.iter().cloned());
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut applied = Vec::new();
            for d in &diffs {
                applied.push(store.put(d).await?);
                tokio::task::yield_now().await;
            }
            Ok::<Vec<Graph>, Error>(applied)
        }));
    }
    // A reader running alongside must only ever see valid data.
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for _ in 0..50 {
                let g = store
                    .query(&Lex::prefix("c/"), &Lex::default(), None)
                    .await?;
                for n in g.nodes() {
                    assert!(n.len() <= 6, "a node grew keys nobody wrote");
                }
                let _ = store.get_node("c/0").await?;
                tokio::task::yield_now().await;
            }
            Ok::<(), Error>(())
        })
    };
    let mut answers = Vec::new();
    for h in handles {
        match h.await {
            Ok(r) => answers.extend(must(r, "a concurrent put")),
            Err(e) => panic!("a writer task failed: {e}"),
        }
    }
    match reader.await {
        Ok(r) => must(r, "a concurrent read"),
        Err(e) => panic!("the reader task failed: {e}"),
    }
    let refs: Vec<&Graph> = all.iter().collect();
    let want = reference(&refs);
    assert_holds(&*store, &want, "after concurrent writers").await;
    // Every value the store ended with was in some put's answer: folding the
    // answers gives the final state (a store that under-reports fails here).
    let answered: Vec<&Graph> = answers.iter().collect();
    assert_same(
        &reference(&answered),
        &want,
        "the concurrent puts' answers, merged",
    );
    // The final state does not depend on the order: merging in reverse agrees.
    let rev: Vec<&Graph> = all.iter().rev().collect();
    assert_same(&reference(&rev), &want, "reference merge order");
}

/// Data survives closing (dropping) and reopening the store, with and without an
/// explicit flush; HAM then runs against what was persisted.
pub async fn reopen_after_close<O: Opener>(opener: &O, caps: &Capabilities) {
    if !caps.is_durable() {
        eprintln!("conformance: reopen_after_close skipped: the backend declared durable = false");
        return;
    }
    let sb = Sandbox::new();
    let a = diff(&[
        ("r", "x", 10.0, Value::from("first")),
        ("r", "y", 10.0, num(1.0)),
        ("r2", "l", 10.0, link("r")),
    ]);
    {
        let store = open(opener, &sb).await;
        must(store.put(&a).await, "put");
        // Dropped without flush: a resolved put is durable.
    }
    let b = diff(&[
        (
            "r",
            "x",
            9.0,
            Value::from("older: must lose against the persisted value"),
        ),
        ("r", "y", 11.0, num(2.0)),
        ("r3", "z", 1.0, Value::Null),
    ]);
    {
        let store = open(opener, &sb).await;
        assert_holds(&store, &a, "after reopen").await;
        must(store.put(&b).await, "put");
        must(store.flush().await, "flush");
    }
    let want = reference(&[&a, &b]);
    for round in 0..2 {
        let store = open(opener, &sb).await;
        assert_holds(&store, &want, &format!("after reopen #{}", round + 2)).await;
        let stats = must(store.stats().await, "stats");
        assert_eq!(stats.souls, 3, "stats after reopen");
    }
    sb.assert_nothing_outside();
}

fn unicode_rows() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("日本語のソウル", "キー", Value::from("値")),
        ("ünïcödé", "ключ", Value::from("значение")),
        ("😀", "😀", Value::from("😀😀")),
        ("😀", "\u{FFFF}", Value::from("bmp max key")),
        ("e\u{301}", "combining", Value::from("é as e + U+0301")),
        ("é", "precomposed", Value::from("é as U+00E9")),
        ("עברית", "rtl", Value::from("שלום")),
        ("zw\u{200B}j", "\u{200D}", Value::from("zero width")),
        ("\u{FEFF}bom", "k", Value::from("byte order mark")),
        ("\u{10FFFF}", "\u{E000}", Value::from("edges")),
        ("mixed", "a😀b", link("😀")),
    ]
}

/// Unicode souls and keys (CJK, emoji, combining marks, RTL, zero-width, the
/// last code points) are kept exactly, and distinct normalisations stay distinct.
pub async fn unicode_souls_and_keys<O: Opener>(opener: &O, caps: &Capabilities) {
    let sb = Sandbox::new();
    let mut d = Graph::new();
    for (s, k, v) in unicode_rows() {
        put(&mut d, s, k, 42.0, v);
    }
    {
        let store = open(opener, &sb).await;
        must(store.put(&d).await, "put");
        assert_holds(&store, &d, "unicode").await;
        assert!(must(store.get_node("e\u{301}").await, "get_node").is_some());
        let e = must(store.get_node("é").await, "get_node");
        assert_eq!(
            e.map(|n| n.len()),
            Some(1),
            "no Unicode normalisation of souls"
        );
        let q = must(
            store.query(&Lex::prefix("😀"), &Lex::default(), None).await,
            "query",
        );
        assert_eq!(q.len(), 1);
    }
    if caps.is_durable() {
        let store = open(opener, &sb).await;
        assert_holds(&store, &d, "unicode after reopen").await;
    }
    sb.assert_nothing_outside();
}

fn hostile_souls_list() -> Vec<String> {
    let mut v: Vec<String> = [
        "../x",
        "..",
        ".",
        "/",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "..\\..\\x",
        "C:\\x",
        "CON",
        "con",
        "NUL",
        "nul.txt",
        "COM1",
        "LPT1",
        "AUX",
        "PRN",
        "Ab",
        "aB",
        "ab",
        "AB",
        "__proto__",
        "constructor",
        "toString",
        "hasOwnProperty",
        "\u{0}",
        "a\u{0}b",
        "a\u{0}",
        "\u{0}\u{0}",
        "\u{1}",
        "\u{1b}",
        "a\u{1b}b",
        "\u{1c}",
        "%1C",
        "!",
        "*",
        "?",
        "<>|\":",
        " ",
        "trailing.",
        "trailing ",
        "\n",
        "\r\n",
        "\u{7f}",
        "~@alice",
        "~pub.key/x",
        "#",
        "_",
        "snapshot",
        "journal",
        "LOCK",
        "conf",
        "db",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("l".repeat(10 * 1024));
    v.push(format!("{}/../../x", "d".repeat(300)));
    v
}

/// Souls that would be dangerous as file names (`../x`, `CON`, `a/b`, NUL bytes,
/// a 10 KB soul, `Ab`/`aB`, `__proto__`, …) are kept as distinct, exact souls,
/// and nothing is written outside the store's directory.
pub async fn hostile_souls<O: Opener>(opener: &O, caps: &Capabilities) {
    let sb = Sandbox::new();
    let souls = hostile_souls_list();
    let mut d = Graph::new();
    for (i, s) in souls.iter().enumerate() {
        put(&mut d, s, "i", 5.0, Value::from(i as u32));
        put(
            &mut d,
            s,
            &format!("key of {i}"),
            5.0,
            Value::from(s.as_str()),
        );
    }
    // Hostile keys too.
    for k in [
        "../k",
        "CON",
        "\u{0}",
        "",
        "__proto__",
        "constructor",
        "a/b",
        "\u{1b}",
    ] {
        put(&mut d, "keys", k, 5.0, Value::from(k));
    }
    put(
        &mut d,
        "keys",
        &"k".repeat(10 * 1024),
        5.0,
        Value::from("long key"),
    );
    {
        let store = open(opener, &sb).await;
        must(store.put(&d).await, "put");
        assert_holds(&store, &d, "hostile souls").await;
        for (i, s) in souls.iter().enumerate() {
            let n = must(store.get_key(s, "i").await, "get_key");
            assert_eq!(
                n.and_then(|n| n.value("i").cloned()),
                Some(Value::from(i as u32)),
                "soul {} is distinct",
                short(s)
            );
        }
        let q = must(
            store.query(&Lex::prefix("a"), &Lex::exact("i"), None).await,
            "query",
        );
        let mut want_souls: Vec<&str> = souls
            .iter()
            .map(String::as_str)
            .filter(|s| s.starts_with('a'))
            .collect();
        want_souls.sort_unstable();
        assert_eq!(q.souls().map(Soul::as_str).collect::<Vec<_>>(), want_souls);
        let stats = must(store.stats().await, "stats");
        assert_eq!(stats.souls, d.len() as u64);
    }
    if caps.is_durable() {
        let store = open(opener, &sb).await;
        assert_holds(&store, &d, "hostile souls after reopen").await;
    }
    sb.assert_nothing_outside();
}

/// `stats` counts souls and keys (tombstones included) and reports some bytes.
pub async fn stats_count_souls<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let store = open(opener, &sb).await;
    let empty = must(store.stats().await, "stats");
    assert_eq!((empty.souls, empty.keys), (0, 0), "an empty store");
    let a = diff(&[
        ("s1", "a", 1.0, Value::from("x")),
        ("s1", "b", 1.0, Value::Null),
        ("s2", "a", 1.0, num(1.0)),
    ]);
    let b = diff(&[
        ("s1", "a", 2.0, Value::from("y")),
        ("s3", "a", 1.0, Value::Bool(true)),
    ]);
    must(store.put(&a).await, "put");
    must(store.put(&b).await, "put");
    must(store.put(&a).await, "replay");
    let s = must(store.stats().await, "stats");
    assert_eq!(s.souls, 3, "souls");
    assert_eq!(s.keys, 4, "keys");
    assert!(s.bytes > 0, "bytes");
}

/// A put that fails midway (the backend's fail hook makes its next write fail)
/// leaves the store as it was: the diff is neither visible nor applied after
/// reopening, and the store keeps working.
///
/// `opener` opens the store normally; `failing` opens the same directory such
/// that the next put fails partway through writing.
pub async fn failed_write_leaves_store_unchanged<O: Opener, F: Opener>(opener: &O, failing: &F) {
    let sb = Sandbox::new();
    let base = diff(&[
        ("base", "a", 10.0, Value::from("before")),
        ("base", "b", 10.0, num(1.0)),
    ]);
    {
        let store = open(opener, &sb).await;
        must(store.put(&base).await, "put");
    }
    let mut bad = diff(&[
        ("base", "a", 20.0, Value::from("after: must not appear")),
        ("base", "c", 20.0, Value::from("new key: must not appear")),
        ("new", "k", 20.0, Value::from("x".repeat(64 * 1024))),
    ]);
    for i in 0..100 {
        put(&mut bad, &format!("many/{i}"), "k", 20.0, num(i as f64));
    }
    {
        let store = match failing.open(sb.dir()).await {
            Ok(s) => s,
            Err(e) => panic!("opening the failing store failed: {e}"),
        };
        assert_holds(&store, &base, "failing store before the write").await;
        let r = store.put(&bad).await;
        assert!(r.is_err(), "the fail hook must make this put fail");
        assert_holds(&store, &base, "after the failed write (same instance)").await;
        let s = store.stats().await;
        if let Ok(s) = s {
            assert_eq!(s.souls, 1, "stats after the failed write");
        }
    }
    let store = open(opener, &sb).await;
    assert_holds(&store, &base, "after the failed write and reopen").await;
    // The store still works, and the same diff now applies.
    must(store.put(&bad).await, "put after the failure");
    assert_holds(
        &store,
        &reference(&[&base, &bad]),
        "after retrying the write",
    )
    .await;
    drop(store);
    let store = open(opener, &sb).await;
    assert_holds(
        &store,
        &reference(&[&base, &bad]),
        "after retrying and reopening",
    )
    .await;
    sb.assert_nothing_outside();
}

/// The outbox: entries are listed until removed, replacing an id replaces its
/// entry, removing an unknown id is fine, and the outbox is not part of the
/// graph (no read sees it). A store whose [`Store::keeps_outbox`] is true keeps
/// the entries across a reopen (without a flush: a resolved `outbox_put` is
/// durable); one that keeps no outbox lists nothing.
pub async fn outbox_keeps_unacked_writes<O: Opener>(opener: &O, caps: &Capabilities) {
    let sb = Sandbox::new();
    let a = diff(&[
        ("o", "x", 10.0, Value::from("first")),
        ("o", "y", 10.0, num(1.0)),
    ]);
    let b = diff(&[("p/\u{0}..", "k", 11.0, Value::from("ünï\"code\n"))]);
    let b2 = diff(&[("p", "k", 12.0, Value::Null)]);
    let keeps = {
        let store = open(opener, &sb).await;
        must(store.outbox_put("id-a", &a).await, "outbox_put");
        must(store.outbox_put("../id b\u{0}", &b).await, "outbox_put");
        must(store.outbox_put("id-c", &b2).await, "outbox_put");
        must(store.outbox_remove("id-c").await, "outbox_remove");
        must(
            store.outbox_remove("never-there").await,
            "outbox_remove of an unknown id",
        );
        let keeps = store.keeps_outbox();
        let mut got = must(store.outbox().await, "outbox");
        got.sort_by(|x, y| x.0.cmp(&y.0));
        if keeps || !got.is_empty() {
            assert_eq!(
                got,
                vec![
                    ("../id b\u{0}".to_owned(), b.clone()),
                    ("id-a".to_owned(), a.clone())
                ],
                "outbox entries until removed"
            );
        }
        must(
            store.outbox_put("id-a", &b2).await,
            "outbox_put replacing an entry",
        );
        // The outbox is not data: reads do not see it.
        assert!(
            must(store.get_node("o").await, "get_node").is_none(),
            "outbox entry read as data"
        );
        assert!(
            must(
                store.query(&Lex::default(), &Lex::default(), None).await,
                "query"
            )
            .is_empty(),
            "outbox entries read as data"
        );
        keeps
    };
    if !keeps {
        return;
    }
    if !caps.is_durable() {
        panic!("the store keeps an outbox (keeps_outbox) but declared durable = false");
    }
    for round in 0..2 {
        let store = open(opener, &sb).await;
        let mut got = must(store.outbox().await, "outbox after reopen");
        got.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            got,
            vec![
                ("../id b\u{0}".to_owned(), b.clone()),
                ("id-a".to_owned(), b2.clone())
            ],
            "outbox after reopen #{}",
            round + 1
        );
    }
    {
        let store = open(opener, &sb).await;
        must(store.outbox_remove("id-a").await, "outbox_remove");
    }
    let store = open(opener, &sb).await;
    let got = must(store.outbox().await, "outbox after removal and reopen");
    assert_eq!(got.len(), 1, "outbox after removal and reopen");
    sb.assert_nothing_outside();
}

/// [`Store::scan`] (for stores that page): pages of whole nodes in the byte
/// order of their souls, each soul once, hostile souls included, and writes
/// between pages do not disturb the walk. A store answering `None` is skipped.
pub async fn scan_pages<O: Opener>(opener: &O, _caps: &Capabilities) {
    let sb = Sandbox::new();
    let concrete = open(opener, &sb).await;
    if must(concrete.scan(None, 10).await, "scan").is_none() {
        return;
    }
    // The rest through `Box<dyn Store>`, as a relay holds its store: the
    // forwarding impls must pass `scan` on, not fall back to the default.
    let store: Box<dyn Store> = Box::new(concrete);
    assert!(
        must(store.scan(None, 10).await, "scan").is_some(),
        "Box<dyn Store> does not forward scan"
    );
    assert_eq!(
        must(store.scan(None, 10).await, "scan"),
        Some(Vec::new()),
        "an empty store scans empty"
    );
    let mut souls: Vec<String> = (0..40).map(|i| format!("scan/{i:02}")).collect();
    souls.extend(hostile_souls_list());
    let mut d = Graph::new();
    for (i, s) in souls.iter().enumerate() {
        put(&mut d, s, "a", 5.0, Value::from(i as u32));
        put(&mut d, s, "b", 6.0, Value::from(s.as_str()));
    }
    must(store.put(&d).await, "put");
    let mut expect = d.clone();

    for limit in [1, 7, 1000] {
        let mut after: Option<String> = None;
        let mut seen: Vec<String> = Vec::new();
        let mut pages = 0;
        loop {
            let page = must(store.scan(after.as_deref(), limit).await, "scan")
                .unwrap_or_else(|| panic!("scan answered None after answering pages"));
            if page.is_empty() {
                break;
            }
            pages += 1;
            assert!(
                page.len() <= limit,
                "a page of {} for limit {limit}",
                page.len()
            );
            for n in &page {
                let want = expect.get(n.soul().as_str()).unwrap_or_else(|| {
                    panic!("scan returned a soul never written: {:?}", n.soul())
                });
                assert_node(Some(n.clone()), Some(want), "a scanned node is whole");
                seen.push(n.soul().to_string());
            }
            after = page.last().map(|n| n.soul().to_string());
            if pages == 2 {
                // A write between pages: a new soul at the end, and a change
                // to a soul already passed; neither stops the walk.
                let more = diff(&[
                    ("zzz-late", "k", 7.0, Value::from("late")),
                    (seen[0].as_str(), "c", 7.0, Value::from("later")),
                ]);
                must(store.put(&more).await, "put");
                expect.merge(&more, machine_state());
            }
            assert!(pages <= souls.len() + 2, "scan does not end");
        }
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        sorted.dedup();
        assert_eq!(
            seen, sorted,
            "souls in byte order, each once (limit {limit})"
        );
        for s in &souls {
            assert!(seen.contains(s), "scan missed {s:?} (limit {limit})");
        }
        assert!(
            seen.iter().any(|s| s == "zzz-late"),
            "a soul written during the walk, after it"
        );
    }
}
