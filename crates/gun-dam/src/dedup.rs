//! Message-id deduplication with a time window and a hard size bound (§6).
//!
//! Gun.js remembers every message id it saw or sent for 9 s **since the last
//! sighting** (checking an id refreshes it) and has no size cap. [`Dedup`] keeps
//! the same window ([`DEDUP_TTL_MS`]) and adds a bound ([`DEDUP_MAX_ENTRIES`]):
//! when full, the entry seen least recently is evicted first.
//!
//! Each entry can carry data (`T`); the mesh keeps its reply routes there, so a
//! route lives exactly as long as its request id is remembered.
//!
//! Implementation: a hash table of slots (an id of up to 22 bytes is kept in its
//! slot), plus a queue of `(generation, time, hash)` in sighting order. A refresh
//! pushes a new queue record and bumps the slot's generation, making older
//! records stale; stale records are skipped when popped and compacted away when
//! they outnumber live ones. Every operation is O(1) amortised, and a sighting
//! hashes its id once; the queue is read by time first, so only a record that is
//! due costs a table lookup, and that lookup goes by the record's hash and
//! generation without reading or hashing the id (at a relay's rate the table
//! is always full and every new id evicts one, so this is on every put's path).
//! The hasher is std's SipHash with a random key: peers choose message ids.
//! Time is passed in (`now`, milliseconds) and assumed not to go backwards; if
//! it does, entries merely live a little longer.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher, RandomState};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// Default time an id is remembered after its last sighting: 9 000 ms, as Gun.js.
pub const DEDUP_TTL_MS: u64 = 9_000;

/// Default bound on remembered ids: 100 000 (Gun.js has none).
pub const DEDUP_MAX_ENTRIES: usize = 100_000;

/// Tables smaller than this are not shrunk.
const SHRINK_MIN: usize = 1024;

/// Ids up to this many bytes are kept inside the table's slot.
const INLINE: usize = 22;

