//! One WebSocket connection: the [`Link`] the mesh sends through, and the task pair (reader and
//! writer) that moves frames between the socket, the send queue and the [`Hub`].
//!
//! Shared by the server (incoming sockets) and the client (outgoing ones).

use std::fmt;
use std::future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use gun_dam::transport::{Direction, Hub, Link, LinkError, PeerId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, timeout};
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

/// State shared by a connection's [`WsLink`], its tasks and the server's registry.
pub(crate) struct ConnShared {
    pub(crate) counters: Counters,
    /// Frames the link refused: the queue was full, or the connection was closing.
    pub(crate) dropped: AtomicU64,
    /// Frames received over the connection's message rate and dropped.
    pub(crate) rate_dropped: AtomicU64,
    queued: AtomicUsize,
    closing: AtomicBool,
    cause: Mutex<Option<(CloseCause, String)>>,
    notify: Notify,
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
    pub(crate) fn new() -> Self {
        Self {
            counters: Counters::default(),
            dropped: AtomicU64::new(0),
            rate_dropped: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            cause: Mutex::new(None),
            notify: Notify::new(),
        }
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
        self.notify.notify_waiters();
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
        self.queued.load(Ordering::Relaxed)
    }

    /// Resolves once a close was requested.
    async fn closed(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closing() {
                return;
            }
            notified.await;
        }
    }
}

/// The [`Link`] handed to the hub for one connection.
pub(crate) struct WsLink {
    tx: mpsc::Sender<Arc<str>>,
    shared: Arc<ConnShared>,
}

impl WsLink {
    /// A link with a queue of `capacity` frames, and the queue's receiving end.
    pub(crate) fn new(
        capacity: usize,
        shared: Arc<ConnShared>,
    ) -> (Self, mpsc::Receiver<Arc<str>>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, shared }, rx)
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
        if self.shared.is_closing() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(LinkError::Closed);
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(
                    queue = self.tx.max_capacity(),
                    "send queue full: the peer is not reading; closing the connection"
                );
                self.shared
                    .request_close(CloseCause::SlowPeer, "send queue full");
                Err(LinkError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(LinkError::Closed),
        }
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

/// Pumps frames until the connection ends; returns why it ended. The caller attached `peer` to
/// the hub before and detaches it after.
pub(crate) async fn drive<S>(
    ws: WebSocketStream<S>,
    hub: &dyn Hub,
    peer: PeerId,
    shared: &ConnShared,
    rx: mpsc::Receiver<Arc<str>>,
    cfg: ConnConfig,
) -> (CloseCause, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (sink, stream) = ws.split();
    let reader = read_loop(stream, hub, peer, shared, cfg.idle_timeout, cfg.rate_limit);
    let writer = write_loop(sink, rx, shared, cfg);
    tokio::pin!(reader, writer);
    tokio::select! {
        () = &mut reader => {
            shared.request_close(CloseCause::Remote, "");
            // Lets the writer send our Close frame (or notice the socket is gone).
            let _ = timeout(CLOSE_GRACE, &mut writer).await;
        }
        () = &mut writer => {
            shared.request_close(CloseCause::Remote, "");
            // Lets the reader take the peer's Close reply before the socket is dropped.
            let _ = timeout(CLOSE_GRACE, &mut reader).await;
        }
    }
    shared
        .cause()
        .unwrap_or((CloseCause::Remote, String::new()))
}

