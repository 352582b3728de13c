//! Shared by the `crash` and `corruption` tests: a `gun-relay` child process
//! that dies with the test, raw WebSocket writers/readers speaking the wire
//! protocol (spec §4, §5), and exact comparison of what was written with what
//! is read back.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// How long a relay may take to print its "listening" line.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ process

/// A running `gun-relay`. Dropping it SIGKILLs the process (and reaps it), so
/// no relay outlives a failing test.
pub(crate) struct Relay {
    child: Option<Child>,
    pub(crate) port: u16,
    pub(crate) store: String,
    pub(crate) data: PathBuf,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

/// What came of starting a relay.
pub(crate) enum Start {
    /// It printed its "listening" line.
    Ready(Relay),
    /// It exited before that: its status and everything it wrote to stderr.
    Exited { status: ExitStatus, stderr: String },
    /// Neither within [`START_TIMEOUT`]; it was killed. Its stderr so far.
    Hung { stderr: String },
}

impl Start {
    /// The relay, or a panic with the reason it did not start.
    pub(crate) fn ready(self) -> Relay {
        match self {
            Start::Ready(r) => r,
            Start::Exited { status, stderr } => {
                panic!("gun-relay exited at start ({status}); stderr:\n{stderr}")
            }
            Start::Hung { stderr } => panic!("gun-relay hung at start; stderr:\n{stderr}"),
        }
    }
}

impl Relay {
    /// Starts `gun-relay --store STORE --data DATA --port PORT` (0: any free
    /// port; the one it got is read from its "listening" line).
    pub(crate) fn start(store: &str, data: &Path, port: u16) -> Start {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gun-relay"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--store",
                store,
            ])
            .arg("--data")
            .arg(data)
            .args(["--log", "info"])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gun-relay");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("gun-relay listening on ")
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(line.clone());
                    }
                    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
            })
        };
        let mut relay = Relay {
            child: Some(child),
            port,
            store: store.to_string(),
            data: data.to_path_buf(),
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    // "gun-relay listening on ws://127.0.0.1:PORT/gun (store: …"
                    let port = line
                        .split("ws://")
                        .nth(1)
                        .and_then(|r| r.split('/').next())
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| panic!("cannot parse port from {line:?}"));
                    relay.port = port;
                    return Start::Ready(relay);
                }
                Err(mpsc::RecvTimeoutError::Timeout)
                | Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            let child = relay.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("try_wait") {
                relay.child = None;
                if let Some(r) = relay.reader.take() {
                    let _ = r.join();
                }
                return Start::Exited {
                    status,
                    stderr: relay.stderr(),
                };
            }
            if Instant::now() > deadline {
                relay.kill();
                return Start::Hung {
                    stderr: relay.stderr(),
                };
            }
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/gun", self.port)
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the relay wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// SIGTERM (via `kill -TERM PID`), then wait up to `timeout` for it to exit.
    /// `None` if it did not (it is then killed).
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill -TERM")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = c.try_wait().expect("try_wait") {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now (bind :0, read it, close).
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("local_addr").port()
}

/// Whether stderr shows a Rust panic.
pub(crate) fn panicked(stderr: &str) -> bool {
    stderr.contains("panicked at") || stderr.contains("RUST_BACKTRACE")
}

// --------------------------------------------------------------------- data

/// One put as written: a node with its keys, values and states.
#[derive(Debug, Clone)]
pub(crate) struct Put {
    pub(crate) id: String,
    pub(crate) soul: String,
    /// key → (value, state)
    pub(crate) fields: Vec<(String, Value, f64)>,
}

impl Put {
    /// `{"#":id,"put":{soul:{"_":{"#":soul,">":{…}},…}}}` (spec §5.1).
    pub(crate) fn to_wire(&self) -> String {
        let mut states = Map::new();
        let mut node = Map::new();
        for (k, _, s) in &self.fields {
            states.insert(k.clone(), json!(s));
        }
        node.insert("_".into(), json!({"#": self.soul, ">": states}));
        for (k, v, _) in &self.fields {
            node.insert(k.clone(), v.clone());
        }
        let mut put = Map::new();
        put.insert(self.soul.clone(), Value::Object(node));
        json!({"#": self.id, "put": put}).to_string()
    }

