//! Where the mesh meets the engine: the [`Hub`] transports call, and the
//! execution of the mesh's [`Output`]s — frames to links, and each message
//! the mesh classified to the code for it (puts, gets, replies, acks).

use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use gun_dam::{Direction, Get, Hub, Link, Message, Output, PeerId};
use gun_graph::{Graph, Soul};

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
                Output::Send { to, frame } => {
                    if let Some(link) = sh.links.get(&to)
                        && let Err(e) = link.send(frame)
                    {
                        later.dead.push((to, format!("send failed: {e:?}")));
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
                    let pending = match &o {
                        Output::Put { msg, .. }
                        | Output::Reply { msg, .. }
                        | Output::Relayed { msg, .. } => writes_begin(sh, msg.put.as_ref()),
                        _ => Vec::new(),
                    };
                    later.deliver.push((o, pending));
                }
                o @ (Output::Get { .. } | Output::Ack { .. }) => {
                    later.deliver.push((o, Vec::new()));
                }
            }
        }
        later
    }

    /// What [`Engine::execute_locked`] left for after the lock.
    pub(super) fn finish(&self, later: Later) {
        for (peer, reason) in later.dead {
            tracing::info!(?peer, %reason, "closing peer");
            let link = self.lock().links.get(&peer).cloned();
            if let Some(link) = link {
                link.close(&reason);
            }
            self.detach(peer);
        }
        for (o, pending) in later.deliver {
            self.dispatch(o, pending);
        }
        self.execute(later.more);
    }

    /// Hands one message to the code for what it is.
    fn dispatch(&self, out: Output, pending: Vec<Soul>) {
        match out {
            Output::Put { from, msg } => {
                self.inner.stats.puts_in.fetch_add(1, Ordering::Relaxed);
                let me = self.clone();
                tokio::spawn(async move {
                    // Ends `pending` under the lock of its ack.
                    me.remote_put(from, msg, pending).await;
                });
            }
            Output::Get { from, msg } => {
                self.inner.stats.gets_in.fetch_add(1, Ordering::Relaxed);
                let me = self.clone();
                tokio::spawn(async move {
                    // A get sees every write that arrived before it (read your
                    // writes, as Gun.js's in-order processing gives).
                    if let Some(soul) = msg.get.as_ref().and_then(|g| g.exact_soul()) {
                        me.writes_settled(soul).await;
                    }
                    me.remote_get(from, msg).await
                });
            }
            // Data answering a get (ours, or one we forwarded): store it, then
            // tell whoever waits on it.
            Output::Reply { from, msg } | Output::Relayed { from, msg } if msg.put.is_some() => {
                let me = self.clone();
                tokio::spawn(async move {
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

/// What [`Engine::execute_locked`] leaves for after the lock.
#[derive(Default)]
pub(super) struct Later {
    dead: Vec<(PeerId, String)>,
    /// Messages for the engine, with the souls marked as being written.
    deliver: Vec<(Output, Vec<Soul>)>,
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

impl Hub for Engine {
    fn attach(&self, link: Arc<dyn Link>, dir: Direction) -> PeerId {
        let outs;
        let peer;
        {
            let mut sh = self.lock();
            peer = PeerId(sh.next_id);
            sh.next_id += 1;
            sh.links.insert(peer, link);
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
        let later = {
            let mut sh = self.lock();
            let outs = sh.mesh.receive_decoded(peer, decoded, now_u64());
            self.execute_locked(&mut sh, outs)
        };
        self.finish(later);
    }

    fn detach(&self, peer: PeerId) {
        let mut sh = self.lock();
        sh.links.remove(&peer);
        sh.mesh.disconnect(peer);
    }

    fn dialing(&self, url: &str) {
        self.expect_peer(url);
    }
}
