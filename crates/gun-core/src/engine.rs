//! The engine: graph cache + store + mesh + validators + local events.
//!
//! The path of one put (ARCHITECTURE.md, "data flow of one put"):
//!
//! 1. a transport hands a frame to [`Engine`] through [`Hub::receive`];
//! 2. the mesh (gun-dam) parses, deduplicates and routes it, and delivers puts
//!    and gets here;
//! 3. validators run, then the souls concerned are loaded from the store into
//!    the cache (so HAM compares against what is stored, not against a partial
//!    cache), and HAM *previews* the merge;
//! 4. the accepted diff is written to the store; only when the store says it is
//!    durable is it applied to the cache and acked — a failed write answers
//!    `err` and leaves nothing half-applied;
//! 5. local subscribers are told once per accepted change, and the mesh pushes
//!    the diff to the peers that need it.
//!
//! Writes whose state is ahead of the clock are deferred and applied when due,
//! then acked (Gun.js never acks them).

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gun_dam::{
    Direction, Get, Hub, Link, Mesh, Message, Origin, Output, PeerId, PutContext, SoulQuery,
    Validator,
};
use gun_graph::{Deferred, Graph, Lex, Node, Soul, State, StateClock, lex};
use gun_store::Store;
use tokio::sync::{Notify, mpsc};

use crate::{EngineOptions, Error};

/// Milliseconds since the Unix epoch, as a JavaScript `+new Date` would give.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .map(f64::floor)
        .unwrap_or(0.0)
}

fn now_u64() -> u64 {
    now_ms() as u64
}

/// A change to one node, as local subscribers receive it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The node after the change (the whole cached node).
    pub node: Node,
    /// The keys that changed.
    pub keys: Vec<Arc<str>>,
    /// Where the change came from: [`Origin::Local`] for writes of this
    /// process; for a peer's write, the message [`Engine::answer`] can answer.
    pub origin: Origin,
}

/// A message that answers one of ours (`@` = our `#`), in full: an ack, a get
/// reply, a signalling answer with its `ok` payload.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The connection it came from.
    pub from: PeerId,
    /// The message as received (for a push ack a relay translated, with the
    /// relay's `@`).
    pub message: Message,
}

/// The replies to one of our messages, as they arrive ([`Engine::put_local_replies`],
/// [`Engine::answer`]). The route closes when this is dropped; later replies
/// are dropped.
pub struct Replies {
    guard: AskGuard,
}

impl Replies {
    /// The `#` of the message these answer.
    pub fn id(&self) -> &str {
        &self.guard.id
    }

    /// The next reply; `None` once the engine is gone.
    pub async fn next(&mut self) -> Option<Reply> {
        loop {
            match self.guard.rx.recv().await? {
                AskEvent::Message(r) => return Some(*r),
                AskEvent::Reply { .. } | AskEvent::Ack { .. } => {}
            }
        }
    }
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("id", &self.guard.id)
            .finish()
    }
}

/// What happened to a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Keys applied (and stored).
    pub accepted: usize,
    /// Keys whose state is in the future, applied when due.
    pub deferred: usize,
    /// Keys that changed nothing (older, identical or tie lost).
    pub rejected: usize,
    /// The message id under which a local write went to peers.
    pub id: Option<String>,
}

/// A reply to one of our own requests.
#[derive(Debug, Clone)]
pub(crate) enum AskEvent {
    /// A peer answered a get; `found` when it carried data (already merged).
    Reply { from: PeerId, found: bool },
    /// A peer acked a put.
    Ack { from: PeerId, err: Option<String> },
    /// Any reply, in full (waiters registered with `raw`).
    Message(Box<Reply>),
}

struct Listener {
    id: u64,
    tx: mpsc::UnboundedSender<Change>,
}

struct Due {
    state: State,
    item: Deferred,
    origin: Origin,
    message_id: Option<String>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Due) -> bool {
        self.state == o.state
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Due) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Due) -> std::cmp::Ordering {
        self.state.cmp(&o.state)
    }
}

struct Shared {
    graph: Graph,
    mesh: Mesh,
    clock: StateClock,
    links: HashMap<PeerId, Arc<dyn Link>>,
    listeners: HashMap<Soul, Vec<Listener>>,
    next_id: u64,
    /// Waiters for replies, by the `#` they answer; `true`: wants whole
    /// messages ([`AskEvent::Message`]).
    asks: HashMap<String, (mpsc::UnboundedSender<AskEvent>, bool)>,
    deferred: BinaryHeap<Reverse<Due>>,
    /// Deferred keys still pending per incoming put id, to ack when all applied.
    deferred_pending: HashMap<String, usize>,
    /// Whether local writes concern the mesh at all: a peer is attached, or an
    /// outgoing URL is known (writes made before it connects are sent then).
    remote: bool,
    /// Souls in the order they entered the cache, for eviction.
    cache_order: std::collections::VecDeque<Soul>,
    /// Souls with incoming writes still in progress (count per soul).
    writing: HashMap<Soul, usize>,
}

