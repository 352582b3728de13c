//! One WebSocket connection: the [`Link`] the mesh sends through, its send queue, and the
//! driver that moves frames between the socket, the queue and the [`Hub`].
//!
//! Shared by the server (incoming sockets) and the client (outgoing ones).
//!
//! Memory (issue 15: a relay holds 100k mostly idle connections): a connection is one future
//! that owns its socket and polls reading, writing and its timers in turn — no split halves
//! behind a lock, no second task. The send queue is a `VecDeque` in the connection's shared
//! state, woken through an [`AtomicWaker`]: empty, it holds no allocation (a bounded channel
//! allocates a block of slots up front).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use gun_dam::transport::{Direction, Hub, Link, LinkError, PeerId, Ready};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep, interval_at, sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tracing::{debug, warn};

/// How long one side waits for the other once a connection is closing (our Close frame to be
/// written, or the peer's Close reply to arrive).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Frames taken from the queue before the socket is flushed.
const WRITE_BATCH: usize = 64;
/// Frames read in one poll before the driver yields to other tasks.
const READ_BATCH: usize = 64;
/// Per-connection read buffer. tungstenite allocates (and zero-fills) it eagerly, for every
/// connection, idle or not (its default is 128 KiB); it grows on demand to hold a larger
/// frame. It is also the most read from the socket per call, so a 256 KiB frame takes 256
/// reads: a few hundred microseconds, against the kilobytes each of 100k idle connections
/// would pay for a larger one (issue 15: 8 KB per idle subscribed connection).
const READ_BUFFER_BYTES: usize = 1 << 10;
/// Bytes buffered by tungstenite before it writes to the socket (we flush after every batch).
const WRITE_BUFFER_BYTES: usize = 16 << 10;

