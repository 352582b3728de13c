//! A deterministic in-memory network for tests: [`MockNet`] connects [`Hub`]s
//! pairwise through [`Link`]s that queue frames, and delivers them one at a
//! time on [`MockNet::step`], optionally dropping, duplicating and reordering
//! them with a seeded random generator. Same seed, same hubs, same calls: same
//! run.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use gun_dam::mock::MockNet;
//! use gun_dam::{Direction, Hub, Link, PeerId};
//!
//! /// A hub that records what it hears.
//! #[derive(Default)]
//! struct Recorder(Mutex<Vec<String>>);
//! impl Hub for Recorder {
//!     fn attach(&self, link: Arc<dyn Link>, dir: Direction) -> PeerId {
//!         if dir == Direction::Incoming {
//!             let _ = link.send(Arc::from("{\"hello\":1}"));
//!         }
//!         PeerId(0)
//!     }
//!     fn receive(&self, _: PeerId, frame: &str) {
//!         self.0.lock().unwrap().push(frame.to_owned());
//!     }
//!     fn detach(&self, _: PeerId) {}
//! }
//!
//! let mut net = MockNet::new(7);
//! let a = Arc::new(Recorder::default());
//! let b = Arc::new(Recorder::default());
//! let ia = net.add_hub(a.clone());
//! let ib = net.add_hub(b.clone());
//! net.connect(ia, ib, "ws://b/gun"); // a dials b; b greets
//! net.run_until_idle(100);
//! assert_eq!(a.0.lock().unwrap().as_slice(), ["{\"hello\":1}"]);
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Direction, Hub, Link, LinkError, PeerId};

/// Fault probabilities, each in `[0, 1]`, applied per delivered frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// A frame is lost.
    pub drop: f64,
    /// A frame is delivered and also queued again (delivered twice).
    pub duplicate: f64,
    /// A random queued frame is delivered instead of the oldest one.
    pub reorder: f64,
}

/// What happened so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Frames handed to a hub.
    pub delivered: u64,
    /// Frames lost by [`Faults::drop`] (or sent on a closed connection).
    pub dropped: u64,
    /// Frames queued twice by [`Faults::duplicate`].
    pub duplicated: u64,
    /// Frames delivered out of order by [`Faults::reorder`].
    pub reordered: u64,
}

/// Index of a hub in a [`MockNet`].
pub type HubIndex = usize;

/// Index of a connection in a [`MockNet`].
pub type ConnId = usize;

#[derive(Debug)]
enum Event {
    Frame {
        conn: ConnId,
        to_side: usize,
        frame: Arc<str>,
    },
    Close {
        conn: ConnId,
    },
}

#[derive(Debug)]
struct Conn {
    hubs: [HubIndex; 2],
    peers: [Option<PeerId>; 2],
    open: bool,
}

#[derive(Debug)]
struct Inner {
    rng: StdRng,
    queue: VecDeque<Event>,
    conns: Vec<Conn>,
    faults: Faults,
    stats: Stats,
    capacity: Option<usize>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A test that panicked while holding the lock poisons it; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One side of a mock connection.
#[derive(Debug)]
pub struct MockLink {
    net: Arc<Mutex<Inner>>,
    conn: ConnId,
    side: usize,
}

impl Link for MockLink {
    fn send(&self, frame: Arc<str>) -> Result<(), LinkError> {
        let mut n = lock(&self.net);
        if !n.conns.get(self.conn).is_some_and(|c| c.open) {
            n.stats.dropped += 1;
            return Err(LinkError::Closed);
        }
        if n.capacity.is_some_and(|c| n.queue.len() >= c) {
            return Err(LinkError::Full);
        }
        n.queue.push_back(Event::Frame {
            conn: self.conn,
            to_side: 1 - self.side,
            frame,
        });
        Ok(())
    }

    fn close(&self, _reason: &str) {
        lock(&self.net)
            .queue
            .push_back(Event::Close { conn: self.conn });
    }
}

/// The in-memory network. See the [module docs](self).
pub struct MockNet {
    inner: Arc<Mutex<Inner>>,
    hubs: Vec<Arc<dyn Hub>>,
    clock: Arc<AtomicU64>,
}

impl std::fmt::Debug for MockNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockNet")
            .field("hubs", &self.hubs.len())
            .finish_non_exhaustive()
    }
}

impl MockNet {
    /// An empty network whose faults draw from a generator seeded with `seed`.
    pub fn new(seed: u64) -> MockNet {
        MockNet {
            inner: Arc::new(Mutex::new(Inner {
                rng: StdRng::seed_from_u64(seed),
                queue: VecDeque::new(),
                conns: Vec::new(),
                faults: Faults::default(),
                stats: Stats::default(),
                capacity: None,
            })),
            hubs: Vec::new(),
            clock: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A shared clock (milliseconds) that hubs may read; only [`MockNet::advance`]
    /// moves it.
    pub fn clock(&self) -> Arc<AtomicU64> {
        self.clock.clone()
    }

    /// The clock's current time.
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the fault probabilities for frames delivered from now on.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.inner).faults = faults;
    }

