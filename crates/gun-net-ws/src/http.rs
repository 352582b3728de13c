//! The plain-HTTP side of the server port: request and response types, the handler trait, and
//! a small, bounded HTTP/1.1 reader and writer (one request per connection, `Connection: close`).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Most headers accepted in one request head.
const MAX_HEADERS: usize = 64;
/// Time spent reading what a client still sends after its response was written, so that closing
/// the socket does not reset the connection before the client has read the response.
const LINGER: Duration = Duration::from_millis(500);
/// Bytes read (and discarded) during [`LINGER`] at most.
const LINGER_BYTES: usize = 256 << 10;

/// One plain HTTP request, as handed to an [`HttpHandler`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// Method as sent (`GET`, `POST`, ...).
    pub method: String,
    /// Path of the request target, without the query; not percent-decoded.
    pub path: String,
    /// What followed the `?` in the request target, if there was one; not percent-decoded.
    pub query: Option<String>,
    /// Headers in the order received; names as sent (compare them case-insensitively, or use
    /// [`HttpRequest::header`]); values that are not UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The body (at most [`ServerOptions::max_http_body_bytes`](crate::ServerOptions)).
    pub body: Vec<u8>,
    /// The client's address.
    pub remote_addr: SocketAddr,
}

impl HttpRequest {
    /// A request with `method` and `target` (path with an optional `?query`), no headers, no
    /// body, from `127.0.0.1:0`. For testing handlers.
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = split_target(target);
        Self {
            method: method.to_owned(),
            path,
            query,
            headers: Vec::new(),
            body: Vec::new(),
            remote_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP response from an [`HttpHandler`].
///
/// The server adds `Content-Length` (`Transfer-Encoding: chunked` for a
/// [streamed](HttpResponse::with_stream) body), `Connection: close` and, unless the handler set it,
/// `Access-Control-Allow-Origin: *` (as Gun.js relays do). Handler headers named
/// `Content-Length`, `Connection` or `Transfer-Encoding`, and headers holding CR or LF, are
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// Status code (200, 404, ...).
    pub status: u16,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body (not sent for `HEAD` requests; its length still is).
    pub body: Vec<u8>,
    /// A body produced while it is sent, instead of `body`: sent with
    /// `Transfer-Encoding: chunked` (see [`HttpResponse::with_stream`]).
    pub stream: Option<HttpBodyStream>,
}

/// One piece of a streamed body, or its end.
enum Piece {
    Data(Vec<u8>),
    End,
}

/// The receiving side of a streamed response body, for [`HttpResponse::with_stream`]. Make
/// one with [`HttpBodyStream::channel`].
///
/// Clones share the one receiver; the first response written with it takes it.
#[derive(Clone)]
pub struct HttpBodyStream(Arc<Mutex<Option<tokio::sync::mpsc::Receiver<Piece>>>>);

impl fmt::Debug for HttpBodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpBodyStream(..)")
    }
}

impl PartialEq for HttpBodyStream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for HttpBodyStream {}

impl HttpBodyStream {
    /// A body stream and the sender that produces it, holding at most `bound` chunks not yet
    /// written to the client (at least 1).
    pub fn channel(bound: usize) -> (HttpBodySender, HttpBodyStream) {
        let (tx, rx) = tokio::sync::mpsc::channel(bound.max(1));
        (
            HttpBodySender(tx),
            HttpBodyStream(Arc::new(Mutex::new(Some(rx)))),
        )
    }

    fn take(&self) -> Option<tokio::sync::mpsc::Receiver<Piece>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Produces a streamed response body (see [`HttpBodyStream::channel`]).
///
/// The body is complete only once [`finish`](Self::finish) is called: a sender dropped
/// before that aborts the response (the client sees the connection close without the last
/// chunk, so a failure half-way is never taken for a complete body).
#[derive(Debug)]
pub struct HttpBodySender(tokio::sync::mpsc::Sender<Piece>);

impl HttpBodySender {
    /// Sends one chunk (empty chunks are skipped); waits while `bound` chunks are queued.
    /// `false`: the client is gone (or the response was a `HEAD`), stop producing.
    pub async fn send(&self, chunk: Vec<u8>) -> bool {
        chunk.is_empty() || self.0.send(Piece::Data(chunk)).await.is_ok()
    }

