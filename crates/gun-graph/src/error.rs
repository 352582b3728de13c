use crate::value::InvalidValue;

/// Everything that can go wrong reading or building Gun graph data.
///
/// Validation errors name the soul and the key, so a peer can log exactly what a
/// remote sent and answer with a useful `err`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not JSON (or has trailing garbage, or nests too deeply).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The top level of a put's graph is not a JSON object `{soul: node}`.
    #[error("a graph must be a JSON object of souls to nodes")]
    NotAGraph,
    /// A soul was the empty string.
    #[error("a soul must be a non-empty string")]
    EmptySoul,
    /// The node under `soul` is not an object (Gun.js: "no node").
    #[error("soul {soul:?}: no node")]
    NoNode {
        /// The soul whose node is missing.
        soul: String,
    },
    /// The node has no `_` meta object (Gun.js: "no meta").
    #[error("soul {soul:?}: no meta")]
    NoMeta {
        /// The soul.
        soul: String,
    },
    /// `_["#"]` differs from the soul the node is filed under (Gun.js: "soul not same").
    #[error("soul {soul:?}: soul not same (meta says {found:?})")]
    SoulMismatch {
        /// The soul the node is filed under.
        soul: String,
        /// What `_["#"]` said, if it was a string.
        found: Option<String>,
    },
    /// The node has no `_[">"]` state object (Gun.js: "no state").
    #[error("soul {soul:?}: no state")]
    NoStates {
        /// The soul.
        soul: String,
    },
    /// A key has a value but no state (Gun.js: "no state").
    #[error("key {key:?} on soul {soul:?}: no state")]
    NoState {
        /// The soul.
        soul: String,
        /// The key without a state.
        key: String,
    },
    /// A key's state is not a finite number. Gun.js accepts string states by
    /// accident and then emits invalid JSON; we refuse them.
    #[error("key {key:?} on soul {soul:?}: state must be a finite number")]
    InvalidState {
        /// The soul.
        soul: String,
        /// The key with the bad state.
        key: String,
    },
    /// A key's value is not a valid Gun value.
    #[error("key {key:?} on soul {soul:?}: {reason}")]
    InvalidValue {
        /// The soul.
        soul: String,
        /// The key with the bad value.
        key: String,
        /// What was wrong with it.
        reason: InvalidValue,
    },
    /// The key `_` is reserved for the meta data and cannot hold a value.
    #[error("key \"_\" is reserved for node meta data")]
    ReservedKey,
    /// A number value was NaN or infinite.
    #[error("numbers must be finite")]
    NonFiniteNumber,
    /// A lexical query was malformed.
    #[error("invalid lexical query: {0}")]
    InvalidQuery(&'static str),
}
