//! P-256 throughput of gun-sea: SEA signatures (`SEA.sign` / `SEA.verify`),
//! signed user-space values as a relay checks them, ECDH (`SEA.secret`), and one
//! default `SEA.work` (PBKDF2, 100 000 rounds).
//!
//! `cargo bench -p gun-sea --bench p256`
#![allow(missing_docs, clippy::unwrap_used)]
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gun_graph::{State, Value};
use gun_sea::{
    Pair, SeaValidator, WorkOptions, secret, sign, sign_value, verify, verify_value, work,
};
use p256::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let alice = Pair::generate().unwrap();
    let bob = Pair::generate().unwrap();
    let data = json!({"name": "alice", "bio": "hello from the benchmark"});
    let signed = sign(&data, &alice).unwrap();
    let soul = format!("~{}", alice.pub_);
    let st = State::new(1_795_643_451_809.001).unwrap();
    let value = Value::from("online");
    let wire = sign_value(&soul, "status", &value, st, &alice).unwrap();
    let wire_value = Value::from(wire.as_str());
    let validator = SeaValidator::new();

    let mut g = c.benchmark_group("p256");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("sign", |b| {
        b.iter(|| sign(black_box(&data), &alice).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify(black_box(&signed), &alice.pub_).unwrap())
    });
    g.bench_function("sign_value", |b| {
        b.iter(|| sign_value(&soul, "status", black_box(&value), st, &alice).unwrap())
    });
    g.bench_function("verify_value", |b| {
        b.iter(|| verify_value(&soul, "status", black_box(&wire), st, &alice.pub_).unwrap())
    });
    g.bench_function("validator_check_key", |b| {
        b.iter(|| {
            validator
                .check_key(&soul, "status", black_box(&wire_value), st.as_f64())
                .unwrap()
        })
    });
    g.bench_function("secret", |b| {
        b.iter(|| secret(black_box(&bob.epub), &alice).unwrap())
    });
    g.finish();

    // The floor: p256 itself with keys already decoded (gun-sea decodes the
    // base64url keys on every call, and `SigningKey::from` derives the public key,
    // a second scalar multiplication per signature).
    let mut g = c.benchmark_group("p256_raw");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    let sk = SigningKey::from_slice(&[0x11; 32]).unwrap();
    let vk = *sk.verifying_key();
    let digest = [7u8; 32];
    let sig: Signature = sk.sign_prehash(&digest).unwrap();
    g.bench_function("sign_prehash", |b| {
        b.iter(|| -> Signature { sk.sign_prehash(black_box(&digest)).unwrap() })
    });
    g.bench_function("verify_prehash", |b| {
        b.iter(|| vk.verify_prehash(black_box(&digest), &sig).unwrap())
    });
    g.bench_function("signing_key_from_secret", |b| {
        b.iter(|| SigningKey::from_slice(black_box(&[0x11; 32])).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("pbkdf2");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let opts = WorkOptions::default();
    g.bench_function("work_100k", |b| {
        b.iter(|| work(black_box("password"), Some("salt"), &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
