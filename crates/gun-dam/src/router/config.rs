//! [`MeshConfig`]: the numbers that bound the mesh's memory, its role, and the
//! hooks (signer, verifier, predicates) it runs on every message.

use std::fmt;
use std::sync::Arc;

use crate::auth::{AuthPolicy, Hook, MessagePredicate, MessageSigner, MessageVerifier};
use crate::dedup::{DEDUP_MAX_ENTRIES, DEDUP_TTL_MS};
use crate::frame::Limits;

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
/// Default time a get stays open for peers that connect after it arrived:
/// 9 s, as long as its route back to the asker lives in the dedup table
/// ([`DEDUP_TTL_MS`]) and as Gun.js waits for acks (`opt.lack`). A Gun.js
/// peer retries its connection every ~2 s (more under load), so a holder
/// reconnecting after a relay restart often comes back more than 3 s after
/// the asker did. Each open get asks a bounded number of peers
/// ([`MAX_GET_ASKS`]), so the time costs no frames.
pub const OPEN_GET_MS: u64 = 9_000;
/// Default bound on open gets in total (oldest dropped first).
pub const MAX_OPEN_GETS: usize = 1_000;
/// Default bound on open gets per asking peer (its oldest dropped first).
pub const MAX_OPEN_GETS_PER_PEER: usize = 100;
/// How many of our peer ids go into `><` (as Gun.js).
pub const SEEN_MAX: usize = 7;
/// Default number of client peers a get is forwarded to at a time (AXE asks 3).
pub const GET_FANOUT: usize = 3;
/// Default bound on the client peers one forwarded get asks in all (at once,
/// after a "not found", and peers that connect while it is open).
pub const MAX_GET_ASKS: usize = 6;
/// Default bound on the souls whose holders are remembered for routing gets.
pub const MAX_HOLDER_SOULS: usize = 100_000;
/// Default bound on the open gets forwarded to one newly connected client peer.
pub const OPEN_GETS_PER_CONNECT: usize = 16;

/// What kind of peer this mesh is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A relay/server: sends `[]` keep-alives, never says `hi`.
    Relay,
    /// A client: greets outgoing connections with `dam:"hi"`, no keep-alives.
    Client,
}

/// Configuration of a [`Mesh`](crate::Mesh). [`MeshConfig::default`] is a relay.
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
    /// Bound on the bytes of un-acked puts per outgoing URL: what each holds
    /// at most, its write until its text is made (after the engine's lock,
    /// when first sent) or its text's length, whichever is more (estimated
    /// from its keys and values). Default [`MAX_PENDING_BYTES`].
    pub max_pending_bytes: usize,
    /// Un-acked puts older than this are not re-sent. Default [`PENDING_PUT_MAX_AGE_MS`].
    pub pending_put_max_age_ms: u64,
    /// How long a get from a peer that no data answered yet stays open: a
    /// peer connecting meanwhile is asked too. 0 disables. Default [`OPEN_GET_MS`].
    pub open_get_ms: u64,
    /// Bound on open gets in total. Default [`MAX_OPEN_GETS`].
    pub max_open_gets: usize,
    /// Bound on open gets per asking peer. Default [`MAX_OPEN_GETS_PER_PEER`].
    pub max_open_gets_per_peer: usize,
    /// How many client peers (not full peers) a get from a peer is forwarded
    /// to at a time: its soul's holders first, then others picked at random.
    /// Default [`GET_FANOUT`].
    pub get_fanout: usize,
    /// Bound on the client peers one forwarded get asks in all. Default
    /// [`MAX_GET_ASKS`].
    pub max_get_asks: usize,
    /// Bound on the souls whose holders are remembered. Default [`MAX_HOLDER_SOULS`].
    pub max_holder_souls: usize,
    /// Bound on the open gets forwarded to one newly connected client peer
    /// (the youngest first). Default [`OPEN_GETS_PER_CONNECT`].
    pub open_gets_per_connect: usize,
    /// Seed of the random ids (message ids, pid); `None` seeds from the OS.
    /// Set it for reproducible tests.
    pub rng_seed: Option<u64>,
    /// Signs the messages that originate here ([`auth`](crate::auth)).
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
            .field("open_get_ms", &self.open_get_ms)
            .field("max_open_gets", &self.max_open_gets)
            .field("max_open_gets_per_peer", &self.max_open_gets_per_peer)
            .field("get_fanout", &self.get_fanout)
            .field("max_get_asks", &self.max_get_asks)
            .field("max_holder_souls", &self.max_holder_souls)
            .field("open_gets_per_connect", &self.open_gets_per_connect)
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
            && self.open_get_ms == o.open_get_ms
            && self.max_open_gets == o.max_open_gets
            && self.max_open_gets_per_peer == o.max_open_gets_per_peer
            && self.get_fanout == o.get_fanout
            && self.max_get_asks == o.max_get_asks
            && self.max_holder_souls == o.max_holder_souls
            && self.open_gets_per_connect == o.open_gets_per_connect
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
            open_get_ms: OPEN_GET_MS,
            max_open_gets: MAX_OPEN_GETS,
            max_open_gets_per_peer: MAX_OPEN_GETS_PER_PEER,
            get_fanout: GET_FANOUT,
            max_get_asks: MAX_GET_ASKS,
            max_holder_souls: MAX_HOLDER_SOULS,
            open_gets_per_connect: OPEN_GETS_PER_CONNECT,
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
