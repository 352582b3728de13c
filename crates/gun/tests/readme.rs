//! The README's Rust program is examples/quickstart.rs, and it delivers its
//! writes: run against a relay on 127.0.0.1:8765 (the address it names), the
//! relay holds the data afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use gun::server::{Relay, RelayOptions, StoreKind};

#[test]
fn readme_program_is_examples_quickstart() {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let example = std::fs::read_to_string(common::repo().join("examples/quickstart.rs")).unwrap();
    let body = &example[example.find("use gun::").unwrap()..];
    let block = format!("```rust\n{body}```\n");
    assert!(
        readme.contains(&block),
        "README.md's \"Use it from Rust\" program must be examples/quickstart.rs (from `use gun::` on), character for character"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_program_leaves_its_writes_on_the_relay() {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/readme-HASH -> target/debug/examples/quickstart
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples/quickstart"))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test` builds the examples (run `cargo build -p gun --example quickstart`)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // The README's program dials 127.0.0.1:8765: wait (bounded) for the port
    // if something else on this machine holds it for a moment.
    let mut tries = 0;
    let relay = loop {
        match Relay::start(RelayOptions {
            listen: "127.0.0.1:8765".parse().unwrap(),
            store: StoreKind::Sled,
            data_dir: dir.path().to_path_buf(),
            ..RelayOptions::default()
        }) {
            Ok(r) => break r,
            Err(e) if tries < 120 => {
                tries += 1;
                if tries == 1 {
                    eprintln!("waiting for 127.0.0.1:8765 to be free: {e}");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the README's program dials 127.0.0.1:8765, busy for 60 s: {e}"),
        }
    };
    let out = run_to_end(&bin).await;
    assert!(out.status.success(), "quickstart failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kind: Some(String(\"cat\"))"), "{stdout}");
    assert!(stdout.contains("undelivered writes: 0"), "{stdout}");
    let store = relay.gun().engine().store().clone();
    let user = store
        .get_node("user")
        .await
        .unwrap()
        .expect("the relay holds `user`");
    assert_eq!(
        user.value("name").map(|v| v.to_json()),
        Some(serde_json::json!("Alice"))
    );
    let people = store
        .get_node("people")
        .await
        .unwrap()
        .expect("the relay holds `people`");
    assert_eq!(people.len(), 1, "one item set into people");
    let puts = relay
        .gun()
        .engine()
        .stats()
        .puts_in
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(puts > 0, "the relay received no put");
    relay.shutdown().await.unwrap();
}

/// Runs `bin` to completion (at most 60 s) off the runtime's threads.
async fn run_to_end(bin: &std::path::Path) -> std::process::Output {
    let bin = bin.to_path_buf();
    let run =
        tokio::task::spawn_blocking(move || std::process::Command::new(bin).output().unwrap());
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("quickstart did not finish in 60 s")
        .unwrap()
}
