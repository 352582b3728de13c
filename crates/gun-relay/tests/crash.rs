//! Crash test ("Durable storage", item 4): for each durable store, clients
//! write as fast as acks come back, the relay is SIGKILLed at a random moment
//! (0–300 ms after the first ack of the round, so every kill lands while acks
//! are flowing, whatever the machine's load), restarted on the same directory
//! and port, and every put it had acked must read back with exactly its values
//! and states. A filler writer keeps overwriting one node with 512 KiB values,
//! so the file store compacts every few rounds and kills land in compactions.
//! The store must open without repair: no panic, no ERROR (a torn journal tail
//! is a WARN). Repeated [`KILLS`] times per store; a SUMMARY line per store.
//!
//! SIGKILL tests process crashes: the page cache survives, so this checks that
//! an ack is sent only after the write reached the OS and that recovery finds
//! it. Power loss additionally relies on `fsync`, which both stores call
//! before acking (the file store `sync_data` per group commit, sled
//! `flush_async`).
//!
//! Environment: `CRASH_SEED` (u64) fixes the data and the kill delays (the
//! timing of acks cannot be fixed); `CRASH_KILLS` overrides the number of kills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};

use harness::{
    Found, Put, Relay, get_node, panicked, random_put, random_text, read_back_parallel, write,
    write_counted,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Kills per store.
const KILLS: usize = 20;
/// Concurrent writers.
const CLIENTS: usize = 4;
/// Un-acked puts per writer.
const WINDOW: usize = 32;
/// Fields per node.
const KEYS: usize = 10;
/// Longest random string value (characters).
const MAX_TEXT: usize = 48;
/// The last field is a long string of up to this many characters, so that the
/// file store's journal outgrows its 8 MiB compaction threshold during the
/// test and some kills land in or around a compaction.
const BLOB_TEXT: usize = 3000;
/// Bytes of each put of the filler writer, which keeps overwriting one key
/// with a big value: it grows the file store's journal (but not its snapshot)
/// quickly, so compactions (every ~8 MiB of journal) happen every epoch or two
/// and kills land in and around them; for sled it means large values.
const FILLER_BYTES: usize = 512 << 10;
/// The filler's soul and key.
const FILLER_SOUL: &str = "crash/filler";
/// Connections used to read back.
const READERS: usize = 4;
/// How long writers may take to see their first ack.
const FIRST_ACK_WAIT: Duration = Duration::from_secs(20);

/// The two tests share 2 cores; run them one after the other so the numbers
/// (and the kill timing) mean something.
static SERIAL: Mutex<()> = Mutex::new(());

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The filler put number `n` of `epoch`, at `state`.
fn filler(epoch: usize, n: u64, state: f64) -> Put {
    let head = format!("filler e{epoch} n{n} state {state} ");
    let text: String = head.chars().cycle().take(FILLER_BYTES).collect();
    Put {
        id: format!("fill{epoch}n{n}"),
        soul: FILLER_SOUL.into(),
        fields: vec![
            ("blob".into(), Value::String(text), state),
            ("n".into(), serde_json::json!(n), state),
        ],
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    acked: usize,
    verifications: usize,
    unacked: usize,
    unacked_present: usize,
    unacked_absent: usize,
    unacked_partial: usize,
    filler_acked: usize,
    compactions_interrupted: usize,
    warnings: Vec<String>,
}

/// The filler node must be the newest acked filler put, or a newer (unacked)
/// one, exactly.
fn check_filler(
    rt: &tokio::runtime::Runtime,
    port: u16,
    sent: &Mutex<HashMap<u64, Put>>,
    acked: Option<&Put>,
    epoch: usize,
) {
    let node = rt
        .block_on(get_node(port, FILLER_SOUL, Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("epoch {epoch}: reading the filler: {e}"));
    let Some(node) = node else {
        assert!(
            acked.is_none(),
            "epoch {epoch}: the acked filler put {:?} is gone",
            acked.map(|a| &a.id)
        );
        return;
    };
    let state = node
        .get("_")
        .and_then(|m| m.get(">"))
        .and_then(|s| s.get("blob"))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("epoch {epoch}: filler without a blob state"));
    if let Some(a) = acked {
        assert!(
            state >= a.fields[0].2,
            "epoch {epoch}: the filler went back from acked put {} (state {}) to state {state}",
            a.id,
            a.fields[0].2
        );
    }
    let sent = sent.lock().unwrap();
    let p = sent
        .get(&state.to_bits())
        .unwrap_or_else(|| panic!("epoch {epoch}: filler has a state no put had: {state}"));
    let f = harness::compare(p, Some(&node));
    assert_eq!(
        f,
        Found::Exact,
        "epoch {epoch}: filler differs from put {}",
        p.id
    );
}

/// Every file under `dir`, with its size.
fn files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let len = e.metadata().map_or(0, |m| m.len());
                let name = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.push((name, len));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn crash_sled() {
    crash("sled");
}

#[test]
fn crash_file() {
    crash("file");
}

fn crash(store: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = env_u64("CRASH_SEED").unwrap_or_else(rand::random);
    let kills = env_u64("CRASH_KILLS").map_or(KILLS, |k| k as usize);
    eprintln!("[crash {store}] seed {seed} (CRASH_SEED={seed} to reuse), {kills} kills");
    let mut rng = StdRng::seed_from_u64(seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut relay = Relay::start(store, dir.path(), 0).ready();
    let port = relay.port;
    let mut acked: Vec<Put> = Vec::new();
    let mut t = Tally::default();
    let mut write_time = Duration::ZERO;
    let mut verify_time = Duration::ZERO;
    let mut restart_time = Duration::ZERO;
    // Every filler put sent (by state), and the newest one acked.
    let filler_sent: Arc<Mutex<HashMap<u64, Put>>> = Arc::default();
    let mut filler_acked: Option<Put> = None;
    let mut filler_state = 0.0f64;
    // Sizes of the file store's snapshot seen after kills (a new size: a compaction ran).
    let mut snapshots = std::collections::BTreeSet::new();

    for epoch in 0..kills {
        // ---- write until killed
        let acks = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let mut rng = StdRng::seed_from_u64(seed ^ ((epoch as u64) << 8) ^ c as u64);
                let mut n = 0u64;
                let next = move || {
                    n += 1;
                    let id = format!("p{epoch}c{c}n{n}");
                    let soul = format!("crash/e{epoch}/c{c}/n{n}");
                    let mut p = random_put(&mut rng, id, soul, KEYS, MAX_TEXT);
                    if let Some(last) = p.fields.last_mut() {
                        last.1 = random_text(&mut rng, BLOB_TEXT).into();
                    }
                    Some(p)
                };
                let acks = Arc::clone(&acks);
                rt.spawn(async move {
                    write_counted(port, WINDOW, Duration::from_secs(30), next, &acks).await
                })
            })
            .collect();
        let filler_writer = {
            let sent = Arc::clone(&filler_sent);
            let mut n = 0u64;
            let mut state = filler_state;
            let next = move || {
                n += 1;
                // Strictly increasing, never in the future.
                state = now_ms().max(state + 0.001);
                let p = filler(epoch, n, state);
                sent.lock().unwrap().insert(state.to_bits(), p.clone());
                Some(p)
            };
            rt.spawn(write(port, 1, Duration::from_secs(30), next))
        };
        // Kill at a random moment while acks are coming in: once the first
        // ack arrived (so the relay is writing, whatever the machine's load),
        // after a random delay.
        let delay = Duration::from_millis(rng.random_range(0..=300));
        let w0 = Instant::now();
        while acks.load(Ordering::Relaxed) == 0 && w0.elapsed() < FIRST_ACK_WAIT {
            std::thread::sleep(Duration::from_millis(1));
        }
        let first_ack = w0.elapsed();
        std::thread::sleep(delay);
        let before_kill = relay.stderr();
        relay.kill();
        t.kills += 1;
        write_time += w0.elapsed();
        let mut new_acked = Vec::new();
        let mut unacked = Vec::new();
        for w in writers {
            let out = rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(30), w).await })
                .expect("writer did not notice the kill within 30 s")
                .expect("writer task");
            assert!(
                out.bad_acks.is_empty(),
                "epoch {epoch}: acks that are not ok:true: {:?}",
                out.bad_acks
            );
            new_acked.extend(out.acked);
            unacked.extend(out.unacked);
        }
        let out = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), filler_writer).await })
            .expect("filler did not notice the kill within 30 s")
            .expect("filler task");
        assert!(out.bad_acks.is_empty(), "filler acks: {:?}", out.bad_acks);
        t.filler_acked += out.acked.len();
        if let Ok(m) = std::fs::metadata(dir.path().join("file").join("snapshot")) {
            snapshots.insert(m.len());
        }
        for p in &out.acked {
            if filler_acked
                .as_ref()
                .is_none_or(|a| a.fields[0].2 < p.fields[0].2)
            {
                filler_acked = Some(p.clone());
            }
        }
        for p in out.acked.iter().chain(&out.unacked) {
            filler_state = filler_state.max(p.fields[0].2);
        }
        assert!(
            !panicked(&before_kill),
            "epoch {epoch}: relay panicked while writing:\n{before_kill}"
        );
        // Opened without repair: a crash may leave a torn journal tail (a
        // warning) but nothing the stores call damage (an error), including
        // the sled store's background check, which has run by now.
        let errors: Vec<&str> = before_kill
            .lines()
            .filter(|l| l.contains(" ERROR "))
            .collect();
        assert!(
            errors.is_empty(),
            "epoch {epoch}: the store reported damage after a crash:\n{}",
            errors.join("\n")
        );
        eprintln!(
            "[crash {store}] kill {}: {delay:?} after the first ack ({first_ack:.0?} after the writers started), {} puts acked, {} unacked",
            epoch + 1,
            new_acked.len(),
            unacked.len()
        );
        assert!(
            !new_acked.is_empty(),
            "epoch {epoch}: no put was acked within {FIRST_ACK_WAIT:?}"
        );
        t.acked += new_acked.len();
        t.unacked += unacked.len();
        acked.extend(new_acked);

        // ---- restart on the same directory and port: no manual repair
        let r0 = Instant::now();
        relay = Relay::start(store, dir.path(), port).ready();
        restart_time += r0.elapsed();
        let log = relay.stderr();
        assert!(!panicked(&log), "epoch {epoch}: panic on restart:\n{log}");
        t.compactions_interrupted += log.matches("left unfinished").count();
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("left unfinished"))
        {
            t.warnings.push(format!("restart {}: {line}", epoch + 1));
        }

        // ---- every acked put, exactly
        let v0 = Instant::now();
        let found = rt
            .block_on(read_back_parallel(
                port,
                &acked,
                READERS,
                &format!("v{epoch}"),
            ))
            .unwrap_or_else(|e| panic!("epoch {epoch}: reading back failed: {e}"));
        let lost: Vec<String> = acked
            .iter()
            .zip(&found)
            .filter(|(_, f)| **f != Found::Exact)
            .map(|(p, f)| format!("{} (put {}): {f:?}", p.soul, p.id))
            .collect();
        assert!(
            lost.is_empty(),
            "[crash {store}] after kill {}: {} of {} ACKED puts are not stored exactly (seed {seed}):\n{}\nrelay stderr:\n{}",
            epoch + 1,
            lost.len(),
            acked.len(),
            lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n"),
            log
        );
        t.verifications += acked.len();
        check_filler(&rt, port, &filler_sent, filler_acked.as_ref(), epoch);
        // Unacked puts may or may not be there; a put is one atomic store write,
        // so a half-present node is worth noting.
        let found = rt
            .block_on(read_back_parallel(
                port,
                &unacked,
                READERS,
                &format!("u{epoch}"),
            ))
            .unwrap_or_else(|e| panic!("epoch {epoch}: reading unacked puts failed: {e}"));
        for (p, f) in unacked.iter().zip(&found) {
            match f {
                Found::Exact => t.unacked_present += 1,
                Found::Missing => t.unacked_absent += 1,
                Found::Different(d) => {
                    t.unacked_partial += 1;
                    eprintln!("[crash {store}] unacked put {} is partly stored: {d}", p.id);
                }
            }
        }
        verify_time += v0.elapsed();
    }

    // ---- a clean stop and start at the end: everything still there
    let status = relay.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean stop failed ({status:?}):\n{}",
        relay.stderr()
    );
    let mut relay = Relay::start(store, dir.path(), port).ready();
    let found = rt
        .block_on(read_back_parallel(port, &acked, READERS, "final"))
        .expect("final read back");
    let bad = found.iter().filter(|f| **f != Found::Exact).count();
    assert_eq!(
        bad, 0,
        "after a clean restart, {bad} acked puts are not stored exactly"
    );
    t.verifications += acked.len();
    check_filler(&rt, port, &filler_sent, filler_acked.as_ref(), kills);
    relay.kill();

    let elapsed = started.elapsed();
    eprintln!(
        "[crash {store}] SUMMARY: {} kills, {} acked puts ({} keys each), {} acked-put verifications, \
         0 lost; unacked at kill: {} ({} present, {} absent, {} partial); \
         time {:.1?} (writing {:.1?}, restarts {:.1?}, verifying {:.1?})",
        t.kills,
        t.acked,
        KEYS,
        t.verifications,
        t.unacked,
        t.unacked_present,
        t.unacked_absent,
        t.unacked_partial,
        elapsed,
        write_time,
        restart_time,
        verify_time
    );
    if store == "file" {
        eprintln!(
            "[crash file] filler: {} puts of {} KiB acked; {} distinct snapshot sizes seen after kills \
             (>= that many compactions); {} restarts found an unfinished snapshot.tmp (kill during a compaction)",
            t.filler_acked,
            FILLER_BYTES >> 10,
            snapshots.len(),
            t.compactions_interrupted
        );
    } else {
        eprintln!(
            "[crash {store}] filler: {} puts of {} KiB acked",
            t.filler_acked,
            FILLER_BYTES >> 10
        );
    }
    for (name, len) in files(dir.path()) {
        eprintln!("[crash {store}] file {name}: {len} bytes");
    }
    for w in &t.warnings {
        eprintln!("[crash {store}] {w}");
    }
    assert_eq!(t.unacked_partial, 0, "puts must be stored atomically");
    assert!(t.acked > 0, "no put was ever acked");
}
