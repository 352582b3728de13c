//! The mesh: handshake, dedup, reply routing, get forwarding, write fan-out and
//! reconnect bookkeeping, as a sans-IO state machine ([`Mesh`]).
//!
//! Feed it events — [`Mesh::connect`], [`Mesh::receive`], [`Mesh::disconnect`],
//! [`Mesh::tick`] — and the engine's own traffic — [`Mesh::request`],
//! [`Mesh::reply`], [`Mesh::publish`] — each with the current time in
//! milliseconds, and execute the [`Output`]s it returns, in order.
//!
//! # Routing rules
//!
//! **Handshake (§3).** On an incoming connection we send
//! `{"#":id,"dam":"?","pid":own}` first (plus `"gunrs":1` when
//! [`MeshConfig::full_peer_marker`] is set). A [`Role::Client`] greets an
//! outgoing connection with `{"#":id,"dam":"hi"}`; relays never do. A received
//! `dam:"?"` records the peer's `pid` (first one wins) and is answered with our
//! own `?` unless it carried both `pid` and `@`. A peer announcing our own pid is
//! a connection to ourselves and is closed. `hi` is ignored, `!` and `mob` are
//! logged, and **`opt` is never obeyed** (Gun.js AXE lets any peer make a relay
//! dial any URL; we log it at warn). `dam` messages never reach the engine.
//!
//! **Receiving.** Each message gets a `#` if it has none, and is dropped if that
//! `#` was seen within the dedup window (every sighting refreshes it), or if it is
//! a reply whose `@`+`##` pair was seen (two peers answering with the same data).
//! A message that is not a duplicate (and not `dam`) is then checked as
//! [`MeshConfig::auth_policy`] says and asked of every
//! [`MeshConfig::predicates`]; a refused one is dropped (a bad signature with a
//! warn event) before it is delivered, forwarded or marked seen.
//!
//! **Signing.** With a [`MeshConfig::signer`], every message that originates
//! here (requests, replies, acks, pushes, translated push acks, re-sent gets,
//! local writes and partial writes) carries a signature in `"gunrs:sig"`;
//! messages relayed unchanged keep the signature they came with (see
//! [`auth`]).
//!
//! **Messages with `@`** (replies and acks) are never broadcast:
//! * answering one of our own requests ([`Mesh::request`], [`Mesh::publish`]
//!   with no origin, re-subscriptions after a reconnect): delivered to the engine;
//! * answering a request that came from peer P and that we forwarded (a get, or
//!   a write forwarded to full peers): sent to P unchanged (same `#`, every field
//!   kept), and also delivered to the engine if it carries a `put` — a relay
//!   stores get replies it routes. The replier is then subscribed to what was
//!   asked, as AXE does (it holds that data, so it wants its updates);
//! * acking one of our pushes: translated back, as AXE does, into
//!   `{"#":same,"@":original put id,"ok":…,"err":…}` and sent to the writer (or
//!   delivered to the engine when the write was local). An ack from the writer
//!   for the echo of its own write is not sent back to it;
//! * anything else (unknown or expired `@`): dropped with a debug event.
//!
//! A reply's own `#` is a route too: a message answering it goes back to the
//! peer the reply came from. WebRTC signalling (§11.3) lives on this: an offer
//! answers the announcing write, the answer and candidates answer the offer,
//! and relays carry each `ok` unchanged. [`Mesh::answer`] sends such answers.
//!
//! **Messages without `@`** are delivered to the engine when they carry a `get`
//! or a `put` (others are dropped). A `get` from P also
//! * subscribes P to that soul (or to that one key, for a single-key get; lexical
//!   key queries subscribe the whole soul; soul queries subscribe every matching
//!   soul), and
//! * is forwarded at once, with the same `#`, to every other peer except those
//!   listed in its `><`, with `><` set to our own peer ids (pids of incoming
//!   peers, urls of outgoing ones, at most 7). The `#` → P route lives as long
//!   as the dedup entry, refreshed by every reply routed through it.
//!
//! Writes are **not** forwarded when received: the engine validates and merges
//! them, then calls [`Mesh::publish`] with what HAM accepted.
//!
//! **Publishing an accepted write** (`diff`, from origin peer O with put id X,
//! or local with a fresh id X):
//! * (a) **full peers** get the diff as a put with `#` = X and `><` = our peer
//!   ids, except O and the peers listed in the original's `><`. Full peers are
//!   our outgoing connections (we dialed a relay; Gun.js relays store every put
//!   they receive and ack it once written, and their ack routes back to O through
//!   us) and incoming peers that greeted with the `gunrs` marker (gun-rs relays,
//!   which sync DAM-style). Keeping X lets every peer's dedup drop the echoes.
//! * (b) every **other peer subscribed** to a soul (or key) in the diff gets
//!   just the subscribed part as a push: a new message with a fresh `#`,
//!   `ok:{"@":2,"/":n}` (n = our peer count) and no `@`, exactly what Gun.js
//!   relays (AXE) send. O gets the push too when subscribed (Gun.js echoes),
//!   unless O is a full peer: full peers left out of (a) are O or listed in
//!   `><`, so they have the write, and a push under a fresh `#` would slip past
//!   their dedup and send the write back over the link it came from.
//!   Acks for a push are translated back to X (above).
//!
//! Why both kinds of Gun.js peers get what they need: a Gun.js browser receives
//! only what is pushed to it and sends a get for everything it reads or
//! listens to, so (b) reaches it with every update it asked for, and it is
//! never flooded with writes it did not ask for. A Gun.js relay (AXE) forwards
//! writes only to peers that subscribed, so a relay that never subscribed would
//! never learn our writes (§14.3); (a) sends them all, and its acks flow back to
//! the writer.
//!
//! **Reconnects.** For each outgoing URL the mesh remembers the gets sent on it
//! (our own and forwarded ones: the live subscriptions, deduplicated by soul and
//! key) and the puts it has not acked yet — including writes published while
//! the URL was disconnected. When [`Mesh::connect`] is called again for that URL
//! it re-sends the gets (with fresh ids; their replies are delivered to the
//! engine) and the un-acked puts (with their original ids), within
//! [`MeshConfig::max_resend_gets`], [`MeshConfig::max_pending_puts`],
//! [`MeshConfig::max_pending_bytes`] and [`MeshConfig::pending_put_max_age_ms`];
//! what is dropped is logged at warn. Gun.js clients do neither (§7.4, §14).
//!
//! **Bounds.** Routes live in the [`Dedup`] table (ttl and entry bound);
//! subscriptions per peer are bounded (oldest soul evicted first); pending gets
//! and puts per URL are bounded by count, bytes and age.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use gun_graph::{Graph, Lex, json};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::Error;
use crate::auth::{
    self, AuthPolicy, Hook, MessagePredicate, MessageSigner, MessageVerifier, Verdict,
};
use crate::dedup::{DEDUP_MAX_ENTRIES, DEDUP_TTL_MS, Dedup};
use crate::frame::{Limits, parse_frame_with};
use crate::message::{Get, Message, SoulQuery};
use crate::peer::{Direction, PeerId};

