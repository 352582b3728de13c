//! Server and client options, and the named limits they default to.
//!
//! Every number that bounds memory or time is a constant here with a field that overrides it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::Error;

/// Path of the WebSocket endpoint Gun.js clients dial (`ws://host:port/gun`).
pub const DEFAULT_PATH: &str = "/gun";
/// Conventional Gun relay port.
pub const DEFAULT_PORT: u16 = 8765;
/// Largest WebSocket message (and frame) accepted: 8 MiB. A peer sending more is disconnected.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 << 20;
/// Frames queued for one connection before it counts as stalled and is closed.
///
/// Well above [`gun_dam::MAX_BATCH`]: one frame a peer may legally send holds that many
/// messages, and the relay answers each (an ack per put, a reply per get) on that connection,
/// and forwards each to its relay peers, faster than a writer task drains the queue; a smaller
/// bound cut off peers that were reading fine. tokio allocates the queue as it fills, so idle
/// connections do not pay for the bound.
pub const DEFAULT_SEND_QUEUE: usize = 16_384;
const _: () = assert!(DEFAULT_SEND_QUEUE > gun_dam::MAX_BATCH);
/// Interval of the `[]` keep-alive text frame a Gun.js relay sends to every peer (§1.1).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(20);
/// Largest HTTP request head (request line and headers) read before answering 431.
pub const DEFAULT_MAX_HTTP_HEAD_BYTES: usize = 16 << 10;
/// Largest HTTP request body accepted before answering 413.
pub const DEFAULT_MAX_HTTP_BODY_BYTES: usize = 64 << 10;
/// Time allowed for the TLS handshake and for reading one HTTP request (head and body).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open sockets (WebSocket peers and in-flight HTTP requests together) a server accepts.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Dropped frames, in seconds' worth of [`RateLimit::per_sec`], after which a connection over
/// its message rate is closed.
pub const RATE_LIMIT_CLOSE_AFTER_SECS: u32 = 10;
/// Time [`Server::shutdown`](crate::Server::shutdown) gives connections to close cleanly.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// First reconnect delay of a client (before jitter).
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Largest reconnect delay of a client (before jitter): a peer that comes
/// back is dialed within about this long (Gun.js retries every ~2 s), while
/// many clients of a relay that restarts still spread their reconnects.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(4);
/// Time allowed for a client's TCP connect, TLS and WebSocket handshake, each.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of the WebSocket pings a client sends.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);
/// Silence after which a client gives up on a connection and reconnects: three missed
/// relay keep-alives (or pongs).
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of a [`Server`](crate::Server).
///
/// Start from [`ServerOptions::new`] (or `default()`, which listens on `127.0.0.1:8765`) and
/// change the fields you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Address to listen on. Port 0 picks a free port; read it back with
    /// [`Server::local_addr`](crate::Server::local_addr).
    pub addr: SocketAddr,
    /// Path of the WebSocket endpoint (default [`DEFAULT_PATH`]). Upgrade requests for other
    /// paths get 404; a query string is ignored when matching (`/gun?x=1` is accepted).
    pub path: String,
    /// Send the text frame `[]` to every connection at this interval, as Gun.js relays do
    /// (default every [`DEFAULT_KEEPALIVE`]; `None` turns it off, e.g. when the mesh sends its
    /// own keep-alives).
    pub keepalive: Option<Duration>,
    /// Close a connection that sent nothing (not even a pong) for this long. Off by default:
    /// Gun.js clients send nothing while idle.
    pub idle_timeout: Option<Duration>,
    /// Largest WebSocket message accepted (default [`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// Frames queued per connection before it is closed as stalled (default
    /// [`DEFAULT_SEND_QUEUE`]).
    pub send_queue: usize,
    /// Concurrent sockets accepted (default [`DEFAULT_MAX_CONNECTIONS`]). A socket over the
    /// limit is answered `503 Service Unavailable` with a `Retry-After` and the reason
    /// ([`max_connections_refusal`](crate::max_connections_refusal)) before its upgrade (over
    /// TLS, and while 64 such answers are under way, it is closed without one); each is
    /// counted in [`ServerStats::refused`](crate::ServerStats::refused).
    pub max_connections: usize,
    /// Open WebSocket connections accepted from one IP address; further upgrades from it are
    /// answered `429 Too Many Requests`. `None` (the default): no limit.
    pub max_connections_per_ip: Option<usize>,
    /// Data frames accepted per connection and second (a token bucket; a frame holding a batch
    /// counts once). Frames over the rate are dropped unread; a connection that keeps on is
    /// closed (code 1008) once it dropped [`RATE_LIMIT_CLOSE_AFTER_SECS`] seconds' worth.
    /// `None` (the default): no limit.
    pub rate_limit: Option<RateLimit>,
    /// Largest HTTP request head (default [`DEFAULT_MAX_HTTP_HEAD_BYTES`]).
    pub max_http_head_bytes: usize,
    /// Largest HTTP request body (default [`DEFAULT_MAX_HTTP_BODY_BYTES`]).
    pub max_http_body_bytes: usize,
    /// Time for the TLS handshake and for reading an HTTP request (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
    /// Time connections get to close cleanly on shutdown (default [`DEFAULT_SHUTDOWN_GRACE`]).
    pub shutdown_grace: Duration,
    /// Serve `wss://` and `https://` instead of plain text.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::TlsServerConfig>,
}

