//! Writes: a peer's put, the data of a get reply, and this process's own
//! writes all go through one [`Engine::ingest`]: validators, HAM against what
//! is stored, the store, the cache, local listeners, the mesh.

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gun_dam::{Message, Origin, PeerId, PutContext, Validator};
use gun_graph::{Graph, Node, Soul, State};

use super::asks::{AskGuard, Replies, Wants};
use super::listen::notify_listeners;
use super::timers::Due;
use super::{Engine, Shared, now_ms, now_u64};
use crate::Error;

/// Options of a write ([`Engine::put_local`], `Chain::put_with`).
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// Wait for this many peers to ack the write (after it is durable locally).
    pub acks: usize,
    /// How long to wait for those acks.
    pub timeout: Duration,
    /// Keep the write's route open and hand back every message that answers
    /// it in [`PutAck::replies`] (for protocols that answer writes, such as
    /// WebRTC signalling). Default `false`.
    pub replies: bool,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            acks: 0,
            timeout: Duration::from_secs(9),
            replies: false,
        }
    }
}

/// What a write did.
#[derive(Debug)]
pub struct PutAck {
    /// Keys applied (a write equal to what is stored applies nothing).
    pub accepted: usize,
    /// Keys whose state was in the future (none for local writes).
    pub deferred: usize,
    /// Keys that changed nothing (older, identical, or a lost tie).
    pub rejected: usize,
    /// The message id the write went to peers under, if it went to peers.
    pub id: Option<String>,
    /// Peers that acked, when acks were asked for.
    pub acked_by: Vec<PeerId>,
    /// The answers to the write, with [`PutOptions::replies`] (`None` when it
    /// did not go to peers).
    pub replies: Option<Replies>,
}

/// What happened to a write, inside the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ingested {
    /// Keys applied (and stored).
    pub(super) accepted: usize,
    /// Keys whose state is in the future, applied when due.
    pub(super) deferred: usize,
    /// Keys that changed nothing (older, identical or tie lost).
    pub(super) rejected: usize,
    /// The message id under which a local write went to peers.
    pub(super) id: Option<String>,
}

impl Engine {
    pub(super) async fn remote_put(&self, from: PeerId, msg: Message) {
        let Some(graph) = msg.put.clone() else {
            return;
        };
        let dispatched = std::time::Instant::now();
        let id = msg.id.clone().unwrap_or_default();
        let origin = Origin::Peer {
            peer: from,
            id: id.clone(),
        };
        let answer = match self
            .ingest(graph, origin, Some(&msg), Wants::Events)
            .await
            .map(|r| r.0)
        {
            Ok(r) if r.deferred > 0 && r.accepted == 0 && r.rejected == 0 => None,
            Ok(_) => Some(Message::ack_ok(&id)),
            Err(Error::Rejected(text)) => Some(Message::ack_err(&id, &text)),
            Err(e) => Some(Message::ack_err(&id, e.to_string())),
        };
        if let Some(reply) = answer
            && !id.is_empty()
        {
            match &reply.err {
                None => {
                    self.inner.stats.acks_out.fetch_add(1, Ordering::Relaxed);
                }
                Some(err) => self.inner.stats.count_rejected(err),
            }
            let ok = reply.err.is_none();
            let outs = self.lock().mesh.reply(from, reply, now_u64());
            if ok {
                self.inner
                    .stats
                    .put_ack_latency
                    .observe(dispatched.elapsed());
            }
            self.execute(outs);
        }
    }

    /// Stores the data of a get reply (ours, or one this mesh routed).
    pub(super) async fn store_reply(&self, from: PeerId, msg: &Message) {
        let Some(graph) = msg.put.clone() else {
            return;
        };
        let origin = Origin::Reply {
            peer: from,
            id: msg.id.clone().unwrap_or_default(),
        };
        if let Err(e) = self.ingest(graph, origin, Some(msg), Wants::Events).await {
            tracing::debug!(peer = ?from, %e, "reply not stored");
        }
    }

