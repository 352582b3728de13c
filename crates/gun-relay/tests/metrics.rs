//! `GET /metrics`: a relay's counters in the Prometheus text exposition
//! format. A raw WebSocket client puts and gets through the relay; the
//! scrape must be valid exposition text and show the traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{RawClient, RelayProc, RelaySpec, http_get, metrics, now_ms, soul};
use serde_json::json;

const N: usize = 20;

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in /metrics: {:#?}", m.keys()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_puts_gets_acks_and_the_store() {
    let relay = RelayProc::start(RelaySpec::new("metrics"));
    let client = RawClient::connect(&relay.addr, "client").await;
    let base = soul("metrics");
    for i in 0..N {
        let ack = client
            .put_acked(
                &format!("{base}-{i}"),
                &[("n", json!(i))],
                Duration::from_secs(10),
                "put",
            )
            .await;
        assert!(ack["err"].is_null(), "ack: {ack}");
    }
    for i in 0..N {
        let node = client
            .get_node(&format!("{base}-{i}"), Duration::from_secs(10))
            .await
            .expect("get answered with data");
        assert_eq!(node["n"], json!(i));
    }
    // A `#` (content-addressed) key that is not the hash of its value:
    // refused by SEA, counted by reason.
    let id = client.put("#", &[("not-the-hash", json!("x"))], now_ms());
    let nack = client
        .wait_for(Duration::from_secs(10), |m| m["@"] == id.as_str())
        .await
        .expect("an answer to the refused put");
    assert!(nack["err"].is_string(), "{nack}");

    // Store figures are sampled every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = metrics(&relay.addr).await;
        if value(&m, "gun_store_souls") >= 1.0 || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let n = N as f64;
    assert!(value(&m, "gun_connections") >= 1.0);
    assert!(value(&m, "gun_connections_accepted_total") >= 1.0);
    assert!(value(&m, "gun_puts_total") >= n);
    assert!(value(&m, "gun_gets_total") >= n);
    assert!(value(&m, "gun_acks_total") >= n);
    assert!(value(&m, "gun_keys_accepted_total") >= n);
    assert!(value(&m, "gun_messages_in_total") >= 2.0 * n);
    assert!(value(&m, "gun_messages_out_total") >= 2.0 * n);
    assert!(value(&m, "gun_bytes_in_total") > 0.0);
    assert!(value(&m, "gun_put_ack_latency_seconds_count") >= n);
    assert!(value(&m, "gun_put_ack_latency_seconds_sum") > 0.0);
    assert!(value(&m, "gun_put_ack_latency_seconds_bucket{le=\"+Inf\"}") >= n);
    assert!(value(&m, "gun_store_souls") >= 1.0);
    assert!(value(&m, "gun_store_bytes") >= 0.0);
    assert!(value(&m, "gun_dedup_entries") >= 1.0);
    assert_eq!(value(&m, "gun_send_queue_drops_total"), 0.0);
    assert_eq!(value(&m, "gun_slow_consumer_disconnects_total"), 0.0);
    let rejected: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("gun_rejected_total{reason="))
        .map(|(_, v)| v)
        .sum();
    assert!(rejected >= 1.0, "the refused put is counted: {m:#?}");
    assert!(m.contains_key("gun_refused_total{reason=\"frame_size\"}"));

    // The dashboard still reads /stats.
    let (status, body) = http_get(&relay.addr, "/stats").await.expect("/stats");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(body.trim()).expect("stats JSON");
    assert!(stats["now"]["puts_in"].as_u64().unwrap() >= N as u64);
}

#[test]
fn the_parser_refuses_what_is_not_exposition_text() {
    let ok = "# HELP gun_x An x.\n# TYPE gun_x counter\ngun_x_total 3\n# EOF\n";
    assert_eq!(common::parse_metrics(ok)["gun_x_total"], 3.0);
    for bad in [
        "gun_x_total 3\n# EOF\n",                           // no # TYPE
        "# TYPE gun_x counter\ngun_x_total three\n# EOF\n", // not a number
        "# TYPE gun_x counter\ngun_x_total 3\n",            // no # EOF
        "# TYPE gun_x counter\n# BLAH\ngun_x_total 3\n# EOF\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| common::parse_metrics(bad)).is_err(),
            "accepted: {bad:?}"
        );
    }
}
