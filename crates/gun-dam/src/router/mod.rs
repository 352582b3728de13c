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
//! a reply whose `@`+`##` pair was seen (two peers answering with the same data,
//! or a peer answering what we answered already). A get that carries `##` h
//! records the pair `#`+h: the asker holds data hashing to h.
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
//!   with no origin, re-subscriptions after a reconnect): delivered to the engine
//!   as an [`Output::Ack`] when it carries `ok`/`err` and no `put`, else as an
//!   [`Output::Reply`];
//! * answering a request that came from peer P and that we forwarded (a get, or
//!   a write forwarded to full peers): sent to P unchanged (same `#`, every field
//!   kept), and also delivered to the engine as an [`Output::Relayed`] if it
//!   carries a `put` — a relay
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
//! **Messages without `@`** are delivered to the engine when they carry a `put`
//! (as an [`Output::Put`]) or a `get` (as an [`Output::Get`]); others are dropped. A `get` from P also
//! * subscribes P to that soul (or to that one key, for a single-key get; lexical
//!   key queries subscribe the whole soul; soul queries subscribe every matching
//!   soul), and
//! * is forwarded at once, with the same `#`, to every other **full peer**
//!   (below) except those listed in its `><`, and to at most
//!   [`MeshConfig::get_fanout`] **client peers** (not P, not listed): the
//!   soul's holders first — client peers that wrote it, answered a get for it
//!   with data, or asked for it, most recent first, [`HOLDERS_PER_SOUL`] per
//!   soul — then others from a random point of the peer table, as AXE asks a
//!   soul's route and then any peers; never every connected browser. It
//!   carries `><` set to our own peer ids (pids of incoming peers, urls of
//!   outgoing ones, at most 7), and, when it has no `##`, the `##` of our own
//!   answer if the engine knows it at once ([`Mesh::receive_with`]: the
//!   gun-core engine hashes what its cache would answer in one message; a get
//!   answered from the store is forwarded at once, without). A peer holding
//!   the same data then stays silent. The `#` → P route lives as long as the
//!   dedup entry, refreshed by every reply routed through it. The engine's own
//!   gets ([`Mesh::request`]) follow the same rule.
//!
//! **`##` on answers** ([`Mesh::reply`]). A get reply with data gets
//! `"##"` = [`gun_graph::hash::graph_hash`] of its `put` (Gun.js's hash; the
//! captured Gun.js frames check it) and is not sent when its `@`+`##` pair
//! was seen (the get came with that `##`, or the same answer went out or was
//! routed already); otherwise the pair is recorded, so a peer's identical
//! answer arriving later is dropped. A "not found" is not sent, nor routed,
//! for a get that came with a `##` or that data answered already (as Gun.js).
//!
//! **Open gets.** A get from P then stays *open* for
//! [`MeshConfig::open_get_ms`] (9 s, its route's lifetime) until data
//! answers it: our own reply with a non-empty `put` ([`Mesh::reply`]) or one
//! routed back to P. A "not found" (ours or a peer's) leaves it open; a "not
//! found" from a client peer it was forwarded to asks one more client peer
//! (picked as above). When a peer connects (a new one, or one reconnecting —
//! after its restart or ours) every open get whose asker is still connected
//! (and is not that peer), that does not list the peer in its `><` and whose
//! route is still in the dedup table is forwarded to it with the same `#`
//! (and our `><`), so the answer of a holder that joins late reaches the
//! asker even after we said "not found": all of them to a peer we dialed or a
//! direct link, the youngest [`MeshConfig::open_gets_per_connect`] to an
//! incoming peer. One get asks at most [`MeshConfig::max_get_asks`] client
//! peers in all (at once, after "not found"s, and late). On a reconnect to a
//! known URL it takes the place of the fresh-id re-send of the same get. Open
//! gets are dropped when they expire ([`Mesh::tick`]), when their asker
//! disconnects, and past [`MeshConfig::max_open_gets_per_peer`] (that asker's
//! oldest) or [`MeshConfig::max_open_gets`] (the oldest of all).
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
//! open gets are bounded by age, per asker and in total; the client peers a
//! get asks, and the open gets a new peer is sent, are bounded by count;
//! holders by [`HOLDERS_PER_SOUL`] and [`MeshConfig::max_holder_souls`];
//! subscriptions per peer are bounded (oldest soul evicted first); pending gets
//! and puts per URL are bounded by count, bytes and age.
//!
//! # Where the code is
//!
//! | module | what |
//! |---|---|
//! | `config` | [`MeshConfig`], [`Role`], the bounds and their defaults |
//! | `peers` | what we know of each connection; [`Mesh::connect`], [`Mesh::disconnect`] (greeting, re-sending on reconnect, open gets to new peers) |
//! | `receive` | [`Mesh::receive`]: parse, dedup, auth and predicates, then the handshake, requests (subscribe, forward gets to full peers and a few clients) and replies (route, translate push acks, next client after a "not found") |
//! | `publish` | [`Mesh::publish`]: full peers, subscribers' pushes, keeping writes for URLs that have not acked |
//! | `requests` | the engine's own traffic: [`Mesh::request`], [`Mesh::answer`], [`Mesh::request_to`], [`Mesh::reply`], [`Mesh::tick`] |
//! | `track` | the routing table's entries (what a remembered `#` means) |
//! | `open` | open gets (gets no data answered yet, asked again of peers that connect) |
//! | `holders` | which client peers can answer a get for a soul (writers, answerers, askers) |
//! | `subs` | per-peer subscriptions, bounded |
//! | `resend` | per-URL reconnect bookkeeping (gets and un-acked puts) |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::auth;
use crate::dedup::Dedup;
use crate::message::Message;
use crate::peer::PeerId;

