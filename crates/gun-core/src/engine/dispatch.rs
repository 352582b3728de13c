//! Where the mesh meets the engine: the [`Hub`] transports call, and the
//! execution of the mesh's [`Output`]s — frames to links, and each message
//! the mesh classified to the code for it (puts, gets, replies, acks).

use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use gun_dam::{Direction, Get, Hub, Link, Message, OutFrame, Output, PeerId, Ready};
use gun_graph::{Graph, Soul};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::asks::AskEvent;
use super::{Engine, Shared, now_u64};

impl Engine {
    /// Carries out what the mesh asked for: frames to send, connections to
    /// close, and messages to handle (each by what the mesh said it is).
    pub(super) fn execute(&self, outs: Vec<Output>) {
        if outs.is_empty() {
            return;
        }
        let later = {
            let mut sh = self.lock();
            self.execute_locked(&mut sh, outs)
        };
        self.finish(later);
    }

    /// The part of [`Engine::execute`] done under the lock the caller holds
    /// already (so that routing, sending and the bookkeeping of a message
    /// take the lock once): frames go to their links, incoming writes are
    /// marked as in progress for their souls (in arrival order, so that later
    /// gets wait for them); the rest is returned for [`Engine::finish`],
    /// which runs after the lock is released.
    pub(super) fn execute_locked(&self, sh: &mut Shared, outs: Vec<Output>) -> Later {
        let mut later = Later::default();
        for o in outs {
            match o {
                // Sent (and acks and pushes encoded) after the lock, in order.
                Output::Send { to, frame } => {
                    if let Some(link) = sh.links.get(&to) {
                        later.sends.push((to, Arc::clone(link), frame));
                    }
                }
                Output::InvalidPut { from, id, error } => {
                    tracing::debug!(peer = ?from, %error, "invalid put");
                    self.inner.stats.count_rejected(&error.to_string());
                    if let Some(id) = id {
                        let reply = Message::ack_err(&id, error.to_string());
                        later.more.extend(sh.mesh.reply(from, reply, now_u64()));
                    }
                }
                Output::Close { peer, reason } => later.dead.push((peer, reason)),
                o @ (Output::Put { .. } | Output::Reply { .. } | Output::Relayed { .. }) => {
                    let (pending, slot) = match &o {
                        Output::Put { msg, from }
                        | Output::Reply { msg, from }
                        | Output::Relayed { msg, from } => (
                            writes_begin(sh, msg.put.as_ref()),
                            if msg.put.is_some() {
                                self.slot(*from)
                            } else {
                                Slot::Free
                            },
                        ),
                        _ => (Vec::new(), Slot::Free),
                    };
                    later.deliver.push((o, pending, slot));
                }
                o @ Output::Get { from, .. } => {
                    let slot = self.slot(from);
                    later.deliver.push((o, Vec::new(), slot));
                }
                o @ Output::Ack { .. } => {
                    later.deliver.push((o, Vec::new(), Slot::Free));
                }
            }
        }
        later
    }

    /// What [`Engine::execute_locked`] left for after the lock.
    pub(super) fn finish(&self, mut later: Later) {
        for (to, link, frame) in later.sends {
            if let Err(e) = link.send(Arc::clone(frame.text())) {
                later.dead.push((to, format!("send failed: {e:?}")));
            }
        }
        for (peer, reason) in later.dead {
            tracing::info!(?peer, %reason, "closing peer");
            let link = self.lock().links.get(&peer).cloned();
            if let Some(link) = link {
                link.close(&reason);
            }
            self.detach(peer);
        }
        for (o, pending, slot) in later.deliver {
            self.dispatch(o, pending, slot);
        }
        self.execute(later.more);
    }

