//! The signalling of Gun.js's `lib/webrtc.js` (spec §11.3), without any WebRTC
//! code: what the `ok.rtc` payloads look like, and which peer does what.
//!
//! * Every peer writes its pid to the soul [`room_soul`] under the key
//!   [`ANNOUNCE_KEY`] and listens to that soul.
//! * A peer that sees another pid appear (with a state not older than its own
//!   start) **offers**: it answers the announcing write's `#` with
//!   `{"@": <that #>, "#": <its ask>, "ok": {"rtc": {"offer": {type, sdp}, "id": <pid>}}}`.
//! * The announcer **answers** the offer's `#` with `{"rtc": {"answer": …, "id": …}}`.
//! * ICE candidates answer the same messages: the offerer's answer the
//!   announcing write, the answerer's answer the offer.
//!
//! [`Room`] is that logic as a state machine: feed it announcements and
//! signals, carry out the [`Action`] it returns.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Gun.js's bound on WebRTC peers (`opt.rtc.max`).
pub const DEFAULT_MAX_PEERS: usize = 55;
/// Gun.js's default ICE servers.
pub const DEFAULT_ICE_SERVERS: [&str; 2] =
    ["stun:stun.l.google.com:19302", "stun:stun.sipgate.net:3478"];
/// The data channel's label.
pub const CHANNEL_LABEL: &str = "dc";
/// Data channel delivery: unordered…
pub const CHANNEL_ORDERED: bool = false;
/// …with at most this many retransmissions (Gun.js's `{ordered:false, maxRetransmits:2}`).
pub const CHANNEL_MAX_RETRANSMITS: u16 = 2;
/// The key every peer writes its pid to.
pub const ANNOUNCE_KEY: &str = "+";
/// How long an unfinished connection is kept (Gun.js: 60 s), in milliseconds.
pub const PENDING_TIMEOUT_MS: u64 = 60_000;
/// When both sides offered at once and the other side's offer was set aside
/// (ours should win), how long ours may stay unanswered before we take theirs
/// after all (a Gun.js peer ignores offers while it has its own pending).
pub const GLARE_GRACE_MS: u64 = 3_000;
/// How long our offer may stay unanswered before we announce again (once
/// per peer). A Gun.js relay with AXE, when two peers announce at once,
/// pushes the room's current value (the other peer's pid) under the id of
/// the write that triggered the push, which may be ours: the offer answering
/// that push is routed back to us (and dropped as our own message), and the
/// other peer, which never saw our announcement, waits for nothing. Our new
/// announcement reaches it as a write, and it offers; the offer is pending on
/// both sides then, and the rule for simultaneous offers makes one
/// connection. Our offer stays pending meanwhile, so a late answer to it
/// still connects. Longer than [`GLARE_GRACE_MS`].
pub const OFFER_ANSWER_GRACE_MS: u64 = 6_000;
/// How long a peer seen only in a read answer is given for its write to reach
/// us (an offer can answer only that) before we announce again. A relay asks
/// a newly connected peer for what it holds, so its announcement often comes
/// back as a read answer just before its write is pushed; announcing again at
/// once would make every Gun.js page in the room offer anew (they offer on
/// every announcement), replacing connections that work.
pub const REANNOUNCE_GRACE_MS: u64 = 1_500;
/// How long a peer that announced before we joined (seen in the answer to
/// our read of the room) is given to offer, before we announce again. It
/// offers when our announcement reaches it as a write; that write can be
/// lost (a newer peer's announcement took the `+` key at the relay before
/// ours arrived, so the relay had nothing to push), and then only a fresh
/// announcement of ours brings its offer.
pub const ELDER_GRACE_MS: u64 = 4_000;
/// Announcements older than this (ms) are not waited for: the `<?99` of
/// the room soul (SEA peers forget them), and most likely a peer gone.
pub const ANNOUNCEMENT_LIFE_MS: f64 = 99_000.0;

/// The soul a room's announcements are written to: `/RTC/<room><?99` (the
/// `<?99` makes SEA peers forget announcements older than 99 s).
pub fn room_soul(room: &str) -> String {
    format!("/RTC/{room}<?99")
}

/// Undoes the escaping some peers apply to SDP line breaks (literal `\r\n`
/// text), as Gun.js does before using an SDP.
pub fn unescape_sdp(sdp: &str) -> String {
    sdp.replace("\\r\\n", "\r\n")
}

