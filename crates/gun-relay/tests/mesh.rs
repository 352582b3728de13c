//! A mesh of three `gun-relay` processes (issue #4): a line A-B-C (B dials A,
//! C dials B) and a triangle (B dials A, C dials B, C dials A; each pair linked
//! once). For each topology and for a write made on each relay in turn (a raw
//! Gun `put` frame from a client), the write
//!
//! * is pushed live to a client subscribed (a raw `get`) on each other relay,
//! * is readable with a `get` on all three relays,
//! * crosses each relay-to-relay link **at most once** (one direction only).
//!
//! A last round has one writer on every relay write a different key of one soul
//! at the same moment; every key must reach every relay, again at most once per
//! direction per link.
//!
//! Counting: every relay-to-relay link goes through a small WebSocket proxy in
//! this test (tokio-tungstenite): the dialing relay is started with
//! `--peer ws://PROXY/gun`, the proxy dials the other relay and forwards text
//! and binary frames both ways, recording every message. A message counts as
//! "the put crossing the link" when it has no `@` (writes and pushes, not get
//! replies) and its `put` holds the test soul (and, in the concurrent round,
//! the key). The counts are taken once every subscriber saw the write, plus a
//! second for late duplicates, before the read-back gets.
//!
//! Network: when network namespaces can be created (`ip netns add` works, i.e.
//! the test runs as root or with CAP_NET_ADMIN), each relay runs in its own
//! namespace (`ip netns exec`), reachable only over a veth pair from the test's
//! namespace (addresses from 198.18.0.0/15, the benchmarking range), so the
//! relays can reach each other only through the proxies. Otherwise (no
//! privileges, no `ip`, or `GUN_MESH_NETNS=off`) everything runs on 127.0.0.1;
//! the relays then could reach each other directly, but they only dial the
//! proxy URLs they are given. The test prints which mode it used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{RawClient, RelayProc, RelaySpec, health, now_ms, soul};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const NAMES: [&str; 3] = ["A", "B", "C"];
/// How long a write may take to reach a subscriber or a reader.
const ARRIVAL: Duration = Duration::from_secs(15);
/// After every subscriber saw a write: time for late duplicates to show up
/// before the frames are counted.
const SETTLE: Duration = Duration::from_millis(1000);

// ------------------------------------------------------------------ network

/// One network namespace with a veth pair to the test's namespace.
struct Netns {
    name: String,
    veth_host: String,
    /// Our side of the veth (the proxies listen here).
    host_ip: String,
    /// The namespace's side (the relay listens here).
    ns_ip: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.name]).ok();
        ip(&["link", "del", &self.veth_host]).ok();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces left behind by test processes that died (SIGKILL).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("gunmesh-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            ip(&["netns", "del", name]).ok();
        }
    }
}

/// 198.18.0.0/15 split in /30s: `index` selects one; .1 is ours, .2 the namespace's.
fn subnet(index: u32) -> (String, String) {
    let base: u32 = (198 << 24) | (18 << 16);
    let net = base + index * 4;
    let dot = |a: u32| {
        format!(
            "{}.{}.{}.{}",
            a >> 24,
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255
        )
    };
    (dot(net + 1), dot(net + 2))
}

fn make_netns(topology: u32, i: u32) -> Result<Netns, String> {
    let pid = std::process::id();
    // 4096 pids x 2 topologies x 4 relays = 32768 /30s, all of 198.18.0.0/15.
    let index = (pid % 4096) * 8 + topology * 4 + i;
    let name = format!("gunmesh-{pid}-{topology}-{i}");
    let veth_host = format!("gmh{index}");
    let veth_ns = format!("gmn{index}");
    let (host_ip, ns_ip) = subnet(index);
    ip(&["link", "del", &veth_host]).ok(); // a leftover with our index
    ip(&["netns", "add", &name])?;
    let ns = Netns {
        name: name.clone(),
        veth_host: veth_host.clone(),
        host_ip: host_ip.clone(),
        ns_ip: ns_ip.clone(),
    };
    ip(&[
        "link", "add", &veth_host, "type", "veth", "peer", "name", &veth_ns, "netns", &name,
    ])?;
    ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &veth_host])?;
    ip(&["link", "set", &veth_host, "up"])?;
    ip(&[
        "-n",
        &name,
        "addr",
        "add",
        &format!("{ns_ip}/30"),
        "dev",
        &veth_ns,
    ])?;
    ip(&["-n", &name, "link", "set", &veth_ns, "up"])?;
    ip(&["-n", &name, "link", "set", "lo", "up"])?;
    Ok(ns)
}

