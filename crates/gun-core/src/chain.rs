//! The Chain API: `get`, `put`, `on`, `once`, `map`, `set`, `back`, `off`, in the
//! spirit of Gun.js.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use gun_graph::{Graph, Lex, Soul, Value, ids};

use crate::convert::{build, leaf, node_json};
use crate::{Engine, Error, PutAck, PutOptions};

/// The root of a Gun database: where chains start.
///
/// ```
/// # async fn demo(gun: gun_core::Gun) -> Result<(), gun_core::Error> {
/// use serde_json::json;
/// gun.get("mark").put(json!({"name": "Mark", "email": "mark@gun.eco"})).await?;
/// let name = gun.get("mark").get("name").then().await?;
/// assert_eq!(name, Some(json!("Mark")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gun {
    engine: Engine,
    subs: Arc<Mutex<HashMap<String, Vec<AbortHandle>>>>,
    life: Arc<Life>,
}

/// How long `shutdown` waits for peers to ack this process's writes by
/// default: [`Gun::shutdown`].
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// What [`Gun::shutdown`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shutdown {
    /// Local writes no peer acked before the wait ran out (0: every write
    /// reached a peer).
    pub undelivered: usize,
    /// Whether those are kept in the store's durable outbox and sent when a
    /// program starts again on the same store (`false`: they are lost with
    /// this process, as with the memory store).
    pub kept: bool,
}

/// Warns when the last handle goes without `shutdown` while writes are
/// undelivered.
struct Life {
    engine: Engine,
    shut: AtomicBool,
}

impl Drop for Life {
    fn drop(&mut self) {
        if self.shut.load(Ordering::Relaxed) {
            return;
        }
        let n = self.engine.undelivered();
        if n > 0 {
            tracing::warn!(
                undelivered = n,
                kept = self.engine.outbox_is_durable(),
                "the last Gun handle was dropped without shutdown() while local writes were not acked by any peer; \
                 call shutdown() to wait for them (kept = true: the store's outbox sends them at the next start)"
            );
        }
    }
}

impl Gun {
    /// A root over an engine.
    pub fn from_engine(engine: Engine) -> Gun {
        Gun {
            life: Arc::new(Life {
                engine: engine.clone(),
                shut: AtomicBool::new(false),
            }),
            engine,
            subs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The engine (for transports: it is the [`gun_dam::Hub`]).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A chain for the node with soul `key`.
    pub fn get(&self, key: impl Into<String>) -> Chain {
        self.root().get(key)
    }

    /// The root chain (`back(-1)`).
    pub fn root(&self) -> Chain {
        Chain {
            gun: self.clone(),
            at: Arc::new(At::Root),
        }
    }

    /// Waits (at most [`SHUTDOWN_WAIT`]) until every write of this process
    /// was acked by a peer, then stops subscriptions and flushes the store:
    /// call it before the program exits. See [`Gun::shutdown_within`].
    pub async fn shutdown(&self) -> Result<Shutdown, Error> {
        self.shutdown_within(SHUTDOWN_WAIT).await
    }

    /// Like [`Gun::shutdown`], waiting at most `wait` for peers' acks
    /// (`Duration::ZERO`: not at all). What was not acked is reported (and
    /// logged at warn): kept in the store's durable outbox, or lost with the
    /// memory store.
    pub async fn shutdown_within(&self, wait: Duration) -> Result<Shutdown, Error> {
        let undelivered = self.engine.deliver_outbox(wait).await;
        let report = Shutdown {
            undelivered,
            kept: self.engine.outbox_is_durable(),
        };
        if undelivered > 0 {
            if report.kept {
                tracing::warn!(
                    undelivered,
                    "local writes not acked by any peer: kept in the store's outbox, sent at the next start"
                );
            } else {
                tracing::warn!(
                    undelivered,
                    "local writes not acked by any peer are lost: the store keeps no outbox"
                );
            }
        }
        self.life.shut.store(true, Ordering::Relaxed);
        self.close().await?;
        Ok(report)
    }

    /// Stops subscriptions and flushes the store, without waiting for peers.
    async fn close(&self) -> Result<(), Error> {
        for (_, v) in self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
        {
            for h in v {
                h.abort();
            }
        }
        self.engine.shutdown().await
    }
}

enum At {
    Root,
    Get { parent: Chain, key: String },
    Map { parent: Chain, filter: Option<Lex> },
}

/// A place in the graph: a node, or a key of a node, or each child of a node
/// (`map`). Chains are cheap to clone and do nothing until used.
#[derive(Clone)]
pub struct Chain {
    gun: Gun,
    at: Arc<At>,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chain({})", self.path())
    }
}

/// What a chain points at now.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// A node.
    Node(Soul),
    /// A key holding a plain value (or nothing yet).
    Leaf {
        soul: Soul,
        key: String,
        value: Option<Value>,
    },
    /// Nothing (the root, or below a plain value).
    Nothing,
}