/// Why an `ok.rtc` payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// `rtc` is not an object, or has no string `id`.
    #[error("`ok.rtc` has no string `id`")]
    NoId,
    /// An offer or answer without a string `sdp`.
    #[error("`ok.rtc.{0}` has no string `sdp`")]
    NoSdp(&'static str),
    /// A candidate that is not an object with a string `candidate`.
    #[error("`ok.rtc.candidate` is not an ICE candidate object")]
    BadCandidate,
}

/// One ICE candidate, as a browser's `JSON.stringify(event.candidate)` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `candidate`: the `candidate:…` line (empty: end of candidates).
    pub candidate: String,
    /// `sdpMid`.
    pub sdp_mid: Option<String>,
    /// `sdpMLineIndex`.
    pub sdp_mline_index: Option<u16>,
    /// `usernameFragment`.
    pub username_fragment: Option<String>,
}

impl Candidate {
    fn from_json(v: &Value) -> Result<Candidate, SignalError> {
        let o = v.as_object().ok_or(SignalError::BadCandidate)?;
        let candidate = o
            .get("candidate")
            .and_then(Value::as_str)
            .ok_or(SignalError::BadCandidate)?
            .to_owned();
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Candidate {
            candidate,
            sdp_mid: text("sdpMid"),
            sdp_mline_index: o
                .get("sdpMLineIndex")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok()),
            username_fragment: text("usernameFragment"),
        })
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("candidate".into(), Value::from(self.candidate.clone()));
        o.insert(
            "sdpMid".into(),
            self.sdp_mid.clone().map_or(Value::Null, Value::from),
        );
        o.insert(
            "sdpMLineIndex".into(),
            self.sdp_mline_index.map_or(Value::Null, Value::from),
        );
        if let Some(u) = &self.username_fragment {
            o.insert("usernameFragment".into(), Value::from(u.clone()));
        }
        Value::Object(o)
    }
}

/// What one `ok.rtc` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// An SDP offer (line breaks unescaped).
    Offer(String),
    /// An SDP answer (line breaks unescaped).
    Answer(String),
    /// A trickled ICE candidate.
    Candidate(Candidate),
    /// Only the sender's id (nothing to do).
    Hello,
}

/// An `ok.rtc` payload: who sent it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcMessage {
    /// `id`: the sender's pid.
    pub from: String,
    /// The rest.
    pub signal: Signal,
}

impl RtcMessage {
    /// Reads the `ok` of a message: `Ok(None)` when it carries no `rtc` (an
    /// ordinary ack), an error when `rtc` is malformed.
    pub fn from_ok(ok: Option<&Value>) -> Result<Option<RtcMessage>, SignalError> {
        let Some(rtc) = ok.and_then(|o| o.get("rtc")) else {
            return Ok(None);
        };
        let o = rtc.as_object().ok_or(SignalError::NoId)?;
        let from = o
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(SignalError::NoId)?
            .to_owned();
        let sdp = |k: &'static str| -> Result<Option<String>, SignalError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .get("sdp")
                    .and_then(Value::as_str)
                    .map(|s| Some(unescape_sdp(s)))
                    .ok_or(SignalError::NoSdp(k)),
            }
        };
        let signal = if let Some(s) = sdp("answer")? {
            Signal::Answer(s)
        } else if let Some(c) = o.get("candidate").filter(|v| !v.is_null()) {
            Signal::Candidate(Candidate::from_json(c)?)
        } else if let Some(s) = sdp("offer")? {
            Signal::Offer(s)
        } else {
            Signal::Hello
        };
        Ok(Some(RtcMessage { from, signal }))
    }

    /// The `ok` value carrying this payload.
    pub fn to_ok(&self) -> Value {
        let mut rtc = Map::new();
        let desc = |kind: &str, sdp: &str| {
            let mut d = Map::new();
            d.insert("type".into(), Value::from(kind));
            d.insert("sdp".into(), Value::from(sdp));
            Value::Object(d)
        };
        match &self.signal {
            Signal::Offer(s) => {
                rtc.insert("offer".into(), desc("offer", s));
            }
            Signal::Answer(s) => {
                rtc.insert("answer".into(), desc("answer", s));
            }
            Signal::Candidate(c) => {
                rtc.insert("candidate".into(), c.to_json());
            }
            Signal::Hello => {}
        }
        rtc.insert("id".into(), Value::from(self.from.clone()));
        let mut ok = Map::new();
        ok.insert("rtc".into(), Value::Object(rtc));
        Value::Object(ok)
    }
}

