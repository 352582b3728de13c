//! `gun-rtc-peer`: a gun-rs peer on a memory store that dials relays over
//! websockets and joins a WebRTC room, driven by lines on stdin and reporting
//! JSON lines on stdout. For trying WebRTC by hand and for the tests.
//!
//! ```text
//! gun-rtc-peer --peer ws://127.0.0.1:8765/gun --room demo [--udp 127.0.0.1:0]
//!              [--ice stun:host:port]... [--no-ice] [--max-peers N] [--log info]
//! ```
//!
//! Commands (one per line):
//! * `watch SOUL`: report every change of SOUL as
//!   `{"ev":"change","soul":…,"key":…,"value":…,"via":"rtc"|"ws"|"local"}`;
//! * `put SOUL KEY JSON`: write one value, report `{"ev":"put","soul":…,"key":…}`;
//! * `peers`: report `{"ev":"peers","connected":[pids…]}`;
//! * `announce`: announce our pid in the room again;
//! * `quit` (or end of input): close and exit.
//!
//! Also reported: `{"ev":"ready","pid":…,"room":…}` at start and
//! `{"ev":"rtc","connected":[…]}` whenever the set of open data channels changes.
//!
//! Built on the `gun` facade (`Gun::try_new`, then `gun::Rtc::start` once the
//! relays are connected), so it is wired exactly as an application is. Feature `webrtc` (off by default, so a
//! workspace build does not build the `webrtc` crate):
//! `cargo build -p gun-rtc-peer --features webrtc`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use gun::{Graph, Gun, GunOptions, Rtc, RtcOptions, Soul, Value};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

struct Args {
    peers: Vec<String>,
    rtc: RtcOptions,
    log: String,
}

fn usage() -> &'static str {
    "usage: gun-rtc-peer --peer URL... --room ROOM [--udp ADDR]... [--ice URL]... [--no-ice] [--max-peers N] [--log FILTER]"
}

fn parse_args() -> Result<Args, String> {
    let mut peers = Vec::new();
    let mut rtc = RtcOptions::new("");
    let mut udp = Vec::new();
    let mut ice: Option<Vec<String>> = None;
    let mut log = "warn".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--peer" => peers.push(val("--peer")?),
            "--room" => rtc.room = val("--room")?,
            "--udp" => udp.push(val("--udp")?),
            "--ice" => ice.get_or_insert_with(Vec::new).push(val("--ice")?),
            "--no-ice" => ice = Some(Vec::new()),
            "--max-peers" => {
                rtc.max_peers = val("--max-peers")?
                    .parse()
                    .map_err(|e| format!("--max-peers: {e}"))?
            }
            "--log" => log = val("--log")?,
            "-h" | "--help" => return Err(usage().to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if !udp.is_empty() {
        rtc.udp_addrs = udp;
    }
    if let Some(ice) = ice {
        rtc.ice_servers = ice;
    }
    Ok(Args { peers, rtc, log })
}

/// The pids of the open data channels.
fn rtc_connected(rtc: &Rtc) -> Vec<String> {
    rtc.connected()
}

fn say(v: serde_json::Value) {
    println!("{v}");
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gun-rtc-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let wanted = args.peers.len();
    let gun = Gun::try_new(GunOptions {
        peers: args.peers,
        ..GunOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let engine = gun.engine().clone();
    // Join the room once the relays are there, 10 s at most: announcing
    // before the link is up races the other peer's first read, and through a
    // Gun.js relay with AXE the offer answering the re-announcement that race
    // causes does not come back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine.peer_count() < wanted && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rtc = Arc::new(Rtc::start(engine.clone(), args.rtc).map_err(|e| e.to_string())?);
    say(json!({"ev": "ready", "pid": rtc.pid(), "room": rtc.room()}));
    {
        let rtc = rtc.clone();
        tokio::spawn(async move {
            let mut last: Vec<String> = Vec::new();
            loop {
                let now = rtc_connected(&rtc);
                if now != last {
                    say(json!({"ev": "rtc", "connected": now}));
                    last = now;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        let mut parts = line.splitn(4, ' ');
        match parts.next().unwrap_or("") {
            "" => {}
            "watch" => {
                let Some(soul) = parts.next().and_then(|s| Soul::new(s).ok()) else {
                    say(json!({"ev": "error", "error": "watch SOUL"}));
                    continue;
                };
                let (_, mut rx) = engine.listen(&soul);
                engine.subscribe_remote(&soul, None);
                let rtc = rtc.clone();
                let eng = engine.clone();
                tokio::spawn(async move {
                    while let Some(ch) = rx.recv().await {
                        let via = match ch.origin.peer() {
                            None => "local",
                            Some(peer) => {
                                let pid = eng.peer_pid(peer);
                                let is_rtc = pid
                                    .as_deref()
                                    .is_some_and(|p| rtc_connected(&rtc).iter().any(|c| c == p));
                                if is_rtc { "rtc" } else { "ws" }
                            }
                        };
                        for k in &ch.keys {
                            let value = ch
                                .node
                                .value(k)
                                .map(Value::to_json)
                                .unwrap_or(serde_json::Value::Null);
                            say(json!({"ev": "change", "soul": ch.node.soul().as_str(),
                                "key": &**k, "value": value, "via": via}));
                        }
                    }
                });
                say(json!({"ev": "watching", "soul": soul.as_str()}));
            }
            "put" => {
                let (Some(soul), Some(key), Some(text)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    say(json!({"ev": "error", "error": "put SOUL KEY JSON"}));
                    continue;
                };
                let parsed = serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| e.to_string())
                    .and_then(|v| Value::from_json(&v).map_err(|e| e.to_string()));
                let (Ok(soul), Ok(value)) = (Soul::new(soul), parsed) else {
                    say(json!({"ev": "error", "error": "bad soul or value"}));
                    continue;
                };
                let mut g = Graph::new();
                if let Err(e) = g.put(soul.clone(), key, engine.next_state(), value) {
                    say(json!({"ev": "error", "error": e.to_string()}));
                    continue;
                }
                match engine.put_local(g, &Default::default()).await {
                    Ok(_) => say(json!({"ev": "put", "soul": soul.as_str(), "key": key})),
                    Err(e) => say(json!({"ev": "error", "error": e.to_string()})),
                }
            }
            "peers" => say(json!({"ev": "peers", "connected": rtc.connected()})),
            "announce" => match rtc.announce().await {
                Ok(()) => say(json!({"ev": "announced"})),
                Err(e) => say(json!({"ev": "error", "error": e.to_string()})),
            },
            "quit" => break,
            other => say(json!({"ev": "error", "error": format!("unknown command {other:?}")})),
        }
    }
    rtc.close().await;
    // A Gun.js relay without radisk never acks: do not wait long for it.
    let _ = gun.shutdown_within(Duration::from_secs(1)).await;
    Ok(())
}