/// Frame and byte counts of one connection or of many added up.
///
/// Counted are WebSocket data messages (text and binary, including the `[]` keep-alives a server
/// sends), not pings, pongs or close frames; bytes are payload bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Data messages received.
    pub frames_in: u64,
    /// Data messages sent.
    pub frames_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Self) {
        self.frames_in += o.frames_in;
        self.frames_out += o.frames_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// Live counters of one connection.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Counters {
    fn count_in(&self, bytes: usize) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn count_out(&self, bytes: usize) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Traffic {
        Traffic {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Why a connection closed (the first cause recorded wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// The mesh called [`Link::close`], or dropped the link.
    Requested,
    /// The send queue was full: the peer does not read fast enough.
    SlowPeer,
    /// The peer sent a message over the size limit.
    TooBig,
    /// The peer kept sending over its message rate.
    RateLimited,
    /// The server is shutting down.
    Shutdown,
    /// Nothing was received for longer than the idle timeout.
    Idle,
    /// The local client was closed by its handle.
    ClientClosed,
    /// The peer closed, the socket failed, or the protocol was violated.
    Remote,
}

impl CloseCause {
    fn code(self) -> CloseCode {
        match self {
            Self::Requested | Self::ClientClosed | Self::Remote | Self::Idle => CloseCode::Normal,
            Self::SlowPeer | Self::RateLimited => CloseCode::Policy,
            Self::TooBig => CloseCode::Size,
            Self::Shutdown => CloseCode::Away,
        }
    }
}

/// State shared by a connection's [`WsLink`], its driver and the server's registry.
pub(crate) struct ConnShared {
    pub(crate) counters: Counters,
    /// Frames the link refused: the queue was full, or the connection was closing.
    pub(crate) dropped: AtomicU64,
    /// Frames received over the connection's message rate and dropped.
    pub(crate) rate_dropped: AtomicU64,
    /// Frames waiting to be written, at most `capacity`. The driver takes them out in batches
    /// (the whole queue when it is short), so an idle connection's queue holds no allocation.
    queue: Mutex<VecDeque<Arc<str>>>,
    capacity: usize,
    closing: AtomicBool,
    cause: Mutex<Option<(CloseCause, String)>>,
    /// The driver's task: woken when a frame is queued or a close requested.
    waker: AtomicWaker,
}

impl fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnShared")
            .field("traffic", &self.counters.snapshot())
            .field("queued", &self.queued())
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl ConnShared {
    /// A connection whose send queue holds at most `capacity` frames (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            counters: Counters::default(),
            dropped: AtomicU64::new(0),
            rate_dropped: AtomicU64::new(0),
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            closing: AtomicBool::new(false),
            cause: Mutex::new(None),
            waker: AtomicWaker::new(),
        }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Arc<str>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the connection to close; the first request's cause and reason are kept.
    pub(crate) fn request_close(&self, cause: CloseCause, reason: &str) {
        {
            let mut slot = self.cause.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some((cause, reason.to_owned()));
            }
        }
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn cause(&self) -> Option<(CloseCause, String)> {
        self.cause
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Frames waiting in the send queue.
    pub(crate) fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Up to [`WRITE_BATCH`] queued frames, oldest first; the whole queue (and its
    /// allocation) when it is no longer than that.
    fn take_batch(&self) -> VecDeque<Arc<str>> {
        let mut q = self.queue();
        if q.len() <= WRITE_BATCH {
            std::mem::take(&mut *q)
        } else {
            q.drain(..WRITE_BATCH).collect()
        }
    }

    /// Every queued frame, oldest first.
    fn take_all(&self) -> VecDeque<Arc<str>> {
        std::mem::take(&mut *self.queue())
    }
}

/// The [`Link`] handed to the hub for one connection. Dropping it closes the connection.
pub(crate) struct WsLink {
    shared: Arc<ConnShared>,
}

impl WsLink {
    /// The link of the connection `shared` (whose capacity bounds the queue).
    pub(crate) fn new(shared: Arc<ConnShared>) -> Self {
        Self { shared }
    }
}

impl Drop for WsLink {
    fn drop(&mut self) {
        self.shared
            .request_close(CloseCause::Requested, "link dropped");
    }
}

impl fmt::Debug for WsLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsLink")
            .field("shared", &self.shared)
            .finish()
    }
}

impl Link for WsLink {
    fn send(&self, frame: Arc<str>) -> Result<(), LinkError> {
        let shared = &*self.shared;
        if shared.is_closing() {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(LinkError::Closed);
        }
        {
            let mut q = shared.queue();
            if q.len() < shared.capacity {
                q.push_back(frame);
                drop(q);
                shared.waker.wake();
                return Ok(());
            }
        }
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        warn!(
            queue = shared.capacity,
            "send queue full: the peer is not reading; closing the connection"
        );
        shared.request_close(CloseCause::SlowPeer, "send queue full");
        Err(LinkError::Full)
    }

    fn close(&self, reason: &str) {
        debug!(reason, "close requested by the mesh");
        self.shared.request_close(CloseCause::Requested, reason);
    }
}

/// A connection attached to a hub: detaches when dropped, so the hub hears of the end even if
/// the connection's task is aborted (shutdown grace exceeded, runtime dropped).
pub(crate) struct Attachment<'a> {
    hub: &'a dyn Hub,
    pub(crate) peer: PeerId,
}

impl<'a> Attachment<'a> {
    pub(crate) fn new(hub: &'a dyn Hub, link: Arc<dyn Link>, dir: Direction) -> Self {
        let peer = hub.attach(link, dir);
        Self { hub, peer }
    }
}

impl Drop for Attachment<'_> {
    fn drop(&mut self) {
        self.hub.detach(self.peer);
    }
}

/// Timers and limits of a running connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnConfig {
    /// Interval of the `[]` text keep-alive (server side).
    pub(crate) keepalive: Option<Duration>,
    /// Interval of WebSocket pings (client side).
    pub(crate) ping: Option<Duration>,
    /// Close after this long without any incoming frame.
    pub(crate) idle_timeout: Option<Duration>,
    /// Incoming data frames per second (server side).
    pub(crate) rate_limit: Option<crate::RateLimit>,
    /// Mask our frames: the client side (RFC 6455 5.3).
    pub(crate) masked: bool,
}

/// A token bucket over a connection's incoming data frames.
struct Bucket {
    limit: crate::RateLimit,
    tokens: f64,
    last: Instant,
    /// Frames dropped on this connection; past `close_after`, it is closed.
    dropped: u64,
    close_after: u64,
}

/// What to do with one incoming frame.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Take,
    Drop { first: bool },
    Close,
}

