//! The transport: peer connections on the `webrtc` crate, signalled through
//! the engine (see [`crate::signal`] for the wire and the decisions).
//!
//! One task per room reads the announcements and the replies to our own
//! announcement; one task per connection owns its `PeerConnection` and runs
//! the signalling steps in order (remote description before candidates, our
//! offer or answer before our candidates); one task per open data channel
//! feeds the engine, which sees it as a [`Direction::Direct`] link.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gun_core::{Engine, Message, PutOptions, Replies, now_ms};
use gun_dam::{Direction, Hub, Link, LinkError, Origin, PeerId};
use gun_graph::{Graph, Soul, Value as GunValue};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSdpType, RTCSessionDescription,
};

use crate::signal::{
    self, ANNOUNCE_KEY, Action, CHANNEL_LABEL, CHANNEL_MAX_RETRANSMITS, CHANNEL_ORDERED, Candidate,
    PeerState, Room, RtcMessage, Signal,
};

/// Frames queued per data channel before the link reports itself full.
const LINK_QUEUE: usize = 4096;
/// The max-message-size a data channel peer may announce at least (SDP
/// default when absent: 64 KiB; browsers and webrtc-rs say 256 KiB).
const SMALLEST_MAX_MESSAGE: usize = 64 * 1024;
/// After an open connection ends, we announce again this much later, so that a
/// peer still in the room offers a new one.
const REANNOUNCE_AFTER_CLOSE: Duration = Duration::from_secs(1);
/// How long offers answering one announcement are taken: the `<?99` of the
/// room soul (SEA peers forget announcements older than that).
const ANNOUNCEMENT_LIFE: Duration = Duration::from_secs(99);
/// How often unfinished connections are checked (expiry, set-aside offers).
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// Settings of the WebRTC transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcOptions {
    /// The room: peers in the same room connect to each other. Gun.js browser
    /// pages use `location.hash` (without `#`) or else the path (without the
    /// leading `/`).
    pub room: String,
    /// ICE server URLs (`stun:host:port`, `turn:…`). Default: Gun.js's two STUN
    /// servers ([`signal::DEFAULT_ICE_SERVERS`]); empty for host candidates only
    /// (a LAN, a test on loopback).
    pub ice_servers: Vec<String>,
    /// At most this many WebRTC peers, connected or connecting. Default 55 (Gun.js).
    pub max_peers: usize,
    /// The local UDP addresses to bind (`"0.0.0.0:0"`: every non-loopback
    /// interface, any port; `"127.0.0.1:0"`: loopback only).
    pub udp_addrs: Vec<String>,
}

impl RtcOptions {
    /// Defaults for `room`.
    pub fn new(room: impl Into<String>) -> RtcOptions {
        RtcOptions {
            room: room.into(),
            ice_servers: signal::DEFAULT_ICE_SERVERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_peers: signal::DEFAULT_MAX_PEERS,
            udp_addrs: vec!["0.0.0.0:0".to_owned()],
        }
    }
}

/// Why the transport could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// [`RtcOptions::room`] is empty.
    #[error("the WebRTC room name is empty")]
    EmptyRoom,
    /// [`RtcOptions::udp_addrs`] is empty.
    #[error("no UDP address to bind for WebRTC")]
    NoUdpAddress,
    /// [`RtcOptions::max_peers`] is zero.
    #[error("max_peers is 0: no WebRTC peer could ever connect")]
    NoPeers,
    /// The engine refused the announcement.
    #[error("announcing in the room failed: {0}")]
    Engine(#[from] gun_core::Error),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(String),
}

fn rtc_err(e: impl std::fmt::Display) -> Error {
    Error::WebRtc(e.to_string())
}

/// A running WebRTC transport in one room. Dropping it does not stop it; call
/// [`Rtc::close`].
pub struct Rtc {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc")
            .field("room", &self.inner.opts.room)
            .field("pid", &self.inner.pid)
            .finish()
    }
}

enum Cmd {
    Answer(String),
    Candidate(Candidate),
    Close,
}

enum Start {
    Offer { reply_to: String },
    Accept { sdp: String, reply_to: String },
}

