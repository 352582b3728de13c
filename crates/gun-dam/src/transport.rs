//! The seam between transports (WebSocket, WebRTC, the in-memory [`MockNet`](crate::mock::MockNet))
//! and the engine. No runtime types: a transport may use tokio, threads or
//! nothing at all.
//!
//! * A transport implements [`Link`] for each open connection and hands it to
//!   the engine with [`Hub::attach`]; it then passes every received text frame to
//!   [`Hub::receive`] and reports the end of the connection with [`Hub::detach`].
//! * The engine implements [`Hub`]: it feeds the [`Mesh`](crate::Mesh) and
//!   executes its [`Output`](crate::Output)s, sending frames through the links.
//!
//! `Link::send` must not block and must not call back into the hub: a transport
//! queues the frame (bounded) and reports [`LinkError::Full`] when the queue is
//! full, after which the hub disconnects the slow peer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::{Direction, LinkError, PeerId};

/// What [`Hub::ready`] returns (no runtime types: any executor can await it).
pub type Ready = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One open connection, as seen by the engine.
pub trait Link: Send + Sync {
    /// Queues a text frame for sending. Never blocks.
    fn send(&self, frame: Arc<str>) -> Result<(), LinkError>;
    /// Closes the connection (the transport then calls [`Hub::detach`]).
    fn close(&self, reason: &str);
}

/// The engine side: what transports call.
pub trait Hub: Send + Sync {
    /// A connection opened; `dir` says who dialed. Returns the id the hub will
    /// use for it.
    fn attach(&self, link: Arc<dyn Link>, dir: Direction) -> PeerId;
    /// A text frame arrived on `peer`.
    fn receive(&self, peer: PeerId, frame: &str);
    /// Resolves when the hub takes more frames from `peer`: a transport
    /// awaits it before reading the next frame, so that a peer sending faster
    /// than the hub works is held back by the transport's flow control (TCP)
    /// rather than by growing queues. The default is always ready.
    fn ready(&self, peer: PeerId) -> Ready {
        let _ = peer;
        Box::pin(std::future::ready(()))
    }
    /// The connection closed (either side).
    fn detach(&self, peer: PeerId);
    /// A transport calls this before its first connection attempt to `url`
    /// (the URL it will [`attach`](Hub::attach) the connection under), so
    /// that writes and subscriptions made while the peer is down are queued
    /// for it. The default does nothing (for hubs that keep no such queue).
    fn dialing(&self, url: &str) {
        let _ = url;
    }
}