    /// The size of the put on the wire, roughly.
    pub(crate) fn approx_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, v, _)| k.len() + v.to_string().len() + 24)
            .sum()
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(1.0)
}

/// A random string with some characters that need escaping in JSON.
pub(crate) fn random_text(rng: &mut impl Rng, max_len: usize) -> String {
    const ALPHABET: &[&str] = &[
        "a", "b", "c", "x", "Y", "z", "0", "7", " ", "-", "\"", "\\", "/", "\n", "\t", "é", "ß",
        "中", "😀", "\u{1b}", "{", "}",
    ];
    let n = rng.random_range(0..=max_len);
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

/// A random Gun value: text, integer, float, bool, null or a link.
pub(crate) fn random_value(rng: &mut impl Rng, max_text: usize) -> Value {
    match rng.random_range(0..8) {
        0..=2 => Value::String(random_text(rng, max_text)),
        3 => json!(rng.random_range(-9_007_199_254_740_991i64..=9_007_199_254_740_991)),
        4 => json!(rng.random_range(-1.0e9..1.0e9f64) / 7.0),
        5 => Value::Bool(rng.random()),
        6 => Value::Null,
        _ => json!({"#": format!("link/{}", random_text(rng, 8).replace(['"', '\\'], ""))}),
    }
}

/// A random state in `[1, now)` with a fractional part (states are f64 ms).
pub(crate) fn random_state(rng: &mut impl Rng) -> f64 {
    let s = rng.random_range(1.0..now_ms());
    if rng.random_bool(0.5) { s.floor() } else { s }
}

/// A node of `keys` random fields.
pub(crate) fn random_put(
    rng: &mut impl Rng,
    id: String,
    soul: String,
    keys: usize,
    max_text: usize,
) -> Put {
    let fields = (0..keys)
        .map(|i| {
            (
                format!("f{i}"),
                random_value(rng, max_text),
                random_state(rng),
            )
        })
        .collect();
    Put { id, soul, fields }
}

/// Compares JSON values, numbers by their f64 (so `3` equals `3.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_eq(v, w))
        }
        _ => a == b,
    }
}

/// How a node read back compares with a put.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    /// Every key with exactly its value and state, and nothing else.
    Exact,
    /// The relay said "not found".
    Missing,
    /// Something else: what differs.
    Different(String),
}