    /// Hands one message to the code for what it is.
    ///
    /// A message that takes time (a put, a get, a reply with data) runs in a
    /// task holding one of its peer's in-flight slots (`slot`), released when
    /// it ends; [`Hub::ready`] holds the peer's reading back while none is
    /// free.
    fn dispatch(&self, out: Output, pending: Vec<Soul>, slot: Slot) {
        match out {
            Output::Put { from, msg } => {
                self.inner.stats.puts_in.fetch_add(1, Ordering::Relaxed);
                let me = self.clone();
                tokio::spawn(async move {
                    let _permit = slot.take().await;
                    // Ends `pending` under the lock of its ack. Boxed: the
                    // put's future is large, and the runtime copies a task's
                    // future whole when it creates the task and at each change
                    // of stage (3.5 % of a put's instructions, counted).
                    Box::pin(me.remote_put(from, msg, pending)).await;
                });
            }
            Output::Get { from, msg } => {
                self.inner.stats.gets_in.fetch_add(1, Ordering::Relaxed);
                let me = self.clone();
                tokio::spawn(async move {
                    let _permit = slot.take().await;
                    // A get sees every write that arrived before it (read your
                    // writes, as Gun.js's in-order processing gives).
                    if let Some(soul) = msg.get.as_ref().and_then(|g| g.exact_soul()) {
                        me.writes_settled(soul).await;
                    }
                    Box::pin(me.remote_get(from, msg)).await
                });
            }
            // Data answering a get (ours, or one we forwarded): store it, then
            // tell whoever waits on it.
            Output::Reply { from, msg } | Output::Relayed { from, msg } if msg.put.is_some() => {
                let me = self.clone();
                tokio::spawn(async move {
                    let _permit = slot.take().await;
                    let found = msg.put.as_ref().is_some_and(|g| !g.is_empty());
                    me.store_reply(from, &msg).await;
                    Engine::writes_end(&mut me.lock(), pending);
                    me.writes_ended();
                    if let Some(at) = &msg.reply_to {
                        me.notify_ask(at, AskEvent::Reply { from, found }, from, &msg);
                    }
                });
            }
            Output::Reply { from, msg } => {
                if let Some(at) = &msg.reply_to {
                    let ev = AskEvent::Reply { from, found: false };
                    self.notify_ask(at, ev, from, &msg);
                }
            }
            Output::Ack { from, msg } => {
                if let Some(at) = &msg.reply_to {
                    self.outbox_answered(at, from, msg.err.as_deref());
                    let ev = AskEvent::Ack {
                        from,
                        err: msg.err.clone(),
                    };
                    self.notify_ask(at, ev, from, &msg);
                }
            }
            Output::Relayed { .. } => {}
            Output::Send { .. } | Output::InvalidPut { .. } | Output::Close { .. } => {
                tracing::debug!("not a message for the engine: {out:?}");
            }
        }
    }

    /// Ends the writes [`writes_begin`] marked (call
    /// [`Engine::writes_ended`] after releasing the lock).
    pub(super) fn writes_end(sh: &mut Shared, souls: Vec<Soul>) {
        for s in souls {
            if let MapEntry::Occupied(mut o) = sh.writing.entry(s) {
                *o.get_mut() -= 1;
                if *o.get() == 0 {
                    o.remove();
                }
            }
        }
    }

    /// Wakes the gets waiting for writes to end.
    pub(super) fn writes_ended(&self) {
        self.inner.write_done.notify_waiters();
    }

    /// Waits until no write to `soul` that arrived earlier is still in progress.
    pub(super) async fn writes_settled(&self, soul: &Soul) {
        loop {
            let done = self.inner.write_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if !self.lock().writing.contains_key(soul.as_str()) {
                return;
            }
            done.await;
        }
    }
}

/// One of a peer's in-flight slots for a message's task.
pub(super) enum Slot {
    /// Not counted (the engine's own answers, unknown peers).
    Free,
    /// Taken when the message arrived.
    Held(OwnedSemaphorePermit),
    /// None was free (several messages in one frame): the task waits for one
    /// before it works.
    Wait(Arc<Semaphore>),
}

impl Slot {
    async fn take(self) -> Option<OwnedSemaphorePermit> {
        match self {
            Slot::Free => None,
            Slot::Held(p) => Some(p),
            Slot::Wait(s) => s.acquire_owned().await.ok(),
        }
    }
}

impl Engine {
    /// The semaphore of `peer`'s in-flight slots, when it has one.
    fn in_flight_of(&self, peer: PeerId) -> Option<Arc<Semaphore>> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&peer)
            .cloned()
    }

    /// A slot for a message of `peer` (see [`Slot`]).
    fn slot(&self, peer: PeerId) -> Slot {
        match self.in_flight_of(peer) {
            None => Slot::Free,
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Slot::Held(p),
                Err(_) => Slot::Wait(s),
            },
        }
    }
}