/// An id's bytes: inside the slot when short (Gun.js makes 9-character ids),
/// so that comparing one in a lookup reads no other memory; on the heap else.
#[derive(Debug)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(id: &[u8]) -> Key {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id);
                Key::Inline { len, bytes }
            }
            _ => Key::Heap(id.into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

#[derive(Debug)]
struct Slot<T> {
    key: Key,
    seen: u64,
    generation: u64,
    data: T,
}

/// A bounded, expiring set of message ids, each with data `T`.
#[derive(Debug)]
pub struct Dedup<T = ()> {
    ttl_ms: u64,
    max_entries: usize,
    hasher: RandomState,
    table: HashTable<Slot<T>>,
    /// `(generation, time, hash)` of every sighting, oldest first. A record
    /// names its entry by hash and generation (generations are never reused),
    /// so reading one touches neither the id's text nor a hasher.
    order: VecDeque<(u64, u64, u64)>,
    next_generation: u64,
}

fn hash_id(hasher: &RandomState, id: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(id);
    h.finish()
}

impl<T> Default for Dedup<T> {
    fn default() -> Self {
        Dedup::new(DEDUP_TTL_MS, DEDUP_MAX_ENTRIES)
    }
}

impl<T> Dedup<T> {
    /// An empty table remembering ids for `ttl_ms` after their last sighting,
    /// holding at most `max_entries` (at least 1).
    pub fn new(ttl_ms: u64, max_entries: usize) -> Self {
        Dedup {
            ttl_ms,
            max_entries: max_entries.max(1),
            hasher: RandomState::new(),
            table: HashTable::new(),
            order: VecDeque::new(),
            next_generation: 0,
        }
    }

    /// The time window in milliseconds.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// The size bound.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Number of ids remembered (some may be expired but not yet swept).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn live(&self, slot: &Slot<T>, now: u64) -> bool {
        now.saturating_sub(slot.seen) < self.ttl_ms
    }

    fn find(&self, id: &str) -> Option<&Slot<T>> {
        let id = id.as_bytes();
        self.table
            .find(hash_id(&self.hasher, id), |s| s.key.bytes() == id)
    }

    /// Whether `id` was seen within the window, without refreshing it.
    pub fn contains(&self, id: &str, now: u64) -> bool {
        self.find(id).is_some_and(|s| self.live(s, now))
    }

    /// The data of a live entry.
    pub fn get(&self, id: &str, now: u64) -> Option<&T> {
        self.find(id).filter(|s| self.live(s, now)).map(|s| &s.data)
    }

    /// The data of a live entry, mutably (does not refresh it).
    pub fn get_mut(&mut self, id: &str, now: u64) -> Option<&mut T> {
        let ttl = self.ttl_ms;
        let id = id.as_bytes();
        self.table
            .find_mut(hash_id(&self.hasher, id), |s| s.key.bytes() == id)
            .filter(|s| now.saturating_sub(s.seen) < ttl)
            .map(|s| &mut s.data)
    }

    /// Refreshes a live entry's time; returns whether it was live.
    pub fn refresh(&mut self, id: &str, now: u64) -> bool {
        self.touch(id, now).is_some()
    }

    /// Refreshes a live entry's time and returns its data (one lookup for
    /// what [`Dedup::get`] then [`Dedup::refresh`] do); `None` if not live.
    pub fn touch(&mut self, id: &str, now: u64) -> Option<&T> {
        self.expire(now);
        // Compacted before the lookup, so that the queue takes the new record
        // while the entry is borrowed (at most one record over the bound).
        self.compact();
        let generation = self.next_generation;
        let id = id.as_bytes();
        let h = hash_id(&self.hasher, id);
        let s = self.table.find_mut(h, |s| s.key.bytes() == id)?;
        if now.saturating_sub(s.seen) >= self.ttl_ms {
            return None;
        }
        s.seen = now;
        s.generation = generation;
        self.next_generation += 1;
        self.order.push_back((generation, now, h));
        Some(&s.data)
    }

    /// Sets `id`'s data and refreshes it, inserting it if absent or expired.
    pub fn insert(&mut self, id: &str, data: T, now: u64) {
        self.sight(id, now, move |_| Some(data));
    }

    /// A sighting of `id` with one table lookup: refreshed if present, inserted if not.
    /// `fill(live)` gives the data to store, or `None` to keep the entry's own (it is
    /// asked with `false` for an absent or expired entry, and both callers then give
    /// data). Returns whether the entry was live.
    fn sight(&mut self, id: &str, now: u64, fill: impl FnOnce(bool) -> Option<T>) -> bool {
        self.expire(now);
        let generation = self.next_generation;
        let ttl = self.ttl_ms;
        let id = id.as_bytes();
        let hasher = &self.hasher;
        let h = hash_id(hasher, id);
        let entry = self.table.entry(
            h,
            |s| s.key.bytes() == id,
            |s| hash_id(hasher, s.key.bytes()),
        );
        let live = match entry {
            Entry::Occupied(mut o) => {
                let slot = o.get_mut();
                let live = now.saturating_sub(slot.seen) < ttl;
                if let Some(data) = fill(live) {
                    slot.data = data;
                }
                slot.seen = now;
                slot.generation = generation;
                live
            }
            Entry::Vacant(v) => {
                let Some(data) = fill(false) else {
                    return false;
                };
                v.insert(Slot {
                    key: Key::new(id),
                    seen: now,
                    generation,
                    data,
                });
                false
            }
        };
        self.next_generation += 1;
        self.order.push_back((generation, now, h));
        self.evict_over_bound();
        self.compact();
        live
    }

    /// Drops every entry not seen within the window.
    pub fn expire(&mut self, now: u64) {
        // Records are in sighting order: the first one not yet due ends the sweep, stale
        // or not (stale records are compacted away), without a table lookup.
        while let Some(&(_, seen, _)) = self.order.front() {
            if now.saturating_sub(seen) < self.ttl_ms {
                break;
            }
            if let Some((generation, _, h)) = self.order.pop_front() {
                self.remove_current(h, generation);
            }
        }
        self.shrink();
    }

    /// Removes the entry of a queue record if the record is its latest sighting (one
    /// lookup, by hash and generation: the id's text is not read).
    fn remove_current(&mut self, h: u64, generation: u64) -> Option<Slot<T>> {
        match self.table.find_entry(h, |s| s.generation == generation) {
            Ok(o) => Some(o.remove().0),
            Err(_) => None,
        }
    }

    /// Gives memory back once a burst of ids has expired: neither the table nor the queue
    /// shrinks by itself, and a relay that saw 100k connections subscribe would otherwise
    /// keep their tables' peak size for good. Rehashes only when at most a quarter is used,
    /// to half the capacity, so it is amortised O(1).
    fn shrink(&mut self) {
        if self.table.capacity() > SHRINK_MIN && self.table.len() * 4 < self.table.capacity() {
            let hasher = &self.hasher;
            self.table
                .shrink_to(self.table.len() * 2, |s| hash_id(hasher, s.key.bytes()));
        }
        if self.order.capacity() > SHRINK_MIN && self.order.len() * 4 < self.order.capacity() {
            self.order.shrink_to(self.order.len() * 2);
        }
    }

    /// Removes `id`, returning its data if it was remembered (live or not).
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let id = id.as_bytes();
        match self
            .table
            .find_entry(hash_id(&self.hasher, id), |s| s.key.bytes() == id)
        {
            Ok(o) => Some(o.remove().0.data),
            Err(_) => None,
        }
    }

    fn evict_over_bound(&mut self) {
        while self.table.len() > self.max_entries {
            let Some((generation, _, h)) = self.order.pop_front() else {
                break;
            };
            if let Some(slot) = self.remove_current(h, generation) {
                tracing::trace!(
                    id = %String::from_utf8_lossy(slot.key.bytes()),
                    "dedup table full: evicted the oldest id"
                );
            }
        }
    }

    fn compact(&mut self) {
        if self.order.len() > 2 * self.table.len() + 1024 {
            let table = &self.table;
            self.order
                .retain(|&(g, _, h)| table.find(h, |s| s.generation == g).is_some());
        }
    }
}

