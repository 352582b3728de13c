//! One-line stores for [`GunOptions::store`](crate::GunOptions::store).
//!
//! | store | feature | what it is | choose it when |
//! |---|---|---|---|
//! | [`memory()`](fn.memory.html) (`MemoryStore`) | `store-memory` (default) | a map in memory, gone at exit | tests, caches, a peer whose data lives on its relays |
//! | [`sled()`](fn.sled.html) (`SledStore`) | `store-sled` | the sled embedded database in a directory | durable data on disk, the relay's default |
//! | [`file()`](fn.file.html) (`FileStore`) | `store-file` | a checksummed journal and snapshots in a directory | durable data with no database engine; imports Gun.js `radata` |
//!
//! A durable store keeps the writes and the **outbox** (writes no peer has
//! acked yet) across restarts. A directory is held by one store at a time:
//! a second open fails with [`StoreError::Locked`] until the first is shut
//! down ([`Gun::shutdown`](crate::Gun::shutdown)) and its last handle dropped
//! (the database's tasks let go of it a moment after the last `Gun` is
//! dropped: `examples/storage.rs` waits for that).
//!
//! ```
//! # #[cfg(feature = "store-sled")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gun::{Gun, GunOptions};
//! let dir = tempfile::tempdir()?;
//! let gun = Gun::new(GunOptions {
//!     store: Some(gun::store::sled(dir.path())?),
//!     ..Default::default()
//! });
//! gun.get("note").put(serde_json::json!({"text": "kept"})).await?;
//! gun.shutdown().await?;
//! # Ok(()) }
//! # #[cfg(not(feature = "store-sled"))]
//! # fn main() {}
//! ```

#[allow(unused_imports)] // used by the store features only
use std::path::Path;
#[allow(unused_imports)]
use std::sync::Arc;

#[allow(unused_imports)]
use crate::{Store, StoreError};

/// The in-memory store (feature `store-memory`): what [`Gun::new`](crate::Gun::new)
/// uses when no store is given.
#[cfg(feature = "store-memory")]
pub fn memory() -> Arc<dyn Store> {
    Arc::new(crate::MemoryStore::new())
}

/// Opens (creating if needed) a sled store in directory `path` (feature
/// `store-sled`): [`SledStore::open`](crate::SledStore::open) as an
/// `Arc<dyn Store>`.
#[cfg(feature = "store-sled")]
pub fn sled(path: impl AsRef<Path>) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(crate::SledStore::open(path)?))
}

/// Opens (creating if needed) a file store in directory `path` (feature
/// `store-file`): [`FileStore::open`](crate::FileStore::open) as an
/// `Arc<dyn Store>`. Blocking: it reads the snapshot and replays the journal.
#[cfg(feature = "store-file")]
pub fn file(path: impl AsRef<Path>) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(crate::FileStore::open(path)?))
}
