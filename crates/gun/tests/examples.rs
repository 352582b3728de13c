//! Every user example runs and exits 0: each starts the relays or peers it
//! needs in process and asserts what it shows. The binaries are the ones in
//! target/debug/examples, built first by scripts/test.sh
//! (`cargo build -p gun --examples --features server`; the `webrtc` one with
//! `--features webrtc,server` in its WebRTC section).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Examples not run here, and why.
const NOT_RUN_HERE: &[(&str, &str)] = &[(
    "quickstart",
    "the README's program: tests/readme.rs runs it against a relay on 127.0.0.1:8765",
)];

/// Examples run here (`webrtc` only with the feature).
const RUN_HERE: &[&str] = &[
    "basic",
    "chain",
    "sea_user",
    "bls_certificate",
    "storage",
    "network_sync",
    "webrtc",
];

fn example_bin(name: &str) -> PathBuf {
    // target/debug/deps/examples-HASH -> target/debug/examples/NAME
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples").join(name))
        .unwrap()
}

/// Runs the built example `name` (at most `secs`) and asserts it exits 0.
fn run(name: &str, secs: u64) {
    let bin = example_bin(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the examples first (`cargo build -p gun --examples --features server`, \
         and `--features webrtc,server --example webrtc`)",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "example {name} ran over {secs} s\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "example {name} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_is_run_or_said_why_not() {
    let manifest = std::fs::read_to_string(common::repo().join("crates/gun/Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut in_example = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_example = line == "[[example]]";
        } else if in_example && let Some(v) = line.strip_prefix("name = ") {
            names.push(v.trim_matches('"').to_owned());
        }
    }
    assert!(names.len() >= RUN_HERE.len(), "{names:?}");
    for n in &names {
        assert!(
            RUN_HERE.contains(&n.as_str()) || NOT_RUN_HERE.iter().any(|(x, _)| x == n),
            "example {n} is neither run by tests/examples.rs nor listed with a reason"
        );
    }
}

#[test]
fn basic() {
    run("basic", 60);
}

#[test]
fn chain() {
    run("chain", 60);
}

#[test]
fn sea_user() {
    run("sea_user", 120);
}

#[test]
fn bls_certificate() {
    run("bls_certificate", 120);
}

#[test]
fn storage() {
    run("storage", 60);
}

#[test]
fn network_sync() {
    run("network_sync", 120);
}

#[cfg(feature = "webrtc")]
#[test]
fn webrtc() {
    run("webrtc", 120);
}
