//! A node's keys: a sorted vector while the node is small, a B-tree once it grows.
//!
//! Almost every node that crosses the wire or sits in a cache has a handful of
//! keys (a user's profile, one item of a list). For those a `BTreeMap` costs a
//! 500-byte tree node, a sort-and-dedup pass to build and a walk to drop, for
//! every node of every put. A vector sorted by key is one allocation, is built
//! from the parsed keys in place (already in order when the sender wrote them
//! so) and is found in by binary search. A node that grows past [`SMALL_MAX`]
//! keys (a `set()` list with thousands of items) moves to a `BTreeMap`, so an
//! insert never shifts more than [`SMALL_MAX`] entries.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::node::Entry;

/// The most keys held in the sorted vector; one more moves the node to a B-tree.
pub(crate) const SMALL_MAX: usize = 32;

/// A node's keys and entries, in ascending byte order of the keys.
#[derive(Debug, Clone)]
pub(crate) enum Entries {
    /// Sorted by key, keys unique, at most [`SMALL_MAX`] entries.
    Small(Vec<(Arc<str>, Entry)>),
    /// More than [`SMALL_MAX`] keys (it stays a tree if it shrinks again).
    Large(BTreeMap<Arc<str>, Entry>),
}

impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Default for Entries {
    fn default() -> Entries {
        Entries::Small(Vec::new())
    }
}

/// `a < b` as `str` orders them (by bytes), in a loop: keys are a few bytes,
/// shorter than a call to memcmp.
fn less(a: &str, b: &str) -> bool {
    match a.bytes().zip(b.bytes()).find(|(x, y)| x != y) {
        Some((x, y)) => x < y,
        None => a.len() < b.len(),
    }
}

impl Entries {
    /// Entries in any order, keys possibly repeated: sorted, and of equal keys
    /// the last one kept (as `JSON.parse` keeps the last of duplicate keys).
    pub(crate) fn from_unsorted(mut v: Vec<(Arc<str>, Entry)>) -> Entries {
        // A stable sort keeps duplicates in their order; already-sorted input
        // (the common case) is one pass.
        if !v.windows(2).all(|w| less(&w[0].0, &w[1].0)) {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            // Keep the last of each run of equal keys.
            let mut w = 0;
            for r in 0..v.len() {
                if r + 1 < v.len() && v[r].0 == v[r + 1].0 {
                    continue;
                }
                v.swap(w, r);
                w += 1;
            }
            v.truncate(w);
        }
        if v.len() > SMALL_MAX {
            Entries::Large(v.into_iter().collect())
        } else {
            Entries::Small(v)
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Entries::Small(v) => v.len(),
            Entries::Large(m) => m.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find(v: &[(Arc<str>, Entry)], key: &str) -> Result<usize, usize> {
        v.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.get_key_value(key).map(|(_, e)| e)
    }

    pub(crate) fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &Entry)> {
        match self {
            Entries::Small(v) => Self::find(v, key).ok().map(|i| (&v[i].0, &v[i].1)),
            Entries::Large(m) => m.get_key_value(key),
        }
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        match self {
            Entries::Small(v) => Self::find(v, key).ok().map(|i| &mut v[i].1),
            Entries::Large(m) => m.get_mut(key),
        }
    }

    /// Sets `key`, returning the entry it replaced.
    pub(crate) fn insert(&mut self, key: Arc<str>, e: Entry) -> Option<Entry> {
        match self {
            Entries::Small(v) => match Self::find(v, &key) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, e)),
                Err(i) => {
                    if v.len() < SMALL_MAX {
                        if v.len() == v.capacity() {
                            // Grow by a quarter, not double: nodes are built key
                            // by key into caches and stores, where a doubled
                            // vector would hold up to half its bytes unused.
                            v.reserve_exact((v.len() / 4).max(2));
                        }
                        v.insert(i, (key, e));
                    } else {
                        let mut m: BTreeMap<Arc<str>, Entry> =
                            std::mem::take(v).into_iter().collect();
                        m.insert(key, e);
                        *self = Entries::Large(m);
                    }
                    None
                }
            },
            Entries::Large(m) => m.insert(key, e),
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        match self {
            Entries::Small(v) => Self::find(v, key).ok().map(|i| v.remove(i).1),
            Entries::Large(m) => m.remove(key),
        }
    }

    /// All entries in key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        match self {
            Entries::Small(v) => Iter::Small(v.iter()),
            Entries::Large(m) => {
                Iter::Large(m.range::<str, _>((Bound::Unbounded, Bound::Unbounded)))
            }
        }
    }

    /// The entries whose keys are within `bounds`, in key order.
    pub(crate) fn range(&self, bounds: (Bound<&str>, Bound<&str>)) -> Iter<'_> {
        match self {
            Entries::Small(v) => {
                let start = match bounds.0 {
                    Bound::Included(s) => v.partition_point(|(k, _)| &**k < s),
                    Bound::Excluded(s) => v.partition_point(|(k, _)| &**k <= s),
                    Bound::Unbounded => 0,
                };
                let end = match bounds.1 {
                    Bound::Included(s) => v.partition_point(|(k, _)| &**k <= s),
                    Bound::Excluded(s) => v.partition_point(|(k, _)| &**k < s),
                    Bound::Unbounded => v.len(),
                };
                Iter::Small(v[start..end.max(start)].iter())
            }
            Entries::Large(m) => Iter::Large(m.range::<str, _>(bounds)),
        }
    }
}

