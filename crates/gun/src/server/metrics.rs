//! `GET /metrics`: the relay's counters in the Prometheus (OpenMetrics) text
//! exposition format, written with `prometheus-client`.
//!
//! Nothing here is on the hot path: the counters are the engine's and the
//! WebSocket server's atomics, read once per scrape into a [`Scrape`] that a
//! fresh registry encodes.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use gun_core::HistogramSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Refusals counted by the relay's own limits (the validators it adds); the
/// WebSocket server counts its own.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    /// Puts refused for holding more keys than `--max-put-keys`.
    pub(super) put_size: Arc<AtomicU64>,
    /// Writes refused by `--allow-public-space false`.
    pub(super) public_space: Arc<AtomicU64>,
}

/// Everything one scrape reports, read from the counters.
#[derive(Debug, Default)]
pub(super) struct Scrape {
    pub(super) connections: u64,
    pub(super) connections_total: u64,
    pub(super) messages_in: u64,
    pub(super) messages_out: u64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) puts: u64,
    pub(super) gets: u64,
    pub(super) acks: u64,
    pub(super) keys_accepted: u64,
    pub(super) rejected: Vec<(String, u64)>,
    pub(super) refused: Vec<(&'static str, u64)>,
    pub(super) latency: Option<HistogramSnapshot>,
    pub(super) store_bytes: u64,
    pub(super) store_souls: u64,
    pub(super) dedup_entries: u64,
    pub(super) cached_souls: u64,
    pub(super) subscriptions_evicted: u64,
    pub(super) send_queue_drops: u64,
    pub(super) slow_consumer_disconnects: u64,
    pub(super) uptime_secs: u64,
}

impl Scrape {
    /// The exposition text.
    pub(super) fn encode(self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("gun");
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn labelled(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(impl AsRef<str>, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (reason, v) in rows {
        let labels = [("reason", reason.as_ref())];
        let fm = m.encode_family(&labels)?;
        ConstCounter::new(*v).encode(fm)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let e = &mut enc;
        gauge(
            e,
            "connections",
            "WebSocket connections open now.",
            self.connections,
        )?;
        counter(
            e,
            "connections_accepted",
            "WebSocket connections accepted since start.",
            self.connections_total,
        )?;
        counter(
            e,
            "messages_in",
            "WebSocket data messages received (a frame holding a batch counts once).",
            self.messages_in,
        )?;
        counter(
            e,
            "messages_out",
            "WebSocket data messages sent, keep-alives included.",
            self.messages_out,
        )?;
        counter(
            e,
            "bytes_in",
            "WebSocket payload bytes received.",
            self.bytes_in,
        )?;
        counter(
            e,
            "bytes_out",
            "WebSocket payload bytes sent.",
            self.bytes_out,
        )?;
        counter(e, "puts", "Put messages received from peers.", self.puts)?;
        counter(e, "gets", "Get messages received from peers.", self.gets)?;
        counter(e, "acks", "ok acks sent for peers' puts.", self.acks)?;
        counter(
            e,
            "keys_accepted",
            "Keys accepted by HAM and stored.",
            self.keys_accepted,
        )?;
        labelled(
            e,
            "rejected",
            "Writes refused with an err ack, by its text (validators, limits, the store).",
            &self.rejected,
        )?;
        labelled(
            e,
            "refused",
            "Refusals by the relay's limits, by limit.",
            &self.refused,
        )?;
        if let Some(h) = &self.latency {
            let unit = Unit::Seconds;
            let m = e.encode_descriptor(
                "put_ack_latency",
                "Time from a peer's put being dispatched to its ok ack being handed to the mesh.",
                Some(&unit),
                MetricType::Histogram,
            )?;
            // The encoder wants counts per bucket; the snapshot is cumulative.
            let mut prev = 0;
            let buckets: Vec<(f64, u64)> = h
                .buckets
                .iter()
                .map(|&(le, n)| {
                    let own = n.saturating_sub(prev);
                    prev = n;
                    (le, own)
                })
                .collect();
            m_histogram(m, h.sum_secs, h.count, &buckets)?;
        }
        gauge(
            e,
            "store_bytes",
            "Bytes the store holds (sampled every second).",
            self.store_bytes,
        )?;
        gauge(
            e,
            "store_souls",
            "Souls the store holds (sampled every second).",
            self.store_souls,
        )?;
        gauge(
            e,
            "dedup_entries",
            "Message ids in the mesh's dedup table.",
            self.dedup_entries,
        )?;
        gauge(
            e,
            "cached_souls",
            "Souls in the engine's cache.",
            self.cached_souls,
        )?;
        counter(
            e,
            "subscriptions_evicted",
            "Subscriptions forgotten because a connection went past --max-subscriptions-per-connection (its oldest soul first).",
            self.subscriptions_evicted,
        )?;
        counter(
            e,
            "send_queue_drops",
            "Frames not queued for a connection: its send queue was full, or it was closing.",
            self.send_queue_drops,
        )?;
        counter(
            e,
            "slow_consumer_disconnects",
            "Connections closed because their send queue was full.",
            self.slow_consumer_disconnects,
        )?;
        gauge(
            e,
            "uptime_seconds",
            "Seconds since the relay started.",
            self.uptime_secs,
        )?;
        Ok(())
    }
}

fn m_histogram(
    mut m: prometheus_client::encoding::MetricEncoder<'_>,
    sum: f64,
    count: u64,
    buckets: &[(f64, u64)],
) -> std::fmt::Result {
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, buckets, None)
}
