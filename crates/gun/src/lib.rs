//! # gun: a Gun graph database for Rust, wire-compatible with Gun.js
//!
//! Words, defined once for all gun-rs crates:
//!
//! * **soul**: a node's id (any non-empty string);
//! * **node**: a soul and its keys, each with a value and a **state** (a
//!   millisecond timestamp);
//! * **value**: `null`, a boolean, a number, a string, or a link to another node;
//! * **put**: a write of part of the graph; **get**: a read of a node or key;
//! * **ack**: a peer's answer to a put (`ok` or `err`);
//! * **HAM**: the per-key merge rule (the higher state wins; equal states are
//!   decided by the JSON text of the values), so every peer converges;
//! * **relay**: a server peer that stores data and passes messages on.
//!
//! This facade wires the layers: `gun-core` (the engine and the Chain API), a
//! store (`gun-store-memory` by default) and the WebSocket transport
//! (`gun-net-ws`) that dials [`GunOptions::peers`].
//!
//! ```
//! use gun::{Gun, GunOptions};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), gun::Error> {
//! let gun = Gun::new(GunOptions::default());
//! gun.get("user").put(json!({"name": "Alice", "pet": {"kind": "cat"}})).await?;
//! let pet = gun.get("user").get("pet").get("kind").then().await?;
//! assert_eq!(pet, Some(json!("cat")));
//! # Ok(()) }
//! ```
//!
//! With peers: `GunOptions { peers: vec!["http://127.0.0.1:8765/gun".into()], ..Default::default() }`.
//!
//! On disk, one line ([`store`]): `GunOptions { store: Some(gun::store::sled("data")?), .. }`.
//!
//! With WebRTC (feature `webrtc`): `GunOptions { peers, rtc: Some(gun::RtcOptions::new("room")), .. }`
//! connects directly to the other peers of the room (gun-rs or Gun.js browsers
//! with `lib/webrtc.js`) once the relays introduced them.
//!
//! A relay server (feature `server`, off by default): `gun::server::Relay`, what
//! the `gun-relay` binary runs, wired by the same code as [`Gun::new`].
//!
//! # Stores, transports, features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `store-memory` | on | `MemoryStore` (crate [gun_store_memory](../gun_store_memory/index.html)), [`store::memory`](store/fn.memory.html): the store when none is given |
//! | `store-sled` | off | `SledStore` (crate [gun_store_sled](../gun_store_sled/index.html)), [`store::sled`](store/fn.sled.html): the sled database, durable |
//! | `store-file` | off | `FileStore` (crate [gun_store_file](../gun_store_file/index.html)), [`store::file`](store/fn.file.html): journal and snapshots, durable |
//! | `net-ws` | on | the WebSocket transport (crate [gun_net_ws](../gun_net_ws/index.html)) that dials [`GunOptions::peers`] |
//! | `webrtc` | off | WebRTC data channels (crate [gun_net_webrtc](../gun_net_webrtc/index.html)): `GunOptions::rtc`, `Gun::rtc`, `RtcOptions`, `Rtc` |
//! | `sea` | on | SEA (crate [gun_sea](../gun_sea/index.html), as `gun::sea`): `Gun::user`, `Gun::user_of` |
//! | `bls` | on | BLS message signing and write certificates: `GunOptions::keys`, `Gun::with_keys`, `Gun::with_options`, [`seed`](seed/index.html), `BlsCertValidator` |
//! | `server` | off | [`server`](server/index.html): `Relay`, `RelayOptions`, the relay's HTTP pages, imports and exports (what `gun-relay` runs) |
//!
//! Every store implements [`Store`] (crate [`gun_store`], with its conformance
//! suite); the engine and the Chain API are crate [`gun_core`]; the mesh is
//! crate [`gun_dam`]; the data model is crate [`gun_graph`].
//!
//! Coming from the crate gun-rs 1.0.4: [`GunError`], [`valid`],
//! [`is_valid_data`], [`valid_soul`], [`MessagePredicate`], `seed` (feature `bls`); the
//! README's "Coming from gun-rs 1.0.4" maps every name.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "server")]
pub mod server;

