//! Puts from peers through `Hub::receive`, as a relay gets them (no sockets):
//! `PEERS` peers (default 4) each keep `WINDOW` (256) 10-field puts in flight
//! until `PUTS` (25,000) each are acked, on a two-worker runtime with the
//! memory store. Prints puts/s and, built with `--features lock-timing`, how
//! long the engine's lock was held each time it was taken (a histogram):
//!
//! ```sh
//! cargo bench -p gun-core --bench receive --features lock-timing
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gun_core::{Engine, EngineOptions, MeshConfig};
use gun_dam::{Direction, Hub, Link, LinkError};
use gun_store_memory::MemoryStore;
use tokio::sync::Notify;

struct CountingLink {
    acks: AtomicU64,
    wake: Notify,
}

impl Link for CountingLink {
    fn send(&self, frame: Arc<str>) -> Result<(), LinkError> {
        let n = frame.matches("\"@\"").count() as u64;
        if n > 0 {
            self.acks.fetch_add(n, Ordering::Relaxed);
            self.wake.notify_one();
        }
        Ok(())
    }
    fn close(&self, _reason: &str) {}
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn put_frame(peer: u64, i: u64, state: u64) -> String {
    let soul = format!("p{peer}n{i}");
    let mut states = String::new();
    let mut fields = String::new();
    for f in 0..10 {
        if f > 0 {
            states.push(',');
        }
        states.push_str(&format!("\"f{f}\":{state}"));
        fields.push_str(&format!(",\"f{f}\":\"value-{i}-{f}\""));
    }
    format!(
        "{{\"#\":\"m{peer}x{i}\",\"put\":{{\"{soul}\":{{\"_\":{{\"#\":\"{soul}\",\">\":{{{states}}}}}{fields}}}}}}}"
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is parsed.
    let peers = env("PEERS", 4);
    let window = env("WINDOW", 256);
    let puts = env("PUTS", 25_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut o = EngineOptions::new(Arc::new(MemoryStore::new()));
        o.mesh = MeshConfig::relay();
        let engine = Engine::new(o);
        let state = gun_core::now_ms() as u64;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..peers {
            let link = Arc::new(CountingLink {
                acks: AtomicU64::new(0),
                wake: Notify::new(),
            });
            let id = engine.attach(link.clone(), Direction::Incoming);
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let mut sent = 0;
                while link.acks.load(Ordering::Relaxed) < puts {
                    while sent < puts && sent < link.acks.load(Ordering::Relaxed) + window {
                        engine.receive(id, &put_frame(p, sent, state));
                        sent += 1;
                    }
                    let wake = link.wake.notified();
                    if link.acks.load(Ordering::Relaxed) < puts.min(sent) {
                        wake.await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let total = peers * puts;
        println!(
            "receive: {peers} peers x {puts} puts ({window} in flight each): {:.0} acked puts/s ({secs:.2} s)",
            total as f64 / secs
        );
        print_lock_times(&engine, total);
    });
}

#[cfg(feature = "lock-timing")]
fn print_lock_times(engine: &Engine, puts: u64) {
    let h = engine.lock_hold_times();
    let n: u64 = h.iter().map(|(_, c)| c).sum();
    println!(
        "engine lock taken {n} times ({:.1} per put), held {:.2} µs per put in all; hold time histogram:",
        n as f64 / puts as f64,
        engine.lock_hold_total_ns() as f64 / 1000.0 / puts as f64
    );
    let mut cum = 0;
    let mut marks = vec![(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9"), (1.0, "max")];
    for (upper, c) in &h {
        cum += c;
        let mut tags = Vec::new();
        while let Some((q, name)) = marks.first().copied() {
            if cum as f64 >= q * n as f64 {
                tags.push(name);
                marks.remove(0);
            } else {
                break;
            }
        }
        println!(
            "  < {:>9} ns: {c:>9} ({:5.1} %) {}",
            upper,
            100.0 * *c as f64 / n as f64,
            tags.join(" ")
        );
    }
}

#[cfg(not(feature = "lock-timing"))]
fn print_lock_times(_engine: &Engine, _puts: u64) {
    println!("(build with --features lock-timing for the lock hold times)");
}
