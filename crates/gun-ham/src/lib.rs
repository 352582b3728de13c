//! # gun-ham: Gun's conflict resolution, exact to Gun.js
//!
//! HAM (Hypothetical Amnesia Machine) is the per-key merge rule of the Gun graph
//! database. Every key of every node carries a *state*: a JavaScript number of
//! milliseconds since the epoch (possibly fractional). When a peer receives a
//! value for a key it already holds, it compares states:
//!
//! 1. incoming state later than the peer's own clock ("machine state") → **defer**
//!    the write until the clock reaches it;
//! 2. incoming state older than the stored one → **historical**, ignored;
//! 3. incoming state newer → **accept**;
//! 4. equal states → the value whose `JSON.stringify` text is greater, compared in
//!    UTF-16 code units, wins; identical values are ignored.
//!
//! This crate is pure: no I/O, no async, no clock reads and no dependencies. The
//! caller supplies the current time, and values are compared through the small
//! [`HamValue`] trait, so gun-ham knows nothing of serde or of any value type.
//!
//! ```
//! use gun_ham::{decide, Decision, HamValue, State};
//! use std::cmp::Ordering;
//!
//! // A toy value type: its JSON text is the string itself, quoted.
//! #[derive(PartialEq)]
//! struct Text(&'static str);
//! impl HamValue for Text {
//!     fn lexical_cmp(&self, other: &Self) -> Ordering {
//!         // JSON text comparison; fine for ASCII without escapes.
//!         self.0.cmp(other.0)
//!     }
//! }
//!
//! let now = State::new(1_000.0)?;
//! let s = State::new(900.0)?;
//! // A newer state wins, an equal state is decided by the text.
//! assert_eq!(decide(now, State::new(950.0)?, &Text("a"), Some((s, &Text("b")))), Decision::Accept);
//! assert_eq!(decide(now, s, &Text("c"), Some((s, &Text("b")))), Decision::Accept);
//! assert_eq!(decide(now, s, &Text("a"), Some((s, &Text("b")))), Decision::Ignore(gun_ham::Ignored::TieLost));
//! // A state in the future is deferred until the clock reaches it.
//! let later = State::new(2_000.0)?;
//! assert_eq!(decide(now, later, &Text("x"), None), Decision::Defer { until: later });
//! # Ok::<(), gun_ham::InvalidState>(())
//! ```
//!
//! ## Compatibility notes
//!
//! * Gun.js accepts a non-number state (a string) because JavaScript comparisons
//!   with a string are never true, then stores `-Infinity` in memory and emits
//!   invalid JSON. [`State`] refuses NaN and infinities at construction, so such
//!   data is rejected at the edge instead of poisoning the graph.
//! * `-0` is stored as `0`: the two are equal in JavaScript and print alike.
//! * The generator ([`StateClock`]) reproduces Gun.js's `State()`: the current
//!   millisecond when it advanced, otherwise `t + n/999` for the n-th repeated call
//!   within one millisecond.

mod clock;
mod decision;
mod state;

pub use clock::StateClock;
pub use decision::{Decision, HamValue, Ignored, decide};
pub use state::{InvalidState, State};
