//! # gun-store: where a Gun peer keeps its graph
//!
//! The [`Store`] trait that gun-core writes accepted puts to and reads gets from,
//! and (behind the `conformance` feature) the test suite every backend runs. This
//! crate has no runtime and no I/O: futures are boxed, `Send`, and carry no tokio
//! types, so the trait is object-safe (`Arc<dyn Store>`).
//!
//! Backends, each its own crate:
//! * `gun-store-memory`: a graph behind a lock; not durable (tests, embedding);
//! * `gun-store-file`: one directory, a checksummed write-ahead journal and
//!   snapshots; reads from an in-memory index; imports Gun.js `radata`;
//! * `gun-store-sled`: the embedded default of the relay (sled), reads are range scans.
//!
//! ## The contract, in short
//! * A put is a diff the engine accepted. The store still merges **each key with
//!   HAM against what it holds** (newer state wins, an equal state is won by the
//!   greater JSON text, [`gun_graph::decide`] with machine state `f64::MAX`), so
//!   replays and racing writers converge, and a store never goes back in time.
//! * A put resolves once the data is durable (for durable stores), and is atomic:
//!   when it fails, nothing of that diff is applied.
//! * Lexical reads (`query`) answer exactly what [`gun_graph::lex::query_graph`]
//!   answers on the same data, budget (`%`) included; backends with ordered keys
//!   answer them with range scans.
//! * Souls and keys are arbitrary strings (`../x`, `CON`, `\u{0}`, 10 KB long):
//!   a store never derives file names from them.
//! * The **outbox** ([`Store::outbox_put`], [`Store::outbox_remove`],
//!   [`Store::outbox`]) keeps this peer's own writes until a peer acked them,
//!   beside the data: a durable store keeps it durable ([`Store::keeps_outbox`]),
//!   so writes made offline, or just before a crash, are sent when the program
//!   starts again. The default methods keep nothing.
//!
//! ## Writing a backend
//!
//! A toy store over a locked [`Graph`] (what `gun-store-memory` does, minus the
//! details):
//!
//! ```
//! use std::sync::Mutex;
//! use gun_graph::{Graph, Lex, Node, Soul, State, Value, lex};
//! use gun_store::{BoxFuture, Error, Store, StoreStats};
//!
//! struct Toy(Mutex<Graph>);
//!
//! impl Store for Toy {
//!     fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
//!         Box::pin(async move { Ok(self.0.lock().map_err(|_| Error::Closed)?.get(soul).cloned()) })
//!     }
//!     fn get_key<'a>(&'a self, soul: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
//!         Box::pin(async move {
//!             let g = self.0.lock().map_err(|_| Error::Closed)?;
//!             Ok(g.get(soul).map(|n| n.select([key])).filter(|n| !n.is_empty()))
//!         })
//!     }
//!     fn query<'a>(&'a self, souls: &'a Lex, keys: &'a Lex, budget: Option<u64>) -> BoxFuture<'a, Result<Graph, Error>> {
//!         Box::pin(async move {
//!             let g = self.0.lock().map_err(|_| Error::Closed)?;
//!             Ok(lex::query_graph(&g, souls, keys, budget))
//!         })
//!     }
//!     fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
//!         Box::pin(async move {
//!             let mut g = self.0.lock().map_err(|_| Error::Closed)?;
//!             Ok(g.merge(diff, gun_store::machine_state()).accepted)
//!         })
//!     }
//!     fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
//!         Box::pin(async { Ok(()) })
//!     }
//!     fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
//!         Box::pin(async move {
//!             let g = self.0.lock().map_err(|_| Error::Closed)?;
//!             let bytes = g.nodes().map(|n| n.approx_bytes() as u64).sum();
//!             Ok(StoreStats::new(g.len() as u64, g.key_count() as u64, bytes))
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(Toy(Mutex::new(Graph::new())));
//! let mut diff = Graph::new();
//! diff.put(Soul::new("alice")?, "name", State::new(2.0)?, Value::from("Alice"))?;
//! store.put(&diff).await?;
//!
//! // An older write of the same key changes nothing: HAM runs in the store too.
//! let mut old = Graph::new();
//! old.put(Soul::new("alice")?, "name", State::new(1.0)?, Value::from("Eve"))?;
//! store.put(&old).await?;
//! let node = store.get_key("alice", "name").await?.unwrap();
//! assert_eq!(node.value("name"), Some(&Value::from("Alice")));
//! assert_eq!(store.stats().await?.souls, 1);
//! # Ok(()) }
//! ```
//!
//! Then run the suite from the backend's `tests/` with the `conformance` feature:
//! `gun_store::conformance_tests!(opener, gun_store::conformance::Capabilities::new());`
//! (see [`conformance`](crate#conformance-suite)).
//!
//! ## Conformance suite
//!
//! With the `conformance` feature, `gun_store::conformance` holds async test
//! functions (put/get, HAM, tombstones, lexical ranges and budgets compared
//! against [`gun_graph::lex`], soul prefixes, a 100 000-key node, concurrent
//! writers, reopen, unicode and hostile souls, failed writes) and the
//! `conformance_tests!` macro that turns them into `#[tokio::test]`s.