/// Default keep-alive period of relays: a `[]` frame to every peer every 20 s.
pub const KEEPALIVE_MS: u64 = 20_000;
/// Default bound on subscriptions (souls + single keys) remembered per peer.
pub const MAX_SUBSCRIPTIONS_PER_PEER: usize = 10_000;
/// Bound on soul-query (lexical `#`) subscriptions per peer.
pub const MAX_SOUL_QUERY_SUBSCRIPTIONS: usize = 64;
/// Default bound on gets remembered per outgoing URL for re-sending.
pub const MAX_RESEND_GETS: usize = 10_000;
/// Default bound on un-acked puts kept per outgoing URL.
pub const MAX_PENDING_PUTS: usize = 10_000;
/// Default bound on the bytes of un-acked puts kept per outgoing URL: 32 MiB.
pub const MAX_PENDING_BYTES: usize = 32 * 1024 * 1024;
/// Default age after which an un-acked put is no longer re-sent: 1 hour.
pub const PENDING_PUT_MAX_AGE_MS: u64 = 60 * 60 * 1000;
/// The extension field of our `dam:"?"` greeting marking a gun-rs full peer.
/// Gun.js ignores unknown fields.
pub const FULL_PEER_MARKER: &str = "gunrs";
/// How many of our peer ids go into `><` (as Gun.js).
pub const SEEN_MAX: usize = 7;

/// What kind of peer this mesh is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A relay/server: sends `[]` keep-alives, never says `hi`.
    Relay,
    /// A client: greets outgoing connections with `dam:"hi"`, no keep-alives.
    Client,
}

/// An action for the engine to execute.
// `Deliver` is large (a whole Message); outputs live briefly in a Vec and are
// moved out once, so boxing would only add an allocation per delivered message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this text frame on the connection `to`.
    Send {
        /// The connection.
        to: PeerId,
        /// The frame (shared between the peers that get the same text).
        frame: Arc<str>,
    },
    /// A message for the engine: a get or a write from `from`, a reply to one of
    /// the engine's requests, or a get reply this mesh routed (to be stored).
    /// Replies to gets the mesh re-sent after a reconnect carry `@` ids the
    /// engine never issued: merge their `put` like any reply.
    Deliver {
        /// The connection it came from.
        from: PeerId,
        /// The message, with its `#` set.
        msg: Message,
    },
    /// A message whose `put` failed validation; the engine may answer
    /// `{"@":id,"err":…}` (Gun.js answers nothing).
    InvalidPut {
        /// The connection it came from.
        from: PeerId,
        /// The message's `#`, if it had one.
        id: Option<String>,
        /// Why the graph was refused.
        error: gun_graph::Error,
    },
    /// Close the connection (for example a connection to ourselves).
    Close {
        /// The connection.
        peer: PeerId,
        /// Why, for logs.
        reason: String,
    },
}

/// Configuration of a [`Mesh`]. [`MeshConfig::default`] is a relay.
///
/// Equality compares the hooks ([`MeshConfig::signer`], [`MeshConfig::verifier`],
/// [`MeshConfig::predicates`]) by identity (the same `Arc`), the rest by value.
#[derive(Clone)]
pub struct MeshConfig {
    /// Our peer id; 9 random characters when `None` (as Gun.js).
    pub pid: Option<String>,
    /// Bounds on received frames.
    pub limits: Limits,
    /// How long message ids (and so reply routes) are remembered after their
    /// last sighting. Default [`DEDUP_TTL_MS`].
    pub dedup_ttl_ms: u64,
    /// Bound on remembered message ids. Default [`DEDUP_MAX_ENTRIES`].
    pub dedup_max_entries: usize,
    /// Keep-alive period for relays (0 disables). Default [`KEEPALIVE_MS`].
    pub keepalive_ms: u64,
    /// Relay or client.
    pub role: Role,
    /// Whether our `dam:"?"` carries the [`FULL_PEER_MARKER`], asking gun-rs
    /// peers to forward every write to us (DAM-style). Relays want this;
    /// clients, who want only what they subscribe to, do not.
    pub full_peer_marker: bool,
    /// Bound on subscriptions per peer. Default [`MAX_SUBSCRIPTIONS_PER_PEER`].
    pub max_subscriptions_per_peer: usize,
    /// Bound on gets remembered per outgoing URL. Default [`MAX_RESEND_GETS`].
    pub max_resend_gets: usize,
    /// Bound on un-acked puts per outgoing URL. Default [`MAX_PENDING_PUTS`].
    pub max_pending_puts: usize,
    /// Bound on the bytes of un-acked puts per outgoing URL. Default [`MAX_PENDING_BYTES`].
    pub max_pending_bytes: usize,
    /// Un-acked puts older than this are not re-sent. Default [`PENDING_PUT_MAX_AGE_MS`].
    pub pending_put_max_age_ms: u64,
    /// Seed of the random ids (message ids, pid); `None` seeds from the OS.
    /// Set it for reproducible tests.
    pub rng_seed: Option<u64>,
    /// Signs the messages that originate here ([`auth`]).
    /// Default `None`: nothing is signed.
    pub signer: Option<Arc<dyn MessageSigner>>,
    /// Checks the signatures of incoming messages, as [`MeshConfig::auth_policy`]
    /// says. Default `None`.
    pub verifier: Option<Arc<dyn MessageVerifier>>,
    /// What to do with the signatures of incoming messages. Default
    /// [`AuthPolicy::Off`].
    pub auth_policy: AuthPolicy,
    /// User filters on incoming messages, asked in order after the signature
    /// check; any `false` drops the message. Default none.
    pub predicates: Vec<Arc<dyn MessagePredicate>>,
}

impl fmt::Debug for MeshConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshConfig")
            .field("pid", &self.pid)
            .field("limits", &self.limits)
            .field("dedup_ttl_ms", &self.dedup_ttl_ms)
            .field("dedup_max_entries", &self.dedup_max_entries)
            .field("keepalive_ms", &self.keepalive_ms)
            .field("role", &self.role)
            .field("full_peer_marker", &self.full_peer_marker)
            .field(
                "max_subscriptions_per_peer",
                &self.max_subscriptions_per_peer,
            )
            .field("max_resend_gets", &self.max_resend_gets)
            .field("max_pending_puts", &self.max_pending_puts)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("pending_put_max_age_ms", &self.pending_put_max_age_ms)
            .field("rng_seed", &self.rng_seed)
            .field("signer", &Hook(self.signer.is_some()))
            .field("verifier", &Hook(self.verifier.is_some()))
            .field("auth_policy", &self.auth_policy)
            .field("predicates", &self.predicates.len())
            .finish()
    }
}

