//! Connections: what the mesh knows of each peer, and what happens when one
//! opens (greeting, re-sending on a reconnect) or closes.

use super::subs::Subs;
use super::track::Track;
use super::{Mesh, OutFrame, Output, Role, encode};
use crate::message::{Get, Message};
use crate::peer::{Direction, PeerId};

#[derive(Debug)]
pub(super) struct Peer {
    pub(super) dir: Direction,
    /// Our internal id for it, used in `><` until it tells its pid.
    pub(super) label: String,
    pub(super) pid: Option<String>,
    pub(super) marker: bool,
    pub(super) subs: Subs,
    pub(super) last_keepalive: u64,
}

impl Peer {
    pub(super) fn url(&self) -> Option<&str> {
        match &self.dir {
            Direction::Outgoing { url } => Some(url),
            Direction::Incoming | Direction::Direct { .. } => None,
        }
    }

    pub(super) fn full(&self) -> bool {
        self.marker || !matches!(self.dir, Direction::Incoming)
    }

    /// How this peer is named in our `><`: url, else pid, else internal id.
    pub(super) fn seen_name(&self) -> &str {
        self.url().or(self.pid.as_deref()).unwrap_or(&self.label)
    }

    pub(super) fn listed_in(&self, seen: &[String]) -> bool {
        seen.iter().any(|s| {
            Some(s.as_str()) == self.url()
                || Some(s.as_str()) == self.pid.as_deref()
                || *s == self.label
        })
    }
}

impl Mesh {
    /// A connection opened. Incoming: we greet with `dam:"?"`. Outgoing: a
    /// client says `hi`; a reconnect to a known URL re-sends its remembered gets
    /// and un-acked puts.
    ///
    /// Then every open get (one no data answered yet, younger than
    /// [`MeshConfig::open_get_ms`](super::MeshConfig::open_get_ms)) is
    /// forwarded to the new peer with its own `#`, so that its answer is
    /// routed to the asker; on a reconnect to a known URL such a get replaces
    /// the fresh-id re-send of the same get.
    pub fn connect(&mut self, peer: PeerId, dir: Direction, now: u64) -> Vec<Output> {
        let late = self.open_gets_for(peer, &dir, now);
        let mut out = self.connect_inner(peer, dir, &late, now);
        if !late.is_empty() {
            let seen = self.seen_list();
            for mut m in late {
                if let Some(id) = m.id.as_deref() {
                    // The route back to the asker lives as long as it is used.
                    self.dup.refresh(id, now);
                }
                m.seen = seen.clone();
                out.push(Output::Send {
                    to: peer,
                    frame: encode(&m).into(),
                });
            }
        }
        out
    }

    /// The open gets to forward to a peer that just connected: not expired,
    /// their asker still here (and not this peer), the peer not listed in
    /// their `><`, their route back still in the dedup table. A peer we
    /// dialed (or a direct link) gets them all; a client peer, the youngest
    /// [`MeshConfig::open_gets_per_connect`](super::MeshConfig::open_gets_per_connect)
    /// of those that have not asked
    /// [`MeshConfig::max_get_asks`](super::MeshConfig::max_get_asks) clients
    /// yet (each counts it as asked).
    fn open_gets_for(&mut self, peer: PeerId, dir: &Direction, now: u64) -> Vec<Message> {
        let ttl = self.cfg.open_get_ms;
        self.open.expire(now, ttl);
        if self.open.is_empty() {
            return Vec::new();
        }
        let full = !matches!(dir, Direction::Incoming);
        let (cap, max_asks) = if full {
            (usize::MAX, usize::MAX)
        } else {
            (self.cfg.open_gets_per_connect, self.cfg.max_get_asks)
        };
        let names: (Option<&str>, Option<&str>) = match dir {
            Direction::Outgoing { url } => (Some(url.as_str()), None),
            Direction::Direct { pid } => (None, Some(pid.as_str())),
            Direction::Incoming => (None, None),
        };
        let ids: Vec<String> = self
            .open
            .iter()
            .rev()
            .filter(|o| o.asked.len() < max_asks)
            .filter(|o| o.from != peer && self.peers.contains_key(&o.from))
            .filter(|o| {
                !o.seen.as_deref().is_some_and(|s| {
                    s.iter()
                        .any(|x| Some(x.as_str()) == names.0 || Some(x.as_str()) == names.1)
                })
            })
            .filter(|o| matches!(self.dup.get(&o.id, now), Some(Track::Via { .. })))
            .take(cap)
            .map(|o| o.id.clone())
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        // Oldest first, as they arrived.
        for id in ids.iter().rev() {
            if let Some(o) = self.open.get_mut(id) {
                if !full {
                    o.asked.push(peer);
                }
                out.push(o.msg.clone());
            }
        }
        out
    }