/// What [`Engine::execute_locked`] leaves for after the lock.
#[derive(Default)]
pub(super) struct Later {
    /// Frames for links, in the order the mesh gave them: sent, and encoded
    /// if they were not yet, once the lock is released.
    sends: Vec<(PeerId, Arc<dyn Link>, OutFrame)>,
    dead: Vec<(PeerId, String)>,
    /// Messages for the engine, with the souls marked as being written and
    /// their in-flight slots.
    deliver: Vec<(Output, Vec<Soul>, Slot)>,
    more: Vec<Output>,
}

/// Marks the souls of an incoming write as being written, in arrival order,
/// so that later gets wait for it.
fn writes_begin(sh: &mut Shared, graph: Option<&Graph>) -> Vec<Soul> {
    let Some(graph) = graph else {
        return Vec::new();
    };
    let souls: Vec<Soul> = graph.souls().cloned().collect();
    for s in &souls {
        *sh.writing.entry(s.clone()).or_default() += 1;
    }
    souls
}

/// A future that is ready at once, of size zero: boxing it allocates nothing
/// (`std::future::Ready<()>` holds an `Option<()>`, so [`Hub::ready`] cost an
/// allocation per message read).
struct Now;

impl Future for Now {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

/// Waits until `s` has a free permit (taking none).
async fn wait_for_permit(s: Arc<Semaphore>) {
    // A closed semaphore (never closed here) ends the wait too.
    drop(s.acquire().await);
}

impl Hub for Engine {
    fn attach(&self, link: Arc<dyn Link>, dir: Direction) -> PeerId {
        let outs;
        let peer;
        {
            let mut sh = self.lock();
            peer = PeerId(sh.next_id);
            sh.next_id += 1;
            sh.links.insert(peer, link);
            self.inner
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(
                    peer,
                    Arc::new(Semaphore::new(
                        self.inner.opts.max_in_flight_per_peer.max(1),
                    )),
                );
            sh.remote = true;
            let direct = matches!(dir, Direction::Direct { .. });
            let now = now_u64();
            let mut o = sh.mesh.connect(peer, dir, now);
            if direct {
                // A direct link (WebRTC) has no URL whose gets the mesh would
                // re-send: ask it for every soul listened to here, so that it
                // pushes their changes (Gun.js re-sends its live gets on `hi`).
                let souls: Vec<Soul> = sh.listeners.keys().cloned().collect();
                for soul in souls {
                    let (_, more) = sh.mesh.request_to(peer, Message::get(Get::node(soul)), now);
                    o.extend(more);
                }
            }
            o.extend(self.publish_restored(&mut sh));
            outs = o;
        }
        self.execute(outs);
        self.inner.attached.notify_waiters();
        peer
    }

    /// Decoding (parse, signature checks, predicates) runs on the caller's
    /// task outside the engine's lock; only routing takes it (and, when a
    /// verifier is to run, one short look at the dedup table first so that
    /// duplicates are not verified again).
    fn receive(&self, peer: PeerId, frame: &str) {
        let decoder = &self.inner.decoder;
        let mut decoded = decoder.decode(frame);
        if decoded.wants_verify(decoder) {
            self.lock().mesh.drop_seen(&mut decoded, now_u64());
        }
        decoder.admit(peer, &mut decoded);
        let chunk = self.inner.opts.reply_chunk_keys.max(1);
        let later = {
            let mut guard = self.lock();
            let sh = &mut *guard;
            let graph = &sh.graph;
            // A get we can answer from memory is forwarded with the `##` of
            // our answer, so that peers holding the same data stay silent.
            let outs = sh
                .mesh
                .receive_decoded_with(peer, decoded, now_u64(), &mut |get| {
                    super::reads::cached_answer_hash(graph, get, chunk)
                });
            self.execute_locked(&mut guard, outs)
        };
        self.finish(later);
    }

    /// Ready while the peer has a free in-flight slot
    /// ([`EngineOptions::max_in_flight_per_peer`](crate::EngineOptions::max_in_flight_per_peer)).
    fn ready(&self, peer: PeerId) -> Ready {
        match self.in_flight_of(peer) {
            Some(s) if s.available_permits() == 0 => Box::pin(async move {
                wait_for_permit(s).await;
            }),
            _ => Box::pin(Now),
        }
    }

    fn detach(&self, peer: PeerId) {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&peer);
        let mut sh = self.lock();
        sh.links.remove(&peer);
        sh.mesh.disconnect(peer);
    }

    fn dialing(&self, url: &str) {
        self.expect_peer(url);
    }
}
