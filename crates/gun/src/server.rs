//! A Gun relay server (feature `server`), what the `gun-relay` binary runs.
//!
//! [`Relay::start`] opens a store, wires a [`Gun`] the way [`Gun::new`] does
//! (the same internal path: engine, validators, peers), serves Gun's WebSocket
//! protocol on `ws://ADDR/gun` with plain HTTP pages beside it (`/health`,
//! `/stats`, `/dashboard`, `/metrics`, and the files of
//! [`RelayOptions::static_dir`]), and
//! dials [`RelayOptions::peers`]. [`import_radisk`] loads a Gun.js `radata`
//! directory into a store; [`export_jsonl`] and [`import_jsonl`] back a store
//! up to JSON Lines and merge such a backup into a store.
//!
//! With [`RelayOptions::tls`] the relay serves `wss://ADDR/gun` and
//! `https://` instead (and [`Relay::reload_tls`] re-reads the certificate);
//! with [`RelayOptions::admin_token`] it answers `GET /admin/export` (an online
//! JSON Lines backup) to requests carrying `Authorization: Bearer TOKEN`.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), gun::server::ServerError> {
//! use gun::server::{Relay, RelayOptions, StoreKind};
//! let relay = Relay::start(RelayOptions {
//!     listen: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
//!     store: StoreKind::Memory,
//!     data_dir: std::env::temp_dir().join("gun-relay-doc"),
//!     ..RelayOptions::default()
//! })?;
//! println!("listening on ws://{}/gun", relay.local_addr());
//! // A server would wait for a signal here, e.g. tokio::signal::ctrl_c().
//! relay.run_until(async {}).await
//! # }
//! ```

mod backup;
mod block_list;
mod health;
mod limits;
mod metrics;
mod static_files;

pub use gun_net_ws::RateLimit;
pub use limits::{PUBLIC_SPACE_REFUSED, put_keys_refused};

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gun_dam::Hub;
use gun_net_ws::{HttpHandler, Server, ServerOptions, TlsServerConfig};
use tokio::task::JoinHandle;

use crate::{Gun, GunOptions, MeshConfig, Store, Validator};
use backup::Admin;
pub use backup::{
    ExportReport, JsonlReport, export_jsonl, export_jsonl_with, export_store, import_into,
    import_jsonl, import_jsonl_with,
};
use health::Health;
use static_files::{GunJsDir, StaticDir};

/// Which store a relay keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// In memory only: lost at exit.
    Memory,
    /// One directory with a checksummed journal and snapshots (`DATA/file`).
    File,
    /// sled, the embedded default (`DATA/sled`).
    Sled,
    /// PostgreSQL at [`RelayOptions::postgres_url`] (feature
    /// `store-postgres`): several relays on one database form a fleet.
    #[cfg(feature = "store-postgres")]
    Postgres,
}

impl StoreKind {
    /// The name shown in the ready line and the health document
    /// (`memory`, `file`, `sled`).
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::File => "file",
            StoreKind::Sled => "sled",
            #[cfg(feature = "store-postgres")]
            StoreKind::Postgres => "postgres",
        }
    }
}