impl Chain {
    fn child(&self, at: At) -> Chain {
        Chain {
            gun: self.gun.clone(),
            at: Arc::new(at),
        }
    }

    fn engine(&self) -> &Engine {
        &self.gun.engine
    }

    /// A text naming this chain (`a.b.map()`).
    pub fn path(&self) -> String {
        match &*self.at {
            At::Root => String::new(),
            At::Get { parent, key } => {
                let p = parent.path();
                if p.is_empty() {
                    key.clone()
                } else {
                    format!("{p}.{key}")
                }
            }
            At::Map { parent, .. } => format!("{}.map()", parent.path()),
        }
    }

    /// The chain for `key` below this one.
    pub fn get(&self, key: impl Into<String>) -> Chain {
        self.child(At::Get {
            parent: self.clone(),
            key: key.into(),
        })
    }

    /// Each child of this node (following links). Chain `on`, `once` or `then`
    /// after it to read the children.
    pub fn map(&self) -> Chain {
        self.child(At::Map {
            parent: self.clone(),
            filter: None,
        })
    }

    /// Each child whose key matches the lexical query (`*` prefix, `>`/`<` range).
    pub fn map_filter(&self, filter: Lex) -> Chain {
        self.child(At::Map {
            parent: self.clone(),
            filter: Some(filter),
        })
    }

    /// The chain `n` levels up; a negative `n` gives the root.
    pub fn back(&self, n: i32) -> Chain {
        if n == 0 {
            return self.clone();
        }
        match &*self.at {
            At::Root => self.clone(),
            At::Get { parent, .. } | At::Map { parent, .. } => {
                if n < 0 {
                    parent.back(-1)
                } else {
                    parent.back(n - 1)
                }
            }
        }
    }

    /// The soul of the node this chain points at, if it points at one now.
    pub async fn soul(&self) -> Result<Option<Soul>, Error> {
        Ok(match self.resolve().await? {
            Target::Node(s) => Some(s),
            _ => None,
        })
    }