/// An iterator over entries in key order (either form).
pub(crate) enum Iter<'a> {
    Small(std::slice::Iter<'a, (Arc<str>, Entry)>),
    Large(std::collections::btree_map::Range<'a, Arc<str>, Entry>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Arc<str>, &'a Entry);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(i) => i.next().map(|(k, e)| (k, e)),
            Iter::Large(i) => i.next(),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Small(i) => i.size_hint(),
            Iter::Large(i) => i.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(i) => i.next_back().map(|(k, e)| (k, e)),
            Iter::Large(i) => i.next_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Value;
    use gun_ham::State;

    fn e(n: f64) -> Entry {
        Entry {
            state: State::new(1.0).unwrap(),
            value: Value::Number(n),
        }
    }

    fn keys(x: &Entries) -> Vec<String> {
        x.iter().map(|(k, _)| k.to_string()).collect()
    }

    /// Both forms against a `BTreeMap` reference, through the switch.
    #[test]
    fn behaves_like_a_btreemap_through_the_switch() {
        let mut x = Entries::default();
        let mut r: BTreeMap<Arc<str>, Entry> = BTreeMap::new();
        for i in 0..200u32 {
            // A scrambled order of keys, some repeated.
            let k: Arc<str> = Arc::from(format!("k{:03}", (i * 37) % 101).as_str());
            assert_eq!(x.insert(k.clone(), e(i as f64)), r.insert(k, e(i as f64)));
            assert_eq!(x.len(), r.len());
            if i % 7 == 0 {
                let gone = format!("k{:03}", (i * 13) % 101);
                assert_eq!(x.remove(&gone), r.remove(gone.as_str()));
            }
            assert!(x.iter().eq(r.iter()));
            assert!(x.iter().rev().eq(r.iter().rev()));
            for probe in ["", "k050", "k0505", "k100", "z"] {
                assert_eq!(x.get(probe), r.get(probe));
                for b in [
                    (Bound::Included(probe), Bound::Unbounded),
                    (Bound::Excluded(probe), Bound::Unbounded),
                    (Bound::Unbounded, Bound::Excluded(probe)),
                    (Bound::Unbounded, Bound::Included(probe)),
                    (Bound::Included("k020"), Bound::Excluded(probe)),
                ] {
                    if matches!((b.0, b.1), (Bound::Included(a), Bound::Excluded(z)) if a > z) {
                        continue;
                    }
                    assert!(x.range(b).eq(r.range::<str, _>(b)), "{b:?}");
                }
            }
        }
        assert!(matches!(x, Entries::Large(_)));
    }

    #[test]
    fn the_byte_loop_orders_as_str_does() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&(".{0,5}", ".{0,5}"), |(a, b)| {
                prop_assert_eq!(less(&a, &b), a < b);
                prop_assert_eq!(less(&b, &a), b < a);
                prop_assert!(!less(&a, &a));
                Ok(())
            })
            .unwrap();
        assert!(less("f1", "f10") && !less("f10", "f1") && less("", "a"));
    }

    #[test]
    fn from_unsorted_sorts_and_keeps_the_last_duplicate() {
        let v = vec![
            (Arc::from("b"), e(1.0)),
            (Arc::from("a"), e(2.0)),
            (Arc::from("b"), e(3.0)),
            (Arc::from("c"), e(4.0)),
            (Arc::from("a"), e(5.0)),
        ];
        let x = Entries::from_unsorted(v);
        assert_eq!(keys(&x), ["a", "b", "c"]);
        assert_eq!(x.get("a"), Some(&e(5.0)));
        assert_eq!(x.get("b"), Some(&e(3.0)));
        let big: Vec<_> = (0..SMALL_MAX + 1)
            .rev()
            .map(|i| (Arc::from(format!("{i:04}").as_str()), e(i as f64)))
            .collect();
        let x = Entries::from_unsorted(big);
        assert!(matches!(x, Entries::Large(_)));
        assert_eq!(x.len(), SMALL_MAX + 1);
        assert_eq!(keys(&x)[0], "0000");
    }

    #[test]
    fn equal_content_in_either_form_is_equal() {
        let v: Vec<_> = (0..5)
            .map(|i| (Arc::from(format!("{i}").as_str()), e(i as f64)))
            .collect();
        let small = Entries::from_unsorted(v.clone());
        let large = Entries::Large(v.into_iter().collect());
        assert_eq!(small, large);
    }
}
