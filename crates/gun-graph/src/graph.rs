use std::collections::BTreeMap;
use std::collections::btree_map;
use std::sync::Arc;

use gun_ham::{Decision, Ignored, State};

use crate::Error;
use crate::node::{Entry, Node};
use crate::value::{Soul, Value};

/// A graph: nodes by soul. The body of a put, a get reply, or a peer's cache.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    nodes: BTreeMap<Soul, Node>,
}

/// A write held back because its state is ahead of the machine clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    /// The node.
    pub soul: Soul,
    /// The key.
    pub key: Arc<str>,
    /// The write's state; merge it again once the clock reaches it.
    pub state: State,
    /// The value.
    pub value: Value,
}

/// Why HAM turned a key down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Older than the current state.
    Historical,
    /// Same state, same value.
    Identical,
    /// Same state, and the current value wins the tie-break.
    TieLost,
}

/// A key HAM turned down.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The node.
    pub soul: Soul,
    /// The key.
    pub key: Arc<str>,
    /// Why.
    pub reason: Rejection,
}

/// What [`Graph::merge`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Merge {
    /// The keys that were applied: what must be stored, pushed to subscribers
    /// and announced. Empty when nothing changed.
    pub accepted: Graph,
    /// Writes whose state is in the future, to merge again when it is due.
    pub deferred: Vec<Deferred>,
    /// Keys that did not change anything.
    pub rejected: Vec<Rejected>,
}