/// How to run a [`Relay`].
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Address to listen on (port 0: any free port, see [`Relay::local_addr`]).
    /// Default `127.0.0.1:8765`.
    pub listen: SocketAddr,
    /// Which store to keep data in. Default [`StoreKind::Sled`].
    pub store: StoreKind,
    /// Data directory of the durable stores (created if missing; not used,
    /// and not created, by the memory store). Default `./gun-data`.
    pub data_dir: PathBuf,
    /// Other relays to dial and keep dialing, e.g. `http://10.0.0.2:8765/gun`.
    pub peers: Vec<String>,
    /// Enforce SEA on incoming writes, as a Gun.js relay with SEA does
    /// (`gun_sea::SeaValidator`). Default `true`.
    pub sea: bool,
    /// Serve the files of this folder over HTTP on the same port; the health
    /// document then moves from `/` to `/health`. Default `None`.
    pub static_dir: Option<PathBuf>,
    /// Serve `wss://` and `https://` on the port with this certificate (plain
    /// `ws://` is then off). Default `None`.
    pub tls: Option<TlsFiles>,
    /// Answer `GET /admin/export` (the whole graph as JSON Lines) to requests
    /// with `Authorization: Bearer <token>` (401 without it). `None` (the
    /// default): `/admin/export` is 404.
    pub admin_token: Option<String>,
    /// Serve Gun.js's browser files from this folder (an npm install of the
    /// `gun` package, e.g. `node_modules/gun`, which must hold `gun.js`), as a
    /// Gun.js relay does: `/gun.js`, `/sea.js` and the package's other
    /// top-level `.js` files, `/lib/...`, and `/gun/PATH` for any file of the
    /// package. These paths take precedence over [`static_dir`](Self::static_dir);
    /// a path not found in this folder falls through to it. Default `None`.
    pub gun_js_dir: Option<PathBuf>,
    /// Largest WebSocket message (frame) accepted, in bytes; a peer sending
    /// more is disconnected (close code 1009). Default
    /// [`DEFAULT_MAX_FRAME_BYTES`] (8 MiB).
    pub max_frame_bytes: usize,
    /// Keys (all souls together) one put from a peer may hold; a bigger put is
    /// refused with an `err` ack ([`put_keys_refused`]). `None`: no limit.
    /// Default `Some(`[`DEFAULT_MAX_PUT_KEYS`]`)`.
    pub max_put_keys: Option<usize>,
    /// Open WebSocket connections from one IP address; further upgrades are
    /// answered `429 Too Many Requests`. `None`: no limit. Default
    /// `Some(`[`DEFAULT_MAX_CONNECTIONS_PER_IP`]`)`.
    pub max_connections_per_ip: Option<usize>,
    /// Open sockets (WebSocket connections and HTTP requests together) the
    /// relay accepts; one more is answered `503 Service Unavailable` with
    /// the reason ([`gun_net_ws::max_connections_refusal`]) and counted in
    /// `/metrics` (`gun_refused_total{reason="max_connections"}`). The process
    /// needs a file descriptor limit above it (gun-relay raises its soft limit
    /// to the hard one at start). Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Subscriptions (souls, or keys of souls, asked for by gets) kept per
    /// connection; past it the oldest soul is forgotten (its updates are no
    /// longer pushed to that connection). Default
    /// [`DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION`].
    pub max_subscriptions_per_connection: usize,
    /// Data frames accepted per connection and second, with a burst (a token
    /// bucket; a frame holding a batch counts once). Frames over the rate are
    /// dropped unanswered; a connection that keeps on is closed (code 1008)
    /// after dropping ten seconds' worth. `None`: no limit. Default
    /// `Some(`[`DEFAULT_RATE_LIMIT`]`)`.
    pub rate_limit: Option<RateLimit>,
    /// The database of [`StoreKind::Postgres`]: a connection URL such as
    /// `postgres://gun:secret@db.internal/gun` (feature `store-postgres`).
    /// Default `None`.
    pub postgres_url: Option<String>,
    /// The PostgreSQL schema of [`StoreKind::Postgres`] (relays of one fleet
    /// share it). Default `public`.
    pub postgres_schema: String,
    /// Accept writes from peers to any soul (`true`, Gun.js's behaviour), or
    /// only to user space (`~…`, checked by SEA) and content-addressed `#`
    /// souls (`false`; others get [`PUBLIC_SPACE_REFUSED`]). Default `true`.
    pub allow_public_space: bool,
    /// The page cache of [`StoreKind::Sled`], in bytes: sled keeps the tree's
    /// recently used pages in memory up to about this size, so it bounds most
    /// of a sled relay's memory beyond its connections. `None`: sled's own
    /// default (1 GiB). Default [`DEFAULT_SLED_CACHE_BYTES`].
    pub sled_cache_bytes: Option<u64>,
    /// Keys of peers' writes that may wait for a state ahead of the relay's
    /// clock ([`GunOptions::max_deferred_keys`](crate::GunOptions::max_deferred_keys));
    /// past it such a write gets an `err` ack. Default
    /// [`MAX_DEFERRED_KEYS`](crate::MAX_DEFERRED_KEYS).
    pub max_deferred_keys: usize,
}

