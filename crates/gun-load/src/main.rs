//! `gun-load`: opens many Gun wire clients against a relay and measures what one
//! connection costs it (issue 15's connection benchmark, run by `benches/conns.sh`).
//!
//! Each client is a raw WebSocket connection (as a Gun.js browser's socket, without
//! Gun.js) that subscribes to one soul of its own and one soul shared by all clients
//! (two Gun `get`s), then reads. Clients are spread over several `127.0.0.x` source
//! addresses (bound before connecting) so that 100k connections do not run out of
//! ephemeral ports. Once connected and quiet, one more connection writes to the shared
//! soul and every client records when the write reaches it.
//!
//! Reported (one human summary, then a `RESULT {json}` line):
//! * connections opened, failed, closed by the relay (with the close reasons);
//! * accept rate: seconds and connections per second for each block of `--block`;
//! * relay RSS (`/proc/PID/status` `VmRSS` of `--relay-pid`) before, with every client
//!   idle and subscribed, and after the write; RSS per connection;
//! * forwarded gets per client: `get` messages clients received that they did not send;
//! * fan-out: time from the write to its arrival at each client, p50/p99/max, and how
//!   many clients it reached.
//!
//! The connect phase stops early when no connection completed for `--stall-secs`
//! (a relay that stops accepting), or after `--max-connect-secs`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// Opens N Gun wire clients against a relay; measures accept rate, relay RSS per
/// connection, forwarded gets per client and the fan-out of one write.
#[derive(Debug, Parser)]
#[command(name = "gun-load", about)]
struct Args {
    /// WebSocket URL of the relay, ws://127.0.0.1:PORT/gun (an IPv4 address).
    #[arg(long)]
    url: String,
    /// Clients to open.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Source addresses: clients bind to 127.0.0.2 .. 127.0.0.(1+N) in turn.
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Connections being opened at once (TCP connect + WebSocket handshake).
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Process id of the relay, for its RSS.
    #[arg(long)]
    relay_pid: Option<u32>,
    /// Accept rate is reported per this many connections.
    #[arg(long, default_value_t = 10_000)]
    block: usize,
    /// Stop opening connections when none completed for this long.
    #[arg(long, default_value_t = 60)]
    stall_secs: u64,
    /// Stop opening connections after this long.
    #[arg(long, default_value_t = 900)]
    max_connect_secs: u64,
    /// Time given to one connection's TCP connect and handshake.
    #[arg(long, default_value_t = 60)]
    handshake_secs: u64,
    /// After connecting, wait until no frame arrived for this long (at most `--settle-max-secs`).
    #[arg(long, default_value_t = 3)]
    settle_secs: u64,
    /// Longest wait for the clients to become quiet.
    #[arg(long, default_value_t = 120)]
    settle_max_secs: u64,
    /// Longest wait for the write to reach every client.
    #[arg(long, default_value_t = 30)]
    fanout_secs: u64,
    /// Open the connections without subscribing (to measure a bare connection).
    #[arg(long)]
    no_subscribe: bool,
    /// Name of the relay in the report.
    #[arg(long, default_value = "relay")]
    label: String,
    /// Run id (souls and the write's marker are named after it): give several
    /// instances the same one so that their clients share the shared soul.
    #[arg(long)]
    run_id: Option<String>,
    /// Several instances (each against its own relay of a fleet) meet in this
    /// directory: each says it is settled there, the writer waits for
    /// `--instances` of them, writes, and leaves the write's time for the others.
    #[arg(long)]
    sync_dir: Option<std::path::PathBuf>,
    /// Instances that meet in `--sync-dir` (the writer's included).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Do not write: take the write's time from `--sync-dir` (another instance writes).
    #[arg(long)]
    follower: bool,
}

/// The write's marker: clients look for it in every frame once it is set.
static TOKEN: OnceLock<String> = OnceLock::new();