    /// Loads the souls of `souls` that are not cached from the store.
    pub(super) async fn ensure_loaded<'a>(
        &self,
        souls: impl Iterator<Item = &'a Soul>,
    ) -> Result<(), Error> {
        let missing: Vec<Soul> = {
            let sh = self.lock();
            souls
                .filter(|s| sh.graph.get(s.as_str()).is_none())
                .cloned()
                .collect()
        };
        for soul in missing {
            let node = self.inner.store.get_node(soul.as_str()).await?;
            let mut sh = self.lock();
            if sh.graph.get(soul.as_str()).is_none() {
                sh.graph
                    .insert_node(node.unwrap_or_else(|| Node::new(soul.clone())));
                sh.cache_order.push_back(soul.clone());
                evict(&mut sh, self.inner.opts.cache_souls);
            }
        }
        Ok(())
    }

    /// Validates, merges through HAM, stores, applies, announces. A local
    /// write that went to peers comes back with the waiter for its answers
    /// (registered before anything was sent), which wants them as `wants` says.
    pub(super) async fn ingest(
        &self,
        graph: Graph,
        origin: Origin,
        message: Option<&Message>,
        wants: Wants,
    ) -> Result<(Ingested, Option<AskGuard>), Error> {
        if graph.is_empty() {
            return Ok((Ingested::default(), None));
        }
        {
            let validators: Vec<Arc<dyn Validator>> = {
                let v = self
                    .inner
                    .validators
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if v.is_empty() { Vec::new() } else { v.clone() }
            };
            let ctx = PutContext {
                graph: &graph,
                origin: &origin,
                message,
            };
            for v in validators {
                v.check(&ctx).map_err(Error::Rejected)?;
            }
        }
        self.ensure_loaded(graph.souls()).await?;
        let (preview, machine) = {
            let mut sh = self.lock();
            let machine = sh.clock.next(now_ms());
            (sh.graph.preview(&graph, machine), machine)
        };
        let mut result = Ingested {
            accepted: preview.accepted.key_count(),
            deferred: preview.deferred.len(),
            rejected: preview.rejected.len(),
            id: None,
        };
        if !preview.accepted.is_empty() {
            self.inner.store.put(&preview.accepted).await?;
        }
        let mut outs = Vec::new();
        let mut ack_guard = None;
        let mut outbox_copy: Option<Graph> = None;
        {
            let mut sh = self.lock();
            let applied = merge_cached(&mut sh.graph, &preview.accepted, machine);
            self.inner
                .stats
                .keys_accepted
                .fetch_add(applied.key_count() as u64, Ordering::Relaxed);
            // Keys a reply brought before this write are the write's all the
            // same, for listeners and subscribers (see `ReadNotPushed`).
            let applied = match &origin {
                Origin::Reply { .. } => {
                    sh.read_not_pushed.read(&applied);
                    applied
                }
                Origin::Peer { .. } => {
                    let sh = &mut *sh;
                    let mut all = sh.read_not_pushed.take_unpushed(&graph, &sh.graph);
                    sh.read_not_pushed.pushed(&applied);
                    if !all.is_empty() {
                        tracing::debug!(
                            keys = all.key_count(),
                            "a write whose data a reply brought first: published"
                        );
                        for n in applied.nodes() {
                            for (k, e) in n.iter() {
                                let _ =
                                    all.put(n.soul().clone(), k.clone(), e.state, e.value.clone());
                            }
                        }
                    }
                    if all.is_empty() { applied } else { all }
                }
                Origin::Local => {
                    sh.read_not_pushed.pushed(&applied);
                    applied
                }
            };
            notify_listeners(&mut sh, &applied, &origin);
            if !applied.is_empty() {
                match &origin {
                    // A purely local engine (no peer, no URL) skips the mesh.
                    Origin::Local if !sh.remote => {}
                    Origin::Local => {
                        if self.inner.store.keeps_outbox() {
                            outbox_copy = Some(applied.clone());
                        }
                        let (id, o) = sh.mesh.request(Message::put(applied), now_u64());
                        // Register the ack waiter and the outbox entry before
                        // anything is sent.
                        ack_guard = Some(self.ask(&mut sh, &id, wants));
                        Engine::outbox_enter(&mut sh, &id);
                        result.id = Some(id);
                        outs = o;
                    }
                    Origin::Peer { peer, id } => {
                        outs = sh
                            .mesh
                            .publish(&applied, Some((*peer, id.clone())), now_u64());
                    }
                    // Get replies reach the asker through the mesh's routing.
                    Origin::Reply { .. } => {}
                }
            }
            if !preview.deferred.is_empty() {
                let message_id = match &origin {
                    Origin::Peer { id, .. } => Some(id.clone()),
                    _ => None,
                };
                if let Some(mid) = &message_id {
                    *sh.deferred_pending.entry(mid.clone()).or_default() += preview.deferred.len();
                }
                for d in preview.deferred {
                    sh.deferred.push(Reverse(Due {
                        state: d.state,
                        item: d,
                        origin: origin.clone(),
                        message_id: message_id.clone(),
                    }));
                }
                self.inner.deferred_wake.notify_one();
            }
        }
        // A durable outbox holds the write before its frames leave: killed
        // after this put resolved, the program sends it when it starts again.
        if let (Some(id), Some(diff)) = (&result.id, &outbox_copy) {
            self.outbox_store(id, diff).await;
        }
        self.execute(outs);
        Ok((result, ack_guard))
    }

    /// Writes a graph made by this process (the Chain API's puts, signed user
    /// data, signalling): the one call for every local write.
    ///
    /// Resolves once the write is applied locally and durable in the local
    /// store; with `opts.acks`, once that many peers also acked it (at most
    /// `opts.timeout`, else [`Error::AckTimeout`]; a peer's `err` is
    /// [`Error::PeerRefused`]); with `opts.replies`, [`PutAck::replies`] keeps
    /// the write's route open: every message answering it (acks, and WebRTC
    /// offers riding on them, §11.3) arrives there until it is dropped.
    pub async fn put_local(&self, graph: Graph, opts: &PutOptions) -> Result<PutAck, Error> {
        let wants = if opts.replies {
            Wants::Messages
        } else {
            Wants::Events
        };
        let (r, guard) = self.ingest(graph, Origin::Local, None, wants).await?;
        let mut ack = PutAck {
            accepted: r.accepted,
            deferred: r.deferred,
            rejected: r.rejected,
            id: r.id,
            acked_by: Vec::new(),
            replies: None,
        };
        let Some(mut guard) = guard else {
            if opts.acks > 0 {
                // Nothing went to peers (no peer known, or nothing changed).
                return Err(Error::AckTimeout {
                    got: 0,
                    wanted: opts.acks,
                });
            }
            return Ok(ack);
        };
        if opts.acks > 0 {
            ack.acked_by = self.wait_acks(&mut guard, opts.acks, opts.timeout).await?;
        }
        if opts.replies {
            ack.replies = Some(Replies { guard });
        }
        Ok(ack)
    }
}