impl Merge {
    /// Whether nothing was accepted, deferred or rejected.
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty() && self.deferred.is_empty() && self.rejected.is_empty()
    }

    /// The earliest state among the deferred writes.
    pub fn next_due(&self) -> Option<State> {
        self.deferred.iter().map(|d| d.state).min()
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// The node with `soul`.
    pub fn get(&self, soul: &str) -> Option<&Node> {
        self.nodes.get(soul)
    }

    /// The node with `soul`, mutably.
    pub fn get_mut(&mut self, soul: &str) -> Option<&mut Node> {
        self.nodes.get_mut(soul)
    }

    /// The node with `soul`, created empty if absent.
    pub fn node_mut(&mut self, soul: &Soul) -> &mut Node {
        match self.nodes.entry(soul.clone()) {
            btree_map::Entry::Occupied(o) => o.into_mut(),
            btree_map::Entry::Vacant(v) => v.insert(Node::new(soul.clone())),
        }
    }

    /// Sets one key without HAM (for building a put). The key `_` is reserved.
    pub fn put(
        &mut self,
        soul: Soul,
        key: impl Into<Arc<str>>,
        state: State,
        value: Value,
    ) -> Result<(), Error> {
        match self.nodes.entry(soul) {
            btree_map::Entry::Occupied(mut o) => o.get_mut().insert(key, state, value)?,
            btree_map::Entry::Vacant(v) => {
                let mut n = Node::new(v.key().clone());
                n.insert(key, state, value)?;
                v.insert(n);
                None
            }
        };
        Ok(())
    }

    /// Adds or replaces a whole node.
    pub fn insert_node(&mut self, node: Node) -> Option<Node> {
        self.nodes.insert(node.soul().clone(), node)
    }

    /// Removes a node.
    pub fn remove(&mut self, soul: &str) -> Option<Node> {
        self.nodes.remove(soul)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Total number of keys over all nodes.
    pub fn key_count(&self) -> usize {
        self.nodes.values().map(Node::len).sum()
    }

    /// Nodes in soul order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Soul, &Node)> + '_ {
        self.nodes.iter()
    }

    /// Nodes in soul order, as values.
    pub fn nodes(&self) -> impl DoubleEndedIterator<Item = &Node> + '_ {
        self.nodes.values()
    }

    /// Souls in order.
    pub fn souls(&self) -> impl Iterator<Item = &Soul> + '_ {
        self.nodes.keys()
    }

    /// Nodes whose soul lies in the given byte range (used by soul queries).
    /// The nodes whose souls sort after `soul` (byte order of the souls' text,
    /// the order of [`Graph::nodes`]), in that order; from the first node when
    /// `soul` is `None`.
    pub fn nodes_after<'a>(&'a self, soul: Option<&'a str>) -> impl Iterator<Item = &'a Node> + 'a {
        use std::ops::Bound;
        let lower = soul.map_or(Bound::Unbounded, Bound::Excluded);
        self.nodes
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(_, n)| n)
    }

    pub(crate) fn range_from<'a>(
        &'a self,
        start: &'a str,
    ) -> impl Iterator<Item = (&'a Soul, &'a Node)> + 'a {
        self.nodes
            .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
    }

    /// Merges one key through HAM, applying it here when accepted.
    pub fn merge_key(
        &mut self,
        soul: &Soul,
        key: &Arc<str>,
        state: State,
        value: &Value,
        machine: State,
    ) -> Decision {
        if let Some(n) = self.nodes.get_mut(soul.as_str()) {
            return n.merge_key(key, state, value, machine);
        }
        let mut n = Node::new(soul.clone());
        let d = n.merge_key(key, state, value, machine);
        if d.is_accept() {
            self.nodes.insert(soul.clone(), n);
        }
        d
    }

    /// Merges `incoming` into this graph through HAM at machine state `machine`
    /// (the state generator's value now).
    ///
    /// Returns what was accepted (now applied here), what was deferred (state in
    /// the future: merge it again when due) and what was rejected. Merging is
    /// idempotent and, for the final graph, independent of the order in which
    /// writes arrive.
    pub fn merge(&mut self, incoming: &Graph, machine: State) -> Merge {
        let mut out = Merge::default();
        for (soul, node) in &incoming.nodes {
            let mut accepted: Option<Node> = None;
            let target = self.node_mut(soul);
            for (key, e) in node.iter() {
                match target.merge_key(key, e.state, &e.value, machine) {
                    Decision::Accept => {
                        accepted
                            .get_or_insert_with(|| Node::new(soul.clone()))
                            .insert_entry(key.clone(), e.clone());
                    }
                    Decision::Defer { .. } => out.deferred.push(Deferred {
                        soul: soul.clone(),
                        key: key.clone(),
                        state: e.state,
                        value: e.value.clone(),
                    }),
                    Decision::Historical => out.rejected.push(Rejected {
                        soul: soul.clone(),
                        key: key.clone(),
                        reason: Rejection::Historical,
                    }),
                    Decision::Ignore(why) => out.rejected.push(Rejected {
                        soul: soul.clone(),
                        key: key.clone(),
                        reason: match why {
                            Ignored::Identical => Rejection::Identical,
                            Ignored::TieLost => Rejection::TieLost,
                        },
                    }),
                }
            }
            if target.is_empty() {
                // Nothing of this soul was known or accepted: don't keep an empty node.
                self.nodes.remove(soul.as_str());
            }
            if let Some(n) = accepted {
                out.accepted.nodes.insert(soul.clone(), n);
            }
        }
        out
    }

    /// What [`Graph::merge`] would do, without changing this graph: the diff to
    /// write to storage first, so that nothing is applied when the write fails.
    pub fn preview(&self, incoming: &Graph, machine: State) -> Merge {
        let mut out = Merge::default();
        for (soul, node) in &incoming.nodes {
            let current = self.nodes.get(soul.as_str());
            let mut accepted: Option<Node> = None;
            for (key, e) in node.iter() {
                let cur = current
                    .and_then(|n| n.get(key))
                    .map(|c| (c.state, &c.value));
                match gun_ham::decide(machine, e.state, &e.value, cur) {
                    Decision::Accept => accepted
                        .get_or_insert_with(|| Node::new(soul.clone()))
                        .insert_entry(key.clone(), e.clone()),
                    Decision::Defer { .. } => out.deferred.push(Deferred {
                        soul: soul.clone(),
                        key: key.clone(),
                        state: e.state,
                        value: e.value.clone(),
                    }),
                    Decision::Historical => out.rejected.push(Rejected {
                        soul: soul.clone(),
                        key: key.clone(),
                        reason: Rejection::Historical,
                    }),
                    Decision::Ignore(why) => out.rejected.push(Rejected {
                        soul: soul.clone(),
                        key: key.clone(),
                        reason: match why {
                            Ignored::Identical => Rejection::Identical,
                            Ignored::TieLost => Rejection::TieLost,
                        },
                    }),
                }
            }
            if let Some(n) = accepted {
                out.accepted.nodes.insert(soul.clone(), n);
            }
        }
        out
    }

    /// Merges a deferred write again (when its state is due).
    pub fn merge_deferred(&mut self, d: &Deferred, machine: State) -> Decision {
        self.merge_key(&d.soul, &d.key, d.state, &d.value, machine)
    }
}