pub use gun_core::{
    Chain, Change, Engine, EngineOptions, Error, MAX_DEFERRED_KEYS, OnStream, PutAck, PutOptions,
    SHUTDOWN_WAIT, Shutdown, Subscription, Validator,
};
pub use gun_dam::MeshConfig;
pub use gun_graph::{Graph, InvalidValue, Lex, Node, Soul, State, Value};
pub use gun_store::Error as StoreError;
pub use gun_store::Store;

pub mod store;

/// The error of the Chain API (`put`, `once`, `then`…): the seed gun-rs 1.0.4's
/// name for [`Error`].
pub type GunError = Error;

/// Checks a JSON value as Gun.js's `valid` does, and returns it as a [`Value`]:
/// `null`, a boolean, a finite number, a string, or a link `{"#": soul}` with
/// a non-empty soul. Arrays, other objects and non-finite numbers are refused,
/// and the error says which. A thin wrapper over [`Value::from_json`].
///
/// ```
/// use serde_json::json;
/// assert_eq!(gun::valid(&json!("hi")), Ok(gun::Value::string("hi")));
/// assert!(gun::valid(&json!({"#": "alice"})).unwrap().as_link().is_some());
/// assert_eq!(gun::valid(&json!([1, 2])), Err(gun::InvalidValue::Array));
/// ```
pub fn valid(v: &serde_json::Value) -> Result<Value, InvalidValue> {
    Value::from_json(v)
}

/// Whether `put` can store `data`: a [`valid`] value, or an object whose
/// every field is itself storable (nested objects become linked nodes).
/// Arrays and non-finite numbers anywhere make it `false`.
///
/// ```
/// use serde_json::json;
/// assert!(gun::is_valid_data(&json!({"name": "Alice", "pet": {"kind": "cat"}})));
/// assert!(!gun::is_valid_data(&json!({"tags": ["a", "b"]})));
/// ```
pub fn is_valid_data(data: &serde_json::Value) -> bool {
    match data {
        serde_json::Value::Object(m) if Value::from_json(data).is_err() => {
            m.iter().all(|(k, v)| !k.is_empty() && is_valid_data(v))
        }
        _ => Value::from_json(data).is_ok(),
    }
}

/// Whether `soul` can name a node: any non-empty string ([`Soul::new`]).
///
/// ```
/// assert!(gun::valid_soul("user/alice"));
/// assert!(!gun::valid_soul(""));
/// ```
pub fn valid_soul(soul: &str) -> bool {
    Soul::new(soul).is_ok()
}
/// The file store: a checksummed journal and snapshots in one directory
/// (feature `store-file`).
#[cfg(feature = "store-file")]
pub use gun_store_file::FileStore;
/// The in-memory store (feature `store-memory`, the default store).
#[cfg(feature = "store-memory")]
pub use gun_store_memory::MemoryStore;
/// The sled store, the relay's default (feature `store-sled`).
#[cfg(feature = "store-sled")]
pub use gun_store_sled::SledStore;

#[cfg(feature = "store-postgres")]
pub use gun_store_postgres::{Options as PostgresOptions, PostgresStore};

/// SEA (feature `sea`): key pairs, signatures, encryption, the validator.
#[cfg(feature = "sea")]
pub use gun_sea as sea;
#[cfg(feature = "sea")]
pub use gun_sea::{Pair, User, UserChain, UserError, UserInfo};

pub use gun_dam::{AuthPolicy, MessagePredicate};
/// WebRTC (feature `webrtc`): the transport and its options.
#[cfg(feature = "webrtc")]
pub use gun_net_webrtc::{Rtc, RtcOptions};
#[cfg(feature = "bls")]
pub use gun_sea::bls::{BlsError, BlsKeyPair, BlsPublicKey, BlsSecretKey, BlsSignature};
#[cfg(feature = "bls")]
pub use gun_sea::bls_cert::{BlsCertError, BlsCertValidator, BlsCertificate, Grant};