impl PartialEq for MeshConfig {
    fn eq(&self, o: &MeshConfig) -> bool {
        fn same<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
        }
        self.pid == o.pid
            && self.limits == o.limits
            && self.dedup_ttl_ms == o.dedup_ttl_ms
            && self.dedup_max_entries == o.dedup_max_entries
            && self.keepalive_ms == o.keepalive_ms
            && self.role == o.role
            && self.full_peer_marker == o.full_peer_marker
            && self.max_subscriptions_per_peer == o.max_subscriptions_per_peer
            && self.max_resend_gets == o.max_resend_gets
            && self.max_pending_puts == o.max_pending_puts
            && self.max_pending_bytes == o.max_pending_bytes
            && self.pending_put_max_age_ms == o.pending_put_max_age_ms
            && self.rng_seed == o.rng_seed
            && same(&self.signer, &o.signer)
            && same(&self.verifier, &o.verifier)
            && self.auth_policy == o.auth_policy
            && self.predicates.len() == o.predicates.len()
            && self
                .predicates
                .iter()
                .zip(&o.predicates)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig::relay()
    }
}

impl MeshConfig {
    /// Defaults for a relay: keep-alives, full-peer marker.
    pub fn relay() -> MeshConfig {
        MeshConfig {
            pid: None,
            limits: Limits::default(),
            dedup_ttl_ms: DEDUP_TTL_MS,
            dedup_max_entries: DEDUP_MAX_ENTRIES,
            keepalive_ms: KEEPALIVE_MS,
            role: Role::Relay,
            full_peer_marker: true,
            max_subscriptions_per_peer: MAX_SUBSCRIPTIONS_PER_PEER,
            max_resend_gets: MAX_RESEND_GETS,
            max_pending_puts: MAX_PENDING_PUTS,
            max_pending_bytes: MAX_PENDING_BYTES,
            pending_put_max_age_ms: PENDING_PUT_MAX_AGE_MS,
            rng_seed: None,
            signer: None,
            verifier: None,
            auth_policy: AuthPolicy::Off,
            predicates: Vec::new(),
        }
    }

    /// Defaults for a client: says `hi`, no keep-alives, no full-peer marker.
    pub fn client() -> MeshConfig {
        MeshConfig {
            role: Role::Client,
            full_peer_marker: false,
            ..MeshConfig::relay()
        }
    }
}

/// What a remembered message id means for routing.
#[derive(Debug, Clone, Default)]
enum Track {
    /// Only seen (an ack, a reply, a dam message, something we sent as a reply).
    #[default]
    Seen,
    /// A request (get or write) that came from `peer`: replies go there.
    Via {
        peer: PeerId,
        /// For gets: what the asker subscribed to.
        sub: Option<SubTarget>,
        /// The request's `><`.
        seen: Option<Arc<[String]>>,
        /// For signed puts: their signature fields, re-attached when the
        /// write is relayed unchanged.
        signed: Option<Arc<SignedPut>>,
    },
    /// One of our own requests: replies go to the engine.
    Local,
    /// A push we made for the write `original` from `origin` (None: local).
    Push {
        origin: Option<PeerId>,
        original: String,
    },
}

/// The [`SIG_FIELD`](auth::SIG_FIELD) and [`CERT_FIELD`](auth::CERT_FIELD) of a
/// received put, and a digest of its put, so that relaying the same write
/// keeps its signature (see [`auth`]).
#[derive(Debug)]
struct SignedPut {
    put: u64,
    fields: Vec<(String, Value)>,
}

impl SignedPut {
    fn of(m: &Message) -> Option<Arc<SignedPut>> {
        let put = m.put.as_ref()?;
        let fields: Vec<(String, Value)> = [auth::SIG_FIELD, auth::CERT_FIELD]
            .into_iter()
            .filter_map(|k| m.extra.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect();
        if !fields.iter().any(|(k, _)| k == auth::SIG_FIELD) {
            return None;
        }
        Some(Arc::new(SignedPut {
            put: put_digest(put),
            fields,
        }))
    }
}

/// A digest of a graph's sorted text: equal for the same nodes, keys, values
/// and states in any order. Only decides whether a relayed write is the one
/// that was signed; a collision would only forward a signature that does not
/// verify.
fn put_digest(g: &Graph) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    gun_graph::hash::sorted_text(g).hash(&mut h);
    h.finish()
}

/// What a get subscribes its sender to.
#[derive(Debug, Clone, PartialEq)]
enum SubTarget {
    /// A soul, or one key of it.
    Soul { soul: String, key: Option<String> },
    /// Every soul matching a lexical query.
    Souls(Lex),
}

fn sub_target(get: &Get) -> SubTarget {
    match &get.soul {
        SoulQuery::Exact(s) => SubTarget::Soul {
            soul: s.as_str().to_owned(),
            key: get.exact_key().map(str::to_owned),
        },
        SoulQuery::Lex(l) => SubTarget::Souls(l.clone()),
    }
}

#[derive(Debug)]
struct SoulSub {
    seq: u64,
    all: bool,
    keys: HashSet<String>,
}

/// A peer's subscriptions, bounded, oldest soul evicted first.
#[derive(Debug, Default)]
struct Subs {
    souls: HashMap<String, SoulSub>,
    order: BTreeMap<u64, String>,
    lex: VecDeque<Lex>,
    next: u64,
    entries: usize,
}

