//! Who can answer a get for a soul (as AXE keeps a soul's route): the client
//! peers that wrote it or answered a get for it with data, then those that
//! asked for it (subscribers), most recent first. Bounded per soul
//! ([`HOLDERS_PER_SOUL`]) and in souls ([`MeshConfig::max_holder_souls`](super::MeshConfig::max_holder_souls),
//! the oldest soul forgotten first). Peers that left are skipped when read
//! and pruned when their soul is next written.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::peer::PeerId;

/// How many holders are remembered per soul.
pub const HOLDERS_PER_SOUL: usize = 8;

/// One soul's holders: `(peer, has data)`, data holders first, each group
/// most recent first.
type List = Vec<(PeerId, bool)>;

#[derive(Debug)]
struct Slot {
    /// The soul's text as the caller held it (the written graph's, or the
    /// subscription's interned copy), taken without a lookup in the intern pool.
    soul: Arc<str>,
    /// When the soul was added (never reused): names it in `order`.
    seq: u64,
    /// The soul's hash, kept for the table's rehashes: a full table rehashes
    /// in place as evictions leave tombstones, and hashing every soul's text
    /// again then cost ~900 instructions a put.
    hash: u64,
    list: List,
}

#[derive(Debug, Default)]
pub(super) struct Holders {
    /// Hashed with std's SipHash and a random key: peers choose souls.
    hasher: RandomState,
    souls: HashTable<Slot>,
    /// `(seq, hash)` of the souls in the order they were added. Evicting the
    /// oldest finds its slot by hash and `seq`, without reading or hashing the
    /// soul's text (at a relay's rate the table is full and every new soul
    /// evicts one); a soul added again after eviction has a new `seq`, so its
    /// old place evicts nothing.
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
}

impl Holders {
    /// `peer` wrote or answered `soul` (`data`), or asked for it. `alive`
    /// tells which peers are still connected (the others are pruned).
    pub(super) fn add(
        &mut self,
        soul: &Arc<str>,
        peer: PeerId,
        data: bool,
        max_souls: usize,
        alive: impl Fn(PeerId) -> bool,
    ) {
        if max_souls == 0 {
            return;
        }
        // One lookup: a new soul is inserted where the lookup found its place, and the
        // oldest soul beyond the bound is forgotten after (never this one: it is the newest).
        let hasher = &self.hasher;
        let h = hasher.hash_one(&**soul);
        let entry = self.souls.entry(h, |s| *s.soul == **soul, |s| s.hash);
        let (list, added) = match entry {
            Entry::Occupied(o) => (&mut o.into_mut().list, false),
            Entry::Vacant(v) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.order.push_back((seq, h));
                // Room for a writer and a reader or two: one allocation, not a regrowth.
                let slot = Slot {
                    soul: soul.clone(),
                    seq,
                    hash: h,
                    list: List::with_capacity(2),
                };
                (&mut v.insert(slot).into_mut().list, true)
            }
        };
        let mut data = data;
        if let Some(i) = list.iter().position(|(p, _)| *p == peer) {
            data |= list.remove(i).1;
        }
        list.retain(|(p, _)| alive(*p));
        let at = if data {
            0
        } else {
            list.iter().take_while(|(_, d)| *d).count()
        };
        list.insert(at, (peer, data));
        list.truncate(HOLDERS_PER_SOUL);
        if added {
            while self.souls.len() > max_souls {
                let Some((seq, h)) = self.order.pop_front() else {
                    break;
                };
                if let Ok(o) = self.souls.find_entry(h, |s| s.seq == seq) {
                    o.remove();
                }
            }
        }
        // Souls forgotten by eviction leave their place in `order` only once
        // each; a soul added again after that is pushed again.
        if self.order.len() > 2 * max_souls.max(1024) {
            let souls = &self.souls;
            self.order
                .retain(|&(seq, h)| souls.find(h, |s| s.seq == seq).is_some());
        }
    }

    /// The holders of `soul`, in the order to ask them.
    pub(super) fn of(&self, soul: &str) -> impl Iterator<Item = PeerId> + '_ {
        self.souls
            .find(self.hasher.hash_one(soul), |s| *s.soul == *soul)
            .into_iter()
            .flat_map(|s| s.list.iter().map(|(p, _)| *p))
    }

    /// Souls with holders now.
    pub(super) fn len(&self) -> usize {
        self.souls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn data_holders_first_then_askers_most_recent_first_bounded() {
        let mut h = Holders::default();
        let all = |_| true;
        h.add(&a("s"), PeerId(1), false, 10, all);
        h.add(&a("s"), PeerId(2), true, 10, all);
        h.add(&a("s"), PeerId(3), false, 10, all);
        h.add(&a("s"), PeerId(4), true, 10, all);
        assert_eq!(
            h.of("s").collect::<Vec<_>>(),
            [PeerId(4), PeerId(2), PeerId(3), PeerId(1)]
        );
        // Asking again keeps what it had (data).
        h.add(&a("s"), PeerId(2), false, 10, all);
        assert_eq!(h.of("s").next(), Some(PeerId(2)));
        for p in 10..30 {
            h.add(&a("s"), PeerId(p), false, 10, all);
        }
        assert_eq!(h.of("s").count(), HOLDERS_PER_SOUL);
        assert!(h.of("s").take(2).all(|p| p == PeerId(2) || p == PeerId(4)));
        // Peers that left are pruned.
        h.add(&a("s"), PeerId(99), false, 10, |p| p == PeerId(99));
        assert_eq!(h.of("s").collect::<Vec<_>>(), [PeerId(99)]);
    }

    #[test]
    fn the_oldest_soul_is_forgotten_past_the_bound() {
        let mut h = Holders::default();
        for i in 0..5 {
            h.add(&a(&format!("s{i}")), PeerId(i), false, 3, |_| true);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.of("s0").count(), 0);
        assert_eq!(h.of("s4").count(), 1);
    }

    #[test]
    fn churn_keeps_the_newest_souls_and_a_bounded_order() {
        let mut h = Holders::default();
        for i in 0..10_000u64 {
            // Every tenth soul comes back while it is still held.
            let s = if i % 10 == 9 { i - 5 } else { i };
            h.add(&a(&format!("s{s}")), PeerId(i), true, 100, |_| true);
            assert!(h.len() <= 100);
            assert!(h.order.len() <= 2 * 1024 + 1);
        }
        assert_eq!(h.len(), 100);
        assert_eq!(h.of("s9998").collect::<Vec<_>>(), [PeerId(9998)]);
        assert_eq!(
            h.of("s9994").collect::<Vec<_>>(),
            [PeerId(9999), PeerId(9994)]
        );
        assert_eq!(h.of("s100").count(), 0);
    }

    #[test]
    fn a_soul_back_after_eviction_is_not_evicted_by_its_old_place() {
        let mut h = Holders::default();
        let all = |_| true;
        h.add(&a("a"), PeerId(1), true, 2, all);
        h.add(&a("b"), PeerId(1), true, 2, all);
        h.add(&a("c"), PeerId(1), true, 2, all); // forgets a (its name stays in the order)
        assert_eq!(h.of("a").count(), 0);
        h.add(&a("a"), PeerId(2), true, 2, all); // back: forgets b, not itself
        assert_eq!(h.of("a").collect::<Vec<_>>(), [PeerId(2)]);
        assert_eq!(h.len(), 2);
        h.add(&a("d"), PeerId(3), true, 2, all);
        assert_eq!(h.len(), 2);
        assert_eq!(h.of("d").count(), 1);
    }
}
