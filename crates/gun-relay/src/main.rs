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
//! counters with a history of the last minutes, and `GET /dashboard` a
//! self-contained page that charts them live.
//!
//! `--tls-cert` and `--tls-key` serve `wss://` and `https://` on the port
//! instead (SIGHUP re-reads both files); `gun-relay export` and `gun-relay
//! import` back the store up to JSON Lines and restore it, and
//! `--admin-token` enables the online backup `GET /admin/export`.
//!
//! `GET /metrics` answers the counters in the Prometheus text format. Limits for a public relay (frame size, keys
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

use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand, ValueEnum};
use gun::server::{Relay, RelayOptions, TlsFiles, error_text};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// In memory only: lost at exit.
    Memory,
    /// One directory with a checksummed journal and snapshots.
    File,
    /// sled, the embedded default.
    Sled,
    /// PostgreSQL at --postgres-url: relays on one database form a fleet.
    Postgres,
}

impl From<StoreKind> for gun::server::StoreKind {
    fn from(k: StoreKind) -> Self {
        match k {
            StoreKind::Memory => gun::server::StoreKind::Memory,
            StoreKind::File => gun::server::StoreKind::File,
            StoreKind::Sled => gun::server::StoreKind::Sled,
            StoreKind::Postgres => gun::server::StoreKind::Postgres,
        }
    }
}

