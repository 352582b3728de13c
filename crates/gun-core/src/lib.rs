//! # gun-core: the gun-rs engine and the Chain API
//!
//! The engine ([`Engine`]) joins a graph cache, a [`gun_store::Store`], the mesh
//! ([`gun_dam::Mesh`]), validators and local events. It implements
//! [`gun_dam::Hub`], so any transport (gun-net-ws, gun-net-webrtc, the mock
//! network of gun-dam) can attach peers to it. It knows no backend: the store
//! and the transports are given to it.
//!
//! The Chain API ([`Gun`], [`Chain`]) is Gun.js's, fixed where Gun.js hurts:
//!
//! * `put(..).await` resolves when the write is durable locally, and
//!   [`Chain::put_with`] can wait for peer acks (Gun.js callbacks may never fire);
//! * `then()` / `once(..)` always resolve: data, or `None` after a bounded wait
//!   for peers (Gun.js can wait for ever, or give up after 99 ms);
//! * `on` fires once per accepted change, however many peers answer with the
//!   same data (Gun.js fires once per answer).
//!
//! ```
//! use gun_core::{Engine, EngineOptions, Gun};
//! use serde_json::json;
//! # use std::sync::Arc;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), gun_core::Error> {
//! let store = Arc::new(gun_store_memory::MemoryStore::new());
//! let gun = Gun::from_engine(Engine::new(EngineOptions::new(store)));
//!
//! gun.get("mark").put(json!({"name": "Mark", "boss": {"name": "Amber"}})).await?;
//! assert_eq!(gun.get("mark").get("boss").get("name").then().await?, Some(json!("Amber")));
//!
//! let mut seen = Vec::new();
//! gun.get("mark").get("name").once(|data, key| seen.push((data, key.to_string()))).await?;
//! assert_eq!(seen, vec![(json!("Mark"), "name".to_string())]);
//! # Ok(()) }
//! ```

mod chain;
mod convert;
mod engine;
mod error;
mod options;

pub use chain::{Chain, Gun, OnStream, SHUTDOWN_WAIT, Shutdown, SoulWatch, Subscription};
pub use engine::{
    Change, Engine, HistogramSnapshot, LATENCY_BUCKETS, LatencyHistogram, MAX_REJECT_REASONS,
    PutAck, PutOptions, Replies, Reply, Stats, now_ms,
};
pub use error::Error;
pub use options::{EngineOptions, MAX_DEFERRED_KEYS, MAX_IN_FLIGHT_PER_PEER};

pub use gun_dam::{
    Direction, Hub, Link, MeshConfig, Message, Origin, PeerId, PutContext, Validator,
};
pub use gun_graph::{Graph, Lex, Node, Soul, State, Value};