/// How to build a [`Gun`].
#[derive(Clone)]
pub struct GunOptions {
    /// Peers to dial (`http://host:port/gun`, `ws://…`, `https://…`, `wss://…`).
    /// They are re-dialed for ever with backoff after a disconnect.
    pub peers: Vec<String>,
    /// The store; `None` gives the in-memory store (feature `store-memory`).
    pub store: Option<Arc<dyn Store>>,
    /// How long reads wait for peers at most (default 3 s).
    pub wait: Duration,
    /// Mesh settings (peer id, dedup bounds, frame limits).
    pub mesh: MeshConfig,
    /// BLS key pair (feature `bls`): every message this database originates is
    /// signed with it (extension field `"gunrs:sig"`, relayed unchanged by
    /// Gun.js peers). Default `None`. See also [`Gun::with_keys`].
    #[cfg(feature = "bls")]
    pub keys: Option<BlsKeyPair>,
    /// A write certificate for [`GunOptions::keys`] (feature `bls`), attached
    /// to every put as `"gunrs:cert"`. Default `None`.
    #[cfg(feature = "bls")]
    pub certificate: Option<BlsCertificate>,
    /// What to do with the signatures of incoming messages. When not
    /// [`AuthPolicy::Off`] (the default) it replaces `mesh.auth_policy`, and
    /// (feature `bls`) a BLS verifier accepting any key's valid signature is
    /// installed unless `mesh.verifier` is set.
    pub auth_policy: AuthPolicy,
    /// Filters on incoming messages, asked after `mesh.predicates`.
    pub predicates: Vec<Arc<dyn MessagePredicate>>,
    /// Keys of peers' writes that may wait for their state to come due (a
    /// state ahead of this machine's clock, applied when the clock reaches
    /// it, as Gun.js does). A write that would pass the bound is refused
    /// whole (an `err` ack). Default [`MAX_DEFERRED_KEYS`].
    pub max_deferred_keys: usize,
    /// Join this WebRTC room (feature `webrtc`): direct links to its other
    /// peers, signalled through [`GunOptions::peers`]. Default `None`.
    #[cfg(feature = "webrtc")]
    pub rtc: Option<RtcOptions>,
}

impl Default for GunOptions {
    fn default() -> Self {
        GunOptions {
            peers: Vec::new(),
            store: None,
            wait: Duration::from_secs(3),
            // An application peer: it says `hi`, gets what it subscribes to and
            // sends its own writes to the peers it dials.
            mesh: MeshConfig::client(),
            #[cfg(feature = "bls")]
            keys: None,
            #[cfg(feature = "bls")]
            certificate: None,
            auth_policy: AuthPolicy::Off,
            predicates: Vec::new(),
            max_deferred_keys: MAX_DEFERRED_KEYS,
            #[cfg(feature = "webrtc")]
            rtc: None,
        }
    }
}

/// A Gun database: a local graph, a store, and peers.
///
/// Must be created inside a tokio runtime.
#[derive(Clone)]
pub struct Gun {
    core: gun_core::Gun,
    #[cfg(feature = "net-ws")]
    clients: Arc<Vec<gun_net_ws::ClientHandle>>,
    #[cfg(feature = "sea")]
    user: User,
    #[cfg(feature = "webrtc")]
    rtc: Option<Arc<Rtc>>,
}

