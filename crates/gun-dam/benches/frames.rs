//! gun-dam hot paths: parsing a batch frame of 10 puts, and routing a get
//! through a relay with 3 peers (parse, dedup, subscribe, forward, encode).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gun_dam::{Direction, Mesh, MeshConfig, PeerId, parse_frame};
use gun_graph::Graph;

fn put_batch(n: usize) -> String {
    let msgs: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r##"{{"#":"put{i:05}","put":{{"soul{i}":{{"_":{{"#":"soul{i}",">":{{"f0":1795643412520,"f1":1795643412520,"f2":1795643412520,"f3":1795643412520,"f4":1795643412520}}}},"f0":"Alice","f1":30,"f2":true,"f3":{{"#":"soul{i}/car"}},"f4":"a longer string value with some words in it"}}}},"ok":{{"@":9,"/":1}}}}"##
            )
        })
        .collect();
    format!("[{}]", msgs.join(","))
}

fn bench(c: &mut Criterion) {
    let frame = put_batch(10);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("put_batch_10", |b| {
        b.iter(|| {
            let v = parse_frame(black_box(&frame));
            assert_eq!(v.len(), 10);
            v
        })
    });
    // Baseline: the simplest approach, a serde_json::Value first, then
    // Graph::from_json on each put.
    g.bench_function("put_batch_10_via_value", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(&frame)).unwrap();
            let graphs: Vec<Graph> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|m| Graph::from_json(&m["put"]).unwrap())
                .collect();
            assert_eq!(graphs.len(), 10);
            graphs
        })
    });
    g.finish();

    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    g.bench_function("get_through_3_peer_relay", |b| {
        let mut mesh = Mesh::new(MeshConfig {
            pid: Some("R".into()),
            rng_seed: Some(1),
            ..MeshConfig::relay()
        });
        for (i, pid) in ["A", "B", "C"].into_iter().enumerate() {
            mesh.connect(PeerId(i as u64), Direction::Incoming, 0);
            mesh.receive(
                PeerId(i as u64),
                &format!(r#"{{"dam":"?","pid":"{pid}"}}"#),
                0,
            );
        }
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let get = format!(
                r##"{{"#":"g{n}","get":{{"#":"room{}","." :"topic"}}}}"##,
                n % 1000
            );
            let out = mesh.receive(PeerId(0), black_box(&get), n / 1000);
            assert_eq!(out.len(), 3); // deliver + forward to B and C
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
