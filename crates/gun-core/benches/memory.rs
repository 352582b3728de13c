//! Memory per 100k stored 10-field nodes, and set() of 100k items, in process.
//!
//! `cargo bench -p gun-core --bench memory` prints the resident-set growth
//! (from /proc/self/statm) after writing 100k nodes through the Chain API, and
//! the time for 100k `set()` calls. Compare with Gun.js `inproc.js` (834 MB RSS
//! per 100k nodes after writes, 614 MB settled; 6,724 sets/s).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use gun_core::{Engine, EngineOptions, Gun};
use gun_store_memory::MemoryStore;
use serde_json::json;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: u64 = if quick { 2_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let before = rss_bytes();
        let g = Gun::from_engine(Engine::new(EngineOptions::new(Arc::new(MemoryStore::new()))));
        let t = Instant::now();
        for i in 0..n {
            let v = json!({"f0": format!("value-{i}-0"), "f1": format!("value-{i}-1"), "f2": format!("value-{i}-2"),
                "f3": format!("value-{i}-3"), "f4": format!("value-{i}-4"), "f5": format!("value-{i}-5"),
                "f6": format!("value-{i}-6"), "f7": format!("value-{i}-7"), "f8": format!("value-{i}-8"),
                "f9": format!("value-{i}-9")});
            g.get(format!("bench/c0.{i:09}")).put(v).await.unwrap();
        }
        let put_secs = t.elapsed().as_secs_f64();
        let after = rss_bytes();
        let grown = after.saturating_sub(before);
        println!(
            "memory: {n} nodes, RSS grew {:.1} MB = {:.0} bytes/node (cache + memory store); {:.0} puts/s",
            grown as f64 / 1e6,
            grown as f64 / n as f64,
            n as f64 / put_secs
        );
        let stored = g.engine().store().stats().await.unwrap().souls;
        assert_eq!(stored, n);

        let t = Instant::now();
        let list = g.get("people");
        for i in 0..n {
            list.set(json!({"i": i, "name": format!("person {i}")})).await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!("set: {n} items in {secs:.2} s = {:.0} sets/s", n as f64 / secs);
        let count = list.then().await.unwrap().unwrap().as_object().map_or(0, |m| m.len());
        assert_eq!(count as u64, n);
    });
}