impl Gun {
    /// A database with the given options. It validates them: use
    /// [`Gun::try_new`] to get a bad option as an error instead.
    ///
    /// Peers that can be dialed but are not reachable are not an error: they
    /// are dialed again for ever (an unreachable one is logged at warn, once,
    /// with the time of the next try), and writes wait for them in the outbox.
    ///
    /// # Panics
    /// When [`Gun::try_new`] fails: a peer URL that cannot be dialed
    /// (malformed, `wss://` without TLS), or WebRTC options it cannot start
    /// with; and without a store in the options and without the
    /// `store-memory` feature.
    pub fn new(opts: GunOptions) -> Gun {
        match Gun::try_new(opts) {
            Ok(gun) => gun,
            Err(e) => panic!("gun: invalid options: {e} (Gun::try_new returns this as an error)"),
        }
    }

    /// A database with the given options, or the first reason it could not
    /// connect as asked: a peer URL that cannot be dialed, or (feature
    /// `webrtc`) WebRTC options it could not start with.
    ///
    /// # Panics
    /// Without a store in the options and without the `store-memory` feature.
    pub fn try_new(opts: GunOptions) -> Result<Gun, StartError> {
        let wired = wire(opts, Vec::new(), |_| Ok::<(), std::convert::Infallible>(()));
        let Ok(Wired {
            gun,
            dial_errors,
            rtc_error,
            attached: (),
        }) = wired;
        if let Some((url, message)) = dial_errors.into_iter().next() {
            return Err(StartError::Dial { url, message });
        }
        match rtc_error {
            Some(message) => Err(StartError::Rtc(message)),
            None => Ok(gun),
        }
    }

    /// A database whose messages are signed with this BLS key pair (feature
    /// `bls`; the seed's `Gun::new(secret_key, public_key)`): `opts.keys` is
    /// replaced. Fails if `public` is not `secret`'s public key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use gun::{AuthPolicy, BlsSecretKey, Gun, GunOptions};
    /// let sk = BlsSecretKey::from_seed(&[7; 32]);
    /// let pk = sk.public_key();
    /// let gun = Gun::with_keys(sk, pk, GunOptions {
    ///     auth_policy: AuthPolicy::VerifyWhenPresent,
    ///     ..Default::default()
    /// })?;
    /// assert!(gun.engine().options().mesh.signer.is_some());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "bls")]
    pub fn with_keys(
        secret: BlsSecretKey,
        public: BlsPublicKey,
        opts: GunOptions,
    ) -> Result<Gun, BlsError> {
        let keys = BlsKeyPair::new(secret, public)?;
        Ok(Gun::new(GunOptions {
            keys: Some(keys),
            ..opts
        }))
    }

