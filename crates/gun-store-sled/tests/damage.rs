//! Damaged sled files: opening never panics, and a database that lost
//! everything (or that sled cannot recover) is an [`Error::Corrupt`] naming the
//! directory, not an empty store. (gun-relay's `tests/corruption.rs` covers the
//! partial losses, through the relay.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use gun_graph::{Graph, Soul, State, Value};
use gun_store::{Error, Store};
use gun_store_sled::SledStore;

/// A store in `dir` holding 600 nodes of 10 keys (a few MiB), closed cleanly.
fn filled(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = SledStore::open(dir).unwrap();
    for i in 0..600 {
        let mut g = Graph::new();
        for k in 0..10 {
            g.put(
                Soul::new(format!("node/{i:04}")).unwrap(),
                format!("k{k}"),
                State::new(1.0 + f64::from(i)).unwrap(),
                Value::from(format!("{i}-{k}-{}", "v".repeat(400))),
            )
            .unwrap();
        }
        rt.block_on(store.put(&g)).unwrap();
    }
}

fn corrupt_detail(r: Result<SledStore, Error>, dir: &Path) -> String {
    match r {
        Err(Error::Corrupt { path, detail }) => {
            assert_eq!(path, dir);
            detail
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, the damaged database opened"),
    }
}

#[test]
fn a_database_cut_short_is_refused_not_opened_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    filled(&dir);
    // sled itself opens these as an empty database, without a word.
    for len in [0u64, 100, 512 << 10] {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("db"))
            .unwrap();
        f.set_len(len).unwrap();
        drop(f);
        let d = corrupt_detail(SledStore::open(&dir), &dir);
        assert!(
            d.contains("metadata record") && d.contains("600 souls"),
            "{d}"
        );
    }
}

#[test]
fn damage_sled_cannot_recover_from_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    filled(&dir);
    let mut bytes = std::fs::read(dir.join("db")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 65536].fill(0x5A);
    std::fs::write(dir.join("db"), &bytes).unwrap();
    // sled's recovery panics on this (the panic message is printed, then
    // caught); the store reports it. Where the garbage lands depends on how
    // sled laid the log out (its flushes run on their own thread): when it
    // hit only space no live record uses, the database opens, and then every
    // node must read back exactly.
    match SledStore::open(&dir) {
        Ok(store) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            for i in 0..600 {
                let soul = format!("node/{i:04}");
                let n = rt
                    .block_on(store.get_node(&soul))
                    .unwrap()
                    .unwrap_or_else(|| panic!("opened, but {soul} is gone"));
                assert_eq!(n.len(), 10, "{soul}");
                for k in 0..10 {
                    assert_eq!(
                        n.get(&format!("k{k}")).unwrap().value,
                        Value::from(format!("{i}-{k}-{}", "v".repeat(400))),
                        "{soul} k{k}"
                    );
                }
            }
            eprintln!("the garbage hit no live record: opened, all 600 nodes intact");
        }
        r => {
            let d = corrupt_detail(r, &dir);
            assert!(
                d.contains("damaged") || d.contains("metadata record"),
                "{d}"
            );
        }
    }
}

#[test]
fn a_new_store_is_not_mistaken_for_a_damaged_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    drop(SledStore::open(&dir).unwrap());
    // Reopened without any write: still fine, and empty.
    let store = SledStore::open(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(store.stats()).unwrap().souls, 0);
    assert!(dir.join("gun-store.marker").is_file());
}

#[test]
fn a_loss_since_the_last_clean_close_is_rebuilt_from_what_is_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    filled(&dir);
    // Two local writes no peer has acknowledged yet, in the outbox.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pending = |i: u32| {
        let mut g = Graph::new();
        g.put(
            Soul::new(format!("mine/{i}")).unwrap(),
            "v",
            State::new(f64::from(i)).unwrap(),
            Value::from(format!("not yet acked {i}")),
        )
        .unwrap();
        g
    };
    {
        let store = SledStore::open(&dir).unwrap();
        for i in 0..2 {
            rt.block_on(store.outbox_put(&format!("msg{i}"), &pending(i)))
                .unwrap();
        }
    }
    // As if sled had lost the last 100 nodes of a store closed with 700.
    let marker = dir.join("gun-store.marker");
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(text.contains("clean 1\nsouls 600\nkeys 6000\n"), "{text}");
    std::fs::write(&marker, text.replace("souls 600", "souls 700")).unwrap();

    let store = SledStore::open(&dir).unwrap();
    assert!(tmp.path().join("db.damaged").is_dir(), "kept aside");
    // The outbox came along: those writes are still re-sent at start.
    let mut outbox = rt.block_on(store.outbox()).unwrap();
    outbox.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        outbox,
        vec![
            ("msg0".to_owned(), pending(0)),
            ("msg1".to_owned(), pending(1))
        ]
    );
    let stats = rt.block_on(store.stats()).unwrap();
    assert_eq!((stats.souls, stats.keys), (600, 6000));
    let n = rt.block_on(store.get_node("node/0599")).unwrap().unwrap();
    assert_eq!(n.len(), 10);
    // Writable, and the next open is an ordinary one.
    let mut g = Graph::new();
    g.put(
        Soul::new("after").unwrap(),
        "k",
        State::new(1.0).unwrap(),
        Value::from(true),
    )
    .unwrap();
    rt.block_on(store.put(&g)).unwrap();
    drop(store);
    let store = SledStore::open(&dir).unwrap();
    assert_eq!(rt.block_on(store.stats()).unwrap().souls, 601);
    assert!(
        !tmp.path().join("db.damaged.1").exists(),
        "no second rebuild"
    );
    drop(store);

    // The flag the background check leaves makes the next open rebuild too.
    std::fs::write(dir.join("gun-store.rebuild"), b"").unwrap();
    let store = SledStore::open(&dir).unwrap();
    assert!(tmp.path().join("db.damaged.1").is_dir());
    assert!(!dir.join("gun-store.rebuild").exists());
    assert_eq!(rt.block_on(store.stats()).unwrap().souls, 601);
}
