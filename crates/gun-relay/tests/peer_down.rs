//! A write taken while a `--peer` is down reaches that peer once it is up
//! (issue "One wiring path": gun-relay did not register the URLs it dials with
//! the mesh, so nothing was queued for them).
//!
//! Relay A is started with `--peer ws://127.0.0.1:PORT_B/gun` while nothing
//! listens on PORT_B; a client writes a node to A and waits for A's ack; then
//! relay B starts on PORT_B, A's dial loop connects, and B must come to hold
//! the write without anyone asking it for it: the test watches B's store
//! through its health document (`souls`), not with gets, because B would pass
//! a get on to A and could fetch the node that way. Then A is killed (SIGKILL)
//! and a get on B must answer with the value and its state.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, RelayProc, RelaySpec, health, now_ms, soul};
use serde_json::json;

/// A port nothing listens on now (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_taken_while_peer_down_reaches_it_when_it_comes_up() {
    let port_b = free_port();
    let mut spec_a = RelaySpec::new("A");
    spec_a.peers = vec![format!("ws://127.0.0.1:{port_b}/gun")];
    let mut a = RelayProc::start(spec_a);

    let s = soul("peer-down");
    let state = now_ms();
    let writer = RawClient::connect(&a.addr, "writer").await;
    let id = writer.put(&s, &[("v", json!("queued for B"))], state);
    let ack = writer
        .wait_for(Duration::from_secs(10), |m| m["@"] == id.as_str())
        .await
        .unwrap_or_else(|| panic!("no ack from A for put {id}:\n{}", a.log.tail(20)));
    assert!(ack["err"].is_null(), "A refused the write: {ack}");

    let mut spec_b = RelaySpec::new("B");
    spec_b.port = port_b;
    let b = RelayProc::start(spec_b);

    // B holds the write once its store has a soul (it started empty).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let souls = health(&b.addr).await.and_then(|h| h["souls"].as_u64());
        if souls.unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never received the write A took while B was down (souls: {souls:?}).\nA:\n{}\nB:\n{}",
            a.log.tail(20),
            b.log.tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    a.child.kill().unwrap();
    a.child.wait().unwrap();

    let reader = RawClient::connect(&b.addr, "reader").await;
    let node = reader
        .get_node(&s, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("B does not answer {s} with its data:\n{}", b.log.tail(20)));
    assert_eq!(node["v"], json!("queued for B"), "node on B: {node}");
    assert_eq!(
        node["_"][">"]["v"].as_f64(),
        Some(state),
        "state on B: {node}"
    );
}
