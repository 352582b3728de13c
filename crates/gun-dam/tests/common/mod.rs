//! Shared test helpers: a minimal engine around a [`Mesh`] (merge puts, answer
//! gets, ack, publish), a [`Hub`] for [`MockNet`] runs, and capture loading.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gun_dam::{Direction, Get, Hub, Link, Mesh, MeshConfig, Message, Output, PeerId, SoulQuery};
use gun_graph::{Graph, Lex, State, lex};
use serde_json::Value;

/// One record of a capture file.
#[derive(Debug, Clone)]
pub struct Rec {
    pub ms: u64,
    pub conn: u64,
    pub dir: String,
    pub frame: String,
}

impl Rec {
    /// From a peer to the relay under test.
    pub fn to_relay(&self) -> bool {
        self.dir.ends_with("->relay")
    }
}

pub fn load(name: &str) -> Vec<Rec> {
    let path = format!("{}/tests/captures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Rec {
                ms: v["ms"].as_u64().unwrap(),
                conn: v["conn"].as_u64().unwrap(),
                dir: v["dir"].as_str().unwrap().to_owned(),
                frame: v["frame"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

/// Parses a frame we sent (strict JSON) into its messages as JSON values.
pub fn msgs(frame: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(frame).unwrap() {
        Value::Array(a) => a,
        v => vec![v],
    }
}

/// `v` without the listed top-level keys.
pub fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        for k in keys {
            m.shift_remove(*k);
        }
    }
    v
}

/// The graph in a message's `put`, as gun-graph reads it.
pub fn put_of(v: &Value) -> Option<Graph> {
    v.get("put").map(|p| Graph::from_json(p).unwrap())
}

/// Every message sent to `peer`.
pub fn sent_to(sends: &[(PeerId, String)], peer: PeerId) -> Vec<Value> {
    sends
        .iter()
        .filter(|(p, _)| *p == peer)
        .flat_map(|(_, f)| msgs(f))
        .collect()
}

/// The frames of `Send` outputs.
pub fn sends(outs: &[Output]) -> Vec<(PeerId, String)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to, frame } => Some((*to, frame.to_string())),
            _ => None,
        })
        .collect()
}

pub fn delivered(outs: &[Output]) -> Vec<(PeerId, Message)> {
    outs.iter()
        .filter_map(|o| o.message().map(|(from, msg)| (from, msg.clone())))
        .collect()
}

pub fn machine() -> State {
    State::new(1e15).unwrap()
}

/// A mesh plus the smallest engine that behaves like a Gun relay: puts are
/// merged, acked when something was accepted and published; gets are answered
/// from the graph (lexical queries with budgets) or with a not-found; get
/// replies are stored and acked.
pub struct Node {
    pub mesh: Mesh,
    pub graph: Graph,
    pub delivered: Vec<(PeerId, Message)>,
    pub invalid: Vec<(PeerId, Option<String>, gun_graph::Error)>,
    pub closed: Vec<PeerId>,
    /// Whether to publish accepted writes.
    pub publish: bool,
}

impl Node {
    pub fn new(cfg: MeshConfig) -> Node {
        Node {
            mesh: Mesh::new(cfg),
            graph: Graph::new(),
            delivered: Vec::new(),
            invalid: Vec::new(),
            closed: Vec::new(),
            publish: true,
        }
    }

    pub fn relay(pid: &str, seed: u64) -> Node {
        Node::new(MeshConfig {
            pid: Some(pid.into()),
            rng_seed: Some(seed),
            ..MeshConfig::relay()
        })
    }

    pub fn client(pid: &str, seed: u64) -> Node {
        Node::new(MeshConfig {
            pid: Some(pid.into()),
            rng_seed: Some(seed),
            ..MeshConfig::client()
        })
    }

    pub fn connect(&mut self, peer: PeerId, dir: Direction, now: u64) -> Vec<(PeerId, String)> {
        let o = self.mesh.connect(peer, dir, now);
        self.run(o, now)
    }

    /// A frame from `peer`; gets we can answer are forwarded with the `##`
    /// of our answer (as the gun-core engine does from its cache).
    pub fn receive(&mut self, peer: PeerId, frame: &str, now: u64) -> Vec<(PeerId, String)> {
        let graph = &self.graph;
        let o = self.mesh.receive_with(peer, frame, now, &mut |get| {
            let g = answer_of(graph, get);
            (!g.is_empty()).then(|| gun_graph::hash::graph_hash(&g))
        });
        self.run(o, now)
    }

