//! Which souls the store may hold: a Bloom filter over every soul written, so
//! that a write to a soul the store surely lacks (Gun's usual write: a new
//! message, a `set` entry, a new user) skips the read that HAM would make of
//! it, a sled lookup of ~4,000 instructions (6 % of a put).
//!
//! The filter answers "surely absent" or "maybe present", never a false
//! "absent" for a soul it was told of. Its one risk is a soul on disk it was
//! never told of: a write would then take that soul for new and replace its
//! record. So a filter is used only once it covers the whole tree:
//!
//! * an empty tree at open: ready at once;
//! * otherwise the check that reads every key at open (`health::Verifier`)
//!   adds each soul it reads; the filter is used only after that scan read the
//!   whole tree and found it matching its metadata record. Souls written
//!   meanwhile are added by the writes themselves (under the write lock,
//!   before their records are staged), so none is missed;
//! * past its capacity (souls counted in the metadata record) the filter is
//!   switched off until the next open, which sizes it for twice the souls.
//!
//! Each soul sets 7 bits of one 512-bit block (a blocked Bloom filter: one
//! cache line per lookup), at 10 bits per soul of capacity: about 1 % of the
//! lookups of absent souls read sled all the same.

use std::hash::{BuildHasher, RandomState};

use crate::layout;

/// Bits per soul of capacity.
const BITS_PER_SOUL: u64 = 10;
/// Bits set per soul, all in one block.
const PROBES: u32 = 7;
/// Words (of 64 bits) per block: one 64-byte cache line.
const BLOCK_WORDS: usize = 8;
/// The least capacity a filter is made with (1.25 MB).
const MIN_CAPACITY: u64 = 1 << 20;
/// The most souls a filter is sized for (about 128 MB of bits); a larger store
/// reads before every write, as without a filter.
const MAX_CAPACITY: u64 = 100_000_000;

/// Where a filter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The scan of what the tree held at open is running: not used yet.
    Building,
    /// Covers every soul of the tree: "surely absent" answers are used.
    Ready,
    /// Never used (over capacity, or the scan failed).
    Off,
}

/// A blocked Bloom filter of escaped souls (`esc(soul)`, see `layout`).
pub(crate) struct SoulFilter {
    blocks: Vec<[u64; BLOCK_WORDS]>,
    hasher: RandomState,
    capacity: u64,
    phase: Phase,
}

impl std::fmt::Debug for SoulFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoulFilter")
            .field("blocks", &self.blocks.len())
            .field("capacity", &self.capacity)
            .field("phase", &self.phase)
            .finish()
    }
}

impl SoulFilter {
    /// A filter for a tree of `souls` souls (room for twice as many), in
    /// phase `phase`; `Off` (and empty) past [`MAX_CAPACITY`].
    pub(crate) fn new(souls: u64, phase: Phase) -> SoulFilter {
        let capacity = souls.saturating_mul(2).max(MIN_CAPACITY);
        if capacity > MAX_CAPACITY {
            return SoulFilter {
                blocks: Vec::new(),
                hasher: RandomState::new(),
                capacity: 0,
                phase: Phase::Off,
            };
        }
        let blocks = (capacity * BITS_PER_SOUL).div_ceil(64 * BLOCK_WORDS as u64);
        SoulFilter {
            blocks: vec![[0; BLOCK_WORDS]; blocks as usize],
            hasher: RandomState::new(),
            capacity,
            phase,
        }
    }

    /// An empty filter of the same size and hashing, for a scan to fill and
    /// [`SoulFilter::absorb`] to merge.
    pub(crate) fn blank(&self) -> SoulFilter {
        SoulFilter {
            blocks: vec![[0; BLOCK_WORDS]; self.blocks.len()],
            hasher: self.hasher.clone(),
            capacity: self.capacity,
            phase: Phase::Building,
        }
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The block and bit positions of `esc`.
    fn probes(&self, esc: &[u8]) -> (usize, [u16; PROBES as usize]) {
        let h = self.hasher.hash_one(esc);
        // The block from the high bits (multiply-shift), the bits in it from a
        // second mix of the hash, 9 bits each.
        let block = ((u128::from(h) * self.blocks.len() as u128) >> 64) as usize;
        let mut g = (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        g ^= g >> 32;
        let mut bits = [0u16; PROBES as usize];
        for b in &mut bits {
            *b = (g & 511) as u16;
            g >>= 9;
        }
        (block, bits)
    }

    /// Adds `esc` (a no-op for a filter that is off).
    pub(crate) fn insert(&mut self, esc: &[u8]) {
        let _ = self.add(esc);
    }

    /// Whether `esc` may have been added.
    #[cfg(test)]
    fn may_contain(&self, esc: &[u8]) -> bool {
        let (block, bits) = self.probes(esc);
        let words = &self.blocks[block];
        bits.iter()
            .all(|&b| words[usize::from(b / 64)] & (1 << (b % 64)) != 0)
    }

    /// Whether the store surely holds no record of `esc` (only a ready filter
    /// says so).
    #[cfg(test)]
    pub(crate) fn surely_absent(&self, esc: &[u8]) -> bool {
        self.phase == Phase::Ready && !self.may_contain(esc)
    }

    /// Adds `esc`, answering whether the store surely held no record of it
    /// before (only a ready filter says so): one hash for both.
    pub(crate) fn add(&mut self, esc: &[u8]) -> bool {
        if self.phase == Phase::Off {
            return false;
        }
        let (block, bits) = self.probes(esc);
        let words = &mut self.blocks[block];
        let mut absent = false;
        for b in bits {
            let (w, bit) = (usize::from(b / 64), 1u64 << (b % 64));
            absent |= words[w] & bit == 0;
            words[w] |= bit;
        }
        absent && self.phase == Phase::Ready
    }

    /// Merges a finished scan's filter (same size and hashing, from
    /// [`SoulFilter::blank`]) and makes this one ready.
    pub(crate) fn absorb(&mut self, scanned: &SoulFilter) {
        if self.phase != Phase::Building {
            return;
        }
        for (mine, theirs) in self.blocks.iter_mut().zip(&scanned.blocks) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a |= b;
            }
        }
        self.phase = Phase::Ready;
    }

