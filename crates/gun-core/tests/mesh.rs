//! Several in-process peers on gun-dam's mock network: writes on any peer reach
//! the others, with frames dropped, duplicated and reordered, and every replica
//! ends identical (a property test); subscriptions fire once per change.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gun_core::{Engine, EngineOptions, Gun, MeshConfig};
use gun_dam::Hub;
use gun_dam::mock::{Faults, MockNet};
use gun_store_memory::MemoryStore;
use proptest::prelude::*;
use serde_json::{Value, json};

fn peer(relay: bool, seed: u64) -> Gun {
    let mut o = EngineOptions::new(Arc::new(MemoryStore::new()));
    o.mesh = if relay {
        MeshConfig::relay()
    } else {
        MeshConfig::client()
    };
    o.mesh.rng_seed = Some(seed);
    o.wait = Duration::from_millis(500);
    o.grace = Duration::from_millis(50);
    Gun::from_engine(Engine::new(o))
}

/// Delivers frames and lets the engines' tasks run until nothing moves.
async fn settle(net: &MockNet) {
    let mut quiet = 0;
    while quiet < 4 {
        let moved = net.run_until_idle(100_000);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if moved == 0 && net.queued() == 0 {
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
}

struct Net {
    net: MockNet,
    peers: Vec<Gun>,
    conns: Vec<(usize, usize, String)>,
}

/// Peer 0 is a relay; the others are clients dialing it, and client 1 also
/// dials client 2 directly when there are at least 3 clients (a triangle).
fn build(n: usize, seed: u64) -> Net {
    let mut net = MockNet::new(seed);
    let mut peers = Vec::new();
    for i in 0..n {
        let g = peer(i == 0, seed.wrapping_add(i as u64));
        let hub: Arc<dyn Hub> = Arc::new(g.engine().clone());
        net.add_hub(hub);
        peers.push(g);
    }
    let mut conns = Vec::new();
    for i in 1..n {
        conns.push((i, 0, "ws://relay/gun".to_string()));
    }
    if n >= 4 {
        conns.push((1, 2, "ws://peer2/gun".to_string()));
    }
    for (a, b, url) in &conns {
        net.connect(*a, *b, url);
    }
    Net { net, peers, conns }
}

async fn snapshot(g: &Gun, souls: &[String]) -> Vec<Option<gun_graph::Node>> {
    let mut out = Vec::new();
    for s in souls {
        out.push(g.engine().store().get_node(s).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_every_peer_and_on_fires_once_per_change() {
    let mut n = build(4, 1);
    settle(&n.net).await;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s2 = seen.clone();
    let _sub = n.peers[3]
        .get("room")
        .get("topic")
        .on(move |d, _| s2.lock().unwrap().push(d));
    settle(&n.net).await;
    for (i, t) in ["a", "b", "c"].iter().enumerate() {
        n.peers[1 + i % 2]
            .get("room")
            .put(json!({"topic": t}))
            .await
            .unwrap();
        settle(&n.net).await;
    }
    // Three changes, three calls: not one per peer that delivered them.
    assert_eq!(
        *seen.lock().unwrap(),
        vec![json!("a"), json!("b"), json!("c")]
    );
    for p in &n.peers {
        assert_eq!(
            p.get("room").get("topic").then().await.unwrap(),
            Some(json!("c"))
        );
    }
    // The relay stored it.
    assert!(
        n.peers[0]
            .engine()
            .store()
            .get_node("room")
            .await
            .unwrap()
            .is_some()
    );
    // A late joiner reads it through the relay.
    let late = peer(false, 99);
    let hub: Arc<dyn Hub> = Arc::new(late.engine().clone());
    let idx = n.net.add_hub(hub);
    n.net.connect(idx, 0, "ws://relay/gun");
    n.conns.push((idx, 0, "ws://relay/gun".into()));
    settle(&n.net).await;
    let net = &n.net;
    let chain = late.get("room").get("topic");
    let read = chain.then();
    let pump = async {
        for _ in 0..50 {
            net.run_until_idle(10_000);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (r, ()) = tokio::join!(read, pump);
    assert_eq!(r.unwrap(), Some(json!("c")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_resolves_when_no_peer_has_the_data() {
    let n = build(3, 2);
    settle(&n.net).await;
    let net = &n.net;
    let start = std::time::Instant::now();
    let chain = n.peers[1].get("nothing-here");
    let read = chain.then();
    let pump = async {
        for _ in 0..100 {
            net.run_until_idle(10_000);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (r, ()) = tokio::join!(read, pump);
    assert_eq!(r.unwrap(), None);
    // Resolved well before the 500 ms wait: every peer said "not found".
    assert!(start.elapsed() < Duration::from_millis(1_500));
}

#[derive(Debug, Clone)]
struct W {
    peer: usize,
    soul: usize,
    key: usize,
    value: i64,
}

fn run_case(peers: usize, writes: Vec<W>, seed: u64, faults: Faults) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let n = build(peers, seed);
        settle(&n.net).await;
        // Everyone subscribes to every soul (as apps do with `on`).
        let souls: Vec<String> = (0..3).map(|i| format!("s{i}")).collect();
        let mut subs = Vec::new();
        for p in &n.peers[1..] {
            for s in &souls {
                subs.push(p.get(s.as_str()).on(|_, _| {}));
            }
        }
        settle(&n.net).await;
        n.net.set_faults(faults);
        for w in &writes {
            let p = &n.peers[w.peer % peers];
            p.get(souls[w.soul].as_str())
                .put(json!({ format!("k{}", w.key): w.value }))
                .await
                .unwrap();
            n.net.run_until_idle(50);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        settle(&n.net).await;
        // Heal: no more faults; reconnect everything so un-acked writes and
        // subscriptions are re-sent, then read every soul everywhere.
        n.net.set_faults(Faults::default());
        for c in 0..n.conns.len() {
            n.net.disconnect(c);
        }
        let mut net = n.net;
        for (a, b, url) in &n.conns {
            net.connect(*a, *b, url);
        }
        settle(&net).await;
        for _round in 0..2 {
            for p in &n.peers {
                for s in &souls {
                    let chain = p.get(s.as_str());
                    let read = chain.then();
                    let pump = async {
                        for _ in 0..30 {
                            net.run_until_idle(10_000);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    };
                    let (r, ()) = tokio::join!(read, pump);
                    r.unwrap();
                }
            }
            settle(&net).await;
        }
        let reference = snapshot(&n.peers[0], &souls).await;
        // Every write reached the relay: each written soul has a node there.
        for w in &writes {
            prop_assert!(
                reference[w.soul].is_some(),
                "soul s{} missing on the relay",
                w.soul
            );
        }
        for (i, p) in n.peers.iter().enumerate() {
            let got = snapshot(p, &souls).await;
            prop_assert_eq!(&got, &reference, "peer {} differs from the relay", i);
        }
        drop(subs);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_despite_faults(
        peers in 3usize..=5,
        writes in prop::collection::vec((0usize..5, 0usize..3, 0usize..4, -3i64..3).prop_map(|(peer, soul, key, value)| W { peer, soul, key, value }), 1..25),
        seed in any::<u64>(),
        drop in 0.0f64..0.2,
        dup in 0.0f64..0.2,
        reorder in 0.0f64..0.5,
    ) {
        run_case(peers, writes, seed, Faults { drop, duplicate: dup, reorder })?;
    }
}
