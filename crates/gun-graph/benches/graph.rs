//! gun-graph hot paths: merging a 10-field node, parsing and validating puts, and
//! the JavaScript-exact JSON text writer.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gun_graph::{Graph, Soul, State, Value, json};

mod fixtures;
use fixtures::{hundred_node_put, parse_benches, ten_field_put};

fn bench(c: &mut Criterion) {
    let now = State::new(1_795_643_500_000.0).unwrap();

    // Merge a 10-field node into a graph (new node, then a newer version of it).
    let mut g = c.benchmark_group("merge");
    let a = Graph::from_wire(&ten_field_put("alice", 1_795_643_412_520.0)).unwrap();
    let b = Graph::from_wire(&ten_field_put("alice", 1_795_643_412_521.0)).unwrap();
    g.throughput(Throughput::Elements(10));
    g.bench_function("10_field_node_new", |bn| {
        bn.iter_batched(
            Graph::new,
            |mut graph| graph.merge(black_box(&a), now),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("10_field_node_update", |bn| {
        let mut graph = Graph::new();
        graph.merge(&a, now);
        let mut flip = false;
        bn.iter(|| {
            flip = !flip;
            // Alternate so every iteration accepts 10 keys or rejects 10 keys.
            graph.merge(black_box(if flip { &b } else { &a }), now)
        })
    });
    g.finish();

    // Parse + validate puts.
    parse_benches(c, "parse");
    let batch = hundred_node_put();

    // The JSON text writer.
    let mut g = c.benchmark_group("json_text");
    let graph = Graph::from_wire(&batch).unwrap();
    let text = graph.to_wire();
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("graph_100_nodes", |bn| {
        let mut s = String::with_capacity(text.len());
        bn.iter(|| {
            s.clear();
            graph.write_wire(&mut s);
            s.len()
        })
    });
    let numbers: Vec<f64> = (0..1000)
        .map(|i| 1_795_643_412_520.0 + i as f64 / 999.0)
        .collect();
    g.throughput(Throughput::Elements(numbers.len() as u64));
    g.bench_function("numbers_1000_states", |bn| {
        let mut s = String::with_capacity(32_000);
        bn.iter(|| {
            s.clear();
            for n in &numbers {
                json::write_number(&mut s, *n);
            }
            s.len()
        })
    });
    let v = Value::Link(Soul::new("some/soul").unwrap());
    g.bench_function("value_link", |bn| bn.iter(|| black_box(&v).to_json_text()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