    /// Bounds the number of queued frames; a send beyond it fails with
    /// [`LinkError::Full`]. `None` (the default) is unbounded.
    pub fn set_capacity(&self, capacity: Option<usize>) {
        lock(&self.inner).capacity = capacity;
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        lock(&self.inner).stats
    }

    /// Number of queued events.
    pub fn queued(&self) -> usize {
        lock(&self.inner).queue.len()
    }

    /// Adds a hub; returns its index.
    pub fn add_hub(&mut self, hub: Arc<dyn Hub>) -> HubIndex {
        self.hubs.push(hub);
        self.hubs.len() - 1
    }

    /// `dialer` dials `acceptor` at `url`: the acceptor attaches an incoming
    /// connection first (so its greeting is queued first), then the dialer an
    /// outgoing one.
    pub fn connect(&mut self, dialer: HubIndex, acceptor: HubIndex, url: &str) -> ConnId {
        let conn = {
            let mut n = lock(&self.inner);
            n.conns.push(Conn {
                hubs: [dialer, acceptor],
                peers: [None, None],
                open: true,
            });
            n.conns.len() - 1
        };
        let link = |side| -> Arc<dyn Link> {
            Arc::new(MockLink {
                net: self.inner.clone(),
                conn,
                side,
            })
        };
        let pa = self.hubs[acceptor].attach(link(1), Direction::Incoming);
        lock(&self.inner).conns[conn].peers[1] = Some(pa);
        let pd = self.hubs[dialer].attach(
            link(0),
            Direction::Outgoing {
                url: url.to_owned(),
            },
        );
        lock(&self.inner).conns[conn].peers[0] = Some(pd);
        conn
    }

    /// The peer ids the dialer and the acceptor use for a connection.
    pub fn peer_ids(&self, conn: ConnId) -> (Option<PeerId>, Option<PeerId>) {
        let n = lock(&self.inner);
        n.conns
            .get(conn)
            .map_or((None, None), |c| (c.peers[0], c.peers[1]))
    }

    /// Closes a connection now: both hubs are detached; frames still queued on
    /// it are dropped.
    pub fn disconnect(&self, conn: ConnId) {
        let ends = {
            let mut n = lock(&self.inner);
            match n.conns.get_mut(conn) {
                Some(c) if c.open => {
                    c.open = false;
                    Some((c.hubs, c.peers))
                }
                _ => None,
            }
        };
        if let Some((hubs, peers)) = ends {
            for side in 0..2 {
                if let Some(p) = peers[side] {
                    self.hubs[hubs[side]].detach(p);
                }
            }
        }
    }

    /// Delivers one queued event (applying faults). Returns false when the
    /// queue was empty.
    pub fn step(&self) -> bool {
        let delivery = {
            let mut n = lock(&self.inner);
            if n.queue.is_empty() {
                return false;
            }
            let faults = n.faults;
            let len = n.queue.len();
            let idx = if len > 1
                && faults.reorder > 0.0
                && n.rng.random_bool(faults.reorder.clamp(0.0, 1.0))
            {
                n.stats.reordered += 1;
                n.rng.random_range(0..len)
            } else {
                0
            };
            match n.queue.remove(idx) {
                None => return true,
                Some(Event::Close { conn }) => {
                    drop(n);
                    self.disconnect(conn);
                    return true;
                }
                Some(Event::Frame {
                    conn,
                    to_side,
                    frame,
                }) => {
                    let Some(c) = n.conns.get(conn).filter(|c| c.open) else {
                        n.stats.dropped += 1;
                        return true;
                    };
                    let (hub, peer) = (c.hubs[to_side], c.peers[to_side]);
                    if faults.drop > 0.0 && n.rng.random_bool(faults.drop.clamp(0.0, 1.0)) {
                        n.stats.dropped += 1;
                        return true;
                    }
                    if faults.duplicate > 0.0 && n.rng.random_bool(faults.duplicate.clamp(0.0, 1.0))
                    {
                        n.stats.duplicated += 1;
                        n.queue.push_back(Event::Frame {
                            conn,
                            to_side,
                            frame: frame.clone(),
                        });
                    }
                    n.stats.delivered += 1;
                    peer.map(|p| (hub, p, frame))
                }
            }
        };
        if let Some((hub, peer, frame)) = delivery {
            self.hubs[hub].receive(peer, &frame);
        }
        true
    }

    /// Steps until the queue is empty or `max_steps` events were handled;
    /// returns the number handled.
    pub fn run_until_idle(&self, max_steps: usize) -> usize {
        let mut n = 0;
        while n < max_steps && self.step() {
            n += 1;
        }
        n
    }
}
