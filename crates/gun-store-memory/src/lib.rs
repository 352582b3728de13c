//! # gun-store-memory: a gun-rs [`Store`] in memory
//!
//! A [`Graph`] behind a read-write lock. Puts merge through HAM (newer state wins,
//! equal state: greater JSON text wins) and are visible at once; lexical reads are
//! [`gun_graph::lex::query_graph`] itself. Nothing is written anywhere: the store
//! is **not durable** and starts empty every time (it declares `durable = false` to
//! the conformance suite, which then skips only the reopen test). Use it for tests,
//! for peers that keep nothing, and as the reference the other backends are
//! compared with.
//!
//! ```
//! use gun_graph::{Graph, Lex, Soul, State, Value};
//! use gun_store::Store;
//! use gun_store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let mut diff = Graph::new();
//! for fruit in ["apple", "apricot", "banana"] {
//!     diff.put(Soul::new("fruit")?, fruit, State::new(1.0)?, Value::from(fruit.len() as u32))?;
//! }
//! store.put(&diff).await?;
//!
//! let ap = store.query(&Lex::exact("fruit"), &Lex::prefix("ap"), None).await?;
//! assert_eq!(ap.get("fruit").map(|n| n.len()), Some(2));
//! assert_eq!(store.stats().await?.keys, 3);
//! # Ok(()) }
//! ```

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use gun_graph::{Graph, Lex, Node, lex};
use gun_store::{BoxFuture, Error, Store, StoreStats, machine_state};

/// An in-memory [`Store`]: a [`Graph`] behind a lock. Not durable.
#[derive(Debug, Default)]
pub struct MemoryStore {
    graph: RwLock<Graph>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding `graph` (taken as it is, without HAM).
    pub fn from_graph(graph: Graph) -> MemoryStore {
        MemoryStore {
            graph: RwLock::new(graph),
        }
    }

    /// A copy of everything stored.
    pub fn to_graph(&self) -> Graph {
        self.read().clone()
    }

    // A panic while a guard is held cannot leave the graph half-merged in a way
    // that matters more than losing the store, so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, Graph> {
        self.graph.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Graph> {
        self.graph.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move { Ok(self.read().get(soul).filter(|n| !n.is_empty()).cloned()) })
    }

    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        Box::pin(async move {
            Ok(self
                .read()
                .get(soul)
                .map(|n| n.select([key]))
                .filter(|n| !n.is_empty()))
        })
    }

    fn query<'a>(
        &'a self,
        souls: &'a Lex,
        keys: &'a Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move { Ok(lex::query_graph(&self.read(), souls, keys, budget)) })
    }

    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move { Ok(self.write().merge(diff, machine_state()).accepted) })
    }

    fn scan<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Node>>, Error>> {
        Box::pin(async move {
            let g = self.read();
            Ok(Some(g.nodes_after(after).take(limit).cloned().collect()))
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// Souls, keys, and the graph's approximate heap bytes (a walk over all nodes).
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
        Box::pin(async move {
            let g = self.read();
            let bytes = g.nodes().map(|n| n.approx_bytes() as u64).sum();
            Ok(StoreStats::new(g.len() as u64, g.key_count() as u64, bytes))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gun_graph::{Soul, State, Value};

    #[tokio::test]
    async fn usable_as_trait_object() {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
        let mut d = Graph::new();
        d.put(
            Soul::new("s").unwrap(),
            "k",
            State::new(1.0).unwrap(),
            Value::Null,
        )
        .unwrap();
        store.put(&d).await.unwrap();
        assert_eq!(store.get_node("s").await.unwrap().map(|n| n.len()), Some(1));
    }
}