/// A Gun relay: ws://HOST:PORT/gun, on an embedded store.
///
/// Every option can also be given in the environment (GUN_RELAY_PORT=8765, ...,
/// shown as [env: ...] below); a flag wins over its variable.
#[derive(Debug, Parser)]
#[command(name = "gun-relay", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "GUN_RELAY_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, env = "GUN_RELAY_PORT", default_value_t = 8765)]
    port: u16,
    /// Data directory of the durable stores (not created for --store memory).
    #[arg(
        long,
        env = "GUN_RELAY_DATA",
        global = true,
        default_value = "./gun-data"
    )]
    data: PathBuf,
    /// Which store to keep data in.
    #[arg(long, env = "GUN_RELAY_STORE", global = true, value_enum, default_value_t = StoreKind::Sled)]
    store: StoreKind,
    /// The database of --store postgres, e.g. postgres://gun:secret@db.internal/gun
    /// (or libpq's key=value form). Relays given the same database (and
    /// --postgres-schema) form a fleet: a write through one is pushed to the
    /// subscribers of all. Prefer the environment variable for a password: a flag shows in `ps`.
    #[arg(
        long,
        env = "GUN_RELAY_POSTGRES_URL",
        value_name = "URL",
        global = true,
        hide_env_values = true
    )]
    postgres_url: Option<String>,
    /// The PostgreSQL schema holding the relay's tables (created if missing).
    #[arg(
        long,
        env = "GUN_RELAY_POSTGRES_SCHEMA",
        value_name = "NAME",
        global = true,
        default_value = "public"
    )]
    postgres_schema: String,
    /// Another relay to dial and keep dialing (repeatable), e.g. http://10.0.0.2:8765/gun.
    /// In GUN_RELAY_PEERS: comma-separated.
    #[arg(
        long = "peer",
        env = "GUN_RELAY_PEERS",
        value_name = "URL",
        value_delimiter = ','
    )]
    peers: Vec<String>,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter
    /// such as info,gun_net_ws=debug); an invalid filter is refused.
    #[arg(long, env = "GUN_RELAY_LOG", global = true, default_value = "info", value_parser = parse_log_filter)]
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
    /// valid certificate. A certificate's write block list (wb) is read from the
    /// relay's store. In GUN_RELAY_NO_SEA: true/false (also 1/0, yes/no, on/off).
    #[arg(long, env = "GUN_RELAY_NO_SEA", value_parser = BoolishValueParser::new())]
    no_sea: bool,
    /// Serve the files of DIR over HTTP on the same port (GET /x serves DIR/x,
    /// directories their index.html); the health document then moves from / to /health.
    #[arg(long = "static", env = "GUN_RELAY_STATIC", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Serve wss:// and https:// on the port with this PEM certificate chain
    /// (leaf first; plain ws:// is then off). SIGHUP re-reads it and --tls-key.
    #[arg(
        long,
        env = "GUN_RELAY_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "GUN_RELAY_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Answer GET /admin/export (the whole graph as JSON Lines) to requests with
    /// the header `Authorization: Bearer TOKEN`; without it /admin/export is 404.
    /// Prefer the environment variable: a flag shows in `ps`.
    #[arg(
        long,
        env = "GUN_RELAY_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Serve Gun.js's browser files from DIR, an npm install of gun (e.g.
    /// ./node_modules/gun), as a Gun.js relay does: /gun.js, /sea.js (and
    /// DIR's other top-level .js files), /lib/..., and /gun/PATH for any file
    /// of DIR. These paths win over --static; DIR must hold gun.js.
    #[arg(long, env = "GUN_RELAY_SERVE_GUN_JS", value_name = "DIR")]
    serve_gun_js: Option<PathBuf>,
    /// Largest WebSocket message accepted, in bytes; a peer sending more is
    /// disconnected (close code 1009).
    #[arg(long, env = "GUN_RELAY_MAX_FRAME_BYTES", value_name = "BYTES", default_value_t = gun::server::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Keys one put from a peer may hold (all souls together); a bigger put is
    /// refused with {"@":id,"err":"Put too large: more than N keys in one put
    /// (--max-put-keys)."}. 0: no limit.
    #[arg(long, env = "GUN_RELAY_MAX_PUT_KEYS", value_name = "N", default_value_t = gun::server::DEFAULT_MAX_PUT_KEYS)]
    max_put_keys: usize,
    /// Open WebSocket connections from one IP address; more are refused with
    /// HTTP 429. 0: no limit.
    #[arg(long, env = "GUN_RELAY_MAX_CONNECTIONS_PER_IP", value_name = "N", default_value_t = gun::server::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Open connections (WebSocket peers and HTTP requests together); one more
    /// is answered HTTP 503 with the reason before its upgrade. At start the
    /// relay raises its file descriptor limit (RLIMIT_NOFILE) to the hard limit
    /// and logs it; keep N below that.
    #[arg(long, env = "GUN_RELAY_MAX_CONNECTIONS", value_name = "N", default_value_t = gun::server::DEFAULT_MAX_CONNECTIONS, value_parser = positive)]
    max_connections: usize,
    /// Subscriptions (souls or keys asked for by gets) kept per connection;
    /// past it the connection's oldest soul is forgotten (no more updates of it
    /// are pushed to that connection).
    #[arg(long, env = "GUN_RELAY_MAX_SUBSCRIPTIONS_PER_CONNECTION", value_name = "N", default_value_t = gun::server::DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION, value_parser = positive)]
    max_subscriptions_per_connection: usize,
    /// Messages (WebSocket frames; a batch counts once) accepted per connection
    /// and second. Frames over the rate are dropped unanswered; a connection
    /// that keeps on is closed (code 1008) after dropping ten seconds' worth.
    /// 0: no limit.
    #[arg(long, env = "GUN_RELAY_MAX_MESSAGES_PER_SEC", value_name = "N", default_value_t = gun::server::DEFAULT_RATE_LIMIT.per_sec)]
    max_messages_per_sec: u32,
    /// Messages a connection may send at once above --max-messages-per-sec.
    #[arg(long, env = "GUN_RELAY_MESSAGE_BURST", value_name = "N", default_value_t = gun::server::DEFAULT_RATE_LIMIT.burst)]
    message_burst: u32,
    /// false: accept writes from peers only to user space (~pub souls, signed
    /// with SEA) and content-addressed # souls; others are refused with an err
    /// ack.
    #[arg(long, env = "GUN_RELAY_ALLOW_PUBLIC_SPACE", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    allow_public_space: bool,
    /// Memory for the sled store's page cache, in MiB: the recently used part
    /// of the tree kept in memory, and most of a sled relay's memory beyond its
    /// connections. Reads of what is not cached go to disk. 0: sled's own
    /// default (1 GiB).
    #[arg(long, env = "GUN_RELAY_SLED_CACHE_MB", value_name = "MIB", default_value_t = gun::server::DEFAULT_SLED_CACHE_BYTES >> 20)]
    sled_cache_mb: u64,
    /// Keys of peers' writes that may wait for a state ahead of the relay's
    /// clock (applied when the clock reaches it, as Gun.js does); a write
    /// that would pass it is refused whole with an err ack.
    #[arg(long, env = "GUN_RELAY_MAX_DEFERRED_KEYS", value_name = "N", default_value_t = gun::MAX_DEFERRED_KEYS, value_parser = positive)]
    max_deferred_keys: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `--log`: a tracing filter, checked here so that a bad one is refused with
