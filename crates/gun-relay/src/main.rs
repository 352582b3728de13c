//! `gun-relay`: a Gun relay server.
//!
//! Serves Gun's WebSocket protocol on `ws://HOST:PORT/gun` (genuine Gun.js
//! browsers and node peers connect with `Gun({peers: ['http://HOST:PORT/gun']})`),
//! stores what it receives in an embedded store (sled by default, under
//! `--data`), acks writes only once they are durable, answers every get (with
//! data, or an explicit "not found"), pushes writes to the peers that asked for
//! them, and dials other relays given with `--peer`.
//!
//! SEA is enforced by default, as by a Gun.js relay (which loads SEA): every
//! incoming write goes through [`gun_sea::SeaValidator`] (user space `~pub`
//! must be signed by its owner, alias lists must link to themselves, `#` souls
//! are content addressed, certificates, `<?N` souls), and refused writes get
//! Gun.js's error texts in their ack (`"Unverified data."`, …). `--no-sea`
//! turns that off.
//!
//! A plain HTTP `GET /health` answers a small JSON health document (also at
//! `GET /` unless `--static DIR` serves a folder there), `GET /stats` the
//! counters with a history of the last minutes, and `GET /dashboard` a
//! self-contained page that charts them live.

mod static_files;

/// The relay allocates per message (frames, graphs, acks); mimalloc does that
/// measurably faster than the system allocator under load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gun_core::{Engine, EngineOptions, Gun};
use gun_dam::{Hub, MeshConfig};
use gun_net_ws::{
    Client, ClientOptions, HttpHandler, HttpRequest, HttpResponse, Server, ServerOptions,
};
use gun_store::Store;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// In memory only: lost at exit.
    Memory,
    /// One directory with a checksummed journal and snapshots.
    File,
    /// sled, the embedded default.
    Sled,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::File => "file",
            StoreKind::Sled => "sled",
        }
    }
}

/// A Gun relay: ws://HOST:PORT/gun, on an embedded store.
#[derive(Debug, Parser)]
#[command(name = "gun-relay", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Data directory of the durable stores.
    #[arg(long, global = true, default_value = "./gun-data")]
    data: PathBuf,
    /// Which store to keep data in.
    #[arg(long, global = true, value_enum, default_value_t = StoreKind::Sled)]
    store: StoreKind,
    /// Another relay to dial and keep dialing (repeatable), e.g. http://10.0.0.2:8765/gun.
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    /// Do not enforce SEA: store every well-formed write, signed or not.
    ///
    /// By default the relay checks every incoming write as a Gun.js peer with SEA
    /// does: user space (`~<pub>` souls and their children) takes only values
    /// signed by that user (or by a writer certified by them), key `pub` of
    /// `~<pub>` must be the pub, alias lists (`~@alias`, `~@`) must link to
    /// themselves, keys of `#` souls must be the SHA-256 of their value, and
    /// `<?N` souls drop states older than N seconds. A refused put is not stored
    /// and its ack carries Gun.js's error text, e.g. {"@":id,"err":"Unverified
    /// data."} ("Account not same!", "Alias not same!", "Data hash not same as
    /// hash!", "Certificate verification fail.", ...). Stricter than Gun.js: a put
    /// with one bad key is refused whole, values naming another writer need a
    /// valid certificate, and writes under a certificate with a write block list
    /// (wb) are refused.
    #[arg(long)]
    no_sea: bool,
    /// Serve the files of DIR over HTTP on the same port (GET /x serves DIR/x,
    /// directories their index.html); the health document then moves from / to /health.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import a Gun.js `radata` directory (radisk) into the store under --data, then exit.
    ImportRadisk {
        /// The radisk directory written by a Gun.js relay.
        dir: PathBuf,
    },
}

fn open_store(kind: StoreKind, data: &std::path::Path) -> Result<Arc<dyn Store>, String> {
    let failed = |dir: &std::path::Path, e: gun_store::Error| -> String {
        let mut msg = format!(
            "cannot open {} store in {}: {e}",
            kind.name(),
            data.display()
        );
        if matches!(e, gun_store::Error::Corrupt { .. }) {
            msg.push_str(&format!(
                "\n  hint: the store in {0} is damaged and the relay will not serve it as it is. \
                 Restore {0} from a backup, or move it aside (`mv {0} {0}.damaged`) to start \
                 with an empty store, then re-sync the data from peers or import it again \
                 (`gun-relay import-radisk`).",
                dir.display()
            ));
        }
        msg
    };
    Ok(match kind {
        StoreKind::Memory => Arc::new(gun_store_memory::MemoryStore::new()),
        StoreKind::Sled => {
            let dir = data.join("sled");
            // sled panics on some damaged files; gun-store-sled turns that panic
            // into Error::Corrupt, so it must not be printed as a relay crash.
            let store = without_panic_output(|| gun_store_sled::SledStore::open(&dir))
                .map_err(|e| failed(&dir, e))?;
            Arc::new(store)
        }
        StoreKind::File => {
            let dir = data.join("file");
            Arc::new(gun_store_file::FileStore::open(&dir).map_err(|e| failed(&dir, e))?)
        }
    })
}

/// Runs `f` with the panic message printer replaced by a debug log line (for
/// panics that `f` catches itself), then puts the printer back.
fn without_panic_output<T>(f: impl FnOnce() -> T) -> T {
    type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;
    struct Restore(Option<Hook>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(h) = self.0.take()
                && !std::thread::panicking()
            {
                std::panic::set_hook(h);
            }
        }
    }
    let _restore = Restore(Some(std::panic::take_hook()));
    std::panic::set_hook(Box::new(|info| {
        tracing::debug!(%info, "panic caught while opening the store");
    }));
    f()
}

