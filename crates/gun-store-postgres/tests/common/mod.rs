//! One throw-away PostgreSQL server per test binary, shared by its tests
//! (each store in its own schema).

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use gun_store_postgres::testing::TempPostgres;

static SERVER: OnceLock<Option<TempPostgres>> = OnceLock::new();

/// The shared server, or `None` (the test skips; see
/// [`TempPostgres::start_or_skip`]).
pub(crate) fn server() -> Option<&'static TempPostgres> {
    SERVER
        .get_or_init(|| TempPostgres::start_or_skip("gun-store-postgres tests"))
        .as_ref()
}

/// A schema name for a store kept "in" `dir` (the conformance suite hands
/// each store a directory; reopening the same directory reopens the schema).
pub(crate) fn schema_for(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    format!("t_{:016x}", h.finish())
}