    /// Ends the body: the client sees it complete.
    pub async fn finish(self) {
        let _ = self.0.send(Piece::End).await;
    }
}

impl HttpResponse {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status).with_body("text/plain; charset=utf-8", body.into().into_bytes())
    }

    /// An `application/json` response; `body` must already be JSON text.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::new(status).with_body("application/json", body.into().into_bytes())
    }

    /// A `text/html; charset=utf-8` response.
    pub fn html(status: u16, body: impl Into<String>) -> Self {
        Self::new(status).with_body("text/html; charset=utf-8", body.into().into_bytes())
    }

    /// `404 Not Found` with a short text body.
    pub fn not_found() -> Self {
        Self::text(404, "Not Found\n")
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its `Content-Type`.
    #[must_use]
    pub fn with_body(self, content_type: &str, body: Vec<u8>) -> Self {
        let mut out = self.with_header("Content-Type", content_type);
        out.body = body;
        out
    }

    /// Sends the body of `stream` as it is produced (chunked), with `Content-Type`, instead
    /// of [`body`](Self::body).
    #[must_use]
    pub fn with_stream(self, content_type: &str, stream: HttpBodyStream) -> Self {
        let mut out = self.with_header("Content-Type", content_type);
        out.stream = Some(stream);
        out
    }
}

/// Answers the plain HTTP requests that reach the server port (anything that is not a
/// WebSocket upgrade).
///
/// Called on tokio's blocking thread pool, so it may read files; it should still return
/// quickly. A panicking handler produces a 500. Closures `Fn(&HttpRequest) -> HttpResponse`
/// implement it.
pub trait HttpHandler: Send + Sync {
    /// Produces the response to `req`.
    fn handle(&self, req: &HttpRequest) -> HttpResponse;
}

impl<F> HttpHandler for F
where
    F: Fn(&HttpRequest) -> HttpResponse + Send + Sync,
{
    fn handle(&self, req: &HttpRequest) -> HttpResponse {
        self(req)
    }
}

/// The default handler: `404 Not Found` for everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl HttpHandler for NotFound {
    fn handle(&self, _req: &HttpRequest) -> HttpResponse {
        HttpResponse::not_found()
    }
}

