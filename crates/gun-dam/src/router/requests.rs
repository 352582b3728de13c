//! The engine's own traffic: requests (gets, writes, anything else), answers
//! to messages received, replies to a peer's request, and the passing of time.

use super::track::Track;
use super::{Mesh, Output, Role, answer_key};
use crate::message::Message;
use crate::peer::PeerId;

impl Mesh {
    /// Sends the engine's own request to peers and tracks it as ours: replies
    /// and acks come back as [`Output::Reply`] and [`Output::Ack`]. Returns its `#` (the message's
    /// own when set, else a fresh one).
    ///
    /// A get goes to every full peer and to at most
    /// [`MeshConfig::get_fanout`](crate::MeshConfig::get_fanout) client peers
    /// (the soul's holders first, then others at random), and is remembered
    /// for every outgoing URL (re-sent on reconnect). A write (a `put` without `@`) is published as
    /// [`Mesh::publish`] does for a local write, keeping the message's other
    /// fields on the full-peer copy. Anything else goes to every peer as is.
    pub fn request(&mut self, mut msg: Message, now: u64) -> (String, Vec<Output>) {
        let id = self.own_id(&mut msg, now);
        if let Some(get) = msg.get.clone() {
            let max = self.cfg.max_resend_gets;
            for (url, st) in self.urls.iter_mut() {
                st.remember_get(url, &get, max);
            }
            msg.seen = self.seen_list();
            // Full peers, and a few client peers (holders first), as a
            // forwarded get: a relay's own read never asks every browser.
            let n = self.cfg.get_fanout;
            let clients = self.pick_clients(None, &get, None, n, &[]);
            // Signed and encoded when its text is taken (after the owner's
            // lock); the resend list keeps the get, not this text.
            let frame = self.frame_later(msg);
            let out = self
                .peers
                .iter()
                .filter(|(to, p)| p.full() || clients.contains(to))
                .map(|(to, _)| Output::Send {
                    to: *to,
                    frame: frame.clone(),
                })
                .collect();
            return (id, out);
        }
        if msg.reply_to.is_none() {
            if let Some(put) = msg.put.take() {
                let mut out = Vec::new();
                self.publish_inner(&put, &id, None, None, Some(&msg), now, &mut out);
                return (id, out);
            }
            msg.seen = self.seen_list();
        }
        (id, self.to_every_peer(msg))
    }

    /// Gives a message of ours its `#` (its own when set, else a fresh one)
    /// and tracks it as ours: answers to it are delivered to the engine.
    fn own_id(&mut self, msg: &mut Message, now: u64) -> String {
        let id = match &msg.id {
            Some(id) => id.clone(),
            None => self.fresh_id(),
        };
        msg.id = Some(id.clone());
        self.dup.insert(&id, Track::Local, now);
        id
    }

    /// One frame of `msg` (ours: signed, when we have a signer, and encoded
    /// when its text is taken), sent to every connected peer.
    fn to_every_peer(&self, msg: Message) -> Vec<Output> {
        let frame = self.frame_later(msg);
        self.peers
            .keys()
            .map(|to| Output::Send {
                to: *to,
                frame: frame.clone(),
            })
            .collect()
    }

    /// Sends a message that answers one we received (`msg.reply_to` set) back
    /// the way that message came, and tracks the answer's own `#` (fresh when
    /// unset) as ours, so that replies to it are delivered to the engine. This
    /// is how WebRTC signalling talks (§11.3): an offer answers the announcing
    /// write, and the answer and candidates answer the offer. Returns the `#`
    /// and nothing to send when the route is unknown or expired (debug event).
    pub fn answer(&mut self, mut msg: Message, now: u64) -> (String, Vec<Output>) {
        let id = self.own_id(&mut msg, now);
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
        // Signed and encoded after the owner's lock.
        (
            id,
            vec![Output::Send {
                to,
                frame: self.frame_later(msg),
            }],
        )
    }