#[derive(Default)]
struct Totals {
    connected: AtomicUsize,
    failed: AtomicUsize,
    closed: AtomicUsize,
    frames_in: AtomicU64,
    /// `get` messages received that the client did not send.
    foreign_gets: AtomicU64,
    /// Clients the write reached.
    reached: AtomicUsize,
    /// Time of the last frame any client received, in ms since start.
    last_frame_ms: AtomicU64,
    /// (connections, ms since start) at each block boundary.
    blocks: Mutex<Vec<(usize, u64)>>,
    close_reasons: Mutex<BTreeMap<String, usize>>,
    fail_reasons: Mutex<BTreeMap<String, usize>>,
    /// When the write arrived, per client, in micros since the Unix epoch (0: not yet;
    /// absolute, so that instances of a fleet run compare with the writer's time).
    arrivals: Vec<AtomicU64>,
}

struct Run {
    args: Args,
    dest: SocketAddr,
    start: Instant,
    run_id: String,
    shared_soul: String,
    totals: Totals,
    write_at: OnceLock<Instant>,
    stop: AtomicBool,
}

impl Run {
    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

fn bump(map: &Mutex<BTreeMap<String, usize>>, key: String) {
    *map.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default() += 1;
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: this process holds as many connections as the relay.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn open(run: &Run, source: Ipv4Addr) -> Result<WebSocketStream<TcpStream>, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let tcp = sock
        .connect(run.dest)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (ws, _) = client_async_with_config(run.args.url.as_str(), tcp, Some(ws_config()))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// Counts `get` messages in `text` whose `#` is not one of `own`.
fn foreign_gets(text: &str, own: &[String; 2]) -> u64 {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return 0;
    };
    let one = |m: &Value| {
        u64::from(
            m.get("get").is_some()
                && !m
                    .get("#")
                    .and_then(Value::as_str)
                    .is_some_and(|id| own.iter().any(|o| o == id)),
        )
    };
    match &v {
        Value::Array(ms) => ms.iter().map(one).sum(),
        m => one(m),
    }
}

async fn client(run: Arc<Run>, i: usize, permit: tokio::sync::OwnedSemaphorePermit) {
    let source = Ipv4Addr::new(
        127,
        0,
        0,
        2 + (i % usize::from(run.args.sources.max(1))) as u8,
    );
    let handshake = Duration::from_secs(run.args.handshake_secs);
    let ws = match tokio::time::timeout(handshake, open(&run, source)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            run.totals.failed.fetch_add(1, Ordering::Relaxed);
            bump(&run.totals.fail_reasons, e);
            return;
        }
        Err(_) => {
            run.totals.failed.fetch_add(1, Ordering::Relaxed);
            bump(&run.totals.fail_reasons, "handshake timed out".into());
            return;
        }
    };
    drop(permit);
    let n = run.totals.connected.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_multiple_of(run.args.block) {
        run.totals
            .blocks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((n, run.ms()));
    }
    // Ids and the own soul name the instance too: the instances of a fleet run share
    // the run id, and a get id seen twice is a duplicate to the relays.
    let label = &run.args.label;
    let own = [
        format!("c{}.{label}.{i}a", run.run_id),
        format!("c{}.{label}.{i}b", run.run_id),
    ];
    let mut ws = ws;
    let gets = [
        json!({"#": own[0], "get": {"#": format!("load/{}/{label}/c{i}", run.run_id)}}),
        json!({"#": own[1], "get": {"#": run.shared_soul}}),
    ];
    for g in gets {
        if run.args.no_subscribe {
            break;
        }
        if ws.send(Message::text(g.to_string())).await.is_err() {
            run.totals.closed.fetch_add(1, Ordering::Relaxed);
            bump(&run.totals.close_reasons, "send failed".into());
            return;
        }
    }
    // A client that subscribed after the write would read the written value in its get's
    // answer: not a fan-out delivery.
    let mut reached = run.write_at.get().is_some();
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(frame)) => {
                let why = frame.map_or_else(
                    || "close without reason".to_owned(),
                    |f| format!("{} {}", u16::from(f.code), f.reason),
                );
                run.totals.closed.fetch_add(1, Ordering::Relaxed);
                bump(&run.totals.close_reasons, why);
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                run.totals.closed.fetch_add(1, Ordering::Relaxed);
                bump(&run.totals.close_reasons, format!("read: {e}"));
                return;
            }
        };
        run.totals.frames_in.fetch_add(1, Ordering::Relaxed);
        if text.as_str() != "[]" {
            // Keep-alives (`[]`, every 20 s per connection) are not traffic still settling.
            run.totals
                .last_frame_ms
                .fetch_max(run.ms(), Ordering::Relaxed);
        }
        if !reached
            && let Some(tok) = TOKEN.get()
            && text.contains(tok.as_str())
        {
            reached = true;
            run.totals.arrivals[i].store(unix_us(), Ordering::Relaxed);
            run.totals.reached.fetch_add(1, Ordering::Relaxed);
        }
        if text.contains("\"get\"") {
            let n = foreign_gets(&text, &own);
            run.totals.foreign_gets.fetch_add(n, Ordering::Relaxed);
        }
    }
    run.totals.closed.fetch_add(1, Ordering::Relaxed);
    bump(&run.totals.close_reasons, "end of stream".into());
}

