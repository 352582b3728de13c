//! Reconnect bookkeeping per outgoing URL: the gets to send again (live
//! subscriptions) and the writes not acked yet, bounded by count, bytes and age.

use std::collections::{BTreeMap, HashMap};

use gun_graph::{Graph, Value, json};

use super::{MeshConfig, OutFrame};
use crate::message::Get;
use crate::peer::PeerId;

#[derive(Debug)]
pub(super) struct PendingPut {
    pub(super) id: String,
    /// Signed and encoded when first sent (after the owner's lock).
    pub(super) frame: OutFrame,
    /// What it counts against the byte bound: [`pending_bytes`] of its write.
    pub(super) bytes: usize,
    pub(super) at: u64,
    pub(super) origin: Option<PeerId>,
}

/// What a write kept for re-sending holds at most: its message and graph
/// until its text is made (when it is first sent), then its text.
pub(super) fn pending_bytes(g: &Graph) -> usize {
    let held: usize = g.nodes().map(gun_graph::Node::approx_bytes).sum::<usize>()
        + size_of::<crate::message::Message>();
    held.max(put_bytes_estimate(g))
}

/// About the length of a write's text on the wire, without making the text:
/// souls, keys and states twice or once as the wire has them, string values
/// unescaped. What the re-send queue's byte bound counts for a write whose
/// text is made later.
pub(super) fn put_bytes_estimate(g: &Graph) -> usize {
    let mut n = 64;
    for node in g.nodes() {
        // "soul":{"_":{"#":"soul",">":{…}},…}
        n += 2 * node.soul().as_str().len() + 24;
        for (k, e) in node.iter() {
            // "k":state, and "k":value
            n += 2 * k.len() + 28;
            n += match &e.value {
                Value::String(s) => s.len() + 2,
                Value::Link(soul) => soul.as_str().len() + 10,
                _ => 24,
            };
        }
    }
    n
}

