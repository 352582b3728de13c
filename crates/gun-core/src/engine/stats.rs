//! Counters for health pages, dashboards and metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters for health pages and dashboards.
#[derive(Debug, Default)]
pub struct Stats {
    /// Put messages received from peers.
    pub puts_in: AtomicU64,
    /// Get messages received from peers.
    pub gets_in: AtomicU64,
    /// Acks sent.
    pub acks_out: AtomicU64,
    /// Writes refused (validation, storage).
    pub rejected: AtomicU64,
    /// Keys accepted by HAM and stored.
    pub keys_accepted: AtomicU64,
    /// Time from a peer's put being dispatched to its `ok` ack being handed
    /// to the mesh (writes deferred for a future state are not counted).
    pub put_ack_latency: LatencyHistogram,
    /// Writes refused, by error text (at most [`MAX_REJECT_REASONS`] texts; the
    /// rest are counted under `"other"`).
    pub rejected_by_reason: Mutex<BTreeMap<String, u64>>,
}

/// Distinct error texts counted in [`Stats::rejected_by_reason`].
pub const MAX_REJECT_REASONS: usize = 32;

impl Stats {
    /// Counts one refused write with error text `reason` (in `rejected` and
    /// in `rejected_by_reason`).
    pub fn count_rejected(&self, reason: &str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let mut map = self
            .rejected_by_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(reason) {
            *n += 1;
        } else if map.len() < MAX_REJECT_REASONS {
            map.insert(reason.to_owned(), 1);
        } else {
            *map.entry("other".to_owned()).or_default() += 1;
        }
    }

    /// A copy of [`Stats::rejected_by_reason`].
    pub fn rejected_reasons(&self) -> BTreeMap<String, u64> {
        self.rejected_by_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Upper bounds (seconds) of the buckets of a [`LatencyHistogram`]; a last
/// bucket takes everything above.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A histogram of durations with the fixed buckets of [`LATENCY_BUCKETS`]:
/// three relaxed atomic additions per observation, no lock.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A copy of a [`LatencyHistogram`], in the form exposition formats want.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, cumulative,
    /// ending with `f64::INFINITY` (which equals `count`).
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations, in seconds.
    pub sum_secs: f64,
    /// Number of observations.
    pub count: u64,
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The buckets now (read one by one: under load `count` may differ from
    /// the last bucket by the observations made meanwhile; the snapshot's own
    /// `count` is the last bucket, so it is consistent in itself).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut total = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, total));
        }
        HistogramSnapshot {
            buckets,
            sum_secs: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count: total,
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(h.count(), 3);
        assert_eq!(s.buckets.first(), Some(&(0.000_25, 1)));
        assert!(s.buckets.contains(&(0.005, 2)));
        assert!(s.buckets.contains(&(10.0, 2)));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 3)));
        assert!((s.sum_secs - 60.0031).abs() < 1e-9);
    }
}