/// the parser's message and exit code 2. [`EnvFilter`] takes any word as a
/// target (`bogus!!` would silently log nothing but `bogus!!`'s events), so
/// targets must also look like module paths.
fn parse_log_filter(s: &str) -> Result<String, String> {
    for directive in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let target = directive.split(['[', '=']).next().unwrap_or_default();
        if let Some(c) = target
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.')))
        {
            return Err(format!(
                "{directive:?} is not a log level or a target=level directive \
                 (character {c:?}; use e.g. info or info,gun_net_ws=debug)"
            ));
        }
    }
    EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a tracing filter: {e}"))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import a Gun.js `radata` directory (radisk) into the store under --data
    /// (or the PostgreSQL database of --postgres-url), then exit.
    ImportRadisk {
        /// The radisk directory written by a Gun.js relay.
        dir: PathBuf,
    },
    /// Write the whole graph of the store under --data (of a stopped relay; or
    /// the PostgreSQL database of --postgres-url, relays running or not) as
    /// JSON Lines, one node per line with its states, then exit.
    Export {
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Merge a JSON Lines backup (as `export` writes it) into the store under
    /// --data (or the PostgreSQL database of --postgres-url) through HAM, then exit.
    Import {
        /// The JSON Lines file.
        file: PathBuf,
    },
}

/// Re-reads the TLS certificate of `relay` on every SIGHUP, forever. Without
/// TLS it does not listen, so SIGHUP keeps its default effect. Listens from
/// the call on (before the ready line), the future only reacts.
fn reload_on_hangup(relay: &Relay) -> impl Future<Output = ()> + '_ {
    #[cfg(unix)]
    let hup = if relay.is_tls() {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .inspect_err(
                |e| tracing::warn!(%e, "cannot listen for SIGHUP; the certificate is not reloaded"),
            )
            .ok()
    } else {
        None
    };
    async move {
        #[cfg(unix)]
        if let Some(mut hup) = hup {
            while hup.recv().await.is_some() {
                match relay.reload_tls() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!("SIGHUP: {e}; still serving the previous certificate")
                    }
                }
            }
        }
        #[cfg(not(unix))]
        let _ = relay;
        std::future::pending().await
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

/// A count of at least 1.
fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of at least 1")),
    }
}

/// File descriptors the relay needs besides its connections (store, listener, logs).
const SPARE_FDS: u64 = 256;

