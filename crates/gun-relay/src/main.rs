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
//! incoming write goes through `gun_sea::SeaValidator` (user space `~pub`
//! must be signed by its owner, alias lists must link to themselves, `#` souls
//! are content addressed, certificates, `<?N` souls), and refused writes get
//! Gun.js's error texts in their ack (`"Unverified data."`, …). `--no-sea`
//! turns that off.
//!
//! A plain HTTP `GET /health` answers a small JSON health document (also at
//! `GET /` unless `--static DIR` serves a folder there), `GET /stats` the
//! counters with a history of the last minutes, `GET /dashboard` a
//! self-contained page that charts them live, and `GET /metrics` the counters
//! in the Prometheus text format. Limits for a public relay (frame size, keys
//! per put, connections per IP, messages per second, `--allow-public-space`)
//! are on by default; each refusal is counted in `/metrics`.

//!
//! Everything but argument parsing and logging is `gun::server` (the facade's
//! feature `server`): this binary parses the flags, sets up logging and the
//! runtime, and runs a [`Relay`].
/// The relay allocates per message (frames, graphs, acks); mimalloc does that
/// measurably faster than the system allocator under load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use gun::server::{Relay, RelayOptions};
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

impl From<StoreKind> for gun::server::StoreKind {
    fn from(k: StoreKind) -> Self {
        match k {
            StoreKind::Memory => gun::server::StoreKind::Memory,
            StoreKind::File => gun::server::StoreKind::File,
            StoreKind::Sled => gun::server::StoreKind::Sled,
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
    /// Largest WebSocket message accepted, in bytes; a peer sending more is
    /// disconnected (close code 1009).
    #[arg(long, value_name = "BYTES", default_value_t = gun::server::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Keys one put from a peer may hold (all souls together); a bigger put is
    /// refused with {"@":id,"err":"Put too large: more than N keys in one put
    /// (--max-put-keys)."}. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = gun::server::DEFAULT_MAX_PUT_KEYS)]
    max_put_keys: usize,
    /// Open WebSocket connections from one IP address; more are refused with
    /// HTTP 429. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = gun::server::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Messages (WebSocket frames; a batch counts once) accepted per connection
    /// and second. Frames over the rate are dropped unanswered; a connection
    /// that keeps on is closed (code 1008) after dropping ten seconds' worth.
    /// 0: no limit.
    #[arg(long, value_name = "N", default_value_t = gun::server::DEFAULT_RATE_LIMIT.per_sec)]
    max_messages_per_sec: u32,
    /// Messages a connection may send at once above --max-messages-per-sec.
    #[arg(long, value_name = "N", default_value_t = gun::server::DEFAULT_RATE_LIMIT.burst)]
    message_burst: u32,
    /// false: accept writes from peers only to user space (~pub souls, signed
    /// with SEA) and content-addressed # souls; others are refused with an err
    /// ack.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    allow_public_space: bool,
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

/// `--host` and `--port` as a socket address (an IP, or a name resolved now).
fn listen_addr(host: &str, port: u16) -> Result<SocketAddr, String> {
    format!("{host}:{port}")
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|()| format!("cannot resolve --host {host}"))
}

async fn run(args: Args) -> Result<(), String> {
    let store = gun::server::StoreKind::from(args.store);
    if let Some(Command::ImportRadisk { dir }) = &args.command {
        let report = gun::server::import_radisk(store, &args.data, dir)
            .await
            .map_err(|e| e.to_string())?;
        print!("{report}");
        return Ok(());
    }
    let relay = Relay::start(RelayOptions {
        listen: listen_addr(&args.host, args.port)?,
        store,
        data_dir: args.data.clone(),
        peers: args.peers.clone(),
        sea: !args.no_sea,
        static_dir: args.static_dir.clone(),
        max_frame_bytes: args.max_frame_bytes,
        max_put_keys: (args.max_put_keys > 0).then_some(args.max_put_keys),
        max_connections_per_ip: (args.max_connections_per_ip > 0)
            .then_some(args.max_connections_per_ip),
        rate_limit: (args.max_messages_per_sec > 0).then_some(gun::server::RateLimit {
            per_sec: args.max_messages_per_sec,
            burst: args.message_burst.max(1),
        }),
        allow_public_space: args.allow_public_space,
    })
    .map_err(|e| e.to_string())?;
    // The line test harnesses wait for.
    eprintln!(
        "gun-relay listening on ws://{}/gun (store: {}, data: {}, sea: {})",
        relay.local_addr(),
        store.name(),
        args.data.display(),
        if args.no_sea { "off" } else { "on" }
    );
    tracing::info!(url = %format!("ws://{}/gun", relay.local_addr()), store = store.name(), sea = !args.no_sea, peers = ?args.peers, "relay ready");
    relay
        .run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
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
