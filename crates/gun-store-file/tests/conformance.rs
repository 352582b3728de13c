//! The shared conformance suite, run against the file store, including the
//! failed-write test through `Options::fail_after_bytes`.

use std::path::PathBuf;

use gun_store::Error;
use gun_store::conformance::{self, Capabilities};
use gun_store_file::{FileStore, Options};

async fn open(dir: PathBuf) -> Result<FileStore, Error> {
    FileStore::open(dir)
}

/// A store whose journal fails 100 bytes into the next append.
async fn open_failing(dir: PathBuf) -> Result<FileStore, Error> {
    FileStore::open_with(dir, &Options::new().fail_after_bytes(100))
}

/// A store that compacts after every put, so the suite also runs through
/// snapshots and journal rotation.
async fn open_compacting(dir: PathBuf) -> Result<FileStore, Error> {
    FileStore::open_with(dir, &Options::new().compact_min_bytes(0))
}

gun_store::conformance_tests!(open, Capabilities::new());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_leaves_store_unchanged() {
    conformance::failed_write_leaves_store_unchanged(&open, &open_failing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_leaves_store_unchanged_when_failing_at_the_first_byte() {
    async fn fail_at_once(dir: PathBuf) -> Result<FileStore, Error> {
        FileStore::open_with(dir, &Options::new().fail_after_bytes(0))
    }
    conformance::failed_write_leaves_store_unchanged(&open, &fail_at_once).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_with_compaction_after_every_put() {
    conformance::run_all(&open_compacting, &Capabilities::new()).await;
}