/// Micros since the Unix epoch (comparable between processes on one machine).
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Polls `done` every 20 ms for at most `secs`; answers whether it came true.
async fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() >= Duration::from_secs(secs) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[idx] as f64 / 1000.0)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gun-load: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gun-load: {e}");
            std::process::ExitCode::FAILURE
        }
    };
    // Closing 100k sockets one by one takes longer than the run's last step.
    rt.shutdown_background();
    code
}

async fn run(args: Args) -> Result<(), String> {
    let nofile = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("cannot raise RLIMIT_NOFILE: {e}"))?;
    eprintln!("gun-load: file descriptor limit {nofile}");
    if nofile < args.conns as u64 + 64 {
        return Err(format!(
            "RLIMIT_NOFILE is {nofile}, too low for {} connections: raise the hard limit (ulimit -Hn)",
            args.conns
        ));
    }
    let dest: SocketAddr = args
        .url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("--url {} is not ws://IP:PORT/PATH", args.url))?;
    let run_id = args.run_id.clone().unwrap_or_else(|| {
        format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        )
    });
    if args.follower && args.sync_dir.is_none() {
        return Err(
            "--follower needs --sync-dir (where the writer leaves the write's time)".into(),
        );
    }
    // The write's marker: no frame holds it before the write.
    let _ = TOKEN.set(format!("fan-{run_id}"));
    let conns = args.conns;
    let run = Arc::new(Run {
        shared_soul: format!("load/{run_id}/shared"),
        run_id,
        dest,
        start: Instant::now(),
        totals: Totals {
            arrivals: (0..conns).map(|_| AtomicU64::new(0)).collect(),
            ..Totals::default()
        },
        write_at: OnceLock::new(),
        stop: AtomicBool::new(false),
        args,
    });
    let rss_start = rss_kib(run.args.relay_pid);

    // The writer connects first, from 127.0.0.1.
    let mut writer = if run.args.follower {
        None
    } else {
        Some(
            open(&run, Ipv4Addr::LOCALHOST)
                .await
                .map_err(|e| format!("writer: {e}"))?,
        )
    };

    // Connect phase.
    let slots = Arc::new(Semaphore::new(run.args.in_flight.max(1)));
    let watchdog = tokio::spawn({
        let run = run.clone();
        async move {
            let mut last = 0;
            let mut last_change = Instant::now();
            let mut last_report = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if last_report.elapsed() >= Duration::from_secs(10) {
                    last_report = Instant::now();
                    eprintln!(
                        "gun-load: {} connected, {} failed, {:.0} s",
                        run.totals.connected.load(Ordering::Relaxed),
                        run.totals.failed.load(Ordering::Relaxed),
                        run.start.elapsed().as_secs_f64()
                    );
                }
                let now = run.totals.connected.load(Ordering::Relaxed)
                    + run.totals.failed.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    last_change = Instant::now();
                }
                if last_change.elapsed() >= Duration::from_secs(run.args.stall_secs) {
                    eprintln!(
                        "gun-load: no connection completed for {} s; stopping at {}",
                        run.args.stall_secs,
                        run.totals.connected.load(Ordering::Relaxed)
                    );
                    run.stop.store(true, Ordering::Relaxed);
                    return;
                }
                if run.start.elapsed() >= Duration::from_secs(run.args.max_connect_secs) {
                    eprintln!("gun-load: --max-connect-secs reached; stopping");
                    run.stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    });
    let connect_start = Instant::now();
    let mut launched: usize = 0;
    for i in 0..conns {
        let permit = loop {
            if run.stop.load(Ordering::Relaxed) {
                break None;
            }
            match tokio::time::timeout(Duration::from_millis(250), slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => break Some(p),
                Ok(Err(_)) => break None,
                Err(_) => {}
            }
        };
        let Some(permit) = permit else { break };
        tokio::spawn(client(run.clone(), i, permit));
        launched += 1;
        if launched.is_multiple_of(10_000) {
            eprintln!(
                "gun-load: {launched} launched, {} connected, {} failed, {:.1} s",
                run.totals.connected.load(Ordering::Relaxed),
                run.totals.failed.load(Ordering::Relaxed),
                connect_start.elapsed().as_secs_f64()
            );
        }
    }
    // Wait for the handshakes under way (all permits back), unless stopped.
    while !run.stop.load(Ordering::Relaxed) && slots.available_permits() < run.args.in_flight.max(1)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watchdog.abort();
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let connected = run.totals.connected.load(Ordering::Relaxed);
    eprintln!(
        "gun-load: {connected} connected ({} failed) in {connect_secs:.1} s",
        run.totals.failed.load(Ordering::Relaxed)
    );

    // Settle: until no client received anything for --settle-secs.
    let settle_start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let quiet = run
            .ms()
            .saturating_sub(run.totals.last_frame_ms.load(Ordering::Relaxed));
        if quiet >= run.args.settle_secs * 1000
            || settle_start.elapsed() >= Duration::from_secs(run.args.settle_max_secs)
        {
            break;
        }
    }
    let settle_secs = settle_start.elapsed().as_secs_f64();
    let rss_idle = rss_kib(run.args.relay_pid);
    let gets_before_write = run.totals.foreign_gets.load(Ordering::Relaxed);
    // Handshakes still under way when the connect phase stopped may complete later.
    let open_before_write =
        run.totals.connected.load(Ordering::Relaxed) - run.totals.closed.load(Ordering::Relaxed);

    // A fleet run: say this instance is settled; the writer waits for all.
    if let Some(dir) = &run.args.sync_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("--sync-dir: {e}"))?;
        std::fs::write(dir.join(format!("ready.{}", run.args.label)), b"")
            .map_err(|e| format!("--sync-dir: {e}"))?;
        if writer.is_some() {
            let n = run.args.instances;
            let all = wait_until(run.args.settle_max_secs, || {
                std::fs::read_dir(dir).is_ok_and(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().starts_with("ready."))
                        .count()
                        >= n
                })
            })
            .await;
            if !all {
                eprintln!("gun-load: not every instance settled in time; writing anyway");
            }
        }
    }

    // One write to the shared soul (by the writer instance).
    let token = TOKEN.get().cloned().unwrap_or_default();
    let write_us = match writer.as_mut() {
        Some(writer) => {
            let state = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let soul = run.shared_soul.clone();
            let put = json!({
                "#": format!("w{}", run.run_id),
                "put": {soul.clone(): {"_": {"#": soul, ">": {"v": state}}, "v": token}}
            });
            let _ = run.write_at.set(Instant::now());
            let at = unix_us();
            writer
                .send(Message::text(put.to_string()))
                .await
                .map_err(|e| format!("writer: {e}"))?;
            if let Some(dir) = &run.args.sync_dir {
                let tmp = dir.join("write.tmp");
                std::fs::write(&tmp, at.to_string())
                    .and_then(|()| std::fs::rename(&tmp, dir.join("write")))
                    .map_err(|e| format!("--sync-dir: {e}"))?;
            }
            at
        }
        None => {
            let file = run.args.sync_dir.as_ref().map(|d| d.join("write"));
            let mut at = None;
            let wait = run.args.settle_max_secs + run.args.fanout_secs;
            wait_until(wait, || {
                at = file
                    .as_ref()
                    .and_then(|f| std::fs::read_to_string(f).ok())
                    .and_then(|t| t.trim().parse::<u64>().ok());
                at.is_some()
            })
            .await;
            at.ok_or("the writer instance left no write time in --sync-dir")?
        }
    };
    let fan_start = Instant::now();
    while run.totals.reached.load(Ordering::Relaxed) < open_before_write
        && fan_start.elapsed() < Duration::from_secs(run.args.fanout_secs)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rss_after = rss_kib(run.args.relay_pid);
    let mut arrivals: Vec<u64> = run
        .totals
        .arrivals
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .filter(|&us| us > 0)
        .map(|us| us.saturating_sub(write_us).max(1))
        .collect();
    arrivals.sort_unstable();
    let reached = arrivals.len();
    if let Some(dir) = &run.args.sync_dir {
        // Every client's delay, for percentiles over the whole fleet.
        let text: String = arrivals.iter().map(|us| format!("{us}\n")).collect();
        std::fs::write(dir.join(format!("arrivals.{}", run.args.label)), text)
            .map_err(|e| format!("--sync-dir: {e}"))?;
    }

    let blocks = run
        .totals
        .blocks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut prev = (0usize, 0u64);
    let mut rates = Vec::new();
    for &(n, ms) in &blocks {
        let secs = ms.saturating_sub(prev.1) as f64 / 1000.0;
        rates.push(json!({
            "upTo": n,
            "secs": (secs * 100.0).round() / 100.0,
            "perSec": ((n - prev.0) as f64 / secs.max(0.001)).round(),
        }));
        prev = (n, ms);
    }
    let per_conn = |rss: Option<u64>| {
        Some(((rss? as f64 - rss_start? as f64) * 1024.0 / connected.max(1) as f64).round())
    };
    let result = json!({
        "relay": run.args.label,
        "runId": run.run_id,
        "writer": !run.args.follower,
        "requested": conns,
        "connected": connected,
        "failed": run.totals.failed.load(Ordering::Relaxed),
        "closedByRelay": run.totals.closed.load(Ordering::Relaxed),
        "closeReasons": *run.totals.close_reasons.lock().unwrap_or_else(PoisonError::into_inner),
        "failReasons": *run.totals.fail_reasons.lock().unwrap_or_else(PoisonError::into_inner),
        "connectSecs": (connect_secs * 10.0).round() / 10.0,
        "acceptPerSec": (connected as f64 / connect_secs.max(0.001)).round(),
        "acceptBlocks": rates,
        "settleSecs": (settle_secs * 10.0).round() / 10.0,
        "rssStartMB": rss_start.map(|k| (k as f64 / 102.4).round() / 10.0),
        "rssIdleMB": rss_idle.map(|k| (k as f64 / 102.4).round() / 10.0),
        "rssAfterWriteMB": rss_after.map(|k| (k as f64 / 102.4).round() / 10.0),
        "rssPerConnBytes": per_conn(rss_idle),
        "rssPerConnAfterWriteBytes": per_conn(rss_after),
        "forwardedGets": gets_before_write,
        "forwardedGetsPerClient": ((gets_before_write as f64 / connected.max(1) as f64) * 100.0).round() / 100.0,
        "framesIn": run.totals.frames_in.load(Ordering::Relaxed),
        "fanout": {
            "openAtWrite": open_before_write,
            "reached": reached,
            "p50ms": percentile(&arrivals, 0.50),
            "p99ms": percentile(&arrivals, 0.99),
            "maxMs": arrivals.last().map(|&us| us as f64 / 1000.0),
        },
    });
    eprintln!(
        "gun-load: {}: {connected} connected at {:.0}/s, RSS/conn {:?} B, forwarded gets/client {:.2}, fan-out {reached}/{open_before_write} p50 {:?} ms p99 {:?} ms",
        run.args.label,
        connected as f64 / connect_secs.max(0.001),
        per_conn(rss_idle),
        gets_before_write as f64 / connected.max(1) as f64,
        percentile(&arrivals, 0.50),
        percentile(&arrivals, 0.99),
    );
    println!("RESULT {result}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_gets_the_client_did_not_send() {
        let own = ["c1a".to_owned(), "c1b".to_owned()];
        assert_eq!(foreign_gets(r##"{"#":"x","get":{"#":"s"}}"##, &own), 1);
        assert_eq!(foreign_gets(r##"{"#":"c1a","get":{"#":"s"}}"##, &own), 0);
        assert_eq!(
            foreign_gets(
                r##"[{"#":"x","get":{"#":"s"}},{"#":"y","put":{}},{"#":"z","get":{}}]"##,
                &own
            ),
            2
        );
        assert_eq!(foreign_gets("not json \"get\"", &own), 0);
    }

    #[test]
    fn percentiles_of_sorted_micros() {
        let v: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