    /// Executes outputs; returns the frames sent, in order.
    pub fn run(&mut self, outs: Vec<Output>, now: u64) -> Vec<(PeerId, String)> {
        let mut sent = Vec::new();
        let mut queue: VecDeque<Output> = outs.into();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Send { to, frame } => sent.push((to, frame.to_string())),
                Output::InvalidPut { from, id, error } => self.invalid.push((from, id, error)),
                Output::Close { peer, .. } => self.closed.push(peer),
                Output::Put { from, msg }
                | Output::Get { from, msg }
                | Output::Reply { from, msg }
                | Output::Ack { from, msg }
                | Output::Relayed { from, msg } => {
                    self.delivered.push((from, (*msg).clone()));
                    queue.extend(self.engine(from, *msg, now));
                }
            }
        }
        sent
    }

    pub fn answer(&self, get: &Get) -> Graph {
        answer_of(&self.graph, get)
    }
    fn engine(&mut self, from: PeerId, msg: Message, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        let id = msg.id.clone().unwrap_or_default();
        if let (Some(get), None) = (&msg.get, &msg.reply_to) {
            let g = self.answer(get);
            let reply = if g.is_empty() {
                Message::not_found(&id)
            } else {
                Message::reply(&id, g)
            };
            out.extend(self.mesh.reply(from, reply, now));
        }
        if let Some(put) = &msg.put {
            let merge = self.graph.merge(put, machine());
            if !merge.accepted.is_empty() {
                out.extend(self.mesh.reply(from, Message::ack_ok(&id), now));
                if msg.reply_to.is_none() && self.publish {
                    out.extend(
                        self.mesh
                            .publish(&merge.accepted, Some((from, id.as_str())), now),
                    );
                }
            }
        }
        out
    }
}

/// A [`Node`] behind a mutex, as a [`Hub`] for [`gun_dam::mock::MockNet`].
pub struct TestHub {
    pub node: Mutex<Node>,
    links: Mutex<HashMap<PeerId, Arc<dyn Link>>>,
    next: AtomicU64,
    clock: Arc<AtomicU64>,
}

impl TestHub {
    pub fn new(node: Node, clock: Arc<AtomicU64>) -> Arc<TestHub> {
        Arc::new(TestHub {
            node: Mutex::new(node),
            links: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            clock,
        })
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn send_all(&self, sent: Vec<(PeerId, String)>) {
        let links = self.links.lock().unwrap();
        for (to, frame) in sent {
            if let Some(l) = links.get(&to) {
                let _ = l.send(Arc::from(frame));
            }
        }
    }

    /// Runs mesh outputs produced outside the hub calls (request, publish, tick).
    pub fn exec(&self, f: impl FnOnce(&mut Node, u64) -> Vec<Output>) {
        let now = self.now();
        let sent = {
            let mut n = self.node.lock().unwrap();
            let outs = f(&mut n, now);
            n.run(outs, now)
        };
        self.send_all(sent);
    }

    /// A local write: merged here, then sent as the engine's own put request.
    pub fn write(&self, graph: Graph) {
        self.exec(|n, now| {
            let merge = n.graph.merge(&graph, machine());
            n.mesh.request(Message::put(merge.accepted), now).1
        });
    }

    /// A local read: sent to peers as the engine's own get.
    pub fn read(&self, get: Get) {
        self.exec(|n, now| n.mesh.request(Message::get(get), now).1);
    }

    pub fn graph(&self) -> Graph {
        self.node.lock().unwrap().graph.clone()
    }
}

impl Hub for TestHub {
    fn attach(&self, link: Arc<dyn Link>, dir: Direction) -> PeerId {
        let id = PeerId(self.next.fetch_add(1, Ordering::SeqCst));
        self.links.lock().unwrap().insert(id, link);
        let now = self.now();
        let sent = self.node.lock().unwrap().connect(id, dir, now);
        self.send_all(sent);
        id
    }

    fn receive(&self, peer: PeerId, frame: &str) {
        let now = self.now();
        let sent = self.node.lock().unwrap().receive(peer, frame, now);
        self.send_all(sent);
    }

    fn detach(&self, peer: PeerId) {
        self.links.lock().unwrap().remove(&peer);
        self.node.lock().unwrap().mesh.disconnect(peer);
    }
}

pub fn answer_of(graph: &Graph, get: &Get) -> Graph {
    let (souls, lexical_soul) = match &get.soul {
        SoulQuery::Exact(s) => (Lex::exact(s.as_str()), false),
        SoulQuery::Lex(l) => (l.clone(), true),
    };
    let keys = get.key.clone().unwrap_or_default();
    let lexical = lexical_soul || !keys.is_exact();
    lex::query_graph(graph, &souls, &keys, lex::budget(get.budget, lexical))
}

/// Hubs on a [`gun_dam::mock::MockNet`], for tests that drive several meshes.
pub struct World {
    pub net: gun_dam::mock::MockNet,
    pub hubs: Vec<Arc<TestHub>>,
}

impl World {
    pub fn new(seed: u64) -> World {
        World {
            net: gun_dam::mock::MockNet::new(seed),
            hubs: Vec::new(),
        }
    }

    /// Adds a node as a hub; its index on the network.
    pub fn add(&mut self, node: Node) -> usize {
        let h = TestHub::new(node, self.net.clock());
        self.hubs.push(h.clone());
        self.net.add_hub(h as Arc<dyn Hub>)
    }

    /// Runs the network until nothing is in flight.
    pub fn settle(&self) {
        self.net.advance(1);
        self.net.run_until_idle(1_000_000);
    }
}
