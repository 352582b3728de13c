//! Local subscriptions: who listens to which soul, and the [`Change`]s they get.

use std::sync::Arc;

use gun_dam::Origin;
use gun_graph::{Graph, Node, Soul};
use tokio::sync::mpsc;

use super::{Engine, Shared};

/// A change to one node, as local subscribers receive it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The node after the change (the whole cached node).
    pub node: Node,
    /// The keys that changed.
    pub keys: Vec<Arc<str>>,
    /// Where the change came from: [`Origin::Local`] for writes of this
    /// process; for a peer's write, the message [`Engine::answer`] can answer.
    pub origin: Origin,
}

pub(super) struct Listener {
    pub(super) id: u64,
    pub(super) tx: mpsc::UnboundedSender<Change>,
}

impl Engine {
    /// Listens to changes of `soul`. The listener ends when the receiver is
    /// dropped or [`Engine::unlisten`] is called with the returned id.
    pub fn listen(&self, soul: &Soul) -> (u64, mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut sh = self.lock();
        let id = sh.next_id;
        sh.next_id += 1;
        sh.listeners
            .entry(soul.clone())
            .or_default()
            .push(Listener { id, tx });
        (id, rx)
    }

    /// Tells the listeners of `souls` (not cached when `news` was applied)
    /// about it, once the souls are loaded from the store.
    pub(super) async fn notify_loaded(&self, souls: &[Soul], news: &Graph, origin: &Origin) {
        if let Err(e) = self.ensure_loaded(souls.iter()).await {
            tracing::debug!(%e, "listened souls not loaded");
            return;
        }
        let mut part = Graph::new();
        for s in souls {
            if let Some(n) = news.get(s.as_str()) {
                part.insert_node(n.clone());
            }
        }
        notify_listeners(&mut self.lock(), &part, origin);
    }

    /// Stops a listener.
    pub fn unlisten(&self, id: u64) {
        let mut sh = self.lock();
        sh.listeners.retain(|_, v| {
            v.retain(|l| l.id != id);
            !v.is_empty()
        });
    }
}

pub(super) fn notify_listeners(sh: &mut Shared, applied: &Graph, origin: &Origin) {
    for (soul, diff) in applied.iter() {
        let Some(ls) = sh.listeners.get_mut(soul.as_str()) else {
            continue;
        };
        let Some(node) = sh.graph.get(soul.as_str()) else {
            continue;
        };
        let change = Change {
            node: node.clone(),
            keys: diff.iter().map(|(k, _)| k.clone()).collect(),
            origin: origin.clone(),
        };
        ls.retain(|l| l.tx.send(change.clone()).is_ok());
    }
    sh.listeners.retain(|_, v| !v.is_empty());
}
