//! What each peer subscribed to (by its gets), bounded, and the part of a
//! write each subscriber gets pushed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use gun_graph::{Graph, Lex};

use super::config::MAX_SOUL_QUERY_SUBSCRIPTIONS;
use crate::message::{Get, SoulQuery};

/// What a get subscribes its sender to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SubTarget {
    /// A soul (interned: see [`intern`]), or one key of it.
    Soul { soul: Arc<str>, key: Option<String> },
    /// Every soul matching a lexical query. Boxed: a `Lex` is about 100 bytes, and every
    /// routed get (kept for the dedup window) holds a `SubTarget`.
    Souls(Box<Lex>),
}

pub(super) fn sub_target(get: &Get) -> SubTarget {
    match &get.soul {
        SoulQuery::Exact(s) => SubTarget::Soul {
            soul: intern(s.as_str()),
            key: get.exact_key().map(str::to_owned),
        },
        SoulQuery::Lex(l) => SubTarget::Souls(Box::new(l.clone())),
    }
}

/// Souls that subscriptions name, one allocation per soul however many peers subscribe
/// to it (100k clients of a chat room hold one copy of its soul, not 100k).
struct Pool {
    souls: HashSet<Arc<str>>,
    /// Size at which souls no subscription holds any more are swept out.
    sweep_at: usize,
}

const POOL_MIN_SWEEP: usize = 1024;

static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(|| {
    Mutex::new(Pool {
        souls: HashSet::new(),
        sweep_at: POOL_MIN_SWEEP,
    })
});

/// The shared copy of `soul`. The pool keeps each soul while anything else holds it, and
/// drops the others whenever it has doubled since the last sweep (amortized O(1)).
pub(super) fn intern(soul: &str) -> Arc<str> {
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = pool.souls.get(soul) {
        return s.clone();
    }
    if pool.souls.len() >= pool.sweep_at {
        pool.souls.retain(|s| Arc::strong_count(s) > 1);
        pool.sweep_at = (pool.souls.len() * 2).max(POOL_MIN_SWEEP);
    }
    let s: Arc<str> = Arc::from(soul);
    pool.souls.insert(s.clone());
    s
}

#[derive(Debug)]
struct SoulSub {
    /// Its place in the subscription order (the latest get for it).
    seq: u64,
    /// `None`: the whole soul; else these keys of it. Boxed: most subscriptions are whole
    /// souls, and every map entry would otherwise hold an empty set's 48 bytes.
    #[allow(clippy::box_collection)]
    keys: Option<Box<HashSet<String>>>,
}

impl SoulSub {
    fn key_count(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.len())
    }
}

/// A peer's subscriptions, bounded, oldest soul evicted first. Held compactly, as every
/// connection of a relay has one: an idle client subscribed to two souls costs two
/// interned pointers, a small map and a small queue.
#[derive(Debug, Default)]
pub(super) struct Subs {
    souls: HashMap<Arc<str>, SoulSub>,
    /// Souls in the order of their gets, as `(seq, soul)`; an entry whose `seq` is no longer
    /// the soul's (asked for again since, or evicted) is stale and skipped.
    order: VecDeque<(u64, Arc<str>)>,
    lex: VecDeque<Lex>,
    next: u64,
    entries: usize,
}

impl Subs {
    /// Subscribes to `t`, keeping at most `max` entries; returns how many souls were
    /// forgotten to stay within it (the oldest first).
    pub(super) fn add(&mut self, t: &SubTarget, max: usize) -> u64 {
        let mut evicted = 0;
        match t {
            SubTarget::Soul { soul, key } => {
                let seq = self.next;
                self.next += 1;
                match self.souls.get_mut(soul) {
                    Some(s) => {
                        s.seq = seq;
                        match (key, &mut s.keys) {
                            (None, keys) => {
                                self.entries -= keys.as_ref().map_or(0, |k| k.len());
                                *keys = None;
                            }
                            (Some(k), Some(keys)) => {
                                if keys.insert(k.clone()) {
                                    self.entries += 1;
                                }
                            }
                            (Some(_), None) => {}
                        }
                    }
                    None => {
                        self.entries += 1 + usize::from(key.is_some());
                        let keys = key.as_ref().map(|k| Box::new(HashSet::from([k.clone()])));
                        self.souls.insert(soul.clone(), SoulSub { seq, keys });
                    }
                }
                self.order.push_back((seq, soul.clone()));
                let max = max.max(1);
                while self.entries > max && self.souls.len() > 1 {
                    let Some((old_seq, old)) = self.order.pop_front() else {
                        break;
                    };
                    if self.souls.get(&old).is_some_and(|s| s.seq == old_seq)
                        && let Some(s) = self.souls.remove(&old)
                    {
                        self.entries -= 1 + s.key_count();
                        evicted += 1;
                        tracing::debug!(soul = %old, "subscription bound reached: dropped the oldest");
                    }
                }
                if self.entries > max {
                    // One soul with too many single-key subscriptions: widen it
                    // to the whole soul (a superset, and bounded).
                    if let Some(s) = self.souls.get_mut(soul) {
                        self.entries -= s.key_count();
                        s.keys = None;
                    }
                }
                if self.order.len() > 2 * self.souls.len() + 8 {
                    let souls = &self.souls;
                    self.order
                        .retain(|(seq, s)| souls.get(s).is_some_and(|sub| sub.seq == *seq));
                }
            }
            SubTarget::Souls(l) => {
                if !self.lex.contains(l) {
                    self.lex.push_back(Lex::clone(l));
                    if self.lex.len() > MAX_SOUL_QUERY_SUBSCRIPTIONS {
                        self.lex.pop_front();
                        evicted += 1;
                    }
                }
            }
        }
        evicted
    }

