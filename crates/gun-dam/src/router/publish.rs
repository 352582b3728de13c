//! Publishing a write HAM accepted: in full to full peers (DAM), the
//! subscribed part to subscribers (AXE pushes), and kept for re-sending on
//! every outgoing URL that has not acked it.

use std::sync::Arc;

use gun_graph::Graph;
use serde_json::Value;

use super::resend::{PendingPut, pending_bytes};
use super::track::{Track, put_digest};
use super::{Mesh, OutFrame, Output, Peer};
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
        origin: Option<(PeerId, &str)>,
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if diff.is_empty() {
            return out;
        }
        let fresh;
        let (id, origin_peer) = match origin {
            Some((p, id)) => (id, Some(p)),
            None => {
                fresh = self.fresh_id();
                self.dup.insert(&fresh, Track::Local, now);
                (fresh.as_str(), None)
            }
        };
        self.publish_inner(diff, id, None, origin_peer, None, now, &mut out);
        out
    }

    /// Fans out the part of `from`'s put `original` (its `#`) that was
    /// applied late, when its states came due (they were ahead of the clock
    /// when it arrived). It goes under a fresh id, as a local write's does:
    /// full peers may have seen `original` with the part applied at once, and
    /// a Gun.js relay drops a message whose `#` it has seen. Answers to the
    /// fresh id, and to the pushes of this part, still reach `from` as answers
    /// to `original` (a WebRTC offer answering an announcement, an ack). As
    /// with the put itself, nothing goes back to `from`.
    pub fn publish_late(
        &mut self,
        diff: &Graph,
        from: PeerId,
        original: &str,
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if diff.is_empty() {
            return out;
        }
        let id = self.fresh_id();
        let original: Arc<str> = Arc::from(original);
        self.dup.insert(
            &id,
            Track::Push {
                origin: Some(from),
                original: original.clone(),
            },
            now,
        );
        self.publish_inner(diff, &id, Some(&original), Some(from), None, now, &mut out);
        out
    }

    /// `id` is the `#` full peers get; the pushes' answers go to `origin` as
    /// answers to `original` (`None`: to `id`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish_inner(
        &mut self,
        diff: &Graph,
        id: &str,
        original: Option<&Arc<str>>,
        origin: Option<PeerId>,
        template: Option<&Message>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        // A write from a peer is remembered (refreshed, or tracked with its
        // route if its id was forgotten): one lookup when it is known.
        let known = match origin {
            Some(_) => self.dup.touch(id, now),
            None => self.dup.get(id, now),
        };
        let (seen, signed) = match known {
            Some(Track::Via { seen, signed, .. }) => (seen.clone(), signed.clone()),
            Some(_) => (None, None),
            None => {
                if let Some(o) = origin {
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
                (None, None)
            }
        };
        // `><` is made only for a frame that goes out (a relay with only
        // clients and no subscriber of the souls sends none).
        let mut seen_list: Option<Option<String>> = None;
        // (a) full peers, with the original id; the write is also kept for
        // re-sending on every outgoing URL that did not ack it yet (connected
        // ones it is sent to now, and disconnected ones). The frame is built
        // only if one of them needs it: a relay with only clients never
        // encodes the full write. `got_full` is in the peers' order (a Vec:
        // full peers are few).
        let mut got_full: Vec<PeerId> = Vec::new();
        for (pid, p) in &self.peers {
            if !p.full() || Some(*pid) == origin || seen.as_deref().is_some_and(|s| p.listed_in(s))
            {
                continue;
            }
            got_full.push(*pid);
        }
        let origin_url = origin
            .and_then(|o| self.peers.get(&o))
            .and_then(Peer::url)
            .map(str::to_owned);
        let resend_urls: Vec<String> = self
            .urls
            .iter()
            .filter(|(url, st)| {
                let sent = st.peer.is_some_and(|p| got_full.contains(&p));
                let down = st.peer.is_none_or(|p| !self.peers.contains_key(&p));
                (sent || down) && Some(*url) != origin_url.as_ref()
            })
            .map(|(url, _)| url.clone())
            .collect();
        if !got_full.is_empty() || !resend_urls.is_empty() {
            let mut full_msg = template.cloned().unwrap_or_default();
            full_msg.id = Some(id.to_owned());
            full_msg.reply_to = None;
            full_msg.get = None;
            full_msg.seen = seen_list.get_or_insert_with(|| self.seen_list()).clone();
            full_msg.put = Some(diff.clone());
            // The write as it was signed goes on with its signature; anything
            // else (a part of it, an unsigned or a local write) is signed by
            // us, if at all. Signed and encoded when its text is first taken:
            // after the owner's lock (a signature costs far more than the
            // routing).
            let full: OutFrame = match signed.filter(|s| s.put == put_digest(diff)) {
                Some(s) => {
                    for (k, v) in &s.fields {
                        full_msg.extra.insert(k.clone(), v.clone());
                    }
                    OutFrame::later(full_msg)
                }
                None => {
                    auth::strip(&mut full_msg);
                    self.frame_later(full_msg)
                }
            };
            for pid in &got_full {
                out.push(Output::Send {
                    to: *pid,
                    frame: full.clone(),
                });
            }
            if !resend_urls.is_empty() {
                let bytes = pending_bytes(diff);
                for url in resend_urls {
                    if let Some(st) = self.urls.get_mut(&url) {
                        let p = PendingPut {
                            id: id.to_owned(),
                            frame: full.clone(),
                            bytes,
                            at: now,
                            origin,
                        };
                        st.add_put(&url, p, &self.cfg);
                    }
                }
            }
        }
        // (b) other subscribers: a push of their part, with a fresh id. Full
        // peers are left out: a full peer without the full copy is the origin
        // or listed in `><`, so it has the write already, and a push (a fresh
        // `#` its dedup cannot recognise) would only carry the write back
        // over the link.
        let n = self.peers.len();
        // Only the peers the index names for these souls are checked (a
        // write costs O(its subscribers), not O(connections)); the index's
        // stale entries met here are dropped.
        let candidates = self.subindex.candidates(diff.souls().map(|s| s.as_str()));
        let mut pushes: Vec<(PeerId, Graph)> = Vec::new();
        for pid in candidates {
            match self.peers.get(&pid) {
                Some(p) if got_full.contains(&pid) || p.full() => {}
                Some(p) => {
                    let part = p.subs.select(diff);
                    if part.is_empty() {
                        for soul in diff.souls() {
                            if !p.subs.names(soul.as_str()) {
                                self.subindex.forget(soul.as_str(), pid);
                            }
                        }
                    } else {
                        pushes.push((pid, part));
                    }
                }
                None => {
                    for soul in diff.souls() {
                        self.subindex.forget(soul.as_str(), pid);
                    }
                    self.subindex.forget_lex(pid);
                }
            }
        }
        if pushes.is_empty() {
            return;
        }
        // One copy of the write's id for all its pushes' routes.
        let original: Arc<str> = original.cloned().unwrap_or_else(|| Arc::from(id));
        let seen_list = seen_list.unwrap_or_else(|| self.seen_list());
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
            let m = Message {
                id: Some(push_id),
                seen: seen_list.clone(),
                ok: Some(Value::Object(ok)),
                put: Some(part),
                ..Message::default()
            };
            // Signed and encoded when the engine sends it, after its lock.
            out.push(Output::Send {
                to,
                frame: self.frame_later(m),
            });
        }
    }
}
