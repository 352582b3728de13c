//! Receiving: parse, deduplicate, check signatures and predicates, then route
//! each message by what it is (handshake, request, reply) — the rules of the
//! [module docs](super).

use rand::Rng;

use gun_graph::json;

use super::decode::{Admission, Decoded};
use super::open::OpenGet;
use super::subs::{SubTarget, sub_target};
use super::track::{SignedPut, Track};
use super::{FULL_PEER_MARKER, Mesh, OutFrame, Output, Peer, answer_key, encode, parse_seen};
use crate::Error;
use crate::message::{Get, Message};
use crate::peer::PeerId;

impl Mesh {
    /// A text frame arrived from `peer` (which must have been [`connect`](Mesh::connect)ed;
    /// frames from unknown peers are ignored). Each message is handled as the
    /// module docs say; invalid puts come back as [`Output::InvalidPut`], a
    /// frame over the size limit is answered `{"dam":"!","err":"Message too big!"}`,
    /// other bad frames are dropped with a debug event.
    pub fn receive(&mut self, peer: PeerId, frame: &str, now: u64) -> Vec<Output> {
        self.receive_with(peer, frame, now, &mut |_| None)
    }

    /// [`Mesh::receive`], with a way to learn what we hold: `here(get)` is
    /// the `##` of the answer this peer will send to `get` when it knows it
    /// at once (from memory, in one message), else `None`. A get forwarded
    /// without `##` then carries it, so that a peer holding the same data
    /// does not answer (as a Gun.js relay does). Nothing waits for the
    /// answer: a get we cannot answer from memory is forwarded at once.
    pub fn receive_with(
        &mut self,
        peer: PeerId,
        frame: &str,
        now: u64,
        here: &mut dyn FnMut(&Get) -> Option<i32>,
    ) -> Vec<Output> {
        let decoded = self.decoder.decode(frame);
        self.receive_decoded_with(peer, decoded, now, here)
    }

    /// A frame decoded with [`Mesh::decoder`] (outside the mesh: parsed, and
    /// perhaps admitted) arrived from `peer`: the routing part of
    /// [`Mesh::receive`] (the module docs of `decode.rs` give the steps).
    pub fn receive_decoded(&mut self, peer: PeerId, decoded: Decoded, now: u64) -> Vec<Output> {
        self.receive_decoded_with(peer, decoded, now, &mut |_| None)
    }

