//! # gun-dam: Gun's wire messages and mesh, sans-IO
//!
//! What travels between Gun peers and how it is routed, interoperable with
//! Gun.js (npm `gun@0.2020.1241`) relays and browsers:
//!
//! * [`Message`] / [`Get`]: the envelope of §2 of the protocol notes, parsed
//!   leniently (unknown fields survive relaying) and written with
//!   JavaScript-exact numbers;
//! * [`parse_frame`] / [`encode_batch`]: frames (one message or an array batch,
//!   §1.2), bounded by [`Limits`], never panicking on hostile input;
//! * [`Dedup`]: message ids seen within a window, with a hard size bound;
//! * [`Mesh`]: the router as a state machine — handshake, dedup, reply routing,
//!   get forwarding, write fan-out to full peers and subscribers (DAM + AXE),
//!   reconnect re-sending. The [`router`] module docs state every rule;
//! * [`Link`] / [`Hub`]: the traits transports and the engine meet at, and
//!   [`mock::MockNet`], a deterministic in-memory network for tests.
//!
//! It is **not** a transport (no sockets, no async runtime: see `gun-net-*`),
//! not a store and not the engine: it never merges data, never reads the clock
//! (every call takes `now` in milliseconds) and never answers a get itself. The
//! engine (`gun-core`) executes the [`Output`]s: it sends frames, merges
//! delivered puts through HAM, answers gets with [`Mesh::reply`] and hands what
//! HAM accepted back to [`Mesh::publish`].
//!
//! ```
//! use gun_dam::{Direction, Mesh, MeshConfig, Output, PeerId};
//!
//! let mut relay = Mesh::new(MeshConfig { pid: Some("relay".into()), ..MeshConfig::relay() });
//! let mut client = Mesh::new(MeshConfig { pid: Some("client".into()), ..MeshConfig::client() });
//! let (c_at_relay, r_at_client) = (PeerId(1), PeerId(1));
//!
//! // Collects the frames one side sends.
//! fn frames(out: Vec<Output>) -> Vec<String> {
//!     out.into_iter()
//!         .filter_map(|o| match o { Output::Send { frame, .. } => Some(frame.to_string()), _ => None })
//!         .collect()
//! }
//!
//! // The relay accepts the socket and greets first; the client dials and says hi.
//! let greet = frames(relay.connect(c_at_relay, Direction::Incoming, 0));
//! let hi = frames(client.connect(r_at_client, Direction::Outgoing { url: "ws://relay/gun".into() }, 0));
//! assert!(greet[0].contains(r#""dam":"?","pid":"relay""#));
//! assert!(hi[0].contains(r#""dam":"hi""#));
//!
//! // Each side reads the other's frames; the client answers the greeting.
//! let answer = frames(client.receive(r_at_client, &greet[0], 1));
//! assert!(answer[0].contains(r#""dam":"?","pid":"client""#));
//! assert!(frames(relay.receive(c_at_relay, &hi[0], 1)).is_empty()); // hi: nothing to say
//! assert!(frames(relay.receive(c_at_relay, &answer[0], 2)).is_empty()); // had pid and @
//! assert_eq!(relay.peer_pid(c_at_relay), Some("client"));
//! assert_eq!(client.peer_pid(r_at_client), Some("relay"));
//! ```

#![deny(clippy::unwrap_used)]

pub mod auth;
pub mod dedup;
mod error;
pub mod frame;
mod frame_fast;
pub mod message;
pub mod mock;
mod peer;
pub mod router;
pub mod transport;
pub mod validate;

pub use auth::{
    AuthPolicy, CERT_FIELD, MessagePredicate, MessageSigner, MessageVerifier, SIG_FIELD,
};
pub use dedup::{DEDUP_MAX_ENTRIES, DEDUP_TTL_MS, Dedup};
pub use error::{Error, FrameError, LinkError};
pub use frame::{
    Limits, MAX_BATCH, MAX_FRAME_BYTES, MAX_VALUE_DEPTH, encode_batch, parse_frame,
    parse_frame_with,
};
pub use message::{Get, Message, SoulQuery};
pub use peer::{Direction, PeerId};
pub use router::{Decoded, Decoder, Mesh, MeshConfig, OutFrame, Output, Role};
pub use transport::{Hub, Link, Ready};
pub use validate::{Origin, PutContext, Validator};
