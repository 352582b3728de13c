//! Storage backends: the same program on the memory, sled and file stores.
//! Each database writes, shuts down and is dropped; a new one opened on the
//! same store reads the data back (the memory store, by design, does not keep
//! it).
//!
//! Choosing one (`GunOptions::store`, one line each, see `gun::store`):
//!
//! * `gun::store::memory()` (feature `store-memory`, the default when no store
//!   is given): nothing on disk. For tests, caches, and peers whose data lives
//!   on their relays: a restart starts empty and fetches again, and writes not
//!   yet acked by a peer are lost at exit.
//! * `gun::store::sled(dir)?` (feature `store-sled`): the sled embedded
//!   database; durable, what gun-relay uses by default. Pick it for durable
//!   local data.
//! * `gun::store::file(dir)?` (feature `store-file`): a checksummed journal and
//!   snapshots in plain files, no database engine; it can import a Gun.js
//!   `radata` directory. Pick it when you want files you can inspect and back up,
//!   or to move from Gun.js.
//!
//! Both durable stores keep the outbox too: a write made offline is sent to the
//! peers at the next start. A directory is held by one open store at a time.
//!
//! Run with `cargo run -p gun --features store-sled,store-file --example storage`.

use std::sync::Arc;

use gun::{Gun, GunOptions, Store, StoreError};
use serde_json::json;

/// Writes with one database on `store`, shuts it down and drops it.
async fn write_and_close(store: Arc<dyn Store>) -> Result<(), gun::Error> {
    let gun = Gun::new(GunOptions {
        store: Some(store),
        ..Default::default()
    });
    gun.get("profile")
        .put(json!({"name": "Alice", "pet": {"kind": "cat"}}))
        .await?;
    gun.shutdown().await?; // flushes and closes the store
    Ok(())
}

/// Reads the data back with a new database on `store`.
async fn read_back(store: Arc<dyn Store>) -> Result<Option<serde_json::Value>, gun::Error> {
    let gun = Gun::new(GunOptions {
        store: Some(store),
        wait: std::time::Duration::from_millis(100), // no peers to ask
        ..Default::default()
    });
    let kind = gun.get("profile").get("pet").get("kind").then().await?;
    gun.shutdown().await?;
    Ok(kind)
}

/// Opens a durable store again. A directory is held by one open store at a
/// time, and the tasks of a database that was shut down let go of its store a
/// moment after the last `Gun` handle is dropped: wait (at most 5 s) while the
/// directory is still locked.
async fn reopen(
    open: impl Fn() -> Result<Arc<dyn Store>, StoreError>,
) -> Result<Arc<dyn Store>, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open() {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;

    // Memory: a new store is empty.
    write_and_close(gun::store::memory()).await?;
    let kind = read_back(gun::store::memory()).await?;
    assert_eq!(kind, None, "a new memory store starts empty");
    println!("memory: not kept (as designed)");

    // sled: reopened from its directory.
    let sled_dir = dir.path().join("sled");
    write_and_close(gun::store::sled(&sled_dir)?).await?;
    let kind = read_back(reopen(|| gun::store::sled(&sled_dir)).await?).await?;
    assert_eq!(kind, Some(json!("cat")));
    println!("sled: kept in {}", sled_dir.display());

    // file: reopened from its directory.
    let file_dir = dir.path().join("file");
    write_and_close(gun::store::file(&file_dir)?).await?;
    let kind = read_back(reopen(|| gun::store::file(&file_dir)).await?).await?;
    assert_eq!(kind, Some(json!("cat")));
    println!("file: kept in {}", file_dir.display());

    println!("storage: ok");
    Ok(())
}
