//! Shared by the gun-relay process tests (`mesh.rs`, `hostile.rs`): a relay
//! process killed on drop, and a raw WebSocket client that speaks Gun's wire
//! format by hand.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The relay binary cargo built for these tests.
pub const RELAY_BIN: &str = env!("CARGO_BIN_EXE_gun-relay");

/// Lines a process wrote, shared with the thread reading them.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn push(&self, l: String) {
        self.0.lock().unwrap().push(l);
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn tail(&self, n: usize) -> String {
        let v = self.0.lock().unwrap();
        v[v.len().saturating_sub(n)..].join("\n")
    }
    pub fn find(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.0.lock().unwrap().iter().find(|l| pred(l)).cloned()
    }
}

/// Reads `r` line by line into `lines` on a thread.
pub fn collect_lines(r: impl std::io::Read + Send + 'static, lines: Lines) {
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            lines.push(l);
        }
    });
}

/// A gun-relay process, killed (SIGTERM, then SIGKILL) on drop.
pub struct RelayProc {
    pub name: String,
    pub child: Child,
    pub addr: String,
    pub log: Lines,
    _data: Option<tempfile::TempDir>,
}

/// How to start a relay.
pub struct RelaySpec {
    pub name: String,
    /// Wrapper argv to run the relay under (e.g. `ip netns exec NS`).
    pub prefix: Vec<String>,
    pub host: String,
    pub port: u16,
    pub store: &'static str,
    pub peers: Vec<String>,
    pub log: String,
    /// More flags for the relay (e.g. limits).
    pub args: Vec<String>,
}

impl RelaySpec {
    pub fn new(name: &str) -> RelaySpec {
        RelaySpec {
            name: name.to_owned(),
            prefix: Vec::new(),
            host: "127.0.0.1".into(),
            port: 0,
            store: "memory",
            peers: Vec::new(),
            log: "info".into(),
            args: Vec::new(),
        }
    }
}

impl RelayProc {
    /// Starts the relay and waits (20 s max) for its ready line.
    pub fn start(spec: RelaySpec) -> RelayProc {
        let data = tempfile::Builder::new()
            .prefix("gun-relay-test-")
            .tempdir()
            .expect("temp dir");
        let mut argv: Vec<String> = spec.prefix.clone();
        argv.push(RELAY_BIN.to_owned());
        argv.extend([
            "--host".into(),
            spec.host.clone(),
            "--port".into(),
            spec.port.to_string(),
            "--data".into(),
            data.path().display().to_string(),
            "--store".into(),
            spec.store.into(),
            "--log".into(),
            spec.log.clone(),
        ]);
        for p in &spec.peers {
            argv.extend(["--peer".into(), p.clone()]);
        }
        argv.extend(spec.args.iter().cloned());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let log = Lines::default();
        collect_lines(child.stdout.take().unwrap(), log.clone());
        collect_lines(child.stderr.take().unwrap(), log.clone());
        let mut relay = RelayProc {
            name: spec.name.clone(),
            child,
            addr: String::new(),
            log,
            _data: Some(data),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = relay
                .log
                .find(|l| l.starts_with("gun-relay listening on ws://"))
            {
                let rest = &l["gun-relay listening on ws://".len()..];
                relay.addr = rest.split("/gun").next().unwrap().to_owned();
                return relay;
            }
            if let Ok(Some(st)) = relay.child.try_wait() {
                panic!(
                    "relay {} exited at startup ({st}):\n{}",
                    spec.name,
                    relay.log.tail(20)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "relay {} printed no ready line in 20 s:\n{}",
                    spec.name,
                    relay.log.tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/gun", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET /` on a relay: its health JSON.
pub async fn health(addr: &str) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let body = text.split("\r\n\r\n").nth(1)?;
        serde_json::from_str(body.trim()).ok()
    };
    tokio::time::timeout(Duration::from_secs(3), fut)
        .await
        .ok()
        .flatten()
}

/// `GET path` on a relay: the status and the body (3 s max).
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(3), fut)
        .await
        .ok()
        .flatten()
}

/// `GET /metrics`, parsed: every sample line as `name{labels}` -> value.
/// Panics on a line that is not valid exposition text (`# HELP`, `# TYPE`,
/// `# UNIT`, `# EOF` or a sample), or on a sample whose family has no
/// `# TYPE`.
pub async fn metrics(addr: &str) -> HashMap<String, f64> {
    let (status, body) = http_get(addr, "/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    parse_metrics(&body)
}

/// See [`metrics`].
pub fn parse_metrics(body: &str) -> HashMap<String, f64> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    assert!(body.ends_with("# EOF\n"), "no # EOF at the end:\n{body}");
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            match kind {
                "EOF" => assert_eq!(rest, "EOF"),
                "HELP" | "UNIT" => assert!(valid_name(name), "bad name in {line:?}"),
                "TYPE" => {
                    assert!(valid_name(name), "bad name in {line:?}");
                    let t = parts.next().unwrap_or("");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "unknown"
                        ]
                        .contains(&t),
                        "bad type in {line:?}"
                    );
                    typed.insert(name.to_owned(), t.to_owned());
                }
                _ => panic!("not exposition text: {line:?}"),
            }
            continue;
        }
        // name{labels} value
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad metric name in {line:?}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels in {line:?}"
            );
            let inner = &labels[1..labels.len() - 1];
            assert!(
                inner.contains("=\"") && inner.ends_with('"'),
                "bad labels in {line:?}"
            );
        }
        let family = ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "sample without # TYPE: {line:?}"
        );
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.insert(series.to_owned(), v);
    }
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

