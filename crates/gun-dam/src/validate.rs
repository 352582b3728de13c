//! The validator seam: checks run on every write before HAM merges it (SEA,
//! write certificates, application rules).
//!
//! It lives here, below the engine, so that a crate providing validators
//! (gun-sea) needs neither the engine nor an async runtime: a validator sees a
//! [`PutContext`] (the graph, where it came from, the whole message) and says
//! yes, or no with the text peers receive as the `err` of the ack.
//!
//! ```
//! use gun_dam::{Origin, PutContext, Validator};
//!
//! // Refuses every write from peers to souls under `admin/`.
//! let local_admin = |ctx: &PutContext<'_>| {
//!     let remote = !matches!(ctx.origin, Origin::Local);
//!     if remote && ctx.graph.souls().any(|s| s.as_str().starts_with("admin/")) {
//!         return Err("admin is local only".to_owned());
//!     }
//!     Ok(())
//! };
//! let v: &dyn Validator = &local_admin;
//! let g = gun_graph::Graph::new();
//! assert!(v.check(&PutContext { graph: &g, origin: &Origin::Local, message: None }).is_ok());
//! ```

use gun_graph::Graph;

use crate::message::Message;
use crate::peer::PeerId;

/// Where a write (or any message the engine acts on) came from, and so where
/// its answer goes. The one way gun-rs says this: validators read it, local
/// subscribers get it with each change, the engine answers through it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// This process (the Chain API): nobody to answer.
    Local,
    /// A write (a put without `@`) from a peer: its ack goes back to `peer`
    /// under `@` = `id`, and a message answering `id` reaches its writer.
    Peer {
        /// The connection.
        peer: PeerId,
        /// The put's `#`.
        id: String,
    },
    /// A peer's answer to a get (a put with `@`): `id` is the answer's own
    /// `#`, which leads back only to the peer that answered, not to whoever
    /// wrote the data.
    Reply {
        /// The connection.
        peer: PeerId,
        /// The reply's own `#`.
        id: String,
    },
}

impl Origin {
    /// The connection, unless local.
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            Origin::Local => None,
            Origin::Peer { peer, .. } | Origin::Reply { peer, .. } => Some(*peer),
        }
    }

    /// The `#` of the message, unless local.
    pub fn id(&self) -> Option<&str> {
        match self {
            Origin::Local => None,
            Origin::Peer { id, .. } | Origin::Reply { id, .. } => Some(id),
        }
    }
}

/// What a validator sees of an incoming write.
#[derive(Debug, Clone, Copy)]
pub struct PutContext<'a> {
    /// The graph being written.
    pub graph: &'a Graph,
    /// Where it came from.
    pub origin: &'a Origin,
    /// The whole message, for writes from peers and answers to gets (with its
    /// extension fields, such as a signature).
    pub message: Option<&'a Message>,
}

/// A check run on every write before HAM (SEA, certificates, user rules).
pub trait Validator: Send + Sync + 'static {
    /// Accepts the write, or refuses all of it with the text peers receive as
    /// the `err` of the ack (Gun.js texts such as `"Unverified data."`).
    fn check(&self, ctx: &PutContext<'_>) -> Result<(), String>;
}

impl<F> Validator for F
where
    F: Fn(&PutContext<'_>) -> Result<(), String> + Send + Sync + 'static,
{
    fn check(&self, ctx: &PutContext<'_>) -> Result<(), String> {
        self(ctx)
    }
}