impl Node {
    pub(crate) fn insert_entry(&mut self, key: Arc<str>, e: Entry) {
        // Keys inside a Node never include "_" (checked where they enter).
        let _ = self.insert(key, e.state, e.value);
    }
}

impl FromIterator<Node> for Graph {
    fn from_iter<I: IntoIterator<Item = Node>>(iter: I) -> Graph {
        let mut g = Graph::new();
        for n in iter {
            g.insert_node(n);
        }
        g
    }
}

impl IntoIterator for Graph {
    type Item = (Soul, Node);
    type IntoIter = btree_map::IntoIter<Soul, Node>;
    fn into_iter(self) -> Self::IntoIter {
        self.nodes.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(ms: f64) -> State {
        State::new(ms).unwrap_or(State::MIN)
    }
    fn soul(s: &str) -> Soul {
        Soul::new(s).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn merge_reports_accepted_deferred_rejected() {
        let mut g = Graph::new();
        let mut first = Graph::new();
        first.put(soul("a"), "x", st(10.0), Value::from(1)).ok();
        first.put(soul("a"), "y", st(10.0), Value::from("b")).ok();
        let m = g.merge(&first, st(100.0));
        assert_eq!(m.accepted, first);
        assert!(m.deferred.is_empty() && m.rejected.is_empty());

        let mut second = Graph::new();
        second.put(soul("a"), "x", st(9.0), Value::from(2)).ok(); // historical
        second.put(soul("a"), "y", st(10.0), Value::from("a")).ok(); // tie lost
        second.put(soul("a"), "z", st(500.0), Value::Null).ok(); // future
        second.put(soul("b"), "k", st(11.0), Value::Bool(true)).ok(); // new
        let m = g.merge(&second, st(100.0));
        assert_eq!(m.accepted.len(), 1);
        assert_eq!(
            m.accepted.get("b").and_then(|n| n.value("k")),
            Some(&Value::Bool(true))
        );
        assert_eq!(m.deferred.len(), 1);
        assert_eq!(m.next_due(), Some(st(500.0)));
        let reasons: Vec<Rejection> = m.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, vec![Rejection::Historical, Rejection::TieLost]);
        assert_eq!(g.get("a").and_then(|n| n.value("z")), None);

        // When due, the deferred write applies.
        let d = m.deferred[0].clone();
        assert_eq!(g.merge_deferred(&d, st(500.0)), Decision::Accept);
        assert_eq!(g.get("a").and_then(|n| n.value("z")), Some(&Value::Null));
    }

    #[test]
    fn preview_predicts_merge_without_applying() {
        let mut g = Graph::new();
        let mut a = Graph::new();
        a.put(soul("a"), "x", st(10.0), Value::from(1)).ok();
        g.merge(&a, st(100.0));
        let mut b = Graph::new();
        b.put(soul("a"), "x", st(11.0), Value::from(2)).ok();
        b.put(soul("a"), "y", st(9.0), Value::from(3)).ok();
        b.put(soul("c"), "z", st(200.0), Value::from(4)).ok();
        let before = g.clone();
        let p = g.preview(&b, st(100.0));
        assert_eq!(g, before);
        let m = g.merge(&b, st(100.0));
        assert_eq!(p, m);
    }

    #[test]
    fn merge_of_only_rejected_keys_leaves_no_empty_node() {
        let mut g = Graph::new();
        let mut fut = Graph::new();
        fut.put(soul("s"), "k", st(1e15), Value::Null).ok();
        let m = g.merge(&fut, st(1.0));
        assert_eq!(m.deferred.len(), 1);
        assert!(g.is_empty());
    }
}