/// Counters for health pages and dashboards.
#[derive(Debug, Default)]
pub struct Stats {
    /// Put messages received from peers.
    pub puts_in: AtomicU64,
    /// Get messages received from peers.
    pub gets_in: AtomicU64,
    /// Acks sent.
    pub acks_out: AtomicU64,
    /// Writes refused (validation, storage).
    pub rejected: AtomicU64,
    /// Keys accepted by HAM and stored.
    pub keys_accepted: AtomicU64,
    /// Writes refused, by error text (at most [`MAX_REJECT_REASONS`] texts; the
    /// rest are counted under `"other"`).
    pub rejected_by_reason: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Distinct error texts counted in [`Stats::rejected_by_reason`].
pub const MAX_REJECT_REASONS: usize = 32;

impl Stats {
    /// Counts one refused write with error text `reason` (in `rejected` and
    /// in `rejected_by_reason`).
    pub fn count_rejected(&self, reason: &str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let mut map = self
            .rejected_by_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(reason) {
            *n += 1;
        } else if map.len() < MAX_REJECT_REASONS {
            map.insert(reason.to_owned(), 1);
        } else {
            *map.entry("other".to_owned()).or_default() += 1;
        }
    }

    /// A copy of [`Stats::rejected_by_reason`].
    pub fn rejected_reasons(&self) -> std::collections::BTreeMap<String, u64> {
        self.rejected_by_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Shares the text of short, frequent keys (`name`, `f0`…) between nodes, so a
/// hundred thousand nodes with the same ten keys hold ten key strings, not a
/// million. Bounded: past `MAX_INTERNED` keys, new keys are simply not shared.
struct Interner {
    set: Mutex<HashSet<Arc<str>>>,
}

const MAX_INTERNED: usize = 4_096;
const MAX_INTERNED_LEN: usize = 48;

impl Interner {
    fn get(&self, s: &str) -> Arc<str> {
        if s.len() > MAX_INTERNED_LEN {
            return Arc::from(s);
        }
        let mut set = self
            .set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(a) = set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if set.len() < MAX_INTERNED {
            set.insert(a.clone());
        }
        a
    }
}

struct Inner {
    interner: Interner,
    opts: EngineOptions,
    store: Arc<dyn Store>,
    shared: Mutex<Shared>,
    validators: RwLock<Vec<Arc<dyn Validator>>>,
    deferred_wake: Notify,
    write_done: Notify,
    closed: AtomicBool,
    stats: Stats,
    started: std::time::Instant,
}

/// The engine. Cheap to clone; all clones share one state.
///
/// Must be created inside a tokio runtime: it spawns its timer tasks there.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// A new engine on the given options.
    pub fn new(opts: EngineOptions) -> Engine {
        let mesh = Mesh::new(opts.mesh.clone());
        let inner = Arc::new(Inner {
            interner: Interner {
                set: Mutex::new(HashSet::new()),
            },
            store: opts.store.clone(),
            opts,
            shared: Mutex::new(Shared {
                graph: Graph::new(),
                mesh,
                clock: StateClock::new(),
                links: HashMap::new(),
                listeners: HashMap::new(),
                next_id: 1,
                asks: HashMap::new(),
                deferred: BinaryHeap::new(),
                deferred_pending: HashMap::new(),
                remote: false,
                cache_order: std::collections::VecDeque::new(),
                writing: HashMap::new(),
            }),
            validators: RwLock::new(Vec::new()),
            deferred_wake: Notify::new(),
            write_done: Notify::new(),
            closed: AtomicBool::new(false),
            stats: Stats::default(),
            started: std::time::Instant::now(),
        });
        let engine = Engine { inner };
        engine.spawn_timers();
        engine
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves the data consistent enough to go on
        // (every critical section is short and does not unwind half-way through a
        // merge), so a poisoned lock is taken over rather than propagated.
        self.inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The options in force.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.opts
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Time since the engine started.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// This peer's id (`pid`), as sent in the handshake.
    pub fn pid(&self) -> String {
        self.lock().mesh.pid().to_string()
    }

    /// Number of connected peers.
    pub fn peer_count(&self) -> usize {
        self.lock().links.len()
    }

    /// Number of souls in the cache.
    pub fn cached_souls(&self) -> usize {
        self.lock().graph.len()
    }

    /// Adds a validator, run on every write (local and remote) before HAM.
    pub fn add_validator(&self, v: Arc<dyn Validator>) {
        self.inner
            .validators
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(v);
    }

    /// Registers the URL of a peer that will be dialed: writes and
    /// subscriptions made before it connects are sent when it does.
    pub fn expect_peer(&self, url: &str) {
        let mut sh = self.lock();
        sh.mesh.add_url(url);
        sh.remote = true;
    }

    /// The shared text of a key (see the interner in this module).
    pub(crate) fn intern(&self, key: &str) -> Arc<str> {
        self.inner.interner.get(key)
    }

    /// The next state from this engine's state generator.
    pub fn next_state(&self) -> State {
        self.lock().clock.next(now_ms())
    }

    /// The pid a connected peer announced (or, for a direct link, was
    /// signalled with), if any.
    pub fn peer_pid(&self, peer: PeerId) -> Option<String> {
        self.lock().mesh.peer_pid(peer).map(str::to_owned)
    }

    /// A copy of the cached node, if cached.
    pub fn cached(&self, soul: &str) -> Option<Node> {
        self.lock().graph.get(soul).cloned()
    }

    // ---------------------------------------------------------------- outputs

    /// Carries out what the mesh asked for: frames to send, messages to handle.
    fn execute(&self, outs: Vec<Output>) {
        let mut queue = outs;
        while !queue.is_empty() {
            let mut dead: Vec<(PeerId, String)> = Vec::new();
            let mut deliver: Vec<(PeerId, Message)> = Vec::new();
            let mut more: Vec<Output> = Vec::new();
            {
                let mut sh = self.lock();
                for o in queue.drain(..) {
                    match o {
                        Output::Send { to, frame } => {
                            if let Some(link) = sh.links.get(&to)
                                && let Err(e) = link.send(frame)
                            {
                                dead.push((to, format!("send failed: {e:?}")));
                            }
                        }
                        Output::Deliver { from, msg } => deliver.push((from, msg)),
                        Output::InvalidPut { from, id, error } => {
                            tracing::debug!(peer = ?from, %error, "invalid put");
                            self.inner.stats.count_rejected(&error.to_string());
                            if let Some(id) = id {
                                let reply = Message::ack_err(&id, error.to_string());
                                more.extend(sh.mesh.reply(from, reply, now_u64()));
                            }
                        }
                        Output::Close { peer, reason } => dead.push((peer, reason)),
                    }
                }
            }
            for (peer, reason) in dead {
                tracing::info!(?peer, %reason, "closing peer");
                let link = self.lock().links.get(&peer).cloned();
                if let Some(link) = link {
                    link.close(&reason);
                }
                self.detach(peer);
            }
            for (from, msg) in deliver {
                self.deliver(from, msg);
            }
            queue = more;
        }
    }

    fn deliver(&self, from: PeerId, msg: Message) {
        if msg.put.is_some() && msg.reply_to.is_none() {
            self.inner.stats.puts_in.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            let pending = self.writes_begin(msg.put.as_ref());
            tokio::spawn(async move {
                me.remote_put(from, msg).await;
                me.writes_end(pending);
            });
        } else if let Some(graph) = msg.put.clone() {
            // An answer to a get (ours or one we forwarded): store it, then tell
            // whoever waits on it.
            let me = self.clone();
            let pending = self.writes_begin(Some(&graph));
            tokio::spawn(async move {
                let found = !graph.is_empty();
                let origin = Origin::Reply {
                    peer: from,
                    id: msg.id.clone().unwrap_or_default(),
                };
                if let Err(e) = me.ingest(graph, origin, Some(&msg)).await {
                    tracing::debug!(peer = ?from, %e, "reply not stored");
                }
                me.writes_end(pending);
                if let Some(at) = &msg.reply_to {
                    me.notify_ask(at, AskEvent::Reply { from, found }, from, &msg);
                }
            });
        } else if msg.get.is_some() {
            self.inner.stats.gets_in.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            tokio::spawn(async move {
                // A get sees every write that arrived before it (read your
                // writes, as Gun.js's in-order processing gives).
                if let Some(soul) = msg.get.as_ref().and_then(|g| g.exact_soul()) {
                    me.writes_settled(soul).await;
                }
                me.remote_get(from, msg).await
            });
        } else if let Some(at) = &msg.reply_to {
            let ev = if msg.ok.is_some() || msg.err.is_some() {
                AskEvent::Ack {
                    from,
                    err: msg.err.clone(),
                }
            } else {
                AskEvent::Reply { from, found: false }
            };
            self.notify_ask(at, ev, from, &msg);
        }
    }

    /// Marks the souls of an incoming write as being written, in arrival order,
    /// so that later gets wait for it.
    fn writes_begin(&self, graph: Option<&Graph>) -> Vec<Soul> {
        let Some(graph) = graph else {
            return Vec::new();
        };
        let souls: Vec<Soul> = graph.souls().cloned().collect();
        let mut sh = self.lock();
        for s in &souls {
            *sh.writing.entry(s.clone()).or_default() += 1;
        }
        souls
    }

    fn writes_end(&self, souls: Vec<Soul>) {
        if souls.is_empty() {
            return;
        }
        {
            let mut sh = self.lock();
            for s in souls {
                if let MapEntry::Occupied(mut o) = sh.writing.entry(s) {
                    *o.get_mut() -= 1;
                    if *o.get() == 0 {
                        o.remove();
                    }
                }
            }
        }
        self.inner.write_done.notify_waiters();
    }

    /// Waits until no write to `soul` that arrived earlier is still in progress.
    async fn writes_settled(&self, soul: &Soul) {
        loop {
            let done = self.inner.write_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if !self.lock().writing.contains_key(soul.as_str()) {
                return;
            }
            done.await;
        }
    }

    fn notify_ask(&self, id: &str, ev: AskEvent, from: PeerId, msg: &Message) {
        let sh = self.lock();
        if let Some((tx, raw)) = sh.asks.get(id) {
            let ev = if *raw {
                AskEvent::Message(Box::new(Reply {
                    from,
                    message: msg.clone(),
                }))
            } else {
                ev
            };
            let _ = tx.send(ev);
        }
    }

    // ------------------------------------------------------------------ puts

    async fn remote_put(&self, from: PeerId, msg: Message) {
        let Some(graph) = msg.put.clone() else {
            return;
        };
        let id = msg.id.clone().unwrap_or_default();
        let origin = Origin::Peer {
            peer: from,
            id: id.clone(),
        };
        let answer = match self.ingest(graph, origin, Some(&msg)).await.map(|r| r.0) {
            Ok(r) if r.deferred > 0 && r.accepted == 0 && r.rejected == 0 => None,
            Ok(_) => Some(Message::ack_ok(&id)),
            Err(Error::Rejected(text)) => Some(Message::ack_err(&id, &text)),
            Err(e) => Some(Message::ack_err(&id, e.to_string())),
        };
        if let Some(reply) = answer
            && !id.is_empty()
        {
            match &reply.err {
                None => {
                    self.inner.stats.acks_out.fetch_add(1, Ordering::Relaxed);
                }
                Some(err) => self.inner.stats.count_rejected(err),
            }
            let outs = self.lock().mesh.reply(from, reply, now_u64());
            self.execute(outs);
        }
    }

    /// Loads the souls of `souls` that are not cached from the store.
    async fn ensure_loaded<'a>(&self, souls: impl Iterator<Item = &'a Soul>) -> Result<(), Error> {
        let missing: Vec<Soul> = {
            let sh = self.lock();
            souls
                .filter(|s| sh.graph.get(s.as_str()).is_none())
                .cloned()
                .collect()
        };
        for soul in missing {
            let node = self.inner.store.get_node(soul.as_str()).await?;
            let mut sh = self.lock();
            if sh.graph.get(soul.as_str()).is_none() {
                sh.graph
                    .insert_node(node.unwrap_or_else(|| Node::new(soul.clone())));
                sh.cache_order.push_back(soul.clone());
                evict(&mut sh, self.inner.opts.cache_souls);
            }
        }
        Ok(())
    }

    /// Validates, merges through HAM, stores, applies, announces.
    pub(crate) async fn ingest(
        &self,
        graph: Graph,
        origin: Origin,
        message: Option<&Message>,
    ) -> Result<(Ingested, Option<AskGuard>), Error> {
        self.ingest_with(graph, origin, message, false).await
    }

    /// [`Engine::ingest`]; `raw`: a local write's waiter gets whole replies.
    async fn ingest_with(
        &self,
        graph: Graph,
        origin: Origin,
        message: Option<&Message>,
        raw: bool,
    ) -> Result<(Ingested, Option<AskGuard>), Error> {
        if graph.is_empty() {
            return Ok((Ingested::default(), None));
        }
        {
            let validators: Vec<Arc<dyn Validator>> = {
                let v = self
                    .inner
                    .validators
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if v.is_empty() { Vec::new() } else { v.clone() }
            };
            let ctx = PutContext {
                graph: &graph,
                origin: &origin,
                message,
            };
            for v in validators {
                v.check(&ctx).map_err(Error::Rejected)?;
            }
        }
        self.ensure_loaded(graph.souls()).await?;
        let (preview, machine) = {
            let mut sh = self.lock();
            let machine = sh.clock.next(now_ms());
            (sh.graph.preview(&graph, machine), machine)
        };
        let mut result = Ingested {
            accepted: preview.accepted.key_count(),
            deferred: preview.deferred.len(),
            rejected: preview.rejected.len(),
            id: None,
        };
        if !preview.accepted.is_empty() {
            self.inner.store.put(&preview.accepted).await?;
        }
        let mut outs = Vec::new();
        let mut ack_guard = None;
        {
            let mut sh = self.lock();
            let applied = merge_cached(&mut sh.graph, &preview.accepted, machine);
            self.inner
                .stats
                .keys_accepted
                .fetch_add(applied.key_count() as u64, Ordering::Relaxed);
            notify_listeners(&mut sh, &applied, &origin);
            if !applied.is_empty() {
                match &origin {
                    // A purely local engine (no peer, no URL) skips the mesh.
                    Origin::Local if !sh.remote => {}
                    Origin::Local => {
                        let (id, o) = sh.mesh.request(Message::put(applied), now_u64());
                        // Register the ack waiter before anything is sent.
                        let (tx, rx) = mpsc::unbounded_channel();
                        sh.asks.insert(id.clone(), (tx, raw));
                        ack_guard = Some(AskGuard {
                            engine: self.clone(),
                            id: id.clone(),
                            rx,
                        });
                        result.id = Some(id);
                        outs = o;
                    }
                    Origin::Peer { peer, id } => {
                        outs = sh
                            .mesh
                            .publish(&applied, Some((*peer, id.clone())), now_u64());
                    }
                    // Get replies reach the asker through the mesh's routing.
                    Origin::Reply { .. } => {}
                }
            }
            if !preview.deferred.is_empty() {
                let message_id = match &origin {
                    Origin::Peer { id, .. } => Some(id.clone()),
                    _ => None,
                };
                if let Some(mid) = &message_id {
                    *sh.deferred_pending.entry(mid.clone()).or_default() += preview.deferred.len();
                }
                for d in preview.deferred {
                    sh.deferred.push(Reverse(Due {
                        state: d.state,
                        item: d,
                        origin: origin.clone(),
                        message_id: message_id.clone(),
                    }));
                }
                self.inner.deferred_wake.notify_one();
            }
        }
        self.execute(outs);
        Ok((result, ack_guard))
    }

    /// Writes a graph made by this process (the Chain API's puts): resolves once
    /// the write is durable in the local store.
    pub async fn put_local(&self, graph: Graph) -> Result<Ingested, Error> {
        Ok(self.ingest(graph, Origin::Local, None).await?.0)
    }

    /// Like [`Engine::put_local`], then waits until `acks` peers acked the write
    /// (at most `timeout`); returns the peers that acked.
    pub async fn put_local_acked(
        &self,
        graph: Graph,
        acks: usize,
        timeout: Duration,
    ) -> Result<(Ingested, Vec<PeerId>), Error> {
        let (r, guard) = self.ingest(graph, Origin::Local, None).await?;
        match guard {
            Some(g) if acks > 0 => {
                let peers = self.wait_acks(g, acks, timeout).await?;
                Ok((r, peers))
            }
            _ if acks > 0 => Err(Error::AckTimeout {
                got: 0,
                wanted: acks,
            }),
            _ => Ok((r, Vec::new())),
        }
    }

    /// Like [`Engine::put_local`], and keeps the route of the write open: every
    /// message that answers it (acks, and WebRTC offers riding on them, §11.3)
    /// arrives on the returned [`Replies`] until it is dropped. `None` when no
    /// peer is known (the write did not go to the mesh) or nothing changed.
    pub async fn put_local_replies(
        &self,
        graph: Graph,
    ) -> Result<(Ingested, Option<Replies>), Error> {
        let (r, guard) = self.ingest_with(graph, Origin::Local, None, true).await?;
        Ok((r, guard.map(|guard| Replies { guard })))
    }

    /// Sends `msg`, which answers a message we received (`msg.reply_to` = its
    /// `#`, for example [`Change::origin`]'s or a [`Reply`]'s `#`), back the way that
    /// message came, and returns the replies to it. `msg.id` is filled in when
    /// unset. When the route is unknown or expired nothing is sent (debug
    /// event) and no reply will come.
    pub fn answer(&self, msg: Message) -> Replies {
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, outs) = {
            let mut sh = self.lock();
            let (id, outs) = sh.mesh.answer(msg, now_u64());
            sh.asks.insert(id.clone(), (tx, true));
            (id, outs)
        };
        self.execute(outs);
        Replies {
            guard: AskGuard {
                engine: self.clone(),
                id,
                rx,
            },
        }
    }

