//! The parse benches of `graph` with mimalloc as the global allocator, as in the
//! gun-relay binary: parsing is mostly allocation (keys, strings, the per-node
//! maps), so the allocator is part of what a relay's parse costs.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gun_graph::Graph;

mod fixtures;
use fixtures::{hundred_node_put, ten_field_put};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_mimalloc");
    let batch = hundred_node_put();
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("put_100_nodes", |bn| {
        bn.iter(|| Graph::from_wire(black_box(&batch)).unwrap())
    });
    let one = ten_field_put("alice", 1_795_643_412_520.0);
    g.throughput(Throughput::Bytes(one.len() as u64));
    g.bench_function("put_1_node", |bn| {
        bn.iter(|| Graph::from_wire(black_box(&one)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
