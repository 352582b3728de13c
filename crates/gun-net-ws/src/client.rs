//! The dialing side: one task per peer URL that connects, pumps frames, and reconnects for ever
//! with capped exponential backoff.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gun_dam::transport::{Direction, Hub, PeerId};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::conn::{self, Attachment, CloseCause, ConnConfig, ConnShared, Traffic, WsLink};
use crate::{ClientOptions, Error};

/// A connection that stayed up this long resets the backoff to its initial delay.
const STABLE_AFTER: Duration = Duration::from_secs(5);

/// Where a peer URL points, after `http`→`ws` rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) secure: bool,
    /// Host to connect to and to verify (no IPv6 brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `ws://` or `wss://` URL sent in the handshake.
    pub(crate) ws_url: String,
}

/// Parses a peer URL as Gun.js does: `http` becomes `ws` (so `https` becomes `wss`).
pub(crate) fn parse_url(url: &str) -> Result<Target, Error> {
    let bad = |reason| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let (scheme, rest) = url
        .trim()
        .split_once("://")
        .ok_or_else(|| bad("missing scheme (ws://, wss://, http://, https://)"))?;
    let secure = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        _ => return Err(bad("scheme must be ws, wss, http or https")),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad("user info in the url is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' in host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("garbage after ']'"))?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = match port {
        None => {
            if secure {
                443
            } else {
                80
            }
        }
        Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let ws_url = format!("{}://{authority}{path}", if secure { "wss" } else { "ws" });
    // Validates the rest (characters the handshake request cannot carry).
    ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| bad("not a valid URI"))?;
    Ok(Target {
        secure,
        host: host.to_owned(),
        port,
        ws_url,
    })
}

/// Dials Gun peers.
#[derive(Debug, Clone, Copy)]
pub struct Client;