mod error;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use error::Error;
use gun_graph::{Graph, Lex, Node, State};

/// A boxed, `Send` future: what every [`Store`] method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The machine state a store merges with (`f64::MAX`): the largest finite state, so that the
/// store never defers a write (the engine decided "now" already) and HAM reduces
/// to "newer state wins, equal state: greater JSON text wins".
pub fn machine_state() -> State {
    // f64::MAX is finite, so `new` cannot fail; MIN is only there to avoid a panic path.
    State::new(f64::MAX).unwrap_or(State::MIN)
}

/// Where a Gun peer keeps its graph. See the [crate docs](crate) for the contract.
///
/// Object-safe: use it as `Arc<dyn Store>`.
pub trait Store: Send + Sync + 'static {
    /// The whole node, or `None` when no key of `soul` is stored.
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>>;

    /// One key of a node (a node holding just that key), or `None` when that key
    /// is not stored.
    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>>;

    /// A lexical read: nodes whose souls match `souls`, with their keys matching
    /// `keys`, within the `%` byte budget (`None` = unlimited), exactly as
    /// [`gun_graph::lex::query_graph`] answers on the same data. Backends with
    /// ordered keys answer with range scans, not full scans.
    fn query<'a>(
        &'a self,
        souls: &'a Lex,
        keys: &'a Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>>;

    /// Writes a diff and answers what it applied.
    ///
    /// Each key is merged with HAM against what is stored ([`gun_graph::decide`]
    /// at [`machine_state`]: newer state wins, equal state: greater JSON text
    /// wins), so replays and races converge. Resolves once the data is durable
    /// (for durable stores). Atomic: on error nothing of this diff is applied.
    ///
    /// The answer is the part of `diff` that changed the store: every key whose
    /// incoming entry won HAM, with the state and value it was given; keys that
    /// lost, or equal what is stored, are left out (an empty graph when nothing
    /// changed). The store is the authority for a write: a caller that caches
    /// nodes updates its cache from this answer, with no read before the write.
    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>>;

    /// Up to `limit` whole nodes, in the byte order of their souls, starting
    /// after the soul `after` (`None`: from the first): a whole store read page
    /// by page without holding it in memory (the relay's online export). The
    /// next page starts after the last soul of this one; an empty page is the
    /// end. Each page is read when asked for: a write between two pages is in
    /// the later one or not, as it falls.
    ///
    /// `None`: this store cannot read by pages (the default); read the whole
    /// graph with [`Store::query`] instead.
    fn scan<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Node>>, Error>> {
        let _ = (after, limit);
        Box::pin(async { Ok(None) })
    }

    /// Makes everything written so far durable (call it before shutdown).
    fn flush(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Number of souls and approximate bytes, for health pages.
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>>;

    /// Keeps a local write that no peer has acked yet (the **outbox**), under
    /// its message id, so that a peer that restarts on this store sends it
    /// again. Durable stores resolve once the entry is durable (a program
    /// killed after its put resolved re-sends the write when it starts
    /// again); writing the same `id` again replaces the entry.
    ///
    /// The default keeps nothing (see [`Store::keeps_outbox`]): the engine
    /// then holds undelivered writes only in memory.
    fn outbox_put<'a>(&'a self, id: &'a str, diff: &'a Graph) -> BoxFuture<'a, Result<(), Error>> {
        let _ = (id, diff);
        Box::pin(async { Ok(()) })
    }

    /// Forgets an outbox entry (a peer acked it). Removing an unknown id is
    /// not an error.
    fn outbox_remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let _ = id;
        Box::pin(async { Ok(()) })
    }

    /// Every outbox entry, by id. Entries that cannot be read back (a damaged
    /// file) are left out with a warn event, never an error for the rest.
    fn outbox(&self) -> BoxFuture<'_, Result<Vec<(String, Graph)>, Error>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether [`Store::outbox_put`] entries survive a restart (a durable
    /// outbox). Default `false`.
    fn keeps_outbox(&self) -> bool {
        false
    }

    /// Changes that *other* writers make to this store, for a store shared
    /// by several processes (e.g. `gun-store-postgres`: relays of a fleet on
    /// one database). The engine takes it once, at start, and feeds each
    /// [`ExternalChange::Applied`] to its cache and subscribers as a write
    /// accepted elsewhere (no second write to the store); an
    /// [`ExternalChange::Gap`] makes it drop its cache. The feed never
    /// carries this store's own writes. Default `None`: nobody else writes.
    fn changes(&self) -> Option<Box<dyn ChangeFeed>> {
        None
    }
}