impl<T: Default> Dedup<T> {
    /// Whether `id` was seen within the window; either way it is now tracked
    /// (refreshed if it was seen, inserted with default data if not). This is
    /// Gun.js's `dup.check` followed by `dup.track`.
    pub fn check_and_track(&mut self, id: &str, now: u64) -> bool {
        self.sight(id, now, |live| (!live).then(T::default))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn window_refreshes_on_every_sighting() {
        let mut d: Dedup = Dedup::new(9_000, 100);
        assert!(!d.check_and_track("a", 0));
        assert!(d.check_and_track("a", 5_000));
        // 10 s after the first sighting but 5 s after the refresh: still seen.
        assert!(d.check_and_track("a", 10_000));
        // A peer that keeps resending is ignored indefinitely.
        for t in (11_000..60_000).step_by(8_000) {
            assert!(d.check_and_track("a", t));
        }
        // 9 s of silence: forgotten.
        assert!(!d.check_and_track("a", 59_000 + 9_000));
        assert!(!d.contains("b", 0));
    }

    #[test]
    fn tables_shrink_once_a_burst_expired() {
        let mut d: Dedup = Dedup::new(9_000, 1_000_000);
        for i in 0..50_000 {
            d.insert(&format!("id{i}"), (), 0);
        }
        let peak = (d.table.capacity(), d.order.capacity());
        assert!(peak.0 >= 50_000 && peak.1 >= 50_000);
        // A few ids live on past the burst.
        for i in 0..10 {
            d.insert(&format!("late{i}"), (), 5_000);
        }
        d.expire(9_500);
        assert_eq!(d.len(), 10);
        assert!(d.contains("late3", 9_500));
        assert!(
            d.table.capacity() <= SHRINK_MIN * 2 && d.order.capacity() <= SHRINK_MIN * 2,
            "capacities after expiry: map {}, queue {} (peak {peak:?})",
            d.table.capacity(),
            d.order.capacity()
        );
    }

    #[test]
    fn bound_evicts_least_recently_seen() {
        let mut d: Dedup = Dedup::new(9_000, 3);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            assert!(!d.check_and_track(id, i as u64));
        }
        assert!(d.check_and_track("a", 10)); // a is now the most recent
        assert!(!d.check_and_track("d", 11)); // evicts b
        assert_eq!(d.len(), 3);
        assert!(!d.contains("b", 11));
        assert!(d.contains("a", 11) && d.contains("c", 11) && d.contains("d", 11));
    }

    #[test]
    fn data_lives_with_the_entry() {
        let mut d: Dedup<u32> = Dedup::new(100, 10);
        d.insert("x", 7, 0);
        assert_eq!(d.get("x", 50), Some(&7));
        assert!(d.refresh("x", 90));
        assert_eq!(d.get("x", 150), Some(&7));
        assert_eq!(d.get("x", 190), None);
        d.expire(190);
        assert!(d.is_empty());
        assert!(!d.refresh("x", 200));
    }

    #[test]
    fn queue_stays_bounded_under_refresh_storms() {
        let mut d: Dedup = Dedup::new(1_000_000, 10);
        for t in 0..100_000u64 {
            d.check_and_track(if t % 2 == 0 { "a" } else { "b" }, t);
        }
        assert!(d.order.len() <= 2 * d.table.len() + 1025);
        for i in 0..100_000u64 {
            d.check_and_track(&i.to_string(), 100_000 + i);
        }
        assert_eq!(d.len(), 10);
        assert!(d.order.len() <= 2 * d.table.len() + 1025);
    }