/// A parsed request head plus the bytes read past it.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    /// Bytes that followed the head (start of a body, or early WebSocket frames).
    pub(crate) rest: Vec<u8>,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` lists `token` (comma-separated, case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// A WebSocket upgrade request (RFC 6455 §4.2.1: `GET` with `Upgrade: websocket`).
    pub(crate) fn is_websocket_upgrade(&self) -> bool {
        self.method == "GET" && self.has_token("upgrade", "websocket")
    }

    /// The `Sec-WebSocket-Accept` value for this upgrade, or the response refusing it.
    pub(crate) fn websocket_accept(&self) -> Result<String, HttpResponse> {
        if !self.has_token("connection", "upgrade") {
            return Err(HttpResponse::text(
                400,
                "Bad Request: missing Connection: Upgrade\n",
            ));
        }
        if self.header("sec-websocket-version").map(str::trim) != Some("13") {
            return Err(
                HttpResponse::text(426, "Upgrade Required: WebSocket version 13\n")
                    .with_header("Sec-WebSocket-Version", "13"),
            );
        }
        match self.header("sec-websocket-key").map(str::trim) {
            Some(key) if !key.is_empty() => {
                Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
            }
            _ => Err(HttpResponse::text(
                400,
                "Bad Request: missing Sec-WebSocket-Key\n",
            )),
        }
    }
}

/// Why no request head could be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The client closed (or failed) before sending a complete head; nothing to answer.
    Gone,
    /// The head is larger than allowed: answer 431.
    TooLarge,
    /// Not HTTP/1.x: answer 400.
    Malformed,
}

/// Reads one request head of at most `max` bytes.
pub(crate) async fn read_head<S>(stream: &mut S, max: usize) -> Result<Head, HeadError>
where
    S: AsyncRead + Unpin,
{
    // Read straight into `buf` (no array in the future: it lives as long as the connection's
    // task, so every byte of it is paid by every connection).
    let mut buf = Vec::with_capacity(1024.min(max));
    loop {
        if buf.capacity() == buf.len() {
            buf.reserve(2048.min(max.saturating_sub(buf.len()).max(1)));
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|_| HeadError::Gone)?;
        if n == 0 {
            return Err(HeadError::Gone);
        }
        if let Some(head) = parse_head(&buf, max)? {
            return Ok(head);
        }
        if buf.len() >= max {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Parses a head from `buf`: `Ok(None)` if incomplete.
fn parse_head(buf: &[u8], max: usize) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    if len > max {
        return Err(HeadError::TooLarge);
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(HeadError::Malformed);
    };
    if !target.starts_with('/') {
        // Absolute-form and `*` targets are for proxies and OPTIONS *; not served here.
        return Err(HeadError::Malformed);
    }
    let (path, query) = split_target(target);
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Some(Head {
        method: method.to_owned(),
        path,
        query,
        headers,
        rest: buf[len..].to_vec(),
    }))
}

fn split_target(target: &str) -> (String, Option<String>) {
    let target = target.split('#').next().unwrap_or_default();
    match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    }
}

/// Reads the body announced by `head`, or returns the response refusing it.
pub(crate) async fn read_body<S>(
    stream: &mut S,
    head: &mut Head,
    max: usize,
) -> Result<Vec<u8>, HttpResponse>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if head.header("transfer-encoding").is_some() {
        return Err(HttpResponse::text(
            411,
            "Length Required: chunked bodies are not accepted\n",
        ));
    }
    let len = match head.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| HttpResponse::text(400, "Bad Request: invalid Content-Length\n"))?,
    };
    if len > max {
        return Err(HttpResponse::text(413, "Payload Too Large\n"));
    }
    if len > head.rest.len() && head.has_token("expect", "100-continue") {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|_| HttpResponse::new(400))?;
    }
    let mut body = std::mem::take(&mut head.rest);
    if body.len() > len {
        // Pipelined data after the body is not served (one request per connection).
        body.truncate(len);
    }
    let have = body.len();
    body.resize(len, 0);
    stream
        .read_exact(&mut body[have..])
        .await
        .map_err(|_| HttpResponse::text(400, "Bad Request: body shorter than Content-Length\n"))?;
    Ok(body)
}

/// Writes `resp` (without body when `head_only`), then closes the connection politely.
pub(crate) async fn write_response<S>(stream: &mut S, resp: &HttpResponse, head_only: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bytes = encode_response(resp, head_only);
    if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    if let Some(body) = resp.stream.as_ref().filter(|_| !head_only)
        && !write_chunks(stream, body).await
    {
        // Not a complete body: close without the last chunk.
        return;
    }
    let _ = stream.shutdown().await;
    // Read what the client may still be sending (an unread body) so that our close does not
    // turn into a reset that discards the response on its side.
    let _ = timeout(LINGER, async {
        // On the heap: an array here would sit in the future of every connection's task
        // (the task's size is that of its largest await point), WebSocket ones included.
        let mut chunk = vec![0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// Writes the chunks of `body` as they come, then the last chunk. `false`: the producer
/// gave up (or the client went away) before the end.
async fn write_chunks<S>(stream: &mut S, body: &HttpBodyStream) -> bool
where
    S: AsyncWrite + Unpin,
{
    let Some(mut rx) = body.take() else {
        return false;
    };
    while let Some(piece) = rx.recv().await {
        let data = match piece {
            Piece::Data(data) => data,
            Piece::End => {
                return stream.write_all(b"0\r\n\r\n").await.is_ok()
                    && stream.flush().await.is_ok();
            }
        };
        let ok = stream
            .write_all(format!("{:x}\r\n", data.len()).as_bytes())
            .await
            .is_ok()
            && stream.write_all(&data).await.is_ok()
            && stream.write_all(b"\r\n").await.is_ok();
        if !ok {
            return false;
        }
    }
    false
}

/// The response's bytes on the wire (the head only for a streamed body).
pub(crate) fn encode_response(resp: &HttpResponse, head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + if head_only { 0 } else { resp.body.len() });
    let status = if (100..=999).contains(&resp.status) {
        resp.status
    } else {
        500
    };
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    let mut cors = false;
    for (name, value) in &resp.headers {
        let bad = |s: &str| s.contains(['\r', '\n']);
        if bad(name) || bad(value) || name.is_empty() || name.contains([':', ' ']) {
            tracing::warn!(header = %name.escape_debug(), "dropping an invalid response header");
            continue;
        }
        if ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        cors |= name.eq_ignore_ascii_case("access-control-allow-origin");
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !cors {
        out.extend_from_slice(b"Access-Control-Allow-Origin: *\r\n");
    }
    if resp.stream.is_some() {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    if !head_only && resp.stream.is_none() {
        out.extend_from_slice(&resp.body);
    }
    out
}

/// The `101 Switching Protocols` answer to a WebSocket upgrade.
pub(crate) fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

// Tests may panic on unexpected values.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_head_with_query_and_rest() {
        let raw = b"GET /gun?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\nXY";
        let head = parse_head(raw, 1024).unwrap().unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/gun");
        assert_eq!(head.query.as_deref(), Some("x=1"));
        assert_eq!(head.header("HOST"), Some("a"));
        assert_eq!(head.rest, b"XY");
        assert!(head.is_websocket_upgrade());
        // version missing
        assert_eq!(head.websocket_accept().unwrap_err().status, 426);
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        let raw = b"GET /gun HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let head = parse_head(raw, 1024).unwrap().unwrap();
        assert_eq!(
            head.websocket_accept().unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn partial_malformed_and_oversize_heads() {
        assert!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 1024)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            parse_head(b"\x16\x03\x01garbage\r\n\r\n", 1024).unwrap_err(),
            HeadError::Malformed
        );
        assert_eq!(
            parse_head(b"GET http://x/ HTTP/1.1\r\n\r\n", 1024).unwrap_err(),
            HeadError::Malformed
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\n", 10).unwrap_err(),
            HeadError::TooLarge
        );
        let many: String = (0..100).map(|i| format!("h{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_head(raw.as_bytes(), 1 << 20).unwrap_err(),
            HeadError::TooLarge
        );
    }

    #[test]
    fn response_encoding_adds_cors_and_drops_bad_headers() {
        let resp = HttpResponse::json(200, "{}")
            .with_header("X-Evil", "a\r\nSet-Cookie: x")
            .with_header("Content-Length", "999")
            .with_header("X-Ok", "1");
        let text = String::from_utf8(encode_response(&resp, false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("X-Ok: 1\r\n"));
        assert!(!text.contains("X-Evil"));
        assert!(!text.contains("999"));
        assert!(text.ends_with("\r\n\r\n{}"));
        let head = String::from_utf8(encode_response(&resp, true)).unwrap();
        assert!(head.ends_with("Connection: close\r\n\r\n"));
        let own = HttpResponse::new(204).with_header("access-control-allow-origin", "https://a");
        let text = String::from_utf8(encode_response(&own, false)).unwrap();
        assert_eq!(text.matches("ccess-control-allow-origin").count(), 1);
    }

    #[test]
    fn request_helpers() {
        let req = HttpRequest::new("GET", "/a/b?c=d#frag");
        assert_eq!(req.path, "/a/b");
        assert_eq!(req.query.as_deref(), Some("c=d"));
        assert_eq!(req.header("x"), None);
        assert_eq!(NotFound.handle(&req).status, 404);
    }
}