/// What another writer did to a shared store ([`Store::changes`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExternalChange {
    /// Keys another writer applied, with the states and values the store
    /// held for them when this was read (the write itself, or newer).
    Applied(Graph),
    /// The feed may have missed changes (it reconnected, or fell behind):
    /// anything cached from this store may be older than what it holds.
    Gap,
}

/// A stream of [`ExternalChange`]s ([`Store::changes`]).
pub trait ChangeFeed: Send {
    /// The next change; `None` when the store is closed.
    fn next(&mut self) -> BoxFuture<'_, Option<ExternalChange>>;
}

/// What a store holds, roughly: for health pages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreStats {
    /// Number of souls with at least one stored key.
    pub souls: u64,
    /// Number of stored keys over all souls (tombstones included).
    pub keys: u64,
    /// Approximate bytes the data takes (in memory, or on disk: see the backend).
    pub bytes: u64,
}

impl StoreStats {
    /// Statistics from their parts.
    pub fn new(souls: u64, keys: u64, bytes: u64) -> StoreStats {
        StoreStats { souls, keys, bytes }
    }
}

macro_rules! forward_store {
    ($($wrapper:ident),*) => {$(
        impl<S: Store + ?Sized> Store for $wrapper<S> {
            fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
                (**self).get_node(soul)
            }
            fn get_key<'a>(
                &'a self,
                soul: &'a str,
                key: &'a str,
            ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
                (**self).get_key(soul, key)
            }
            fn query<'a>(
                &'a self,
                souls: &'a Lex,
                keys: &'a Lex,
                budget: Option<u64>,
            ) -> BoxFuture<'a, Result<Graph, Error>> {
                (**self).query(souls, keys, budget)
            }
            fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
                (**self).put(diff)
            }
            fn scan<'a>(
                &'a self,
                after: Option<&'a str>,
                limit: usize,
            ) -> BoxFuture<'a, Result<Option<Vec<Node>>, Error>> {
                (**self).scan(after, limit)
            }
            fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
                (**self).flush()
            }
            fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
                (**self).stats()
            }
            fn outbox_put<'a>(&'a self, id: &'a str, diff: &'a Graph) -> BoxFuture<'a, Result<(), Error>> {
                (**self).outbox_put(id, diff)
            }
            fn outbox_remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
                (**self).outbox_remove(id)
            }
            fn outbox(&self) -> BoxFuture<'_, Result<Vec<(String, Graph)>, Error>> {
                (**self).outbox()
            }
            fn keeps_outbox(&self) -> bool {
                (**self).keeps_outbox()
            }
            fn changes(&self) -> Option<Box<dyn ChangeFeed>> {
                (**self).changes()
            }
        }
    )*};
}

forward_store!(Arc, Box);