    /// [`Mesh::receive_decoded`] with the `here` of [`Mesh::receive_with`].
    pub fn receive_decoded_with(
        &mut self,
        peer: PeerId,
        decoded: Decoded,
        now: u64,
        here: &mut dyn FnMut(&Get) -> Option<i32>,
    ) -> Vec<Output> {
        let mut out = Vec::with_capacity(2);
        if !self.peers.contains_key(&peer) {
            tracing::debug!(peer = peer.0, "frame from an unknown peer ignored");
            return out;
        }
        for (r, admission) in decoded.items {
            match r {
                Ok(m) => self.hear(peer, m, admission, now, here, &mut out),
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
                        frame: encode(&m).into(),
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

    fn hear(
        &mut self,
        from: PeerId,
        mut m: Message,
        admission: Admission,
        now: u64,
        here: &mut dyn FnMut(&Get) -> Option<i32>,
        out: &mut Vec<Output>,
    ) {
        if m.id.is_none() {
            m.id = Some(self.fresh_id());
        }
        // Borrowed from the message (no copy of the id per message); a get
        // kept open takes its own copy below.
        let id: &str = m.id.as_deref().unwrap_or_default();
        if m.dam.is_none() && admission == Admission::Unchecked {
            // Before the dedup marks it seen: a refused copy (a forgery) must
            // not make the genuine message look like a duplicate. Duplicates
            // are dropped first, so each message is verified once.
            if self.dup.refresh(id, now) {
                tracing::trace!(id, "duplicate message dropped");
                return;
            }
            if !self.decoder.allows(from, &m) {
                return;
            }
        } else if self.dup.refresh(id, now) {
            // (An unchecked message had this look before its check, above.)
            tracing::trace!(id, "duplicate message dropped");
            return;
        }
        // A get or a put is tracked below with its route (one insert); every
        // other message now.
        let routed =
            m.dam.is_none() && m.reply_to.is_none() && (m.get.is_some() || m.put.is_some());
        if !routed {
            self.dup.insert(id, Track::default(), now);
        }
        if let (Some(at), Some(h)) = (&m.reply_to, m.hash) {
            if self.dup.check_and_track(&answer_key(at, Some(h)), now) {
                tracing::trace!(id, "duplicate reply (same @ and ##) dropped");
                return;
            }
        } else if let (Some(h), Some(_), None) = (m.hash, &m.get, &m.reply_to) {
            // The asker (or a relay on the way) holds data hashing to `h`:
            // our answer with the same `##` is not sent (see `Mesh::reply`),
            // nor is a "not found".
            self.dup.check_and_track(&answer_key(id, Some(h)), now);
            self.dup.check_and_track(&answer_key(id, None), now);
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
            id,
            Track::Via {
                peer: from,
                sub: sub.clone(),
                seen: seen.clone(),
                signed: SignedPut::of(&m),
            },
            now,
        );
        if let Some(put) = &m.put {
            // A writer holds what it wrote: a get for it may ask the writer.
            for soul in put.souls() {
                self.add_holder(soul.as_arc(), from, true);
            }
        }
        let fwd = if let (Some(sub), Some(get)) = (&sub, &m.get) {
            let max = self.cfg.max_subscriptions_per_peer;
            if let Some(p) = self.peers.get_mut(&from) {
                self.subs_evicted += p.subs.add(sub, max);
                self.subindex.add(sub, from);
            }
            let mut fwd = m.clone();
            fwd.seen = self.seen_list();
            if fwd.hash.is_none() && self.peers.len() > 1 {
                // Only worth hashing when there is someone to forward to.
                fwd.hash = here(get);
            }
            Some((fwd, get.clone()))
        } else {
            None
        };
        out.push(if m.put.is_some() {
            Output::Put {
                from,
                msg: Box::new(m),
            }
        } else {
            Output::Get {
                from,
                msg: Box::new(m),
            }
        });
        if let Some((fwd, get)) = fwd {
            let asked = self.forward(Some(from), &fwd, &get, seen.as_deref(), out);
            if let Some(soul) = get.exact_soul() {
                self.add_holder(soul.as_arc(), from, false);
            }
            if self.cfg.open_get_ms > 0 {
                let (max, per_peer) = (self.cfg.max_open_gets, self.cfg.max_open_gets_per_peer);
                // The forwarded copy carries the get's id.
                let id = fwd.id.clone().unwrap_or_default();
                self.open.open(
                    OpenGet {
                        id,
                        from,
                        msg: fwd,
                        seen,
                        since: now,
                        asked,
                    },
                    max,
                    per_peer,
                );
            }
        }
    }

    /// Sends a get on: to every full peer but `from` and those in `seen`
    /// (remembering it for re-sending on the outgoing URLs it went to), and to
    /// at most [`MeshConfig::get_fanout`](super::MeshConfig::get_fanout)
    /// client peers ([`Mesh::pick_clients`]). Returns the clients asked.
    pub(super) fn forward(
        &mut self,
        from: Option<PeerId>,
        m: &Message,
        get: &Get,
        seen: Option<&[String]>,
        out: &mut Vec<Output>,
    ) -> Vec<PeerId> {
        let mut frame: Option<OutFrame> = None;
        let max = self.cfg.max_resend_gets;
        for id in &self.full_peers {
            let Some(p) = self.peers.get(id) else {
                continue;
            };
            if !p.full() || Some(*id) == from || seen.is_some_and(|s| p.listed_in(s)) {
                continue;
            }
            let f = frame.get_or_insert_with(|| encode(m).into()).clone();
            out.push(Output::Send { to: *id, frame: f });
            if let Some(url) = p.url()
                && let Some(st) = self.urls.get_mut(url)
            {
                st.remember_get(url, get, max);
            }
        }
        let n = self.cfg.get_fanout.min(self.cfg.max_get_asks);
        let asked = self.pick_clients(from, get, seen, n, &[]);
        for to in &asked {
            let f = frame.get_or_insert_with(|| encode(m).into()).clone();
            out.push(Output::Send { to: *to, frame: f });
        }
        asked
    }

    /// Up to `n` connected client peers (not full peers) to ask `get`, none
    /// of them `from`, listed in `seen` or in `skip`: the holders of its soul
    /// first ([`holders`](super::holders)), then others from a random point
    /// of the peer table (a bounded walk), as AXE asks any peers once the
    /// soul's route is exhausted — a few, never every browser.
    pub(super) fn pick_clients(
        &mut self,
        from: Option<PeerId>,
        get: &Get,
        seen: Option<&[String]>,
        n: usize,
        skip: &[PeerId],
    ) -> Vec<PeerId> {
        let mut picked: Vec<PeerId> = Vec::with_capacity(n);
        if n == 0 {
            return picked;
        }
        let ok = |id: PeerId, p: &Peer, picked: &[PeerId]| {
            !p.full()
                && Some(id) != from
                && !skip.contains(&id)
                && !picked.contains(&id)
                && !seen.is_some_and(|s| p.listed_in(s))
        };
        if let Some(soul) = get.exact_soul() {
            for id in self.holders.of(soul.as_str()) {
                if picked.len() >= n {
                    return picked;
                }
                if let Some(p) = self.peers.get(&id)
                    && ok(id, p, &picked)
                {
                    picked.push(id);
                }
            }
        }
        if picked.len() >= n || self.peers.is_empty() {
            return picked;
        }
        let (Some(lo), Some(hi)) = (
            self.peers.keys().next().copied(),
            self.peers.keys().next_back().copied(),
        ) else {
            return picked;
        };
        let start = PeerId(self.rng.random_range(lo.0..=hi.0));
        // Full peers and skipped ones are few; the walk is bounded anyway.
        let budget = 4 * n + skip.len() + 16;
        for (id, p) in self
            .peers
            .range(start..)
            .chain(self.peers.range(..start))
            .take(budget)
        {
            if picked.len() >= n {
                break;
            }
            if ok(*id, p, &picked) {
                picked.push(*id);
            }
        }
        picked
    }

    /// Remembers `peer` as a holder of `soul` (a client peer: full peers are
    /// asked every get anyway).
    pub(super) fn add_holder(&mut self, soul: &std::sync::Arc<str>, peer: PeerId, data: bool) {
        if self.peers.get(&peer).is_none_or(Peer::full) {
            return;
        }
        let peers = &self.peers;
        self.holders
            .add(soul, peer, data, self.cfg.max_holder_souls, |p| {
                peers.contains_key(&p)
            });
    }

    fn hear_dam(&mut self, from: PeerId, m: Message, now: u64, out: &mut Vec<Output>) {
        let kind = m.dam.as_deref().unwrap_or("");
        match kind {
            "?" => {
                let marker = m.extra.get(FULL_PEER_MARKER).is_some_and(json::truthy);
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
                    if marker {
                        self.full_peers.insert(from);
                    }
                }
                if m.pid.is_some() && m.reply_to.is_some() {
                    return;
                }
                let answer = self.greeting("?", m.id.clone());
                self.track_sent(&answer, now);
                out.push(Output::Send {
                    to: from,
                    frame: encode(&answer).into(),
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
                out.push(Output::answer(from, m));
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
                    self.subs_evicted += p.subs.add(sub, max);
                    self.subindex.add(sub, from);
                }
                let not_found = m.put.is_none() && m.ok.is_none() && m.err.is_none();
                if m.put.as_ref().is_some_and(|g| !g.is_empty()) {
                    // Data answered it: nobody else needs asking.
                    self.open.close(at);
                    self.dup.check_and_track(&answer_key(at, None), now);
                    if let Some(SubTarget::Soul { soul, .. }) = &sub {
                        self.add_holder(soul, from, true);
                    }
                } else if not_found {
                    // One asked peer has nothing: ask the next one.
                    self.next_turn(at, from, out);
                    if self.dup.contains(&answer_key(at, None), now) {
                        tracing::trace!(
                            at,
                            "not found after data (or for a get with ##) not sent on"
                        );
                        return;
                    }
                }
                if self.peers.contains_key(&origin) {
                    out.push(Output::Send {
                        to: origin,
                        frame: encode(&m).into(),
                    });
                } else {
                    tracing::debug!(at, "reply for a peer that is gone");
                }
                if m.put.is_some() {
                    out.push(Output::Relayed {
                        from,
                        msg: Box::new(m),
                    });
                }
            }
            Track::Push { origin, original } => {
                // A new message (its `@` changes): signed by us, if at all,
                // when it is sent (after the owner's lock); the engine's own
                // waiters take it unsigned.
                let ack = Message {
                    id: m.id.clone(),
                    reply_to: Some(original.to_string()),
                    ok: m.ok.clone(),
                    err: m.err.clone(),
                    ..Message::default()
                };
                match origin {
                    None => out.push(Output::Ack {
                        from,
                        msg: Box::new(ack),
                    }),
                    Some(o) if o == from => {
                        tracing::trace!(at, "ack of an echo push not sent back")
                    }
                    Some(o) if self.peers.contains_key(&o) => {
                        out.push(Output::Send {
                            to: o,
                            frame: self.frame_later(ack),
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

    /// A client asked for the open get `at` answered "not found": ask one
    /// more client in its place ([`Mesh::pick_clients`]), within
    /// [`MeshConfig::max_get_asks`](super::MeshConfig::max_get_asks).
    fn next_turn(&mut self, at: &str, from: PeerId, out: &mut Vec<Output>) {
        let max = self.cfg.max_get_asks;
        let Some(o) = self.open.get_mut(at) else {
            return;
        };
        if !o.asked.contains(&from) || o.asked.len() >= max {
            return;
        }
        let (asker, msg, seen, asked) = (o.from, o.msg.clone(), o.seen.clone(), o.asked.clone());
        let Some(get) = msg.get.as_ref() else {
            return;
        };
        let next = self.pick_clients(Some(asker), get, seen.as_deref(), 1, &asked);
        if next.is_empty() {
            return;
        }
        if let Some(o) = self.open.get_mut(at) {
            o.asked.extend(next.iter().copied());
        }
        let mut m = msg;
        m.seen = self.seen_list();
        let frame: OutFrame = encode(&m).into();
        for to in next {
            out.push(Output::Send {
                to,
                frame: frame.clone(),
            });
        }
    }
}