impl Subs {
    fn add(&mut self, t: &SubTarget, max: usize) {
        match t {
            SubTarget::Soul { soul, key } => {
                let seq = self.next;
                self.next += 1;
                let sub = match self.souls.get_mut(soul.as_str()) {
                    Some(s) => {
                        self.order.remove(&s.seq);
                        s.seq = seq;
                        s
                    }
                    None => {
                        self.entries += 1;
                        self.souls.entry(soul.clone()).or_insert(SoulSub {
                            seq,
                            all: false,
                            keys: HashSet::new(),
                        })
                    }
                };
                match key {
                    None => sub.all = true,
                    Some(k) => {
                        if !sub.all && sub.keys.insert(k.clone()) {
                            self.entries += 1;
                        }
                    }
                }
                self.order.insert(seq, soul.clone());
                let max = max.max(1);
                while self.entries > max && self.souls.len() > 1 {
                    let Some((_, old)) = self.order.pop_first() else {
                        break;
                    };
                    if let Some(s) = self.souls.remove(&old) {
                        self.entries -= 1 + s.keys.len();
                        tracing::debug!(soul = %old, "subscription bound reached: dropped the oldest");
                    }
                }
                if self.entries > max {
                    // One soul with too many single-key subscriptions: widen it
                    // to the whole soul (a superset, and bounded).
                    if let Some(s) = self.souls.get_mut(soul.as_str()) {
                        self.entries -= s.keys.len();
                        s.keys = HashSet::new();
                        s.all = true;
                    }
                }
            }
            SubTarget::Souls(l) => {
                if !self.lex.contains(l) {
                    self.lex.push_back(l.clone());
                    if self.lex.len() > MAX_SOUL_QUERY_SUBSCRIPTIONS {
                        self.lex.pop_front();
                    }
                }
            }
        }
    }

    fn covers(&self, soul: &str, key: Option<&str>) -> bool {
        if self.lex.iter().any(|l| l.matches(soul)) {
            return true;
        }
        match (self.souls.get(soul), key) {
            (Some(s), _) if s.all => true,
            (Some(s), Some(k)) => s.keys.contains(k),
            _ => false,
        }
    }

    /// The part of `diff` this peer subscribed to.
    fn select(&self, diff: &Graph) -> Graph {
        let mut g = Graph::new();
        if self.souls.is_empty() && self.lex.is_empty() {
            return g;
        }
        for (soul, node) in diff.iter() {
            if self.lex.iter().any(|l| l.matches(soul.as_str())) {
                g.insert_node(node.clone());
                continue;
            }
            if let Some(s) = self.souls.get(soul.as_str()) {
                if s.all {
                    g.insert_node(node.clone());
                } else {
                    let n = node.select(s.keys.iter().map(String::as_str));
                    if !n.is_empty() {
                        g.insert_node(n);
                    }
                }
            }
        }
        g
    }
}

#[derive(Debug)]
struct Peer {
    dir: Direction,
    /// Our internal id for it, used in `><` until it tells its pid.
    label: String,
    pid: Option<String>,
    marker: bool,
    subs: Subs,
    last_keepalive: u64,
}

impl Peer {
    fn url(&self) -> Option<&str> {
        match &self.dir {
            Direction::Outgoing { url } => Some(url),
            Direction::Incoming | Direction::Direct { .. } => None,
        }
    }

    fn full(&self) -> bool {
        self.marker || !matches!(self.dir, Direction::Incoming)
    }

    /// How this peer is named in our `><`: url, else pid, else internal id.
    fn seen_name(&self) -> &str {
        self.url().or(self.pid.as_deref()).unwrap_or(&self.label)
    }

    fn listed_in(&self, seen: &[String]) -> bool {
        seen.iter().any(|s| {
            Some(s.as_str()) == self.url()
                || Some(s.as_str()) == self.pid.as_deref()
                || *s == self.label
        })
    }
}

#[derive(Debug)]
struct PendingPut {
    id: String,
    frame: Arc<str>,
    at: u64,
    origin: Option<PeerId>,
}

/// Reconnect bookkeeping for one outgoing URL.
#[derive(Debug, Default)]
struct UrlState {
    peer: Option<PeerId>,
    get_keys: HashMap<String, u64>,
    gets: BTreeMap<u64, (String, Get)>,
    next: u64,
    puts: VecDeque<PendingPut>,
    put_bytes: usize,
}

impl UrlState {
    fn remember_get(&mut self, url: &str, get: &Get, max: usize) {
        let key = json::stringify(&get.raw);
        let seq = self.next;
        self.next += 1;
        if let Some(old) = self.get_keys.insert(key.clone(), seq) {
            self.gets.remove(&old);
        }
        self.gets.insert(seq, (key, get.clone()));
        while self.gets.len() > max.max(1) {
            let Some((_, (k, _))) = self.gets.pop_first() else {
                break;
            };
            self.get_keys.remove(&k);
            tracing::warn!(url, get = %k, "too many subscriptions remembered for this url: dropped the oldest");
        }
    }

    fn add_put(&mut self, url: &str, p: PendingPut, cfg: &MeshConfig) {
        if p.frame.len() > cfg.max_pending_bytes {
            tracing::warn!(url, id = %p.id, "put too large to keep for re-sending");
            return;
        }
        if self.puts.iter().any(|q| q.id == p.id) {
            return;
        }
        while !self.puts.is_empty()
            && (self.puts.len() >= cfg.max_pending_puts.max(1)
                || self.put_bytes + p.frame.len() > cfg.max_pending_bytes)
        {
            if let Some(old) = self.puts.pop_front() {
                self.put_bytes -= old.frame.len();
                tracing::warn!(url, id = %old.id, "too many un-acked puts for this url: dropped the oldest");
            }
        }
        self.put_bytes += p.frame.len();
        self.puts.push_back(p);
    }

    fn acked(&mut self, id: &str) {
        if let Some(i) = self.puts.iter().position(|p| p.id == id)
            && let Some(p) = self.puts.remove(i)
        {
            self.put_bytes -= p.frame.len();
        }
    }

    fn expire_puts(&mut self, url: &str, now: u64, max_age: u64) {
        while let Some(p) = self.puts.front() {
            if now.saturating_sub(p.at) < max_age {
                break;
            }
            tracing::warn!(url, id = %p.id, "un-acked put too old: no longer re-sent");
            self.put_bytes -= p.frame.len();
            self.puts.pop_front();
        }
    }
}

/// The mesh state machine. See the [module docs](self) for the rules.
#[derive(Debug)]
pub struct Mesh {
    cfg: MeshConfig,
    pid: String,
    rng: StdRng,
    peers: BTreeMap<PeerId, Peer>,
    dup: Dedup<Track>,
    urls: BTreeMap<String, UrlState>,
    keepalive: Arc<str>,
}

