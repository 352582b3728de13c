//! The engine's cache of nodes, kept from the store's answers.
//!
//! The store is the authority for a write: [`gun_store::Store::put`] answers
//! the keys it applied, and the cache is updated from that answer with one HAM
//! pass per key. A soul enters the cache only whole, read from the store
//! ([`Engine::ensure_loaded`]); a write to a soul that is not cached does not
//! put the write alone in the cache: the soul is read whole after the write,
//! off its path, while the cache has room (`puts.rs`), or by the next read. Answers are
//! merged, never copied over, so a late answer never replaces a newer value
//! that another write put in the cache first; and an answer that arrives while
//! the soul is being loaded is kept and merged into the loaded node, so a load
//! that read the store before the write cannot bring the older value back.

use std::collections::HashMap;

use gun_graph::{Graph, Node, Soul, State};
use gun_store::machine_state;

use super::{Engine, Shared};
use crate::Error;

/// The cached nodes, by soul: a hash map, since the cache is only ever looked
/// up by exact soul (a `Graph`'s ordered map took ~30 string comparisons, 1,600
/// instructions, to find one soul among 20,000; a hash lookup takes a tenth).
#[derive(Debug, Default)]
pub(super) struct Cache {
    nodes: HashMap<Soul, Node>,
}

impl Cache {
    /// The cached node of `soul`.
    pub(super) fn get(&self, soul: &str) -> Option<&Node> {
        self.nodes.get(soul)
    }

    /// Caches `node` (replacing any cached node of its soul).
    pub(super) fn insert_node(&mut self, node: Node) {
        self.nodes.insert(node.soul().clone(), node);
    }

    /// Drops the node of `soul`.
    pub(super) fn remove(&mut self, soul: &str) {
        self.nodes.remove(soul);
    }

    /// Number of souls cached.
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Merges `incoming` through HAM at machine state `machine`, as
    /// [`Graph::merge`] does (a soul left without keys is not kept).
    pub(super) fn merge(&mut self, incoming: &Graph, machine: State) {
        for (soul, node) in incoming.iter() {
            let target = self
                .nodes
                .entry(soul.clone())
                .or_insert_with(|| Node::new(soul.clone()));
            for (key, e) in node.iter() {
                target.merge_key(key, e.state, &e.value, machine);
            }
            if target.is_empty() {
                self.nodes.remove(soul.as_str());
            }
        }
    }
}

/// A load of one soul in flight (see [`Shared::loading`]).
#[derive(Default)]
pub(super) struct Loading {
    /// Loads of this soul in flight.
    loads: usize,
    /// What writes applied to the soul since the first load began.
    applied: Option<Node>,
}

impl Engine {
    /// Loads the souls of `souls` that are not cached from the store.
    pub(super) async fn ensure_loaded<'a>(
        &self,
        souls: impl Iterator<Item = &'a Soul>,
    ) -> Result<(), Error> {
        let (missing, mut gaps) = {
            let mut sh = self.lock();
            let missing: Vec<Soul> = souls
                .filter(|s| sh.graph.get(s.as_str()).is_none())
                .cloned()
                .collect();
            for s in &missing {
                sh.loading.entry(s.clone()).or_default().loads += 1;
            }
            (missing, sh.gaps)
        };
        let mut result = Ok(());
        for soul in &missing {
            // After a failed read, the other souls are released unread.
            let mut read = if result.is_ok() {
                self.inner.store.get_node(soul.as_str()).await
            } else {
                Ok(None)
            };
            // A gap in a shared store's change feed during the read
            // (`external.rs`): what was read may lack changes the feed missed;
            // read again, a few times at most.
            for _ in 0..3 {
                let now = self.lock().gaps;
                if now == gaps || read.is_err() || result.is_err() {
                    break;
                }
                gaps = now;
                read = self.inner.store.get_node(soul.as_str()).await;
            }
            let mut sh = self.lock();
            let applied = finish_load(&mut sh, soul);
            if sh.gaps != gaps && result.is_ok() && read.is_ok() {
                result = Err(Error::Storage(
                    "the store's change feed kept reconnecting during the read".to_owned(),
                ));
                continue;
            }
            match read {
                Ok(node) if result.is_ok() => {
                    if sh.graph.get(soul.as_str()).is_none() {
                        let mut node = node.unwrap_or_else(|| Node::new(soul.clone()));
                        if let Some(applied) = applied {
                            let mut g = Graph::new();
                            g.insert_node(applied);
                            let mut whole = Graph::new();
                            whole.insert_node(node);
                            whole.merge(&g, machine_state());
                            node = whole
                                .remove(soul.as_str())
                                .unwrap_or_else(|| Node::new(soul.clone()));
                        }
                        sh.graph.insert_node(node);
                        sh.cache_order.push_back(soul.clone());
                        evict(&mut sh, self.inner.opts.cache_souls);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%soul, %e, "load from the store failed");
                    result = Err(e.into());
                }
            }
        }
        result
    }
}

/// Keeps `node` (keys the store applied) for the load of its soul in flight,
/// if any: merged into the loaded node before it is cached.
pub(super) fn note_while_loading(sh: &mut Shared, node: &Node) {
    let soul = node.soul();
    if let Some(l) = sh.loading.get_mut(soul.as_str()) {
        let mut g = Graph::new();
        if let Some(prev) = l.applied.take() {
            g.insert_node(prev);
        }
        let mut one = Graph::new();
        one.insert_node(node.clone());
        g.merge(&one, machine_state());
        l.applied = g.remove(soul.as_str());
    }
}

