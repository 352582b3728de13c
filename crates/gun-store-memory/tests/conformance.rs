//! The shared conformance suite, run against the in-memory store.
//!
//! The memory store is not durable: it declares `durable = false`, so the suite
//! skips only `reopen_after_close` (and prints that it did).

use std::path::PathBuf;

use gun_store::Error;
use gun_store::conformance::Capabilities;
use gun_store_memory::MemoryStore;

async fn open(_dir: PathBuf) -> Result<MemoryStore, Error> {
    Ok(MemoryStore::new())
}

gun_store::conformance_tests!(open, Capabilities::new().durable(false));

#[tokio::test]
async fn run_all_in_one_go() {
    gun_store::conformance::run_all(&open, &Capabilities::new().durable(false)).await;
}
