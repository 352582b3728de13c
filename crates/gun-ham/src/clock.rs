use crate::State;

/// Gun.js's state generator (`Gun.state()`), with the time supplied by the caller.
///
/// Each call to [`StateClock::next`] returns the current millisecond `t` if it is
/// greater than the last state returned; otherwise `t + n/999`, where `n` counts the
/// calls since the millisecond last advanced. Consecutive calls within one
/// millisecond therefore yield `t`, `t + 1/999`, `t + 2/999`, …, exactly the numbers
/// Gun.js produces (they print as `1795643445865.001`, `.002`, …).
///
/// Like Gun.js, this is not monotonic when the wall clock steps back, and more
/// than 999 calls within one millisecond spill into the next millisecond; both are
/// kept because peers compare these numbers with each other.
///
/// ```
/// use gun_ham::StateClock;
/// let mut clock = StateClock::new();
/// assert_eq!(clock.next(1000.0).as_f64(), 1000.0);
/// assert_eq!(clock.next(1000.0).as_f64(), 1000.0 + 1.0 / 999.0);
/// assert_eq!(clock.next(1001.0).as_f64(), 1001.0);
/// ```
#[derive(Debug, Clone)]
pub struct StateClock {
    last: f64,
    n: u64,
    drift: f64,
}

impl Default for StateClock {
    fn default() -> Self {
        StateClock::new()
    }
}

impl StateClock {
    /// The divisor Gun.js uses for repeated calls within one millisecond.
    pub const D: f64 = 999.0;

    /// A generator that has returned nothing yet.
    pub fn new() -> StateClock {
        StateClock {
            last: f64::NEG_INFINITY,
            n: 0,
            drift: 0.0,
        }
    }

    /// A generator that adds `drift` milliseconds to every state (Gun.js's
    /// `State.drift`, zero by default).
    pub fn with_drift(drift: f64) -> StateClock {
        StateClock {
            drift: if drift.is_finite() { drift } else { 0.0 },
            ..StateClock::new()
        }
    }

    /// The next state at wall-clock time `now_ms` (milliseconds since the epoch).
    ///
    /// A non-finite `now_ms` is treated as the last state returned, so the result is
    /// always a valid [`State`].
    pub fn next(&mut self, now_ms: f64) -> State {
        let t = if now_ms.is_finite() {
            now_ms
        } else if self.last.is_finite() {
            self.last
        } else {
            0.0
        };
        let s = if self.last < t {
            self.n = 0;
            t + self.drift
        } else {
            self.n += 1;
            t + (self.n as f64) / Self::D + self.drift
        };
        self.last = s;
        // `t`, `n/999` and `drift` are finite, so the sum is finite unless it
        // overflows f64, which no millisecond clock reaches.
        State::new(s).unwrap_or(State::MIN)
    }

    /// The last state returned, if any.
    pub fn last(&self) -> Option<State> {
        State::new(self.last).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_millisecond_counts_up_by_999ths() {
        let mut c = StateClock::new();
        let t = 1795643445865.0;
        assert_eq!(c.next(t).as_f64(), t);
        assert_eq!(c.next(t).as_f64(), t + 1.0 / 999.0);
        assert_eq!(c.next(t).as_f64(), t + 2.0 / 999.0);
        // The JavaScript text of these is `1795643445865.001` and `.002`.
        assert_eq!(format!("{}", c.next(t + 1.0).as_f64()), "1795643445866");
    }

    #[test]
    fn clock_stepping_back_keeps_counting() {
        let mut c = StateClock::new();
        assert_eq!(c.next(2000.0).as_f64(), 2000.0);
        // Gun.js: last (2000) is not < 1000, so it returns 1000 + 1/999.
        assert_eq!(c.next(1000.0).as_f64(), 1000.0 + 1.0 / 999.0);
        // And keeps counting until the clock passes the last state again.
        assert_eq!(c.next(1000.5).as_f64(), 1000.5);
    }

    #[test]
    fn non_finite_time_never_yields_invalid_state() {
        let mut c = StateClock::new();
        assert!(c.next(f64::NAN).as_f64().is_finite());
        c.next(5.0);
        assert!(c.next(f64::INFINITY).as_f64() > 5.0);
    }

    #[test]
    fn drift_is_added() {
        let mut c = StateClock::with_drift(10.0);
        assert_eq!(c.next(100.0).as_f64(), 110.0);
    }
}