    fn resolve(&self) -> Pin<Box<dyn Future<Output = Result<Target, Error>> + Send + '_>> {
        Box::pin(async move {
            match &*self.at {
                At::Root | At::Map { .. } => Ok(Target::Nothing),
                At::Get { parent, key } => {
                    if key.is_empty() {
                        return Err(Error::EmptyKey);
                    }
                    if matches!(&*parent.at, At::Root) {
                        return Ok(Target::Node(Soul::new(key.as_str())?));
                    }
                    match parent.resolve().await? {
                        Target::Node(ps) => {
                            let node = self.engine().fetch(&ps, Some(key)).await?;
                            let value = node.and_then(|n| n.value(key).cloned());
                            Ok(match value {
                                Some(Value::Link(s)) => Target::Node(s),
                                value => Target::Leaf {
                                    soul: ps,
                                    key: key.clone(),
                                    value,
                                },
                            })
                        }
                        _ => Ok(Target::Nothing),
                    }
                }
            }
        })
    }

    /// The soul to write into for this chain, linking missing nodes on the way
    /// (`a/b` below `a`), as Gun.js does for nested paths.
    fn soul_for_write<'a>(
        &'a self,
        graph: &'a mut Graph,
        state: gun_graph::State,
    ) -> Pin<Box<dyn Future<Output = Result<Soul, Error>> + Send + 'a>> {
        Box::pin(async move {
            match &*self.at {
                At::Root => Err(Error::InvalidData(
                    "the root is not a node; use get(soul)".into(),
                )),
                At::Map { .. } => Err(Error::InvalidData("cannot write through map()".into())),
                At::Get { parent, key } => {
                    if key.is_empty() {
                        return Err(Error::EmptyKey);
                    }
                    if matches!(&*parent.at, At::Root) {
                        return Ok(Soul::new(key.as_str())?);
                    }
                    let ps = parent.soul_for_write(graph, state).await?;
                    let linked = self
                        .engine()
                        .fetch(&ps, Some(key))
                        .await?
                        .and_then(|n| n.value(key).and_then(Value::as_link).cloned());
                    let soul = match linked {
                        Some(s) => s,
                        None => {
                            let s = Soul::new(format!("{ps}/{key}"))?;
                            graph.put(ps, key.as_str(), state, Value::Link(s.clone()))?;
                            s
                        }
                    };
                    Ok(soul)
                }
            }
        })
    }

    async fn put_graph(&self, data: &Json) -> Result<Graph, Error> {
        let state = self.engine().next_state();
        let mut graph = Graph::new();
        match &*self.at {
            At::Get { parent, key } if !matches!(&*parent.at, At::Root) => {
                let here = self.path();
                match leaf(data, &here)? {
                    Some(value) => {
                        let ps = parent.soul_for_write(&mut graph, state).await?;
                        graph.put(ps, key.as_str(), state, value)?;
                    }
                    None => {
                        let Json::Object(m) = data else {
                            return Err(Error::InvalidData(format!("at {here}")));
                        };
                        let soul = self.soul_for_write(&mut graph, state).await?;
                        build(self.engine(), &mut graph, soul, m, state, &here).await?;
                    }
                }
            }
            _ => {
                let Json::Object(m) = data else {
                    return Err(Error::InvalidData(format!(
                        "a node needs an object, not {data} at {}",
                        self.path()
                    )));
                };
                let soul = match &*self.at {
                    // `gun.put({...})` at the root: a new node with a random soul.
                    At::Root => Soul::new(ids::uuid(&mut rand::rng(), state.as_f64(), 12))?,
                    _ => self.soul_for_write(&mut graph, state).await?,
                };
                build(self.engine(), &mut graph, soul, m, state, &self.path()).await?;
            }
        }
        Ok(graph)
    }

    /// Writes `data` here: an object becomes (or updates) a node, nested objects
    /// linked child nodes; a plain value sets this key.
    ///
    /// **What its resolution means:** the write is applied locally (reads and
    /// `on` here see it) and durable in the local store when the store is
    /// durable (sled, file; the memory store keeps nothing after exit). It does
    /// **not** mean a peer has it: the write goes to the peers in the
    /// background, waits in the outbox while none is reachable, and is sent
    /// again on every reconnect until a peer acks it (with a durable store, also
    /// after a restart). To wait for peers, use [`Chain::put_with`] with
    /// `PutOptions { acks: 1, .. }`, or call `shutdown()` before the program
    /// exits, which waits for every outstanding write.
    pub async fn put(&self, data: Json) -> Result<PutAck, Error> {
        self.put_with(data, PutOptions::default()).await
    }

    /// [`Chain::put`], then waits for `opts.acks` peers to ack.
    pub async fn put_with(&self, data: Json, opts: PutOptions) -> Result<PutAck, Error> {
        let graph = self.put_graph(&data).await?;
        self.engine().put_local(graph, &opts).await
    }

    /// Adds `item` to the set at this node: an object becomes a new node with a
    /// random soul (or the soul in its `_`), linked under a key equal to that
    /// soul; a link `{"#": soul}` is added as is. Returns the chain of the item.
    pub async fn set(&self, item: Json) -> Result<Chain, Error> {
        let state = self.engine().next_state();
        let mut graph = Graph::new();
        let list = self.soul_for_write(&mut graph, state).await?;
        let item_soul = match &item {
            Json::Object(m) => match crate::convert::link_of(m) {
                Some(s) => s,
                None => {
                    let soul = match m.get("_").and_then(|u| u.get("#")).and_then(Json::as_str) {
                        Some(s) => Soul::new(s)?,
                        None => Soul::new(ids::uuid(&mut rand::rng(), state.as_f64(), 12))?,
                    };
                    build(
                        self.engine(),
                        &mut graph,
                        soul.clone(),
                        m,
                        state,
                        &self.path(),
                    )
                    .await?;
                    soul
                }
            },
            other => {
                // A plain value goes under a random key.
                let key = ids::uuid(&mut rand::rng(), state.as_f64(), 7);
                let value = leaf(other, &self.path())?
                    .ok_or_else(|| Error::InvalidData(format!("at {}", self.path())))?;
                graph.put(list, key.as_str(), state, value)?;
                self.engine()
                    .put_local(graph, &PutOptions::default())
                    .await?;
                return Ok(self.get(key));
            }
        };
        graph.put(
            list,
            item_soul.as_str(),
            state,
            Value::Link(item_soul.clone()),
        )?;
        self.engine()
            .put_local(graph, &PutOptions::default())
            .await?;
        Ok(self.gun.get(item_soul.as_str()))
    }

    /// The data here now, asking peers if it is not known locally; `None` when
    /// nobody has it. Always resolves (after at most the engine's wait time).
    ///
    /// A node gives an object of its keys (links as `{"#": soul}`), a key gives
    /// its value (a linked node's object when it is a link), and `map()` gives an
    /// object of each child's data.
    pub async fn then(&self) -> Result<Option<Json>, Error> {
        match &*self.at {
            At::Map { parent, filter } => {
                let kids = parent.children(filter.as_ref()).await?;
                if kids.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Json::Object(kids.into_iter().collect())))
            }
            _ => self.data().await,
        }
    }

    async fn data(&self) -> Result<Option<Json>, Error> {
        Ok(match self.resolve().await? {
            Target::Node(s) => self.engine().fetch(&s, None).await?.map(|n| node_json(&n)),
            Target::Leaf { value, .. } => value.map(|v| v.to_json()),
            Target::Nothing => None,
        })
    }

    fn key(&self) -> String {
        match &*self.at {
            At::Get { key, .. } => key.clone(),
            _ => String::new(),
        }
    }

    /// Children of this node: key → data (links followed one level).
    async fn children(&self, filter: Option<&Lex>) -> Result<Vec<(String, Json)>, Error> {
        let Target::Node(soul) = self.resolve().await? else {
            return Ok(Vec::new());
        };
        let Some(node) = self.engine().fetch(&soul, None).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (k, e) in node.iter() {
            if filter.is_some_and(|f| !f.matches(k)) {
                continue;
            }
            let data = match &e.value {
                Value::Link(s) => match self.engine().fetch(s, None).await? {
                    Some(n) => node_json(&n),
                    None => continue,
                },
                v => v.to_json(),
            };
            out.push((k.to_string(), data));
        }
        Ok(out)
    }

    /// Calls `cb(data, key)` once with the data here (see [`Chain::then`]); for
    /// `map()`, once per child. Not called when there is no data.
    pub async fn once<F>(&self, mut cb: F) -> Result<(), Error>
    where
        F: FnMut(Json, &str),
    {
        match &*self.at {
            At::Map { parent, filter } => {
                for (k, d) in parent.children(filter.as_ref()).await? {
                    cb(d, &k);
                }
            }
            _ => {
                if let Some(d) = self.data().await? {
                    cb(d, &self.key());
                }
            }
        }
        Ok(())
    }

    /// Calls `cb(data, key)` now with the current data (if any) and again once per
    /// change: one accepted change fires once, however many peers deliver it. For
    /// `map()`, per changed child. Stops when the returned [`Subscription`] is
    /// dropped or `off()` is called on a chain with this path.
    pub fn on<F>(&self, cb: F) -> Subscription
    where
        F: FnMut(Json, &str) + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Json, String)>();
        let mut cb = cb;
        let pump = tokio::spawn(async move {
            while let Some((d, k)) = rx.recv().await {
                cb(d, &k);
            }
        });
        let mut sub = self.watch(tx);
        sub.extra.push(pump.abort_handle());
        sub
    }

    /// The data here and every change after, as a stream of `(data, key)`.
    pub fn on_stream(&self) -> OnStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let sub = self.watch(tx);
        OnStream { rx, _sub: sub }
    }

    /// Stops every `on` made through a chain with this path.
    pub fn off(&self) {
        let path = self.path();
        let handles = self
            .gun
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&path);
        for h in handles.into_iter().flatten() {
            h.abort();
        }
    }

    fn watch(&self, tx: mpsc::UnboundedSender<(Json, String)>) -> Subscription {
        let chain = self.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = chain.watch_loop(tx).await {
                tracing::debug!(%e, chain = %chain.path(), "subscription ended");
            }
        });
        let handle = task.abort_handle();
        self.gun
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(self.path())
            .or_default()
            .push(handle.clone());
        Subscription {
            handle,
            extra: Vec::new(),
        }
    }

    /// Follows the souls this chain depends on and sends data whenever it
    /// differs from what was sent last.
    async fn watch_loop(&self, tx: mpsc::UnboundedSender<(Json, String)>) -> Result<(), Error> {
        let mut watch = SoulWatch::new(self.engine());
        let mut last: HashMap<String, Json> = HashMap::new();
        let is_map = matches!(&*self.at, At::Map { .. });
        loop {
            // What this chain depends on now.
            let mut souls: Vec<Soul> = self.dependencies().await?;
            souls.dedup();
            watch.set(&souls);
            // Fire what changed.
            let current: Vec<(String, Json)> = if is_map {
                match &*self.at {
                    At::Map { parent, filter } => parent.children(filter.as_ref()).await?,
                    _ => Vec::new(),
                }
            } else {
                match self.data().await? {
                    Some(d) => vec![(self.key(), d)],
                    None => Vec::new(),
                }
            };
            for (k, d) in current {
                if last.get(&k) != Some(&d) {
                    last.insert(k.clone(), d.clone());
                    if tx.send((d, k)).is_err() {
                        return Ok(());
                    }
                }
            }
            if !watch.changed().await {
                return Ok(());
            }
        }
    }

    /// The souls whose changes can change this chain's data.
    fn dependencies(&self) -> Pin<Box<dyn Future<Output = Result<Vec<Soul>, Error>> + Send + '_>> {
        Box::pin(async move {
            let mut out = Vec::new();
            match &*self.at {
                At::Root => {}
                At::Get { parent, .. } => {
                    out.extend(parent.dependencies().await?);
                    if let Target::Node(s) = self.resolve().await? {
                        out.push(s);
                    }
                }
                At::Map { parent, .. } => {
                    out.extend(parent.dependencies().await?);
                    if let Target::Node(s) = parent.resolve().await?
                        && let Some(n) = self.engine().read_node(&s, None, None).await?
                    {
                        for (_, e) in n.iter() {
                            if let Value::Link(l) = &e.value {
                                out.push(l.clone());
                            }
                        }
                    }
                }
            }
            Ok(out)
        })
    }
}

