//! Decoding a frame apart from routing it: parsing, the signature check and
//! the predicates need no routing state, so a transport's task (or the
//! engine, before it takes its lock) runs them with a [`Decoder`], and only
//! the routing decisions ([`Mesh::receive_decoded`]) need the [`Mesh`].
//!
//! [`Mesh::receive`] is `receive_decoded` of a frame decoded with the mesh's
//! own decoder, with the signature check left to routing (after dedup), so
//! both paths apply the same rules:
//!
//! 1. [`Decoder::decode`]: parse the frame within [`Limits`];
//! 2. (optional) [`Mesh::drop_seen`]: drop messages whose `#` was seen
//!    already, so that a duplicate is not verified again (one short look at
//!    the dedup table; worth it when a verifier runs, see
//!    [`Decoded::wants_verify`]);
//! 3. [`Decoder::admit`]: the signature check and the predicates, for each
//!    message not yet admitted; refused ones are dropped with a tracing event;
//! 4. [`Mesh::receive_decoded`]: dedup and routing.

use std::sync::Arc;

use super::Mesh;
use crate::auth::{self, AuthPolicy, MessagePredicate, MessageVerifier, Verdict};
use crate::frame::{Limits, parse_frame_with};
use crate::message::Message;
use crate::peer::PeerId;
use crate::{Error, MeshConfig};

/// What decodes frames for a mesh, without the mesh: its limits, signature
/// policy, verifier and predicates (cheap to share between tasks).
///
/// A frame goes [`Decoder::decode`] (parse), then optionally
/// [`Mesh::drop_seen`] (drop duplicates before verifying them, when
/// [`Decoded::wants_verify`]), [`Decoder::admit`] (signatures and
/// predicates), and [`Mesh::receive_decoded`] (dedup and routing, under the
/// caller's lock). [`Mesh::receive`] does the same in one call.
pub struct Decoder {
    limits: Limits,
    policy: AuthPolicy,
    verifier: Option<Arc<dyn MessageVerifier>>,
    predicates: Vec<Arc<dyn MessagePredicate>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("limits", &self.limits)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Whether a decoded message passed the signature check and predicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Not checked yet: routing checks it (after dedup).
    Unchecked,
    /// Checked and admitted (or a `dam` message, which is not checked).
    Admitted,
}

/// A decoded frame: its messages (or the errors parsing them), each with
/// whether it was admitted yet.
#[derive(Debug)]
pub struct Decoded {
    pub(super) items: Vec<(Result<Message, Error>, Admission)>,
}

impl Decoded {
    /// Whether some message still needs a signature verified (a verifier is
    /// configured, the policy checks, and the message is signed): then
    /// dropping duplicates first ([`Mesh::drop_seen`]) saves verifying them.
    pub fn wants_verify(&self, decoder: &Decoder) -> bool {
        decoder.policy != AuthPolicy::Off
            && self.items.iter().any(|(r, a)| {
                *a == Admission::Unchecked
                    && r.as_ref()
                        .is_ok_and(|m| m.dam.is_none() && m.extra.contains_key(auth::SIG_FIELD))
            })
    }
}

impl Decoder {
    /// The decoder for a mesh configuration.
    pub fn new(cfg: &MeshConfig) -> Decoder {
        Decoder {
            limits: cfg.limits,
            policy: cfg.auth_policy,
            verifier: cfg.verifier.clone(),
            predicates: cfg.predicates.clone(),
        }
    }

    /// Parses a frame (bounded by the limits); nothing is admitted yet.
    pub fn decode(&self, frame: &str) -> Decoded {
        Decoded {
            items: parse_frame_with(frame, &self.limits)
                .into_iter()
                .map(|r| (r, Admission::Unchecked))
                .collect(),
        }
    }

    /// The signature check and predicates for every message of `d` not yet
    /// admitted; refused messages are dropped (a warn event for a bad
    /// signature, a debug event otherwise). Messages without `#` are left to
    /// routing (it gives them one first).
    pub fn admit(&self, from: PeerId, d: &mut Decoded) {
        d.items.retain_mut(|(r, a)| {
            let Ok(m) = r else { return true };
            if *a == Admission::Admitted || m.id.is_none() {
                return true;
            }
            if m.dam.is_some() || self.allows(from, m) {
                *a = Admission::Admitted;
                return true;
            }
            false
        });
    }

    /// The signature check ([`AuthPolicy`]) and the predicates, for an
    /// incoming non-`dam` message: whether it may go on.
    pub(super) fn allows(&self, from: PeerId, m: &Message) -> bool {
        match auth::check(self.policy, self.verifier.as_deref(), m) {
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
        for (i, p) in self.predicates.iter().enumerate() {
            if !p.allow(from, m) {
                tracing::debug!(peer = from.0, id = ?m.id, predicate = i, "message dropped by a predicate");
                return false;
            }
        }
        true
    }
}

impl Mesh {
    /// The decoder for this mesh's configuration, to decode frames without
    /// the mesh (see [`Decoder`]).
    pub fn decoder(&self) -> Arc<Decoder> {
        self.decoder.clone()
    }

    /// Drops the messages of `d` not yet admitted whose `#` was seen already
    /// (a duplicate; its entry is refreshed, as routing would), so that they
    /// are not verified again.
    pub fn drop_seen(&mut self, d: &mut Decoded, now: u64) {
        let dup = &mut self.dup;
        d.items.retain(|(r, a)| {
            let Ok(m) = r else { return true };
            if *a == Admission::Admitted || m.dam.is_some() {
                return true;
            }
            match &m.id {
                Some(id) if dup.contains(id, now) => {
                    dup.refresh(id, now);
                    tracing::trace!(id, "duplicate message dropped");
                    false
                }
                _ => true,
            }
        });
    }
}
