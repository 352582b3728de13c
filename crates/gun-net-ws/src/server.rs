//! The relay endpoint: one TCP port serving WebSocket upgrades on the Gun path and plain HTTP
//! for everything else.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use gun_dam::transport::{Direction, Hub, PeerId};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::{Instrument, debug, debug_span, info, info_span, warn};

use crate::conn::{self, Attachment, CloseCause, ConnConfig, ConnShared, Traffic, WsLink};
use crate::http::{self, HeadError, HttpHandler, HttpRequest, HttpResponse};
use crate::{Error, ServerOptions};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Sockets over `max_connections` being answered 503 at once; more are closed without an answer.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Time a refused socket gets to send its request and read the 503.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// `Retry-After` of the 503 sent past `max_connections`, in seconds.
const REFUSAL_RETRY_AFTER_SECS: u32 = 5;
/// Pending connections the kernel queues before `accept` (capped by `net.core.somaxconn`).
/// std's `TcpListener::bind` asks for 128: a burst of new clients overflows that and their
/// SYNs are retried only after a second, which shows as a slow accept rate.
const LISTEN_BACKLOG: u32 = 4096;

/// Totals of a [`Server`] since it was bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// WebSocket connections open now.
    pub connections_open: u64,
    /// WebSocket connections accepted since start.
    pub connections_total: u64,
    /// Frames and bytes of all WebSocket connections, open and closed.
    pub traffic: Traffic,
    /// Plain HTTP requests answered (including error answers).
    pub http_requests: u64,
    /// Connections closed because their send queue was full (slow or stalled peers).
    pub slow_peer_closes: u64,
    /// Frames the mesh handed to a connection that were not queued: its send queue was full
    /// (the first such frame closes it) or it was already closing.
    pub send_queue_drops: u64,
    /// Connections closed because the peer sent a message over the size limit.
    pub oversize_closes: u64,
    /// Sockets refused (503) because `max_connections` were open.
    pub refused: u64,
    /// WebSocket upgrades refused (429) because `max_connections_per_ip` were open from the
    /// same address.
    pub per_ip_refused: u64,
    /// Incoming frames dropped for being over a connection's `rate_limit`.
    pub rate_limited_frames: u64,
    /// Connections closed because they kept over their `rate_limit`.
    pub rate_limit_closes: u64,
}

/// One open WebSocket connection of a [`Server`], for dashboards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The id the hub gave it.
    pub peer: PeerId,
    /// The remote address.
    pub remote_addr: SocketAddr,
    /// When the WebSocket handshake completed.
    pub connected_at: SystemTime,
    /// Its frames and bytes so far.
    pub traffic: Traffic,
    /// Frames waiting in its send queue.
    pub queued: usize,
}

/// A running relay endpoint.
///
/// Serves, on one TCP port, WebSocket upgrades on [`ServerOptions::path`] (`/gun`, also with a
/// query string) and hands every other HTTP request to an [`HttpHandler`]. Each WebSocket
/// connection is attached to the [`Hub`] as [`Direction::Incoming`]; text frames (and binary
/// frames holding UTF-8) go to [`Hub::receive`]; the hub answers through the connection's
/// [`Link`](gun_dam::transport::Link).
///
/// Dropping the server stops it like [`Server::shutdown`] without waiting.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    opts: ServerOptions,
    hub: Arc<dyn Hub>,
    http: Arc<dyn HttpHandler>,
    registry: Mutex<Registry>,
    http_requests: AtomicU64,
    refused: AtomicU64,
    per_ip_refused: AtomicU64,
    /// Open WebSocket connections per remote address (with `max_connections_per_ip`).
    per_ip: Mutex<HashMap<IpAddr, IpSlots>>,
}

/// The connections of one remote address.
#[derive(Default)]
struct IpSlots {
    open: usize,
    /// A refusal was logged since the address was last under its limit.
    warned: bool,
}

/// One of an address's connection slots; given back on drop.
struct IpSlot<'a> {
    shared: &'a Shared,
    ip: IpAddr,
}

impl Drop for IpSlot<'_> {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = map.get_mut(&self.ip) {
            slots.open = slots.open.saturating_sub(1);
            slots.warned = false;
            if slots.open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Registry {
    next_key: u64,
    shutting_down: bool,
    open: HashMap<u64, Entry>,
    /// Traffic of connections that have closed.
    retired: Traffic,
    /// Frames dropped by connections that have closed.
    retired_dropped: u64,
    /// Frames over the rate dropped by connections that have closed.
    retired_rate_dropped: u64,
    rate_limit_closes: u64,
    total: u64,
    slow_peer_closes: u64,
    oversize_closes: u64,
}