impl Bucket {
    fn new(limit: crate::RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            last: now,
            dropped: 0,
            close_after: u64::from(limit.per_sec)
                * u64::from(crate::options::RATE_LIMIT_CLOSE_AFTER_SECS),
        }
    }

    fn admit(&mut self, now: Instant) -> Admit {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(self.limit.per_sec))
            .min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admit::Take;
        }
        self.dropped += 1;
        if self.dropped > self.close_after {
            Admit::Close
        } else {
            Admit::Drop {
                first: self.dropped == 1,
            }
        }
    }
}

/// The tungstenite configuration for a message size limit.
pub(crate) fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// Pumps frames until the connection ends; resolves to why it ended. The caller attached
/// `peer` to the hub before and detaches it after.
///
/// One future does it all, polled as one: reading (after [`Hub::ready`], with the idle
/// timeout and the rate limit), writing the queue in batches (then flushing), the keep-alive
/// or ping timer, and the close handshake. A connection waiting for either side holds the
/// socket, its timers and a few flags. A plain function building a named future (not an
/// `async fn`): an `async fn` keeps its arguments, the socket among them, beside the state
/// it moves them into.
pub(crate) fn drive<S>(
    ws: WebSocketStream<Io<S>>,
    hub: &dyn Hub,
    peer: PeerId,
    shared: Arc<ConnShared>,
    cfg: ConnConfig,
) -> Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Driver {
        ws,
        hub,
        peer,
        shared,
        idle: cfg.idle_timeout,
        bucket: cfg.rate_limit.map(|l| Bucket::new(l, Instant::now())),
        keepalive: cfg.keepalive.map(ticker),
        ping: cfg.ping.map(ticker),
        ready: Some(hub.ready(peer)),
        timer: Box::pin(sleep(cfg.idle_timeout.unwrap_or(CLOSE_GRACE))),
        masked: cfg.masked,
        flush: false,
        yielded: false,
        close_sent: false,
        closing: false,
        read_done: false,
        write_done: false,
    }
}

/// A running connection (see [`drive`]).
pub(crate) struct Driver<'a, S> {
    ws: WebSocketStream<Io<S>>,
    hub: &'a dyn Hub,
    peer: PeerId,
    shared: Arc<ConnShared>,
    idle: Option<Duration>,
    bucket: Option<Bucket>,
    keepalive: Option<Interval>,
    ping: Option<Interval>,
    /// The hub's backpressure: nothing more is read until it resolves.
    ready: Option<Ready>,
    /// The idle timeout while running; the close grace once closing.
    timer: Pin<Box<Sleep>>,
    /// Our frames are masked (the client side).
    masked: bool,
    /// Frames were written since the socket's last flush.
    flush: bool,
    /// The driver has yielded once since frames were queued (see [`Driver::fill`]).
    yielded: bool,
    /// Our Close frame is written (while closing).
    close_sent: bool,
    closing: bool,
    read_done: bool,
    write_done: bool,
}

impl<S> Future for Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Output = (CloseCause, String);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        std::task::ready!(this.step(cx));
        Poll::Ready(
            this.shared
                .cause()
                .unwrap_or((CloseCause::Remote, String::new())),
        )
    }
}

/// What reading one frame leads to.
enum Read {
    Continue,
    Stop,
}