async fn read_loop<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
    hub: &dyn Hub,
    peer: PeerId,
    shared: &ConnShared,
    idle: Option<Duration>,
    rate_limit: Option<crate::RateLimit>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut bucket = rate_limit.map(|l| Bucket::new(l, Instant::now()));
    loop {
        // Backpressure: while the hub is busy with this peer's earlier
        // messages, nothing more is read (the socket's buffers fill and TCP
        // slows the peer down).
        hub.ready(peer).await;
        let next = match idle {
            Some(limit) => match timeout(limit, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    debug!(
                        peer = peer.0,
                        ?limit,
                        "nothing received within the idle timeout"
                    );
                    shared.request_close(CloseCause::Idle, "idle timeout");
                    return;
                }
            },
            None => stream.next().await,
        };
        let message = match next {
            None => return,
            Some(Ok(message)) => message,
            Some(Err(WsError::Capacity(e))) => {
                warn!(peer = peer.0, error = %e, "message over the size limit; closing the connection");
                shared.request_close(CloseCause::TooBig, "message too big");
                return;
            }
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => return,
            Some(Err(e)) => {
                debug!(peer = peer.0, error = %e, "websocket read failed; closing the connection");
                return;
            }
        };
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && let Some(bucket) = &mut bucket
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
                    continue;
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
                    return;
                }
            }
        }
        match message {
            Message::Text(text) => {
                shared.counters.count_in(text.len());
                if !shared.is_closing() {
                    hub.receive(peer, text.as_str());
                }
            }
            Message::Binary(bytes) => {
                shared.counters.count_in(bytes.len());
                match std::str::from_utf8(&bytes) {
                    Ok(text) if !shared.is_closing() => hub.receive(peer, text),
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
}

/// What the writer does next.
enum Step {
    Frame(Arc<str>),
    Keepalive,
    Ping,
    Close,
}

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::Receiver<Arc<str>>,
    shared: &ConnShared,
    cfg: ConnConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut keepalive = cfg.keepalive.map(ticker);
    let mut ping = cfg.ping.map(ticker);
    loop {
        let step = tokio::select! {
            biased;
            () = shared.closed() => Step::Close,
            frame = rx.recv() => match frame {
                Some(frame) => Step::Frame(frame),
                None => Step::Close,
            },
            () = tick(&mut keepalive) => Step::Keepalive,
            () = tick(&mut ping) => Step::Ping,
        };
        let work = async {
            match step {
                Step::Frame(first) => {
                    shared.queued.fetch_sub(1, Ordering::Relaxed);
                    // Messages queued together go out as one array frame, as
                    // Gun.js relays send them: one WebSocket frame and one
                    // parse on the other side instead of dozens.
                    let mut batch = ArrayFrame::new(&first);
                    for _ in 1..WRITE_BATCH {
                        let Ok(next) = rx.try_recv() else { break };
                        shared.queued.fetch_sub(1, Ordering::Relaxed);
                        if let Some(full) = batch.push(&next) {
                            write_frame(&mut sink, shared, &full).await?;
                        }
                    }
                    write_frame(&mut sink, shared, &batch.finish()).await?;
                    sink.flush().await
                }
                Step::Keepalive => {
                    shared.counters.count_out(2);
                    sink.send(Message::Text(Utf8Bytes::from_static("[]"))).await
                }
                Step::Ping => sink.send(Message::Ping(Bytes::new())).await,
                Step::Close => Ok(()),
            }
        };
        // `work` first: a write that completes at once is never cancelled by a close request
        // that raced with it; one stuck on a stalled socket is.
        let done = tokio::select! {
            biased;
            result = work => Some(result),
            () = shared.closed() => None,
        };
        match done {
            None => break,
            Some(Ok(())) if shared.is_closing() => break,
            Some(Ok(())) => {}
            Some(Err(e)) => {
                debug!(error = %e, "websocket write failed; closing the connection");
                return;
            }
        }
    }
    if rx.is_closed() && shared.cause().is_none() {
        shared.request_close(CloseCause::Requested, "link dropped");
    }
    let (cause, reason) = shared
        .cause()
        .unwrap_or((CloseCause::Remote, String::new()));
    let frame = CloseFrame {
        code: cause.code(),
        reason: Utf8Bytes::from(truncate(&reason, 123)),
    };
    let _ = timeout(CLOSE_GRACE, async {
        if cause == CloseCause::Requested {
            // The mesh queued these before closing (e.g. an error message): deliver them first.
            // Not for slow peers or shutdown, where the queue is what we are giving up on.
            while let Ok(frame) = rx.try_recv() {
                shared.queued.fetch_sub(1, Ordering::Relaxed);
                write_frame(&mut sink, shared, &frame).await?;
            }
        }
        sink.send(Message::Close(Some(frame))).await
    })
    .await;
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
    fn push(&mut self, frame: &Arc<str>) -> Option<String> {
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

    fn take(&mut self) -> String {
        match self.single.take() {
            Some(s) => s.to_string(),
            None => {
                let mut t = std::mem::take(&mut self.text);
                t.push(']');
                t
            }
        }
    }

    fn finish(mut self) -> String {
        self.take()
    }
}

async fn write_frame<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    shared: &ConnShared,
    frame: &str,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    shared.counters.count_out(frame.len());
    sink.feed(Message::Text(Utf8Bytes::from(frame))).await
}

fn ticker(period: Duration) -> Interval {
    let mut interval = interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => future::pending().await,
    }
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
            out.extend(batch.push(f));
        }
        out.push(batch.finish());
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
        let shared = ConnShared::new();
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
        let shared = Arc::new(ConnShared::new());
        let (link, _rx) = WsLink::new(2, shared.clone());
        assert_eq!(link.send("a".into()), Ok(()));
        assert_eq!(link.send("b".into()), Ok(()));
        assert_eq!(link.send("c".into()), Err(LinkError::Full));
        assert_eq!(shared.queued(), 2);
        assert_eq!(link.send("d".into()), Err(LinkError::Closed));
        assert_eq!(shared.cause().map(|c| c.0), Some(CloseCause::SlowPeer));
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 2);
    }
}