    fn connect_inner(
        &mut self,
        peer: PeerId,
        dir: Direction,
        late: &[Message],
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let label = self.fresh_id();
        let url = match &dir {
            Direction::Outgoing { url } => Some(url.clone()),
            Direction::Incoming | Direction::Direct { .. } => None,
        };
        let direct = match &dir {
            Direction::Direct { pid } => Some(pid.clone()),
            _ => None,
        };
        if !matches!(dir, Direction::Incoming) {
            self.full_peers.insert(peer);
        }
        self.peers.insert(
            peer,
            Peer {
                dir,
                label,
                pid: direct.clone(),
                marker: false,
                subs: Subs::default(),
                last_keepalive: now,
            },
        );
        if direct.is_some() {
            // Signalling told both ends who the other is: no greeting.
            return out;
        }
        let Some(url) = url else {
            let m = self.greeting("?", None);
            self.track_sent(&m, now);
            out.push(Output::Send {
                to: peer,
                frame: encode(&m).into(),
            });
            return out;
        };
        if self.cfg.role == Role::Client {
            let m = self.greeting("hi", None);
            self.track_sent(&m, now);
            out.push(Output::Send {
                to: peer,
                frame: encode(&m).into(),
            });
        }
        let max_age = self.cfg.pending_put_max_age_ms;
        let st = self.urls.entry(url.clone()).or_default();
        st.peer = Some(peer);
        st.expire_puts(&url, now, max_age);
        let gets: Vec<Get> = st
            .gets
            .values()
            .map(|(_, g)| g.clone())
            .filter(|g| !late.iter().any(|m| m.get.as_ref() == Some(g)))
            .collect();
        let puts: Vec<(String, OutFrame, Option<PeerId>)> = st
            .puts
            .values()
            .map(|p| (p.id.clone(), p.frame.clone(), p.origin))
            .collect();
        let seen = self.seen_list();
        for get in gets {
            let id = self.fresh_id();
            self.dup.insert(&id, Track::Local, now);
            let m = Message {
                id: Some(id),
                seen: seen.clone(),
                get: Some(get),
                ..Message::default()
            };
            // Signed and encoded after the owner's lock.
            out.push(Output::Send {
                to: peer,
                frame: self.frame_later(m),
            });
        }
        for (id, frame, origin) in puts {
            if !self.dup.refresh(&id, now) {
                let t = match origin {
                    Some(p) => Track::Via {
                        peer: p,
                        sub: None,
                        seen: None,
                        signed: None,
                    },
                    None => Track::Local,
                };
                self.dup.insert(&id, t, now);
            }
            out.push(Output::Send { to: peer, frame });
        }
        out
    }

    /// A connection closed: its subscriptions, open gets and routes are forgotten (routes
    /// through it now lead nowhere and expire with the dedup window). An
    /// outgoing URL keeps its reconnect bookkeeping.
    pub fn disconnect(&mut self, peer: PeerId) {
        self.open.forget_peer(peer);
        self.full_peers.remove(&peer);
        if let Some(p) = self.peers.get(&peer) {
            for soul in p.subs.soul_names() {
                self.subindex.forget(soul, peer);
            }
            self.subindex.forget_lex(peer);
        }
        if let Some(p) = self.peers.remove(&peer)
            && let Some(url) = p.url()
            && let Some(st) = self.urls.get_mut(url)
            && st.peer == Some(peer)
        {
            st.peer = None;
        }
    }
}