/// Where a connection to one peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// We sent an offer (at this time) and wait for the answer.
    Offering {
        /// When the offer was made (ms).
        since: u64,
        /// Whether the answer was applied.
        answered: bool,
    },
    /// We answered an offer (at this time) and wait for the channel.
    Answering {
        /// When (ms).
        since: u64,
    },
    /// The data channel is open.
    Open,
}

/// What to do about an announcement or a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make a connection to `to` and offer it, answering message `reply_to`.
    Offer {
        /// The new peer's pid.
        to: String,
        /// The `#` of its announcement as we received it.
        reply_to: String,
    },
    /// Take `from`'s offer and answer it, answering message `reply_to` (the
    /// offer's `#`). `replace`: drop the connection we had with it first.
    Accept {
        /// The offering peer.
        from: String,
        /// Its SDP.
        sdp: String,
        /// The offer message's `#`.
        reply_to: String,
        /// Whether an earlier connection to `from` must be closed first.
        replace: bool,
    },
    /// Apply `from`'s answer to our offer.
    ApplyAnswer {
        /// The answering peer.
        from: String,
        /// Its SDP.
        sdp: String,
    },
    /// Write our pid to the room again: a newer peer's announcement reached us
    /// only in the answer to our read (its write may have lost the `+` key to
    /// ours at the relay), so it cannot be answered, and its write did not
    /// follow within [`REANNOUNCE_GRACE_MS`]; or a peer that announced before
    /// we joined did not offer within [`ELDER_GRACE_MS`] (our announcement
    /// may not have reached it). A fresh announcement of ours reaches that
    /// peer as a write, and it offers.
    Announce {
        /// The peer we could not answer.
        to: String,
    },
    /// Add a remote candidate to the connection with `from`.
    AddCandidate {
        /// The peer.
        from: String,
        /// The candidate.
        candidate: Candidate,
    },
    /// Nothing to do; why, for logs.
    Ignore(&'static str),
}

/// The signalling state of one peer in one room. Sans-IO: times are passed in.
#[derive(Debug)]
pub struct Room {
    pid: String,
    start: f64,
    max: usize,
    peers: HashMap<String, PeerState>,
    /// Offers set aside while ours was pending: (sdp, offer `#`, when).
    set_aside: HashMap<String, (String, String, u64)>,
    /// Peers we re-announced for (once each).
    reannounced: std::collections::HashSet<String>,
    /// Peers seen only in a read answer, and when: re-announced for when
    /// nothing else came from them within [`REANNOUNCE_GRACE_MS`].
    read_only: HashMap<String, u64>,
    /// Peers that announced before we joined (seen in a read answer), and
    /// when we saw them: re-announced for when they did not offer within
    /// [`ELDER_GRACE_MS`].
    elders: HashMap<String, u64>,
    /// Peers we announced again for because our offer went unanswered (once each).
    retried: std::collections::HashSet<String>,
}

impl Room {
    /// A room for the peer `pid` that joined at `start` (ms since the epoch;
    /// announcements older than that are not answered), with at most `max`
    /// WebRTC peers.
    pub fn new(pid: impl Into<String>, start: f64, max: usize) -> Room {
        Room {
            pid: pid.into(),
            start,
            max,
            peers: HashMap::new(),
            set_aside: HashMap::new(),
            reannounced: std::collections::HashSet::new(),
            read_only: HashMap::new(),
            elders: HashMap::new(),
            retried: std::collections::HashSet::new(),
        }
    }

    /// Our pid.
    pub fn pid(&self) -> &str {
        &self.pid
    }

