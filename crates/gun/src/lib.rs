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

use std::sync::Arc;
use std::time::Duration;

pub use gun_core::{
    Chain, Change, Engine, EngineOptions, Error, OnStream, PutAck, PutOptions, Subscription,
    Validator,
};
pub use gun_dam::MeshConfig;
pub use gun_graph::{Graph, Lex, Node, Soul, State, Value};
pub use gun_store::Store;

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
}

impl Gun {
    /// A database with the given options.
    ///
    /// # Panics
    /// Without a store in the options and without the `store-memory` feature.
    pub fn new(opts: GunOptions) -> Gun {
        let store: Arc<dyn Store> = match opts.store {
            Some(s) => s,
            None => default_store(),
        };
        let mut eo = EngineOptions::new(store);
        eo.wait = opts.wait;
        eo.mesh = opts.mesh;
        let engine = Engine::new(eo);
        #[cfg(feature = "net-ws")]
        let clients = {
            let hub: Arc<dyn gun_dam::Hub> = Arc::new(engine.clone());
            for url in &opts.peers {
                engine.expect_peer(url);
            }
            opts.peers
                .iter()
                .filter_map(|url| {
                    match gun_net_ws::Client::dial(
                        url,
                        hub.clone(),
                        gun_net_ws::ClientOptions::default(),
                    ) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::error!(%url, %e, "cannot dial peer");
                            None
                        }
                    }
                })
                .collect()
        };
        #[cfg(not(feature = "net-ws"))]
        if !opts.peers.is_empty() {
            tracing::warn!("peers given but the `net-ws` feature is off: not dialing them");
        }
        Gun {
            core: gun_core::Gun::from_engine(engine),
            #[cfg(feature = "net-ws")]
            clients: Arc::new(clients),
        }
    }

    /// The chain for the node with soul `key`.
    pub fn get(&self, key: impl Into<String>) -> Chain {
        self.core.get(key)
    }

    /// The root chain.
    pub fn root(&self) -> Chain {
        self.core.root()
    }

    /// The engine (to attach transports, add validators, read statistics).
    pub fn engine(&self) -> &Engine {
        self.core.engine()
    }

    /// Flushes the store and closes peer connections.
    pub async fn shutdown(&self) -> Result<(), Error> {
        #[cfg(feature = "net-ws")]
        for c in self.clients.iter() {
            c.close();
        }
        self.core.shutdown().await
    }
}

#[cfg(feature = "store-memory")]
fn default_store() -> Arc<dyn Store> {
    Arc::new(gun_store_memory::MemoryStore::new())
}

#[cfg(not(feature = "store-memory"))]
fn default_store() -> Arc<dyn Store> {
    // Documented under `Gun::new`: choosing no store and no store feature is a
    // programming error, caught at the first run.
    panic!("gun: no store given and the `store-memory` feature is off")
}
