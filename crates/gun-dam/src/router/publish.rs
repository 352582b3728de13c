//! Publishing a write HAM accepted: in full to full peers (DAM), the
//! subscribed part to subscribers (AXE pushes), and kept for re-sending on
//! every outgoing URL that has not acked it.

use std::collections::HashSet;
use std::sync::Arc;

use gun_graph::Graph;
use serde_json::Value;

use super::resend::PendingPut;
use super::track::{Track, put_digest};
use super::{Mesh, Output, Peer, encode};
use crate::auth;
use crate::message::Message;
use crate::peer::PeerId;

impl Mesh {
    /// Fans out a write that HAM accepted (see the module docs): `diff` is what
    /// was accepted; `origin` is the connection and `#` of the put it came in
    /// (`None` for a local write, which gets a fresh id whose acks are delivered
    /// to the engine).
    pub fn publish(
        &mut self,
        diff: &Graph,
        origin: Option<(PeerId, String)>,
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if diff.is_empty() {
            return out;
        }
        let (id, origin_peer) = match origin {
            Some((p, id)) => (id, Some(p)),
            None => {
                let id = self.fresh_id();
                self.dup.insert(&id, Track::Local, now);
                (id, None)
            }
        };
        self.publish_inner(diff, &id, origin_peer, None, now, &mut out);
        out
    }

    pub(super) fn publish_inner(
        &mut self,
        diff: &Graph,
        id: &str,
        origin: Option<PeerId>,
        template: Option<&Message>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let (seen, signed) = match self.dup.get(id, now) {
            Some(Track::Via { seen, signed, .. }) => (seen.clone(), signed.clone()),
            _ => (None, None),
        };
        if let Some(o) = origin
            && !self.dup.refresh(id, now)
        {
            self.dup.insert(
                id,
                Track::Via {
                    peer: o,
                    sub: None,
                    seen: None,
                    signed: None,
                },
                now,
            );
        }
        let seen_list = self.seen_list();
        // (a) full peers, with the original id.
        let mut full_msg = template.cloned().unwrap_or_default();
        full_msg.id = Some(id.to_owned());
        full_msg.reply_to = None;
        full_msg.get = None;
        full_msg.seen = seen_list.clone();
        full_msg.put = Some(diff.clone());
        // The write as it was signed goes on with its signature; anything else
        // (a part of it, an unsigned or a local write) is signed by us, if at all.
        match signed.filter(|s| s.put == put_digest(diff)) {
            Some(s) => {
                for (k, v) in &s.fields {
                    full_msg.extra.insert(k.clone(), v.clone());
                }
            }
            None => {
                auth::strip(&mut full_msg);
                self.sign(&mut full_msg);
            }
        }
        let full_frame = encode(&full_msg);
        let mut got_full = HashSet::new();
        for (pid, p) in &self.peers {
            if !p.full() || Some(*pid) == origin || seen.as_deref().is_some_and(|s| p.listed_in(s))
            {
                continue;
            }
            got_full.insert(*pid);
            out.push(Output::Send {
                to: *pid,
                frame: full_frame.clone(),
            });
        }
        // Keep it for re-sending on every outgoing URL that did not ack it yet:
        // connected ones it was just sent to, and disconnected ones.
        let origin_url = origin
            .and_then(|o| self.peers.get(&o))
            .and_then(Peer::url)
            .map(str::to_owned);
        for (url, st) in self.urls.iter_mut() {
            let sent = st.peer.is_some_and(|p| got_full.contains(&p));
            let down = st.peer.is_none_or(|p| !self.peers.contains_key(&p));
            if (sent || down) && Some(url) != origin_url.as_ref() {
                let p = PendingPut {
                    id: id.to_owned(),
                    frame: full_frame.clone(),
                    at: now,
                    origin,
                };
                st.add_put(url, p, &self.cfg);
            }
        }
        // (b) other subscribers: a push of their part, with a fresh id. Full
        // peers are left out: a full peer without the full copy is the origin
        // or listed in `><`, so it has the write already, and a push (a fresh
        // `#` its dedup cannot recognise) would only carry the write back
        // over the link.
        let n = self.peers.len();
        let pushes: Vec<(PeerId, Graph)> = self
            .peers
            .iter()
            .filter(|(pid, p)| !got_full.contains(*pid) && !p.full())
            .map(|(pid, p)| (*pid, p.subs.select(diff)))
            .filter(|(_, g)| !g.is_empty())
            .collect();
        if pushes.is_empty() {
            return;
        }
        // One copy of the write's id for all its pushes' routes.
        let original: Arc<str> = Arc::from(id);
        for (to, part) in pushes {
            let push_id = self.fresh_id();
            self.dup.insert(
                &push_id,
                Track::Push {
                    origin,
                    original: original.clone(),
                },
                now,
            );
            let mut ok = serde_json::Map::new();
            ok.insert("@".into(), Value::from(2));
            ok.insert("/".into(), Value::from(n));
            let mut m = Message {
                id: Some(push_id),
                seen: seen_list.clone(),
                ok: Some(Value::Object(ok)),
                put: Some(part),
                ..Message::default()
            };
            self.sign(&mut m);
            out.push(Output::Send {
                to,
                frame: encode(&m),
            });
        }
    }
}