impl ServerOptions {
    /// Defaults, listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            path: DEFAULT_PATH.to_owned(),
            keepalive: Some(DEFAULT_KEEPALIVE),
            idle_timeout: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            send_queue: DEFAULT_SEND_QUEUE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: None,
            rate_limit: None,
            max_http_head_bytes: DEFAULT_MAX_HTTP_HEAD_BYTES,
            max_http_body_bytes: DEFAULT_MAX_HTTP_BODY_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !self.path.starts_with('/') || self.path.contains(['?', '#', ' ']) {
            return Err(invalid(
                "path",
                "must start with '/' and hold no '?', '#' or space",
            ));
        }
        check_queue(self.send_queue)?;
        if self.max_connections == 0 || self.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        check_period("keepalive", self.keepalive)?;
        check_period("idle_timeout", self.idle_timeout)?;
        if self.max_message_bytes == 0 {
            return Err(invalid("max_message_bytes", "must be at least 1"));
        }
        if self.max_connections_per_ip == Some(0) {
            return Err(invalid("max_connections_per_ip", "must be at least 1"));
        }
        if let Some(r) = self.rate_limit
            && (r.per_sec == 0 || r.burst == 0)
        {
            return Err(invalid(
                "rate_limit",
                "per_sec and burst must be at least 1",
            ));
        }
        if self.max_http_head_bytes < 64 {
            return Err(invalid("max_http_head_bytes", "must be at least 64"));
        }
        Ok(())
    }
}

/// A per-connection message rate ([`ServerOptions::rate_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Data frames per second, on average.
    pub per_sec: u32,
    /// Frames accepted at once above the rate (the bucket's size).
    pub burst: u32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new(SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)))
    }
}

/// Options of a [`Client`](crate::Client).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// First reconnect delay (default [`DEFAULT_BACKOFF_INITIAL`]); it doubles per failed
    /// attempt up to `backoff_max`, and each delay is drawn at random from its upper half.
    pub backoff_initial: Duration,
    /// Largest reconnect delay (default [`DEFAULT_BACKOFF_MAX`]).
    pub backoff_max: Duration,
    /// Time for TCP connect, TLS and the WebSocket handshake, each (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Send a WebSocket ping at this interval (default [`DEFAULT_PING_INTERVAL`]).
    pub ping_interval: Option<Duration>,
    /// Drop the connection and reconnect after this long without any frame from the server
    /// (default [`DEFAULT_CLIENT_IDLE_TIMEOUT`]).
    pub idle_timeout: Option<Duration>,
    /// Largest WebSocket message accepted (default [`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// Frames queued before the connection is closed as stalled (default
    /// [`DEFAULT_SEND_QUEUE`]).
    pub send_queue: usize,
    /// Roots trusted for `wss://`; `None` (the default) trusts the webpki roots
    /// ([`TlsClientConfig::webpki_roots`](crate::TlsClientConfig::webpki_roots)).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::TlsClientConfig>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            idle_timeout: Some(DEFAULT_CLIENT_IDLE_TIMEOUT),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            send_queue: DEFAULT_SEND_QUEUE,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ClientOptions {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        check_queue(self.send_queue)?;
        check_period("ping_interval", self.ping_interval)?;
        check_period("idle_timeout", self.idle_timeout)?;
        if self.max_message_bytes == 0 {
            return Err(invalid("max_message_bytes", "must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect_timeout", "must not be zero"));
        }
        Ok(())
    }
}

fn invalid(name: &'static str, reason: &'static str) -> Error {
    Error::InvalidOption { name, reason }
}

fn check_queue(n: usize) -> Result<(), Error> {
    // tokio's bounded channel takes at most `Semaphore::MAX_PERMITS` and panics on 0.
    if n == 0 || n > tokio::sync::Semaphore::MAX_PERMITS {
        return Err(invalid("send_queue", "must be at least 1"));
    }
    Ok(())
}

fn check_period(name: &'static str, d: Option<Duration>) -> Result<(), Error> {
    match d {
        Some(d) if d.is_zero() => Err(invalid(name, "must not be zero (use None to turn it off)")),
        _ => Ok(()),
    }
}
