/// Everything that can be wrong with a received frame or one of its messages.
///
/// [`parse_frame`](crate::parse_frame) reports errors per message where it can:
/// a batch with one bad put still yields its other messages. Frame-level errors
/// ([`Error::TooBig`], [`Error::Json`], [`Error::TooManyMessages`]) come alone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frame is longer than [`Limits::max_frame_bytes`](crate::Limits::max_frame_bytes).
    /// Gun.js answers such frames with `{"dam":"!","err":"Message too big!"}`.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooBig {
        /// Length of the frame in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The frame starts with `[` or `{` but is not well-formed JSON (also: nested
    /// deeper than 128 levels, or trailing garbage).
    #[error("invalid JSON frame: {0}")]
    Json(String),
    /// A batch holds more messages than [`Limits::max_batch`](crate::Limits::max_batch).
    #[error("batch of more than {max} messages")]
    TooManyMessages {
        /// The limit in force.
        max: usize,
    },
    /// A message's envelope is malformed: a field has the wrong type (for
    /// example a numeric `#`), or its `get` is not a query.
    #[error("invalid message {id:?}: {reason}")]
    InvalidMessage {
        /// The message's `#`, if it had a string one.
        id: Option<String>,
        /// What was wrong.
        reason: &'static str,
    },
    /// A message's `put` failed validation (§5.2). The rest of the frame is
    /// unaffected; the engine may answer `{"@":id,"err":…}`.
    #[error("invalid put in message {id:?}: {error}")]
    InvalidPut {
        /// The message's `#`, if it had a string one.
        id: Option<String>,
        /// Why gun-graph refused the graph.
        error: gun_graph::Error,
    },
}

/// The per-frame and per-message error of [`parse_frame`](crate::parse_frame);
/// the same type as [`Error`].
pub type FrameError = Error;

/// Why a [`Link`](crate::Link) could not take a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// The connection's bounded send queue is full; the hub should disconnect
    /// this (slow) peer.
    #[error("send queue full")]
    Full,
}
