//! Lock hold times (feature `lock-timing`): a guard that records, when it is
//! dropped, how long the engine's lock was held, in power-of-two buckets of
//! nanoseconds.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const BUCKETS: usize = 40;

/// Counts per power-of-two bucket of nanoseconds.
pub(super) struct Histogram {
    counts: [AtomicU64; BUCKETS],
    total_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            total_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn record(&self, ns: u64) {
        let b = (64 - ns.leading_zeros() as usize).min(BUCKETS - 1);
        self.counts[b].fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The sum of all hold times, in nanoseconds.
    pub(super) fn total_ns(&self) -> u64 {
        self.total_ns.load(Ordering::Relaxed)
    }

    /// `(upper bound in ns, count)` for every non-empty bucket.
    pub(super) fn snapshot(&self) -> Vec<(u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| (1u64 << i, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }
}

/// A lock guard that records its hold time when dropped.
pub(super) struct Timed<'a, G> {
    guard: G,
    since: Instant,
    hist: &'a Histogram,
}

impl<'a, G> Timed<'a, G> {
    pub(super) fn new(guard: G, hist: &'a Histogram) -> Self {
        Timed {
            guard,
            since: Instant::now(),
            hist,
        }
    }
}

impl<G> Drop for Timed<'_, G> {
    fn drop(&mut self) {
        let ns = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.hist.record(ns);
    }
}

impl<G: Deref> Deref for Timed<'_, G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Timed<'_, G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}
