//! The parse benches of `graph` with mimalloc as the global allocator, as in the
//! gun-relay binary: parsing is mostly allocation (keys, strings, the per-node
//! maps), so the allocator is part of what a relay's parse costs.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
use criterion::{Criterion, criterion_group, criterion_main};

mod fixtures;
use fixtures::parse_benches;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    parse_benches(c, "parse_mimalloc");
}

criterion_group!(benches, bench);
criterion_main!(benches);