mod config;
mod decode;
mod holders;
mod open;
mod peers;
mod publish;
mod receive;
mod requests;
mod resend;
mod subindex;
mod subs;
mod track;

pub use config::{
    FULL_PEER_MARKER, GET_FANOUT, KEEPALIVE_MS, MAX_GET_ASKS, MAX_HOLDER_SOULS, MAX_OPEN_GETS,
    MAX_OPEN_GETS_PER_PEER, MAX_PENDING_BYTES, MAX_PENDING_PUTS, MAX_RESEND_GETS,
    MAX_SOUL_QUERY_SUBSCRIPTIONS, MAX_SUBSCRIPTIONS_PER_PEER, MeshConfig, OPEN_GET_MS,
    OPEN_GETS_PER_CONNECT, PENDING_PUT_MAX_AGE_MS, Role, SEEN_MAX,
};
pub use decode::{Decoded, Decoder};
pub use holders::HOLDERS_PER_SOUL;
use holders::Holders;
use open::OpenGets;
use peers::Peer;
use resend::UrlState;
use subindex::SubIndex;
use track::Track;

/// What the mesh asks of whoever drives it (the engine), in order. The mesh
/// has already decided what each message is: the engine acts on the variant
/// and never classifies a message again.
// Message-carrying variants are large (a whole Message); outputs live briefly in
// a Vec and are moved out once, so boxing would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this text frame on the connection `to`.
    Send {
        /// The connection.
        to: PeerId,
        /// The frame (shared between the peers that get the same text;
        /// acks and pushes are encoded when their text is first taken).
        frame: OutFrame,
    },
    /// A write from a peer (a `put` without `@`): validate it, merge it
    /// through HAM, store it, ack it with [`Mesh::reply`] (`ok`, or `err` with
    /// the reason), and hand what HAM accepted to [`Mesh::publish`] with the
    /// origin (`from`, the message's `#`).
    Put {
        /// The connection it came from.
        from: PeerId,
        /// The message, with its `#` set.
        msg: Box<Message>,
    },
    /// A read from a peer (a `get` without `@`): answer it with
    /// [`Mesh::reply`] (the data, or a "not found"). The mesh has already
    /// subscribed `from` and forwarded the get where it had to.
    Get {
        /// The connection it came from.
        from: PeerId,
        /// The message, with its `#` set.
        msg: Box<Message>,
    },
    /// An answer to one of the engine's own requests that is not an ack: data
    /// (`put`, to merge and store; an empty graph means "not found") or a bare
    /// "not found". Answers to gets the mesh re-sent after a reconnect carry
    /// `@` ids the engine never issued: merge their `put` like any reply.
    Reply {
        /// The connection it came from.
        from: PeerId,
        /// The message, with its `#` set.
        msg: Box<Message>,
    },
    /// An acknowledgement (`ok` or `err`) of one of the engine's own messages:
    /// a peer's ack of a local write (a push ack already translated back to the
    /// write's `#`), or an answer riding on one (WebRTC signalling, §11.3).
    Ack {
        /// The connection it came from.
        from: PeerId,
        /// The message, with `@` = the engine's `#`.
        msg: Box<Message>,
    },
    /// A get reply with data that this mesh routed to the peer that asked
    /// (already sent on): the engine stores it, as a Gun.js relay keeps what
    /// passes through it. Nobody here waits for it.
    Relayed {
        /// The connection it came from.
        from: PeerId,
        /// The message, as sent on.
        msg: Box<Message>,
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

impl Output {
    /// An answer to one of the engine's own messages, by what it carries: data
    /// or nothing is a [`Output::Reply`], `ok`/`err` an [`Output::Ack`].
    fn answer(from: PeerId, msg: Message) -> Output {
        if msg.put.is_none() && (msg.ok.is_some() || msg.err.is_some()) {
            Output::Ack {
                from,
                msg: Box::new(msg),
            }
        } else {
            Output::Reply {
                from,
                msg: Box::new(msg),
            }
        }
    }

    /// The message handed to the engine, with the connection it came from
    /// (`None` for [`Output::Send`], [`Output::InvalidPut`], [`Output::Close`]).
    pub fn message(&self) -> Option<(PeerId, &Message)> {
        match self {
            Output::Put { from, msg }
            | Output::Get { from, msg }
            | Output::Reply { from, msg }
            | Output::Ack { from, msg }
            | Output::Relayed { from, msg } => Some((*from, msg)),
            Output::Send { .. } | Output::InvalidPut { .. } | Output::Close { .. } => None,
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
    /// The full peers among `peers` (outgoing, or greeted with the marker): every get goes
    /// to them, and scanning all peers for them made each get O(connections).
    full_peers: std::collections::BTreeSet<PeerId>,
    dup: Dedup<Track>,
    urls: BTreeMap<String, UrlState>,
    open: OpenGets,
    holders: Holders,
    /// Who subscribed to each soul (see `subindex`).
    subindex: SubIndex,
    keepalive: OutFrame,
    decoder: Arc<Decoder>,
    /// Souls forgotten from peers' subscriptions past
    /// [`MeshConfig::max_subscriptions_per_peer`], since start.
    subs_evicted: u64,
}

pub(super) fn parse_seen(s: &str) -> Arc<[String]> {
    // Gun.js reads only the first 99 characters.
    let head: String = s.chars().take(99).collect();
    head.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The dedup key of an answer to request `at` with hash `h` (`@`+`##`, as
/// Gun.js tracks it); with `None`, the mark that `at` was answered with data
/// or asked with a `##` (a "not found" for it is then not sent).
pub(super) fn answer_key(at: &str, h: Option<i32>) -> String {
    match h {
        Some(h) => format!("{at}\u{1}##{h}"),
        None => format!("{at}\u{1}##"),
    }
}

pub(super) fn encode(m: &Message) -> Arc<str> {
    thread_local! {
        /// Where a frame is written before its one copy into the `Arc<str>`
        /// (a `String` made per frame was a second allocation and a free per
        /// ack). Kept only while small, so one large write does not hold its
        /// size for good.
        static SCRATCH: std::cell::RefCell<String> =
            const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH
        .try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return Arc::from(m.to_json());
            };
            s.clear();
            m.write_json(&mut s);
            let text = Arc::from(s.as_str());
            if s.capacity() > 64 * 1024 {
                *s = String::new();
            }
            text
        })
        .unwrap_or_else(|_| Arc::from(m.to_json()))
}

/// The text of an outgoing frame ([`Output::Send`]): either encoded already
/// (a frame shared by several peers, or kept for re-sending), or a message
/// encoded when the text is first asked for. An engine that routes under a
/// lock takes the text after releasing it, so acks and pushes are encoded
/// (and signed, when the mesh has a [`MessageSigner`](crate::MessageSigner))
/// outside the lock.
#[derive(Clone)]
pub struct OutFrame(Arc<FrameText>);

struct FrameText {
    /// Taken (and dropped) when the text is made: a frame kept for
    /// re-sending holds its text only.
    msg: Mutex<Option<Message>>,
    /// Signs `msg` when its text is made.
    signer: Option<Arc<dyn auth::MessageSigner>>,
    text: OnceLock<Arc<str>>,
}

impl OutFrame {
    /// A message to encode when its text is first needed.
    pub fn later(msg: Message) -> OutFrame {
        OutFrame::later_signed(msg, None)
    }

    /// A message to sign with `signer` (if any) and encode when its text is
    /// first needed: a signature costs tens of microseconds, which the mesh's
    /// owner then spends after releasing its lock.
    pub fn later_signed(msg: Message, signer: Option<Arc<dyn auth::MessageSigner>>) -> OutFrame {
        OutFrame(Arc::new(FrameText {
            msg: Mutex::new(Some(msg)),
            signer,
            text: OnceLock::new(),
        }))
    }

    /// The frame's text (signing and encoding it now if it was not yet).
    pub fn text(&self) -> &Arc<str> {
        self.0.text.get_or_init(|| {
            let msg = self
                .0
                .msg
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match (msg, &self.0.signer) {
                (Some(m), None) => encode(&m),
                (Some(mut m), Some(signer)) => {
                    auth::sign(signer.as_ref(), &mut m);
                    encode(&m)
                }
                (None, _) => Arc::from(""),
            }
        })
    }
}

impl From<Arc<str>> for OutFrame {
    fn from(text: Arc<str>) -> OutFrame {
        OutFrame(Arc::new(FrameText {
            msg: Mutex::new(None),
            signer: None,
            text: OnceLock::from(text),
        }))
    }
}

impl std::ops::Deref for OutFrame {
    type Target = str;
    fn deref(&self) -> &str {
        self.text()
    }
}

impl std::fmt::Display for OutFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::fmt::Debug for OutFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self.text(), f)
    }
}