struct ConnHandle {
    generation: u64,
    cmds: mpsc::UnboundedSender<Cmd>,
}

struct Inner {
    engine: Engine,
    opts: RtcOptions,
    pid: String,
    soul: Soul,
    room: Mutex<Room>,
    conns: Mutex<HashMap<String, ConnHandle>>,
    generation: AtomicU64,
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Rtc {
    /// Joins `opts.room` on `engine`: announces our pid there (now, and again
    /// with [`Rtc::announce`]), offers a connection to every peer announcing
    /// later, and answers their offers. Must be called inside a tokio runtime.
    ///
    /// The engine should have (or expect, with [`Engine::expect_peer`]) a
    /// relay to signal through; the announcement waits for it.
    pub fn start(engine: Engine, opts: RtcOptions) -> Result<Rtc, Error> {
        if opts.room.is_empty() {
            return Err(Error::EmptyRoom);
        }
        if opts.udp_addrs.is_empty() {
            return Err(Error::NoUdpAddress);
        }
        if opts.max_peers == 0 {
            return Err(Error::NoPeers);
        }
        let soul = Soul::new(signal::room_soul(&opts.room)).map_err(rtc_err)?;
        let pid = engine.pid();
        let inner = Arc::new(Inner {
            room: Mutex::new(Room::new(pid.clone(), now_ms(), opts.max_peers)),
            engine,
            opts,
            pid,
            soul,
            conns: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        // Listen before announcing, so that nothing is missed.
        let (listener, mut changes) = inner.engine.listen(&inner.soul);
        inner
            .engine
            .subscribe_remote(&inner.soul, Some(ANNOUNCE_KEY));
        let mut tasks = Vec::new();
        let me = inner.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                me.on_change(&change);
            }
            me.engine.unlisten(listener);
        }));
        let me = inner.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRE_EVERY);
            loop {
                tick.tick().await;
                me.expire();
            }
        }));
        let rtc = Rtc {
            inner,
            tasks: Mutex::new(tasks),
        };
        let me = rtc.inner.clone();
        let announce = tokio::spawn(async move {
            if let Err(e) = me.announce().await {
                tracing::warn!(%e, "WebRTC announcement failed");
            }
        });
        lock(&rtc.tasks).push(announce);
        Ok(rtc)
    }

    /// Our pid (the engine's), as other peers see it in the room.
    pub fn pid(&self) -> &str {
        &self.inner.pid
    }

    /// The room.
    pub fn room(&self) -> &str {
        &self.inner.opts.room
    }

    /// The peers we are connected or connecting to, by pid.
    pub fn peers(&self) -> Vec<(String, PeerState)> {
        let mut v: Vec<(String, PeerState)> = lock(&self.inner.room)
            .peers()
            .map(|(k, s)| (k.to_owned(), s))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The pids whose data channel is open.
    pub fn connected(&self) -> Vec<String> {
        self.peers()
            .into_iter()
            .filter(|(_, s)| *s == PeerState::Open)
            .map(|(k, _)| k)
            .collect()
    }

    /// Announces our pid in the room again (peers that missed the first
    /// announcement offer then). Resolves once the write is stored locally.
    pub async fn announce(&self) -> Result<(), Error> {
        let me = self.inner.clone();
        me.announce().await
    }

    /// Closes every connection and stops the transport.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        let conns: Vec<ConnHandle> = lock(&self.inner.conns).drain().map(|(_, c)| c).collect();
        for c in &conns {
            let _ = c.cmds.send(Cmd::Close);
        }
        // Let the connection tasks close their channels (the far side sees
        // the data channel close at once).
        for _ in 0..50 {
            if conns.iter().all(|c| c.cmds.is_closed()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Inner {
    async fn announce(self: Arc<Self>) -> Result<(), Error> {
        let mut g = Graph::new();
        g.put(
            self.soul.clone(),
            ANNOUNCE_KEY,
            self.engine.next_state(),
            GunValue::string(self.pid.as_str()),
        )
        .map_err(rtc_err)?;
        let opts = PutOptions {
            replies: true,
            ..PutOptions::default()
        };
        let Some(mut replies) = self.engine.put_local(g, &opts).await?.replies else {
            tracing::warn!(room = %self.opts.room, "WebRTC announcement not sent: no relay known");
            return Ok(());
        };
        // Offers come back as answers to the announcement, from the peers
        // that see it while it is fresh (`<?99`: 99 s); then its route closes.
        let me = self.clone();
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + ANNOUNCEMENT_LIFE;
            while let Ok(Some(r)) = tokio::time::timeout_at(until, replies.next()).await {
                if me.closed.load(Ordering::Relaxed) {
                    return;
                }
                me.on_signal(&r.message);
            }
        });
        Ok(())
    }

    fn on_change(self: &Arc<Self>, change: &gun_core::Change) {
        if !change.keys.iter().any(|k| &**k == ANNOUNCE_KEY) {
            return;
        }
        let answerable = match &change.origin {
            Origin::Local => return, // our own announcement
            // Only a write's `#` leads back to the announcer; a read answer's
            // ends at the relay that answered.
            Origin::Peer { id, .. } => Some(id.as_str()),
            Origin::Reply { .. } => None,
        };
        let Some(entry) = change.node.get(ANNOUNCE_KEY) else {
            return;
        };
        let value = entry.value.to_json();
        let action =
            lock(&self.room).on_announce(&value, entry.state.as_f64(), answerable, now_ms() as u64);
        self.act(action);
    }

    fn on_signal(self: &Arc<Self>, msg: &Message) {
        let sig = match RtcMessage::from_ok(msg.ok.as_ref()) {
            Ok(Some(s)) => s,
            Ok(None) => return, // an ordinary ack
            Err(e) => {
                tracing::debug!(%e, id = ?msg.id, "malformed WebRTC signal dropped");
                return;
            }
        };
        let id = msg.id.clone().unwrap_or_default();
        let action = lock(&self.room).on_signal(sig, &id, now_ms() as u64);
        self.act(action);
    }

    fn act(self: &Arc<Self>, action: Action) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        match action {
            Action::Offer { to, reply_to } => {
                tracing::info!(peer = %to, "WebRTC: offering a connection to a new peer in the room");
                self.spawn_conn(to, Start::Offer { reply_to })
            }
            Action::Accept {
                from,
                sdp,
                reply_to,
                replace,
            } => {
                tracing::info!(peer = %from, replace, "WebRTC: answering an offer");
                if replace && let Some(old) = lock(&self.conns).remove(&from) {
                    let _ = old.cmds.send(Cmd::Close);
                }
                self.spawn_conn(from, Start::Accept { sdp, reply_to });
            }
            Action::ApplyAnswer { from, sdp } => self.command(&from, Cmd::Answer(sdp)),
            Action::Announce { to } => {
                tracing::info!(peer = %to, "WebRTC: announcing again for a peer that has not connected");
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.announce().await {
                        tracing::warn!(%e, "WebRTC announcement failed");
                    }
                });
            }
            Action::AddCandidate { from, candidate } => {
                self.command(&from, Cmd::Candidate(candidate))
            }
            Action::Ignore(why) => tracing::trace!(why, "WebRTC signal ignored"),
        }
    }

    fn command(&self, pid: &str, cmd: Cmd) {
        if let Some(c) = lock(&self.conns).get(pid) {
            let _ = c.cmds.send(cmd);
        }
    }

    fn spawn_conn(self: &Arc<Self>, pid: String, start: Start) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.conns).insert(
            pid.clone(),
            ConnHandle {
                generation,
                cmds: tx,
            },
        );
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.clone().run_conn(&pid, generation, rx, start).await {
                tracing::info!(peer = %pid, %e, "WebRTC connection failed");
            }
            me.conn_ended(&pid, generation);
        });
    }

    /// Forgets the connection `generation` with `pid`, unless a newer one replaced it.
    fn conn_ended(&self, pid: &str, generation: u64) {
        let mut conns = lock(&self.conns);
        if conns.get(pid).is_some_and(|c| c.generation == generation) {
            conns.remove(pid);
            drop(conns);
            lock(&self.room).closed(pid);
        }
    }

    fn expire(self: &Arc<Self>) {
        let due = lock(&self.room).due(now_ms() as u64);
        for action in due {
            self.act(action);
        }
        let dead = lock(&self.room).expire(now_ms() as u64);
        for pid in dead {
            tracing::info!(peer = %pid, "WebRTC connection not open after 60 s: given up");
            if let Some(c) = lock(&self.conns).remove(&pid) {
                let _ = c.cmds.send(Cmd::Close);
            }
        }
    }

    /// Sends one signal answering `reply_to`; returns the replies to it.
    fn send_signal(&self, reply_to: &str, signal: Signal) -> Replies {
        let msg = Message {
            reply_to: Some(reply_to.to_owned()),
            ok: Some(
                RtcMessage {
                    from: self.pid.clone(),
                    signal,
                }
                .to_ok(),
            ),
            ..Message::default()
        };
        self.engine.answer(msg)
    }

    async fn build_pc(
        &self,
        events: mpsc::UnboundedSender<PcEvent>,
    ) -> Result<Arc<dyn PeerConnection>, Error> {
        let ice: Vec<RTCIceServer> = if self.opts.ice_servers.is_empty() {
            Vec::new()
        } else {
            vec![RTCIceServer {
                urls: self.opts.ice_servers.clone(),
                ..Default::default()
            }]
        };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice).build())
            .with_handler(Arc::new(Handler { events }))
            .with_udp_addrs(self.opts.udp_addrs.clone())
            .build()
            .await
            .map_err(rtc_err)?;
        Ok(Arc::new(pc))
    }

    /// One connection, start to end: the signalling steps in order, then the
    /// data channel's life.
    async fn run_conn(
        self: Arc<Self>,
        pid: &str,
        generation: u64,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        start: Start,
    ) -> Result<(), Error> {
        let (ev_tx, mut events) = mpsc::unbounded_channel();
        let pc = self.build_pc(ev_tx).await?;
        let result = self
            .clone()
            .drive(pid, generation, &pc, &mut cmds, &mut events, start)
            .await;
        if let Err(e) = pc.close().await {
            tracing::debug!(peer = %pid, %e, "closing the peer connection");
        }
        result
    }

    async fn drive(
        self: Arc<Self>,
        pid: &str,
        generation: u64,
        pc: &Arc<dyn PeerConnection>,
        cmds: &mut mpsc::UnboundedReceiver<Cmd>,
        events: &mut mpsc::UnboundedReceiver<PcEvent>,
        start: Start,
    ) -> Result<(), Error> {
        let mut remote_set = false;
        let mut replies: Option<Replies> = None;
        let mut channels: Vec<JoinHandle<()>> = Vec::new();
        let mut closers: Vec<Arc<dyn DataChannel>> = Vec::new();
        // The engine link of this connection, once a channel opened.
        let slot: Arc<Mutex<Option<PeerId>>> = Arc::default();
        // Where our candidates go: the message our offer or answer answered.
        let signal_to = match start {
            Start::Offer { reply_to } => {
                let init = RTCDataChannelInit {
                    ordered: CHANNEL_ORDERED,
                    max_retransmits: Some(CHANNEL_MAX_RETRANSMITS),
                    ..Default::default()
                };
                let dc = pc
                    .create_data_channel(CHANNEL_LABEL, Some(init))
                    .await
                    .map_err(rtc_err)?;
                closers.push(dc.clone());
                channels.push(self.spawn_channel(pid, generation, dc, &slot));
                let offer = pc.create_offer(None).await.map_err(rtc_err)?;
                pc.set_local_description(offer.clone())
                    .await
                    .map_err(rtc_err)?;
                replies = Some(self.send_signal(&reply_to, Signal::Offer(offer.sdp)));
                reply_to
            }
            Start::Accept { sdp, reply_to } => {
                let offer = description(RTCSdpType::Offer, sdp)?;
                pc.set_remote_description(offer).await.map_err(rtc_err)?;
                remote_set = true;
                let answer = pc.create_answer(None).await.map_err(rtc_err)?;
                pc.set_local_description(answer.clone())
                    .await
                    .map_err(rtc_err)?;
                drop(self.send_signal(&reply_to, Signal::Answer(answer.sdp)));
                reply_to
            }
        };
        let mid = match pc.local_description().await {
            Some(d) => first_mid(&d.sdp),
            None => None,
        };
        let mut pending: Vec<Candidate> = Vec::new();
        let outcome = loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None | Some(Cmd::Close) => break Ok(()),
                    Some(Cmd::Answer(sdp)) => {
                        let answer = description(RTCSdpType::Answer, sdp)?;
                        pc.set_remote_description(answer).await.map_err(rtc_err)?;
                        remote_set = true;
                        for c in pending.drain(..) {
                            add_candidate(pc, pid, c).await;
                        }
                    }
                    Some(Cmd::Candidate(c)) => {
                        if remote_set {
                            add_candidate(pc, pid, c).await;
                        } else {
                            pending.push(c);
                        }
                    }
                },
                ev = events.recv() => match ev {
                    None => break Ok(()),
                    Some(PcEvent::Candidate(init)) => {
                        let c = Candidate {
                            candidate: init.candidate,
                            sdp_mid: mid.clone().or(init.sdp_mid.filter(|m| !m.is_empty())),
                            sdp_mline_index: init.sdp_mline_index.or(Some(0)),
                            username_fragment: init.username_fragment,
                        };
                        drop(self.send_signal(&signal_to, Signal::Candidate(c)));
                    }
                    Some(PcEvent::Channel(dc)) => {
                        closers.push(dc.clone());
                        channels.push(self.spawn_channel(pid, generation, dc, &slot));
                    }
                    Some(PcEvent::State(s)) => {
                        tracing::debug!(peer = %pid, state = %s, "WebRTC connection state");
                        if matches!(s, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                            break Err(Error::WebRtc(format!("connection {s}")));
                        }
                    }
                },
                r = next_reply(&mut replies) => match r {
                    Some(r) => self.on_signal(&r.message),
                    None => replies = None,
                },
            }
        };
        for dc in closers {
            let _ = dc.close().await;
        }
        for c in channels {
            // The channel tasks end on their own once the channel closed.
            let _ = tokio::time::timeout(Duration::from_secs(1), c).await;
        }
        outcome
    }

    fn spawn_channel(
        self: &Arc<Self>,
        pid: &str,
        generation: u64,
        dc: Arc<dyn DataChannel>,
        slot: &Arc<Mutex<Option<PeerId>>>,
    ) -> JoinHandle<()> {
        let me = self.clone();
        let pid = pid.to_owned();
        let slot = slot.clone();
        tokio::spawn(async move { me.run_channel(&pid, generation, dc, slot).await })
    }

    /// One data channel: waits for it to open, then feeds the engine every
    /// frame until it closes. The first channel of a connection to open is
    /// its link (what we send on); Gun.js answerers open a channel of their
    /// own too, whose frames go to the same link.
    async fn run_channel(
        self: Arc<Self>,
        pid: &str,
        generation: u64,
        dc: Arc<dyn DataChannel>,
        slot: Arc<Mutex<Option<PeerId>>>,
    ) {
        loop {
            match dc.poll().await {
                Some(DataChannelEvent::OnOpen) => break,
                Some(DataChannelEvent::OnClose) | None => return,
                Some(_) => {}
            }
        }
        let mut owner = None;
        let peer = {
            let mut s = lock(&slot);
            match *s {
                Some(p) => p,
                None => {
                    let (tx, rx) = mpsc::channel::<Out>(LINK_QUEUE);
                    let link = Arc::new(RtcLink {
                        tx,
                        closed: AtomicBool::new(false),
                    });
                    let p = self.engine.attach(
                        link.clone(),
                        Direction::Direct {
                            pid: pid.to_owned(),
                        },
                    );
                    *s = Some(p);
                    owner = Some((link, rx));
                    p
                }
            }
        };
        let mut writer = None;
        let mut link = None;
        if let Some((l, mut rx)) = owner {
            let current = lock(&self.conns)
                .get(pid)
                .is_some_and(|c| c.generation == generation);
            if !current {
                // Replaced or given up meanwhile.
                self.engine.detach(peer);
                let _ = dc.close().await;
                return;
            }
            lock(&self.room).opened(pid);
            tracing::info!(peer = %pid, link = peer.0, "WebRTC data channel open");
            let writer_dc = dc.clone();
            writer = Some(tokio::spawn(async move {
                while let Some(out) = rx.recv().await {
                    match out {
                        // Text messages: Gun.js parses `event.data` as a string.
                        Out::Frame(f) => {
                            if let Err(e) = writer_dc.send_text(&f).await {
                                if f.len() > SMALLEST_MAX_MESSAGE {
                                    // Over the far side's max-message-size
                                    // (64-256 KiB): that frame only.
                                    tracing::warn!(bytes = f.len(), %e,
                                        "frame too large for the data channel: not sent on it");
                                    continue;
                                }
                                tracing::debug!(%e, "WebRTC send failed");
                                break;
                            }
                        }
                        Out::Close => break,
                    }
                }
                let _ = writer_dc.close().await;
            }));
            link = Some(l);
        }
        loop {
            match dc.poll().await {
                Some(DataChannelEvent::OnMessage(m)) => match std::str::from_utf8(&m.data) {
                    Ok(text) => self.engine.receive(peer, text),
                    Err(_) => {
                        tracing::debug!(peer = %pid, "non-UTF-8 data channel message dropped")
                    }
                },
                Some(DataChannelEvent::OnClose) | None => break,
                Some(_) => {}
            }
        }
        if let Some(l) = link {
            l.closed.store(true, Ordering::Relaxed);
            self.engine.detach(peer);
            tracing::info!(peer = %pid, link = peer.0, "WebRTC data channel closed");
            // A peer still in the room (a network blip, its restart) sees
            // the announcement and offers again; a peer gone ignores it.
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REANNOUNCE_AFTER_CLOSE).await;
                if !me.closed.load(Ordering::Relaxed)
                    && let Err(e) = me.announce().await
                {
                    tracing::warn!(%e, "WebRTC announcement failed");
                }
            });
        }
        if let Some(w) = writer {
            w.abort();
        }
        self.command(pid, Cmd::Close);
    }
}