    /// The seed gun-rs 1.0.4's `Gun::with_options(secret_key, public_key,
    /// options).await` (feature `bls`): [`Gun::with_keys`] that resolves once
    /// the first peer is connected, or when `opts.wait` elapsed (at once
    /// without peers). Not reaching a peer is not an error: the peers are
    /// dialed again for ever, as with [`Gun::new`]. Fails when `public` is not
    /// `secret`'s public key or a peer URL cannot be dialed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use gun::{BlsSecretKey, Gun, GunOptions};
    /// let sk = BlsSecretKey::from_seed(&[1; 32]);
    /// let pk = sk.public_key();
    /// let gun = Gun::with_options(sk, pk, GunOptions::default()).await?;
    /// gun.get("note").put(serde_json::json!({"text": "signed"})).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "bls")]
    pub async fn with_options(
        secret: BlsSecretKey,
        public: BlsPublicKey,
        opts: GunOptions,
    ) -> Result<Gun, WithOptionsError> {
        let keys = BlsKeyPair::new(secret, public).map_err(WithOptionsError::Keys)?;
        let wait = opts.wait;
        let has_peers = !opts.peers.is_empty();
        let gun = Gun::try_new(GunOptions {
            keys: Some(keys),
            ..opts
        })
        .map_err(WithOptionsError::Start)?;
        if has_peers {
            let deadline = tokio::time::Instant::now() + wait;
            while gun.engine().peer_count() == 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(gun)
    }

    /// The chain for the node with soul `key`.
    pub fn get(&self, key: impl Into<String>) -> Chain {
        self.core.get(key)
    }

    /// The root chain.
    pub fn root(&self) -> Chain {
        self.core.root()
    }

    /// The WebRTC transport (feature `webrtc`), when [`GunOptions::rtc`] was
    /// set and it started (a bad option is logged at error and leaves this
    /// `None`).
    #[cfg(feature = "webrtc")]
    pub fn rtc(&self) -> Option<&Rtc> {
        self.rtc.as_deref()
    }

    /// The engine (to attach transports, add validators, read statistics).
    pub fn engine(&self) -> &Engine {
        self.core.engine()
    }

    /// The user of this database (Gun.js `gun.user()`; feature `sea`): one per
    /// database, so a login made through one call is seen by the next.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), gun::UserError> {
    /// use serde_json::json;
    /// let gun = gun::Gun::new(gun::GunOptions::default());
    /// let pub_ = gun.user().create("alice", "a long password").await?;
    /// gun.user().get("status").put(json!("online")).await?;
    /// assert_eq!(gun.user_of(&pub_).get("status").then().await?, Some(json!("online")));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sea")]
    pub fn user(&self) -> User {
        self.user.clone()
    }

    /// The space of the user with public key `pub_` (Gun.js `gun.user(pub)`;
    /// feature `sea`): values read are verified against it; writes are signed
    /// when [`Gun::user`] is logged in as `pub_`, refused otherwise.
    #[cfg(feature = "sea")]
    pub fn user_of(&self, pub_: &str) -> UserChain {
        self.user.of_user(pub_)
    }

    /// Waits (at most [`SHUTDOWN_WAIT`], 5 s) until every write of this
    /// database was acked by a peer, then closes peer connections and flushes
    /// the store. Call it before the program exits: a write that no peer has
    /// acked yet lives only here (see [`Chain::put`]). The report says how
    /// many writes were not acked and whether the store keeps them for the
    /// next start ([`Shutdown::kept`]); see [`Gun::shutdown_within`].
    pub async fn shutdown(&self) -> Result<Shutdown, Error> {
        self.shutdown_within(SHUTDOWN_WAIT).await
    }

    /// Like [`Gun::shutdown`], waiting at most `wait` for peers' acks.
    pub async fn shutdown_within(&self, wait: Duration) -> Result<Shutdown, Error> {
        // Transports stay up while peers ack.
        self.engine().deliver_outbox(wait).await;
        self.close_peers().await;
        self.flush_and_close().await
    }

    /// Closes the connections this database dialed (WebRTC links, then the
    /// WebSocket clients); the first half of [`Gun::shutdown`].
    async fn close_peers(&self) {
        #[cfg(feature = "webrtc")]
        if let Some(rtc) = &self.rtc {
            rtc.close().await;
        }
        #[cfg(feature = "net-ws")]
        for c in self.clients.iter() {
            c.close();
        }
    }

    /// Stops subscriptions and flushes the store (reporting, without waiting,
    /// what is still undelivered); the second half of [`Gun::shutdown`].
    async fn flush_and_close(&self) -> Result<Shutdown, Error> {
        self.core.shutdown_within(Duration::ZERO).await
    }
}

/// The one wiring path of every gun-rs peer, client ([`Gun::new`]) or relay
/// (`server::Relay::start`): engine options, engine, validators, then
/// `before_dial` (a relay binds its server there), the peers, WebRTC.
/// Returns the database, what `before_dial` returned, and the peers that could not be dialed (URL, error
/// text); every other peer was dialed (and so registered with the mesh, see
/// `Hub::dialing`).
fn wire<T, E>(
    opts: GunOptions,
    validators: Vec<Arc<dyn Validator>>,
    before_dial: impl FnOnce(&Engine) -> Result<T, E>,
) -> Result<Wired<T>, E> {
    let store: Arc<dyn Store> = match opts.store {
        Some(s) => s,
        None => default_store(),
    };
    let mut eo = EngineOptions::new(store);
    eo.wait = opts.wait;
    eo.max_deferred_keys = opts.max_deferred_keys;
    eo.mesh = opts.mesh;
    if opts.auth_policy != AuthPolicy::Off {
        eo.mesh.auth_policy = opts.auth_policy;
    }
    eo.mesh.predicates.extend(opts.predicates);
    #[cfg(feature = "bls")]
    {
        if let Some(keys) = opts.keys {
            let mut signer = gun_sea::bls::BlsSigner::new(keys);
            if let Some(cert) = &opts.certificate {
                signer = signer.with_certificate(cert);
            }
            eo.mesh.signer = Some(Arc::new(signer));
        }
        if eo.mesh.auth_policy != AuthPolicy::Off && eo.mesh.verifier.is_none() {
            eo.mesh.verifier = Some(Arc::new(gun_sea::bls::BlsVerifier::any_key()));
        }
    }
    let engine = Engine::new(eo);
    for v in validators {
        engine.add_validator(v);
    }
    let attached = before_dial(&engine)?;
    #[allow(unused_mut)] // only pushed to with `net-ws`
    let mut dial_errors = Vec::new();
    #[cfg(feature = "net-ws")]
    let clients = {
        let hub: Arc<dyn gun_dam::Hub> = Arc::new(engine.clone());
        let mut clients = Vec::new();
        for url in &opts.peers {
            match gun_net_ws::Client::dial(url, hub.clone(), gun_net_ws::ClientOptions::default()) {
                Ok(c) => clients.push(c),
                Err(e) => dial_errors.push((url.clone(), e.to_string())),
            }
        }
        clients
    };
    #[cfg(not(feature = "net-ws"))]
    if !opts.peers.is_empty() {
        tracing::warn!("peers given but the `net-ws` feature is off: not dialing them");
    }
    #[allow(unused_mut)] // only set with `webrtc`
    let mut rtc_error = None;
    #[cfg(feature = "webrtc")]
    let rtc = opts.rtc.and_then(|o| match Rtc::start(engine.clone(), o) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            rtc_error = Some(e.to_string());
            None
        }
    });
    let core = gun_core::Gun::from_engine(engine);
    let gun = Gun {
        #[cfg(feature = "sea")]
        user: User::new(core.clone()),
        core,
        #[cfg(feature = "net-ws")]
        clients: Arc::new(clients),
        #[cfg(feature = "webrtc")]
        rtc,
    };
    Ok(Wired {
        gun,
        attached,
        dial_errors,
        rtc_error,
    })
}

