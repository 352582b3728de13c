//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)] // each test crate uses a different subset

use std::path::PathBuf;

use serde_json::Value as J;

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root (where `interop/` lives).
pub fn workspace_root() -> PathBuf {
    crate_dir().join("../..")
}

/// A file of `tests/data/`.
pub fn data(name: &str) -> String {
    let p = crate_dir().join("tests/data").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The `m` part of `SEA{"m":…,"s":"…"}`, as text.
pub fn m_text(sea: &str) -> &str {
    let body = sea
        .strip_prefix("SEA{\"m\":")
        .expect("starts with SEA{\"m\":");
    let end = body.rfind(",\"s\":\"").expect("has ,\"s\":");
    &body[..end]
}

/// `JSON.stringify`, JavaScript-exact.
pub fn js(v: &J) -> String {
    gun_graph::json::stringify(v)
}
