//! BLS (min_pk, augmented) signing and verifying throughput, on a message the
//! size of a small put's canonical text.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gun_sea::bls::BlsKeyPair;

fn bench(c: &mut Criterion) {
    let pair = BlsKeyPair::from_seed(&[42; 32]);
    let msg = "gun-rs/msg/1\nabcdefghi\n{\"put\":{\"doc\":{\"_\":{\"#\":\"doc\",\">\":{\"title\":1700000000000}},\"title\":\"hello world\"}}}".as_bytes();
    let sig = pair.secret().sign(msg);
    let mut g = c.benchmark_group("bls");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| {
        b.iter(|| pair.secret().sign(std::hint::black_box(msg)))
    });
    g.bench_function("verify", |b| {
        b.iter(|| assert!(pair.public().verify(std::hint::black_box(msg), &sig)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
