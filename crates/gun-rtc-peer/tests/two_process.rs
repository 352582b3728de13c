//! Two gun-rs peers, each its own process (`gun-rtc-peer`), find each other
//! through a gun-relay process, connect by WebRTC with host candidates on
//! loopback; then the relay is killed and writes still go both ways, over the
//! data channel.
//!
//! Needs the gun-relay binary: `GUN_RELAY_BIN`, or `target/<profile>/gun-relay`
//! as `cargo build -p gun-relay` leaves it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const PEER_BIN: &str = env!("CARGO_BIN_EXE_gun-rtc-peer");

fn relay_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GUN_RELAY_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/two_process-… → target/<profile>/gun-relay
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let p = profile_dir.join("gun-relay");
    assert!(
        p.exists(),
        "{} not found: build it first (`cargo build -p gun-relay`) or set GUN_RELAY_BIN",
        p.display()
    );
    p
}

type Lines = Arc<Mutex<Vec<String>>>;

/// Every process's stderr, by name: a failure shows all of them (the far
/// side's log is usually where the reason is).
static LOGS: Mutex<Vec<(String, Lines)>> = Mutex::new(Vec::new());

fn all_logs(n: usize) -> String {
    let logs = LOGS.lock().unwrap();
    logs.iter()
        .map(|(name, l)| format!("--- {name} stderr (tail):\n{}", tail(l, n)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn collect(r: impl std::io::Read + Send + 'static, lines: Lines) {
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            lines.lock().unwrap().push(l);
        }
    });
}

struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Lines,
    err: Lines,
}

impl Proc {
    fn spawn(name: &str, bin: &PathBuf, args: &[&str]) -> Proc {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let out = Lines::default();
        let err = Lines::default();
        collect(child.stdout.take().unwrap(), out.clone());
        collect(child.stderr.take().unwrap(), err.clone());
        LOGS.lock().unwrap().push((name.to_owned(), err.clone()));
        Proc {
            name: name.into(),
            stdin: child.stdin.take(),
            child,
            out,
            err,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn events(&self) -> Vec<Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = self.events().into_iter().find(&pred) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no {what} in {secs} s\nstdout:\n{}\n{}",
                    self.name,
                    self.out.lock().unwrap().join("\n"),
                    all_logs(60)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_line(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let found = {
                let o = self.out.lock().unwrap();
                let e = self.err.lock().unwrap();
                o.iter().chain(e.iter()).find(|l| pred(l)).cloned()
            };
            if let Some(l) = found {
                return l;
            }
            if Instant::now() > deadline {
                panic!("{}: no {what} in {secs} s\n{}", self.name, all_logs(60));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(lines: &Lines, n: usize) -> String {
    let l = lines.lock().unwrap();
    l[l.len().saturating_sub(n)..].join("\n")
}

fn change_of(key: &'static str, value: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["ev"] == "change" && v["key"] == key && v["value"] == value
}

#[test]
fn writes_go_peer_to_peer_after_the_relay_is_gone() {
    let relay_path = relay_bin();
    let mut relay = Proc::spawn(
        "relay",
        &relay_path,
        &["--port", "0", "--store", "memory", "--log", "info"],
    );
    let ready = relay.wait_line("ready line", 20, |l| {
        l.starts_with("gun-relay listening on ws://")
    });
    let url = ready
        .trim_start_matches("gun-relay listening on ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let room = format!("two-process-{}", std::process::id());
    let peer_args = [
        "--peer",
        url.as_str(),
        "--room",
        room.as_str(),
        "--udp",
        "127.0.0.1:0",
        "--no-ice",
        "--log",
        "info,gun_net_webrtc=debug,rtc_ice=info,webrtc=info",
    ];
    let peer_bin = PathBuf::from(PEER_BIN);
    let mut a = Proc::spawn("peer A", &peer_bin, &peer_args);
    let pid_a = a.wait_for("ready", 20, |v| v["ev"] == "ready")["pid"]
        .as_str()
        .unwrap()
        .to_owned();
    a.send("watch shared");
    let mut b = Proc::spawn("peer B", &peer_bin, &peer_args);
    let pid_b = b.wait_for("ready", 20, |v| v["ev"] == "ready")["pid"]
        .as_str()
        .unwrap()
        .to_owned();
    b.send("watch shared");

    // A sees B's announcement through the relay and offers; they connect.
    let has = |pid: String| {
        move |v: &Value| {
            v["ev"] == "rtc"
                && v["connected"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|p| p == pid.as_str()))
        }
    };
    a.wait_for("data channel to B", 30, has(pid_b.clone()));
    b.wait_for("data channel to A", 30, has(pid_a.clone()));

    // The relay goes away for good.
    relay.child.kill().unwrap();
    relay.child.wait().unwrap();

    // Writes still reach the other peer, by the data channel.
    a.send(r#"put shared from_a "hello B""#);
    let got = b.wait_for("A's write", 15, change_of("from_a", "hello B"));
    assert_eq!(got["via"], "rtc", "{got}");
    b.send(r#"put shared from_b "hello A""#);
    let got = a.wait_for("B's write", 15, change_of("from_b", "hello A"));
    assert_eq!(got["via"], "rtc", "{got}");

    // And the channel stays up: a second round.
    a.send(r#"put shared from_a "again""#);
    b.wait_for("A's second write", 15, change_of("from_a", "again"));

    a.send("quit");
    b.send("quit");
    for p in [&mut a, &mut b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = p.child.try_wait().unwrap();
        assert!(
            st.is_some_and(|s| s.success()),
            "{} did not exit cleanly: {st:?}\n{}",
            p.name,
            tail(&p.err, 20)
        );
    }
}