/// What [`wire`] built.
struct Wired<T> {
    gun: Gun,
    /// What `before_dial` returned.
    attached: T,
    /// The peers that could not be dialed: URL, error text.
    dial_errors: Vec<(String, String)>,
    /// Why WebRTC did not start, when asked for.
    rtc_error: Option<String>,
}

/// The constructors of the seed gun-rs 1.0.4 (feature `bls`), for code
/// written against it: `use gun::seed::{Gun, GunOptions};` keeps its
/// `Gun::new(secret_key, public_key)` and
/// `Gun::with_options(secret_key, public_key, options).await?` compiling; both
/// return a [`crate::Gun`]. The README's "Coming from gun-rs 1.0.4" maps the
/// rest of its names.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use gun::seed::Gun;
/// use gun::BlsSecretKey as SecretKey;
/// let secret_key = SecretKey::from_seed(&[0u8; 32]);
/// let public_key = secret_key.public_key();
/// let gun = Gun::new(secret_key, public_key);
/// gun.get("user").put(serde_json::json!({"name": "Alice"})).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "bls")]
pub mod seed {
    pub use crate::BlsPublicKey as PublicKey;
    pub use crate::GunOptions;
    use crate::{BlsPublicKey, BlsSecretKey, WithOptionsError};

    /// The seed's `Gun` constructors; they build a [`crate::Gun`].
    #[derive(Debug)]
    pub enum Gun {}

