//! The relay's plain HTTP pages: `GET /health` (also `GET /` without a static
//! folder), `GET /stats` (the counters and the last minutes of history),
//! `GET /dashboard` (a self-contained page charting them live) and
//! `GET /metrics` (Prometheus, `metrics.rs`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use gun_core::Engine;
use gun_net_ws::{HttpHandler, HttpRequest, HttpResponse};

use super::StoreKind;
use super::metrics::{self, Refusals, Scrape};
use super::static_files::{GunJsDir, StaticDir};

/// Seconds of history kept for the dashboard chart.
const HISTORY_SECS: usize = 600;

/// One second's totals, for the dashboard.
#[derive(Default, Clone, Copy)]
struct Sample {
    t_ms: u64,
    peers: u64,
    frames_in: u64,
    frames_out: u64,
    puts_in: u64,
    gets_in: u64,
    acks_out: u64,
    rejected: u64,
    souls: u64,
    bytes: u64,
}

impl Sample {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "t": self.t_ms,
            "peers": self.peers,
            "msgs_in": self.frames_in,
            "msgs_out": self.frames_out,
            "puts_in": self.puts_in,
            "gets_in": self.gets_in,
            "acks_out": self.acks_out,
            "rejected": self.rejected,
            "souls": self.souls,
            "bytes": self.bytes,
        })
    }
}

/// What the health page and dashboard show; refreshed every second by the
/// relay's sampling task, because the HTTP handler runs on a blocking thread.
#[derive(Default)]
struct Snapshot {
    souls: u64,
    bytes: u64,
    frames_in: u64,
    frames_out: u64,
    history: VecDeque<Sample>,
}

/// The HTTP handler of a relay.
pub(super) struct Health {
    engine: Engine,
    store_kind: StoreKind,
    sea: bool,
    snapshot: Arc<Mutex<Snapshot>>,
    peers_dialed: Vec<String>,
    static_dir: Option<StaticDir>,
    gun_js: Option<GunJsDir>,
    /// The WebSocket server's counters (set once it is bound).
    server: OnceLock<gun_net_ws::StatsSource>,
    refusals: Arc<Refusals>,
}

/// The dashboard page: inline CSS and JS, no external resources.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(std::sync::atomic::Ordering::Relaxed)
}

impl Health {
    /// The pages of a relay on `engine`.
    pub(super) fn new(
        engine: Engine,
        store_kind: StoreKind,
        sea: bool,
        peers_dialed: Vec<String>,
        static_dir: Option<StaticDir>,
        gun_js: Option<GunJsDir>,
        refusals: Arc<Refusals>,
    ) -> Health {
        Health {
            engine,
            store_kind,
            sea,
            snapshot: Arc::new(Mutex::new(Snapshot::default())),
            peers_dialed,
            static_dir,
            gun_js,
            server: OnceLock::new(),
            refusals,
        }
    }

    /// Where `/metrics` reads the WebSocket server's counters.
    pub(super) fn set_server(&self, source: gun_net_ws::StatsSource) {
        let _ = self.server.set(source);
    }

    fn metrics(&self) -> HttpResponse {
        let s = self.engine.stats();
        let server = self
            .server
            .get()
            .and_then(|src| src.get())
            .unwrap_or_default();
        let (store_souls, store_bytes) = {
            let snap = self.snapshot();
            (snap.souls, snap.bytes)
        };
        let scrape = Scrape {
            connections: server.connections_open,
            connections_total: server.connections_total,
            messages_in: server.traffic.frames_in,
            messages_out: server.traffic.frames_out,
            bytes_in: server.traffic.bytes_in,
            bytes_out: server.traffic.bytes_out,
            puts: load(&s.puts_in),
            gets: load(&s.gets_in),
            acks: load(&s.acks_out),
            keys_accepted: load(&s.keys_accepted),
            rejected: s.rejected_reasons().into_iter().collect(),
            refused: vec![
                ("frame_size", server.oversize_closes),
                ("put_size", load(&self.refusals.put_size)),
                ("connections_per_ip", server.per_ip_refused),
                ("max_connections", server.refused),
                ("rate", server.rate_limited_frames),
                ("rate_close", server.rate_limit_closes),
                ("public_space", load(&self.refusals.public_space)),
            ],
            latency: Some(s.put_ack_latency.snapshot()),
            store_bytes,
            store_souls,
            dedup_entries: self.engine.dedup_entries() as u64,
            cached_souls: self.engine.cached_souls() as u64,
            subscriptions_evicted: self.engine.subscriptions_evicted(),
            send_queue_drops: server.send_queue_drops,
            slow_consumer_disconnects: server.slow_peer_closes,
            uptime_secs: self.engine.uptime().as_secs(),
        };
        match scrape.encode() {
            Ok(text) => HttpResponse::new(200)
                .with_body(metrics::CONTENT_TYPE, text.into_bytes())
                .with_header("Cache-Control", "no-store"),
            Err(_) => HttpResponse::text(500, "cannot encode the metrics\n"),
        }
    }

