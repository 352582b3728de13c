//! Who a connection is and which way it was opened: the names every other
//! module of the mesh (routing, auth, validation, transports) shares.

/// A connection, as numbered by the engine (or the hub). Unique while connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

/// Who opened a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer dialed us (we accepted the socket).
    Incoming,
    /// We dialed the peer at `url` (`ws://host:port/gun`).
    Outgoing {
        /// The URL dialed; it names the peer in `><` and keys reconnect bookkeeping.
        url: String,
    },
    /// A direct link to the peer `pid`, opened by signalling through the mesh
    /// (a WebRTC data channel, spec §11.3). Both ends know each other's pid, so
    /// nobody greets; writes are sent to it in full (as Gun.js browsers send
    /// every write to every peer); there is no URL to reconnect to.
    Direct {
        /// The peer's pid, as announced in the signalling.
        pid: String,
    },
}
