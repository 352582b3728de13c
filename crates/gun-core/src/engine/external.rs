//! Writes made by others to a shared store ([`gun_store::Store::changes`]): relays of a
//! fleet on one database learn of each other's writes here.
//!
//! The engine takes the store's change feed at start and, for each
//! [`ExternalChange::Applied`] diff (already committed in the store, so
//! nothing is written), does what it does with a write it accepted itself:
//! merges it into the cached nodes (HAM: a cache never goes back), tells
//! local listeners, and lets the mesh publish it (pushes to subscribers, the
//! full diff to full peers). Souls not cached are not cached partially: the
//! next read loads them from the store, which has the write.
//!
//! A load from the store racing with a change (the read saw the database
//! before the change committed, the change arrives before the read's node is
//! cached) must not leave the older node in the cache: a load registers the
//! soul while it reads (`cache.rs`, `Shared::loading`), and changes arriving
//! meanwhile are merged into the node before it is cached, as our own writes
//! are; a load during a feed gap reads again.
//!
//! [`ExternalChange::Gap`] (the feed missed changes, e.g. it reconnected
//! after the database restarted) drops the cache; the souls that were cached
//! are read again, cached again and published, so subscribers get what they
//! missed.

use std::sync::Arc;

use gun_dam::Origin;
use gun_graph::{Graph, Soul};
use gun_store::ExternalChange;

use super::cache::{merge_news, note_while_loading};
use super::listen::notify_listeners;
use super::{Engine, now_u64};

/// Most souls read again and republished after a gap.
const MAX_GAP_REFRESH: usize = 10_000;

impl Engine {
    /// Subscribes to the store's change feed, if it has one (at start).
    pub(super) fn follow_store_changes(&self) {
        let Some(mut feed) = self.inner.store.changes() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(change) = feed.next().await {
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                match change {
                    ExternalChange::Applied(diff) => {
                        engine.apply_external(&diff);
                    }
                    ExternalChange::Gap => engine.external_gap().await,
                    other => tracing::debug!(?other, "unknown store change ignored"),
                }
            }
        });
    }

    /// Applies a diff another writer committed to the shared store (see the
    /// module docs). Returns what changed in the cache or was published.
    pub fn apply_external(&self, diff: &Graph) -> Graph {
        let outs = {
            let mut sh = self.lock();
            let mut cached = Graph::new();
            let mut applied = Graph::new();
            for (soul, node) in diff.iter() {
                note_while_loading(&mut sh, node);
                if sh.graph.get(soul.as_str()).is_some() {
                    cached.insert_node(node.clone());
                } else {
                    applied.insert_node(node.clone());
                }
            }
            for (_, n) in merge_news(&mut sh, &cached) {
                applied.insert_node(n);
            }
            self.inner.stats.keys_accepted.fetch_add(
                applied.key_count() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            notify_listeners(&mut sh, &applied, &Origin::Local);
            // The whole diff goes to the mesh, not only what changed the
            // cache: a node loaded from the store after the write committed
            // already holds it, but its subscribers were never pushed it.
            let outs = sh.mesh.publish(diff, None, now_u64());
            (outs, applied)
        };
        self.execute(outs.0);
        outs.1
    }

    /// The feed missed changes: drop the cache, then read the souls that were
    /// cached again and publish them.
    async fn external_gap(&self) {
        let souls: Vec<Soul> = {
            let mut sh = self.lock();
            let mut souls: Vec<Soul> = sh.cache_order.iter().rev().cloned().collect();
            souls.truncate(MAX_GAP_REFRESH);
            sh.graph = super::cache::Cache::default();
            sh.cache_order.clear();
            sh.whole.clear();
            // Loads in progress may have read before the gap: they read again.
            sh.gaps += 1;
            souls
        };
        tracing::info!(
            souls = souls.len(),
            "store change feed had a gap: cache dropped, cached souls re-read"
        );
        for soul in souls {
            // Cached again (reads during a later outage are answered), and
            // pushed whole to its subscribers.
            if let Err(e) = self.ensure_loaded(std::iter::once(&soul)).await {
                tracing::warn!(%e, "re-reading after a feed gap failed");
                return;
            }
            let node = self.lock().graph.get(soul.as_str()).cloned();
            if let Some(node) = node.filter(|n| !n.is_empty()) {
                self.apply_external(&std::iter::once(node).collect());
            }
        }
    }
}
