//! Writes: a peer's put, the data of a get reply, and this process's own
//! writes all go through one [`Engine::ingest`]: validators, HAM against what
//! is stored, the store, the cache, local listeners, the mesh.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gun_dam::{Message, Origin, Output, PeerId, PutContext, Validator};
use gun_graph::{Deferred, Graph, Node, Soul, State};

use super::asks::{AskGuard, Replies, Wants};
use super::cache::apply_answer;
use super::listen::notify_listeners;
use super::timers::Due;
use super::{Engine, Shared, now_u64};
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

/// A peer's write to ack in the same lock that applies it (the usual case:
/// all of it stored now), instead of taking the engine's lock once more.
pub(super) struct AckPlan {
    /// The writer.
    from: PeerId,
    /// The souls marked as being written when it arrived; `None` once ended.
    pending: Option<Vec<Soul>>,
    /// When the write was dispatched (for the ack latency histogram).
    dispatched: std::time::Instant,
}

impl Engine {
    /// A peer's write: ingest it, ack it, and end `pending` (the souls
    /// marked as being written when it arrived) under the ack's lock.
    pub(super) async fn remote_put(&self, from: PeerId, msg: Box<Message>, pending: Vec<Soul>) {
        let dispatched = std::time::Instant::now();
        // The id is copied once (the message keeps its own for validators):
        // lent to the write as its origin, then moved into an ack made here.
        let origin = Origin::Peer {
            peer: from,
            id: msg.id.clone().unwrap_or_default(),
        };
        let mut plan = AckPlan {
            from,
            pending: Some(pending),
            dispatched,
        };
        let outcome = match &msg.put {
            None => None,
            Some(graph) => Some(
                self.ingest_part(
                    graph,
                    &origin,
                    Some(&msg),
                    Wants::Events,
                    false,
                    Some(&mut plan),
                )
                .await
                .map(|r| r.0),
            ),
        };
        let Some(pending) = plan.pending.take() else {
            // Acked and ended under the lock that applied it.
            self.writes_ended();
            return;
        };
        let id = match origin {
            Origin::Peer { id, .. } => id,
            _ => String::new(),
        };
        let reply = match outcome {
            _ if id.is_empty() => None,
            None => None,
            // Keys ahead of the clock wait until due; the put is acked once
            // they are applied (`timers.rs`): an ack says all of it is stored.
            Some(Ok(r)) if r.deferred > 0 => None,
            Some(Ok(_)) => Some(Message::ack_ok(id)),
            Some(Err(Error::Rejected(text))) => Some(Message::ack_err(id, text)),
            Some(Err(e)) => Some(Message::ack_err(id, e.to_string())),
        };
        let later = {
            let mut sh = self.lock();
            Engine::writes_end(&mut sh, pending);
            reply.map(|reply| {
                let mut outs = Vec::with_capacity(1);
                self.answer_write(&mut sh, from, reply, dispatched, &mut outs);
                self.execute_locked(&mut sh, outs)
            })
        };
        self.writes_ended();
        if let Some(later) = later {
            self.finish(later);
        }
    }

    /// The answer to a peer's write, counted (an ack in `acks_out` and the ack
    /// latency, an `err` by its reason) and routed to the writer; under the
    /// engine's lock.
    fn answer_write(
        &self,
        sh: &mut Shared,
        from: PeerId,
        reply: Message,
        dispatched: std::time::Instant,
        out: &mut Vec<Output>,
    ) {
        match &reply.err {
            None => {
                self.inner.stats.acks_out.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .stats
                    .put_ack_latency
                    .observe(dispatched.elapsed());
            }
            Some(err) => self.inner.stats.count_rejected(err),
        }
        sh.mesh.reply_into(from, reply, now_u64(), out);
    }

    /// Stores the data of a get reply (ours, or one this mesh routed).
    pub(super) async fn store_reply(&self, from: PeerId, msg: &Message) {
        let Some(graph) = &msg.put else {
            return;
        };
        let origin = Origin::Reply {
            peer: from,
            id: msg.id.clone().unwrap_or_default(),
        };
        if let Err(e) = self.ingest(graph, &origin, Some(msg), Wants::Events).await {
            tracing::debug!(peer = ?from, %e, "reply not stored");
        }
    }