/// Applies an accepted diff to the cache. Souls no longer cached (evicted while
/// the store wrote) are not re-created partially: the next read loads them from
/// the store, which has the write. Returns what changed.
fn merge_cached(cache: &mut Graph, accepted: &Graph, machine: State) -> Graph {
    if accepted.souls().all(|s| cache.get(s.as_str()).is_some()) {
        return cache.merge(accepted, machine).accepted;
    }
    let mut cached = Graph::new();
    let mut applied = Graph::new();
    for (soul, node) in accepted.iter() {
        if cache.get(soul.as_str()).is_some() {
            cached.insert_node(node.clone());
        } else {
            applied.insert_node(node.clone());
        }
    }
    for (_, n) in cache.merge(&cached, machine).accepted {
        applied.insert_node(n);
    }
    applied
}

/// Keeps the cache within `max` souls, dropping the oldest first; souls with
/// local listeners stay.
pub(super) fn evict(sh: &mut Shared, max: usize) {
    let mut guard = sh.cache_order.len();
    while sh.graph.len() > max && guard > 0 {
        guard -= 1;
        let Some(soul) = sh.cache_order.pop_front() else {
            break;
        };
        if sh.listeners.contains_key(soul.as_str()) {
            sh.cache_order.push_back(soul);
            continue;
        }
        sh.graph.remove(soul.as_str());
    }
    // Souls removed by merges (empty nodes) leave stale entries behind; keep the
    // queue from growing past the cache by much.
    if sh.cache_order.len() > max.saturating_mul(2).max(1024) {
        let graph = &sh.graph;
        sh.cache_order.retain(|s| graph.get(s.as_str()).is_some());
    }
}