    /// The peers we are connected or connecting to.
    pub fn peers(&self) -> impl Iterator<Item = (&str, PeerState)> {
        self.peers.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Where the connection with `pid` stands.
    pub fn state(&self, pid: &str) -> Option<PeerState> {
        self.peers.get(pid).copied()
    }

    /// The room's announce key changed to `value` (state `state`) in the
    /// message `via` (its `#` as we received it): a write, which an offer can
    /// answer, or (`None`) an answer to our own read, which routes nowhere.
    pub fn on_announce(
        &mut self,
        value: &Value,
        state: f64,
        via: Option<&str>,
        now: u64,
    ) -> Action {
        let Some(pid) = value.as_str().filter(|s| !s.is_empty()) else {
            return Action::Ignore("announcement is not a pid");
        };
        if pid == self.pid {
            return Action::Ignore("our own announcement");
        }
        if state < self.start {
            // It offers once it sees our announcement; if it does not, we
            // announce again (see `due`).
            if via.is_none()
                && state >= self.start - ANNOUNCEMENT_LIFE_MS
                && !self.peers.contains_key(pid)
            {
                self.elders.entry(pid.to_owned()).or_insert(now);
            }
            return Action::Ignore("announcement older than our start: its peer offers");
        }
        if self.peers.contains_key(pid) {
            return Action::Ignore("already connected or connecting");
        }
        if self.peers.len() >= self.max {
            return Action::Ignore("at the WebRTC peer limit");
        }
        let Some(via) = via else {
            if self.reannounced.contains(pid) {
                return Action::Ignore("announcement in a read answer, already re-announced");
            }
            self.read_only.entry(pid.to_owned()).or_insert(now);
            return Action::Ignore("announcement in a read answer: waiting for its write");
        };
        self.read_only.remove(pid);
        self.peers.insert(
            pid.to_owned(),
            PeerState::Offering {
                since: now,
                answered: false,
            },
        );
        Action::Offer {
            to: pid.to_owned(),
            reply_to: via.to_owned(),
        }
    }

    /// A signal arrived in the message whose `#` is `msg_id`.
    pub fn on_signal(&mut self, msg: RtcMessage, msg_id: &str, now: u64) -> Action {
        if msg.from == self.pid {
            return Action::Ignore("our own signal");
        }
        let state = self.peers.get(&msg.from).copied();
        match msg.signal {
            Signal::Hello => Action::Ignore("no offer, answer or candidate"),
            Signal::Offer(sdp) => {
                let replace = match state {
                    None => {
                        if self.peers.len() >= self.max {
                            return Action::Ignore("at the WebRTC peer limit");
                        }
                        false
                    }
                    // Both offered at once: the peer with the lower pid gives
                    // way and answers (one connection, not two).
                    Some(PeerState::Offering { .. }) if self.pid.as_str() < msg.from.as_str() => {
                        true
                    }
                    Some(PeerState::Offering { .. }) => {
                        self.set_aside
                            .insert(msg.from.clone(), (sdp, msg_id.to_owned(), now));
                        return Action::Ignore("both offered: the other side answers ours");
                    }
                    Some(PeerState::Answering { .. }) => {
                        return Action::Ignore("offer while answering one");
                    }
                    // The peer started over (a new connection): take it.
                    Some(PeerState::Open) => true,
                };
                self.set_aside.remove(&msg.from);
                self.read_only.remove(&msg.from);
                self.elders.remove(&msg.from);
                self.peers
                    .insert(msg.from.clone(), PeerState::Answering { since: now });
                Action::Accept {
                    from: msg.from,
                    sdp,
                    reply_to: msg_id.to_owned(),
                    replace,
                }
            }
            Signal::Answer(sdp) => match state {
                Some(PeerState::Offering {
                    since,
                    answered: false,
                }) => {
                    self.set_aside.remove(&msg.from);
                    self.peers.insert(
                        msg.from.clone(),
                        PeerState::Offering {
                            since,
                            answered: true,
                        },
                    );
                    Action::ApplyAnswer {
                        from: msg.from,
                        sdp,
                    }
                }
                _ => Action::Ignore("answer without our pending offer"),
            },
            Signal::Candidate(candidate) => match state {
                Some(_) => Action::AddCandidate {
                    from: msg.from,
                    candidate,
                },
                None => Action::Ignore("candidate for an unknown connection"),
            },
        }
    }

    /// The data channel with `pid` opened.
    pub fn opened(&mut self, pid: &str) {
        if let Some(s) = self.peers.get_mut(pid) {
            *s = PeerState::Open;
        }
    }

    /// The connection with `pid` ended (closed, failed, or given up).
    pub fn closed(&mut self, pid: &str) {
        self.peers.remove(pid);
        self.set_aside.remove(pid);
    }

    /// Offers set aside in a simultaneous exchange whose peer has not answered
    /// ours within [`GLARE_GRACE_MS`]: accept them now (replacing ours). Our
    /// offers unanswered after [`OFFER_ANSWER_GRACE_MS`]: announce again
    /// (once per peer; the offer stays pending). Peers
    /// seen only in a read answer [`REANNOUNCE_GRACE_MS`] ago, and peers that
    /// announced before us and did not offer within [`ELDER_GRACE_MS`], with
    /// no connection since: announce again (once per peer).
    pub fn due(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let waited = |m: &HashMap<String, u64>, grace: u64| -> Vec<String> {
            m.iter()
                .filter(|(_, at)| now.saturating_sub(**at) >= grace)
                .map(|(k, _)| k.clone())
                .collect()
        };
        let newer = waited(&self.read_only, REANNOUNCE_GRACE_MS);
        for pid in &newer {
            self.read_only.remove(pid);
        }
        let elder = waited(&self.elders, ELDER_GRACE_MS);
        for pid in &elder {
            self.elders.remove(pid);
        }
        for pid in newer.into_iter().chain(elder) {
            if !self.peers.contains_key(&pid) && self.reannounced.insert(pid.clone()) {
                out.push(Action::Announce { to: pid });
            }
        }
        let due: Vec<String> = self
            .set_aside
            .iter()
            .filter(|(_, (_, _, at))| now.saturating_sub(*at) >= GLARE_GRACE_MS)
            .map(|(k, _)| k.clone())
            .collect();
        for pid in due {
            let Some((sdp, reply_to, _)) = self.set_aside.remove(&pid) else {
                continue;
            };
            if matches!(
                self.peers.get(&pid),
                Some(PeerState::Offering {
                    answered: false,
                    ..
                })
            ) {
                self.peers
                    .insert(pid.clone(), PeerState::Answering { since: now });
                out.push(Action::Accept {
                    from: pid,
                    sdp,
                    reply_to,
                    replace: true,
                });
            }
        }
        let unanswered: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                matches!(s, PeerState::Offering { since, answered: false }
                    if now.saturating_sub(*since) >= OFFER_ANSWER_GRACE_MS)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for pid in unanswered {
            if self.retried.insert(pid.clone()) {
                out.push(Action::Announce { to: pid });
            }
        }
        out
    }

    /// Gives up connections still not open after [`PENDING_TIMEOUT_MS`];
    /// returns their pids (close them).
    pub fn expire(&mut self, now: u64) -> Vec<String> {
        let dead: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, s)| match s {
                PeerState::Offering { since, .. } | PeerState::Answering { since } => {
                    now.saturating_sub(*since) >= PENDING_TIMEOUT_MS
                }
                PeerState::Open => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        for d in &dead {
            self.peers.remove(d);
            self.set_aside.remove(d);
        }
        dead
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sig(v: Value) -> RtcMessage {
        RtcMessage::from_ok(Some(&v)).unwrap().unwrap()
    }

    #[test]
    fn payloads_read_as_gun_js_writes_them() {
        let m = sig(json!({"rtc": {"offer": {"type": "offer", "sdp": "v=0\\r\\no=-"}, "id": "B"}}));
        assert_eq!(m.from, "B");
        assert_eq!(m.signal, Signal::Offer("v=0\r\no=-".into()));
        let c = sig(
            json!({"rtc": {"candidate": {"candidate": "candidate:1 1 udp 2 10.0.0.1 5 typ host",
            "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u"}, "id": "A"}}),
        );
        let Signal::Candidate(cand) = &c.signal else {
            panic!("not a candidate: {c:?}")
        };
        assert_eq!(cand.sdp_mid.as_deref(), Some("0"));
        assert_eq!(cand.sdp_mline_index, Some(0));
        // Written back, the same JSON a browser reads.
        assert_eq!(
            c.to_ok(),
            json!({"rtc": {"candidate": {"candidate": "candidate:1 1 udp 2 10.0.0.1 5 typ host",
            "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u"}, "id": "A"}})
        );
        let a = RtcMessage {
            from: "A".into(),
            signal: Signal::Answer("x".into()),
        };
        assert_eq!(
            a.to_ok(),
            json!({"rtc": {"answer": {"type": "answer", "sdp": "x"}, "id": "A"}})
        );
        assert_eq!(sig(json!({"rtc": {"id": "Z"}})).signal, Signal::Hello);
        // Ordinary acks are not signals; malformed ones are errors.
        assert_eq!(RtcMessage::from_ok(Some(&json!(1))).unwrap(), None);
        assert_eq!(RtcMessage::from_ok(None).unwrap(), None);
        assert_eq!(
            RtcMessage::from_ok(Some(&json!({"rtc": {"offer": {}}}))),
            Err(SignalError::NoId)
        );
        assert_eq!(
            RtcMessage::from_ok(Some(
                &json!({"rtc": {"offer": {"type": "offer"}, "id": "B"}})
            )),
            Err(SignalError::NoSdp("offer"))
        );
        assert_eq!(
            RtcMessage::from_ok(Some(&json!({"rtc": {"candidate": 5, "id": "B"}}))),
            Err(SignalError::BadCandidate)
        );
        assert_eq!(room_soul("chat"), "/RTC/chat<?99");
    }

    #[test]
    fn newcomers_get_offers_and_answer_them() {
        let mut r = Room::new("M", 1000.0, 2);
        assert!(matches!(
            r.on_announce(&json!("M"), 2000.0, Some("a"), 0),
            Action::Ignore(_)
        ));
        assert!(matches!(
            r.on_announce(&json!("OLD"), 999.0, Some("a"), 0),
            Action::Ignore(_)
        ));
        assert_eq!(
            r.on_announce(&json!("X"), 1000.0, Some("a1"), 0),
            Action::Offer {
                to: "X".into(),
                reply_to: "a1".into()
            }
        );
        assert!(matches!(
            r.on_announce(&json!("X"), 1001.0, Some("a2"), 0),
            Action::Ignore(_)
        ));
        // X answers our offer once; a second answer is ignored.
        let ans = |s: &str| RtcMessage {
            from: "X".into(),
            signal: Signal::Answer(s.into()),
        };
        assert_eq!(
            r.on_signal(ans("s"), "m1", 1),
            Action::ApplyAnswer {
                from: "X".into(),
                sdp: "s".into()
            }
        );
        assert!(matches!(r.on_signal(ans("s"), "m2", 1), Action::Ignore(_)));
        // Y offers to us: we accept.
        let offer = |from: &str| RtcMessage {
            from: from.into(),
            signal: Signal::Offer("o".into()),
        };
        assert_eq!(
            r.on_signal(offer("Y"), "o1", 2),
            Action::Accept {
                from: "Y".into(),
                sdp: "o".into(),
                reply_to: "o1".into(),
                replace: false
            }
        );
        // The limit (2 peers) holds.
        assert!(matches!(
            r.on_signal(offer("Z"), "o2", 2),
            Action::Ignore(_)
        ));
        assert!(matches!(
            r.on_announce(&json!("Z"), 1500.0, Some("a3"), 2),
            Action::Ignore(_)
        ));
        // Candidates only for known connections.
        let cand = |from: &str| RtcMessage {
            from: from.into(),
            signal: Signal::Candidate(Candidate {
                candidate: "c".into(),
                sdp_mid: None,
                sdp_mline_index: None,
                username_fragment: None,
            }),
        };
        assert!(matches!(
            r.on_signal(cand("Y"), "c1", 3),
            Action::AddCandidate { .. }
        ));
        assert!(matches!(r.on_signal(cand("Q"), "c2", 3), Action::Ignore(_)));
        // Opened connections do not expire; pending ones do.
        r.opened("X");
        assert_eq!(r.expire(PENDING_TIMEOUT_MS + 2), vec!["Y".to_string()]);
        assert_eq!(r.state("X"), Some(PeerState::Open));
        r.closed("X");
        assert_eq!(r.peers().count(), 0);
    }

    #[test]
    fn simultaneous_offers_make_one_connection() {
        let offer = |from: &str| RtcMessage {
            from: from.into(),
            signal: Signal::Offer("o".into()),
        };
        let mut low = Room::new("A", 0.0, 55);
        let mut high = Room::new("B", 0.0, 55);
        assert!(matches!(
            low.on_announce(&json!("B"), 1.0, Some("x"), 0),
            Action::Offer { .. }
        ));
        assert!(matches!(
            high.on_announce(&json!("A"), 1.0, Some("y"), 0),
            Action::Offer { .. }
        ));
        // The lower pid answers; the higher keeps its own offer.
        assert!(matches!(
            low.on_signal(offer("B"), "ob", 1),
            Action::Accept { replace: true, .. }
        ));
        assert!(matches!(
            high.on_signal(offer("A"), "oa", 1),
            Action::Ignore(_)
        ));
        // A Gun.js peer in A's place would ignore our offer too: when ours
        // stays unanswered, we take theirs after a grace time.
        assert!(high.due(1 + GLARE_GRACE_MS - 1).is_empty());
        assert_eq!(
            high.due(1 + GLARE_GRACE_MS),
            vec![Action::Accept {
                from: "A".into(),
                sdp: "o".into(),
                reply_to: "oa".into(),
                replace: true
            }]
        );
        assert_eq!(
            high.state("A"),
            Some(PeerState::Answering {
                since: 1 + GLARE_GRACE_MS
            })
        );
        // Answered in time: nothing set aside fires.
        let mut h2 = Room::new("B", 0.0, 55);
        h2.on_announce(&json!("A"), 1.0, Some("y"), 0);
        h2.on_signal(offer("A"), "oa", 1);
        let answer = RtcMessage {
            from: "A".into(),
            signal: Signal::Answer("s".into()),
        };
        assert!(matches!(
            h2.on_signal(answer, "an", 2),
            Action::ApplyAnswer { .. }
        ));
        assert!(h2.due(10 * GLARE_GRACE_MS).is_empty());
    }

    #[test]
    fn announcements_read_back_cannot_be_answered_so_we_announce_again() {
        let mut r = Room::new("M", 1000.0, 55);
        // Its write may still come: wait for it first.
        assert!(matches!(
            r.on_announce(&json!("N"), 1500.0, None, 0),
            Action::Ignore(_)
        ));
        assert!(r.due(REANNOUNCE_GRACE_MS - 1).is_empty());
        assert_eq!(
            r.due(REANNOUNCE_GRACE_MS),
            vec![Action::Announce { to: "N".into() }]
        );
        // Once per peer.
        assert!(matches!(
            r.on_announce(&json!("N"), 1500.0, None, 0),
            Action::Ignore(_)
        ));
        assert!(r.due(10 * REANNOUNCE_GRACE_MS).is_empty());
        // Old ones are not answered at all.
        assert!(matches!(
            r.on_announce(&json!("O"), 10.0, None, 0),
            Action::Ignore(_)
        ));
        // Its write (or ours pushed to it) still leads to one connection.
        assert!(matches!(
            r.on_announce(&json!("N"), 1600.0, Some("w"), 1),
            Action::Offer { .. }
        ));
    }

    #[test]
    fn a_peer_that_announced_before_us_and_does_not_offer_gets_our_announcement_again() {
        let mut r = Room::new("M", 100_000.0, 55);
        // It announced before we joined: it should offer, we wait.
        assert!(matches!(
            r.on_announce(&json!("E"), 99_000.0, None, 0),
            Action::Ignore(_)
        ));
        assert!(r.due(ELDER_GRACE_MS - 1).is_empty());
        assert_eq!(
            r.due(ELDER_GRACE_MS),
            vec![Action::Announce { to: "E".into() }]
        );
        // Once per peer.
        r.on_announce(&json!("E"), 99_000.0, None, ELDER_GRACE_MS);
        assert!(r.due(10 * ELDER_GRACE_MS).is_empty());
        // It offered in time: nothing to do.
        let mut r = Room::new("M", 100_000.0, 55);
        r.on_announce(&json!("E"), 99_000.0, None, 0);
        let offer = RtcMessage {
            from: "E".into(),
            signal: Signal::Offer("v=0".into()),
        };
        assert!(matches!(r.on_signal(offer, "o", 10), Action::Accept { .. }));
        assert!(r.due(10 * ELDER_GRACE_MS).is_empty());
        // An announcement older than 99 s is a peer most likely gone, and one
        // that came as a write is not waited for either.
        let mut r = Room::new("M", 100_000.0, 55);
        r.on_announce(&json!("G"), 100_000.0 - ANNOUNCEMENT_LIFE_MS - 1.0, None, 0);
        r.on_announce(&json!("W"), 99_000.0, Some("w"), 0);
        assert!(r.due(10 * ELDER_GRACE_MS).is_empty());
    }

    #[test]
    fn an_offer_without_an_answer_makes_us_announce_again() {
        let mut r = Room::new("M", 1000.0, 55);
        assert!(matches!(
            r.on_announce(&json!("N"), 1500.0, Some("push"), 0),
            Action::Offer { .. }
        ));
        assert!(r.due(OFFER_ANSWER_GRACE_MS - 1).is_empty());
        assert_eq!(
            r.due(OFFER_ANSWER_GRACE_MS),
            vec![Action::Announce { to: "N".into() }]
        );
        // Our offer stays pending (a late answer to it still connects)...
        assert!(matches!(r.state("N"), Some(PeerState::Offering { .. })));
        assert!(
            r.due(10 * OFFER_ANSWER_GRACE_MS).is_empty(),
            "once per peer"
        );
        // ...and N's offer after our new announcement makes one connection:
        // "M" < "N", so we answer it in place of ours.
        let offer = RtcMessage {
            from: "N".into(),
            signal: Signal::Offer("v=0".into()),
        };
        assert!(matches!(
            r.on_signal(offer, "o", OFFER_ANSWER_GRACE_MS + 10),
            Action::Accept { replace: true, .. }
        ));
        // With the higher pid we keep ours for the glare grace, then take theirs.
        let mut r = Room::new("Z", 1000.0, 55);
        r.on_announce(&json!("N"), 1500.0, Some("push"), 0);
        assert_eq!(
            r.due(OFFER_ANSWER_GRACE_MS),
            vec![Action::Announce { to: "N".into() }]
        );
        let offer = RtcMessage {
            from: "N".into(),
            signal: Signal::Offer("v=0".into()),
        };
        let t = OFFER_ANSWER_GRACE_MS + 10;
        assert!(matches!(r.on_signal(offer, "o", t), Action::Ignore(_)));
        assert!(matches!(
            r.due(t + GLARE_GRACE_MS).as_slice(),
            [Action::Accept { replace: true, .. }]
        ));
        // A late answer to a pending offer is still taken; an answered offer
        // is not announced for.
        let mut r = Room::new("M", 1000.0, 55);
        r.on_announce(&json!("K"), 1500.0, Some("push"), 0);
        r.due(OFFER_ANSWER_GRACE_MS);
        let answer = RtcMessage {
            from: "K".into(),
            signal: Signal::Answer("v=0".into()),
        };
        assert!(matches!(
            r.on_signal(answer, "a", OFFER_ANSWER_GRACE_MS + 5),
            Action::ApplyAnswer { .. }
        ));
        let mut r = Room::new("M", 1000.0, 55);
        r.on_announce(&json!("K"), 1500.0, Some("push"), 0);
        let answer = RtcMessage {
            from: "K".into(),
            signal: Signal::Answer("v=0".into()),
        };
        r.on_signal(answer, "a", 5);
        assert!(r.due(10 * OFFER_ANSWER_GRACE_MS).is_empty());
    }

    #[test]
    fn a_write_or_an_offer_after_the_read_answer_cancels_announcing_again() {
        // The write follows the read answer: we offer, and do not announce.
        let mut r = Room::new("M", 1000.0, 55);
        r.on_announce(&json!("N"), 1500.0, None, 0);
        assert!(matches!(
            r.on_announce(&json!("N"), 1500.0, Some("w"), 10),
            Action::Offer { .. }
        ));
        // (Within the offer's own grace: see the test above for after it.)
        assert!(r.due(2 * REANNOUNCE_GRACE_MS).is_empty());
        // The peer offers first (it saw our announcement): we answer it, and
        // do not announce either.
        let mut r = Room::new("M", 1000.0, 55);
        r.on_announce(&json!("N"), 1500.0, None, 0);
        let offer = RtcMessage {
            from: "N".into(),
            signal: Signal::Offer("v=0".into()),
        };
        assert!(matches!(r.on_signal(offer, "o", 10), Action::Accept { .. }));
        assert!(r.due(10 * REANNOUNCE_GRACE_MS).is_empty());
    }
}