impl PartialEq for OutFrame {
    fn eq(&self, other: &OutFrame) -> bool {
        **self.text() == **other.text()
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
            decoder: Arc::new(Decoder::new(&cfg)),
            cfg,
            pid,
            rng,
            peers: BTreeMap::new(),
            full_peers: std::collections::BTreeSet::new(),
            urls: BTreeMap::new(),
            open: OpenGets::default(),
            holders: Holders::default(),
            subindex: SubIndex::default(),
            keepalive: OutFrame::from(Arc::<str>::from("[]")),
            subs_evicted: 0,
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

    /// Message ids in the dedup table now (seen `#`s still inside the dedup
    /// window, with their routes back), bounded by
    /// [`MeshConfig::dedup_max_entries`].
    pub fn dedup_len(&self) -> usize {
        self.dup.len()
    }

    /// Subscriptions dropped since start because a peer went past
    /// [`MeshConfig::max_subscriptions_per_peer`] (its oldest soul is forgotten: writes to
    /// it are no longer pushed to that peer until it asks again).
    pub fn subscriptions_evicted(&self) -> u64 {
        self.subs_evicted
    }

    /// Souls whose holders (client peers that wrote, answered or asked for
    /// them) are remembered for routing gets, bounded by
    /// [`MeshConfig::max_holder_souls`].
    pub fn holder_souls(&self) -> usize {
        self.holders.len()
    }

    /// (soul, peer) pairs in the subscription index that publishing a write
    /// consults (stale pairs included until the next sweep, every 30 s).
    pub fn indexed_subscriptions(&self) -> usize {
        self.subindex.len()
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

    pub(super) fn fresh_id(&mut self) -> String {
        gun_graph::ids::random_text(&mut self.rng, 9)
    }

    /// `><`: up to 7 of our peer ids, only when we have at least 2 peers (Gun.js).
    pub(super) fn seen_list(&self) -> Option<String> {
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

    pub(super) fn greeting(&mut self, dam: &str, reply_to: Option<String>) -> Message {
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

    /// A frame of a message that originates here, signed (when we have a
    /// signer) and encoded when its text is taken, after the owner's lock.
    pub(super) fn frame_later(&self, m: Message) -> OutFrame {
        OutFrame::later_signed(m, self.cfg.signer.clone())
    }

    pub(super) fn track_sent(&mut self, m: &Message, now: u64) {
        if let Some(id) = &m.id {
            // Refreshed if known, else tracked as seen (one lookup).
            self.dup.check_and_track(id, now);
        }
    }
}