/// Default [`RelayOptions::sled_cache_bytes`].
pub const DEFAULT_SLED_CACHE_BYTES: u64 = 128 << 20;

/// The PEM files of a TLS relay ([`RelayOptions::tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (e.g. Let's Encrypt's `fullchain.pem`).
    pub cert: PathBuf,
    /// The private key: PKCS#8, PKCS#1 or SEC1 (e.g. `privkey.pem`).
    pub key: PathBuf,
}

impl TlsFiles {
    fn load(&self) -> Result<TlsServerConfig, ServerError> {
        TlsServerConfig::from_pem_files(&self.cert, &self.key).map_err(|e| ServerError::Tls {
            cert: self.cert.clone(),
            key: self.key.clone(),
            message: error_text(&e),
        })
    }
}

/// An error's text followed by the texts of its sources (the `source()`
/// chain), each only if the text so far does not already carry it: what a
/// relay prints for an error, once, with its cause.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Default [`RelayOptions::max_frame_bytes`].
pub const DEFAULT_MAX_FRAME_BYTES: usize = gun_net_ws::DEFAULT_MAX_MESSAGE_BYTES;
/// Default [`RelayOptions::max_put_keys`]: one put of ten thousand keys is
/// far more than a Gun.js app writes at once (and as many as one frame may
/// hold messages).
pub const DEFAULT_MAX_PUT_KEYS: usize = 10_000;
/// Default [`RelayOptions::max_connections_per_ip`]: room for many tabs and
/// a NAT, not for one host opening thousands of sockets.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// The body of the `503` answer to a connection past [`RelayOptions::max_connections`].
pub use gun_net_ws::max_connections_refusal;

/// Default [`RelayOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = gun_net_ws::DEFAULT_MAX_CONNECTIONS;
/// Default [`RelayOptions::max_subscriptions_per_connection`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize =
    gun_dam::router::MAX_SUBSCRIPTIONS_PER_PEER;
/// Default [`RelayOptions::rate_limit`]: 1000 frames a second with bursts of
/// 5000 (a Gun.js client sends far fewer: it batches what it queues).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    per_sec: 1_000,
    burst: 5_000,
};

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8765)),
            store: StoreKind::Sled,
            data_dir: PathBuf::from("./gun-data"),
            peers: Vec::new(),
            sea: true,
            static_dir: None,
            tls: None,
            admin_token: None,
            gun_js_dir: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_put_keys: Some(DEFAULT_MAX_PUT_KEYS),
            max_connections_per_ip: Some(DEFAULT_MAX_CONNECTIONS_PER_IP),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            allow_public_space: true,
            postgres_url: None,
            postgres_schema: "public".to_owned(),
            sled_cache_bytes: Some(DEFAULT_SLED_CACHE_BYTES),
            max_deferred_keys: crate::MAX_DEFERRED_KEYS,
        }
    }
}