    /// Validates, merges through HAM, stores, applies, announces. A local
    /// write that went to peers comes back with the waiter for its answers
    /// (registered before anything was sent), which wants them as `wants` says.
    pub(super) async fn ingest(
        &self,
        graph: &Graph,
        origin: &Origin,
        message: Option<&Message>,
        wants: Wants,
    ) -> Result<(Ingested, Option<AskGuard>), Error> {
        self.ingest_part(graph, origin, message, wants, false, None)
            .await
    }

    /// [`Engine::ingest`] of the keys of a peer's put whose states came due
    /// (`timers.rs`): they go to peers under a fresh id, since the peers saw
    /// the put's own `#` with the rest of it.
    pub(super) async fn ingest_due(
        &self,
        graph: &Graph,
        origin: &Origin,
    ) -> Result<(Ingested, Option<AskGuard>), Error> {
        self.ingest_part(graph, origin, None, Wants::Events, true, None)
            .await
    }

    /// [`Engine::ingest`]; `late` for keys applied when due. With `ack`, a
    /// peer's write stored whole is acked (and its pending souls ended) in
    /// the lock that applies it; `ack.pending` is then taken.
    async fn ingest_part(
        &self,
        graph: &Graph,
        origin: &Origin,
        message: Option<&Message>,
        wants: Wants,
        late: bool,
        ack: Option<&mut AckPlan>,
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
                graph,
                origin,
                message,
            };
            for v in validators {
                v.check(&ctx).map_err(Error::Rejected)?;
            }
        }
        // Keys ahead of the machine clock wait until due (state against the
        // clock: no HAM needed); the rest goes to the store, which answers
        // what it applied (its HAM pass is the only one against what is
        // stored: no read before the write, no preview against the cache).
        let machine = self.machine_state();
        let (now, deferred) = split_deferred(graph, machine);
        if !deferred.is_empty() {
            let limit = self.inner.opts.max_deferred_keys;
            if self.lock().deferred.len() + deferred.len() > limit {
                tracing::debug!(keys = deferred.len(), limit, "future-state write refused");
                return Err(Error::TooManyDeferred { limit });
            }
        }
        let offered = now.key_count();
        let answer = if now.is_empty() {
            Graph::new()
        } else {
            self.inner.store.put(&now).await?
        };
        let mut result = Ingested {
            accepted: answer.key_count(),
            deferred: deferred.len(),
            rejected: offered.saturating_sub(answer.key_count()),
            id: None,
        };
        let mut outs = Vec::new();
        let mut ack_guard = None;
        let mut outbox_copy: Option<Graph> = None;
        let mut unloaded_listened: Vec<Soul> = Vec::new();
        let mut late_news: Option<Graph> = None;
        let mut warm: Vec<Soul> = Vec::new();
        let later = {
            let mut sh = self.lock();
            self.inner
                .stats
                .keys_accepted
                .fetch_add(answer.key_count() as u64, Ordering::Relaxed);
            let applied = apply_answer(&mut sh, answer);
            // Keys a reply brought before this write are the write's all the
            // same, for listeners and subscribers (see `ReadNotPushed`).
            let applied = match origin {
                Origin::Reply { .. } => {
                    sh.read_not_pushed.read(&applied);
                    applied
                }
                Origin::Peer { .. } => {
                    let mut all = sh.read_not_pushed.take_unpushed(&now);
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
            drop(now);
            if !sh.listeners.is_empty() {
                unloaded_listened = applied
                    .souls()
                    .filter(|s| {
                        sh.listeners.contains_key(s.as_str()) && sh.graph.get(s.as_str()).is_none()
                    })
                    .cloned()
                    .collect();
            }
            notify_listeners(&mut sh, &applied, origin);
            if !unloaded_listened.is_empty() {
                late_news = Some(applied.clone());
            }
            // Written souls that are not cached are read into the cache after
            // the write (off the write's path), while the cache has room: a
            // get that follows is then answered from memory, and a get this
            // relay forwards carries the `##` of its copy, so peers holding
            // the same data stay silent. A full cache is not churned for it.
            if !matches!(origin, Origin::Reply { .. })
                && sh.remote
                && sh.cache_order.len() < self.inner.opts.cache_souls
            {
                warm = applied
                    .souls()
                    .filter(|s| {
                        sh.graph.get(s.as_str()).is_none() && !sh.loading.contains_key(s.as_str())
                    })
                    .filter(|s| !unloaded_listened.contains(s))
                    .cloned()
                    .collect();
            }
            if !applied.is_empty() {
                match origin {
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
                    Origin::Peer { peer, id } if late => {
                        outs = sh.mesh.publish_late(&applied, *peer, id, now_u64());
                    }
                    Origin::Peer { peer, id } => {
                        outs = sh
                            .mesh
                            .publish(&applied, Some((*peer, id.as_str())), now_u64());
                    }
                    // Get replies reach the asker through the mesh's routing.
                    Origin::Reply { .. } => {}
                }
            }
            let deferred_none = deferred.is_empty();
            if !deferred_none {
                let message_id = match origin {
                    Origin::Peer { id, .. } => Some(id.clone()),
                    _ => None,
                };
                if let Some(mid) = &message_id {
                    sh.deferred_pending.entry(mid.clone()).or_default().0 += deferred.len();
                }
                for d in deferred {
                    sh.deferred.push(Reverse(Due {
                        state: d.state,
                        item: d,
                        origin: origin.clone(),
                        message_id: message_id.clone(),
                    }));
                }
                self.inner.deferred_wake.notify_one();
            }
            // The ack of a peer's write stored whole: in this lock, after the
            // write's pushes.
            if let (Some(plan), Origin::Peer { id, .. }) = (ack, origin)
                && deferred_none
                && !id.is_empty()
            {
                if let Some(pending) = plan.pending.take() {
                    Engine::writes_end(&mut sh, pending);
                }
                let ack = Message::ack_ok(id.as_str());
                self.answer_write(&mut sh, plan.from, ack, plan.dispatched, &mut outs);
            }
            // Frames leave under this lock, unless the outbox must hold the
            // write first.
            if outbox_copy.is_none() {
                Some(self.execute_locked(&mut sh, std::mem::take(&mut outs)))
            } else {
                None
            }
        };
        // A durable outbox holds the write before its frames leave: killed
        // after this put resolved, the program sends it when it starts again.
        if let (Some(id), Some(diff)) = (&result.id, &outbox_copy) {
            self.outbox_store(id, diff).await;
        }
        if let Some(later) = later {
            self.finish(later);
        }
        self.execute(outs);
        // Listeners of a soul that is not cached get the whole node, read
        // from the store after the write (rare: a listened soul stays cached).
        if let Some(news) = late_news {
            self.notify_loaded(&unloaded_listened, &news, origin).await;
        }
        if !warm.is_empty() {
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.ensure_loaded(warm.iter()).await {
                    tracing::debug!(%e, "reading written souls into the cache failed");
                }
            });
        }
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
        let (r, guard) = self.ingest(&graph, &Origin::Local, None, wants).await?;
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

/// Splits a write into the keys due now (borrowed when that is all of them:
/// the common case costs no copy) and those whose state is ahead of `machine`
/// (to apply when due).
fn split_deferred(graph: &Graph, machine: State) -> (Cow<'_, Graph>, Vec<Deferred>) {
    let ahead = graph
        .nodes()
        .any(|n| n.iter().any(|(_, e)| e.state > machine));
    if !ahead {
        return (Cow::Borrowed(graph), Vec::new());
    }
    let mut now = Graph::new();
    let mut deferred = Vec::new();
    for node in graph.nodes() {
        let soul = node.soul();
        let mut due = Node::new(soul.clone());
        for (key, e) in node.iter() {
            if e.state > machine {
                deferred.push(Deferred {
                    soul: soul.clone(),
                    key: key.clone(),
                    state: e.state,
                    value: e.value.clone(),
                });
            } else {
                // Keys inside a node are never `_`.
                let _ = due.insert(key.clone(), e.state, e.value.clone());
            }
        }
        if !due.is_empty() {
            now.insert_node(due);
        }
    }
    (Cow::Owned(now), deferred)
}
