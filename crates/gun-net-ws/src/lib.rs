//! WebSocket transport for gun-rs: sockets only, no protocol.
//!
//! - [`Server`]: a Gun.js-compatible relay endpoint. One TCP port serves WebSocket upgrades on
//!   `/gun` (what Gun.js clients dial as `ws://host:port/gun`, query strings allowed) and plain
//!   HTTP/1.1 for everything else through an [`HttpHandler`] (health JSON, dashboard, files).
//! - [`Client`]: dials a peer URL (`ws`, `wss`, `http`, `https`; `http` is rewritten to `ws` as
//!   Gun.js does) and reconnects **for ever** with capped, jittered exponential backoff (a
//!   Gun.js client gives up after one retry, spec §7.4 and §14.1).
//!
//! Both sides turn each open WebSocket into a [`Link`] and hand it to a [`Hub`] (the engine):
//! `attach` when it opens, `receive` for every text frame, `detach` when it closes. Handshake,
//! dedup, routing and re-sending subscriptions after a reconnect are the mesh's job
//! (`gun-dam`); this crate never sends a protocol frame of its own.
//!
//! What this crate is not: a Gun peer. Without a hub that speaks the protocol nothing answers.
//!
//! # Example
//!
//! A server whose hub echoes every frame, and a client that dials it:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::{Arc, Mutex};
//!
//! use gun_net_ws::{
//!     Client, ClientOptions, Direction, Hub, Link, NotFound, PeerId, Server, ServerOptions,
//! };
//! use tokio::sync::mpsc;
//!
//! /// Keeps each peer's link; echoes frames back (server) or forwards them (client).
//! struct Demo {
//!     links: Mutex<HashMap<PeerId, Arc<dyn Link>>>,
//!     next: AtomicU64,
//!     echo: bool,
//!     seen: mpsc::UnboundedSender<String>,
//! }
//!
//! impl Hub for Demo {
//!     fn attach(&self, link: Arc<dyn Link>, _dir: Direction) -> PeerId {
//!         let peer = PeerId(self.next.fetch_add(1, Ordering::Relaxed));
//!         self.links.lock().unwrap().insert(peer, link);
//!         peer
//!     }
//!     fn receive(&self, peer: PeerId, frame: &str) {
//!         if self.echo {
//!             if let Some(link) = self.links.lock().unwrap().get(&peer) {
//!                 let _ = link.send(frame.into());
//!             }
//!         } else {
//!             let _ = self.seen.send(frame.to_owned());
//!         }
//!     }
//!     fn detach(&self, peer: PeerId) {
//!         self.links.lock().unwrap().remove(&peer);
//!     }
//! }
//!
//! fn demo(echo: bool) -> (Arc<Demo>, mpsc::UnboundedReceiver<String>) {
//!     let (seen, rx) = mpsc::unbounded_channel();
//!     let hub = Demo { links: Mutex::default(), next: AtomicU64::new(1), echo, seen };
//!     (Arc::new(hub), rx)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), gun_net_ws::Error> {
//! let (server_hub, _) = demo(true);
//! let server = Server::bind(
//!     ServerOptions::new("127.0.0.1:0".parse().unwrap()),
//!     server_hub,
//!     Arc::new(NotFound),
//! )?;
//!
//! let (client_hub, mut frames) = demo(false);
//! let client = Client::dial(&server.url(), client_hub.clone(), ClientOptions::default())?;
//! let peer = client.connected().await?;
//! let link = client_hub.links.lock().unwrap().get(&peer).cloned().unwrap();
//! link.send(r##"{"#":"abc","get":{"#":"hello"}}"##.into()).unwrap();
//! assert_eq!(frames.recv().await.unwrap(), r##"{"#":"abc","get":{"#":"hello"}}"##);
//!
//! client.shutdown().await;
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour and limits
//!
//! - **Keep-alive.** The server sends the text frame `[]` to every connection every 20 s
//!   ([`ServerOptions::keepalive`], on by default, as Gun.js relays do, spec §1.1). If the mesh
//!   sends its own keep-alives, set it to `None` so peers don't get both. The client sends
//!   WebSocket pings ([`ClientOptions::ping_interval`]) and reconnects after 60 s of silence.
//! - **Send queue.** Each connection has a bounded queue ([`DEFAULT_SEND_QUEUE`] frames).
//!   [`Link::send`] never blocks: when the queue is full it returns [`LinkError::Full`] and the
//!   connection is closed (code 1008), so a stalled peer costs bounded memory.
//! - **Size limit.** A message or frame larger than [`DEFAULT_MAX_MESSAGE_BYTES`] closes that
//!   connection (code 1009) with a `warn` event; other connections are not affected.
//! - **Frames.** Text frames go to [`Hub::receive`] as they are (the mesh ignores `[]`);
//!   binary frames holding UTF-8 text are delivered the same way, other binary frames are dropped
//!   with a `debug` event. Pings are answered.
//! - **HTTP.** One request per connection, head ≤ 16 KiB read within 10 s, body ≤ 64 KiB with
//!   `Content-Length` (no chunked bodies), `Connection: close`, and
//!   `Access-Control-Allow-Origin: *` on every response.
//! - **Reconnects.** After a connection closes, the client waits `250 ms · 2^n` (capped at 4 s,
//!   each delay drawn from its upper half) and dials again; a connection that stayed up 5 s
//!   resets `n`. Each connection is a new `attach` with the same `Direction::Outgoing { url }`.
//! - **TLS** (feature `tls`): rustls with the `ring` provider; server certificates from PEM
//!   (`TlsServerConfig`), client roots from `webpki-roots` or a PEM (`TlsClientConfig`).

mod client;
mod conn;
mod error;
mod http;
mod options;
mod server;
#[cfg(feature = "tls")]
mod tls;

pub use client::{Client, ClientHandle, ClientStats};
pub use conn::Traffic;
pub use error::Error;
pub use gun_dam::transport::{Direction, Hub, Link, LinkError, PeerId};
pub use http::{HttpBodySender, HttpBodyStream, HttpHandler, HttpRequest, HttpResponse, NotFound};
pub use options::{
    ClientOptions, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_CLIENT_IDLE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_KEEPALIVE, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HTTP_BODY_BYTES, DEFAULT_MAX_HTTP_HEAD_BYTES, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_PATH, DEFAULT_PING_INTERVAL, DEFAULT_PORT, DEFAULT_SEND_QUEUE, DEFAULT_SHUTDOWN_GRACE,
    RATE_LIMIT_CLOSE_AFTER_SECS, RateLimit, ServerOptions,
};
pub use server::{ConnectionInfo, Server, ServerStats, StatsSource, max_connections_refusal};
#[cfg(feature = "tls")]
pub use tls::{TlsClientConfig, TlsServerConfig};