    impl Gun {
        /// A local database whose messages are signed with this key pair
        /// ([`crate::Gun::with_keys`] with default options). `secret` is a
        /// [`crate::BlsSecretKey`] or this module's [`SecretKey`].
        ///
        /// # Panics
        /// When `public` is not `secret`'s public key (the seed did not check).
        #[allow(clippy::new_ret_no_self)]
        pub fn new(secret: impl Into<BlsSecretKey>, public: BlsPublicKey) -> crate::Gun {
            match crate::Gun::with_keys(secret.into(), public, GunOptions::default()) {
                Ok(gun) => gun,
                Err(e) => panic!("gun::seed::Gun::new: {e}"),
            }
        }

        /// [`crate::Gun::with_options`].
        pub async fn with_options(
            secret: impl Into<BlsSecretKey>,
            public: BlsPublicKey,
            options: GunOptions,
        ) -> Result<crate::Gun, WithOptionsError> {
            crate::Gun::with_options(secret.into(), public, options).await
        }
    }

    /// The seed's `chia_bls::SecretKey` as its quick start uses it: a BLS
    /// secret key that is `Copy`, so one key can be passed by value to
    /// [`Gun::new`] and again to [`Gun::with_options`].
    ///
    /// Being `Copy`, its bytes are not wiped when a copy is dropped: new code
    /// should use [`crate::BlsSecretKey`] (not `Copy`, zeroized on drop).
    /// The same seed gives the same key as [`crate::BlsSecretKey::from_seed`].
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub struct SecretKey([u8; 32]);

    impl SecretKey {
        /// The key for a 32-byte seed (as [`crate::BlsSecretKey::from_seed`]).
        pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
            SecretKey(*BlsSecretKey::from_seed(seed).to_bytes())
        }

        /// The public key.
        pub fn public_key(&self) -> PublicKey {
            BlsSecretKey::from(*self).public_key()
        }
    }

    impl std::fmt::Debug for SecretKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SecretKey(<redacted>)")
        }
    }

    impl From<SecretKey> for BlsSecretKey {
        fn from(k: SecretKey) -> BlsSecretKey {
            match BlsSecretKey::from_bytes(&k.0) {
                Ok(sk) => sk,
                // The bytes come from a valid key (`from_seed`), the only way to
                // make a `SecretKey`.
                Err(e) => unreachable!("a seed SecretKey holds a valid scalar: {e}"),
            }
        }
    }
}

/// Why [`Gun::with_options`] failed (feature `bls`).
#[cfg(feature = "bls")]
#[derive(Debug)]
#[non_exhaustive]
pub enum WithOptionsError {
    /// The public key is not the secret key's.
    Keys(BlsError),
    /// The options were refused (see [`Gun::try_new`]).
    Start(StartError),
}

#[cfg(feature = "bls")]
impl std::fmt::Display for WithOptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WithOptionsError::Keys(e) => write!(f, "bad key pair: {e}"),
            WithOptionsError::Start(e) => e.fmt(f),
        }
    }
}

#[cfg(feature = "bls")]
impl std::error::Error for WithOptionsError {}

/// Why [`Gun::try_new`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// A peer URL cannot be dialed (malformed, or `wss://` without TLS).
    Dial {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// WebRTC did not start (feature `webrtc`; e.g. an empty room).
    Rtc(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Dial { url, message } => write!(f, "cannot dial {url}: {message}"),
            StartError::Rtc(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StartError {}

#[cfg(feature = "store-memory")]
fn default_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

#[cfg(not(feature = "store-memory"))]
fn default_store() -> Arc<dyn Store> {
    // Documented under `Gun::new`: choosing no store and no store feature is a
    // programming error, caught at the first run.
    panic!("gun: no store given and the `store-memory` feature is off")
}
