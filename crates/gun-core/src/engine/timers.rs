//! Time: writes whose state is ahead of the clock wait here until due (then
//! are applied and acked), and the mesh's clock ticks (dedup expiry,
//! keep-alives) once a second or when a deferred write is due.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gun_dam::{Message, Origin};
use gun_graph::{Deferred, Graph, State};

use super::{Engine, now_precise_ms, now_u64};
use crate::Error;

pub(super) struct Due {
    pub(super) state: State,
    pub(super) item: Deferred,
    pub(super) origin: Origin,
    pub(super) message_id: Option<String>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Due) -> bool {
        self.state == o.state
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Due) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Due) -> std::cmp::Ordering {
        self.state.cmp(&o.state)
    }
}

impl Engine {
    pub(super) fn spawn_timers(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                if engine.inner.closed.load(Ordering::Relaxed) {
                    return;
                }
                let due = engine.take_due();
                if !due.is_empty() {
                    engine.apply_due(due).await;
                }
                let next = engine.lock().deferred.peek().map(|r| r.0.state.as_f64());
                let outs = engine.lock().mesh.tick(now_u64());
                engine.execute(outs);
                let wait = match next {
                    Some(s) => Duration::from_secs_f64(
                        (s - now_precise_ms()).clamp(0.1, 1_000.0) / 1_000.0,
                    ),
                    None => Duration::from_millis(1_000),
                };
                let wake = Arc::clone(&engine.inner);
                drop(engine);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.deferred_wake.notified() => {}
                }
            }
        });
    }

    fn take_due(&self) -> Vec<Due> {
        let now = now_precise_ms();
        let mut sh = self.lock();
        let mut out = Vec::new();
        while sh
            .deferred
            .peek()
            .is_some_and(|r| r.0.state.as_f64() <= now)
        {
            if let Some(Reverse(d)) = sh.deferred.pop() {
                out.push(d);
            }
        }
        out
    }

    /// Applies the keys that came due: one write per put they came in (a
    /// client whose clock runs ahead has every key of every put deferred; a
    /// store write per key would be one durable flush each), all at once, so
    /// that the store's group commit takes them together.
    async fn apply_due(&self, due: Vec<Due>) {
        let mut index: HashMap<(Origin, Option<String>), usize> = HashMap::new();
        let mut groups: Vec<DueGroup> = Vec::new();
        for d in due {
            let i = *index
                .entry((d.origin.clone(), d.message_id.clone()))
                .or_insert_with(|| {
                    groups.push(DueGroup {
                        graph: Graph::new(),
                        origin: d.origin.clone(),
                        message_id: d.message_id.clone(),
                        keys: 0,
                        err: None,
                    });
                    groups.len() - 1
                });
            let g = &mut groups[i];
            g.keys += 1;
            // Ascending states: a key due twice (local writes) ends with the later.
            if let Err(e) = g
                .graph
                .put(d.item.soul, d.item.key, d.item.state, d.item.value)
            {
                g.err.get_or_insert_with(|| e.to_string());
            }
        }
        if groups.len() == 1
            && let Some(g) = groups.pop()
        {
            return self.apply_due_group(g).await;
        }
        let mut set = tokio::task::JoinSet::new();
        for g in groups {
            let e = self.clone();
            set.spawn(async move { e.apply_due_group(g).await });
        }
        while set.join_next().await.is_some() {}
    }

    async fn apply_due_group(&self, g: DueGroup) {
        let r = self.ingest_due(&g.graph, &g.origin).await.map(|r| r.0);
        let failed = match (&r, g.err) {
            (Err(Error::Rejected(text)), _) => Some(text.clone()),
            (Err(e), _) => Some(e.to_string()),
            (Ok(_), err) => err,
        };
        if let Some(e) = &failed {
            tracing::warn!(%e, keys = g.keys, "deferred write failed");
        }
        // Ack the original put once all its deferred keys are applied.
        let (Some(mid), Origin::Peer { peer, .. }) = (&g.message_id, &g.origin) else {
            return;
        };
        let outs = {
            let mut sh = self.lock();
            let done = match sh.deferred_pending.entry(mid.clone()) {
                MapEntry::Occupied(mut o) => {
                    let (left, err) = o.get_mut();
                    *left = left.saturating_sub(g.keys);
                    if err.is_none() {
                        *err = failed;
                    }
                    if *left == 0 { Some(o.remove().1) } else { None }
                }
                MapEntry::Vacant(_) => None,
            };
            match done {
                // One failed key fails the put, as a failed store write does.
                Some(err) => {
                    let reply = match err {
                        None => Message::ack_ok(mid),
                        Some(e) => Message::ack_err(mid, e),
                    };
                    sh.mesh.reply(*peer, reply, now_u64())
                }
                None => Vec::new(),
            }
        };
        self.execute(outs);
    }
}

/// The keys of one put (or of one origin) that came due together.
struct DueGroup {
    graph: Graph,
    origin: Origin,
    message_id: Option<String>,
    keys: usize,
    /// A key that could not be taken into the graph.
    err: Option<String>,
}