    /// Switches the filter off for good (frees its bits).
    pub(crate) fn turn_off(&mut self) {
        self.phase = Phase::Off;
        self.blocks = Vec::new();
    }

    /// Keeps the filter within its capacity: off once the store holds more
    /// souls than it was sized for (its false positives would grow).
    pub(crate) fn check_capacity(&mut self, souls: u64) {
        if self.phase != Phase::Off && souls > self.capacity {
            tracing::info!(
                souls,
                capacity = self.capacity,
                "the soul filter is full: writes read every soul until the next open"
            );
            self.turn_off();
        }
    }
}

/// The escaped soul of a record key (`esc(soul)`, up to its terminator);
/// `None` for a malformed key.
pub(crate) fn escaped_soul(k: &[u8]) -> Option<&[u8]> {
    if layout::is_blob_key(k) {
        return Some(&k[..k.len() - 2]);
    }
    let mut i = 0;
    while i + 1 < k.len() {
        if k[i] == 0 {
            match k[i + 1] {
                0xFF => i += 2,
                0x01 if i > 0 => return Some(&k[..i]),
                _ => return None,
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn esc(soul: &str) -> Vec<u8> {
        let mut v = Vec::new();
        layout::escape_soul(soul, &mut v);
        v
    }

    #[test]
    fn an_added_soul_is_never_surely_absent() {
        let mut f = SoulFilter::new(0, Phase::Ready);
        let souls: Vec<String> = (0..200_000).map(|i| format!("soul/{i}")).collect();
        for s in &souls {
            f.insert(&esc(s));
        }
        for s in &souls {
            assert!(!f.surely_absent(&esc(s)), "{s}");
        }
        // Others are mostly known absent (about 1 % false positives at
        // capacity; this filter holds a tenth of it).
        let maybe = (0..100_000)
            .filter(|i| !f.surely_absent(&esc(&format!("other/{i}"))))
            .count();
        assert!(
            maybe < 1_000,
            "{maybe} of 100000 absent souls maybe present"
        );
    }

    #[test]
    fn add_answers_whether_the_soul_was_surely_absent() {
        let mut f = SoulFilter::new(0, Phase::Ready);
        assert!(f.add(b"a"), "a new soul");
        assert!(!f.add(b"a"), "added before");
        assert!(!f.surely_absent(b"a"));
        let mut building = SoulFilter::new(0, Phase::Building);
        assert!(!building.add(b"a"), "not used while building");
        let mut scanned = building.blank();
        scanned.insert(b"b");
        building.absorb(&scanned);
        assert!(!building.add(b"a") && !building.add(b"b"));
        assert!(building.add(b"c"));
        let mut off = SoulFilter::new(0, Phase::Off);
        assert!(!off.add(b"a"));
    }

    #[test]
    fn only_a_ready_filter_says_absent() {
        let mut f = SoulFilter::new(0, Phase::Building);
        assert!(!f.surely_absent(b"a"));
        let mut scanned = f.blank();
        scanned.insert(b"a");
        f.insert(b"b");
        f.absorb(&scanned);
        assert_eq!(f.phase(), Phase::Ready);
        assert!(!f.surely_absent(b"a"), "added by the scan");
        assert!(!f.surely_absent(b"b"), "added while it ran");
        f.check_capacity(u64::MAX);
        assert_eq!(f.phase(), Phase::Off);
        assert!(!f.surely_absent(b"zzz"));
        f.insert(b"c");
        f.absorb(&scanned);
        assert_eq!(f.phase(), Phase::Off, "off stays off");
        assert_eq!(
            SoulFilter::new(u64::MAX / 4, Phase::Ready).phase(),
            Phase::Off
        );
    }

    #[test]
    fn escaped_souls_come_out_of_both_record_keys() {
        for soul in ["a", "user/1", "x\0y", "\0", "a\0\0b", "é/\u{1}"] {
            let e = esc(soul);
            assert_eq!(escaped_soul(&layout::blob_key(soul)), Some(e.as_slice()));
            for key in ["k", "", "\0\0", "a\0\u{1}b"] {
                let k = layout::entry_key(soul, key);
                assert_eq!(escaped_soul(&k), Some(e.as_slice()), "{soul:?} {key:?}");
            }
        }
        assert_eq!(escaped_soul(b"no terminator"), None);
        assert_eq!(escaped_soul(b"bad\x00\x05x"), None);
    }
}