    /// Registers a waiter for replies and acks to message `id`.
    pub(crate) fn ask(&self, id: &str) -> AskGuard {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().asks.insert(id.to_string(), (tx, false));
        AskGuard {
            engine: self.clone(),
            id: id.to_string(),
            rx,
        }
    }

    // ------------------------------------------------------------------ gets

    async fn remote_get(&self, from: PeerId, msg: Message) {
        let Some(get) = msg.get.as_ref() else {
            return;
        };
        let Some(id) = msg.id.clone() else {
            return;
        };
        let budget = lex::budget(
            get.budget,
            get.key.as_ref().is_some_and(|k| !k.is_exact())
                || matches!(get.soul, SoulQuery::Lex(_)),
        );
        let answer: Result<Graph, Error> = match &get.soul {
            SoulQuery::Exact(soul) => self
                .read_node(soul, get.key.as_ref(), budget)
                .await
                .map(|n| n.into_iter().collect()),
            SoulQuery::Lex(souls) => {
                let all = Lex::default();
                self.inner
                    .store
                    .query(souls, get.key.as_ref().unwrap_or(&all), budget)
                    .await
                    .map_err(Error::from)
            }
        };
        let graph = match answer {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(%e, "get failed");
                Graph::new()
            }
        };
        let replies = self.reply_messages(&id, graph);
        let mut sh = self.lock();
        let mut outs = Vec::new();
        for r in replies {
            outs.extend(sh.mesh.reply(from, r, now_u64()));
        }
        drop(sh);
        self.execute(outs);
    }