/// Why a relay did not start, an import failed, or a shutdown did not flush.
/// The texts are the ones gun-relay prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The data directory could not be created.
    #[error("cannot create data directory {}: {source}", dir.display())]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened. For a damaged store the text carries a
    /// hint on how to recover.
    #[error("{message}")]
    Store {
        /// The store's directory (`DATA/sled`, `DATA/file`).
        dir: PathBuf,
        /// Whether the store found damage (rather than, say, a lock held by
        /// another process).
        corrupt: bool,
        /// What happened, with the hint.
        message: String,
    },
    /// The static folder cannot be served.
    #[error("{}", static_dir_text(dir, source.as_ref()))]
    StaticDir {
        /// The folder.
        dir: PathBuf,
        /// Why it could not be opened; `None`: it is not a directory.
        source: Option<std::io::Error>,
    },
    /// The Gun.js folder cannot be served (missing, not a directory, or
    /// without `gun.js`).
    #[error("cannot serve Gun.js from --serve-gun-js {}: {message}", dir.display())]
    GunJsDir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why, with the operating system's reason (e.g. `Address already in
        /// use (os error 98)`).
        message: String,
    },
    /// A peer URL cannot be dialed (malformed, or `wss://` without TLS).
    #[error("cannot dial --peer {url}: {message}")]
    Dial {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The radisk import failed.
    #[error("import of {} failed: {message}", dir.display())]
    Import {
        /// The radisk directory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// The store could not be flushed after an import.
    #[error("flush failed: {0}")]
    ImportFlush(String),
    /// The store could not be flushed at shutdown.
    #[error("flush on shutdown failed: {0}")]
    ShutdownFlush(String),
    /// The TLS certificate or key could not be loaded (at start or reload).
    #[error("cannot load TLS certificate {} with key {}: {message}", cert.display(), key.display())]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        message: String,
    },
    /// A JSON Lines export failed (store unreadable, output not writable).
    #[error("export failed: {0}")]
    Export(String),
    /// A JSON Lines import failed: unreadable file, a malformed line (its
    /// number is in the text), or a store error.
    #[error("import of {} failed: {message}", file.display())]
    ImportJsonl {
        /// The JSON Lines file.
        file: PathBuf,
        /// Why, with the line number for a malformed line.
        message: String,
    },
}

fn static_dir_text(dir: &Path, source: Option<&std::io::Error>) -> String {
    match source {
        Some(e) => format!("cannot open --static {}: {e}", dir.display()),
        None => format!("--static {} is not a directory", dir.display()),
    }
}

