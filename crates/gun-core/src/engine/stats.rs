//! Counters for health pages, dashboards and metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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
