//! In-process engine throughput (no network): put and read of 10-field nodes,
//! and set(). Compare with ../shared/bench/README.md §1 (Gun.js `inproc.js`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gun_core::{Engine, EngineOptions, Gun};
use gun_store_memory::MemoryStore;
use serde_json::json;

fn gun() -> Gun {
    Gun::from_engine(Engine::new(EngineOptions::new(
        Arc::new(MemoryStore::new()),
    )))
}

fn node(i: u64) -> serde_json::Value {
    json!({"f0": format!("value-{i}-0"), "f1": format!("value-{i}-1"), "f2": format!("value-{i}-2"),
           "f3": format!("value-{i}-3"), "f4": format!("value-{i}-4"), "f5": format!("value-{i}-5"),
           "f6": format!("value-{i}-6"), "f7": format!("value-{i}-7"), "f8": format!("value-{i}-8"),
           "f9": format!("value-{i}-9")})
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let g = rt.block_on(async { gun() });
    let counter = AtomicU64::new(0);

    let mut group = c.benchmark_group("inproc");
    group.throughput(Throughput::Elements(1));
    group.bench_function("put_10_field_node", |b| {
        b.to_async(&rt).iter(|| {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            let g = g.clone();
            async move { g.get(format!("bench/{i}")).put(node(i)).await.unwrap() }
        })
    });

    // Reads of nodes that are in memory.
    let n = 10_000u64;
    rt.block_on(async {
        for i in 0..n {
            g.get(format!("read/{i}")).put(node(i)).await.unwrap();
        }
    });
    group.bench_function("once_10_field_node", |b| {
        b.to_async(&rt).iter(|| {
            let i = counter.fetch_add(1, Ordering::Relaxed) % n;
            let g = g.clone();
            async move { g.get(format!("read/{i}")).then().await.unwrap().unwrap() }
        })
    });
    group.bench_function("once_one_field", |b| {
        b.to_async(&rt).iter(|| {
            let i = counter.fetch_add(1, Ordering::Relaxed) % n;
            let g = g.clone();
            async move {
                g.get(format!("read/{i}"))
                    .get("f3")
                    .then()
                    .await
                    .unwrap()
                    .unwrap()
            }
        })
    });
    group.bench_function("set_item", |b| {
        b.to_async(&rt).iter(|| {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            let g = g.clone();
            async move {
                g.get("list")
                    .set(json!({"i": i, "name": format!("item {i}")}))
                    .await
                    .unwrap()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
