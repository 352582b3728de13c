//! The routing table's entries: what a remembered message id means (where its
//! answers go), and the signature a relayed write keeps.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use gun_graph::Graph;
use serde_json::Value;

use super::subs::SubTarget;
use crate::auth;
use crate::message::Message;
use crate::peer::PeerId;

/// What a remembered message id means for routing.
#[derive(Debug, Clone, Default)]
pub(super) enum Track {
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
        /// Shared by all the pushes of one write (one allocation, not one per subscriber).
        original: Arc<str>,
    },
}

/// The [`SIG_FIELD`](auth::SIG_FIELD) and [`CERT_FIELD`](auth::CERT_FIELD) of a
/// received put, and a digest of its put, so that relaying the same write
/// keeps its signature (see [`auth`]).
#[derive(Debug)]
pub(super) struct SignedPut {
    pub(super) put: u64,
    pub(super) fields: Vec<(String, Value)>,
}

impl SignedPut {
    pub(super) fn of(m: &Message) -> Option<Arc<SignedPut>> {
        let put = m.put.as_ref()?;
        // An unsigned write (the usual one) has no extension field at all.
        if m.extra.is_empty() {
            return None;
        }
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
pub(super) fn put_digest(g: &Graph) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    gun_graph::hash::sorted_text(g).hash(&mut h);
    h.finish()
}