    /// Splits an answer into messages of at most `reply_chunk_keys` keys.
    fn reply_messages(&self, id: &str, graph: Graph) -> Vec<Message> {
        if graph.is_empty() {
            return vec![Message::not_found(id)];
        }
        let max = self.inner.opts.reply_chunk_keys.max(1);
        if graph.key_count() <= max {
            return vec![Message::reply(id, graph)];
        }
        let mut out = Vec::new();
        let mut chunk = Graph::new();
        let mut n = 0;
        for (soul, node) in graph {
            let mut part = Node::new(soul.clone());
            for (k, e) in node.iter() {
                let _ = part.insert(k.clone(), e.state, e.value.clone());
                n += 1;
                if n >= max {
                    chunk.insert_node(std::mem::replace(&mut part, Node::new(soul.clone())));
                    out.push(Message::reply(id, std::mem::take(&mut chunk)));
                    n = 0;
                }
            }
            if !part.is_empty() {
                chunk.insert_node(part);
            }
        }
        if !chunk.is_empty() {
            out.push(Message::reply(id, chunk));
        }
        out
    }

    /// Reads a node (or some of its keys) from the cache, loading it from the
    /// store first if needed. `None` when nothing matches.
    pub async fn read_node(
        &self,
        soul: &Soul,
        key: Option<&Lex>,
        budget: Option<u64>,
    ) -> Result<Option<Node>, Error> {
        self.ensure_loaded(std::iter::once(soul)).await?;
        let sh = self.lock();
        let Some(node) = sh.graph.get(soul.as_str()) else {
            return Ok(None);
        };
        let n = match key {
            Some(k) => lex::query_node(node, k, budget),
            None if budget.is_some() => lex::query_node(node, &Lex::default(), budget),
            None => node.clone(),
        };
        Ok(if n.is_empty() { None } else { Some(n) })
    }