    /// The table against a plain model of its contract: an entry is live while
    /// seen within the window; at most `max` entries, the least recently seen
    /// evicted first; `check_and_track` keeps a live entry's data and gives an
    /// absent or expired one default data.
    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap as StdMap;

        #[derive(Debug, Clone)]
        enum Op {
            Check(u8),
            Insert(u8, u32),
            Refresh(u8),
            Touch(u8),
            Remove(u8),
            Expire,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..12u8).prop_map(Op::Check),
                (0..12u8, any::<u32>()).prop_map(|(i, d)| Op::Insert(i, d)),
                (0..12u8).prop_map(Op::Refresh),
                (0..12u8).prop_map(Op::Touch),
                (0..12u8).prop_map(Op::Remove),
                Just(Op::Expire),
            ]
        }

        /// id -> (last sighting time, sighting number, data)
        struct Model {
            ttl: u64,
            max: usize,
            sightings: u64,
            entries: StdMap<String, (u64, u64, u32)>,
        }

        impl Model {
            fn sweep(&mut self, now: u64) {
                let ttl = self.ttl;
                self.entries.retain(|_, e| now - e.0 < ttl);
            }
            fn live(&self, id: &str, now: u64) -> Option<u32> {
                self.entries
                    .get(id)
                    .filter(|e| now - e.0 < self.ttl)
                    .map(|e| e.2)
            }
            fn sight(&mut self, id: &str, now: u64, data: Option<u32>) -> bool {
                self.sweep(now);
                self.sightings += 1;
                let live = self.entries.get(id).map(|e| e.2);
                let data = data.or(live).unwrap_or_default();
                self.entries
                    .insert(id.to_owned(), (now, self.sightings, data));
                while self.entries.len() > self.max {
                    let oldest = self
                        .entries
                        .iter()
                        .min_by_key(|(_, e)| e.1)
                        .map(|(k, _)| k.clone())
                        .unwrap();
                    self.entries.remove(&oldest);
                }
                live.is_some()
            }
        }

        /// Short ids (kept in the slot) and long ones (on the heap).
        fn mid(i: u8) -> String {
            if i.is_multiple_of(3) {
                format!("m{i}-{}", "long".repeat(8))
            } else {
                format!("m{i}")
            }
        }

        proptest! {
            #[test]
            fn matches_the_model(
                ttl in 1..50u64,
                max in 1..8usize,
                steps in proptest::collection::vec((0..20u64, op()), 1..200),
            ) {
                let mut d: Dedup<u32> = Dedup::new(ttl, max);
                let mut m = Model { ttl, max, sightings: 0, entries: StdMap::new() };
                let mut now = 0;
                for (dt, op) in steps {
                    now += dt;
                    match op {
                        Op::Check(i) => {
                            let id = mid(i);
                            prop_assert_eq!(d.check_and_track(&id, now), m.sight(&id, now, None));
                        }
                        Op::Insert(i, data) => {
                            let id = mid(i);
                            d.insert(&id, data, now);
                            m.sight(&id, now, Some(data));
                        }
                        Op::Refresh(i) => {
                            let id = mid(i);
                            let live = m.live(&id, now).is_some();
                            if live {
                                m.sight(&id, now, None);
                            } else {
                                m.sweep(now);
                            }
                            prop_assert_eq!(d.refresh(&id, now), live);
                        }
                        Op::Touch(i) => {
                            let id = mid(i);
                            let live = m.live(&id, now);
                            if live.is_some() {
                                m.sight(&id, now, None);
                            } else {
                                m.sweep(now);
                            }
                            prop_assert_eq!(d.touch(&id, now).copied(), live);
                        }
                        Op::Remove(i) => {
                            let id = mid(i);
                            let had = m.entries.remove(&id).map(|e| e.2);
                            prop_assert_eq!(d.remove(&id), had);
                        }
                        Op::Expire => {
                            d.expire(now);
                            m.sweep(now);
                            prop_assert_eq!(d.len(), m.entries.len());
                        }
                    }
                    for i in 0..12u8 {
                        let id = mid(i);
                        prop_assert_eq!(d.get(&id, now).copied(), m.live(&id, now), "id {}", id);
                    }
                    prop_assert!(d.len() <= max);
                    prop_assert!(d.order.len() <= 2 * d.table.len() + 1025);
                }
            }
        }
    }
}