    fn snapshot(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn health(&self) -> HttpResponse {
        let (souls, bytes) = {
            let snap = self.snapshot();
            (snap.souls, snap.bytes)
        };
        let s = self.engine.stats();
        let body = serde_json::json!({
            "ok": true,
            "name": "gun-relay",
            "version": env!("CARGO_PKG_VERSION"),
            "pid": self.engine.pid(),
            "peers": self.engine.peer_count(),
            "dialing": self.peers_dialed,
            "store": self.store_kind.name(),
            "sea": self.sea,
            "souls": souls,
            "bytes": bytes,
            "uptime_s": self.engine.uptime().as_secs(),
            "puts_in": load(&s.puts_in),
            "gets_in": load(&s.gets_in),
            "acks_out": load(&s.acks_out),
            "rejected": load(&s.rejected),
        });
        HttpResponse::json(200, format!("{body}\n"))
    }

    fn stats(&self) -> HttpResponse {
        let s = self.engine.stats();
        let snap = self.snapshot();
        let mut now_json = self.sample_of(&snap).json();
        now_json["rejected_by_reason"] = serde_json::json!(s.rejected_reasons());
        now_json["uptime_s"] = serde_json::json!(self.engine.uptime().as_secs());
        now_json["store"] = serde_json::json!(self.store_kind.name());
        now_json["sea"] = serde_json::json!(self.sea);
        now_json["subscriptions_evicted"] = serde_json::json!(self.engine.subscriptions_evicted());
        let history: Vec<_> = snap.history.iter().map(Sample::json).collect();
        let body = serde_json::json!({ "now": now_json, "history": history });
        HttpResponse::json(200, format!("{body}\n")).with_header("Cache-Control", "no-store")
    }

    /// The counters now, with the store and traffic figures of `snap`.
    fn sample_of(&self, snap: &Snapshot) -> Sample {
        let s = self.engine.stats();
        Sample {
            t_ms: gun_core::now_ms() as u64,
            peers: self.engine.peer_count() as u64,
            frames_in: snap.frames_in,
            frames_out: snap.frames_out,
            puts_in: load(&s.puts_in),
            gets_in: load(&s.gets_in),
            acks_out: load(&s.acks_out),
            rejected: load(&s.rejected),
            souls: snap.souls,
            bytes: snap.bytes,
        }
    }

    /// Takes this second's sample (called every second by the sampling task).
    pub(super) fn sample(
        &self,
        store: Option<gun_store::StoreStats>,
        traffic: gun_net_ws::Traffic,
    ) {
        let mut snap = self.snapshot();
        if let Some(st) = store {
            snap.souls = st.souls;
            snap.bytes = st.bytes;
        }
        snap.frames_in = traffic.frames_in;
        snap.frames_out = traffic.frames_out;
        let sample = self.sample_of(&snap);
        if snap.history.len() >= HISTORY_SECS {
            snap.history.pop_front();
        }
        snap.history.push_back(sample);
    }
}

impl HttpHandler for Health {
    fn handle(&self, req: &HttpRequest) -> HttpResponse {
        if req.method != "GET" && req.method != "HEAD" {
            return HttpResponse::text(405, "method not allowed\n");
        }
        if let Some(resp) = self.gun_js.as_ref().and_then(|g| g.serve(&req.path)) {
            return resp;
        }
        match (req.path.as_str(), &self.static_dir) {
            ("/health", _) | ("/", None) => self.health(),
            ("/stats", _) => self.stats(),
            ("/metrics", _) => self.metrics(),
            ("/dashboard" | "/dashboard/", _) => HttpResponse::html(200, DASHBOARD_HTML),
            (path, Some(dir)) => dir.serve(path),
            _ => HttpResponse::not_found(),
        }
    }
}
