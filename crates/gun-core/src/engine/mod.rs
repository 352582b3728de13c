//! The engine: graph cache + store + mesh + validators + local events.
//!
//! The path of one put (ARCHITECTURE.md at the repository root, "The path of
//! one put, socket to disk and back"):
//!
//! 1. a transport hands a frame to [`Engine`] through [`Hub::receive`]
//!    (`dispatch.rs`);
//! 2. the mesh (gun-dam) parses, deduplicates and routes it, and says what it
//!    is: a [`gun_dam::Output::Put`] or `Get` from a peer, a `Reply` or `Ack`
//!    to one of ours, a `Relayed` reply to store; `dispatch.rs` hands each to
//!    the code for it;
//! 3. (`puts.rs`) validators run; keys whose state is ahead of the clock are
//!    set aside (deferred); the rest is written to the store, which merges
//!    it through HAM against what is stored and answers what it applied (no
//!    read before the write, no preview: the store is the authority);
//! 4. only once the store says it is durable is its answer merged into the
//!    cache (`cache.rs`: one HAM pass per key, so a late answer never replaces
//!    a newer cached value) and the write acked — a failed write answers
//!    `err` and leaves nothing half-applied;
//! 5. local subscribers are told once per accepted change, and the mesh pushes
//!    the diff to the peers that need it.
//!
//! Writes whose state is ahead of the clock are deferred and applied when due,
//! then acked (Gun.js never acks them).
//!
//! Gets (`reads.rs`) are answered from the cache, else the store, and reads of
//! this process ask peers and wait for their replies (`asks.rs`: the waiters
//! for answers to our own messages). `listen.rs` holds local subscriptions,
//! `timers.rs` the deferred writes and the mesh's clock, `stats.rs` the
//! counters.

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gun_dam::{Decoder, Link, Mesh, PeerId, Validator};
use gun_graph::{Graph, Node, Soul, State, StateClock};
use gun_store::Store;
use tokio::sync::Notify;

use crate::{EngineOptions, Error};

mod asks;
mod cache;
mod dispatch;
mod external;
mod listen;
#[cfg(feature = "lock-timing")]
mod lock_timing;
mod outbox;
mod puts;
mod reads;
mod stats;
mod timers;

pub use asks::{Replies, Reply};
pub use listen::Change;
pub use puts::{PutAck, PutOptions};
pub use stats::{HistogramSnapshot, LATENCY_BUCKETS, LatencyHistogram, MAX_REJECT_REASONS, Stats};

use asks::Waiter;
use listen::Listener;
use timers::Due;

/// Milliseconds since the Unix epoch, as a JavaScript `+new Date` would give.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .map(f64::floor)
        .unwrap_or(0.0)
}

/// Milliseconds since the Unix epoch with their fraction: what a state is
/// compared with to tell whether it is ahead of the clock. (Gun.js's states
/// carry fractions within a millisecond; against the whole millisecond, a
/// Gun.js write stamped early in it would wait for the next one.)
pub(crate) fn now_precise_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// A map by peer id. The ids are this engine's own counter, never chosen by a
/// peer, so they need no keyed hash (SipHash was ~150 instructions a lookup,
/// two or three lookups a put): the id spread by one multiply.
type PeerMap<V> = HashMap<PeerId, V, std::hash::BuildHasherDefault<PeerHasher>>;

/// See [`PeerMap`].
#[derive(Default)]
struct PeerHasher(u64);

impl std::hash::Hasher for PeerHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `PeerId` (a `u64`); correct for any key all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

fn now_u64() -> u64 {
    now_ms() as u64
}

struct Shared {
    graph: cache::Cache,
    mesh: Mesh,
    links: PeerMap<Arc<dyn Link>>,
    listeners: HashMap<Soul, Vec<Listener>>,
    next_id: u64,
    /// Waiters for answers to our own messages, by the `#` they answer.
    asks: HashMap<String, Waiter>,
    deferred: BinaryHeap<std::cmp::Reverse<Due>>,
    /// Deferred keys still pending per incoming put id, to ack when all
    /// applied: how many are left, and the first error among those applied.
    deferred_pending: HashMap<String, (usize, Option<String>)>,
    /// Whether local writes concern the mesh at all: a peer is attached, or an
    /// outgoing URL is known (writes made before it connects are sent then).
    remote: bool,
    /// Souls being loaded from the store into the cache (`cache.rs`): the
    /// number of loads in flight, and what writes applied to the soul while
    /// it loaded, ours or other writers' of a shared store (`external.rs`),
    /// merged into the loaded node before it enters the cache.
    loading: HashMap<Soul, cache::Loading>,
    /// Souls in the order they entered the cache, for eviction.
    cache_order: VecDeque<Soul>,
    /// Souls with incoming writes still in progress (count per soul).
    writing: HashMap<Soul, usize>,
    /// Souls whose whole node peers answered a read of: a read of the node
    /// is answered here since (they push its changes).
    whole: HashSet<Soul>,
    /// Local writes no peer acked yet, by message id (`outbox.rs`).
    outbox: HashMap<String, outbox::Entry>,
    /// Outbox entries of an earlier run, waiting for a peer or URL.
    restored: Vec<(String, Graph)>,
    /// Keys learned from get replies and not pushed to subscribers (`reads.rs`).
    read_not_pushed: reads::ReadNotPushed,
    /// Gaps in the store's change feed so far (`external.rs`).
    gaps: u64,
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
    /// Decodes incoming frames outside `shared` (the mesh's decoder).
    decoder: Arc<Decoder>,
    /// Per peer, the messages it may have in progress here
    /// ([`EngineOptions::max_in_flight_per_peer`], `dispatch.rs`).
    in_flight: Mutex<PeerMap<Arc<tokio::sync::Semaphore>>>,
    /// The state generator, apart from `shared`: a write asks it for the
    /// machine state without taking the engine's lock.
    clock: Mutex<StateClock>,
    validators: RwLock<Vec<Arc<dyn Validator>>>,
    deferred_wake: Notify,
    write_done: Notify,
    /// Signalled when the outbox shrinks, or was loaded from the store.
    outbox_changed: Notify,
    /// Signalled when a peer attaches (reads waiting for a connection).
    attached: Notify,
    /// Whether the store's outbox was read (see `outbox.rs`).
    outbox_loaded: AtomicBool,
    closed: AtomicBool,
    stats: Stats,
    started: std::time::Instant,
    #[cfg(feature = "lock-timing")]
    lock_hold: lock_timing::Histogram,
}

