//! The relay's write limits, as validators run before SEA: a bound on the
//! keys of one put (`--max-put-keys`) and the policy of
//! `--allow-public-space false` (only souls that SEA checks may be written:
//! user space and content-addressed `#` souls). Each refusal is an `err` ack naming the limit,
//! is counted for `/metrics`, and is logged once per connection.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gun_dam::{Origin, PeerId, PutContext, Validator};

/// Connections remembered as already logged, per limit; past this the set
/// starts over (a connection may then be logged again).
const LOGGED_MAX: usize = 4_096;

/// The `err` text of a write to public space refused by
/// `--allow-public-space false`.
pub const PUBLIC_SPACE_REFUSED: &str = "Public space is read-only on this relay (--allow-public-space false): write to user space (~pub souls, signed with SEA) or content-addressed # souls.";

/// The `err` text of a put over `--max-put-keys` keys.
pub fn put_keys_refused(max: usize) -> String {
    format!("Put too large: more than {max} keys in one put (--max-put-keys).")
}

/// Connections a refusal was logged for.
#[derive(Default)]
struct LoggedOnce(Mutex<HashSet<PeerId>>);

impl LoggedOnce {
    /// Whether `peer` is seen here for the first time.
    fn first(&self, peer: PeerId) -> bool {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if set.len() >= LOGGED_MAX {
            set.clear();
        }
        set.insert(peer)
    }
}

/// Refuses a peer's put holding more than `max` keys (all souls together).
pub(super) struct PutKeysLimit {
    max: usize,
    text: String,
    refused: Arc<AtomicU64>,
    logged: LoggedOnce,
}

impl PutKeysLimit {
    pub(super) fn new(max: usize, refused: Arc<AtomicU64>) -> Self {
        PutKeysLimit {
            max,
            text: put_keys_refused(max),
            refused,
            logged: LoggedOnce::default(),
        }
    }
}

impl Validator for PutKeysLimit {
    fn check(&self, ctx: &PutContext<'_>) -> Result<(), String> {
        let Origin::Peer { peer, .. } = ctx.origin else {
            return Ok(());
        };
        let keys = ctx.graph.key_count();
        if keys <= self.max {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        if self.logged.first(*peer) {
            tracing::warn!(
                peer = peer.0,
                keys,
                max = self.max,
                "put over --max-put-keys refused (logged once per connection)"
            );
        }
        Err(self.text.clone())
    }
}

/// With `--allow-public-space false`: refuses a peer's write to any soul
/// that SEA does not check: only user space (a soul naming a public key,
/// `~pub…`, whose values must be signed by it), alias lists (`~@…`, which
/// must link to themselves) and content-addressed souls (holding `#`, whose
/// keys must be the hash of their values) are accepted.
pub(super) struct PrivateSpaceOnly {
    refused: Arc<AtomicU64>,
    logged: LoggedOnce,
}

impl PrivateSpaceOnly {
    pub(super) fn new(refused: Arc<AtomicU64>) -> Self {
        PrivateSpaceOnly {
            refused,
            logged: LoggedOnce::default(),
        }
    }
}

/// Whether SEA checks writes to `soul` (the rules of `gun_sea::SeaValidator`).
pub(super) fn is_signed_or_hashed(soul: &str) -> bool {
    soul.starts_with("~@") || soul.contains('#') || gun_sea::pub_of_soul(soul).is_some()
}

impl Validator for PrivateSpaceOnly {
    fn check(&self, ctx: &PutContext<'_>) -> Result<(), String> {
        let Origin::Peer { peer, .. } = ctx.origin else {
            return Ok(());
        };
        let Some(soul) = ctx.graph.souls().find(|s| !is_signed_or_hashed(s.as_str())) else {
            return Ok(());
        };
        self.refused.fetch_add(1, Ordering::Relaxed);
        if self.logged.first(*peer) {
            tracing::warn!(
                peer = peer.0,
                soul = soul.as_str(),
                "write to public space refused (--allow-public-space false; logged once per connection)"
            );
        }
        Err(PUBLIC_SPACE_REFUSED.to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gun_graph::{Graph, Soul, State, Value};

    fn graph(souls: &[&str], keys: usize) -> Graph {
        let mut g = Graph::new();
        for s in souls {
            for k in 0..keys {
                g.put(
                    Soul::new(*s).unwrap(),
                    format!("k{k}"),
                    State::new(1.0).unwrap(),
                    Value::Number(1.0),
                )
                .unwrap();
            }
        }
        g
    }

    fn check(v: &dyn Validator, g: &Graph, origin: &Origin) -> Result<(), String> {
        v.check(&PutContext {
            graph: g,
            origin,
            message: None,
        })
    }

    #[test]
    fn limits_apply_to_peers_writes_only() {
        let peer = Origin::Peer {
            peer: PeerId(1),
            id: "x".into(),
        };
        let n = Arc::new(AtomicU64::new(0));
        let keys = PutKeysLimit::new(3, n.clone());
        assert!(check(&keys, &graph(&["a"], 3), &peer).is_ok());
        assert_eq!(
            check(&keys, &graph(&["a", "b"], 2), &peer),
            Err(put_keys_refused(3))
        );
        assert!(check(&keys, &graph(&["a", "b"], 2), &Origin::Local).is_ok());
        assert_eq!(n.load(Ordering::Relaxed), 1);

        let p = Arc::new(AtomicU64::new(0));
        let policy = PrivateSpaceOnly::new(p.clone());
        assert!(
            check(
                &policy,
                &graph(&["~abc.def", "~abc.def/posts", "#", "chat#", "~@alice"], 1),
                &peer
            )
            .is_ok()
        );
        for public in ["chat", "~", "~foo"] {
            assert!(
                check(&policy, &graph(&[public], 1), &peer).is_err(),
                "{public}"
            );
        }
        assert_eq!(
            check(&policy, &graph(&["~abc.def", "chat"], 1), &peer),
            Err(PUBLIC_SPACE_REFUSED.to_owned())
        );
        assert!(check(&policy, &graph(&["chat"], 1), &Origin::Local).is_ok());
        assert_eq!(p.load(Ordering::Relaxed), 4);
    }
}