/// Where the three relays and the proxies live.
struct Net {
    /// One per relay, or empty on loopback.
    netns: Vec<Netns>,
}

impl Net {
    fn new(topology: u32) -> Net {
        if std::env::var("GUN_MESH_NETNS").is_ok_and(|v| v == "off" || v == "0") {
            eprintln!("mesh: GUN_MESH_NETNS=off: relays on 127.0.0.1");
            return Net { netns: Vec::new() };
        }
        remove_stale_namespaces();
        let mut netns = Vec::new();
        for i in 0..3 {
            match make_netns(topology, i) {
                Ok(ns) => netns.push(ns),
                Err(e) => {
                    eprintln!("mesh: network namespaces unavailable ({e}): relays on 127.0.0.1");
                    return Net { netns: Vec::new() };
                }
            }
        }
        eprintln!(
            "mesh: one network namespace per relay: {}",
            netns
                .iter()
                .map(|n| format!("{} ({})", n.name, n.ns_ip))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Net { netns }
    }

    fn mode(&self) -> &'static str {
        if self.netns.is_empty() {
            "loopback"
        } else {
            "netns"
        }
    }

    fn spec(&self, i: usize, peers: Vec<String>) -> RelaySpec {
        let mut spec = RelaySpec::new(NAMES[i]);
        spec.store = "memory";
        spec.peers = peers;
        if let Some(ns) = self.netns.get(i) {
            spec.prefix = vec!["ip".into(), "netns".into(), "exec".into(), ns.name.clone()];
            spec.host = ns.ns_ip.clone();
        }
        spec
    }

    /// Where the proxy for links dialed by relay `i` listens (reachable from its namespace).
    fn proxy_ip(&self, i: usize) -> String {
        self.netns
            .get(i)
            .map_or_else(|| "127.0.0.1".to_owned(), |n| n.host_ip.clone())
    }
}

// ------------------------------------------------------------------ proxy

/// One message seen by a proxy.
#[derive(Debug, Clone)]
struct Seen {
    /// `"B->A"`: from relay B to relay A.
    dir: String,
    msg: Value,
}

#[derive(Default, Clone)]
struct Tap {
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Tap {
    fn record(&self, dir: &str, text: &str) {
        let msgs = match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(a)) => a,
            Ok(v @ Value::Object(_)) => vec![v],
            _ => Vec::new(),
        };
        let mut g = self.seen.lock().unwrap();
        for msg in msgs {
            g.push(Seen {
                dir: dir.to_owned(),
                msg,
            });
        }
    }

    fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Messages without `@` whose put holds `soul` (and `key`), per direction.
    fn writes(&self, soul: &str, key: Option<&str>) -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for s in self.snapshot() {
            let node = &s.msg["put"][soul];
            if s.msg.get("@").is_none()
                && node.is_object()
                && key.is_none_or(|k| node.get(k).is_some())
            {
                *n.entry(s.dir).or_insert(0) += 1;
            }
        }
        n
    }

    /// Whether the dialer of link `from->to` answered the acceptor's greeting
    /// (after that both ends know each other's pid and gun-rs marker).
    fn greeted(&self, from: &str, to: &str) -> bool {
        let dir = format!("{from}->{to}");
        self.seen.lock().unwrap().iter().any(|s| {
            s.dir == dir
                && s.msg["dam"] == "?"
                && s.msg.get("@").is_some()
                && s.msg.get("pid").is_some()
        })
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// A counting WebSocket proxy for the link "relay `from` dials relay `to`".
struct Proxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(
        listen_ip: &str,
        upstream: String,
        from: &'static str,
        to: &'static str,
        tap: Tap,
    ) -> Proxy {
        let listener = TcpListener::bind((listen_ip, 0)).await.expect("proxy bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            // Connections end when the relays are stopped (before the proxies).
            while let Ok((tcp, _)) = listener.accept().await {
                *tap.connections
                    .lock()
                    .unwrap()
                    .entry(format!("{from}->{to}"))
                    .or_insert(0) += 1;
                tokio::spawn(proxy_conn(tcp, upstream.clone(), from, to, tap.clone()));
            }
        });
        Proxy { addr, task }
    }

    fn url(&self) -> String {
        format!("ws://{}/gun", self.addr)
    }
}