async fn next_reply(replies: &mut Option<Replies>) -> Option<gun_core::Reply> {
    match replies {
        Some(r) => r.next().await,
        None => std::future::pending().await,
    }
}

async fn add_candidate(pc: &Arc<dyn PeerConnection>, pid: &str, c: Candidate) {
    if c.candidate.is_empty() {
        return; // end of candidates
    }
    let init = RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    };
    if let Err(e) = pc.add_ice_candidate(init).await {
        tracing::debug!(peer = %pid, %e, "remote ICE candidate refused");
    }
}

fn description(kind: RTCSdpType, sdp: String) -> Result<RTCSessionDescription, Error> {
    let r = match kind {
        RTCSdpType::Answer => RTCSessionDescription::answer(sdp),
        _ => RTCSessionDescription::offer(sdp),
    };
    r.map_err(rtc_err)
}

/// The first `a=mid:` of an SDP (the data channel's m-section).
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

enum PcEvent {
    Candidate(RTCIceCandidateInit),
    Channel(Arc<dyn DataChannel>),
    State(RTCPeerConnectionState),
}

struct Handler {
    events: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.events.send(PcEvent::Candidate(init));
            }
            Err(e) => tracing::debug!(%e, "local ICE candidate not serializable"),
        }
    }

    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        let _ = self.events.send(PcEvent::Channel(data_channel));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PcEvent::State(state));
    }
}

enum Out {
    Frame(Arc<str>),
    Close,
}

/// A data channel as the engine sees it.
struct RtcLink {
    tx: mpsc::Sender<Out>,
    closed: AtomicBool,
}

impl Link for RtcLink {
    fn send(&self, frame: Arc<str>) -> Result<(), LinkError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(LinkError::Closed);
        }
        self.tx.try_send(Out::Frame(frame)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LinkError::Full,
            mpsc::error::TrySendError::Closed(_) => LinkError::Closed,
        })
    }

    fn close(&self, reason: &str) {
        tracing::debug!(reason, "closing a WebRTC link");
        self.closed.store(true, Ordering::Relaxed);
        let _ = self.tx.try_send(Out::Close);
    }
}