/// Prints what `import-radisk` did: counts, then every file and entry it skipped.
fn print_import_report(
    r: &gun_store_file::ImportReport,
    dir: &std::path::Path,
    kind: StoreKind,
    data: &std::path::Path,
) {
    println!(
        "imported {} souls, {} keys from {} radisk file(s) of {} into the {} store in {}",
        r.souls,
        r.keys,
        r.files.len(),
        dir.display(),
        kind.name(),
        data.display()
    );
    if !r.skipped_files.is_empty() {
        println!("skipped {} file(s):", r.skipped_files.len());
        for f in &r.skipped_files {
            println!("  {:?}: {}", f.file, f.reason);
            tracing::warn!(file = %f.file, reason = %f.reason, "radisk file not imported");
        }
    }
    if !r.skipped.is_empty() {
        println!("skipped {} entries:", r.skipped.len());
        for e in &r.skipped {
            println!("  {:?} in file {:?}: {}", e.key, e.file, e.reason);
        }
        tracing::warn!(
            entries = r.skipped.len(),
            "radisk entries not imported (listed on stdout)"
        );
    }
}

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
/// main task, because the HTTP handler runs on a blocking thread.
#[derive(Default)]
struct Snapshot {
    souls: u64,
    bytes: u64,
    frames_in: u64,
    frames_out: u64,
    history: VecDeque<Sample>,
}

struct Health {
    engine: Engine,
    store_kind: StoreKind,
    sea: bool,
    snapshot: Arc<Mutex<Snapshot>>,
    peers_dialed: Vec<String>,
    static_dir: Option<static_files::StaticDir>,
}

/// The dashboard page: inline CSS and JS, no external resources.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(std::sync::atomic::Ordering::Relaxed)
}

impl Health {
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

    /// Takes this second's sample (called every second by the main task).
    fn sample(&self, store: Option<gun_store::StoreStats>, traffic: gun_net_ws::Traffic) {
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
        match (req.path.as_str(), &self.static_dir) {
            ("/health", _) | ("/", None) => self.health(),
            ("/stats", _) => self.stats(),
            ("/dashboard" | "/dashboard/", _) => HttpResponse::html(200, DASHBOARD_HTML),
            (path, Some(dir)) => dir.serve(path),
            _ => HttpResponse::not_found(),
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(%e, "cannot listen for SIGTERM; only Ctrl-C stops the relay");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create data directory {}: {e}", args.data.display()))?;
    let store = open_store(args.store, &args.data)?;

    if let Some(Command::ImportRadisk { dir }) = &args.command {
        let report = gun_store_file::import_radisk(dir, store.as_ref())
            .await
            .map_err(|e| format!("import of {} failed: {e}", dir.display()))?;
        store
            .flush()
            .await
            .map_err(|e| format!("flush failed: {e}"))?;
        print_import_report(&report, dir, args.store, &args.data);
        return Ok(());
    }

    let mut opts = EngineOptions::new(store.clone());
    opts.mesh = MeshConfig::relay();
    // The WebSocket server sends the `[]` keep-alives; the mesh need not.
    opts.mesh.keepalive_ms = 0;
    let engine = Engine::new(opts);
    if !args.no_sea {
        engine.add_validator(Arc::new(gun_sea::SeaValidator::new()));
    }
    let gun = Gun::from_engine(engine.clone());
    let hub: Arc<dyn Hub> = Arc::new(engine.clone());

    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (args.host.as_str(), args.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|()| format!("cannot resolve --host {}", args.host))?;

    let static_dir = args
        .static_dir
        .as_deref()
        .map(static_files::StaticDir::new)
        .transpose()?;
    let health = Arc::new(Health {
        engine: engine.clone(),
        store_kind: args.store,
        sea: !args.no_sea,
        snapshot: Arc::new(Mutex::new(Snapshot::default())),
        peers_dialed: args.peers.clone(),
        static_dir,
    });
    let server = Server::bind(ServerOptions::new(addr), hub.clone(), health.clone())
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut clients = Vec::new();
    for url in &args.peers {
        clients.push(
            Client::dial(url, hub.clone(), ClientOptions::default())
                .map_err(|e| format!("cannot dial --peer {url}: {e}"))?,
        );
    }
    // The line test harnesses wait for.
    eprintln!(
        "gun-relay listening on ws://{}/gun (store: {}, data: {}, sea: {})",
        server.local_addr(),
        args.store.name(),
        args.data.display(),
        if args.no_sea { "off" } else { "on" }
    );
    tracing::info!(url = %format!("ws://{}/gun", server.local_addr()), store = args.store.name(), sea = !args.no_sea, peers = ?args.peers, "relay ready");

    let sampling = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            health.sample(store.stats().await.ok(), server.stats().traffic);
        }
    };
    tokio::select! {
        () = shutdown_signal() => {}
        () = sampling => {}
    }
    tracing::info!("shutting down: closing connections and flushing the store");
    for c in &clients {
        c.close();
    }
    server.shutdown().await;
    gun.shutdown()
        .await
        .map_err(|e| format!("flush on shutdown failed: {e}"))?;
    tracing::info!("bye");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gun-relay: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("gun-relay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