/// A running relay: a [`Gun`] on a store, served over WebSocket and HTTP.
///
/// Stop it with [`Relay::shutdown`] (or [`Relay::run_until`]) so the store is
/// flushed; dropping it stops serving without flushing.
pub struct Relay {
    gun: Gun,
    server: Arc<Server>,
    sampling: JoinHandle<()>,
    tls: Option<TlsServerConfig>,
    opts: RelayOptions,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("local_addr", &self.local_addr())
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Creates the data directory, opens the store, binds `opts.listen` and
    /// dials `opts.peers`. Must be called inside a tokio runtime (multi-thread:
    /// the HTTP pages are answered on blocking threads).
    pub fn start(opts: RelayOptions) -> Result<Relay, ServerError> {
        // The certificate first: a bad one should not leave a store opened (or created).
        let tls = opts.tls.as_ref().map(TlsFiles::load).transpose()?;
        let store = open_relay_store(&opts)?;
        let static_dir = opts.static_dir.as_deref().map(StaticDir::new).transpose()?;
        let gun_js = opts.gun_js_dir.as_deref().map(GunJsDir::new).transpose()?;
        let mut mesh = MeshConfig::relay();
        // The WebSocket server sends the `[]` keep-alives; the mesh need not.
        mesh.keepalive_ms = 0;
        mesh.limits.max_frame_bytes = opts.max_frame_bytes;
        mesh.max_subscriptions_per_peer = opts.max_subscriptions_per_connection;
        let gun_opts = GunOptions {
            peers: opts.peers.clone(),
            store: Some(store.clone()),
            mesh,
            max_deferred_keys: opts.max_deferred_keys,
            ..GunOptions::default()
        };
        let refusals = Arc::new(metrics::Refusals::default());
        let mut validators: Vec<Arc<dyn Validator>> = Vec::new();
        // The cheap limits first: a refused write costs no signature check.
        if let Some(max) = opts.max_put_keys {
            validators.push(Arc::new(limits::PutKeysLimit::new(
                max,
                refusals.put_size.clone(),
            )));
        }
        if !opts.allow_public_space {
            if !opts.sea {
                tracing::warn!(
                    "--allow-public-space false without SEA: user space (~) is not checked, so anyone can write there"
                );
            }
            validators.push(Arc::new(limits::PrivateSpaceOnly::new(
                refusals.public_space.clone(),
            )));
        }
        if opts.sea {
            // Certificates naming a write block list (`wb`) are checked
            // against the list as this relay stores it.
            validators
                .push(Arc::new(gun_sea::SeaValidator::new().with_block_list(
                    block_list::StoreBlockList::new(store.clone()),
                )));
        }
        let crate::Wired {
            gun,
            attached: (server, health),
            dial_errors,
            .. // no WebRTC on a relay
        } = crate::wire(gun_opts, validators, |engine| {
            let health = Arc::new(Health::new(
                engine.clone(),
                opts.store,
                opts.sea,
                opts.peers.clone(),
                static_dir,
                gun_js,
                refusals.clone(),
            ));
            let hub: Arc<dyn Hub> = Arc::new(engine.clone());
            let http: Arc<dyn HttpHandler> = Arc::new(Admin::new(
                opts.admin_token.clone(),
                store.clone(),
                health.clone(),
            ));
            let mut server_opts = ServerOptions::new(opts.listen);
            server_opts.tls = tls.clone();
            server_opts.max_message_bytes = opts.max_frame_bytes;
            server_opts.max_connections_per_ip = opts.max_connections_per_ip;
            server_opts.max_connections = opts.max_connections;
            server_opts.rate_limit = opts.rate_limit;
            let server = Server::bind(server_opts, hub, http)
                .map_err(|e| ServerError::Listen {
                    addr: opts.listen,
                    message: bind_reason(&e),
                })?;
            health.set_server(server.stats_source());
            Ok((server, health))
        })?;
        if let Some((url, message)) = dial_errors.into_iter().next() {
            return Err(ServerError::Dial { url, message });
        }
        let server = Arc::new(server);
        let sampling = tokio::spawn({
            let server = server.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    health.sample(store.stats().await.ok(), server.stats().traffic);
                }
            }
        });
        Ok(Relay {
            gun,
            server,
            sampling,
            tls,
            opts,
        })
    }

    /// The relay's WebSocket URL as seen from this machine:
    /// `ws://ADDR/gun`, or `wss://ADDR/gun` with [`RelayOptions::tls`].
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Whether the relay serves TLS (`wss://`, `https://`).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Re-reads the certificate and key of [`RelayOptions::tls`]: connections
    /// accepted from now on are served with them, open ones keep theirs. On an
    /// error the certificate in use stays. Does nothing without TLS.
    pub fn reload_tls(&self) -> Result<(), ServerError> {
        if let (Some(files), Some(current)) = (&self.opts.tls, &self.tls) {
            current.replace(&files.load()?);
        }
        Ok(())
    }

    /// The address actually bound (useful with port 0); the relay serves
    /// `ws://ADDR/gun`.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The database the relay serves (to read or write it in process).
    pub fn gun(&self) -> &Gun {
        &self.gun
    }

    /// The options the relay was started with.
    pub fn options(&self) -> &RelayOptions {
        &self.opts
    }

    /// Serves until `shutdown` completes, then [`shutdown`](Relay::shutdown)s.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        shutdown.await;
        self.shutdown().await
    }

    /// Stops: closes the connections to the peers it dialed, closes the
    /// server (every incoming connection), then flushes the store.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        tracing::info!("shutting down: closing connections and flushing the store");
        self.sampling.abort();
        let _ = self.sampling.await;
        self.gun.close_peers().await;
        // The sampling task held the only other reference.
        match Arc::try_unwrap(self.server) {
            Ok(server) => server.shutdown().await,
            Err(server) => drop(server),
        }
        self.gun
            .flush_and_close()
            .await
            .map(drop)
            .map_err(|e| ServerError::ShutdownFlush(e.to_string()))
    }
}