    /// Reads a node from here or, when it (or `key`) is not known here, from
    /// peers: waits until a peer answers with data, or every asked peer answered
    /// "not found" and a grace time passed, or the wait time ran out. Always
    /// returns.
    pub async fn fetch(&self, soul: &Soul, key: Option<&str>) -> Result<Option<Node>, Error> {
        let lex = key.map(Lex::exact);
        if let Some(n) = self.read_node(soul, lex.as_ref(), None).await? {
            return Ok(Some(n));
        }
        let (asked, guard) = {
            let mut sh = self.lock();
            if sh.links.is_empty() {
                return Ok(None);
            }
            let msg = Message::get(get_for(soul, key));
            let (id, outs) = sh.mesh.request(msg, now_u64());
            let asked: HashSet<PeerId> = outs
                .iter()
                .filter_map(|o| match o {
                    Output::Send { to, .. } => Some(*to),
                    _ => None,
                })
                .collect();
            drop(sh);
            let guard = self.ask(&id);
            self.execute(outs);
            (asked, guard)
        };
        let mut guard = guard;
        let deadline = tokio::time::Instant::now() + self.inner.opts.wait;
        let mut not_found: HashSet<PeerId> = HashSet::new();
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        loop {
            let until = grace_deadline.map_or(deadline, |g| g.min(deadline));
            match tokio::time::timeout_at(until, guard.rx.recv()).await {
                Ok(Some(AskEvent::Reply { from, found })) => {
                    if found {
                        if let Some(n) = self.read_node(soul, lex.as_ref(), None).await? {
                            return Ok(Some(n));
                        }
                    } else {
                        not_found.insert(from);
                        if asked.iter().all(|p| not_found.contains(p)) && grace_deadline.is_none() {
                            grace_deadline =
                                Some(tokio::time::Instant::now() + self.inner.opts.grace);
                        }
                    }
                }
                Ok(Some(AskEvent::Ack { .. } | AskEvent::Message(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.read_node(soul, lex.as_ref(), None).await
    }

    /// Asks peers for a soul so that they push its future changes here (a
    /// subscription, as Gun.js peers make with a get).
    pub fn subscribe_remote(&self, soul: &Soul, key: Option<&str>) {
        let outs = {
            let mut sh = self.lock();
            // With no peer and no expected URL there is nobody to ask; with an
            // expected URL the mesh remembers the get and sends it on connect.
            if !sh.remote {
                return;
            }
            let msg = Message::get(get_for(soul, key));
            let (id, outs) = sh.mesh.request(msg, now_u64());
            // Replies are merged by `deliver`; nobody waits on them here.
            let _ = id;
            outs
        };
        self.execute(outs);
    }

    /// Waits for `acks` peers to ack the local write `id`, at most `timeout`.
    /// Returns the peers that acked.
    pub(crate) async fn wait_acks(
        &self,
        mut guard: AskGuard,
        acks: usize,
        timeout: Duration,
    ) -> Result<Vec<PeerId>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < acks {
            match tokio::time::timeout_at(deadline, guard.rx.recv()).await {
                Ok(Some(AskEvent::Ack { from, err: None })) => {
                    if !got.contains(&from) {
                        got.push(from);
                    }
                }
                Ok(Some(AskEvent::Ack { err: Some(e), .. })) => return Err(Error::PeerRefused(e)),
                Ok(Some(AskEvent::Reply { .. } | AskEvent::Message(_))) => {}
                Ok(None) | Err(_) => {
                    return Err(Error::AckTimeout {
                        got: got.len(),
                        wanted: acks,
                    });
                }
            }
        }
        Ok(got)
    }

    // --------------------------------------------------------- subscriptions

    /// Listens to changes of `soul`. The listener ends when the receiver is
    /// dropped or [`Engine::unlisten`] is called with the returned id.
    pub fn listen(&self, soul: &Soul) -> (u64, mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut sh = self.lock();
        let id = sh.next_id;
        sh.next_id += 1;
        sh.listeners
            .entry(soul.clone())
            .or_default()
            .push(Listener { id, tx });
        (id, rx)
    }

    /// Stops a listener.
    pub fn unlisten(&self, id: u64) {
        let mut sh = self.lock();
        sh.listeners.retain(|_, v| {
            v.retain(|l| l.id != id);
            !v.is_empty()
        });
    }

    // ---------------------------------------------------------------- timers

    fn spawn_timers(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                if engine.inner.closed.load(Ordering::Relaxed) {
                    return;
                }
                let due = engine.take_due();
                for d in due {
                    engine.apply_due(d).await;
                }
                let next = engine.lock().deferred.peek().map(|r| r.0.state.as_f64());
                let outs = engine.lock().mesh.tick(now_u64());
                engine.execute(outs);
                let wait = match next {
                    Some(s) => Duration::from_millis(((s - now_ms()).max(1.0) as u64).min(1_000)),
                    None => Duration::from_millis(1_000),
                };
                let wake = Arc::clone(&engine.inner);
                drop(engine);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.deferred_wake.notified() => {}
                }
            }
        });
    }

