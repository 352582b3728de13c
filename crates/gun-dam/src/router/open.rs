//! Open gets: gets from peers that no data answered yet, kept for
//! [`MeshConfig::open_get_ms`](super::MeshConfig::open_get_ms) so that a peer
//! connecting meanwhile is asked too (the holder of the data may join late,
//! or reconnect after a relay restart later than the asker).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::message::Message;
use crate::peer::PeerId;

/// One open get.
#[derive(Debug, Clone)]
pub(super) struct OpenGet {
    /// The get's `#` (its route back to `from` lives in the dedup table).
    pub(super) id: String,
    /// The asker.
    pub(super) from: PeerId,
    /// The get as it is forwarded (its `><` is rewritten when sent).
    pub(super) msg: Message,
    /// The get's own `><`: peers listed there had it already.
    pub(super) seen: Option<Arc<[String]>>,
    /// When it arrived.
    pub(super) since: u64,
    /// The client peers asked so far (bounded by
    /// [`MeshConfig::max_get_asks`](super::MeshConfig::max_get_asks)).
    pub(super) asked: Vec<PeerId>,
}

/// The open gets, oldest first, bounded in total and per asker.
#[derive(Debug, Default)]
pub(super) struct OpenGets {
    list: VecDeque<OpenGet>,
}

impl OpenGets {
    /// Opens a get; past the bounds the oldest of the same asker (or, in
    /// total, the oldest of all) is dropped.
    pub(super) fn open(&mut self, g: OpenGet, max_total: usize, max_per_peer: usize) {
        if max_total == 0 || max_per_peer == 0 {
            return;
        }
        let mine = self.list.iter().filter(|o| o.from == g.from).count();
        if mine >= max_per_peer
            && let Some(i) = self.list.iter().position(|o| o.from == g.from)
        {
            self.list.remove(i);
        }
        while self.list.len() >= max_total {
            self.list.pop_front();
        }
        self.list.push_back(g);
    }

    /// Closes the get `id` (data answered it).
    pub(super) fn close(&mut self, id: &str) {
        self.list.retain(|o| o.id != id);
    }

    /// Forgets the gets of an asker that is gone.
    pub(super) fn forget_peer(&mut self, peer: PeerId) {
        self.list.retain(|o| o.from != peer);
    }

    /// Drops the gets opened `ttl` ms or longer before `now`.
    pub(super) fn expire(&mut self, now: u64, ttl: u64) {
        while self
            .list
            .front()
            .is_some_and(|o| now.saturating_sub(o.since) >= ttl)
        {
            self.list.pop_front();
        }
        // A burst of gets (clients connecting by thousands) grew the queue: give the memory
        // back once most have expired (a VecDeque never shrinks by itself).
        if self.list.capacity() > 64 && self.list.len() * 4 < self.list.capacity() {
            self.list.shrink_to(self.list.len() * 2);
        }
    }

    /// The open gets, oldest first.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &OpenGet> {
        self.list.iter()
    }

    /// The open get `id`.
    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut OpenGet> {
        self.list.iter_mut().find(|o| o.id == id)
    }

    /// Whether none is open.
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