/// Reconnect bookkeeping for one outgoing URL.
#[derive(Debug, Default)]
pub(super) struct UrlState {
    pub(super) peer: Option<PeerId>,
    pub(super) get_keys: HashMap<String, u64>,
    pub(super) gets: BTreeMap<u64, (String, Get)>,
    pub(super) next: u64,
    /// The writes not acked yet, oldest first (by the order they were queued).
    pub(super) puts: BTreeMap<u64, PendingPut>,
    /// Where each of them is in `puts`, by id: a write queued twice is kept
    /// once, and an ack (every reply from this URL's peer is checked) finds
    /// its write without a scan of the queue (up to 10,000 writes).
    put_index: HashMap<String, u64>,
    put_next: u64,
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
        if p.bytes > cfg.max_pending_bytes {
            tracing::warn!(url, id = %p.id, "put too large to keep for re-sending");
            return;
        }
        if self.put_index.contains_key(&p.id) {
            return;
        }
        while !self.puts.is_empty()
            && (self.puts.len() >= cfg.max_pending_puts.max(1)
                || self.put_bytes + p.bytes > cfg.max_pending_bytes)
        {
            if let Some(old) = self.pop_oldest() {
                tracing::warn!(url, id = %old.id, "too many un-acked puts for this url: dropped the oldest");
            }
        }
        let seq = self.put_next;
        self.put_next += 1;
        self.put_bytes += p.bytes;
        self.put_index.insert(p.id.clone(), seq);
        self.puts.insert(seq, p);
    }

    fn pop_oldest(&mut self) -> Option<PendingPut> {
        let (_, old) = self.puts.pop_first()?;
        self.put_index.remove(&old.id);
        self.put_bytes -= old.bytes;
        Some(old)
    }

    pub(super) fn acked(&mut self, id: &str) {
        if let Some(seq) = self.put_index.remove(id)
            && let Some(p) = self.puts.remove(&seq)
        {
            self.put_bytes -= p.bytes;
        }
    }

    pub(super) fn expire_puts(&mut self, url: &str, now: u64, max_age: u64) {
        while let Some((_, p)) = self.puts.first_key_value() {
            if now.saturating_sub(p.at) < max_age {
                break;
            }
            if let Some(old) = self.pop_oldest() {
                tracing::warn!(url, id = %old.id, "un-acked put too old: no longer re-sent");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn put(id: &str, bytes: usize, at: u64) -> PendingPut {
        PendingPut {
            id: id.to_owned(),
            frame: OutFrame::from(Arc::<str>::from("x".repeat(bytes))),
            bytes,
            at,
            origin: None,
        }
    }

    fn ids(st: &UrlState) -> Vec<&str> {
        st.puts.values().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn pending_puts_keep_order_and_bounds_and_find_acks_by_id() {
        let cfg = MeshConfig {
            max_pending_puts: 3,
            max_pending_bytes: 100,
            ..MeshConfig::default()
        };
        let mut st = UrlState::default();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            st.add_put("u", put(id, 10, i as u64), &cfg);
        }
        // Queued twice: kept once.
        st.add_put("u", put("b", 10, 9), &cfg);
        assert_eq!(ids(&st), ["a", "b", "c"]);
        // Past the count: the oldest goes.
        st.add_put("u", put("d", 10, 3), &cfg);
        assert_eq!(ids(&st), ["b", "c", "d"]);
        // An ack from the middle; an ack of a dropped or unknown id changes nothing.
        st.acked("c");
        st.acked("a");
        st.acked("zz");
        assert_eq!(ids(&st), ["b", "d"]);
        assert_eq!(st.put_bytes, 20);
        // Past the bytes: as many of the oldest as needed go.
        st.add_put("u", put("e", 85, 4), &cfg);
        assert_eq!(ids(&st), ["d", "e"]);
        assert_eq!(st.put_bytes, 95);
        // Larger than the bound on its own: not kept, nothing dropped.
        st.add_put("u", put("f", 101, 5), &cfg);
        assert_eq!(ids(&st), ["d", "e"]);
        // A dropped id may be queued again (exactly at the byte bound).
        st.add_put("u", put("a", 5, 6), &cfg);
        assert_eq!(ids(&st), ["d", "e", "a"]);
        // Expiry takes the old ones from the front.
        st.expire_puts("u", 10, 5);
        assert_eq!(ids(&st), ["a"]);
        assert_eq!(st.put_bytes, 5);
        st.acked("a");
        assert!(st.puts.is_empty() && st.put_index.is_empty());
        assert_eq!(st.put_bytes, 0);
    }

    /// The estimate stays near the text's real length for the usual shapes
    /// (it counts against a memory bound: within a factor, never wildly off).
    #[test]
    fn the_byte_estimate_is_near_the_text() {
        let mut wide = String::from("{");
        for i in 0..10 {
            wide.push_str(&format!(r##""f{i}":{{"_":{{"#":"f{i}",">":{{"a":1700000000000.123,"b":1700000000000,"c":1700000000000,"d":1700000000000}}}},"a":"some text value {i}","b":12345.5,"c":{{"#":"other/{i}"}},"d":true}}"##));
            wide.push(if i < 9 { ',' } else { '}' });
        }
        let one = r##"{"user/1":{"_":{"#":"user/1",">":{"name":1700000000000}},"name":"alice"}}"##;
        let long = format!(
            r##"{{"s":{{"_":{{"#":"s",">":{{"k":1}}}},"k":"{}"}}}}"##,
            "x".repeat(20_000)
        );
        for text in [wide.as_str(), one, long.as_str()] {
            let g = Graph::from_wire(text).unwrap();
            let mut m = crate::message::Message::put(g.clone());
            m.id = Some("abcdefghi".into());
            m.seen = Some("R".into());
            let real = super::super::encode(&m).len();
            let est = put_bytes_estimate(&g);
            assert!(
                est * 10 >= real * 8 && est <= real * 2,
                "estimate {est} for {real} bytes: {text:.80}"
            );
            // What the queue counts covers the text and the unencoded write.
            let counted = pending_bytes(&g);
            assert!(counted >= est && counted > size_of::<crate::message::Message>());
        }
    }
}