    fn take_due(&self) -> Vec<Due> {
        let now = now_ms();
        let mut sh = self.lock();
        let mut out = Vec::new();
        while sh
            .deferred
            .peek()
            .is_some_and(|r| r.0.state.as_f64() <= now)
        {
            if let Some(Reverse(d)) = sh.deferred.pop() {
                out.push(d);
            }
        }
        out
    }

    async fn apply_due(&self, d: Due) {
        let mut g = Graph::new();
        if g.put(
            d.item.soul.clone(),
            d.item.key.clone(),
            d.item.state,
            d.item.value.clone(),
        )
        .is_err()
        {
            return;
        }
        let origin = d.origin.clone();
        let r = self.ingest(g, origin, None).await.map(|r| r.0);
        if let Err(e) = &r {
            tracing::warn!(%e, "deferred write failed");
        }
        // Ack the original put once all its deferred keys are applied.
        if let (Some(mid), Origin::Peer { peer, .. }) = (&d.message_id, &d.origin) {
            let outs = {
                let mut sh = self.lock();
                let done = match sh.deferred_pending.entry(mid.clone()) {
                    MapEntry::Occupied(mut o) => {
                        *o.get_mut() = o.get().saturating_sub(1);
                        if *o.get() == 0 {
                            o.remove();
                            true
                        } else {
                            false
                        }
                    }
                    MapEntry::Vacant(_) => false,
                };
                if done {
                    let reply = match &r {
                        Ok(_) => Message::ack_ok(mid),
                        Err(e) => Message::ack_err(mid, e.to_string()),
                    };
                    sh.mesh.reply(*peer, reply, now_u64())
                } else {
                    Vec::new()
                }
            };
            self.execute(outs);
        }
    }