/// Why the server could not bind: the operating system's reason when there is
/// one (gun-net-ws's `Bind` error names the address, which [`ServerError::Listen`]
/// already does), else the error's own text.
fn bind_reason(e: &gun_net_ws::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

/// The relay's store: PostgreSQL at its URL, or a store of `kind` in the
/// data directory.
fn open_relay_store(opts: &RelayOptions) -> Result<Arc<dyn Store>, ServerError> {
    #[cfg(feature = "store-postgres")]
    if opts.store == StoreKind::Postgres {
        return open_postgres(opts);
    }
    open_data(opts.store, &opts.data_dir, opts.sled_cache_bytes)
}

/// Connects to PostgreSQL (blocking this thread of the multi-thread runtime
/// until connected and migrated).
#[cfg(feature = "store-postgres")]
fn open_postgres(opts: &RelayOptions) -> Result<Arc<dyn Store>, ServerError> {
    let failed = |message: String| ServerError::Store {
        dir: PathBuf::from("postgres"),
        corrupt: false,
        message,
    };
    let url = opts.postgres_url.clone().ok_or_else(|| {
        failed("the postgres store needs a database URL (--postgres-url)".to_owned())
    })?;
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| failed("the postgres store needs a tokio runtime".to_owned()))?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(failed(
            "the postgres store needs a multi-thread tokio runtime".to_owned(),
        ));
    }
    let pg_opts = gun_store_postgres::Options::new(url).schema(opts.postgres_schema.clone());
    let store = tokio::task::block_in_place(|| {
        handle.block_on(gun_store_postgres::PostgresStore::connect(pg_opts))
    })
    .map_err(|e| {
        failed(format!(
            "cannot open the postgres store: {}",
            error_text(&e)
        ))
    })?;
    Ok(Arc::new(store))
}

/// Creates `data` (unless the store is in memory) and opens a store of `kind` in it.
fn open_data(
    kind: StoreKind,
    data: &Path,
    sled_cache: Option<u64>,
) -> Result<Arc<dyn Store>, ServerError> {
    if kind == StoreKind::Memory {
        return open_store(kind, data, sled_cache);
    }
    std::fs::create_dir_all(data).map_err(|source| ServerError::DataDir {
        dir: data.to_owned(),
        source,
    })?;
    open_store(kind, data, sled_cache)
}