/// Follows a set of souls that may change over time (what a chain reads
/// through): listens to each locally, asks peers to push their changes, and
/// wakes on any change. Listeners stop when it is dropped.
pub struct SoulWatch {
    engine: Engine,
    wake_tx: mpsc::UnboundedSender<()>,
    wake_rx: mpsc::UnboundedReceiver<()>,
    watching: HashMap<Soul, (u64, AbortHandle)>,
}

impl SoulWatch {
    /// Watches nothing yet.
    pub fn new(engine: &Engine) -> SoulWatch {
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        SoulWatch {
            engine: engine.clone(),
            wake_tx,
            wake_rx,
            watching: HashMap::new(),
        }
    }

    /// Watches exactly `souls` from now on: new ones are listened to (and
    /// subscribed at peers), the others dropped.
    pub fn set(&mut self, souls: &[Soul]) {
        for s in souls {
            if !self.watching.contains_key(s) {
                let (id, mut rx) = self.engine.listen(s);
                let w = self.wake_tx.clone();
                let fwd = tokio::spawn(async move {
                    while rx.recv().await.is_some() {
                        if w.send(()).is_err() {
                            break;
                        }
                    }
                });
                self.watching.insert(s.clone(), (id, fwd.abort_handle()));
                self.engine.subscribe_remote(s, None);
            }
        }
        let engine = &self.engine;
        self.watching.retain(|s, (id, h)| {
            let keep = souls.contains(s);
            if !keep {
                engine.unlisten(*id);
                h.abort();
            }
            keep
        });
    }