struct Entry {
    peer: PeerId,
    remote_addr: SocketAddr,
    connected_at: SystemTime,
    conn: Arc<ConnShared>,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> ServerStats {
        let refused = self.refused.load(Ordering::Relaxed);
        let http_requests = self.http_requests.load(Ordering::Relaxed);
        let reg = self.registry();
        let mut traffic = reg.retired;
        let mut send_queue_drops = reg.retired_dropped;
        let mut rate_limited_frames = reg.retired_rate_dropped;
        for entry in reg.open.values() {
            traffic += entry.conn.counters.snapshot();
            send_queue_drops += entry.conn.dropped.load(Ordering::Relaxed);
            rate_limited_frames += entry.conn.rate_dropped.load(Ordering::Relaxed);
        }
        ServerStats {
            connections_open: reg.open.len() as u64,
            connections_total: reg.total,
            traffic,
            http_requests,
            slow_peer_closes: reg.slow_peer_closes,
            send_queue_drops,
            oversize_closes: reg.oversize_closes,
            refused,
            per_ip_refused: self.per_ip_refused.load(Ordering::Relaxed),
            rate_limited_frames,
            rate_limit_closes: reg.rate_limit_closes,
        }
    }

    /// Takes a connection slot of `ip`, or `None` when its `max_connections_per_ip` are open.
    fn ip_slot(&self, ip: IpAddr) -> Option<Option<IpSlot<'_>>> {
        let Some(max) = self.opts.max_connections_per_ip else {
            return Some(None);
        };
        let mut map = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let slots = map.entry(ip).or_default();
        if slots.open >= max {
            self.per_ip_refused.fetch_add(1, Ordering::Relaxed);
            if !slots.warned {
                slots.warned = true;
                warn!(%ip, max, "too many connections from one address; refusing upgrades with 429 (logged once until one closes)");
            }
            return None;
        }
        slots.open += 1;
        Some(Some(IpSlot { shared: self, ip }))
    }
}

/// Reads a [`Server`]'s [`ServerStats`] while it runs ([`Server::stats_source`]).
#[derive(Debug, Clone)]
pub struct StatsSource(std::sync::Weak<Shared>);

impl StatsSource {
    /// The server's totals now; `None` once the server is gone.
    pub fn get(&self) -> Option<ServerStats> {
        self.0.upgrade().map(|shared| shared.stats())
    }
}

