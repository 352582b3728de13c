//! The outbox: this process's writes that no peer has acked yet.
//!
//! Every local write that goes to the mesh is entered here under its message
//! id (and, when the store keeps an outbox, written there durably before its
//! frames leave); the first ack from any peer removes it (an `err` ack too: a
//! refusal is an answer, logged at warn, and re-sending would not change it).
//! The mesh re-sends un-acked writes on every reconnect of the URLs it dials;
//! a program that starts again on a store with a durable outbox sends what is
//! in it ([`Engine::new`] loads it). [`Engine::deliver_outbox`] waits until the
//! outbox is empty, which `shutdown` of the `Gun` handles does before closing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use gun_dam::{Message, PeerId};
use gun_graph::Graph;

use super::{Engine, Shared, now_u64};

/// An undelivered write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// Whether the store holds it (so its removal must reach the store).
    pub(super) stored: bool,
}

impl Engine {
    /// Number of local writes no peer has acked yet.
    pub fn undelivered(&self) -> usize {
        self.lock().outbox.len()
    }

    /// Whether undelivered writes survive a restart (the store keeps a
    /// durable outbox: [`gun_store::Store::keeps_outbox`]).
    pub fn outbox_is_durable(&self) -> bool {
        self.inner.store.keeps_outbox()
    }

    /// Waits until every local write has been acked by at least one peer, at
    /// most `timeout`; returns how many are still undelivered (0: all).
    pub async fn deliver_outbox(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.outbox_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let left = self.undelivered();
            // Until the stored outbox is read, an empty outbox proves nothing.
            if left == 0 && self.inner.outbox_loaded.load(Ordering::Acquire) {
                return 0;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.undelivered();
            }
        }
    }

    /// Enters the local write `id` (under the lock, before its frames leave).
    pub(super) fn outbox_enter(sh: &mut Shared, id: &str) {
        sh.outbox.insert(id.to_owned(), Entry { stored: false });
    }

    /// Writes the entry `id` to the store's outbox (when it keeps one), then
    /// marks it stored, or removes it from the store again when an ack came
    /// meanwhile. A store that fails keeps the write in memory only (warn).
    pub(super) async fn outbox_store(&self, id: &str, diff: &Graph) {
        let store = &self.inner.store;
        if !store.keeps_outbox() {
            return;
        }
        if let Err(e) = store.outbox_put(id, diff).await {
            tracing::warn!(id, error = %e, "the outbox entry of a local write could not be stored: it is kept in memory only");
            return;
        }
        let acked = match self.lock().outbox.get_mut(id) {
            Some(entry) => {
                entry.stored = true;
                false
            }
            None => true,
        };
        if acked && let Err(e) = store.outbox_remove(id).await {
            tracing::warn!(id, error = %e, "cannot remove an acked write from the stored outbox");
        }
    }

    /// A peer answered the local write `id` (`err`: it refused it).
    pub(super) fn outbox_answered(&self, id: &str, from: PeerId, err: Option<&str>) {
        let Some(entry) = self.lock().outbox.remove(id) else {
            return;
        };
        if let Some(err) = err {
            tracing::warn!(
                id,
                peer = from.0,
                err,
                "a peer refused a local write; it is not sent again"
            );
        }
        self.inner.outbox_changed.notify_waiters();
        if entry.stored {
            let me = self.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                if let Err(e) = me.inner.store.outbox_remove(&id).await {
                    tracing::warn!(id, error = %e, "cannot remove an acked write from the stored outbox");
                }
            });
        }
    }

    /// Sends again what the store's outbox holds (a previous run's
    /// undelivered writes): once peers are known, the mesh sends them on
    /// every link to a relay and keeps them for URLs that are down.
    pub(super) async fn load_outbox(&self) {
        self.load_outbox_entries().await;
        self.inner.outbox_loaded.store(true, Ordering::Release);
        self.inner.outbox_changed.notify_waiters();
    }

    async fn load_outbox_entries(&self) {
        if !self.inner.store.keeps_outbox() {
            return;
        }
        let entries = match self.inner.store.outbox().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stored outbox: undelivered writes of an earlier run are not sent");
                return;
            }
        };
        if entries.is_empty() {
            return;
        }
        tracing::info!(
            writes = entries.len(),
            "sending the undelivered writes of an earlier run"
        );
        let outs = {
            let mut sh = self.lock();
            for (id, _) in &entries {
                sh.outbox.insert(id.clone(), Entry { stored: true });
            }
            sh.restored.extend(entries);
            self.publish_restored(&mut sh)
        };
        self.execute(outs);
    }

    /// Publishes restored outbox entries once there is somebody to send them
    /// to (a peer, or a URL that will be dialed).
    pub(super) fn publish_restored(&self, sh: &mut Shared) -> Vec<gun_dam::Output> {
        if !sh.remote || sh.restored.is_empty() {
            return Vec::new();
        }
        let mut outs = Vec::new();
        for (id, graph) in std::mem::take(&mut sh.restored) {
            let mut m = Message::put(graph);
            m.id = Some(id);
            outs.extend(sh.mesh.request(m, now_u64()).1);
        }
        outs
    }
}
