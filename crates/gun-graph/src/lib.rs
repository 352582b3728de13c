//! # gun-graph: Gun's data model, exact to Gun.js
//!
//! Souls, values, nodes and graphs; their wire form (parse with validation, emit);
//! merging through HAM ([`gun_ham`]); lexical queries with byte budgets; the `##`
//! hash; and Gun's random ids and souls. No I/O, no async, no clock reads.
//!
//! * A **soul** ([`Soul`]) is a node's id. A **value** ([`Value`]) is `null`, a
//!   boolean, a finite number, a string, or a link `{"#": soul}`.
//! * A **node** ([`Node`]) maps keys to a [`State`] and a value; on the wire it is
//!   `{"_": {"#": soul, ">": {key: state}}, key: value}`.
//! * A **graph** ([`Graph`]) maps souls to nodes: the body of every put.
//!
//! ```
//! use gun_graph::{Graph, State, Value};
//!
//! // A put as a Gun.js peer sends it.
//! let incoming = Graph::from_wire(r##"{"alice":{"_":{"#":"alice",">":{"name":1795643412520,"age":1795643412520}},"name":"Alice","age":30}}"##)?;
//!
//! let mut graph = Graph::new();
//! let now = State::new(1795643412600.0).unwrap();
//! let merge = graph.merge(&incoming, now);
//! assert_eq!(merge.accepted.key_count(), 2); // store, push and announce these
//! assert_eq!(graph.get("alice").and_then(|n| n.value("age")), Some(&Value::from(30)));
//!
//! // Merging the same data again changes nothing.
//! assert!(graph.merge(&incoming, now).accepted.is_empty());
//!
//! // Invalid data is refused with an error naming soul, key and reason.
//! let err = Graph::from_wire(r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":[1]}}"##).unwrap_err();
//! assert_eq!(err.to_string(), r#"key "x" on soul "a": an array is not a valid value"#);
//! # Ok::<(), gun_graph::Error>(())
//! ```
//!
//! ## Compatibility choices
//!
//! * Every text that is compared, hashed or signed comes from [`json`], which
//!   reproduces JavaScript's `JSON.stringify` (numbers, escapes, key order).
//! * A put is validated as a whole: one bad node or key rejects all of it (Gun.js
//!   keeps the keys before the first bad one).
//! * Non-number states are refused (Gun.js stores them and then emits invalid
//!   JSON). Strings with lone surrogates cannot be held in a Rust `String`; JSON
//!   carrying them is refused as invalid JSON.

mod entries;
mod error;
mod graph;
pub mod hash;
pub mod ids;
pub mod json;
pub mod lex;
mod node;
mod value;
mod wire;
mod wire_fast;

pub use error::Error;
pub use graph::{Deferred, Graph, Merge, Rejected, Rejection};
pub use gun_ham::{Decision, HamValue, Ignored, InvalidState, State, StateClock, decide};
pub use lex::Lex;
pub use node::{Entry, Node};
pub use value::{InvalidValue, Soul, Value};
pub use wire::GraphDeError;
