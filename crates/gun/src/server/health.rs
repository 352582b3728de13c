//! The relay's plain HTTP pages: `GET /health` (also `GET /` without a static
//! folder), `GET /stats` (the counters and the last minutes of history) and
//! `GET /dashboard` (a self-contained page charting them live).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use gun_core::Engine;
use gun_net_ws::{HttpHandler, HttpRequest, HttpResponse};

use super::StoreKind;
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
    ) -> Health {
        Health {
            engine,
            store_kind,
            sea,
            snapshot: Arc::new(Mutex::new(Snapshot::default())),
            peers_dialed,
            static_dir,
            gun_js,
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
            ("/dashboard" | "/dashboard/", _) => HttpResponse::html(200, DASHBOARD_HTML),
            (path, Some(dir)) => dir.serve(path),
            _ => HttpResponse::not_found(),
        }
    }
}
