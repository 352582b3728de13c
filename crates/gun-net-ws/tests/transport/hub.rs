//! A recording [`Hub`] and small helpers shared by the tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gun_net_ws::{
    Direction, HttpHandler, Hub, Link, LinkError, NotFound, PeerId, Server, ServerOptions,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Attach(PeerId, Direction),
    Receive(PeerId, String),
    Detach(PeerId),
}

/// Records every call; keeps the links so tests can send through them.
#[derive(Default)]
pub struct TestHub {
    next: AtomicU64,
    links: Mutex<HashMap<PeerId, Arc<dyn Link>>>,
    events: Mutex<Vec<Event>>,
}

impl Hub for TestHub {
    fn attach(&self, link: Arc<dyn Link>, dir: Direction) -> PeerId {
        let peer = PeerId(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        self.links.lock().unwrap().insert(peer, link);
        self.events.lock().unwrap().push(Event::Attach(peer, dir));
        peer
    }

    fn receive(&self, peer: PeerId, frame: &str) {
        self.events
            .lock()
            .unwrap()
            .push(Event::Receive(peer, frame.to_owned()));
    }

    fn detach(&self, peer: PeerId) {
        self.links.lock().unwrap().remove(&peer);
        self.events.lock().unwrap().push(Event::Detach(peer));
    }
}

impl TestHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Polls the event log until `f` finds something; panics after [`WAIT`].
    pub async fn wait_for<T>(&self, what: &str, f: impl Fn(&[Event]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = f(&self.events.lock().unwrap()) {
                return found;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; events: {:#?}", self.events());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The `n`-th (0-based) attached peer.
    pub async fn attached(&self, n: usize) -> (PeerId, Direction) {
        self.wait_for(&format!("attach #{n}"), |ev| {
            ev.iter()
                .filter_map(|e| match e {
                    Event::Attach(p, d) => Some((*p, d.clone())),
                    _ => None,
                })
                .nth(n)
        })
        .await
    }

    pub async fn received(&self, peer: PeerId, frame: &str) {
        self.wait_for(&format!("{frame:?} from {peer:?}"), |ev| {
            ev.iter()
                .any(|e| *e == Event::Receive(peer, frame.to_owned()))
                .then_some(())
        })
        .await
    }

    pub async fn detached(&self, peer: PeerId) {
        self.wait_for(&format!("detach of {peer:?}"), |ev| {
            ev.contains(&Event::Detach(peer)).then_some(())
        })
        .await
    }

    pub fn frames_from(&self, peer: PeerId) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Receive(p, f) if p == peer => Some(f),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }

    pub fn send(&self, peer: PeerId, frame: &str) -> Result<(), LinkError> {
        let link = self.links.lock().unwrap().get(&peer).cloned();
        link.expect("peer is attached").send(frame.into())
    }

    pub fn link(&self, peer: PeerId) -> Arc<dyn Link> {
        self.links
            .lock()
            .unwrap()
            .get(&peer)
            .cloned()
            .expect("peer is attached")
    }
}

pub fn local_opts() -> ServerOptions {
    ServerOptions::new("127.0.0.1:0".parse().unwrap())
}

pub fn start(opts: ServerOptions) -> (Server, Arc<TestHub>) {
    start_with(opts, Arc::new(NotFound))
}

pub fn start_with(opts: ServerOptions, http: Arc<dyn HttpHandler>) -> (Server, Arc<TestHub>) {
    let hub = TestHub::new();
    let server = Server::bind(opts, hub.clone(), http).unwrap();
    (server, hub)
}

pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A plain tungstenite client (not ours) connected to `url`.
pub async fn raw_ws(url: &str) -> RawWs {
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("websocket handshake");
    ws
}

/// The next data message on `ws` (skipping pings/pongs), or `None` if it closed.
pub async fn next_data(ws: &mut RawWs) -> Option<Message> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
        {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(m)) => return Some(m),
            Some(Err(_)) | None => return None,
        }
    }
}

/// Sends a text frame; panics on failure.
pub async fn send_text(ws: &mut RawWs, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// `GET`s `path` over a raw TCP socket and returns the whole response text.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
}

/// Writes `request` and reads until the server closes.
pub async fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("response in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
