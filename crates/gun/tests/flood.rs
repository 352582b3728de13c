//! One peer floods a relay with puts while others write one at a time (issue
//! 14, bounded work in flight): the flooder is held back (the engine never
//! works on more than `max_in_flight_per_peer` of its messages at once; the
//! rest waits in TCP), every ack of every peer arrives, and the polite peers'
//! acks stay about as fast as without the flood.
//!
//! The store takes 2 ms per write (a memory store behind a delay, as a disk
//! would), so the relay is slower than the flooder's socket. Latencies are
//! compared by their medians over many samples with a margin for a loaded
//! machine; the speed goals themselves are checked by the benchmarks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gun::{Engine, EngineOptions, MeshConfig};
use gun_core::{Graph, Lex, Node};
use gun_net_ws::{NotFound, Server, ServerOptions};
use gun_store::{BoxFuture, Error, Store, StoreStats};
use gun_store_memory::MemoryStore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const LIMIT: usize = 16;
const WAIT: Duration = Duration::from_secs(20);

struct SlowStore(MemoryStore);

impl Store for SlowStore {
    fn get_node<'a>(&'a self, soul: &'a str) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        self.0.get_node(soul)
    }
    fn get_key<'a>(
        &'a self,
        soul: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Node>, Error>> {
        self.0.get_key(soul, key)
    }
    fn query<'a>(
        &'a self,
        souls: &'a Lex,
        keys: &'a Lex,
        budget: Option<u64>,
    ) -> BoxFuture<'a, Result<Graph, Error>> {
        self.0.query(souls, keys, budget)
    }
    fn put<'a>(&'a self, diff: &'a Graph) -> BoxFuture<'a, Result<Graph, Error>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.0.put(diff).await
        })
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.0.flush()
    }
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats, Error>> {
        self.0.stats()
    }
}

fn put_frame(who: &str, i: u64) -> (String, String) {
    let id = format!("{who}-{i}");
    let soul = format!("{who}/n{i}");
    let mut fields = String::new();
    let mut states = String::new();
    for f in 0..10 {
        if f > 0 {
            states.push(',');
        }
        states.push_str(&format!("\"f{f}\":1"));
        fields.push_str(&format!(",\"f{f}\":\"value-{i}-{f}\""));
    }
    let frame = format!(
        "{{\"#\":\"{id}\",\"put\":{{\"{soul}\":{{\"_\":{{\"#\":\"{soul}\",\">\":{{{states}}}}}{fields}}}}}}}"
    );
    (id, frame)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/gun"))
        .await
        .unwrap();
    ws
}

/// Sequential puts (one in flight); the time of each until its ack.
async fn polite(addr: std::net::SocketAddr, who: String, n: u64) -> Vec<Duration> {
    let mut ws = connect(addr).await;
    let mut out = Vec::new();
    for i in 0..n {
        let (id, frame) = put_frame(&who, i);
        let t = Instant::now();
        ws.send(WsMessage::text(frame)).await.unwrap();
        let want = format!("\"@\":\"{id}\"");
        loop {
            let m = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("an ack did not arrive")
                .unwrap()
                .unwrap();
            if let WsMessage::Text(t) = m
                && t.contains(&want)
            {
                assert!(t.contains("\"ok\""), "not acked ok: {t}");
                break;
            }
        }
        out.push(t.elapsed());
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_held_back_and_the_others_acks_stay_flat() {
    let mut o = EngineOptions::new(Arc::new(SlowStore(MemoryStore::new())));
    o.mesh = MeshConfig::relay();
    o.max_in_flight_per_peer = LIMIT;
    let engine = Engine::new(o);
    let server = Server::bind(
        ServerOptions::new("127.0.0.1:0".parse().unwrap()),
        Arc::new(engine.clone()),
        Arc::new(NotFound),
    )
    .unwrap();
    let addr = server.local_addr();
    const POLITE: usize = 3;
    const SAMPLES: u64 = 150;

    // Unloaded.
    let mut quiet = Vec::new();
    let tasks: Vec<_> = (0..POLITE)
        .map(|p| tokio::spawn(polite(addr, format!("quiet{p}"), SAMPLES)))
        .collect();
    for t in tasks {
        quiet.extend(t.await.unwrap());
    }

    // The flooder writes as fast as its socket takes frames, and reads its
    // acks on the side.
    const FLOOD: u64 = 20_000;
    let flood_acks = Arc::new(AtomicU64::new(0));
    let flood_sent = Arc::new(AtomicU64::new(0));
    let (mut tx, mut rx) = connect(addr).await.split();
    let sent = flood_sent.clone();
    let writer = tokio::spawn(async move {
        for i in 0..FLOOD {
            tx.send(WsMessage::text(put_frame("flood", i).1))
                .await
                .unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
        }
        tx
    });
    let acks = flood_acks.clone();
    let reader = tokio::spawn(async move {
        while acks.load(Ordering::Relaxed) < FLOOD {
            let m = tokio::time::timeout(WAIT, rx.next())
                .await
                .expect("the flooder's acks stopped")
                .unwrap()
                .unwrap();
            if let WsMessage::Text(t) = m {
                acks.fetch_add(t.matches("\"@\"").count() as u64, Ordering::Relaxed);
            }
        }
    });
    // Work in progress in the engine, sampled while the flood lasts.
    let watching = Arc::new(AtomicBool::new(true));
    let max_busy = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (engine, watching, max_busy) = (engine.clone(), watching.clone(), max_busy.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let s = engine.stats();
                let busy = s
                    .puts_in
                    .load(Ordering::Relaxed)
                    .saturating_sub(s.acks_out.load(Ordering::Relaxed));
                max_busy.fetch_max(busy, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // Let the flood build up, then measure the polite peers during it.
    while flood_acks.load(Ordering::Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut loaded = Vec::new();
    let tasks: Vec<_> = (0..POLITE)
        .map(|p| tokio::spawn(polite(addr, format!("busy{p}"), SAMPLES)))
        .collect();
    for t in tasks {
        loaded.extend(t.await.unwrap());
    }
    let acked_during = flood_acks.load(Ordering::Relaxed);
    let sent_during = flood_sent.load(Ordering::Relaxed);
    assert!(
        acked_during < FLOOD,
        "the flood ended before the loaded measurement did: make FLOOD larger"
    );
    // Every one of the flooder's puts is acked in the end.
    drop(writer.await.unwrap());
    reader.await.unwrap();
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();

    let (qm, lm) = (median(quiet.clone()), median(loaded.clone()));
    let (qp, lp) = (p99(quiet), p99(loaded));
    let busy = max_busy.load(Ordering::Relaxed);
    eprintln!(
        "polite acks: unloaded median {qm:?} p99 {qp:?}; during the flood median {lm:?} p99 {lp:?}; \
         flooder sent {sent_during} / acked {acked_during} by then; most messages in progress {busy}"
    );
    // Bounded work: never more than the limit per connected peer (the
    // flooder and the polite ones), however far ahead the flooder is.
    assert!(
        busy <= (LIMIT * (POLITE + 1)) as u64,
        "{busy} messages in progress at once: the flooder is not held back"
    );
    // The polite peers' acks stay flat: their median during the flood within
    // 2x of the unloaded one, plus 5 ms for a loaded two-core machine.
    assert!(
        lm <= qm * 2 + Duration::from_millis(5),
        "polite median went from {qm:?} to {lm:?} during the flood"
    );
    server.shutdown().await;
}