impl Client {
    /// Starts dialing `url` (`ws://`, `wss://`, `http://` or `https://`; `http` is rewritten
    /// to `ws` as Gun.js does — the path is used as given, Gun relays serve `/gun`).
    ///
    /// Before dialing, `url` is announced to the hub with [`Hub::dialing`], so writes made while
    /// the peer is down are queued for it. Each time a connection opens it is attached to `hub` as
    /// [`Direction::Outgoing`] with `url` exactly as given here, so the mesh can recognise a
    /// reconnect and re-send what that peer needs; when it closes it is detached, and the client
    /// dials again after a delay that grows from [`ClientOptions::backoff_initial`] to
    /// [`ClientOptions::backoff_max`], for ever, until [`ClientHandle::close`] (or dropping the
    /// handle). The client itself sends nothing but WebSocket pings.
    ///
    /// Fails at once for an unusable URL or options, for `wss://` without the `tls` feature, and
    /// outside a tokio runtime; connection failures are retried, never returned.
    pub fn dial(
        url: &str,
        hub: Arc<dyn Hub>,
        #[allow(unused_mut)] // only mutated with the `tls` feature
        mut opts: ClientOptions,
    ) -> Result<ClientHandle, Error> {
        opts.validate()?;
        let target = parse_url(url)?;
        #[cfg(not(feature = "tls"))]
        if target.secure {
            return Err(Error::TlsUnavailable {
                url: url.to_owned(),
            });
        }
        #[cfg(feature = "tls")]
        if target.secure && opts.tls.is_none() {
            opts.tls = Some(crate::TlsClientConfig::webpki_roots()?);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (status, _) = watch::channel(Status::default());
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(ClientShared {
            url: url.to_owned(),
            status,
            stop,
            traffic: Mutex::new((None, Traffic::default())),
        });
        // Registered before the first attempt, so what is written while the
        // peer is down is queued for it (see `Hub::dialing`).
        hub.dialing(url);
        let span = info_span!("gun_ws_client", url = %url);
        let task = runtime.spawn(run(shared.clone(), hub, opts, target).instrument(span));
        Ok(ClientHandle {
            shared,
            task: Some(task),
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Status {
    peer: Option<PeerId>,
    connects: u64,
    stopped: bool,
}

#[derive(Debug)]
struct ClientShared {
    url: String,
    status: watch::Sender<Status>,
    stop: watch::Sender<bool>,
    /// The open connection (if any) and the traffic of the closed ones.
    traffic: Mutex<(Option<Arc<ConnShared>>, Traffic)>,
}

/// Counters of a [`ClientHandle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Whether a connection is open now.
    pub connected: bool,
    /// Connections opened so far (1 + reconnects).
    pub connects: u64,
    /// Frames and bytes over all connections.
    pub traffic: Traffic,
}

/// Controls a dialing client; returned by [`Client::dial`].
///
/// Dropping the handle closes the client (like [`ClientHandle::close`]): keep it for as long as
/// the peer should stay connected.
#[derive(Debug)]
#[must_use = "dropping the handle closes the client"]
pub struct ClientHandle {
    shared: Arc<ClientShared>,
    task: Option<JoinHandle<()>>,
}

impl ClientHandle {
    /// The URL as given to [`Client::dial`].
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Whether a connection is open (attached to the hub) now.
    pub fn is_connected(&self) -> bool {
        self.shared.status.borrow().peer.is_some()
    }

    /// The hub's id for the open connection, if any.
    pub fn peer(&self) -> Option<PeerId> {
        self.shared.status.borrow().peer
    }

    /// Waits until a connection is open (returns at once if one is); returns the hub's id for
    /// it. Fails with [`Error::Closed`] once the client is closed. Wrap it in
    /// `tokio::time::timeout` to bound the wait.
    pub async fn connected(&self) -> Result<PeerId, Error> {
        let mut rx = self.shared.status.subscribe();
        let status = rx
            .wait_for(|s| s.peer.is_some() || s.stopped)
            .await
            .map_err(|_| Error::Closed)?;
        status.peer.ok_or(Error::Closed)
    }

    /// Counters since [`Client::dial`].
    pub fn stats(&self) -> ClientStats {
        let connects = self.shared.status.borrow().connects;
        let guard = self
            .shared
            .traffic
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut traffic = guard.1;
        if let Some(conn) = &guard.0 {
            traffic += conn.counters.snapshot();
        }
        ClientStats {
            connected: guard.0.is_some(),
            connects,
            traffic,
        }
    }

    /// Stops the client: closes the open connection (if any, with a WebSocket close frame) and
    /// stops reconnecting. Returns at once; see [`ClientHandle::shutdown`] to wait.
    pub fn close(&self) {
        self.shared.stop.send_replace(true);
    }

    /// [`close`](Self::close)s the client and waits until it has stopped; the hub has seen the
    /// detach of the last connection when this returns.
    pub async fn shutdown(mut self) {
        self.close();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.close();
    }
}

/// The delay before reconnect attempt `attempt` (0-based): `initial · 2^attempt`, capped at
/// `max`, drawn uniformly from its upper half.
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let base = initial
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let half = base / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

async fn run(shared: Arc<ClientShared>, hub: Arc<dyn Hub>, opts: ClientOptions, target: Target) {
    let mut stop = shared.stop.subscribe();
    let mut attempt: u32 = 0;
    // An unreachable peer is reported at warn once (with the time of the next
    // try), then at debug until it was reached again.
    let mut warned = false;
    let mut failure: Option<ConnectError> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let began = Instant::now();
        let connected = tokio::select! {
            () = stopped(&mut stop) => break,
            stream = connect(&target, &opts) => stream,
        };
        if connected.is_ok() && warned {
            info!(url = %target.ws_url, "peer reachable again");
            warned = false;
        }
        let lasted = match connected {
            Ok(Connected::Plain(ws)) => Some(session(*ws, &shared, &hub, &opts, &mut stop).await),
            #[cfg(feature = "tls")]
            Ok(Connected::Tls(ws)) => Some(session(*ws, &shared, &hub, &opts, &mut stop).await),
            Err(e) => {
                debug!(error = %e, attempt, "connect failed");
                failure = Some(e);
                None
            }
        };
        if *stop.borrow() {
            break;
        }
        if lasted.is_some_and(|d| d >= STABLE_AFTER) {
            attempt = 0;
        }
        let delay = backoff(attempt, opts.backoff_initial, opts.backoff_max);
        attempt = attempt.saturating_add(1);
        if let Some(e) = failure.take()
            && !warned
        {
            warn!(url = %target.ws_url, error = %e, retry_in = ?delay, "cannot reach peer; dialing again with backoff (further failures at debug level)");
            warned = true;
        }
        debug!(?delay, elapsed = ?began.elapsed(), "reconnecting after a pause");
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    shared.status.send_modify(|s| {
        s.peer = None;
        s.stopped = true;
    });
    debug!("client stopped");
}

enum Connected {
    Plain(Box<tokio_tungstenite::WebSocketStream<conn::Io<TcpStream>>>),
    #[cfg(feature = "tls")]
    Tls(
        Box<
            tokio_tungstenite::WebSocketStream<
                conn::Io<tokio_rustls::client::TlsStream<TcpStream>>,
            >,
        >,
    ),
}

/// Why a connection attempt failed (only logged).
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("timed out")]
    Timeout,
    #[error("tcp: {0}")]
    Tcp(#[source] std::io::Error),
    #[cfg(feature = "tls")]
    #[error("tls: {0}")]
    Tls(#[source] std::io::Error),
    #[error("TLS is not configured")]
    NoTls,
    #[error("websocket handshake: {0}")]
    Handshake(#[source] tokio_tungstenite::tungstenite::Error),
}

async fn connect(target: &Target, opts: &ClientOptions) -> Result<Connected, ConnectError> {
    let limit = opts.connect_timeout;
    let tcp = timeout(
        limit,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| ConnectError::Timeout)?
    .map_err(ConnectError::Tcp)?;
    let _ = tcp.set_nodelay(true);
    if target.secure {
        #[cfg(not(feature = "tls"))]
        return Err(ConnectError::NoTls);
        #[cfg(feature = "tls")]
        let Some(tls) = &opts.tls else {
            return Err(ConnectError::NoTls);
        };
        #[cfg(feature = "tls")]
        let stream = timeout(limit, tls.connect(&target.host, tcp))
            .await
            .map_err(|_| ConnectError::Timeout)?
            .map_err(ConnectError::Tls)?;
        #[cfg(feature = "tls")]
        return Ok(Connected::Tls(Box::new(
            handshake(target, opts, stream).await?,
        )));
    }
    Ok(Connected::Plain(Box::new(
        handshake(target, opts, tcp).await?,
    )))
}

async fn handshake<S>(
    target: &Target,
    opts: &ClientOptions,
    stream: S,
) -> Result<tokio_tungstenite::WebSocketStream<conn::Io<S>>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = Some(conn::ws_config(opts.max_message_bytes));
    let (ws, _response) = timeout(
        opts.connect_timeout,
        tokio_tungstenite::client_async_with_config(
            target.ws_url.as_str(),
            conn::Io::new(stream),
            config,
        ),
    )
    .await
    .map_err(|_| ConnectError::Timeout)?
    .map_err(ConnectError::Handshake)?;
    Ok(ws)
}

/// Runs one open connection until it ends; returns how long it lasted.
async fn session<S>(
    ws: tokio_tungstenite::WebSocketStream<conn::Io<S>>,
    shared: &ClientShared,
    hub: &Arc<dyn Hub>,
    opts: &ClientOptions,
    stop: &mut watch::Receiver<bool>,
) -> Duration
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let began = Instant::now();
    let conn = Arc::new(ConnShared::new(opts.send_queue));
    let link = WsLink::new(conn.clone());
    shared
        .traffic
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .0 = Some(conn.clone());
    let attachment = Attachment::new(
        &**hub,
        Arc::new(link),
        Direction::Outgoing {
            url: shared.url.clone(),
        },
    );
    let peer = attachment.peer;
    shared.status.send_modify(|s| {
        s.peer = Some(peer);
        s.connects += 1;
    });
    info!(peer = peer.0, "connected");
    let cfg = ConnConfig {
        keepalive: None,
        ping: opts.ping_interval,
        idle_timeout: opts.idle_timeout,
        rate_limit: None,
        masked: true,
    };
    let drive = conn::drive(ws, &**hub, peer, conn.clone(), cfg);
    tokio::pin!(drive);
    let (cause, reason) = tokio::select! {
        ended = &mut drive => ended,
        () = stopped(stop) => {
            conn.request_close(CloseCause::ClientClosed, "client closed");
            drive.await
        }
    };
    shared.status.send_modify(|s| s.peer = None);
    drop(attachment);
    {
        let mut guard = shared
            .traffic
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        guard.0 = None;
        guard.1 += conn.counters.snapshot();
    }
    match cause {
        CloseCause::ClientClosed => info!(peer = peer.0, "closed"),
        _ => warn!(
            peer = peer.0,
            ?cause,
            reason,
            "disconnected; will reconnect"
        ),
    }
    began.elapsed()
}

/// Resolves once `true` was sent (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

// Tests may panic on unexpected values.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        parse_url(url).unwrap()
    }

    #[test]
    fn http_urls_become_ws() {
        let a = t("http://127.0.0.1:8765/gun");
        assert_eq!(a.ws_url, "ws://127.0.0.1:8765/gun");
        assert!(!a.secure);
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 8765));
        let b = t("https://relay.example.org/gun?x=1");
        assert_eq!(b.ws_url, "wss://relay.example.org/gun?x=1");
        assert!(b.secure);
        assert_eq!(b.port, 443);
        assert_eq!(t("WS://h").ws_url, "ws://h/");
        assert_eq!(t("ws://h").port, 80);
        assert_eq!(t("wss://h:9/").port, 9);
        assert_eq!(t("ws://h?q").ws_url, "ws://h/?q");
        let v6 = t("ws://[::1]:8765/gun");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8765));
        assert_eq!(v6.ws_url, "ws://[::1]:8765/gun");
        assert_eq!(t("ws://h/gun#frag").ws_url, "ws://h/gun");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "",
            "127.0.0.1:8765/gun",
            "ftp://h/",
            "ws:///gun",
            "ws://h:99999/",
            "ws://h:x/",
            "ws://u:p@h/",
            "ws://[::1/",
            "ws://h/a b",
        ] {
            assert!(
                matches!(parse_url(url), Err(Error::InvalidUrl { .. })),
                "{url:?} accepted"
            );
        }
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let i = Duration::from_millis(250);
        let m = Duration::from_secs(10);
        for _ in 0..100 {
            let d0 = backoff(0, i, m);
            assert!(d0 >= Duration::from_millis(125) && d0 <= i, "{d0:?}");
            let d3 = backoff(3, i, m);
            assert!(d3 >= Duration::from_millis(1000) && d3 <= Duration::from_millis(2000));
            for a in [6, 10, 31, 32, 1000, u32::MAX] {
                let d = backoff(a, i, m);
                assert!(d >= m / 2 && d <= m, "{a}: {d:?}");
            }
        }
    }
}
