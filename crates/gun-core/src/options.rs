use std::sync::Arc;
use std::time::Duration;

use gun_dam::MeshConfig;
use gun_store::Store;

/// Engine settings. Every number that bounds memory or waiting is here, with its
/// default documented.
#[derive(Clone)]
pub struct EngineOptions {
    /// The store. Required: the facade `gun` picks one (memory by default).
    pub store: Arc<dyn Store>,
    /// Mesh settings (peer id, dedup size and window, frame limits).
    pub mesh: MeshConfig,
    /// How long `once` waits for peers when the data is not local, at most.
    /// Default 3 s. (Gun.js: 99 ms after the last reply, or for ever.)
    pub wait: Duration,
    /// After every asked peer answered "not found", how long `once` still waits
    /// for late data forwarded from further away. Default 250 ms.
    pub grace: Duration,
    /// A node read from peers returns once their answers have been quiet this
    /// long (a node can come in several answers: a Gun.js relay answers from
    /// memory and from radisk, a gun-rs relay splits large nodes). Gun.js's
    /// `once` waits 99 ms the same way. Default 50 ms.
    pub settle: Duration,
    /// Answers to one get are split into messages of at most this many keys.
    /// Default 2,000.
    pub reply_chunk_keys: usize,
    /// How many souls the engine keeps in its cache; older ones are dropped and
    /// read again from the store when needed (souls with local listeners stay).
    /// Default 20,000.
    pub cache_souls: usize,
    /// How many messages of one peer (puts, gets, replies with data) the
    /// engine works on at once; past it, [`Hub::ready`](gun_dam::Hub::ready)
    /// makes the peer's transport stop reading until some finish, so a peer
    /// that floods is slowed down by TCP instead of growing tasks and memory.
    /// Default [`MAX_IN_FLIGHT_PER_PEER`].
    pub max_in_flight_per_peer: usize,
    /// How many keys with a state ahead of the clock may wait to be applied
    /// (they are applied, and their put acked, when due). A put that would
    /// pass it is refused with [`Error::TooManyDeferred`](crate::Error::TooManyDeferred):
    /// without a bound, a peer writing states years ahead grows memory for
    /// ever (Gun.js keeps a timer for each). Default 100,000 (each a key, its
    /// value and its route: tens of MB at most).
    pub max_deferred_keys: usize,
}

/// Default of [`EngineOptions::max_in_flight_per_peer`]: 1024. Enough for one
/// fast writer to keep the store's group commit full on its own (at 256 a
/// single connection with 1024 puts outstanding got 16 % fewer acks/s, at
/// more CPU a put, from the smaller groups); a peer's work in flight is then
/// at most 1024 parsed messages (a few MB of 10-field puts), and the relay's
/// per-connection message rate limit applies before it.
pub const MAX_IN_FLIGHT_PER_PEER: usize = 1024;

/// Default of [`EngineOptions::max_deferred_keys`]: 100,000 keys waiting for
/// their future state (each a key, its value and its route: tens of MB at most).
pub const MAX_DEFERRED_KEYS: usize = 100_000;

impl EngineOptions {
    /// Defaults around the given store.
    pub fn new(store: Arc<dyn Store>) -> EngineOptions {
        EngineOptions {
            store,
            mesh: MeshConfig::default(),
            wait: Duration::from_secs(3),
            grace: Duration::from_millis(250),
            settle: Duration::from_millis(50),
            reply_chunk_keys: 2_000,
            cache_souls: 20_000,
            max_in_flight_per_peer: MAX_IN_FLIGHT_PER_PEER,
            max_deferred_keys: MAX_DEFERRED_KEYS,
        }
    }
}