#[cfg(not(feature = "lock-timing"))]
type Guard<'a> = MutexGuard<'a, Shared>;
#[cfg(feature = "lock-timing")]
type Guard<'a> = lock_timing::Timed<'a, MutexGuard<'a, Shared>>;

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
        let decoder = mesh.decoder();
        let inner = Arc::new(Inner {
            interner: Interner {
                set: Mutex::new(HashSet::new()),
            },
            store: opts.store.clone(),
            opts,
            decoder,
            in_flight: Mutex::new(PeerMap::default()),
            clock: Mutex::new(StateClock::new()),
            shared: Mutex::new(Shared {
                graph: cache::Cache::default(),
                mesh,
                links: PeerMap::default(),
                listeners: HashMap::new(),
                next_id: 1,
                asks: HashMap::new(),
                deferred: BinaryHeap::new(),
                deferred_pending: HashMap::new(),
                remote: false,
                loading: HashMap::new(),
                cache_order: VecDeque::new(),
                writing: HashMap::new(),
                whole: HashSet::new(),
                outbox: HashMap::new(),
                restored: Vec::new(),
                read_not_pushed: reads::ReadNotPushed::default(),
                gaps: 0,
            }),
            validators: RwLock::new(Vec::new()),
            deferred_wake: Notify::new(),
            write_done: Notify::new(),
            outbox_changed: Notify::new(),
            outbox_loaded: AtomicBool::new(false),
            attached: Notify::new(),
            closed: AtomicBool::new(false),
            stats: Stats::default(),
            started: std::time::Instant::now(),
            #[cfg(feature = "lock-timing")]
            lock_hold: lock_timing::Histogram::default(),
        });
        let engine = Engine { inner };
        engine.spawn_timers();
        engine.follow_store_changes();
        let me = engine.clone();
        tokio::spawn(async move { me.load_outbox().await });
        engine
    }

    fn lock(&self) -> Guard<'_> {
        // A panic while holding the lock leaves the data consistent enough to go on
        // (every critical section is short and does not unwind half-way through a
        // merge), so a poisoned lock is taken over rather than propagated.
        let g = self
            .inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        #[cfg(feature = "lock-timing")]
        let g = lock_timing::Timed::new(g, &self.inner.lock_hold);
        g
    }

    /// How long the engine's lock was held, each time it was taken: `(upper
    /// bound in nanoseconds, count)` per power-of-two bucket (feature
    /// `lock-timing`).
    #[cfg(feature = "lock-timing")]
    pub fn lock_hold_times(&self) -> Vec<(u64, u64)> {
        self.inner.lock_hold.snapshot()
    }

    /// The total time the engine's lock was held, in nanoseconds (feature
    /// `lock-timing`).
    #[cfg(feature = "lock-timing")]
    pub fn lock_hold_total_ns(&self) -> u64 {
        self.inner.lock_hold.total_ns()
    }

    /// What a write's states are compared with: a later state is ahead of
    /// the clock and waits until due. The wall clock with its fraction of a
    /// millisecond (Gun.js's states carry fractions; against the whole
    /// millisecond, a key stamped earlier in it would wait for the next one),
    /// and never below the last state we stamped (our own writes are never
    /// ahead). Reading it does not advance the state generator: incoming
    /// writes must not push our own stamps ahead of other peers' clocks (a
    /// Gun.js peer defers a key stamped ahead of its clock, and then does not
    /// ack its put).
    fn machine_state(&self) -> State {
        let precise = now_precise_ms();
        let last = self
            .inner
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last();
        match last {
            Some(l) if l.as_f64() >= precise => l,
            _ => State::new(precise).unwrap_or(State::MIN),
        }
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

    /// Entries in the mesh's dedup table (message ids seen recently).
    pub fn dedup_entries(&self) -> usize {
        self.lock().mesh.dedup_len()
    }

    /// Subscriptions the mesh dropped since start because a peer went past its
    /// subscription bound (see [`gun_dam::Mesh::subscriptions_evicted`]).
    pub fn subscriptions_evicted(&self) -> u64 {
        self.lock().mesh.subscriptions_evicted()
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
        let outs = {
            let mut sh = self.lock();
            sh.mesh.add_url(url);
            sh.remote = true;
            self.publish_restored(&mut sh)
        };
        self.execute(outs);
    }

    /// The shared text of a key (see the interner in this module).
    pub(crate) fn intern(&self, key: &str) -> Arc<str> {
        self.inner.interner.get(key)
    }

    /// The next state from this engine's state generator: what a write of
    /// ours is stamped with, as Gun.js's `State()` stamps (the millisecond,
    /// plus n/999 for the n-th of our writes within it).
    pub fn next_state(&self) -> State {
        self.inner
            .clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next(now_ms())
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

    /// Flushes the store and stops timers. Peers stay attached until their
    /// transports close.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.deferred_wake.notify_one();
        self.inner.store.flush().await?;
        Ok(())
    }
}
