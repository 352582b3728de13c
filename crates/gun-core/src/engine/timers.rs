//! Time: writes whose state is ahead of the clock wait here until due (then
//! are applied and acked), and the mesh's clock ticks (dedup expiry,
//! keep-alives) once a second or when a deferred write is due.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gun_dam::{Message, Origin};
use gun_graph::{Deferred, Graph, State};

use super::{Engine, now_ms, now_u64};
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
                for d in due {
                    engine.apply_due(d).await;
                }
                let next = engine.lock().deferred.peek().map(|r| r.0.state.as_f64());
                let outs = engine.lock().mesh.tick(now_u64());
                engine.execute(outs);
                let wait = match next {
                    Some(s) => Duration::from_millis(((s - now_ms()).max(1.0) as u64).min(1_000)),
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
        let now = now_ms();
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

    async fn apply_due(&self, d: Due) {
        let mut g = Graph::new();
        if g.put(
            d.item.soul.clone(),
            d.item.key.clone(),
            d.item.state,
            d.item.value.clone(),
        )
        .is_err()
        {
            return;
        }
        let r = self.ingest_due(&g, &d.origin).await.map(|r| r.0);
        if let Err(e) = &r {
            tracing::warn!(%e, "deferred write failed");
        }
        // Ack the original put once all its deferred keys are applied.
        if let (Some(mid), Origin::Peer { peer, .. }) = (&d.message_id, &d.origin) {
            let outs = {
                let mut sh = self.lock();
                let done = match sh.deferred_pending.entry(mid.clone()) {
                    MapEntry::Occupied(mut o) => {
                        let (left, err) = o.get_mut();
                        *left = left.saturating_sub(1);
                        if let (None, Err(e)) = (&*err, &r) {
                            *err = Some(match e {
                                Error::Rejected(text) => text.clone(),
                                e => e.to_string(),
                            });
                        }
                        if *left == 0 { Some(o.remove().1) } else { None }
                    }
                    MapEntry::Vacant(_) => None,
                };
                if let Some(err) = done {
                    // One failed key fails the put, as a failed store write does.
                    let reply = match err {
                        None => Message::ack_ok(mid),
                        Some(e) => Message::ack_err(mid, e),
                    };
                    sh.mesh.reply(*peer, reply, now_u64())
                } else {
                    Vec::new()
                }
            };
            self.execute(outs);
        }
    }
}