    /// Flushes the store and stops timers. Peers stay attached until their
    /// transports close.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.deferred_wake.notify_one();
        self.inner.store.flush().await?;
        Ok(())
    }
}

/// Applies an accepted diff to the cache. Souls no longer cached (evicted while
/// the store wrote) are not re-created partially: the next read loads them from
/// the store, which has the write. Returns what changed.
fn merge_cached(cache: &mut Graph, accepted: &Graph, machine: State) -> Graph {
    if accepted.souls().all(|s| cache.get(s.as_str()).is_some()) {
        return cache.merge(accepted, machine).accepted;
    }
    let mut cached = Graph::new();
    let mut applied = Graph::new();
    for (soul, node) in accepted.iter() {
        if cache.get(soul.as_str()).is_some() {
            cached.insert_node(node.clone());
        } else {
            applied.insert_node(node.clone());
        }
    }
    for (_, n) in cache.merge(&cached, machine).accepted {
        applied.insert_node(n);
    }
    applied
}

/// Keeps the cache within `max` souls, dropping the oldest first; souls with
/// local listeners stay.
fn evict(sh: &mut Shared, max: usize) {
    let mut guard = sh.cache_order.len();
    while sh.graph.len() > max && guard > 0 {
        guard -= 1;
        let Some(soul) = sh.cache_order.pop_front() else {
            break;
        };
        if sh.listeners.contains_key(soul.as_str()) {
            sh.cache_order.push_back(soul);
            continue;
        }
        sh.graph.remove(soul.as_str());
    }
    // Souls removed by merges (empty nodes) leave stale entries behind; keep the
    // queue from growing past the cache by much.
    if sh.cache_order.len() > max.saturating_mul(2).max(1024) {
        let graph = &sh.graph;
        sh.cache_order.retain(|s| graph.get(s.as_str()).is_some());
    }
}