/// Ends one load of `soul`; returns what writes applied while it loaded when
/// it was the last load in flight.
fn finish_load(sh: &mut Shared, soul: &Soul) -> Option<Node> {
    let entry = sh.loading.get_mut(soul.as_str())?;
    entry.loads = entry.loads.saturating_sub(1);
    if entry.loads == 0 {
        return sh.loading.remove(soul.as_str()).and_then(|l| l.applied);
    }
    entry.applied.clone()
}

/// Updates the cache from a store's answer (the keys the store applied): one
/// HAM pass per key against the cached node. Returns what changed here — the
/// part to announce to listeners and subscribers: for a cached soul the keys
/// the cache now holds as the store answered them (a late answer loses to a
/// newer value already cached; a value a racing load cached first is still
/// news); for a soul not cached, the store's answer as is (kept for a load in
/// flight).
pub(super) fn apply_answer(sh: &mut Shared, answer: Graph) -> Graph {
    let mut cached = Graph::new();
    let mut changed = Graph::new();
    for (soul, node) in answer {
        if sh.graph.get(soul.as_str()).is_some() {
            cached.insert_node(node);
            continue;
        }
        note_while_loading(sh, &node);
        changed.insert_node(node);
    }
    for (_, n) in merge_news(sh, &cached) {
        changed.insert_node(n);
    }
    changed
}

/// Merges `cached` (nodes of cached souls) into the cache through HAM and
/// returns the news: the keys the cache now holds as `cached` has them,
/// whether this merge put them there or a load did. A load may read the store
/// after the store applied a write and before the write reaches this merge,
/// so the cache can hold it already and the merge change nothing; it is still
/// news for listeners and peers. Keys where the cache holds something newer
/// are left out.
pub(super) fn merge_news(sh: &mut Shared, cached: &Graph) -> Graph {
    let mut news = Graph::new();
    if cached.is_empty() {
        return news;
    }
    sh.graph.merge(cached, machine_state());
    for (soul, node) in cached.iter() {
        let Some(now) = sh.graph.get(soul.as_str()) else {
            continue;
        };
        let mut n = Node::new(soul.clone());
        for (key, e) in node.iter() {
            if now
                .get(key)
                .is_some_and(|c| c.state == e.state && c.value == e.value)
            {
                // Keys of a node are never `_`, the only key insert refuses.
                let _ = n.insert(key.clone(), e.state, e.value.clone());
            }
        }
        if !n.is_empty() {
            news.insert_node(n);
        }
    }
    news
}

/// Keeps the cache within `max` souls, dropping the oldest first; souls with
/// local listeners stay.
pub(super) fn evict(sh: &mut Shared, max: usize) {
    let mut guard = sh.cache_order.len();
    while sh.graph.len() > max && guard > 0 {
        guard -= 1;
        let Some(soul) = sh.cache_order.pop_front() else {
            break;
        };
        if sh.listeners.contains_key(soul.as_str()) {
            sh.cache_order.push_back(soul);
            continue;
        }
        sh.graph.remove(soul.as_str());
    }
    // Souls removed by merges (empty nodes) leave stale entries behind; keep the
    // queue from growing past the cache by much.
    if sh.cache_order.len() > max.saturating_mul(2).max(1024) {
        let graph = &sh.graph;
        sh.cache_order.retain(|s| graph.get(s.as_str()).is_some());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use gun_graph::Value;

    use super::*;

    fn one(soul: &str, key: &str, state: f64, v: Value) -> Graph {
        let mut g = Graph::new();
        g.put(Soul::new(soul).unwrap(), key, State::new(state).unwrap(), v)
            .unwrap();
        g
    }

    /// The cache merges as a `Graph` does: HAM per key, nothing kept for a
    /// soul that gained no key.
    #[test]
    fn the_cache_merges_as_a_graph_does() {
        let machine = State::new(1e15).unwrap();
        let mut cache = Cache::default();
        let mut graph = Graph::new();
        let writes = [
            one("a", "x", 5.0, Value::from("five")),
            one("a", "x", 3.0, Value::from("older")),
            one("a", "y", 1.0, Value::from(true)),
            one("b", "x", 2.0, Value::from(2)),
            one("a", "x", 5.0, Value::from("fivf")),
            one("c", "x", 2e15, Value::from("future")),
        ];
        for w in &writes {
            cache.merge(w, machine);
            graph.merge(w, machine);
        }
        assert_eq!(cache.len(), graph.len());
        assert_eq!(cache.len(), 2, "the future-only soul is not kept");
        for soul in ["a", "b", "c"] {
            assert_eq!(cache.get(soul), graph.get(soul), "{soul}");
        }
        assert_eq!(
            cache.get("a").unwrap().value("x"),
            Some(&Value::from("fivf")),
            "a tie goes to the greater JSON text"
        );
        cache.remove("a");
        assert!(cache.get("a").is_none());
        cache.insert_node(graph.get("a").unwrap().clone());
        assert_eq!(cache.get("a"), graph.get("a"));
    }
}