impl<S> Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.waker.register(cx.waker());
        if !self.closing {
            if self.poll_read(cx).is_ready() {
                self.read_done = true;
                self.shared.request_close(CloseCause::Remote, "");
            }
            if !self.shared.is_closing() && self.poll_write(cx).is_ready() {
                self.write_done = true;
                self.shared.request_close(CloseCause::Remote, "");
            }
            if !self.shared.is_closing() {
                return Poll::Pending;
            }
            self.start_closing();
        }
        if !self.write_done && self.poll_drain(cx).is_ready() {
            self.write_done = true;
        }
        if !self.read_done && self.poll_read_closing(cx).is_ready() {
            self.read_done = true;
        }
        if (self.write_done && self.read_done) || self.timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Reads frames while the hub takes them. Ready when reading ended (the peer closed, the
    /// socket failed, a limit closed the connection).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..READ_BATCH {
            // Backpressure: while the hub is busy with this peer's earlier messages, nothing
            // more is read (the socket's buffers fill and TCP slows the peer down).
            if let Some(ready) = &mut self.ready {
                if ready.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.ready = None;
                if let Some(limit) = self.idle {
                    self.timer.as_mut().reset(Instant::now() + limit);
                }
            }
            let message = match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => {
                    if let Some(limit) = self.idle
                        && self.timer.as_mut().poll(cx).is_ready()
                    {
                        debug!(
                            peer = self.peer.0,
                            ?limit,
                            "nothing received within the idle timeout"
                        );
                        self.shared.request_close(CloseCause::Idle, "idle timeout");
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Ready(Some(Ok(message))) => message,
                Poll::Ready(Some(Err(WsError::Capacity(e)))) => {
                    warn!(peer = self.peer.0, error = %e, "message over the size limit; closing the connection");
                    self.shared
                        .request_close(CloseCause::TooBig, "message too big");
                    return Poll::Ready(());
                }
                Poll::Ready(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) => {
                    return Poll::Ready(());
                }
                Poll::Ready(Some(Err(e))) => {
                    debug!(peer = self.peer.0, error = %e, "websocket read failed; closing the connection");
                    return Poll::Ready(());
                }
            };
            match self.on_message(message) {
                Read::Continue => {}
                Read::Stop => return Poll::Ready(()),
            }
            self.ready = Some(self.hub.ready(self.peer));
        }
        // A peer with much to say: let other connections run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn on_message(&mut self, message: Message) -> Read {
        let (shared, peer) = (&*self.shared, self.peer);
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && let Some(bucket) = &mut self.bucket
        {
            match bucket.admit(Instant::now()) {
                Admit::Take => {}
                Admit::Drop { first } => {
                    shared.counters.count_in(message.len());
                    shared.rate_dropped.fetch_add(1, Ordering::Relaxed);
                    if first {
                        warn!(
                            peer = peer.0,
                            per_sec = bucket.limit.per_sec,
                            burst = bucket.limit.burst,
                            "peer over its message rate; dropping frames (logged once per connection)"
                        );
                    }
                    return Read::Continue;
                }
                Admit::Close => {
                    shared.counters.count_in(message.len());
                    shared.rate_dropped.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        peer = peer.0,
                        dropped = bucket.dropped,
                        "peer kept over its message rate; closing the connection"
                    );
                    shared.request_close(CloseCause::RateLimited, "message rate exceeded");
                    return Read::Stop;
                }
            }
        }
        self.deliver(message);
        Read::Continue
    }

    /// Counts a received message and hands its text to the hub (unless closing).
    fn deliver(&self, message: Message) {
        let (shared, peer) = (&*self.shared, self.peer);
        match message {
            Message::Text(text) => {
                shared.counters.count_in(text.len());
                if !shared.is_closing() {
                    self.hub.receive(peer, text.as_str());
                }
            }
            Message::Binary(bytes) => {
                shared.counters.count_in(bytes.len());
                match std::str::from_utf8(&bytes) {
                    Ok(text) if !shared.is_closing() => self.hub.receive(peer, text),
                    Ok(_) => {}
                    Err(_) => debug!(
                        peer = peer.0,
                        len = bytes.len(),
                        "dropping a binary frame that is not UTF-8 text"
                    ),
                }
            }
            Message::Close(frame) => debug!(peer = peer.0, ?frame, "peer sent close"),
            // tungstenite answers pings by itself; pongs only prove the peer is alive.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    /// While closing: takes what the peer still sends (its Close reply ends it), delivering
    /// nothing.
    fn poll_read_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(message))) => self.deliver(message),
                Poll::Ready(None | Some(Err(_))) => return Poll::Ready(()),
            }
        }
    }

    /// Writes the queue in batches, each flushed, and the keep-alives or pings. Ready when
    /// writing failed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // Our frames and tungstenite's (pongs) out, first: a batch is encoded only once
            // tungstenite's own buffer is empty, so frames never interleave.
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    debug!(error = %e, "websocket write failed; closing the connection");
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(())) => self.flush = false,
            }
            match self.fill(cx) {
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
                Err(e) => {
                    debug!(error = %e, "websocket write failed; closing the connection");
                    return Poll::Ready(());
                }
            }
        }
    }

    /// Encodes the next batch for the socket: queued frames (joined into array frames), a due
    /// keep-alive or ping. Whether there was any.
    fn fill(&mut self, cx: &mut Context<'_>) -> Result<bool, WsError> {
        if !self.yielded && self.shared.queued() > 0 {
            // Frames were queued since the last write: let the tasks that are ready to run
            // first (the rest of a group commit's acks, typically) queue theirs, and write them
            // all with one syscall. Woken by its own waker, the driver goes to the back of the
            // run queue; without this, each ack woke the driver straight after its task and
            // went out in a write (and a wake-up of the peer) of its own.
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Ok(self.flush);
        }
        self.yielded = false;
        let batch = self.shared.take_batch();
        let mut frames = batch.iter();
        if let Some(first) = frames.next() {
            // Messages queued together go out as one array frame, as Gun.js relays send them:
            // one WebSocket frame and one parse on the other side instead of dozens.
            let mut joined = ArrayFrame::new(first);
            for next in frames {
                if let Some(full) = joined.push(next) {
                    self.write_text(full.as_str());
                }
            }
            self.write_text(joined.finish().as_str());
        }
        if let Some(keepalive) = &mut self.keepalive
            && keepalive.poll_tick(cx).is_ready()
        {
            self.write_text("[]");
        }
        if let Some(ping) = &mut self.ping
            && ping.poll_tick(cx).is_ready()
        {
            // Through tungstenite (flushed just before, so it is ready).
            Pin::new(&mut self.ws).start_send(Message::Ping(Bytes::new()))?;
            self.flush = true;
        }
        Ok(self.flush)
    }

    /// Encodes one text frame into the socket's buffer (written by the next flush).
    fn write_text(&mut self, text: &str) {
        self.shared.counters.count_out(text.len());
        let mask = self.masked.then(rand::random::<[u8; 4]>);
        encode_text(&mut self.ws.get_mut().out, text, mask);
        self.flush = true;
    }

    /// The connection is closing: what is left to write is the queue (when the mesh closed
    /// it, after queueing e.g. an error message) and our Close frame; the peer gets
    /// [`CLOSE_GRACE`] for both directions.
    fn start_closing(&mut self) {
        self.closing = true;
        self.timer.as_mut().reset(Instant::now() + CLOSE_GRACE);
        let cause = self.shared.cause().map(|c| c.0);
        if cause != Some(CloseCause::Requested) {
            // Slow peers, shutdown: the queue is what we are giving up on.
            drop(self.shared.take_all());
        }
    }

    /// Writes what is left (the queue, when the mesh closed the connection) and our Close
    /// frame. Ready when done or failed.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.close_sent {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            for frame in self.shared.take_all() {
                self.write_text(&frame);
            }
            let (cause, reason) = self
                .shared
                .cause()
                .unwrap_or((CloseCause::Remote, String::new()));
            let frame = CloseFrame {
                code: cause.code(),
                reason: Utf8Bytes::from(truncate(&reason, 123)),
            };
            self.close_sent = true;
            if Pin::new(&mut self.ws)
                .start_send(Message::Close(Some(frame)))
                .is_err()
            {
                // Already closed by the peer: what is buffered still goes out.
                debug!(peer = self.peer.0, "close frame not sent: already closing");
            }
        }
        match Pin::new(&mut self.ws).poll_flush(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(()),
        }
    }
}