/// Raises the soft RLIMIT_NOFILE to the hard limit (a relay holds one descriptor per
/// connection) and says what it is; warns when it is below `--max-connections`.
fn raise_fd_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let wanted = max_connections as u64 + SPARE_FDS;
            if limit < wanted {
                tracing::warn!(
                    limit,
                    max_connections,
                    "file descriptor limit (RLIMIT_NOFILE) below --max-connections: accepts will \
                     fail before the limit is reached; raise the hard limit (ulimit -Hn, \
                     LimitNOFILE= in systemd)"
                );
            } else {
                tracing::info!(
                    limit,
                    max_connections,
                    "file descriptor limit (RLIMIT_NOFILE)"
                );
            }
        }
        Err(e) => tracing::warn!(%e, "cannot read or raise the file descriptor limit"),
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
    if args.store == StoreKind::Postgres && args.postgres_url.is_none() {
        return Err("--store postgres needs --postgres-url URL (or GUN_RELAY_POSTGRES_URL)".into());
    }
    // The offline subcommands open the store as the relay would.
    let offline = RelayOptions {
        store,
        data_dir: args.data.clone(),
        postgres_url: args.postgres_url.clone(),
        postgres_schema: args.postgres_schema.clone(),
        ..RelayOptions::default()
    };
    let place = if args.store == StoreKind::Postgres {
        format!("in postgres schema {}", args.postgres_schema)
    } else {
        format!("in {}", args.data.display())
    };
    if let Some(Command::ImportRadisk { dir }) = &args.command {
        let report = gun::server::import_radisk_with(&offline, dir)
            .await
            .map_err(|e| error_text(&e))?;
        print!("{report}");
        return Ok(());
    }
    if let Some(Command::Export { out }) = &args.command {
        let report = match out {
            Some(path) => {
                let mut file = std::fs::File::create(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                gun::server::export_jsonl_with(&offline, &mut file).await
            }
            None => gun::server::export_jsonl_with(&offline, &mut std::io::stdout()).await,
        }
        .map_err(|e| error_text(&e))?;
        eprintln!(
            "exported {} souls, {} keys from the {} store {place}",
            report.souls,
            report.keys,
            store.name(),
        );
        return Ok(());
    }
    if let Some(Command::Import { file }) = &args.command {
        let report = gun::server::import_jsonl_with(&offline, file)
            .await
            .map_err(|e| error_text(&e))?;
        print!("{report}");
        return Ok(());
    }
    raise_fd_limit(args.max_connections);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let relay = Relay::start(RelayOptions {
        listen: listen_addr(&args.host, args.port)?,
        store,
        data_dir: args.data.clone(),
        peers: args.peers.clone(),
        sea: !args.no_sea,
        static_dir: args.static_dir.clone(),
        tls,
        admin_token: args.admin_token.clone(),
        gun_js_dir: args.serve_gun_js.clone(),
        max_frame_bytes: args.max_frame_bytes,
        max_put_keys: (args.max_put_keys > 0).then_some(args.max_put_keys),
        max_connections_per_ip: (args.max_connections_per_ip > 0)
            .then_some(args.max_connections_per_ip),
        max_connections: args.max_connections,
        max_subscriptions_per_connection: args.max_subscriptions_per_connection,
        rate_limit: (args.max_messages_per_sec > 0).then_some(gun::server::RateLimit {
            per_sec: args.max_messages_per_sec,
            burst: args.message_burst.max(1),
        }),
        allow_public_space: args.allow_public_space,
        postgres_url: args.postgres_url.clone(),
        postgres_schema: args.postgres_schema.clone(),
        sled_cache_bytes: (args.sled_cache_mb > 0)
            .then_some(args.sled_cache_mb.saturating_mul(1 << 20)),
        max_deferred_keys: args.max_deferred_keys,
    })
    .map_err(|e| error_text(&e))?;
    let scheme = if relay.is_tls() { "wss" } else { "ws" };
    let reload = reload_on_hangup(&relay);
    // The line test harnesses wait for.
    let data = if args.store == StoreKind::Memory {
        "none".to_owned()
    } else if args.store == StoreKind::Postgres {
        format!("postgres schema {}", args.postgres_schema)
    } else {
        args.data.display().to_string()
    };
    eprintln!(
        "gun-relay listening on {scheme}://{}/gun (store: {}, data: {data}, sea: {})",
        relay.local_addr(),
        store.name(),
        if args.no_sea { "off" } else { "on" }
    );
    tracing::info!(url = %format!("{scheme}://{}/gun", relay.local_addr()), store = store.name(), sea = !args.no_sea, peers = ?args.peers, "relay ready");
    tokio::select! {
        () = shutdown_signal() => {}
        () = reload => {}
    }
    relay.shutdown().await.map_err(|e| error_text(&e))?;
    tracing::info!("bye");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = match EnvFilter::try_new(&args.log) {
        Ok(f) => f,
        // parse_log_filter accepted it already; kept for safety, never silent.
        Err(e) => {
            eprintln!("gun-relay: invalid --log {:?}: {e}", args.log);
            return std::process::ExitCode::from(2);
        }
    };
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
        // Once, on stderr (not also through tracing, which writes there too).
        Err(e) => {
            eprintln!("gun-relay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
