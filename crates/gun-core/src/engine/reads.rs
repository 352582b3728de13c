//! Reads: answering a peer's get from the cache or the store, and reading for
//! this process (from here, else from peers, waiting for their replies).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use gun_dam::{Get, Message, Output, PeerId, SoulQuery};
use gun_graph::{Graph, Lex, Node, Soul, State, lex};

use super::asks::{AskEvent, Wants};
use super::{Engine, now_u64};

/// Bound on the souls remembered as read whole from peers (see
/// [`Engine::fetch`]).
pub(super) const MAX_WHOLE_SOULS: usize = 100_000;
use crate::Error;

impl Engine {
    pub(super) async fn remote_get(&self, from: PeerId, msg: Box<Message>) {
        let Some(get) = msg.get.as_ref() else {
            return;
        };
        let Some(id) = msg.id.clone() else {
            return;
        };
        let budget = lex::budget(
            get.budget,
            get.key.as_ref().is_some_and(|k| !k.is_exact())
                || matches!(get.soul, SoulQuery::Lex(_)),
        );
        let answer: Result<Graph, Error> = match &get.soul {
            SoulQuery::Exact(soul) => self
                .read_node(soul, get.key.as_ref(), budget)
                .await
                .map(|n| n.into_iter().collect()),
            SoulQuery::Lex(souls) => {
                let all = Lex::default();
                self.inner
                    .store
                    .query(souls, get.key.as_ref().unwrap_or(&all), budget)
                    .await
                    .map_err(Error::from)
            }
        };
        let graph = match answer {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(%e, "get failed");
                Graph::new()
            }
        };
        let replies = self.reply_messages(&id, graph);
        let mut sh = self.lock();
        let mut outs = Vec::new();
        for r in replies {
            outs.extend(sh.mesh.reply(from, r, now_u64()));
        }
        drop(sh);
        self.execute(outs);
    }

    /// Splits an answer into messages of at most `reply_chunk_keys` keys.
    fn reply_messages(&self, id: &str, graph: Graph) -> Vec<Message> {
        if graph.is_empty() {
            return vec![Message::not_found(id)];
        }
        let max = self.inner.opts.reply_chunk_keys.max(1);
        if graph.key_count() <= max {
            return vec![Message::reply(id, graph)];
        }
        let mut out = Vec::new();
        let mut chunk = Graph::new();
        let mut n = 0;
        for (soul, node) in graph {
            let mut part = Node::new(soul.clone());
            for (k, e) in node.iter() {
                let _ = part.insert(k.clone(), e.state, e.value.clone());
                n += 1;
                if n >= max {
                    chunk.insert_node(std::mem::replace(&mut part, Node::new(soul.clone())));
                    out.push(Message::reply(id, std::mem::take(&mut chunk)));
                    n = 0;
                }
            }
            if !part.is_empty() {
                chunk.insert_node(part);
            }
        }
        if !chunk.is_empty() {
            out.push(Message::reply(id, chunk));
        }
        out
    }

    /// Reads a node (or some of its keys) from the cache, loading it from the
    /// store first if needed. `None` when nothing matches.
    pub async fn read_node(
        &self,
        soul: &Soul,
        key: Option<&Lex>,
        budget: Option<u64>,
    ) -> Result<Option<Node>, Error> {
        self.ensure_loaded(std::iter::once(soul)).await?;
        let sh = self.lock();
        let Some(node) = sh.graph.get(soul.as_str()) else {
            return Ok(None);
        };
        let n = match key {
            Some(k) => lex::query_node(node, k, budget),
            None if budget.is_some() => lex::query_node(node, &Lex::default(), budget),
            None => node.clone(),
        };
        Ok(if n.is_empty() { None } else { Some(n) })
    }

    /// Reads a node (or one key of it) from here or from peers, and always
    /// returns (at most the wait time of the options). A node read from peers
    /// returns once their answers have been quiet for
    /// [`EngineOptions::settle`](crate::EngineOptions::settle).
    ///
    /// A key known here is the answer, and so is anything known here while no
    /// peer is connected (offline). A node is answered from here only when
    /// peers were asked for all of it before (they push its changes since):
    /// a node built here from key reads, lexical reads, `map`s or local writes
    /// may lack keys a peer holds, so peers are asked, and the read returns
    /// when one answers with data (merged with what is here), or every asked
    /// peer answered "not found" and a grace time passed (relays route other
    /// peers' answers under the same `@`, and their own may come later), or
    /// the wait runs out. With nothing
    /// here and peers known but none connected yet, the get goes out when one
    /// connects, within the same wait.
    pub async fn fetch(&self, soul: &Soul, key: Option<&str>) -> Result<Option<Node>, Error> {
        let lex = key.map(Lex::exact);
        let here = self.read_node(soul, lex.as_ref(), None).await?;
        let deadline = tokio::time::Instant::now() + self.inner.opts.wait;
        let (asked, guard) = loop {
            let attached = self.inner.attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            let asked = {
                let mut sh = self.lock();
                let complete = key.is_some() || sh.whole.contains(soul.as_str());
                let connected = !sh.links.is_empty();
                // Offline with data here: that is the best answer there is.
                if !sh.remote || (here.is_some() && (complete || !connected)) {
                    return Ok(here);
                }
                if connected {
                    let msg = Message::get(get_for(soul, key));
                    let (id, outs) = sh.mesh.request(msg, now_u64());
                    let asked: HashSet<PeerId> = outs
                        .iter()
                        .filter_map(|o| match o {
                            Output::Send { to, .. } => Some(*to),
                            _ => None,
                        })
                        .collect();
                    let guard = self.ask(&mut sh, &id, Wants::Events);
                    Some((asked, guard, outs))
                } else {
                    None
                }
            };
            match asked {
                Some((asked, guard, outs)) => {
                    self.execute(outs);
                    break (asked, guard);
                }
                // Nothing here and a peer still connecting (a program's first
                // read): ask once one is connected, within the same wait.
                None => {
                    if tokio::time::timeout_at(deadline, attached).await.is_err() {
                        return Ok(here);
                    }
                }
            }
        };
        let mut guard = guard;
        let mut not_found: HashSet<PeerId> = HashSet::new();
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        loop {
            let until = grace_deadline.map_or(deadline, |g| g.min(deadline));
            match tokio::time::timeout_at(until, guard.rx.recv()).await {
                Ok(Some(AskEvent::Reply { from, found })) => {
                    if key.is_none() {
                        // That peer sent all it has of the node, and subscribed
                        // us to its changes.
                        self.mark_whole(soul);
                    }
                    if found {
                        if key.is_some() {
                            if let Some(n) = self.read_node(soul, lex.as_ref(), None).await? {
                                return Ok(Some(n));
                            }
                        } else {
                            // A node may come in several answers (a Gun.js relay
                            // answers from memory and from radisk, a gun-rs one
                            // in chunks): merge what comes until it is quiet for
                            // the settle time (Gun.js's `once` waits 99 ms).
                            grace_deadline =
                                Some(tokio::time::Instant::now() + self.inner.opts.settle);
                        }
                    } else {
                        // Not final at once, even with data here: a relay
                        // routes other peers' "not found" under the same `@`
                        // before its own answer may arrive.
                        not_found.insert(from);
                        if asked.iter().all(|p| not_found.contains(p)) && grace_deadline.is_none() {
                            grace_deadline =
                                Some(tokio::time::Instant::now() + self.inner.opts.grace);
                        }
                    }
                }
                Ok(Some(AskEvent::Ack { .. } | AskEvent::Message(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.read_node(soul, lex.as_ref(), None).await
    }

    /// Remembers that peers answered a read of the whole of `soul` (bounded:
    /// past [`MAX_WHOLE_SOULS`] the memory is dropped, which only costs a
    /// re-ask).
    fn mark_whole(&self, soul: &Soul) {
        let mut sh = self.lock();
        if sh.whole.len() >= MAX_WHOLE_SOULS {
            sh.whole.clear();
        }
        sh.whole.insert(soul.clone());
    }

    /// Asks peers for a soul so that they push its future changes here (a
    /// subscription, as Gun.js peers make with a get).
    pub fn subscribe_remote(&self, soul: &Soul, key: Option<&str>) {
        let outs = {
            let mut sh = self.lock();
            // With no peer and no expected URL there is nobody to ask; with an
            // expected URL the mesh remembers the get and sends it on connect.
            if !sh.remote {
                return;
            }
            let msg = Message::get(get_for(soul, key));
            let (id, outs) = sh.mesh.request(msg, now_u64());
            // Replies are merged by `deliver`; nobody waits on them here.
            let _ = id;
            outs
        };
        self.execute(outs);
    }
}

/// The `##` of the answer [`Engine::remote_get`] will send to `get`, when it
/// comes from the cache in one message (an exact soul already in memory,
/// with keys matching, within one reply chunk); `None` otherwise (not here,
/// in the store only, a soul query, or chunked). Only a hint for the
/// forwarded get: if a write lands before the answer, the hashes differ and a
/// peer holding the same data answers once more.
pub(super) fn cached_answer_hash(
    graph: &super::cache::Cache,
    get: &Get,
    chunk: usize,
) -> Option<i32> {
    let SoulQuery::Exact(soul) = &get.soul else {
        return None;
    };
    let node = graph.get(soul.as_str())?;
    let budget = lex::budget(get.budget, get.key.as_ref().is_some_and(|k| !k.is_exact()));
    let n = match (&get.key, budget) {
        (Some(k), _) => lex::query_node(node, k, budget),
        (None, Some(_)) => lex::query_node(node, &Lex::default(), budget),
        (None, None) => node.clone(),
    };
    if n.is_empty() {
        return None;
    }
    let answer: Graph = std::iter::once(n).collect();
    if answer.key_count() > chunk {
        return None;
    }
    Some(gun_graph::hash::graph_hash(&answer))
}

fn get_for(soul: &Soul, key: Option<&str>) -> Get {
    match key {
        Some(k) => Get::key(soul.clone(), k),
        None => Get::node(soul.clone()),
    }
}

/// A hash of a value's JSON text, to recognise the value a reply brought.
fn value_hash(v: &gun_graph::Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_json_text().hash(&mut h);
    h.finish()
}

/// Bound on the keys remembered as [`ReadNotPushed`].
pub(super) const MAX_READ_NOT_PUSHED: usize = 10_000;

/// Keys this engine learned only from get replies (its own reads, or answers
/// its mesh routed to another asker), which are never pushed to subscribers.
///
/// When the write that made such a key reaches us afterwards — the holder's
/// put, arriving after its answer to a forwarded (or open) get — HAM finds
/// nothing new in it, yet our subscribers never saw it: the write is published
/// for those keys as if the answer had come second. WebRTC signalling rests on
/// this: a page's announcement must reach the other peers as a write (whose
/// `#` their offer answers), even when the relay read it first from the page.
#[derive(Debug, Default)]
pub(super) struct ReadNotPushed {
    /// Per soul: key → the state a reply brought and a hash of its value's
    /// JSON text (the value itself may be large, and the cache may not hold
    /// the soul: writes do not load it).
    souls: HashMap<Soul, HashMap<Arc<str>, (State, u64)>>,
    /// Keys remembered, oldest first (some may be gone since).
    order: VecDeque<(Soul, Arc<str>)>,
    len: usize,
}

impl ReadNotPushed {
    /// Remembers the keys of `applied` (data a reply brought).
    pub(super) fn read(&mut self, applied: &Graph) {
        for (soul, node) in applied.iter() {
            let keys = self.souls.entry(soul.clone()).or_default();
            for (k, e) in node.iter() {
                if keys
                    .insert(k.clone(), (e.state, value_hash(&e.value)))
                    .is_none()
                {
                    self.len += 1;
                    self.order.push_back((soul.clone(), k.clone()));
                }
            }
        }
        while self.len > MAX_READ_NOT_PUSHED {
            let Some((soul, k)) = self.order.pop_front() else {
                break;
            };
            self.forget(soul.as_str(), &k);
        }
        if self.order.len() > 2 * MAX_READ_NOT_PUSHED {
            let souls = &self.souls;
            self.order
                .retain(|(s, k)| souls.get(s).is_some_and(|m| m.contains_key(k)));
        }
    }

    fn forget(&mut self, soul: &str, key: &str) -> Option<(State, u64)> {
        let keys = self.souls.get_mut(soul)?;
        let st = keys.remove(key)?;
        self.len -= 1;
        if keys.is_empty() {
            self.souls.remove(soul);
        }
        Some(st)
    }

    /// Forgets the keys of `published` (they reach subscribers now).
    pub(super) fn pushed(&mut self, published: &Graph) {
        if self.len == 0 {
            return;
        }
        for (soul, node) in published.iter() {
            if !self.souls.contains_key(soul.as_str()) {
                continue;
            }
            for (k, _) in node.iter() {
                self.forget(soul.as_str(), k);
            }
        }
    }

    /// The part of a peer's write `incoming` that HAM found unchanged only
    /// because a reply brought the same keys first (the same state and value
    /// as that reply): to publish all the same. Those keys are forgotten.
    pub(super) fn take_unpushed(&mut self, incoming: &Graph) -> Graph {
        let mut out = Graph::new();
        if self.len == 0 {
            return out;
        }
        for (soul, node) in incoming.iter() {
            let Some(keys) = self.souls.get(soul.as_str()) else {
                continue;
            };
            let same: Vec<Arc<str>> = node
                .iter()
                .filter(|(k, e)| {
                    keys.get(&***k)
                        .is_some_and(|&(st, h)| st == e.state && h == value_hash(&e.value))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in same {
                self.forget(soul.as_str(), &k);
                if let Some(e) = node.get(&k) {
                    let _ = out.put(soul.clone(), k.clone(), e.state, e.value.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gun_graph::Value;

    fn one(soul: &str, key: &str, state: f64, v: &str) -> Graph {
        let mut g = Graph::new();
        g.put(
            Soul::new(soul).unwrap(),
            key,
            State::new(state).unwrap(),
            Value::string(v),
        )
        .unwrap();
        g
    }

    #[test]
    fn a_write_equal_to_what_a_reply_brought_is_handed_back_once() {
        let mut r = ReadNotPushed::default();
        let g = one("s", "k", 5.0, "v");
        r.read(&g);
        // Another state or value: HAM decides, nothing here.
        assert!(r.take_unpushed(&one("s", "k", 4.0, "v")).is_empty());
        assert!(r.take_unpushed(&one("s", "k", 5.0, "w")).is_empty());
        assert_eq!(r.take_unpushed(&g).key_count(), 1);
        assert!(r.take_unpushed(&g).is_empty(), "once");
        // Published otherwise first: forgotten.
        r.read(&g);
        r.pushed(&g);
        assert!(r.take_unpushed(&g).is_empty());
    }

    #[test]
    fn bounded_oldest_first() {
        let mut r = ReadNotPushed::default();
        for i in 0..MAX_READ_NOT_PUSHED + 10 {
            r.read(&one(&format!("s{i}"), "k", 1.0, "v"));
        }
        assert_eq!(r.len, MAX_READ_NOT_PUSHED);
        let first = one("s0", "k", 1.0, "v");
        assert!(r.take_unpushed(&first).is_empty());
        let last = one(&format!("s{}", MAX_READ_NOT_PUSHED + 9), "k", 1.0, "v");
        assert_eq!(r.take_unpushed(&last).key_count(), 1);
    }
}
