use std::cmp::Ordering;

use crate::State;

/// What HAM needs to know about a value: how its `JSON.stringify` text compares
/// with another's.
///
/// Gun.js breaks ties between equal states with `JSON.stringify(a) < JSON.stringify(b)`,
/// a comparison of UTF-16 code units. Implementations must compare exactly that
/// text, not UTF-8 bytes and not serde_json's text (whose numbers differ from
/// JavaScript's). gun-graph implements it for its `Value`.
pub trait HamValue {
    /// Compares the JSON texts of `self` and `other` in UTF-16 code-unit order.
    fn lexical_cmp(&self, other: &Self) -> Ordering;
}

/// Why an incoming write that is not newer was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// Same state and the same value (same JSON text): nothing changes.
    Identical,
    /// Same state, and the current value's JSON text is greater: it stays.
    TieLost,
}

/// The outcome of HAM for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The incoming state is ahead of the machine's clock: keep the write and
    /// decide again once the clock reaches `until`. Nothing is stored or acked now.
    Defer {
        /// The state the machine clock must reach before the write is applied.
        until: State,
    },
    /// The incoming state is older than the current one: ignore the write.
    Historical,
    /// The incoming value replaces the current one (newer state, or an equal state
    /// whose value wins the tie-break).
    Accept,
    /// The incoming write changes nothing.
    Ignore(Ignored),
}

impl Decision {
    /// Whether the incoming value is to be applied now.
    pub fn is_accept(self) -> bool {
        matches!(self, Decision::Accept)
    }
}

/// Decides one key, as Gun.js's `ham()` does.
///
/// * `machine`: the machine state, i.e. the state generator's value now;
/// * `incoming_state`, `incoming`: the write that arrived;
/// * `current`: the state and value held now, or `None` when the key is unknown.
///
/// Order of the checks, as in Gun.js: future first, then older, then newer, then the
/// equal-state tie-break. A key with no current value accepts any write whose state
/// is not in the future.
#[inline]
pub fn decide<V: HamValue + ?Sized>(
    machine: State,
    incoming_state: State,
    incoming: &V,
    current: Option<(State, &V)>,
) -> Decision {
    if incoming_state > machine {
        return Decision::Defer {
            until: incoming_state,
        };
    }
    let Some((current_state, current_value)) = current else {
        return Decision::Accept;
    };
    match incoming_state.cmp(&current_state) {
        Ordering::Less => Decision::Historical,
        Ordering::Greater => Decision::Accept,
        Ordering::Equal => match incoming.lexical_cmp(current_value) {
            Ordering::Greater => Decision::Accept,
            Ordering::Equal => Decision::Ignore(Ignored::Identical),
            Ordering::Less => Decision::Ignore(Ignored::TieLost),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct N(i64);
    impl HamValue for N {
        fn lexical_cmp(&self, other: &Self) -> Ordering {
            self.0.to_string().cmp(&other.0.to_string())
        }
    }

    fn s(ms: f64) -> State {
        State::new(ms).unwrap_or(State::MIN)
    }

    #[test]
    fn future_is_deferred_even_without_current() {
        assert_eq!(
            decide(s(10.0), s(11.0), &N(1), None),
            Decision::Defer { until: s(11.0) }
        );
        // Future beats every other rule, even against an older current value.
        assert_eq!(
            decide(s(10.0), s(11.0), &N(1), Some((s(1.0), &N(0)))),
            Decision::Defer { until: s(11.0) }
        );
    }

    #[test]
    fn state_equal_to_machine_is_not_future() {
        assert_eq!(decide(s(10.0), s(10.0), &N(1), None), Decision::Accept);
    }

    #[test]
    fn older_newer_and_ties() {
        let cur = Some((s(5.0), &N(5)));
        assert_eq!(decide(s(10.0), s(4.0), &N(9), cur), Decision::Historical);
        assert_eq!(decide(s(10.0), s(6.0), &N(5), cur), Decision::Accept);
        // "6" > "5": wins; "5" == "5": identical; "10" < "5" as text: loses.
        assert_eq!(decide(s(10.0), s(5.0), &N(6), cur), Decision::Accept);
        assert_eq!(
            decide(s(10.0), s(5.0), &N(5), cur),
            Decision::Ignore(Ignored::Identical)
        );
        assert_eq!(
            decide(s(10.0), s(5.0), &N(10), cur),
            Decision::Ignore(Ignored::TieLost)
        );
    }
}