    /// Waits until one of the souls changed; a burst of changes counts once.
    /// `false` if no change can come any more.
    pub async fn changed(&mut self) -> bool {
        if self.wake_rx.recv().await.is_none() {
            return false;
        }
        while self.wake_rx.try_recv().is_ok() {}
        true
    }
}

impl Drop for SoulWatch {
    fn drop(&mut self) {
        for (_, (id, h)) in self.watching.drain() {
            self.engine.unlisten(id);
            h.abort();
        }
    }
}

impl fmt::Debug for SoulWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoulWatch")
            .field("souls", &self.watching.len())
            .finish()
    }
}

/// A live `on`: dropping it (or calling [`Subscription::off`]) stops it.
pub struct Subscription {
    handle: AbortHandle,
    extra: Vec<AbortHandle>,
}

impl Subscription {
    /// A subscription that stops the task behind `handle` (for `on`s built
    /// outside this crate, such as SEA user chains).
    pub fn from_task(handle: AbortHandle) -> Subscription {
        Subscription {
            handle,
            extra: Vec::new(),
        }
    }

    /// Stops the subscription.
    pub fn off(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.handle.abort();
        for h in &self.extra {
            h.abort();
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscription")
    }
}

/// The stream of [`Chain::on_stream`]: `(data, key)` now and on every change.
pub struct OnStream {
    rx: mpsc::UnboundedReceiver<(Json, String)>,
    _sub: Subscription,
}

impl OnStream {
    /// The next item (the same as polling the stream).
    pub async fn next(&mut self) -> Option<(Json, String)> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for OnStream {
    type Item = (Json, String);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
