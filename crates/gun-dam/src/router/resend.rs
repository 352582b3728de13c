//! Reconnect bookkeeping per outgoing URL: the gets to send again (live
//! subscriptions) and the writes not acked yet, bounded by count, bytes and age.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use gun_graph::json;

use super::MeshConfig;
use crate::message::Get;
use crate::peer::PeerId;

#[derive(Debug)]
pub(super) struct PendingPut {
    pub(super) id: String,
    pub(super) frame: Arc<str>,
    pub(super) at: u64,
    pub(super) origin: Option<PeerId>,
}

/// Reconnect bookkeeping for one outgoing URL.
#[derive(Debug, Default)]
pub(super) struct UrlState {
    pub(super) peer: Option<PeerId>,
    pub(super) get_keys: HashMap<String, u64>,
    pub(super) gets: BTreeMap<u64, (String, Get)>,
    pub(super) next: u64,
    pub(super) puts: VecDeque<PendingPut>,
    pub(super) put_bytes: usize,
}

impl UrlState {
    pub(super) fn remember_get(&mut self, url: &str, get: &Get, max: usize) {
        let key = json::stringify(&get.raw);
        let seq = self.next;
        self.next += 1;
        if let Some(old) = self.get_keys.insert(key.clone(), seq) {
            self.gets.remove(&old);
        }
        self.gets.insert(seq, (key, get.clone()));
        while self.gets.len() > max.max(1) {
            let Some((_, (k, _))) = self.gets.pop_first() else {
                break;
            };
            self.get_keys.remove(&k);
            tracing::warn!(url, get = %k, "too many subscriptions remembered for this url: dropped the oldest");
        }
    }

    pub(super) fn add_put(&mut self, url: &str, p: PendingPut, cfg: &MeshConfig) {
        if p.frame.len() > cfg.max_pending_bytes {
            tracing::warn!(url, id = %p.id, "put too large to keep for re-sending");
            return;
        }
        if self.puts.iter().any(|q| q.id == p.id) {
            return;
        }
        while !self.puts.is_empty()
            && (self.puts.len() >= cfg.max_pending_puts.max(1)
                || self.put_bytes + p.frame.len() > cfg.max_pending_bytes)
        {
            if let Some(old) = self.puts.pop_front() {
                self.put_bytes -= old.frame.len();
                tracing::warn!(url, id = %old.id, "too many un-acked puts for this url: dropped the oldest");
            }
        }
        self.put_bytes += p.frame.len();
        self.puts.push_back(p);
    }

    pub(super) fn acked(&mut self, id: &str) {
        if let Some(i) = self.puts.iter().position(|p| p.id == id)
            && let Some(p) = self.puts.remove(i)
        {
            self.put_bytes -= p.frame.len();
        }
    }

    pub(super) fn expire_puts(&mut self, url: &str, now: u64, max_age: u64) {
        while let Some(p) = self.puts.front() {
            if now.saturating_sub(p.at) < max_age {
                break;
            }
            tracing::warn!(url, id = %p.id, "un-acked put too old: no longer re-sent");
            self.put_bytes -= p.frame.len();
            self.puts.pop_front();
        }
    }
}