fn parse_seen(s: &str) -> Arc<[String]> {
    // Gun.js reads only the first 99 characters.
    let head: String = s.chars().take(99).collect();
    head.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn encode(m: &Message) -> Arc<str> {
    Arc::from(m.to_json())
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

impl Mesh {
    /// A mesh with no peers.
    pub fn new(cfg: MeshConfig) -> Mesh {
        let mut rng = match cfg.rng_seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let pid = cfg
            .pid
            .clone()
            .unwrap_or_else(|| gun_graph::ids::random_text(&mut rng, 9));
        Mesh {
            dup: Dedup::new(cfg.dedup_ttl_ms, cfg.dedup_max_entries),
            cfg,
            pid,
            rng,
            peers: BTreeMap::new(),
            urls: BTreeMap::new(),
            keepalive: Arc::from("[]"),
        }
    }

    /// Our peer id.
    pub fn pid(&self) -> &str {
        &self.pid
    }

    /// The configuration.
    pub fn config(&self) -> &MeshConfig {
        &self.cfg
    }

    /// The connected peers, in id order.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// The pid a peer announced, if any.
    pub fn peer_pid(&self, peer: PeerId) -> Option<&str> {
        self.peers.get(&peer).and_then(|p| p.pid.as_deref())
    }

    /// Whether writes are forwarded to this peer in full (an outgoing
    /// connection, or a peer that greeted with the gun-rs marker).
    pub fn is_full_peer(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(Peer::full)
    }

    /// Whether `peer` subscribed to `soul` (whole, or the given key).
    pub fn is_subscribed(&self, peer: PeerId, soul: &str, key: Option<&str>) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| p.subs.covers(soul, key))
    }

    /// Number of un-acked puts kept for an outgoing URL.
    pub fn pending_puts(&self, url: &str) -> usize {
        self.urls.get(url).map_or(0, |u| u.puts.len())
    }

    /// Registers an outgoing URL before its first connection, so that gets and
    /// writes requested meanwhile are sent when it connects.
    pub fn add_url(&mut self, url: &str) {
        self.urls.entry(url.to_owned()).or_default();
    }

    /// Forgets an outgoing URL's reconnect bookkeeping (gets and un-acked puts).
    pub fn forget_url(&mut self, url: &str) {
        self.urls.remove(url);
    }

    fn fresh_id(&mut self) -> String {
        gun_graph::ids::random_text(&mut self.rng, 9)
    }

    /// `><`: up to 7 of our peer ids, only when we have at least 2 peers (Gun.js).
    fn seen_list(&self) -> Option<String> {
        if self.peers.len() < 2 {
            return None;
        }
        // A peer we dialed is named by its URL, which other relays do not
        // know it by; its pid (from the handshake) is added, so that a relay
        // receiving this message sees that its own peer has it already and
        // does not send it across that link again (a triangle of relays).
        let mut names: Vec<&str> = Vec::with_capacity(2 * SEEN_MAX);
        for p in self.peers.values().take(SEEN_MAX) {
            let name = p.seen_name();
            names.push(name);
            if let Some(pid) = p.pid.as_deref()
                && pid != name
            {
                names.push(pid);
            }
        }
        Some(names.join(","))
    }

    fn greeting(&mut self, dam: &str, reply_to: Option<String>) -> Message {
        let mut m = Message {
            id: Some(self.fresh_id()),
            reply_to,
            dam: Some(dam.to_owned()),
            ..Message::default()
        };
        if dam == "?" {
            m.pid = Some(self.pid.clone());
            if self.cfg.full_peer_marker {
                m.extra.insert(FULL_PEER_MARKER.to_owned(), Value::from(1));
            }
        }
        m
    }

    /// A connection opened. Incoming: we greet with `dam:"?"`. Outgoing: a
    /// client says `hi`; a reconnect to a known URL re-sends its remembered gets
    /// and un-acked puts.
    pub fn connect(&mut self, peer: PeerId, dir: Direction, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        let label = self.fresh_id();
        let url = match &dir {
            Direction::Outgoing { url } => Some(url.clone()),
            Direction::Incoming | Direction::Direct { .. } => None,
        };
        let direct = match &dir {
            Direction::Direct { pid } => Some(pid.clone()),
            _ => None,
        };
        self.peers.insert(
            peer,
            Peer {
                dir,
                label,
                pid: direct.clone(),
                marker: false,
                subs: Subs::default(),
                last_keepalive: now,
            },
        );
        if direct.is_some() {
            // Signalling told both ends who the other is: no greeting.
            return out;
        }
        let Some(url) = url else {
            let m = self.greeting("?", None);
            self.track_sent(&m, now);
            out.push(Output::Send {
                to: peer,
                frame: encode(&m),
            });
            return out;
        };
        if self.cfg.role == Role::Client {
            let m = self.greeting("hi", None);
            self.track_sent(&m, now);
            out.push(Output::Send {
                to: peer,
                frame: encode(&m),
            });
        }
        let max_age = self.cfg.pending_put_max_age_ms;
        let st = self.urls.entry(url.clone()).or_default();
        st.peer = Some(peer);
        st.expire_puts(&url, now, max_age);
        let gets: Vec<Get> = st.gets.values().map(|(_, g)| g.clone()).collect();
        let puts: Vec<(String, Arc<str>, Option<PeerId>)> = st
            .puts
            .iter()
            .map(|p| (p.id.clone(), p.frame.clone(), p.origin))
            .collect();
        let seen = self.seen_list();
        for get in gets {
            let id = self.fresh_id();
            self.dup.insert(&id, Track::Local, now);
            let mut m = Message {
                id: Some(id),
                seen: seen.clone(),
                get: Some(get),
                ..Message::default()
            };
            self.sign(&mut m);
            out.push(Output::Send {
                to: peer,
                frame: encode(&m),
            });
        }
        for (id, frame, origin) in puts {
            if !self.dup.refresh(&id, now) {
                let t = match origin {
                    Some(p) => Track::Via {
                        peer: p,
                        sub: None,
                        seen: None,
                        signed: None,
                    },
                    None => Track::Local,
                };
                self.dup.insert(&id, t, now);
            }
            out.push(Output::Send { to: peer, frame });
        }
        out
    }

    /// A connection closed: its subscriptions and routes are forgotten (routes
    /// through it now lead nowhere and expire with the dedup window). An
    /// outgoing URL keeps its reconnect bookkeeping.
    pub fn disconnect(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.remove(&peer)
            && let Some(url) = p.url()
            && let Some(st) = self.urls.get_mut(url)
            && st.peer == Some(peer)
        {
            st.peer = None;
        }
    }

    /// Signs a message that originates here, when we have a signer.
    fn sign(&self, m: &mut Message) {
        if let Some(signer) = &self.cfg.signer {
            auth::sign(signer.as_ref(), m);
        }
    }

    /// The signature check ([`AuthPolicy`]) and the predicates, for an incoming
    /// non-`dam` message: whether it may go on.
    fn admit(&self, from: PeerId, m: &Message) -> bool {
        match auth::check(self.cfg.auth_policy, self.cfg.verifier.as_deref(), m) {
            Verdict::Pass => {}
            Verdict::Drop(why) => {
                if m.extra.contains_key(auth::SIG_FIELD) {
                    tracing::warn!(peer = from.0, id = ?m.id, why, "message dropped: signature check failed");
                } else {
                    tracing::debug!(peer = from.0, id = ?m.id, why, "message dropped by the auth policy");
                }
                return false;
            }
        }
        for (i, p) in self.cfg.predicates.iter().enumerate() {
            if !p.allow(from, m) {
                tracing::debug!(peer = from.0, id = ?m.id, predicate = i, "message dropped by a predicate");
                return false;
            }
        }
        true
    }

    fn track_sent(&mut self, m: &Message, now: u64) {
        if let Some(id) = &m.id
            && !self.dup.refresh(id, now)
        {
            self.dup.insert(id, Track::Seen, now);
        }
    }

    /// A text frame arrived from `peer` (which must have been [`connect`](Mesh::connect)ed;
    /// frames from unknown peers are ignored). Each message is handled as the
    /// module docs say; invalid puts come back as [`Output::InvalidPut`], a
    /// frame over the size limit is answered `{"dam":"!","err":"Message too big!"}`,
    /// other bad frames are dropped with a debug event.
    pub fn receive(&mut self, peer: PeerId, frame: &str, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.peers.contains_key(&peer) {
            tracing::debug!(peer = peer.0, "frame from an unknown peer ignored");
            return out;
        }
        for r in parse_frame_with(frame, &self.cfg.limits) {
            match r {
                Ok(m) => self.hear(peer, m, now, &mut out),
                Err(Error::InvalidPut { id, error }) => {
                    if let Some(id) = &id
                        && self.dup.check_and_track(id, now)
                    {
                        continue;
                    }
                    tracing::debug!(peer = peer.0, ?id, %error, "invalid put");
                    out.push(Output::InvalidPut {
                        from: peer,
                        id,
                        error,
                    });
                }
                Err(Error::TooBig { len, max }) => {
                    tracing::debug!(peer = peer.0, len, max, "frame too big");
                    let m = Message {
                        id: Some(self.fresh_id()),
                        dam: Some("!".into()),
                        err: Some("Message too big!".into()),
                        ..Message::default()
                    };
                    self.track_sent(&m, now);
                    out.push(Output::Send {
                        to: peer,
                        frame: encode(&m),
                    });
                }
                Err(e) => {
                    tracing::debug!(peer = peer.0, error = %e, "bad frame or message ignored")
                }
            }
            if !self.peers.contains_key(&peer) {
                break; // closed while handling (self-connection)
            }
        }
        out
    }

    fn hear(&mut self, from: PeerId, mut m: Message, now: u64, out: &mut Vec<Output>) {
        let id = match &m.id {
            Some(id) => id.clone(),
            None => {
                let id = self.fresh_id();
                m.id = Some(id.clone());
                id
            }
        };
        if m.dam.is_none() {
            // Before the dedup marks it seen: a refused copy (a forgery) must
            // not make the genuine message look like a duplicate. Duplicates
            // are dropped first, so each message is verified once.
            if self.dup.contains(&id, now) {
                self.dup.refresh(&id, now);
                tracing::trace!(id, "duplicate message dropped");
                return;
            }
            if !self.admit(from, &m) {
                return;
            }
        }
        if self.dup.check_and_track(&id, now) {
            tracing::trace!(id, "duplicate message dropped");
            return;
        }
        if let (Some(at), Some(h)) = (&m.reply_to, m.hash) {
            let ash = format!("{at}\u{1}##{h}");
            if self.dup.check_and_track(&ash, now) {
                tracing::trace!(id, "duplicate reply (same @ and ##) dropped");
                return;
            }
        }
        if m.dam.is_some() {
            self.hear_dam(from, m, now, out);
            return;
        }
        if let Some(at) = m.reply_to.clone() {
            self.hear_reply(from, &at, m, now, out);
            return;
        }
        if m.get.is_none() && m.put.is_none() {
            tracing::debug!(id, "message with neither get, put nor @ dropped");
            return;
        }
        let seen = m.seen.as_deref().map(parse_seen);
        let sub = m.get.as_ref().map(sub_target);
        self.dup.insert(
            &id,
            Track::Via {
                peer: from,
                sub: sub.clone(),
                seen: seen.clone(),
                signed: SignedPut::of(&m),
            },
            now,
        );
        let fwd = if let (Some(sub), Some(get)) = (&sub, &m.get) {
            let max = self.cfg.max_subscriptions_per_peer;
            if let Some(p) = self.peers.get_mut(&from) {
                p.subs.add(sub, max);
            }
            let mut fwd = m.clone();
            fwd.seen = self.seen_list();
            Some((fwd, get.clone()))
        } else {
            None
        };
        out.push(Output::Deliver { from, msg: m });
        if let Some((fwd, get)) = fwd {
            self.forward(Some(from), &fwd, &get, seen.as_deref(), out);
        }
    }

    /// Sends a get to every peer but `from` and those in `seen`, remembering it
    /// for re-sending on the outgoing URLs it went to.
    fn forward(
        &mut self,
        from: Option<PeerId>,
        m: &Message,
        get: &Get,
        seen: Option<&[String]>,
        out: &mut Vec<Output>,
    ) {
        let mut frame: Option<Arc<str>> = None;
        let max = self.cfg.max_resend_gets;
        for (id, p) in &self.peers {
            if Some(*id) == from || seen.is_some_and(|s| p.listed_in(s)) {
                continue;
            }
            let f = frame.get_or_insert_with(|| encode(m)).clone();
            out.push(Output::Send { to: *id, frame: f });
            if let Some(url) = p.url()
                && let Some(st) = self.urls.get_mut(url)
            {
                st.remember_get(url, get, max);
            }
        }
    }

    fn hear_dam(&mut self, from: PeerId, m: Message, now: u64, out: &mut Vec<Output>) {
        let kind = m.dam.as_deref().unwrap_or("");
        match kind {
            "?" => {
                let marker = truthy(m.extra.get(FULL_PEER_MARKER));
                if m.pid.as_deref() == Some(self.pid.as_str()) {
                    tracing::info!(peer = from.0, "connected to ourselves: closing");
                    self.disconnect(from);
                    out.push(Output::Close {
                        peer: from,
                        reason: "connected to self".into(),
                    });
                    return;
                }
                if let Some(p) = self.peers.get_mut(&from) {
                    if p.pid.is_none() {
                        p.pid = m.pid.clone();
                    }
                    p.marker |= marker;
                }
                if m.pid.is_some() && m.reply_to.is_some() {
                    return;
                }
                let answer = self.greeting("?", m.id.clone());
                self.track_sent(&answer, now);
                out.push(Output::Send {
                    to: from,
                    frame: encode(&answer),
                });
            }
            "hi" => tracing::trace!(peer = from.0, "dam hi"),
            "!" => tracing::debug!(peer = from.0, err = ?m.err, "peer reports an error"),
            "opt" => tracing::warn!(
                peer = from.0,
                opt = ?m.extra.get("opt"),
                "ignoring dam:opt (a Gun.js relay would dial the URL it names)"
            ),
            "mob" => tracing::info!(peer = from.0, "peer says it is overloaded (dam:mob)"),
            other => tracing::debug!(peer = from.0, dam = other, "unknown dam message ignored"),
        }
    }

    fn hear_reply(&mut self, from: PeerId, at: &str, m: Message, now: u64, out: &mut Vec<Output>) {
        // A reply is a request too: whoever answers it (WebRTC signalling
        // answers an offer that arrived as an ack, §11.3) is routed back to
        // `from`, as Gun.js routes every `@` to where its `#` came from.
        if let Some(rid) = m.id.as_deref()
            && let Some(t) = self.dup.get_mut(rid, now)
            && matches!(t, Track::Seen)
        {
            *t = Track::Via {
                peer: from,
                sub: None,
                seen: None,
                signed: None,
            };
        }
        if let Some(url) = self.peers.get(&from).and_then(Peer::url)
            && let Some(st) = self.urls.get_mut(url)
        {
            st.acked(at);
        }
        let Some(track) = self.dup.get(at, now).cloned() else {
            tracing::debug!(at, "reply to an unknown or expired request dropped");
            return;
        };
        match track {
            Track::Local => {
                self.dup.refresh(at, now);
                out.push(Output::Deliver { from, msg: m });
            }
            Track::Via {
                peer: origin, sub, ..
            } => {
                self.dup.refresh(at, now);
                if origin == from {
                    tracing::debug!(at, "peer answered its own request: dropped");
                    return;
                }
                let max = self.cfg.max_subscriptions_per_peer;
                if let (Some(sub), true) = (&sub, m.put.is_some())
                    && let Some(p) = self.peers.get_mut(&from)
                {
                    p.subs.add(sub, max);
                }
                if self.peers.contains_key(&origin) {
                    out.push(Output::Send {
                        to: origin,
                        frame: encode(&m),
                    });
                } else {
                    tracing::debug!(at, "reply for a peer that is gone");
                }
                if m.put.is_some() {
                    out.push(Output::Deliver { from, msg: m });
                }
            }
            Track::Push { origin, original } => {
                // A new message (its `@` changes): signed by us, if at all.
                let mut ack = Message {
                    id: m.id.clone(),
                    reply_to: Some(original),
                    ok: m.ok.clone(),
                    err: m.err.clone(),
                    ..Message::default()
                };
                self.sign(&mut ack);
                match origin {
                    None => out.push(Output::Deliver { from, msg: ack }),
                    Some(o) if o == from => {
                        tracing::trace!(at, "ack of an echo push not sent back")
                    }
                    Some(o) if self.peers.contains_key(&o) => {
                        out.push(Output::Send {
                            to: o,
                            frame: encode(&ack),
                        });
                    }
                    Some(_) => tracing::debug!(at, "push ack for a writer that is gone"),
                }
            }
            Track::Seen => {
                tracing::debug!(at, "reply to a message that was not a request: dropped")
            }
        }
    }

    /// Fans out a write that HAM accepted (see the module docs): `diff` is what
    /// was accepted; `origin` is the connection and `#` of the put it came in
    /// (`None` for a local write, which gets a fresh id whose acks are delivered
    /// to the engine).
    pub fn publish(
        &mut self,
        diff: &Graph,
        origin: Option<(PeerId, String)>,
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if diff.is_empty() {
            return out;
        }
        let (id, origin_peer) = match origin {
            Some((p, id)) => (id, Some(p)),
            None => {
                let id = self.fresh_id();
                self.dup.insert(&id, Track::Local, now);
                (id, None)
            }
        };
        self.publish_inner(diff, &id, origin_peer, None, now, &mut out);
        out
    }

    fn publish_inner(
        &mut self,
        diff: &Graph,
        id: &str,
        origin: Option<PeerId>,
        template: Option<&Message>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let (seen, signed) = match self.dup.get(id, now) {
            Some(Track::Via { seen, signed, .. }) => (seen.clone(), signed.clone()),
            _ => (None, None),
        };
        if let Some(o) = origin
            && !self.dup.refresh(id, now)
        {
            self.dup.insert(
                id,
                Track::Via {
                    peer: o,
                    sub: None,
                    seen: None,
                    signed: None,
                },
                now,
            );
        }
        let seen_list = self.seen_list();
        // (a) full peers, with the original id.
        let mut full_msg = template.cloned().unwrap_or_default();
        full_msg.id = Some(id.to_owned());
        full_msg.reply_to = None;
        full_msg.get = None;
        full_msg.seen = seen_list.clone();
        full_msg.put = Some(diff.clone());
        // The write as it was signed goes on with its signature; anything else
        // (a part of it, an unsigned or a local write) is signed by us, if at all.
        match signed.filter(|s| s.put == put_digest(diff)) {
            Some(s) => {
                for (k, v) in &s.fields {
                    full_msg.extra.insert(k.clone(), v.clone());
                }
            }
            None => {
                auth::strip(&mut full_msg);
                self.sign(&mut full_msg);
            }
        }
        let full_frame = encode(&full_msg);
        let mut got_full = HashSet::new();
        for (pid, p) in &self.peers {
            if !p.full() || Some(*pid) == origin || seen.as_deref().is_some_and(|s| p.listed_in(s))
            {
                continue;
            }
            got_full.insert(*pid);
            out.push(Output::Send {
                to: *pid,
                frame: full_frame.clone(),
            });
        }
        // Keep it for re-sending on every outgoing URL that did not ack it yet:
        // connected ones it was just sent to, and disconnected ones.
        let origin_url = origin
            .and_then(|o| self.peers.get(&o))
            .and_then(Peer::url)
            .map(str::to_owned);
        for (url, st) in self.urls.iter_mut() {
            let sent = st.peer.is_some_and(|p| got_full.contains(&p));
            let down = st.peer.is_none_or(|p| !self.peers.contains_key(&p));
            if (sent || down) && Some(url) != origin_url.as_ref() {
                let p = PendingPut {
                    id: id.to_owned(),
                    frame: full_frame.clone(),
                    at: now,
                    origin,
                };
                st.add_put(url, p, &self.cfg);
            }
        }
        // (b) other subscribers: a push of their part, with a fresh id. Full
        // peers are left out: a full peer without the full copy is the origin
        // or listed in `><`, so it has the write already, and a push (a fresh
        // `#` its dedup cannot recognise) would only carry the write back
        // over the link.
        let n = self.peers.len();
        let pushes: Vec<(PeerId, Graph)> = self
            .peers
            .iter()
            .filter(|(pid, p)| !got_full.contains(*pid) && !p.full())
            .map(|(pid, p)| (*pid, p.subs.select(diff)))
            .filter(|(_, g)| !g.is_empty())
            .collect();
        for (to, part) in pushes {
            let push_id = self.fresh_id();
            self.dup.insert(
                &push_id,
                Track::Push {
                    origin,
                    original: id.to_owned(),
                },
                now,
            );
            let mut ok = serde_json::Map::new();
            ok.insert("@".into(), Value::from(2));
            ok.insert("/".into(), Value::from(n));
            let mut m = Message {
                id: Some(push_id),
                seen: seen_list.clone(),
                ok: Some(Value::Object(ok)),
                put: Some(part),
                ..Message::default()
            };
            self.sign(&mut m);
            out.push(Output::Send {
                to,
                frame: encode(&m),
            });
        }
    }

    /// Sends the engine's own request to peers and tracks it as ours: replies
    /// and acks come back as [`Output::Deliver`]. Returns its `#` (the message's
    /// own when set, else a fresh one).
    ///
    /// A get goes to every peer and is remembered for every outgoing URL
    /// (re-sent on reconnect). A write (a `put` without `@`) is published as
    /// [`Mesh::publish`] does for a local write, keeping the message's other
    /// fields on the full-peer copy. Anything else goes to every peer as is.
    pub fn request(&mut self, mut msg: Message, now: u64) -> (String, Vec<Output>) {
        let mut out = Vec::new();
        let id = match &msg.id {
            Some(id) => id.clone(),
            None => self.fresh_id(),
        };
        msg.id = Some(id.clone());
        self.dup.insert(&id, Track::Local, now);
        if let Some(get) = msg.get.clone() {
            let max = self.cfg.max_resend_gets;
            for (url, st) in self.urls.iter_mut() {
                st.remember_get(url, &get, max);
            }
            msg.seen = self.seen_list();
            self.sign(&mut msg);
            let frame = encode(&msg);
            for to in self.peers.keys() {
                out.push(Output::Send {
                    to: *to,
                    frame: frame.clone(),
                });
            }
            return (id, out);
        }
        if msg.reply_to.is_none() {
            if let Some(put) = msg.put.take() {
                self.publish_inner(&put, &id, None, Some(&msg), now, &mut out);
                return (id, out);
            }
            msg.seen = self.seen_list();
        }
        self.sign(&mut msg);
        let frame = encode(&msg);
        for to in self.peers.keys() {
            out.push(Output::Send {
                to: *to,
                frame: frame.clone(),
            });
        }
        (id, out)
    }

    /// Sends a message that answers one we received (`msg.reply_to` set) back
    /// the way that message came, and tracks the answer's own `#` (fresh when
    /// unset) as ours, so that replies to it are delivered to the engine. This
    /// is how WebRTC signalling talks (§11.3): an offer answers the announcing
    /// write, and the answer and candidates answer the offer. Returns the `#`
    /// and nothing to send when the route is unknown or expired (debug event).
    pub fn answer(&mut self, mut msg: Message, now: u64) -> (String, Vec<Output>) {
        let id = match &msg.id {
            Some(id) => id.clone(),
            None => self.fresh_id(),
        };
        msg.id = Some(id.clone());
        self.dup.insert(&id, Track::Local, now);
        let Some(at) = msg.reply_to.clone() else {
            tracing::debug!(id, "answer without `@` not sent");
            return (id, Vec::new());
        };
        let to = match self.dup.get(&at, now) {
            Some(Track::Via { peer, .. }) => Some(*peer),
            _ => None,
        };
        let Some(to) = to.filter(|p| self.peers.contains_key(p)) else {
            tracing::debug!(
                id,
                at,
                "answer to an unknown, expired or local message not sent"
            );
            return (id, Vec::new());
        };
        self.dup.refresh(&at, now);
        self.sign(&mut msg);
        (
            id,
            vec![Output::Send {
                to,
                frame: encode(&msg),
            }],
        )
    }

    /// Sends the engine's own request to one peer only (a subscription re-sent
    /// on a new direct link, as Gun.js re-sends its live gets on `hi`);
    /// replies come back as [`Output::Deliver`]. Returns its `#`.
    pub fn request_to(&mut self, to: PeerId, mut msg: Message, now: u64) -> (String, Vec<Output>) {
        let id = match &msg.id {
            Some(id) => id.clone(),
            None => self.fresh_id(),
        };
        msg.id = Some(id.clone());
        self.dup.insert(&id, Track::Local, now);
        if !self.peers.contains_key(&to) {
            return (id, Vec::new());
        }
        self.sign(&mut msg);
        (
            id,
            vec![Output::Send {
                to,
                frame: encode(&msg),
            }],
        )
    }

    /// Sends an answer (a get reply, a not-found, an ack) to the connection the
    /// request came from. Assigns a `#` when the message has none.
    pub fn reply(&mut self, to: PeerId, mut msg: Message, now: u64) -> Vec<Output> {
        if msg.id.is_none() {
            msg.id = Some(self.fresh_id());
        }
        self.sign(&mut msg);
        self.track_sent(&msg, now);
        if let Some(at) = &msg.reply_to {
            // Streaming answers keep the request's route alive (as Gun.js).
            self.dup.refresh(at, now);
        }
        if !self.peers.contains_key(&to) {
            tracing::debug!(peer = to.0, "reply for a peer that is gone");
            return Vec::new();
        }
        vec![Output::Send {
            to,
            frame: encode(&msg),
        }]
    }

    /// Time passes: expires dedup entries (and the routes they hold) and old
    /// un-acked puts, and (relays) sends the `[]` keep-alive to every peer every
    /// [`MeshConfig::keepalive_ms`].
    pub fn tick(&mut self, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.dup.expire(now);
        let max_age = self.cfg.pending_put_max_age_ms;
        for (url, st) in self.urls.iter_mut() {
            st.expire_puts(url, now, max_age);
        }
        let period = self.cfg.keepalive_ms;
        if self.cfg.role == Role::Relay && period > 0 {
            for (id, p) in self.peers.iter_mut() {
                if now.saturating_sub(p.last_keepalive) >= period {
                    p.last_keepalive = now;
                    out.push(Output::Send {
                        to: *id,
                        frame: self.keepalive.clone(),
                    });
                }
            }
        }
        out
    }
}
