//! The relay's limits refuse what they should, and each refusal shows in
//! `GET /metrics` as `gun_refused_total{reason=…}`: an oversize frame
//! (`--max-frame-bytes`), an oversize put (`--max-put-keys`), too many
//! connections from 127.0.0.1 (`--max-connections-per-ip`), past
//! `--max-connections` (503 with the reason), subscriptions past
//! `--max-subscriptions-per-connection` (the oldest soul forgotten), a flood over
//! the message rate (`--max-messages-per-sec`), and a write to public space
//! with `--allow-public-space false` (while a `#`-soul write is accepted), and
//! writes ahead of the clock past `--max-deferred-keys`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, RelayProc, RelaySpec, metrics, now_ms, soul};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn fields(v: &[(String, serde_json::Value)]) -> Vec<(&str, serde_json::Value)> {
    v.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

fn relay(name: &str, args: &[&str]) -> RelayProc {
    let mut spec = RelaySpec::new(name);
    spec.args = args.iter().map(|a| (*a).to_owned()).collect();
    RelayProc::start(spec)
}

/// `gun_refused_total{reason="REASON"}` now.
async fn refused(relay: &RelayProc, reason: &str) -> f64 {
    let m = metrics(&relay.addr).await;
    let series = format!("gun_refused_total{{reason=\"{reason}\"}}");
    *m.get(&series)
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

async fn wait_closed(c: &RawClient, what: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(why) = c.closed() {
            return why;
        }
        assert!(Instant::now() < deadline, "{what}: connection not closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_closes_the_connection() {
    let r = relay("frame", &["--max-frame-bytes", "4096"]);
    let c = RawClient::connect(&r.addr, "big").await;
    let s = soul("frame");
    c.put_acked(&s, &[("v", json!("small"))], WAIT, "a small put")
        .await;
    c.send(&common::put_msg(
        "big-put",
        &s,
        &[("v", json!("x".repeat(8192)))],
        now_ms(),
    ));
    let why = wait_closed(&c, "a frame over --max-frame-bytes").await;
    assert!(why.contains("1009") || why.contains("Size"), "{why}");
    assert!(refused(&r, "frame_size").await >= 1.0);
    // Others are served.
    let d = RawClient::connect(&r.addr, "after").await;
    d.put_acked(&s, &[("w", json!(1))], WAIT, "a put after")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_put_gets_an_err_ack_naming_the_limit() {
    let r = relay("put", &["--max-put-keys", "5"]);
    let c = RawClient::connect(&r.addr, "writer").await;
    let s = soul("put");
    let five: Vec<(String, serde_json::Value)> =
        (0..5).map(|i| (format!("k{i}"), json!(i))).collect();
    let six: Vec<(String, serde_json::Value)> =
        (0..6).map(|i| (format!("k{i}"), json!(i))).collect();
    let ok = c.put_acked(&s, &fields(&five), WAIT, "5 keys").await;
    assert!(ok["err"].is_null(), "{ok}");
    let nack = c.put_acked(&s, &fields(&six), WAIT, "6 keys").await;
    assert_eq!(
        nack["err"],
        json!(gun::server::put_keys_refused(5)),
        "{nack}"
    );
    assert!(nack["err"].as_str().unwrap().contains("--max-put-keys"));
    assert!(c.closed().is_none(), "the connection stays open");
    assert!(refused(&r, "put_size").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_ahead_of_the_clock_past_the_bound_get_an_err_ack() {
    let r = relay("deferred", &["--max-deferred-keys", "3"]);
    let c = RawClient::connect(&r.addr, "writer").await;
    // An hour ahead: the keys wait for their state to come due.
    let ahead = now_ms() + 3_600_000.0;
    let first = c.put(
        &soul("deferred-a"),
        &[("a", json!(1)), ("b", json!(2))],
        ahead,
    );
    // Not acked while its keys wait (an ack says all of it is stored).
    assert!(
        c.wait_for(Duration::from_millis(500), |m| m["@"] == first.as_str())
            .await
            .is_none(),
        "a put waiting for its state was acked"
    );
    // Two more would make four waiting keys: refused whole, with the reason.
    let second = c.put(
        &soul("deferred-b"),
        &[("c", json!(3)), ("d", json!(4))],
        ahead,
    );
    let nack = c
        .wait_for(WAIT, |m| m["@"] == second.as_str())
        .await
        .expect("an err ack for the put past the bound");
    let err = nack["err"].as_str().unwrap_or_default();
    assert!(err.contains("at most 3 keys"), "{nack}");
    // One more fits, and a put due now is acked as ever.
    let third = c.put(&soul("deferred-c"), &[("e", json!(5))], ahead);
    assert!(
        c.wait_for(Duration::from_millis(500), |m| m["@"] == third.as_str())
            .await
            .is_none(),
        "the put within the bound waits, unacked"
    );
    let ok = c
        .put_acked(
            &soul("deferred-d"),
            &[("f", json!(6))],
            WAIT,
            "a put due now",
        )
        .await;
    assert!(ok["err"].is_null(), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_from_one_address_get_429() {
    let r = relay("per-ip", &["--max-connections-per-ip", "3"]);
    let mut open = Vec::new();
    for i in 0..3 {
        open.push(RawClient::connect(&r.addr, &format!("c{i}")).await);
    }
    let err = match RawClient::try_connect(&r.addr, "c3").await {
        Ok(_) => panic!("a 4th connection from 127.0.0.1 was accepted"),
        Err(e) => e,
    };
    assert!(err.contains("429"), "{err}");
    assert!(refused(&r, "connections_per_ip").await >= 1.0);
    // One closes: a new one is accepted.
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        match RawClient::try_connect(&r.addr, "again").await {
            Ok(c) => {
                c.put_acked(&soul("per-ip"), &[("v", json!(1))], WAIT, "put")
                    .await;
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "still refused: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_over_the_rate_is_dropped_then_closed() {
    let r = relay(
        "rate",
        &["--max-messages-per-sec", "20", "--message-burst", "20"],
    );
    let c = RawClient::connect(&r.addr, "flood").await;
    // Within the burst: answered.
    c.put_acked(
        &soul("rate"),
        &[("v", json!(1))],
        WAIT,
        "a put in the burst",
    )
    .await;
    // 20/s with a burst of 20: of 1000 frames sent at once most are dropped,
    // and after 10 s worth (200) of drops the connection is closed.
    for i in 0..1000 {
        c.send(&json!({"#": format!("flood-{i}"), "get": {"#": format!("flood-{i}")}}));
    }
    // Closed with 1008, or reset while the flood was still being written.
    let _why = wait_closed(&c, "a flood").await;
    assert!(refused(&r, "rate").await >= 200.0);
    assert_eq!(refused(&r, "rate_close").await, 1.0);
    // Logged once for the connection, not once per dropped frame.
    let logged = r.log.snapshot();
    let count = |needle: &str| logged.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("over its message rate; dropping frames"), 1);
    // Others are served.
    let d = RawClient::connect(&r.addr, "calm").await;
    d.put_acked(&soul("rate"), &[("w", json!(2))], WAIT, "a calm put")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_space_is_refused_and_content_addressed_souls_accepted() {
    let r = relay("public", &["--allow-public-space", "false"]);
    let c = RawClient::connect(&r.addr, "writer").await;
    let nack = c
        .put_acked(&soul("chat"), &[("msg", json!("hi"))], WAIT, "public")
        .await;
    assert_eq!(
        nack["err"],
        json!(gun::server::PUBLIC_SPACE_REFUSED),
        "{nack}"
    );
    // `#` soul: the key is the SHA-256 (base64) of the value.
    let value = format!("hello {}", now_ms());
    let key = gun_sea::work(&value, None, &gun_sea::WorkOptions::sha256()).unwrap();
    let ok = c
        .put_acked("#", &[(key.as_str(), json!(value))], WAIT, "a # soul")
        .await;
    assert!(ok["err"].is_null(), "{ok}");
    // A wrong hash is still SEA's to refuse.
    let bad = c
        .put_acked("#", &[("not-the-hash", json!(value))], WAIT, "a bad # key")
        .await;
    assert!(bad["err"].is_string(), "{bad}");
    assert!(refused(&r, "public_space").await >= 1.0);
    let m = metrics(&r.addr).await;
    let series = format!(
        "gun_rejected_total{{reason=\"{}\"}}",
        gun::server::PUBLIC_SPACE_REFUSED
    );
    assert!(m.get(&series).is_some_and(|v| *v >= 1.0), "no {series}");
}

/// Sends a WebSocket upgrade request by hand and returns the whole answer.
async fn raw_upgrade(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET /gun HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_maximum_get_503_with_the_reason() {
    let r = relay("max-conns", &["--max-connections", "3"]);
    let mut open = Vec::new();
    for i in 0..3 {
        open.push(RawClient::connect(&r.addr, &format!("c{i}")).await);
    }
    let err = match RawClient::try_connect(&r.addr, "c3").await {
        Ok(_) => panic!("a 4th connection was accepted with --max-connections 3"),
        Err(e) => e,
    };
    assert!(err.contains("503"), "{err}");
    let answer = raw_upgrade(&r.addr).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "not a 503: {answer:?}");
    assert!(answer.contains("Retry-After: 5"), "{answer:?}");
    assert!(
        answer.contains(&gun::server::max_connections_refusal(3)),
        "the reason is not in the body: {answer:?}"
    );
    // The open ones are served.
    open[0]
        .put_acked(&soul("max-conns"), &[("v", json!(1))], WAIT, "a put")
        .await;
    // One closes: a slot frees (the metrics request takes it) and the refusals are counted.
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        // Until the closed connection's slot is free, /metrics is refused too.
        if let Some((200, body)) = common::http_get(&r.addr, "/metrics").await {
            let m = common::parse_metrics(&body);
            let n = m["gun_refused_total{reason=\"max_connections\"}"];
            assert!(n >= 2.0, "refusals counted: {n}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no max_connections refusals in /metrics"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The relay's log is read on another thread: wait for the line, then
    // check it came once.
    let logged = || {
        r.log
            .snapshot()
            .iter()
            .filter(|l| l.contains("max_connections open: refusing"))
            .count()
    };
    let deadline = Instant::now() + WAIT;
    while logged() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        logged(),
        1,
        "logged once while full; the log's tail:\n{}",
        r.log.tail(30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_the_maximum_forget_the_oldest_soul() {
    let r = relay("max-subs", &["--max-subscriptions-per-connection", "2"]);
    let sub = RawClient::connect(&r.addr, "subscriber").await;
    let writer = RawClient::connect(&r.addr, "writer").await;
    let souls: Vec<String> = (0..3).map(|i| soul(&format!("max-subs-{i}"))).collect();
    for s in &souls {
        sub.get_answer(s, None, WAIT, "a get").await;
    }
    // Three souls asked for, two kept: the first was forgotten, and counted.
    let evicted = metrics(&r.addr).await;
    assert_eq!(
        evicted.get("gun_subscriptions_evicted_total").copied(),
        Some(1.0),
        "one subscription forgotten, in /metrics"
    );
    let (status, stats) = common::http_get(&r.addr, "/stats")
        .await
        .expect("/stats answered");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("/stats is JSON");
    assert_eq!(
        stats["now"]["subscriptions_evicted"],
        json!(1),
        "one subscription forgotten, in /stats: {stats}"
    );
    writer
        .put_acked(&souls[0], &[("v", json!("old"))], WAIT, "put 0")
        .await;
    writer
        .put_acked(&souls[2], &[("v", json!("new"))], WAIT, "put 2")
        .await;
    let pushed = |s: &str| {
        let s = s.to_owned();
        move |m: &serde_json::Value| m["@"].is_null() && m["put"][s.as_str()].is_object()
    };
    assert!(
        sub.wait_for(WAIT, pushed(&souls[2])).await.is_some(),
        "the newest subscription is pushed to"
    );
    assert!(
        sub.messages().iter().all(|m| !pushed(&souls[0])(m)),
        "the oldest soul was still pushed past --max-subscriptions-per-connection 2"
    );
}