/// Encodes `text` as one final WebSocket text frame (RFC 6455 5.2), masked with `mask` on
/// the client side.
fn encode_text(out: &mut Vec<u8>, text: &str, mask: Option<[u8; 4]>) {
    let len = text.len();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(len + 14);
    // FIN + opcode 1 (text).
    out.push(0x81);
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        None => out.extend_from_slice(text.as_bytes()),
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(text.bytes().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
    }
}

/// The socket under tungstenite, with the bytes of our own frames: we encode data frames
/// here rather than through tungstenite, whose write buffer keeps its largest size for the
/// life of the connection (a relay's idle connections each held the size of the largest
/// batch ever sent to them). Ours is freed once written. Any write through this type
/// (tungstenite's: pongs, Close) first finishes ours, so frames keep their order.
pub(crate) struct Io<S> {
    inner: S,
    out: Vec<u8>,
    written: usize,
}

impl<S> Io<S> {
    pub(crate) fn new(inner: S) -> Self {
        Io {
            inner,
            out: Vec::new(),
            written: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> Io<S> {
    /// Writes our pending bytes; frees their buffer once all are out.
    fn poll_ours(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if self.out.capacity() > 0 {
            self.out = Vec::new();
            self.written = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Io<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Io<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_ours(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_ours(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_ours(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Largest array frame made by joining queued messages (a single message may
/// be larger; it is then sent alone).
const ARRAY_FRAME_MAX: usize = 256 << 10;

/// Joins queued frames that are single messages (JSON objects) into one JSON
/// array frame of at most [`ARRAY_FRAME_MAX`] bytes. Any other frame (an
/// array, a keep-alive) is sent alone, as it is.
struct ArrayFrame {
    /// The frame as it will be sent when it holds one message.
    single: Option<Arc<str>>,
    /// `[a,b,…` (no closing bracket) once it holds two or more.
    text: String,
}

impl ArrayFrame {
    fn new(first: &Arc<str>) -> ArrayFrame {
        ArrayFrame {
            single: Some(first.clone()),
            text: String::new(),
        }
    }

    /// `frame` as an array member if it is one message (a JSON object);
    /// frames that already are arrays are left as they were made.
    fn members(frame: &str) -> Option<&str> {
        let t = frame.trim();
        (t.starts_with('{') && t.ends_with('}')).then_some(t)
    }

    /// Adds `frame`; returns a full frame to send first when it does not fit.
    fn push(&mut self, frame: &Arc<str>) -> Option<Joined> {
        let next = Self::members(frame);
        let current_len = self.single.as_ref().map_or(self.text.len(), |s| s.len());
        let joinable = next.is_some()
            && self
                .single
                .as_deref()
                .is_none_or(|s| Self::members(s).is_some())
            && current_len + frame.len() + 2 <= ARRAY_FRAME_MAX;
        if !joinable {
            let done = self.take();
            *self = ArrayFrame::new(frame);
            return Some(done);
        }
        let next = next?;
        if let Some(single) = self.single.take() {
            self.text = String::with_capacity(2 * (single.len() + frame.len()) + 2);
            self.text.push('[');
            self.text.push_str(Self::members(&single).unwrap_or(""));
        }
        if self.text.len() > 1 {
            self.text.push(',');
        }
        self.text.push_str(next);
        None
    }

    fn take(&mut self) -> Joined {
        match self.single.take() {
            Some(s) => Joined::Single(s),
            None => {
                let mut t = std::mem::take(&mut self.text);
                t.push(']');
                Joined::Array(t)
            }
        }
    }

    fn finish(mut self) -> Joined {
        self.take()
    }
}

/// A frame to send: one queued message as it was made, or several joined.
enum Joined {
    Single(Arc<str>),
    Array(String),
}

impl Joined {
    fn as_str(&self) -> &str {
        match self {
            Joined::Single(s) => s,
            Joined::Array(t) => t,
        }
    }
}

fn ticker(period: Duration) -> Interval {
    let mut interval = interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// Tests may panic on unexpected values.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn join(frames: &[&str]) -> Vec<String> {
        let frames: Vec<Arc<str>> = frames.iter().map(|f| Arc::from(*f)).collect();
        let mut out = Vec::new();
        let mut batch = ArrayFrame::new(&frames[0]);
        for f in &frames[1..] {
            out.extend(batch.push(f).map(|j| j.as_str().to_owned()));
        }
        out.push(batch.finish().as_str().to_owned());
        out
    }

    #[test]
    fn queued_messages_become_one_array_frame() {
        assert_eq!(join(&[r#"{"a":1}"#]), [r#"{"a":1}"#]);
        assert_eq!(
            join(&[r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]),
            [r#"[{"a":1},{"b":2},{"c":3}]"#]
        );
        // Arrays and keep-alives stay as they are, in order.
        assert_eq!(
            join(&[r#"{"a":1}"#, "[]", r#"{"b":2}"#, r#"{"c":3}"#, "[1]"]),
            [r#"{"a":1}"#, "[]", r#"[{"b":2},{"c":3}]"#, "[1]"]
        );
        // Not JSON objects or arrays: sent alone, in order.
        assert_eq!(
            join(&[r#"{"a":1}"#, "x", r#"{"b":2}"#]),
            [r#"{"a":1}"#, "x", r#"{"b":2}"#]
        );
        // Each joined frame is valid JSON holding every message in order.
        let big = format!(r#"{{"s":"{}"}}"#, "x".repeat(100 << 10));
        let out = join(&[&big, &big, &big, r#"{"e":5}"#]);
        assert!(out.len() >= 2, "frames over the limit are split");
        let all = out.concat();
        assert_eq!(all.matches(r#"{"s":"#).count(), 3);
        assert_eq!(all.matches(r#"{"e":5}"#).count(), 1);
        for f in &out {
            assert!(f.len() <= ARRAY_FRAME_MAX + 2 || !f.starts_with('['));
            assert!(f.starts_with('[') == f.ends_with(']'));
        }
        assert!(out.last().unwrap().ends_with(r#"{"e":5}]"#));
    }

    #[test]
    fn own_text_frames_parse_as_websocket_frames() {
        use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        for len in [0, 5, 125, 126, 200, 65_535, 65_536, 70_000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            for mask in [None, Some([1, 2, 3, 250])] {
                let mut out = Vec::new();
                encode_text(&mut out, &text, mask);
                let mut cursor = io::Cursor::new(&out);
                let (header, length) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
                assert!(header.is_final);
                assert_eq!(header.opcode, OpCode::Data(Data::Text));
                assert_eq!(header.mask, mask);
                assert_eq!(length as usize, text.len());
                let at = cursor.position() as usize;
                assert_eq!(out.len(), at + text.len(), "len {len}");
                let mut payload = out[at..].to_vec();
                if let Some(key) = mask {
                    for (i, b) in payload.iter_mut().enumerate() {
                        *b ^= key[i % 4];
                    }
                }
                assert_eq!(payload, text.as_bytes());
            }
        }
    }

    #[test]
    fn bucket_takes_the_burst_then_the_rate_then_closes() {
        let t0 = Instant::now();
        let limit = crate::RateLimit {
            per_sec: 10,
            burst: 5,
        };
        let mut b = Bucket::new(limit, t0);
        for _ in 0..5 {
            assert_eq!(b.admit(t0), Admit::Take);
        }
        assert_eq!(b.admit(t0), Admit::Drop { first: true });
        assert_eq!(b.admit(t0), Admit::Drop { first: false });
        // 100 ms later: one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.admit(t1), Admit::Take);
        assert_eq!(b.admit(t1), Admit::Drop { first: false });
        // The bucket never holds more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(b.admit(t2), Admit::Take);
        }
        // 10 s worth of drops (100), then closed.
        let mut last = Admit::Take;
        for _ in 0..200 {
            last = b.admit(t2);
            if last == Admit::Close {
                break;
            }
        }
        assert_eq!(last, Admit::Close);
        assert_eq!(b.dropped, 101);
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("abc", 123), "abc");
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
    }

    #[test]
    fn first_close_cause_wins() {
        let shared = ConnShared::new(1);
        shared.request_close(CloseCause::SlowPeer, "full");
        shared.request_close(CloseCause::Requested, "later");
        assert_eq!(
            shared.cause(),
            Some((CloseCause::SlowPeer, "full".to_owned()))
        );
        assert!(shared.is_closing());
    }

    #[test]
    fn full_queue_reports_full_and_closes() {
        let shared = Arc::new(ConnShared::new(2));
        let link = WsLink::new(shared.clone());
        assert_eq!(link.send("a".into()), Ok(()));
        assert_eq!(link.send("b".into()), Ok(()));
        assert_eq!(link.send("c".into()), Err(LinkError::Full));
        assert_eq!(shared.queued(), 2);
        assert_eq!(link.send("d".into()), Err(LinkError::Closed));
        assert_eq!(shared.cause().map(|c| c.0), Some(CloseCause::SlowPeer));
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_drained_queue_holds_no_allocation() {
        let shared = ConnShared::new(1000);
        let link = WsLink::new(Arc::new(shared));
        for i in 0..100 {
            assert_eq!(link.send(format!("{{\"n\":{i}}}").into()), Ok(()));
        }
        let first = link.shared.take_batch();
        assert_eq!(first.len(), WRITE_BATCH, "a batch at a time");
        assert_eq!(first[0].as_ref(), r#"{"n":0}"#);
        let rest = link.shared.take_batch();
        assert_eq!(rest.len(), 100 - WRITE_BATCH);
        assert_eq!(link.shared.queued(), 0);
        // What an idle connection keeps of its queue: nothing on the heap.
        assert_eq!(link.shared.queue().capacity(), 0);
    }
}
