//! What each peer subscribed to (by its gets), bounded, and the part of a
//! write each subscriber gets pushed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use gun_graph::{Graph, Lex};

use super::config::MAX_SOUL_QUERY_SUBSCRIPTIONS;
use crate::message::{Get, SoulQuery};

/// What a get subscribes its sender to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SubTarget {
    /// A soul, or one key of it.
    Soul { soul: String, key: Option<String> },
    /// Every soul matching a lexical query.
    Souls(Lex),
}

pub(super) fn sub_target(get: &Get) -> SubTarget {
    match &get.soul {
        SoulQuery::Exact(s) => SubTarget::Soul {
            soul: s.as_str().to_owned(),
            key: get.exact_key().map(str::to_owned),
        },
        SoulQuery::Lex(l) => SubTarget::Souls(l.clone()),
    }
}

#[derive(Debug)]
struct SoulSub {
    seq: u64,
    all: bool,
    keys: HashSet<String>,
}

/// A peer's subscriptions, bounded, oldest soul evicted first.
#[derive(Debug, Default)]
pub(super) struct Subs {
    souls: HashMap<String, SoulSub>,
    order: BTreeMap<u64, String>,
    lex: VecDeque<Lex>,
    next: u64,
    entries: usize,
}

impl Subs {
    pub(super) fn add(&mut self, t: &SubTarget, max: usize) {
        match t {
            SubTarget::Soul { soul, key } => {
                let seq = self.next;
                self.next += 1;
                let sub = match self.souls.get_mut(soul.as_str()) {
                    Some(s) => {
                        self.order.remove(&s.seq);
                        s.seq = seq;
                        s
                    }
                    None => {
                        self.entries += 1;
                        self.souls.entry(soul.clone()).or_insert(SoulSub {
                            seq,
                            all: false,
                            keys: HashSet::new(),
                        })
                    }
                };
                match key {
                    None => sub.all = true,
                    Some(k) => {
                        if !sub.all && sub.keys.insert(k.clone()) {
                            self.entries += 1;
                        }
                    }
                }
                self.order.insert(seq, soul.clone());
                let max = max.max(1);
                while self.entries > max && self.souls.len() > 1 {
                    let Some((_, old)) = self.order.pop_first() else {
                        break;
                    };
                    if let Some(s) = self.souls.remove(&old) {
                        self.entries -= 1 + s.keys.len();
                        tracing::debug!(soul = %old, "subscription bound reached: dropped the oldest");
                    }
                }
                if self.entries > max {
                    // One soul with too many single-key subscriptions: widen it
                    // to the whole soul (a superset, and bounded).
                    if let Some(s) = self.souls.get_mut(soul.as_str()) {
                        self.entries -= s.keys.len();
                        s.keys = HashSet::new();
                        s.all = true;
                    }
                }
            }
            SubTarget::Souls(l) => {
                if !self.lex.contains(l) {
                    self.lex.push_back(l.clone());
                    if self.lex.len() > MAX_SOUL_QUERY_SUBSCRIPTIONS {
                        self.lex.pop_front();
                    }
                }
            }
        }
    }

    pub(super) fn covers(&self, soul: &str, key: Option<&str>) -> bool {
        if self.lex.iter().any(|l| l.matches(soul)) {
            return true;
        }
        match (self.souls.get(soul), key) {
            (Some(s), _) if s.all => true,
            (Some(s), Some(k)) => s.keys.contains(k),
            _ => false,
        }
    }

    /// The part of `diff` this peer subscribed to.
    pub(super) fn select(&self, diff: &Graph) -> Graph {
        let mut g = Graph::new();
        if self.souls.is_empty() && self.lex.is_empty() {
            return g;
        }
        for (soul, node) in diff.iter() {
            if self.lex.iter().any(|l| l.matches(soul.as_str())) {
                g.insert_node(node.clone());
                continue;
            }
            if let Some(s) = self.souls.get(soul.as_str()) {
                if s.all {
                    g.insert_node(node.clone());
                } else {
                    let n = node.select(s.keys.iter().map(String::as_str));
                    if !n.is_empty() {
                        g.insert_node(n);
                    }
                }
            }
        }
        g
    }
}
