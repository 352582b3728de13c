//! HAM decision throughput.
#![allow(missing_docs)]
use std::cmp::Ordering;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gun_ham::{HamValue, State, decide};

struct Num(f64);
impl HamValue for Num {
    fn lexical_cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ham");
    let n = 1024usize;
    let states: Vec<State> = (0..n)
        .map(|i| State::new(1_795_643_412_520.0 + (i % 7) as f64).unwrap_or(State::MIN))
        .collect();
    let values: Vec<Num> = (0..n).map(|i| Num((i % 5) as f64)).collect();
    let machine = State::new(1_795_643_412_600.0).unwrap_or(State::MIN);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("decide_mixed_1024", |b| {
        b.iter(|| {
            let mut accepted = 0u32;
            for i in 0..n {
                let j = (i * 31 + 7) % n;
                let d = decide(
                    black_box(machine),
                    states[i],
                    &values[i],
                    Some((states[j], &values[j])),
                );
                accepted += d.is_accept() as u32;
            }
            accepted
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
