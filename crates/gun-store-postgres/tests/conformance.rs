//! The shared conformance suite, run against the PostgreSQL store (a
//! throw-away server; each test's store in its own schema).

mod common;

use std::path::PathBuf;

use gun_store::Error;
use gun_store::conformance::Capabilities;
use gun_store_postgres::{Options, PostgresStore};

async fn open(dir: PathBuf) -> Result<PostgresStore, Error> {
    let Some(pg) = common::server() else {
        // No PostgreSQL here (and not CI): the suite cannot run.
        return Err(Error::Closed);
    };
    PostgresStore::connect(Options::new(pg.default_url()).schema(common::schema_for(&dir))).await
}

gun_store::conformance_tests!(open, Capabilities::new());
