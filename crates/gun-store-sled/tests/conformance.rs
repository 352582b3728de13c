//! The shared conformance suite, run against the sled store.

use std::path::PathBuf;

use gun_store::Error;
use gun_store::conformance::Capabilities;
use gun_store_sled::SledStore;

async fn open(dir: PathBuf) -> Result<SledStore, Error> {
    SledStore::open(dir.join("db"))
}

gun_store::conformance_tests!(open, Capabilities::new());