async fn proxy_conn(
    tcp: TcpStream,
    upstream: String,
    from: &'static str,
    to: &'static str,
    tap: Tap,
) {
    tcp.set_nodelay(true).ok();
    let Ok(down) = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config())).await else {
        return;
    };
    let host = upstream
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let Ok(up_tcp) = TcpStream::connect(&host).await else {
        return; // dropping `down` closes the dialer's socket; it redials
    };
    up_tcp.set_nodelay(true).ok();
    let Ok((up, _)) =
        tokio_tungstenite::client_async_with_config(upstream, up_tcp, Some(ws_config())).await
    else {
        return;
    };
    let (mut down_tx, mut down_rx) = down.split();
    let (mut up_tx, mut up_rx) = up.split();
    let there = format!("{from}->{to}");
    let back = format!("{to}->{from}");
    loop {
        tokio::select! {
            m = down_rx.next() => match m {
                Some(Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => {
                    if let WsMessage::Text(t) = &m {
                        tap.record(&there, t.as_str());
                    }
                    if up_tx.send(m).await.is_err() { break; }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            m = up_rx.next() => match m {
                Some(Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => {
                    if let WsMessage::Text(t) = &m {
                        tap.record(&back, t.as_str());
                    }
                    if down_tx.send(m).await.is_err() { break; }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = up_tx.close().await;
    let _ = down_tx.close().await;
}

// ------------------------------------------------------------------ mesh

/// Three relays linked through proxies. Fields drop in order: relays, then
/// proxies, then namespaces.
struct Mesh {
    relays: Vec<RelayProc>,
    _proxies: Vec<Proxy>,
    tap: Tap,
    /// `(dialer, accepter)` relay indices.
    links: Vec<(usize, usize)>,
    /// Whether a put must cross each link in one direction only (see
    /// [`run_topology`]).
    one_way: bool,
    net: Net,
}

impl Mesh {
    /// Starts relays in index order; `links` are `(dialer, accepter)` with the
    /// accepter started first.
    async fn start(topology: u32, links: &[(usize, usize)], one_way: bool) -> Mesh {
        let net = Net::new(topology);
        let tap = Tap::default();
        let mut relays: Vec<RelayProc> = Vec::new();
        let mut proxies = Vec::new();
        for i in 0..3 {
            let mut peers = Vec::new();
            for &(d, a) in links.iter().filter(|(d, _)| *d == i) {
                assert!(a < i, "accepters start before their dialers");
                let p = Proxy::start(
                    &net.proxy_ip(d),
                    relays[a].url(),
                    NAMES[d],
                    NAMES[a],
                    tap.clone(),
                )
                .await;
                peers.push(p.url());
                proxies.push(p);
            }
            let spec = net.spec(i, peers);
            relays.push(
                tokio::task::spawn_blocking(move || RelayProc::start(spec))
                    .await
                    .unwrap(),
            );
        }
        let mesh = Mesh {
            relays,
            _proxies: proxies,
            tap,
            links: links.to_vec(),
            one_way,
            net,
        };
        mesh.wait_linked().await;
        mesh
    }

    fn expected_peers(&self, i: usize) -> usize {
        self.links
            .iter()
            .filter(|(d, a)| *d == i || *a == i)
            .count()
    }

    /// Every link connected and greeted both ways.
    async fn wait_linked(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut missing = Vec::new();
            for (i, r) in self.relays.iter().enumerate() {
                let peers = health(&r.addr)
                    .await
                    .and_then(|h| h["peers"].as_u64())
                    .unwrap_or(0);
                if peers as usize != self.expected_peers(i) {
                    missing.push(format!(
                        "{} has {peers} peers, wants {}",
                        NAMES[i],
                        self.expected_peers(i)
                    ));
                }
            }
            for &(d, a) in &self.links {
                if !self.tap.greeted(NAMES[d], NAMES[a]) {
                    missing.push(format!("{}->{} not greeted", NAMES[d], NAMES[a]));
                }
            }
            if missing.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("mesh not linked within 20 s: {missing:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn link_dirs(&self) -> Vec<String> {
        let mut v = Vec::new();
        for &(d, a) in &self.links {
            v.push(format!("{}->{}", NAMES[d], NAMES[a]));
            v.push(format!("{}->{}", NAMES[a], NAMES[d]));
        }
        v
    }

    fn logs(&self) -> String {
        self.relays
            .iter()
            .map(|r| {
                format!(
                    "--- relay {} ({}) log tail:\n{}",
                    r.name,
                    r.addr,
                    r.log.tail(30)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn assert_alive(&mut self) {
        for r in &mut self.relays {
            let name = r.name.clone();
            assert!(r.alive(), "relay {name} exited");
        }
    }

    /// Asserts at most one write per direction per link for `soul` (`key`), and
    /// that the write entered every relay in `receivers` over some link.
    /// Returns the counts, for the summary.
    fn check_counts(
        &self,
        what: &str,
        soul: &str,
        key: Option<&str>,
        receivers: &[usize],
    ) -> String {
        let writes = self.tap.writes(soul, key);
        if self.one_way {
            for &(d, a) in &self.links {
                let n = |from: usize, to: usize| {
                    writes
                        .get(&format!("{}->{}", NAMES[from], NAMES[to]))
                        .copied()
                        .unwrap_or(0)
                };
                assert!(
                    n(d, a) + n(a, d) <= 1,
                    "{what}: the put crossed the link {}-{} in both directions (an echo); all counts: {writes:?}\n{}",
                    NAMES[d],
                    NAMES[a],
                    self.dump(soul)
                );
            }
        }
        for (dir, n) in &writes {
            assert!(
                self.link_dirs().contains(dir),
                "{what}: counted a write on {dir}, which is not a link"
            );
            assert!(
                *n <= 1,
                "{what}: the put crossed {dir} {n} times (at most once per direction per link); all counts: {writes:?}\n{}",
                self.dump(soul)
            );
        }
        for &r in receivers {
            let into: usize = writes
                .iter()
                .filter(|(dir, _)| dir.ends_with(&format!("->{}", NAMES[r])))
                .map(|(_, n)| n)
                .sum();
            assert!(
                into >= 1,
                "{what}: the write never crossed a link into relay {} (counts {writes:?})",
                NAMES[r]
            );
        }
        let fmt = |m: &BTreeMap<String, usize>| {
            self.link_dirs()
                .iter()
                .map(|d| format!("{d}:{}", m.get(d).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!("{what}: {}", fmt(&writes))
    }

    /// Every message a proxy saw about `soul`, for failure messages.
    fn dump(&self, soul: &str) -> String {
        self.tap
            .snapshot()
            .iter()
            .filter(|s| s.msg["put"][soul].is_object() || s.msg["get"]["#"] == soul)
            .map(|s| format!("{} {}", s.dir, s.msg))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A client subscribed to `soul` on `relay`: it sent a get and got an answer.
async fn subscribe(relay: &RelayProc, soul: &str, name: &str) -> RawClient {
    let c = RawClient::connect(&relay.addr, name).await;
    c.get_answer(soul, None, Duration::from_secs(10), name)
        .await;
    c
}

/// Waits for a push (no `@`) of `soul` with `key` = `value`.
async fn wait_push(c: &RawClient, soul: &str, key: &str, value: &Value, what: &str) {
    let got = c
        .wait_for(ARRIVAL, |m| {
            m.get("@").is_none() && m["put"][soul][key] == *value
        })
        .await;
    assert!(
        got.is_some(),
        "{what}: subscriber {} got no push of {soul}.{key}={value} within {ARRIVAL:?}; it received: {:?}",
        c.name,
        c.messages()
    );
}

/// Reads `soul` on `relay` with a new client (merging chunked replies) until
/// every `(key, value)` is there.
async fn read_back(relay: &RelayProc, soul: &str, want: &[(&str, Value)], what: &str) {
    let c = RawClient::connect(&relay.addr, &format!("reader-{}", relay.name)).await;
    let node = c
        .get_merged(soul, None, ARRIVAL, |n| {
            want.iter().all(|(k, v)| n.get(*k) == Some(v))
        })
        .await;
    let ok = want.iter().all(|(k, v)| node.get(*k) == Some(v));
    assert!(
        ok,
        "{what}: get of {soul} on relay {} does not return {want:?}; it returned {node:?}",
        relay.name
    );
}

/// Runs the rounds on one topology. With `one_way`, a put must also cross each
/// link in one direction only: no echo back to the relay it came from, and in a
/// cycle no two relays sending each other the same put (`><` carries each
/// peer's pid beside the URL its dialer used, so the third relay recognises
/// its own peers in it).
async fn run_topology(topology: u32, name: &str, links: &[(usize, usize)], one_way: bool) {
    let mut mesh = Mesh::start(topology, links, one_way).await;
    let mode = mesh.net.mode();
    let mut summary = vec![format!("{name} ({mode}), links {:?}", mesh.link_dirs())];

    // One write on each relay in turn, the other two subscribed.
    for (w, wname) in NAMES.iter().enumerate() {
        let what = format!("{name}: write on {wname}");
        let s = soul(&format!("mesh-{name}-{wname}"));
        let others: Vec<usize> = (0..3).filter(|&i| i != w).collect();
        let mut subs = Vec::new();
        for &o in &others {
            subs.push(subscribe(&mesh.relays[o], &s, &format!("sub-{}", NAMES[o])).await);
        }
        // Let the forwarded gets settle, so that what follows is a push.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let writer = RawClient::connect(&mesh.relays[w].addr, &format!("writer-{wname}")).await;
        let value = json!(format!("from {wname} at {}", now_ms()));
        writer
            .put_acked(&s, &[("v", value.clone()), ("n", json!(w))], ARRIVAL, &what)
            .await;
        for sub in &subs {
            wait_push(sub, &s, "v", &value, &what).await;
        }
        tokio::time::sleep(SETTLE).await;
        summary.push(mesh.check_counts(&what, &s, None, &others));

        for r in &mesh.relays {
            read_back(r, &s, &[("v", value.clone()), ("n", json!(w))], &what).await;
        }
        mesh.assert_alive();
    }

    // Three writers, one per relay, each writing its own key of one soul at once.
    let what = format!("{name}: concurrent writes on A, B and C");
    let s = soul(&format!("mesh-{name}-all"));
    let mut subs = Vec::new();
    for r in &mesh.relays {
        subs.push(subscribe(r, &s, &format!("sub-{}", r.name)).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut writers = Vec::new();
    for r in &mesh.relays {
        writers.push(RawClient::connect(&r.addr, &format!("writer-{}", r.name)).await);
    }
    let keys: Vec<String> = NAMES.iter().map(|n| format!("k{n}")).collect();
    let values: Vec<Value> = NAMES.iter().map(|n| json!(format!("by {n}"))).collect();
    let state = now_ms();
    let ids: Vec<String> = writers
        .iter()
        .enumerate()
        .map(|(i, c)| c.put(&s, &[(keys[i].as_str(), values[i].clone())], state))
        .collect();
    for (c, id) in writers.iter().zip(&ids) {
        let acked = c.wait_for(ARRIVAL, |m| m["@"] == id.as_str()).await;
        assert!(acked.is_some(), "{what}: {} got no ack for {id}", c.name);
    }
    for sub in &subs {
        for (k, v) in keys.iter().zip(&values) {
            wait_push(sub, &s, k, v, &what).await;
        }
    }
    tokio::time::sleep(SETTLE).await;
    for (i, k) in keys.iter().enumerate() {
        let receivers: Vec<usize> = (0..3).filter(|&r| r != i).collect();
        summary.push(mesh.check_counts(&format!("{what}, key {k}"), &s, Some(k), &receivers));
    }
    let want: Vec<(&str, Value)> = keys
        .iter()
        .map(String::as_str)
        .zip(values.iter().cloned())
        .collect();
    for r in &mesh.relays {
        read_back(r, &s, &want, &what).await;
    }
    mesh.assert_alive();

    let conns = mesh.tap.connections.lock().unwrap().clone();
    summary.push(format!("proxy connections per link: {conns:?}"));
    eprintln!("{}", summary.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_a_b_c() {
    // B dials A, C dials B.
    run_topology(0, "line", &[(1, 0), (2, 1)], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triangle() {
    // B dials A, C dials B, C dials A.
    run_topology(1, "triangle", &[(1, 0), (2, 1), (2, 0)], true).await;
}
