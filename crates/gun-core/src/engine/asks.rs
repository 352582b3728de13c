//! Waiting for answers to our own messages: acks of local writes, replies to
//! our gets, and whole messages for protocols that talk in answers (WebRTC
//! signalling, §11.3). A waiter is registered under the `#` it waits on and
//! removed when its guard is dropped.

use std::time::Duration;

use gun_dam::{Message, PeerId};
use tokio::sync::mpsc;

use super::{Engine, Shared, now_u64};
use crate::Error;

/// A message that answers one of ours (`@` = our `#`), in full: an ack, a get
/// reply, a signalling answer with its `ok` payload.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The connection it came from.
    pub from: PeerId,
    /// The message as received (for a push ack a relay translated, with the
    /// relay's `@`).
    pub message: Message,
}

/// The replies to one of our messages, as they arrive ([`PutOptions::replies`](crate::PutOptions::replies),
/// [`Engine::answer`]). The route closes when this is dropped; later replies
/// are dropped.
pub struct Replies {
    pub(super) guard: AskGuard,
}

impl Replies {
    /// The `#` of the message these answer.
    pub fn id(&self) -> &str {
        &self.guard.id
    }

    /// The next reply; `None` once the engine is gone.
    pub async fn next(&mut self) -> Option<Reply> {
        loop {
            match self.guard.rx.recv().await? {
                AskEvent::Message(r) => return Some(*r),
                AskEvent::Reply { .. } | AskEvent::Ack { .. } => {}
            }
        }
    }
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("id", &self.guard.id)
            .finish()
    }
}

/// What a waiter receives.
#[derive(Debug, Clone)]
pub(super) enum AskEvent {
    /// A peer answered a get; `found` when it carried data (already merged).
    Reply { from: PeerId, found: bool },
    /// A peer acked a write (`err`: it refused it).
    Ack { from: PeerId, err: Option<String> },
    /// Any answer, in full (waiters that want [`Wants::Messages`]).
    Message(Box<Reply>),
}

/// How a waiter wants its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wants {
    /// Summaries ([`AskEvent::Reply`], [`AskEvent::Ack`]).
    Events,
    /// Whole messages ([`AskEvent::Message`]).
    Messages,
}

/// A registered waiter.
pub(super) struct Waiter {
    tx: mpsc::UnboundedSender<AskEvent>,
    wants: Wants,
}

/// Removes the waiter when dropped.
pub(super) struct AskGuard {
    engine: Engine,
    id: String,
    pub(super) rx: mpsc::UnboundedReceiver<AskEvent>,
}

impl Drop for AskGuard {
    fn drop(&mut self) {
        self.engine.lock().asks.remove(&self.id);
    }
}

impl Engine {
    /// Sends `msg`, which answers a message we received (`msg.reply_to` = its
    /// `#`, for example [`Change::origin`](crate::Change::origin)'s or a [`Reply`]'s `#`), back the way that
    /// message came, and returns the replies to it. `msg.id` is filled in when
    /// unset. When the route is unknown or expired nothing is sent (debug
    /// event) and no reply will come.
    pub fn answer(&self, msg: Message) -> Replies {
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, outs) = {
            let mut sh = self.lock();
            let (id, outs) = sh.mesh.answer(msg, now_u64());
            sh.asks.insert(
                id.clone(),
                Waiter {
                    tx,
                    wants: Wants::Messages,
                },
            );
            (id, outs)
        };
        self.execute(outs);
        Replies {
            guard: AskGuard {
                engine: self.clone(),
                id,
                rx,
            },
        }
    }

    /// Registers a waiter for answers to message `id`, under the lock (so it
    /// is in place before the message's frames can leave).
    pub(super) fn ask(&self, sh: &mut Shared, id: &str, wants: Wants) -> AskGuard {
        let (tx, rx) = mpsc::unbounded_channel();
        sh.asks.insert(id.to_string(), Waiter { tx, wants });
        AskGuard {
            engine: self.clone(),
            id: id.to_string(),
            rx,
        }
    }

    /// Tells the waiter of `id`, if any, that `msg` answered it: as `ev`, or
    /// in full when it wants whole messages.
    pub(super) fn notify_ask(&self, id: &str, ev: AskEvent, from: PeerId, msg: &Message) {
        let sh = self.lock();
        if let Some(w) = sh.asks.get(id) {
            let ev = match w.wants {
                Wants::Messages => AskEvent::Message(Box::new(Reply {
                    from,
                    message: msg.clone(),
                })),
                Wants::Events => ev,
            };
            let _ = w.tx.send(ev);
        }
    }

    /// Waits for `acks` peers to ack the local write `guard` waits on, at most
    /// `timeout`. Returns the peers that acked.
    pub(super) async fn wait_acks(
        &self,
        guard: &mut AskGuard,
        acks: usize,
        timeout: Duration,
    ) -> Result<Vec<PeerId>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < acks {
            let ack = match tokio::time::timeout_at(deadline, guard.rx.recv()).await {
                Ok(Some(AskEvent::Ack { from, err })) => Some((from, err)),
                Ok(Some(AskEvent::Message(r)))
                    if r.message.ok.is_some() || r.message.err.is_some() =>
                {
                    Some((r.from, r.message.err.clone()))
                }
                Ok(Some(AskEvent::Reply { .. } | AskEvent::Message(_))) => None,
                Ok(None) | Err(_) => {
                    return Err(Error::AckTimeout {
                        got: got.len(),
                        wanted: acks,
                    });
                }
            };
            match ack {
                Some((_, Some(e))) => return Err(Error::PeerRefused(e)),
                Some((from, None)) if !got.contains(&from) => got.push(from),
                _ => {}
            }
        }
        Ok(got)
    }
}