impl Server {
    /// Binds `opts.addr` and starts serving on the current tokio runtime.
    ///
    /// `http` answers plain HTTP requests; pass [`NotFound`](crate::NotFound) for none.
    pub fn bind(
        opts: ServerOptions,
        hub: Arc<dyn Hub>,
        http: Arc<dyn HttpHandler>,
    ) -> Result<Server, Error> {
        opts.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let addr = opts.addr;
        let bind_err = |source| Error::Bind { addr, source };
        let listener = {
            let _guard = runtime.enter();
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(bind_err)?;
            // SO_REUSEADDR (as std's bind sets on Unix): a restarted relay gets its port back
            // at once.
            #[cfg(unix)]
            socket.set_reuseaddr(true).map_err(bind_err)?;
            socket.bind(addr).map_err(bind_err)?;
            socket.listen(LISTEN_BACKLOG).map_err(bind_err)?
        };
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let slots = Arc::new(Semaphore::new(opts.max_connections));
        let shared = Arc::new(Shared {
            opts,
            hub,
            http,
            registry: Mutex::new(Registry::default()),
            http_requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            per_ip_refused: AtomicU64::new(0),
            per_ip: Mutex::new(HashMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let span = info_span!("gun_ws_server", addr = %local_addr);
        let task =
            runtime.spawn(accept_loop(listener, shared.clone(), slots, stop_rx).instrument(span));
        info!(addr = %local_addr, path = %shared.opts.path, "gun websocket server listening");
        Ok(Server {
            local_addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The WebSocket URL of this server as seen from this machine, e.g.
    /// `ws://127.0.0.1:8765/gun` (an unspecified bind address is replaced by loopback).
    pub fn url(&self) -> String {
        let mut addr = self.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        #[cfg(feature = "tls")]
        let scheme = if self.shared.opts.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        #[cfg(not(feature = "tls"))]
        let scheme = "ws";
        format!("{scheme}://{addr}{}", self.shared.opts.path)
    }

    /// Totals since start.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// A handle that reads [`Server::stats`] without keeping the server alive (for an
    /// [`HttpHandler`] of this same server, such as a metrics page).
    pub fn stats_source(&self) -> StatsSource {
        StatsSource(Arc::downgrade(&self.shared))
    }

    /// The open WebSocket connections.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let reg = self.shared.registry();
        let mut out: Vec<_> = reg
            .open
            .values()
            .map(|e| ConnectionInfo {
                peer: e.peer,
                remote_addr: e.remote_addr,
                connected_at: e.connected_at,
                traffic: e.conn.counters.snapshot(),
                queued: e.conn.queued(),
            })
            .collect();
        out.sort_by_key(|c| c.connected_at);
        out
    }

    /// Stops accepting, closes every connection (WebSocket close code 1001) and waits up to
    /// [`ServerOptions::shutdown_grace`] for them; connections still open then are dropped.
    /// Every attached peer has been detached from the hub when this returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut refusing_logged = false;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        if !refusing_logged {
                            refusing_logged = true;
                            warn!(%remote, max = shared.opts.max_connections, "max_connections open: refusing new sockets with 503 (logged once until one closes)");
                        }
                        // Answered with a reason while few refusals are under way; past that
                        // (a flood), closed at once.
                        if let Ok(r) = refusals.clone().try_acquire_owned() {
                            tasks.spawn(refuse(tcp, shared.clone(), r));
                        }
                        continue;
                    };
                    if slots.available_permits() > 0 {
                        refusing_logged = false;
                    }
                    // A debug span: at info, every open connection's span would hold about
                    // 1.4 KB in the subscriber for its whole life. Closes the relay decides
                    // are logged with the address (`run_websocket`).
                    let span = debug_span!("conn", %remote);
                    tasks.spawn(handle_socket(tcp, remote, shared.clone(), permit).instrument(span));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let open = {
        let mut reg = shared.registry();
        reg.shutting_down = true;
        for entry in reg.open.values() {
            entry
                .conn
                .request_close(CloseCause::Shutdown, "server shutting down");
        }
        reg.open.len()
    };
    debug!(open, tasks = tasks.len(), "shutting down");
    let grace = shared.opts.shutdown_grace;
    if timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            left = tasks.len(),
            "connections still open after the shutdown grace; dropping them"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    info!("gun websocket server stopped");
}

/// Answers a socket over [`ServerOptions::max_connections`]: reads its request head (briefly)
/// and answers `503 Service Unavailable` with the reason and a `Retry-After`, so that a client
/// (or its operator) sees why, rather than a reset connection.
async fn refuse(mut tcp: TcpStream, shared: Arc<Shared>, _slot: OwnedSemaphorePermit) {
    #[cfg(feature = "tls")]
    if shared.opts.tls.is_some() {
        // An HTTP answer would mean nothing inside a TLS handshake: closed as it is.
        return;
    }
    let max = shared.opts.max_connections;
    // The head is read so that closing does not reset the connection (unread data would)
    // before the client reads the answer.
    let _ = timeout(
        REFUSAL_TIMEOUT,
        http::read_head(&mut tcp, shared.opts.max_http_head_bytes),
    )
    .await;
    let mut resp = HttpResponse::text(503, max_connections_refusal(max));
    resp.headers.push((
        "Retry-After".to_owned(),
        REFUSAL_RETRY_AFTER_SECS.to_string(),
    ));
    let _ = timeout(
        REFUSAL_TIMEOUT,
        http::write_response(&mut tcp, &resp, false),
    )
    .await;
}

/// The body of the `503` answer to a connection over `max` ([`ServerOptions::max_connections`]).
pub fn max_connections_refusal(max: usize) -> String {
    format!(
        "Service Unavailable: the relay is at its connection limit ({max} open); try again later\n"
    )
}

async fn handle_socket(
    tcp: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    #[cfg(feature = "tls")]
    if let Some(tls) = &shared.opts.tls {
        // Boxed: a TLS connection's state is large, and the task of a plain one should not
        // reserve room for it (a task's size is that of its largest await point).
        Box::pin(async {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            match timeout(shared.opts.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    if let Some((ws, _ip_slot)) = serve(stream, remote, &shared).await {
                        run_websocket(ws, remote, &shared).await;
                    }
                }
                Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                Err(_) => debug!("TLS handshake timed out"),
            }
        })
        .await;
        return;
    }
    // The request and the upgrade are boxed, and freed once done: an open WebSocket's task
    // then holds only the connection (issue 15: memory per idle connection).
    let upgraded = Box::pin(serve(tcp, remote, &shared)).await;
    let Some((run, _ip_slot)) =
        upgraded.map(|(ws, slot)| (run_websocket(ws, remote, &shared), slot))
    else {
        return;
    };
    run.await;
}

/// An upgraded connection and its slot among its address's connections.
type Upgraded<'a, S> = (WebSocketStream<conn::Io<S>>, Option<IpSlot<'a>>);

/// Reads the request head; answers plain HTTP requests (and refusals) and returns `None`, or
/// upgrades a WebSocket request on the Gun path and returns the connection.
async fn serve<S>(
    mut stream: S,
    remote: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<Upgraded<'_, S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let opts = &shared.opts;
    let deadline = tokio::time::Instant::now() + opts.handshake_timeout;
    let head = match tokio::time::timeout_at(
        deadline,
        http::read_head(&mut stream, opts.max_http_head_bytes),
    )
    .await
    {
        Err(_) => {
            debug!("request head not received in time");
            http::write_response(
                &mut stream,
                &HttpResponse::text(408, "Request Timeout\n"),
                false,
            )
            .await;
            return None;
        }
        Ok(Err(HeadError::Gone)) => return None,
        Ok(Err(HeadError::TooLarge)) => {
            count_http(shared);
            http::write_response(
                &mut stream,
                &HttpResponse::text(431, "Request Header Fields Too Large\n"),
                false,
            )
            .await;
            return None;
        }
        Ok(Err(HeadError::Malformed)) => {
            count_http(shared);
            http::write_response(
                &mut stream,
                &HttpResponse::text(400, "Bad Request\n"),
                false,
            )
            .await;
            return None;
        }
        Ok(Ok(head)) => head,
    };

    if head.is_websocket_upgrade() {
        if head.path != opts.path {
            debug!(path = %head.path, "websocket upgrade on another path");
            count_http(shared);
            http::write_response(&mut stream, &HttpResponse::not_found(), false).await;
            return None;
        }
        let accept = match head.websocket_accept() {
            Ok(accept) => accept,
            Err(refusal) => {
                count_http(shared);
                http::write_response(&mut stream, &refusal, false).await;
                return None;
            }
        };
        let Some(ip_slot) = shared.ip_slot(remote.ip()) else {
            count_http(shared);
            http::write_response(
                &mut stream,
                &HttpResponse::text(
                    429,
                    "Too Many Requests: too many connections from your address\n",
                ),
                false,
            )
            .await;
            return None;
        };
        if stream
            .write_all(&http::switching_protocols(&accept))
            .await
            .is_err()
            || stream.flush().await.is_err()
        {
            return None;
        }
        let rest = head.rest;
        // The request's other parts are not needed any more: free them now rather than when
        // the connection ends.
        drop((head.method, head.path, head.query, head.headers));
        let ws = WebSocketStream::from_partially_read(
            conn::Io::new(stream),
            rest,
            Role::Server,
            Some(conn::ws_config(opts.max_message_bytes)),
        )
        .await;
        return Some((ws, ip_slot));
    }
    // Boxed: its answer path should not add to the size of the upgrade's future.
    Box::pin(serve_http(stream, head, remote, deadline, shared)).await;
    None
}

/// Answers one plain HTTP request whose head was read.
async fn serve_http<S>(
    mut stream: S,
    head: http::Head,
    remote: SocketAddr,
    deadline: tokio::time::Instant,
    shared: &Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let opts = &shared.opts;
    let mut head = head;
    count_http(shared);
    let body = match tokio::time::timeout_at(
        deadline,
        http::read_body(&mut stream, &mut head, opts.max_http_body_bytes),
    )
    .await
    {
        Err(_) => {
            return http::write_response(
                &mut stream,
                &HttpResponse::text(408, "Request Timeout\n"),
                false,
            )
            .await;
        }
        Ok(Err(refusal)) => return http::write_response(&mut stream, &refusal, false).await,
        Ok(Ok(body)) => body,
    };
    let head_only = head.method == "HEAD";
    let req = HttpRequest {
        method: head.method,
        path: head.path,
        query: head.query,
        headers: head.headers,
        body,
        remote_addr: remote,
    };
    let handler = shared.http.clone();
    let method = req.method.clone();
    let path = req.path.clone();
    let resp = match tokio::task::spawn_blocking(move || handler.handle(&req)).await {
        Ok(resp) => resp,
        Err(e) => {
            warn!(error = %e, %method, %path, "HTTP handler failed");
            HttpResponse::text(500, "Internal Server Error\n")
        }
    };
    debug!(%method, %path, status = resp.status, "http");
    http::write_response(&mut stream, &resp, head_only).await;
}

fn count_http(shared: &Shared) {
    shared.http_requests.fetch_add(1, Ordering::Relaxed);
}

/// Attaches an upgraded connection to the hub and registers it, and returns the future that
/// runs it. A plain function building the future: an `async fn` would keep the socket it is
/// given beside the driver it moves it into.
fn run_websocket<'a, S>(
    ws: WebSocketStream<conn::Io<S>>,
    remote: SocketAddr,
    shared: &'a Arc<Shared>,
) -> impl Future<Output = ()> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + 'a,
{
    let opts = &shared.opts;
    let conn = Arc::new(ConnShared::new(opts.send_queue));
    let link = WsLink::new(conn.clone());
    let attachment = Attachment::new(&*shared.hub, Arc::new(link), Direction::Incoming);
    let peer = attachment.peer;
    let registered = Registered::new(shared, peer, remote, conn.clone());
    debug!(peer = peer.0, "websocket peer attached");
    let cfg = ConnConfig {
        keepalive: opts.keepalive,
        ping: None,
        idle_timeout: opts.idle_timeout,
        rate_limit: opts.rate_limit,
        masked: false,
    };
    let mut driver = conn::drive(ws, &*shared.hub, peer, conn, cfg);
    async move {
        // Awaited in place (it is `Unpin`): `driver.await` would move it into a second slot.
        let (cause, reason) = (&mut driver).await;
        drop(driver);
        drop(attachment);
        drop(registered);
        match cause {
            CloseCause::SlowPeer => shared.registry().slow_peer_closes += 1,
            CloseCause::TooBig => shared.registry().oversize_closes += 1,
            CloseCause::RateLimited => shared.registry().rate_limit_closes += 1,
            _ => {}
        }
        if matches!(
            cause,
            CloseCause::SlowPeer | CloseCause::TooBig | CloseCause::RateLimited
        ) {
            info!(%remote, peer = peer.0, reason, "connection closed by the server");
        }
        debug!(peer = peer.0, ?cause, reason, "websocket peer detached");
    }
}