// ---------------------------------------------------------------- raw client

/// What a raw client received.
#[derive(Default)]
struct Inbox {
    msgs: Vec<Value>,
    frames: usize,
    unparsable: usize,
    closed: Option<String>,
}

/// A WebSocket speaking Gun's wire format by hand. Every received message (batches
/// flattened) is kept; `wait_*` poll them with deadlines.
pub struct RawClient {
    pub name: String,
    tx: mpsc::UnboundedSender<WsMessage>,
    inbox: Arc<Mutex<Inbox>>,
    notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawClient {
    /// Connects to `ws://addr/gun` (5 s max).
    pub async fn connect(addr: &str, name: &str) -> RawClient {
        Self::try_connect(addr, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: cannot connect to ws://{addr}/gun: {e}"))
    }

    pub async fn try_connect(addr: &str, name: &str) -> Result<RawClient, String> {
        let fut = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            tcp.set_nodelay(true).ok();
            let cfg = WebSocketConfig::default()
                .max_message_size(Some(256 << 20))
                .max_frame_size(Some(256 << 20));
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                format!("ws://{addr}/gun"),
                tcp,
                Some(cfg),
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(ws)
        };
        let ws = tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .map_err(|_| "timeout".to_owned())??;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<WsMessage>();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let notify = Arc::new(Notify::new());
        let (ib, nt) = (inbox.clone(), notify.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(m) => if let Err(e) = sink.send(m).await {
                            ib.lock().unwrap().closed.get_or_insert(format!("send: {e}"));
                            nt.notify_waiters();
                            break;
                        },
                        None => break,
                    },
                    inc = stream.next() => match inc {
                        Some(Ok(WsMessage::Text(t))) => {
                            let mut g = ib.lock().unwrap();
                            g.frames += 1;
                            match serde_json::from_str::<Value>(t.as_str()) {
                                Ok(Value::Array(a)) => g.msgs.extend(a.into_iter().filter(Value::is_object)),
                                Ok(v @ Value::Object(_)) => g.msgs.push(v),
                                Ok(_) => {}
                                Err(_) => g.unparsable += 1,
                            }
                            drop(g);
                            nt.notify_waiters();
                        }
                        Some(Ok(WsMessage::Close(c))) => {
                            ib.lock().unwrap().closed.get_or_insert(format!("close frame {c:?}"));
                            nt.notify_waiters();
                            break;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            ib.lock().unwrap().closed.get_or_insert(format!("error: {e}"));
                            nt.notify_waiters();
                            break;
                        }
                        None => {
                            ib.lock().unwrap().closed.get_or_insert("eof".into());
                            nt.notify_waiters();
                            break;
                        }
                    }
                }
            }
        });
        Ok(RawClient {
            name: name.to_owned(),
            tx,
            inbox,
            notify,
            task,
        })
    }

    /// A fresh message id, unique in this process (relays drop a repeated `#`
    /// for a while, so two clients with the same name must not share ids).
    pub fn id(&self, tag: &str) -> String {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{tag}-{n}-{}", self.name, std::process::id())
    }

    pub fn send_text(&self, text: impl Into<String>) {
        let _ = self.tx.send(WsMessage::text(text.into()));
    }

    pub fn send_binary(&self, bytes: Vec<u8>) {
        let _ = self.tx.send(WsMessage::binary(bytes));
    }

    pub fn send(&self, msg: &Value) {
        self.send_text(msg.to_string());
    }

    /// Sends any WebSocket message, raw frames (`WsMessage::Frame`) included.
    pub fn send_ws(&self, m: WsMessage) {
        let _ = self.tx.send(m);
    }

    pub fn closed(&self) -> Option<String> {
        self.inbox.lock().unwrap().closed.clone()
    }

    pub fn messages(&self) -> Vec<Value> {
        self.inbox.lock().unwrap().msgs.clone()
    }

    pub fn replies_to(&self, id: &str) -> Vec<Value> {
        self.inbox
            .lock()
            .unwrap()
            .msgs
            .iter()
            .filter(|m| m["@"] == id)
            .cloned()
            .collect()
    }

    /// Waits until some received message satisfies `pred`; returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if let Some(m) = self.inbox.lock().unwrap().msgs.iter().find(|m| pred(m)) {
                return Some(m.clone());
            }
            if self.closed().is_some() {
                return None;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self
                    .inbox
                    .lock()
                    .unwrap()
                    .msgs
                    .iter()
                    .find(|m| pred(m))
                    .cloned();
            }
        }
    }

    /// Sends a put of one node with explicit states (`fields`: key -> value) and
    /// returns its id.
    pub fn put(&self, soul: &str, fields: &[(&str, Value)], state: f64) -> String {
        let id = self.id("put");
        self.send(&put_msg(&id, soul, fields, state));
        id
    }

    /// Puts and waits for the ack; panics with `what` if none arrives in `timeout`.
    pub async fn put_acked(
        &self,
        soul: &str,
        fields: &[(&str, Value)],
        timeout: Duration,
        what: &str,
    ) -> Value {
        let id = self.put(soul, fields, now_ms());
        match self.wait_for(timeout, |m| m["@"] == id.as_str()).await {
            Some(a) => a,
            None => panic!(
                "{what}: no ack for put {id} on {soul} within {timeout:?} (closed: {:?})",
                self.closed()
            ),
        }
    }

    /// Sends a get and returns its id.
    pub fn get(&self, soul: &str, key: Option<&str>) -> String {
        let id = self.id("get");
        let get = match key {
            Some(k) => json!({"#": soul, ".": k}),
            None => json!({"#": soul}),
        };
        self.send(&json!({"#": id, "get": get}));
        id
    }

    /// Gets and waits for the first answer (data or not-found).
    pub async fn get_answer(
        &self,
        soul: &str,
        key: Option<&str>,
        timeout: Duration,
        what: &str,
    ) -> Value {
        let id = self.get(soul, key);
        match self.wait_for(timeout, |m| m["@"] == id.as_str()).await {
            Some(a) => a,
            None => panic!(
                "{what}: no answer to get {id} of {soul} within {timeout:?} (closed: {:?})",
                self.closed()
            ),
        }
    }

    /// Gets `soul` (or one key) and merges the `put[soul]` of every answer
    /// (replies may be chunked) until `done` holds for the merged node or
    /// `timeout` passes; returns the merged node either way.
    pub async fn get_merged(
        &self,
        soul: &str,
        key: Option<&str>,
        timeout: Duration,
        done: impl Fn(&serde_json::Map<String, Value>) -> bool,
    ) -> serde_json::Map<String, Value> {
        let id = self.get(soul, key);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            let mut node = serde_json::Map::new();
            for m in self.replies_to(&id) {
                if let Some(n) = m["put"][soul].as_object() {
                    for (k, v) in n {
                        if k == "_" {
                            let states = node
                                .entry("_")
                                .or_insert_with(|| json!({"#": soul, ">": {}}));
                            if let (Some(into), Some(from)) =
                                (states[">"].as_object_mut(), v[">"].as_object())
                            {
                                into.extend(from.clone());
                            }
                        } else {
                            node.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if done(&node) || self.closed().is_some() {
                return node;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return node;
            }
        }
    }

    /// Gets and waits for an answer carrying `soul`'s data; returns the node.
    pub async fn get_node(&self, soul: &str, timeout: Duration) -> Option<Value> {
        let id = self.get(soul, None);
        self.wait_for(timeout, |m| {
            m["@"] == id.as_str() && m["put"][soul].is_object()
        })
        .await
        .map(|m| m["put"][soul].clone())
    }
}

/// `{"#":id,"put":{soul:{"_":{"#":soul,">":{k:state}},k:v}}}`.
pub fn put_msg(id: &str, soul: &str, fields: &[(&str, Value)], state: f64) -> Value {
    let mut node = serde_json::Map::new();
    let mut states = serde_json::Map::new();
    for (k, v) in fields {
        states.insert((*k).to_owned(), json!(state));
        node.insert((*k).to_owned(), v.clone());
    }
    node.insert("_".into(), json!({"#": soul, ">": states}));
    json!({"#": id, "put": {soul: node}})
}

/// Milliseconds since the epoch (a HAM state).
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

/// A soul unique to this test run.
pub fn soul(tag: &str) -> String {
    format!("{tag}-{}-{}", std::process::id(), now_ms() as u64)
}

pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{tag}-{}", std::process::id()))
}

/// `GET path` with extra header lines (`headers`, each ending in CRLF):
/// status and body (a chunked body decoded); panics on a broken answer.
pub async fn http_get_with(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(buf[..split].to_vec()).unwrap();
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// Decodes a chunked body; panics unless it ends with the last chunk.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("truncated chunked body");
        let len = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap(), 16).unwrap();
        raw = &raw[eol + 2..];
        if len == 0 {
            assert_eq!(raw, b"\r\n", "data after the last chunk");
            return out;
        }
        out.extend_from_slice(&raw[..len]);
        assert_eq!(&raw[len..len + 2], b"\r\n");
        raw = &raw[len + 2..];
    }
}
