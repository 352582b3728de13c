use std::cmp::Ordering;
use std::fmt;

/// A HAM state: a finite number of milliseconds since the Unix epoch, as Gun.js
/// keeps it in a JavaScript number (fractions appear when several states are
/// generated within one millisecond).
///
/// NaN and the infinities are refused by [`State::new`]; `-0` becomes `0`. Because
/// every `State` is finite, it is totally ordered and implements [`Ord`] and
/// [`Eq`].
#[derive(Clone, Copy)]
pub struct State(f64);

/// The error for a number that cannot be a state (NaN or an infinity).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidState(pub f64);

impl fmt::Display for InvalidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid state {}: a state must be a finite number",
            self.0
        )
    }
}

impl std::error::Error for InvalidState {}

impl State {
    /// The smallest state, below every state a write can carry.
    pub const MIN: State = State(f64::MIN);

    /// Makes a state from milliseconds, refusing NaN and infinities.
    pub fn new(ms: f64) -> Result<State, InvalidState> {
        if ms.is_finite() {
            // `-0.0 + 0.0` is `+0.0`: JavaScript prints both as `0`.
            Ok(State(ms + 0.0))
        } else {
            Err(InvalidState(ms))
        }
    }

    /// The milliseconds this state holds.
    pub fn as_f64(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for State {
    type Error = InvalidState;
    fn try_from(ms: f64) -> Result<State, InvalidState> {
        State::new(ms)
    }
}

impl From<State> for f64 {
    fn from(s: State) -> f64 {
        s.0
    }
}

impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.0 == other.0
    }
}

impl Eq for State {}

impl PartialOrd for State {
    fn partial_cmp(&self, other: &State) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for State {
    fn cmp(&self, other: &State) -> Ordering {
        // Both are finite, so `total_cmp` agrees with `<` and `==` except for
        // -0/+0, which `new` normalises away.
        self.0.total_cmp(&other.0)
    }
}

impl std::hash::Hash for State {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h)
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "State({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_finite() {
        assert!(State::new(f64::NAN).is_err());
        assert!(State::new(f64::INFINITY).is_err());
        assert!(State::new(f64::NEG_INFINITY).is_err());
        assert_eq!(State::new(1.5).map(State::as_f64), Ok(1.5));
    }

    #[test]
    fn negative_zero_is_zero() {
        let z = State::new(-0.0).map(State::as_f64).unwrap_or(f64::NAN);
        assert!(z == 0.0 && z.is_sign_positive());
        assert_eq!(State::new(-0.0), State::new(0.0));
    }

    #[test]
    fn ordering_is_numeric() {
        let a = State::new(-5.0).unwrap_or(State::MIN);
        let b = State::new(1795643451809.001).unwrap_or(State::MIN);
        assert!(a < b);
        assert!(State::MIN < a);
    }
}