/// Compares the node in a get reply with what was put.
pub(crate) fn compare(put: &Put, node: Option<&Value>) -> Found {
    let Some(node) = node else {
        return Found::Missing;
    };
    let Some(obj) = node.as_object() else {
        return Found::Different(format!("not an object: {node}"));
    };
    let states = obj
        .get("_")
        .and_then(|m| m.get(">"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut diffs = Vec::new();
    for (k, v, s) in &put.fields {
        match (obj.get(k), states.get(k).and_then(Value::as_f64)) {
            (Some(got), Some(st)) => {
                if !json_eq(got, v) {
                    diffs.push(format!("{k}: value {got} != written {v}"));
                }
                if st != *s {
                    diffs.push(format!("{k}: state {st:?} != written {s:?}"));
                }
            }
            (got, st) => diffs.push(format!("{k}: missing (value {got:?}, state {st:?})")),
        }
    }
    for k in obj.keys().filter(|k| *k != "_") {
        if !put.fields.iter().any(|(f, _, _)| f == k) {
            diffs.push(format!("unexpected key {k:?}"));
        }
    }
    if diffs.is_empty() {
        Found::Exact
    } else {
        Found::Different(diffs.join("; "))
    }
}

// ------------------------------------------------------------------ network

pub(crate) type Ws = WebSocketStream<TcpStream>;

/// A raw WebSocket to the relay's `/gun`.
pub(crate) async fn connect(port: u16) -> Result<Ws, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/gun"), tcp)
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    Ok(ws)
}

/// The messages of one text frame (a message, or an array of them; `[]` is a
/// keep-alive).
pub(crate) fn messages(text: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a,
        Ok(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

/// What a writer saw before its connection ended (or it ran out of puts).
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Puts acked with `ok: true`.
    pub(crate) acked: Vec<Put>,
    /// Puts sent (or about to be) that got no ack.
    pub(crate) unacked: Vec<Put>,
    /// Acks that were not `ok: true` (with `err`, or another `ok`).
    pub(crate) bad_acks: Vec<String>,
    /// Why the connection ended, if it did.
    pub(crate) ended: Option<String>,
}

/// Sends the puts `next` yields, keeping up to `window` of them un-acked, as
/// fast as acks come back, until `next` yields `None` and every put is acked,
/// or the connection ends, or no ack arrives for `idle`.
pub(crate) async fn write(
    port: u16,
    window: usize,
    idle: Duration,
    next: impl FnMut() -> Option<Put>,
) -> Written {
    write_counted(port, window, idle, next, &AtomicUsize::new(0)).await
}

/// [`write`], adding one to `acks` for every `ok: true` ack as it arrives.
pub(crate) async fn write_counted(
    port: u16,
    window: usize,
    idle: Duration,
    mut next: impl FnMut() -> Option<Put>,
    acks: &AtomicUsize,
) -> Written {
    let mut out = Written::default();
    let ws = match connect(port).await {
        Ok(ws) => ws,
        Err(e) => {
            out.ended = Some(e);
            return out;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let mut inflight: HashMap<String, Put> = HashMap::new();
    let mut exhausted = false;
    'outer: loop {
        while !exhausted && inflight.len() < window {
            let Some(p) = next() else {
                exhausted = true;
                break;
            };
            let text = p.to_wire();
            inflight.insert(p.id.clone(), p);
            if let Err(e) = sink.send(Message::Text(text.into())).await {
                out.ended = Some(format!("send: {e}"));
                break 'outer;
            }
        }
        if exhausted && inflight.is_empty() {
            break;
        }
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                out.ended = Some(format!("no ack for {idle:?}"));
                break;
            }
            Ok(None) => {
                out.ended = Some("closed".into());
                break;
            }
            Ok(Some(Err(e))) => {
                out.ended = Some(format!("receive: {e}"));
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        let Message::Text(text) = frame else {
            if let Message::Close(c) = frame {
                out.ended = Some(format!("close frame {c:?}"));
                break;
            }
            continue;
        };
        for m in messages(&text) {
            let Some(at) = m.get("@").and_then(Value::as_str) else {
                continue;
            };
            let Some(p) = inflight.remove(at) else {
                continue;
            };
            if m.get("ok") == Some(&Value::Bool(true)) && m.get("err").is_none() {
                out.acked.push(p);
                acks.fetch_add(1, Ordering::Relaxed);
            } else {
                out.bad_acks.push(m.to_string());
                out.unacked.push(p);
            }
        }
    }
    out.unacked.extend(inflight.into_values());
    let _ = sink.close().await;
    out
}

/// Reads every soul of `puts` back with raw gets (`{"#":id,"get":{"#":soul}}`,
/// `window` in flight) over one connection and compares. Errors if the
/// connection fails or a get gets no answer within `idle`.
pub(crate) async fn read_back(
    port: u16,
    puts: &[Put],
    window: usize,
    idle: Duration,
    tag: &str,
) -> Result<Vec<Found>, String> {
    let ws = connect(port).await?;
    let (mut sink, mut stream) = ws.split();
    let mut found: Vec<Option<Found>> = vec![None; puts.len()];
    let mut pending: HashMap<String, usize> = HashMap::new();
    let mut queue: VecDeque<usize> = (0..puts.len()).collect();
    let mut done = 0;
    while done < puts.len() {
        while pending.len() < window {
            let Some(i) = queue.pop_front() else { break };
            let id = format!("{tag}-g{i}");
            let get = json!({"#": id, "get": {"#": puts[i].soul}}).to_string();
            pending.insert(id, i);
            sink.send(Message::Text(get.into()))
                .await
                .map_err(|e| format!("send get: {e}"))?;
        }
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(format!("{} gets unanswered for {idle:?}", pending.len())),
            Ok(None) => return Err("connection closed while reading".into()),
            Ok(Some(Err(e))) => return Err(format!("receive: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        let Message::Text(text) = frame else { continue };
        for m in messages(&text) {
            let Some(at) = m.get("@").and_then(Value::as_str) else {
                continue;
            };
            let Some(i) = pending.remove(at) else {
                continue;
            };
            let node = m.get("put").and_then(|g| g.get(&puts[i].soul));
            found[i] = Some(compare(&puts[i], node));
            done += 1;
        }
    }
    let _ = sink.close().await;
    Ok(found
        .into_iter()
        .map(|f| f.unwrap_or(Found::Missing))
        .collect())
}

/// [`read_back`] split over `conns` connections.
pub(crate) async fn read_back_parallel(
    port: u16,
    puts: &[Put],
    conns: usize,
    tag: &str,
) -> Result<Vec<Found>, String> {
    let chunk = puts.len().div_ceil(conns.max(1)).max(1);
    let tasks: Vec<_> = puts
        .chunks(chunk)
        .enumerate()
        .map(|(n, c)| {
            let c = c.to_vec();
            let tag = format!("{tag}-r{n}");
            tokio::spawn(
                async move { read_back(port, &c, 64, Duration::from_secs(20), &tag).await },
            )
        })
        .collect();
    let mut all = Vec::with_capacity(puts.len());
    for t in tasks {
        all.extend(t.await.map_err(|e| format!("reader task: {e}"))??);
    }
    Ok(all)
}

/// One raw get `{"#":id,"get":{"#":soul}}`: the node of the reply, or `None`
/// for "not found".
pub(crate) async fn get_node(
    port: u16,
    soul: &str,
    idle: Duration,
) -> Result<Option<Value>, String> {
    let ws = connect(port).await?;
    let (mut sink, mut stream) = ws.split();
    let id = format!("one-{}", rand::random::<u64>());
    let get = json!({"#": id, "get": {"#": soul}}).to_string();
    sink.send(Message::Text(get.into()))
        .await
        .map_err(|e| format!("send get: {e}"))?;
    loop {
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(format!("get {soul:?} unanswered for {idle:?}")),
            Ok(None) => return Err("connection closed while reading".into()),
            Ok(Some(Err(e))) => return Err(format!("receive: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        let Message::Text(text) = frame else { continue };
        for m in messages(&text) {
            if m.get("@").and_then(Value::as_str) == Some(id.as_str()) {
                let _ = sink.close().await;
                return Ok(m.get("put").and_then(|g| g.get(soul)).cloned());
            }
        }
    }
}

/// The nodes of a wire graph `{soul: {"_": {"#": soul, ">": {key: state}}, key: value}}`
/// as puts (ids `g0`, `g1`, …), to read back and compare with [`compare`].
pub(crate) fn puts_from_graph(graph: &Value) -> Vec<Put> {
    let Some(graph) = graph.as_object() else {
        return Vec::new();
    };
    graph
        .iter()
        .enumerate()
        .map(|(i, (soul, node))| {
            let states = node
                .get("_")
                .and_then(|m| m.get(">"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let fields = node
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "_")
                .map(|(k, v)| {
                    let state = states.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
                    (k.clone(), v.clone(), state)
                })
                .collect();
            Put {
                id: format!("g{i}"),
                soul: soul.clone(),
                fields,
            }
        })
        .collect()
}