fn open_store(
    kind: StoreKind,
    data: &Path,
    sled_cache: Option<u64>,
) -> Result<Arc<dyn Store>, ServerError> {
    let failed = |dir: &Path, e: gun_store::Error| -> ServerError {
        let corrupt = matches!(e, gun_store::Error::Corrupt { .. });
        let mut message = format!(
            "cannot open {} store in {}: {e}",
            kind.name(),
            data.display()
        );
        if corrupt {
            message.push_str(&format!(
                "\n  hint: the store in {0} is damaged and the relay will not serve it as it is. \
                 Restore {0} from a backup, or move it aside (`mv {0} {0}.damaged`) to start \
                 with an empty store, then re-sync the data from peers or import it again \
                 (`gun-relay import-radisk`).",
                dir.display()
            ));
        }
        ServerError::Store {
            dir: dir.to_owned(),
            corrupt,
            message,
        }
    };
    Ok(match kind {
        StoreKind::Memory => Arc::new(gun_store_memory::MemoryStore::new()),
        StoreKind::Sled => {
            let dir = data.join("sled");
            // sled panics on some damaged files; gun-store-sled turns that panic
            // into Error::Corrupt, so it must not be printed as a relay crash.
            let mut sled_opts = gun_store_sled::Options::new();
            if let Some(bytes) = sled_cache {
                sled_opts = sled_opts.cache_bytes(bytes);
            }
            let store =
                without_panic_output(|| gun_store_sled::SledStore::open_with(&dir, &sled_opts))
                    .map_err(|e| failed(&dir, e))?;
            Arc::new(store)
        }
        StoreKind::File => {
            let dir = data.join("file");
            Arc::new(gun_store_file::FileStore::open(&dir).map_err(|e| failed(&dir, e))?)
        }
        // Needs a URL: opened from the relay's options (`open_postgres`,
        // and the `*_with` import and export functions).
        #[cfg(feature = "store-postgres")]
        StoreKind::Postgres => {
            return Err(ServerError::Store {
                dir: data.to_owned(),
                corrupt: false,
                message: "the postgres store needs its database URL: open it with the \
                          relay's options (import_jsonl_with, export_jsonl_with, \
                          import_radisk_with)"
                    .to_owned(),
            });
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

/// What [`import_radisk`] did. Its `Display` is the report gun-relay prints:
/// counts, then every file and entry skipped.
#[derive(Debug, Clone)]
pub struct RadiskReport {
    report: gun_store_file::ImportReport,
    dir: PathBuf,
    kind: StoreKind,
    /// Where that store is: "in DIR", or the PostgreSQL schema.
    place: String,
}

impl RadiskReport {
    /// Souls imported.
    pub fn souls(&self) -> usize {
        self.report.souls
    }

    /// Keys imported.
    pub fn keys(&self) -> usize {
        self.report.keys
    }

    /// Radisk files read.
    pub fn files(&self) -> usize {
        self.report.files.len()
    }

    /// Files and entries skipped (each listed in the `Display` text).
    pub fn skipped(&self) -> usize {
        self.report.skipped_files.len() + self.report.skipped.len()
    }
}

impl std::fmt::Display for RadiskReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.report;
        writeln!(
            f,
            "imported {} souls, {} keys from {} radisk file(s) of {} into the {} store {}",
            r.souls,
            r.keys,
            r.files.len(),
            self.dir.display(),
            self.kind.name(),
            self.place
        )?;
        if !r.skipped_files.is_empty() {
            writeln!(f, "skipped {} file(s):", r.skipped_files.len())?;
            for sf in &r.skipped_files {
                writeln!(f, "  {:?}: {}", sf.file, sf.reason)?;
            }
        }
        if !r.skipped.is_empty() {
            writeln!(f, "skipped {} entries:", r.skipped.len())?;
            for e in &r.skipped {
                writeln!(f, "  {:?} in file {:?}: {}", e.key, e.file, e.reason)?;
            }
        }
        Ok(())
    }
}

/// Imports the Gun.js `radata` directory `dir` (radisk) into the store of
/// `kind` under `data_dir` (created if missing), and flushes it. Skipped
/// files and entries are logged at warn and listed in the report.
pub async fn import_radisk(
    kind: StoreKind,
    data_dir: &Path,
    dir: &Path,
) -> Result<RadiskReport, ServerError> {
    let store = open_data(kind, data_dir, Some(DEFAULT_SLED_CACHE_BYTES))?;
    let place = format!("in {}", data_dir.display());
    import_radisk_into(store, dir, kind, place).await
}

/// [`import_radisk`] into the store `opts` names, as the relay would open it
/// (for PostgreSQL: `opts.postgres_url`, `opts.postgres_schema`). Needs a
/// multi-thread tokio runtime for PostgreSQL.
pub async fn import_radisk_with(
    opts: &RelayOptions,
    dir: &Path,
) -> Result<RadiskReport, ServerError> {
    #[cfg(feature = "store-postgres")]
    if opts.store == StoreKind::Postgres {
        let place = format!("in schema {}", opts.postgres_schema);
        return import_radisk_into(open_postgres(opts)?, dir, opts.store, place).await;
    }
    import_radisk(opts.store, &opts.data_dir, dir).await
}

async fn import_radisk_into(
    store: Arc<dyn Store>,
    dir: &Path,
    kind: StoreKind,
    place: String,
) -> Result<RadiskReport, ServerError> {
    let report = gun_store_file::import_radisk(dir, store.as_ref())
        .await
        .map_err(|e| ServerError::Import {
            dir: dir.to_owned(),
            message: e.to_string(),
        })?;
    store
        .flush()
        .await
        .map_err(|e| ServerError::ImportFlush(e.to_string()))?;
    for f in &report.skipped_files {
        tracing::warn!(file = %f.file, reason = %f.reason, "radisk file not imported");
    }
    if !report.skipped.is_empty() {
        tracing::warn!(
            entries = report.skipped.len(),
            "radisk entries not imported (listed on stdout)"
        );
    }
    Ok(RadiskReport {
        report,
        dir: dir.to_owned(),
        kind,
        place,
    })
}
