/// Errors of the engine and the Chain API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data given to `put` cannot be stored (an array, a non-finite number,
    /// a non-object at the root…). The text says where, as Gun.js does.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A key was empty (Gun.js: "0 length key!").
    #[error("0 length key!")]
    EmptyKey,
    /// Graph data was invalid.
    #[error(transparent)]
    Graph(#[from] gun_graph::Error),
    /// A validator (SEA, a user predicate) refused the write; the text is what
    /// peers receive in the `err` of the ack.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The store failed; nothing of the write was applied.
    #[error("storage failed: {0}")]
    Storage(String),
    /// Fewer peers acknowledged the write than asked for before the timeout.
    #[error("only {got} of {wanted} peer acks before the timeout")]
    AckTimeout {
        /// Acks received.
        got: usize,
        /// Acks wanted.
        wanted: usize,
    },
    /// A peer answered the write with an error.
    #[error("a peer refused the write: {0}")]
    PeerRefused(String),
    /// The operation needs a node, but the chain points at a plain value.
    #[error("the chain does not point at a node")]
    NotANode,
    /// The write has keys ahead of the clock and
    /// [`EngineOptions::max_deferred_keys`](crate::EngineOptions::max_deferred_keys)
    /// keys already wait to come due; nothing of it was applied.
    #[error("too many writes wait for a future state (at most {limit} keys)")]
    TooManyDeferred {
        /// The bound.
        limit: usize,
    },
    /// The engine was shut down.
    #[error("the engine is shut down")]
    Closed,
}

impl From<gun_store::Error> for Error {
    fn from(e: gun_store::Error) -> Error {
        Error::Storage(e.to_string())
    }
}