    pub(super) fn covers(&self, soul: &str, key: Option<&str>) -> bool {
        if self.lex.iter().any(|l| l.matches(soul)) {
            return true;
        }
        match (self.souls.get(soul), key) {
            (Some(SoulSub { keys: None, .. }), _) => true,
            (
                Some(SoulSub {
                    keys: Some(keys), ..
                }),
                Some(k),
            ) => keys.contains(k),
            _ => false,
        }
    }

    /// The souls subscribed to by name (whole or some keys).
    pub(super) fn soul_names(&self) -> impl Iterator<Item = &str> {
        self.souls.keys().map(|s| &**s)
    }

    /// Whether `soul` is subscribed to by name (whole or some keys).
    pub(super) fn names(&self, soul: &str) -> bool {
        self.souls.contains_key(soul)
    }

    /// Whether any lexical subscription is held.
    pub(super) fn has_lex(&self) -> bool {
        !self.lex.is_empty()
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
                match &s.keys {
                    None => {
                        g.insert_node(node.clone());
                    }
                    Some(keys) => {
                        let n = node.select(keys.iter().map(String::as_str));
                        if !n.is_empty() {
                            g.insert_node(n);
                        }
                    }
                }
            }
        }
        g
    }
}

// Tests may panic on unexpected values.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn soul(s: &str) -> SubTarget {
        SubTarget::Soul {
            soul: intern(s),
            key: None,
        }
    }

    fn key(s: &str, k: &str) -> SubTarget {
        SubTarget::Soul {
            soul: intern(s),
            key: Some(k.to_owned()),
        }
    }

    #[test]
    fn the_oldest_soul_goes_first_and_a_new_get_renews_one() {
        let mut subs = Subs::default();
        subs.add(&soul("a"), 3);
        subs.add(&soul("b"), 3);
        subs.add(&soul("c"), 3);
        // `a` asked for again: now the newest.
        assert_eq!(subs.add(&soul("a"), 3), 0);
        assert_eq!(subs.add(&soul("d"), 3), 1, "one soul forgotten");
        assert!(!subs.covers("b", None), "b was the oldest");
        for s in ["a", "c", "d"] {
            assert!(subs.covers(s, Some("x")), "{s} kept");
        }
        // Renewals many times over do not grow the order queue without bound.
        for _ in 0..1000 {
            subs.add(&soul("c"), 3);
        }
        assert!(subs.order.len() <= 2 * subs.souls.len() + 9);
        assert!(subs.covers("a", None) && subs.covers("d", None));
    }

    #[test]
    fn keys_count_and_widen_to_the_whole_soul() {
        let mut subs = Subs::default();
        subs.add(&key("s", "k1"), 3);
        subs.add(&key("s", "k2"), 3);
        assert!(subs.covers("s", Some("k1")) && !subs.covers("s", Some("k3")));
        // A fourth entry on one soul: widened to all of it (a superset).
        subs.add(&key("s", "k3"), 3);
        assert!(subs.covers("s", Some("anything")));
        assert_eq!(subs.entries, 1);
        // A whole-soul get replaces its keys.
        subs.add(&key("t", "k"), 3);
        subs.add(&soul("t"), 3);
        assert!(subs.covers("t", Some("other")));
        assert_eq!(subs.entries, 2);
    }

    #[test]
    fn souls_are_shared_between_peers() {
        let a = intern("shared/room");
        let b = intern("shared/room");
        assert!(Arc::ptr_eq(&a, &b));
        let mut p1 = Subs::default();
        let mut p2 = Subs::default();
        p1.add(&soul("shared/room"), 10);
        p2.add(&soul("shared/room"), 10);
        let k1 = p1.souls.keys().next().unwrap();
        let k2 = p2.souls.keys().next().unwrap();
        assert!(Arc::ptr_eq(k1, k2));
    }
}