    /// Sends the engine's own request to one peer only (a subscription re-sent
    /// on a new direct link, as Gun.js re-sends its live gets on `hi`);
    /// replies come back as [`Output::Reply`] and [`Output::Ack`]. Returns its `#`.
    pub fn request_to(&mut self, to: PeerId, mut msg: Message, now: u64) -> (String, Vec<Output>) {
        let id = self.own_id(&mut msg, now);
        if !self.peers.contains_key(&to) {
            return (id, Vec::new());
        }
        (
            id,
            vec![Output::Send {
                to,
                frame: self.frame_later(msg),
            }],
        )
    }

    /// Sends an answer (a get reply, a not-found, an ack) to the connection the
    /// request came from. Assigns a `#` when the message has none.
    ///
    /// A get reply with data gets its `##` ([`gun_graph::hash::graph_hash`] of
    /// its `put`, as Gun.js computes it) when it has none, and is not sent
    /// when the same `@`+`##` was seen: the get came with that `##` (the asker
    /// holds the same data), or the same answer already went through here. A
    /// "not found" is not sent for a get that came with a `##` or that data
    /// answered already.
    pub fn reply(&mut self, to: PeerId, msg: Message, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.reply_into(to, msg, now, &mut out);
        out
    }

    /// [`Mesh::reply`], appending to `out` (no vector of its own per answer).
    pub fn reply_into(&mut self, to: PeerId, mut msg: Message, now: u64, out: &mut Vec<Output>) {
        let fresh = msg.id.is_none();
        if fresh {
            msg.id = Some(self.fresh_id());
        }
        // Taken out while the message is read (no copy), put back below.
        if let Some(at) = msg.reply_to.take() {
            let data = msg.put.as_ref().is_some_and(|g| !g.is_empty());
            if data {
                let h = *msg
                    .hash
                    .get_or_insert_with(|| msg.put.as_ref().map_or(0, gun_graph::hash::graph_hash));
                if self.dup.check_and_track(&answer_key(&at, Some(h)), now) {
                    tracing::trace!(at, h, "answer with a ## already seen not sent");
                    self.open.close(&at);
                    return;
                }
                self.dup.check_and_track(&answer_key(&at, None), now);
            } else if msg.put.is_none()
                && msg.ok.is_none()
                && msg.err.is_none()
                && self.dup.contains(&answer_key(&at, None), now)
            {
                tracing::trace!(at, "not found after data (or for a get with ##) not sent");
                return;
            }
            msg.reply_to = Some(at);
        }
        // Signed with the encoding, after the lock (`frame_later`).
        match (&msg.id, fresh) {
            // An id of ours, just made: nothing to refresh.
            (Some(id), true) => self.dup.insert(id, Track::Seen, now),
            _ => self.track_sent(&msg, now),
        }
        if let Some(at) = &msg.reply_to {
            // Streaming answers keep the request's route alive (as Gun.js).
            self.dup.refresh(at, now);
            if msg.put.as_ref().is_some_and(|g| !g.is_empty()) {
                // We answered with data: the get is no longer open.
                self.open.close(at);
            }
        }
        if !self.peers.contains_key(&to) {
            tracing::debug!(peer = to.0, "reply for a peer that is gone");
            return;
        }
        // Signed and encoded when the engine sends it, after its lock.
        out.push(Output::Send {
            to,
            frame: self.frame_later(msg),
        });
    }

    /// Time passes: expires dedup entries (and the routes they hold), open
    /// gets older than [`MeshConfig::open_get_ms`](crate::MeshConfig::open_get_ms)
    /// and old un-acked puts, and (relays) sends the `[]` keep-alive to every
    /// peer every [`MeshConfig::keepalive_ms`](crate::MeshConfig::keepalive_ms).
    pub fn tick(&mut self, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.dup.expire(now);
        self.open.expire(now, self.cfg.open_get_ms);
        let peers = &self.peers;
        self.subindex.sweep(
            now,
            |soul, p| peers.get(&p).is_some_and(|p| p.subs.names(soul)),
            |p| peers.get(&p).is_some_and(|p| p.subs.has_lex()),
        );
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