fn get_for(soul: &Soul, key: Option<&str>) -> Get {
    match key {
        Some(k) => Get::key(soul.clone(), k),
        None => Get::node(soul.clone()),
    }
}

fn notify_listeners(sh: &mut Shared, applied: &Graph, origin: &Origin) {
    for (soul, diff) in applied.iter() {
        let Some(ls) = sh.listeners.get_mut(soul.as_str()) else {
            continue;
        };
        let Some(node) = sh.graph.get(soul.as_str()) else {
            continue;
        };
        let change = Change {
            node: node.clone(),
            keys: diff.iter().map(|(k, _)| k.clone()).collect(),
            origin: origin.clone(),
        };
        ls.retain(|l| l.tx.send(change.clone()).is_ok());
    }
    sh.listeners.retain(|_, v| !v.is_empty());
}

/// Removes the waiter when dropped.
pub(crate) struct AskGuard {
    engine: Engine,
    id: String,
    rx: mpsc::UnboundedReceiver<AskEvent>,
}

impl Drop for AskGuard {
    fn drop(&mut self) {
        self.engine.lock().asks.remove(&self.id);
    }
}

impl Hub for Engine {
    fn attach(&self, link: Arc<dyn Link>, dir: Direction) -> PeerId {
        let outs;
        let peer;
        {
            let mut sh = self.lock();
            peer = PeerId(sh.next_id);
            sh.next_id += 1;
            sh.links.insert(peer, link);
            sh.remote = true;
            let direct = matches!(dir, Direction::Direct { .. });
            let now = now_u64();
            let mut o = sh.mesh.connect(peer, dir, now);
            if direct {
                // A direct link (WebRTC) has no URL whose gets the mesh would
                // re-send: ask it for every soul listened to here, so that it
                // pushes their changes (Gun.js re-sends its live gets on `hi`).
                let souls: Vec<Soul> = sh.listeners.keys().cloned().collect();
                for soul in souls {
                    let (_, more) = sh.mesh.request_to(peer, Message::get(Get::node(soul)), now);
                    o.extend(more);
                }
            }
            outs = o;
        }
        self.execute(outs);
        peer
    }

    fn receive(&self, peer: PeerId, frame: &str) {
        let outs = self.lock().mesh.receive(peer, frame, now_u64());
        self.execute(outs);
    }

    fn detach(&self, peer: PeerId) {
        let mut sh = self.lock();
        sh.links.remove(&peer);
        sh.mesh.disconnect(peer);
    }

    fn dialing(&self, url: &str) {
        self.expect_peer(url);
    }
}