/// Resolves once `true` was sent (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A connection's entry in the registry; removed (and its traffic added to the totals) on drop.
struct Registered<'a> {
    shared: &'a Shared,
    key: u64,
}

impl<'a> Registered<'a> {
    fn new(shared: &'a Shared, peer: PeerId, remote: SocketAddr, conn: Arc<ConnShared>) -> Self {
        let mut reg = shared.registry();
        if reg.shutting_down {
            conn.request_close(CloseCause::Shutdown, "server shutting down");
        }
        reg.next_key += 1;
        reg.total += 1;
        let key = reg.next_key;
        reg.open.insert(
            key,
            Entry {
                peer,
                remote_addr: remote,
                connected_at: SystemTime::now(),
                conn,
            },
        );
        Self { shared, key }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut reg = self.shared.registry();
        if let Some(entry) = reg.open.remove(&self.key) {
            reg.retired += entry.conn.counters.snapshot();
            reg.retired_dropped += entry.conn.dropped.load(Ordering::Relaxed);
            reg.retired_rate_dropped += entry.conn.rate_dropped.load(Ordering::Relaxed);
        }
    }
}
// Tests may panic on unexpected values.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct NoHub;
    impl Hub for NoHub {
        fn attach(&self, _: Arc<dyn gun_dam::transport::Link>, _: Direction) -> PeerId {
            PeerId(1)
        }
        fn receive(&self, _: PeerId, _: &str) {}
        fn detach(&self, _: PeerId) {}
    }

    /// Every open socket holds its task for its whole life, and a task is as large as its
    /// largest await point: buffers inside the futures (a read chunk, a TLS session, the
    /// HTTP answer path, the upgrade) would be paid by every idle WebSocket connection. The
    /// phases before the upgrade are boxed, buffers are on the heap, and the connection is
    /// one future (no reader and writer pair); this keeps it so.
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        client.set_nonblocking(true).unwrap();
        let tcp = TcpStream::from_std(client).unwrap();
        let shared = Arc::new(Shared {
            opts: ServerOptions::default(),
            hub: Arc::new(NoHub),
            http: Arc::new(crate::NotFound),
            registry: Mutex::new(Registry::default()),
            http_requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            per_ip_refused: AtomicU64::new(0),
            per_ip: Mutex::new(HashMap::new()),
        });
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let task = handle_socket(tcp, addr, shared, permit);
        let size = size_of_val(&task);
        // 856 bytes when written: the running connection (socket, driver, guards); the
        // request and upgrade are boxed apart and freed before it runs.
        assert!(size <= 1024, "a connection's task future is {size} bytes");
    }
}
