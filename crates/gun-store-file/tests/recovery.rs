//! Crash safety of the file store: torn journal tails at every byte, garbage,
//! damaged snapshots, crashes between the steps of a compaction, locking.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gun_graph::{Graph, Lex, Soul, State, Value};
use gun_store::{Error, Store, machine_state};
use gun_store_file::{FileStore, Options};

// ---------------------------------------------------------------------------
// a tiny tracing subscriber that keeps the events, to check the warnings

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(format!("{} ", event.metadata().level()));
        event.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Opens a store, returning it and the events logged while opening.
fn open_logged(dir: &Path) -> (Result<FileStore, Error>, Vec<String>) {
    let cap = Capture::default();
    let r = tracing::subscriber::with_default(cap.clone(), || FileStore::open(dir));
    let events = cap.0.lock().unwrap().clone();
    (r, events)
}

// ---------------------------------------------------------------------------

fn diff(soul: &str, key: &str, state: f64, value: impl Into<Value>) -> Graph {
    let mut g = Graph::new();
    g.put(
        Soul::new(soul).unwrap(),
        key,
        State::new(state).unwrap(),
        value.into(),
    )
    .unwrap();
    g
}

fn merged(diffs: &[&Graph]) -> Graph {
    let mut g = Graph::new();
    for d in diffs {
        g.merge(d, machine_state());
    }
    g
}

async fn all(store: &FileStore) -> Graph {
    store
        .query(&Lex::default(), &Lex::default(), None)
        .await
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Offsets where the journal's records start (after the 8-byte magic).
fn record_starts(journal: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 9 <= journal.len() {
        out.push(at);
        let len = u32::from_le_bytes(journal[at..at + 4].try_into().unwrap()) as usize;
        at += 9 + len;
    }
    assert_eq!(at, journal.len());
    out
}

#[test]
fn a_torn_journal_tail_is_ignored_at_every_byte_offset() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let diffs = [
        diff("a", "x", 1.0, "first"),
        diff("b", "y", 1.0, 2),
        diff("a", "x", 2.0, "second overwrites first"),
        diff("c\u{0}/..", "😀", 1.0, Value::Null),
    ];
    {
        let store = FileStore::open(&src).unwrap();
        for d in &diffs {
            rt.block_on(store.put(d)).unwrap();
        }
    }
    let journal = std::fs::read(src.join("journal")).unwrap();
    let starts = record_starts(&journal);
    assert_eq!(starts.len(), diffs.len(), "one record per put");
    for cut in 8..=journal.len() {
        let dir = tmp.path().join(format!("cut{cut}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("journal"), &journal[..cut]).unwrap();
        let complete = starts.iter().filter(|&&s| s < cut).count()
            - usize::from(!starts.contains(&cut) && cut < journal.len());
        let want = merged(&diffs.iter().take(complete).collect::<Vec<_>>());
        let (store, events) = open_logged(&dir);
        let store = store.unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        assert_eq!(rt.block_on(all(&store)), want, "cut at {cut}");
        let torn = !starts.contains(&cut) && cut != journal.len();
        if torn {
            let start = starts.iter().filter(|&&s| s < cut).max().unwrap();
            assert!(
                events
                    .iter()
                    .any(|e| e.starts_with("WARN") && e.contains(&format!("offset={start} "))),
                "cut at {cut}: expected a warning naming offset {start}: {events:?}"
            );
        } else {
            assert!(
                events.iter().all(|e| !e.starts_with("WARN")),
                "cut at {cut}: {events:?}"
            );
        }
        // Writing after recovery appends after the last good record, not after the garbage.
        let extra = diff("after", "k", 9.0, cut as u32);
        rt.block_on(store.put(&extra)).unwrap();
        drop(store);
        let (store, events) = open_logged(&dir);
        let store = store.unwrap();
        assert_eq!(
            rt.block_on(all(&store)),
            merged(&[&want, &extra]),
            "cut at {cut}, reopened"
        );
        assert!(
            events.iter().all(|e| !e.starts_with("WARN")),
            "cut at {cut}: {events:?}"
        );
    }
}

#[test]
fn garbage_after_the_journal_is_reported_and_ignored() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let d = diff("s", "k", 1.0, "v");
    {
        let store = FileStore::open(tmp.path()).unwrap();
        rt.block_on(store.put(&d)).unwrap();
    }
    let path = tmp.path().join("journal");
    let good = std::fs::metadata(&path).unwrap().len();
    for garbage in [
        vec![0xFFu8; 37],
        vec![0; 3],
        // A plausible header with a wrong checksum.
        [&5u32.to_le_bytes()[..], &[1, 2, 3, 4, 1], b"hello"].concat(),
        // A record claiming 4 GiB.
        [&u32::MAX.to_le_bytes()[..], &[0; 5]].concat(),
    ] {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(good as usize);
        bytes.extend_from_slice(&garbage);
        std::fs::write(&path, &bytes).unwrap();
        let (store, events) = open_logged(tmp.path());
        let store = store.unwrap();
        assert_eq!(rt.block_on(all(&store)), d);
        assert!(
            events
                .iter()
                .any(|e| e.contains(&format!("offset={good} "))),
            "{events:?}"
        );
        drop(store);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            good,
            "the damaged tail is cut off"
        );
    }
}

#[test]
fn a_damaged_record_inside_the_journal_loses_only_that_record() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        diff("a", "k", 1.0, 1),
        diff("b", "k", 1.0, 2),
        diff("c", "k", 1.0, 3),
    );
    {
        let store = FileStore::open(tmp.path()).unwrap();
        for d in [&a, &b, &c] {
            rt.block_on(store.put(d)).unwrap();
        }
    }
    let path = tmp.path().join("journal");
    let mut bytes = std::fs::read(&path).unwrap();
    let starts = record_starts(&bytes);
    bytes[starts[1] + 12] ^= 0x20; // flip a bit inside b's payload
    std::fs::write(&path, &bytes).unwrap();
    let (store, events) = open_logged(tmp.path());
    let store = store.unwrap();
    assert_eq!(rt.block_on(all(&store)), merged(&[&a, &c]));
    assert!(
        events.iter().any(|e| e.starts_with("ERROR")
            && e.contains(&format!("offset={} ", starts[1]))
            && e.contains(&format!("end={} ", starts[2]))
            && e.contains("checksum")),
        "{events:?}"
    );
    // The files were rewritten without the damage: the next open is clean.
    let d = diff("d", "k", 1.0, 4);
    rt.block_on(store.put(&d)).unwrap();
    drop(store);
    let (store, events) = open_logged(tmp.path());
    assert_eq!(rt.block_on(all(&store.unwrap())), merged(&[&a, &c, &d]));
    assert!(
        events
            .iter()
            .all(|e| !e.starts_with("WARN") && !e.starts_with("ERROR")),
        "{events:?}"
    );
}

#[test]
fn garbage_over_the_journal_header_keeps_the_records_behind_it() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let ds: Vec<Graph> = (0..4)
        .map(|i| diff(&format!("s{i}"), "k", 1.0, i))
        .collect();
    {
        let store = FileStore::open(tmp.path()).unwrap();
        for d in &ds {
            rt.block_on(store.put(d)).unwrap();
        }
    }
    let path = tmp.path().join("journal");
    let mut bytes = std::fs::read(&path).unwrap();
    let starts = record_starts(&bytes);
    // The magic and the first record.
    bytes[..starts[1] - 3].fill(b'#');
    std::fs::write(&path, &bytes).unwrap();
    let (store, events) = open_logged(tmp.path());
    let store = store.unwrap();
    assert_eq!(rt.block_on(all(&store)), merged(&[&ds[1], &ds[2], &ds[3]]));
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("ERROR") && e.contains("offset=0 ")),
        "{events:?}"
    );
}

#[test]
fn a_record_with_a_valid_checksum_but_invalid_data_is_skipped() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = b"GUNJRNL1".to_vec();
    let frame = |kind: u8, payload: &[u8], out: &mut Vec<u8>| {
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&h.finalize().to_le_bytes());
        out.push(kind);
        out.extend_from_slice(payload);
    };
    frame(
        1,
        br##"{"a":{"_":{"#":"a",">":{"k":1}},"k":[1]}}"##,
        &mut bytes,
    ); // an array: invalid
    frame(9, b"unknown kind", &mut bytes);
    frame(
        1,
        diff("b", "k", 1.0, "ok").to_wire().as_bytes(),
        &mut bytes,
    );
    std::fs::write(tmp.path().join("journal"), &bytes).unwrap();
    let (store, events) = open_logged(tmp.path());
    assert_eq!(rt.block_on(all(&store.unwrap())), diff("b", "k", 1.0, "ok"));
    assert_eq!(
        events.iter().filter(|e| e.starts_with("WARN")).count(),
        2,
        "{events:?}"
    );
}

/// A store whose every put compacts, so snapshot, snapshot.prev and journal.prev exist.
fn compacting() -> Options {
    Options::new().compact_min_bytes(0)
}

#[test]
fn a_damaged_snapshot_falls_back_to_the_previous_one_without_losing_data() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let ds: Vec<Graph> = (0..3)
        .map(|i| diff(&format!("s{i}"), "k", 1.0, i))
        .collect();
    {
        let store = FileStore::open_with(tmp.path(), &compacting()).unwrap();
        for d in &ds {
            rt.block_on(store.put(d)).unwrap();
        }
    }
    let last = diff("s3", "k", 1.0, 3);
    {
        let store = FileStore::open(tmp.path()).unwrap();
        rt.block_on(store.put(&last)).unwrap();
    }
    for f in ["snapshot", "snapshot.prev", "journal.prev", "journal"] {
        assert!(tmp.path().join(f).is_file(), "{f}");
    }
    let snap = tmp.path().join("snapshot");
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&snap, &bytes).unwrap();

    let want = merged(&[&ds[0], &ds[1], &ds[2], &last]);
    let (store, events) = open_logged(tmp.path());
    let store = store.unwrap();
    assert_eq!(rt.block_on(all(&store)), want);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("WARN") && e.contains("snapshot.prev")),
        "{events:?}"
    );
    assert!(
        tmp.path().join("snapshot.corrupt").is_file(),
        "the damaged snapshot is kept aside"
    );
    drop(store);
    // A good snapshot was written at once; the next open is clean.
    let (store, events) = open_logged(tmp.path());
    assert_eq!(rt.block_on(all(&store.unwrap())), want);
    assert!(events.iter().all(|e| !e.starts_with("WARN")), "{events:?}");
}

#[test]
fn a_damaged_snapshot_without_an_older_one_is_recovered_from_the_journals() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (diff("a", "k", 1.0, 1), diff("b", "k", 1.0, 2));
    {
        let store = FileStore::open_with(tmp.path(), &compacting()).unwrap();
        rt.block_on(store.put(&a)).unwrap();
    }
    {
        let store = FileStore::open(tmp.path()).unwrap();
        rt.block_on(store.put(&b)).unwrap();
    }
    // One compaction: `snapshot` = a, `journal.prev` = a, `journal` = b.
    assert!(!tmp.path().join("snapshot.prev").exists());
    let snap = tmp.path().join("snapshot");
    let len = std::fs::metadata(&snap).unwrap().len();
    // Cut short: the end record is missing.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&snap)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (store, events) = open_logged(tmp.path());
    let store = store.unwrap();
    assert_eq!(rt.block_on(all(&store)), merged(&[&a, &b]));
    // Not provably complete (there is no older snapshot): an error, naming the file.
    assert!(
        events.iter().any(|e| e.starts_with("ERROR")
            && e.contains(&snap.display().to_string())
            && e.contains(&format!("damage=bytes {}..{} ", len - 33, len - 3))),
        "{events:?}"
    );
    assert!(tmp.path().join("snapshot.corrupt").is_file());
    drop(store);
    let (store, events) = open_logged(tmp.path());
    assert_eq!(rt.block_on(all(&store.unwrap())), merged(&[&a, &b]));
    assert!(events.iter().all(|e| !e.starts_with("ERROR")), "{events:?}");
}

/// Where the records of a snapshot start, and the souls in each.
fn snapshot_records(bytes: &[u8]) -> Vec<(usize, usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 9 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let souls = match bytes[at + 8] {
            2 => {
                let g: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&bytes[at + 9..at + 9 + len]).unwrap();
                g.keys().cloned().collect()
            }
            _ => Vec::new(),
        };
        out.push((at, at + 9 + len, souls));
        at += 9 + len;
    }
    out
}

#[test]
fn a_damaged_snapshot_alone_serves_its_readable_records() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Graph::new();
    for i in 0..12_000 {
        g.put(
            Soul::new(format!("n{i:05}")).unwrap(),
            "v",
            State::new(1.0).unwrap(),
            Value::from("z".repeat(300)),
        )
        .unwrap();
    }
    {
        let store = FileStore::open(tmp.path()).unwrap();
        rt.block_on(store.put(&g)).unwrap();
        rt.block_on(store.compact()).unwrap();
    }
    // Only the snapshot is left (the older files removed by hand).
    std::fs::remove_file(tmp.path().join("journal.prev")).unwrap();
    let snap = tmp.path().join("snapshot");
    let mut bytes = std::fs::read(&snap).unwrap();
    let records = snapshot_records(&bytes);
    assert!(records.len() >= 4, "{} records", records.len());
    // Garbage across the end of record 1 and the start of record 2.
    let (hit_from, hit_to) = (records[2].0 - 100, records[2].0 + 50);
    bytes[hit_from..hit_to].fill(0x5A);
    std::fs::write(&snap, &bytes).unwrap();

    let (store, events) = open_logged(tmp.path());
    let store = store.unwrap();
    let got = rt.block_on(all(&store));
    let lost: std::collections::HashSet<&String> =
        records[1].2.iter().chain(&records[2].2).collect();
    assert!(!lost.is_empty());
    for (soul, node) in g.iter() {
        if lost.contains(&soul.as_str().to_string()) {
            assert!(
                got.get(soul.as_str()).is_none(),
                "{soul:?} was in a damaged record"
            );
        } else {
            assert_eq!(got.get(soul.as_str()), Some(node), "{soul:?}");
        }
    }
    assert_eq!(got.len(), g.len() - lost.len());
    assert!(
        events.iter().any(|e| e.starts_with("ERROR")
            && e.contains(&format!("bytes {}..{}", records[1].0, records[3].0))),
        "{events:?}"
    );
}

#[test]
fn crashes_between_the_steps_of_a_compaction_lose_nothing() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (a, b, c) = (
        diff("a", "k", 1.0, 1),
        diff("b", "k", 1.0, 2),
        diff("c", "k", 1.0, 3),
    );
    {
        let store = FileStore::open_with(&base, &compacting()).unwrap();
        rt.block_on(store.put(&a)).unwrap();
        rt.block_on(store.put(&b)).unwrap();
    }
    {
        let store = FileStore::open(&base).unwrap();
        rt.block_on(store.put(&c)).unwrap();
    }
    let want = merged(&[&a, &b, &c]);

    // 1. A half-written snapshot.tmp is left over.
    let d1 = tmp.path().join("tmp-left");
    copy_dir(&base, &d1);
    std::fs::write(d1.join("snapshot.tmp"), b"GUNSNAP1 half").unwrap();
    let s = FileStore::open(&d1).unwrap();
    assert_eq!(rt.block_on(all(&s)), want);
    assert!(!d1.join("snapshot.tmp").exists());
    drop(s);

    // 2. Crash after `snapshot` -> `snapshot.prev`, before `snapshot.tmp` -> `snapshot`.
    let d2 = tmp.path().join("between-renames");
    copy_dir(&base, &d2);
    std::fs::rename(d2.join("snapshot"), d2.join("snapshot.prev")).unwrap();
    std::fs::write(d2.join("snapshot.tmp"), b"GUNSNAP1").unwrap();
    let s = FileStore::open(&d2).unwrap();
    assert_eq!(rt.block_on(all(&s)), want);
    drop(s);

    // 3. Crash after `journal` -> `journal.prev`, before the new journal exists.
    let d3 = tmp.path().join("no-journal");
    {
        let store = FileStore::open_with(&d3, &compacting()).unwrap();
        for d in [&a, &b, &c] {
            rt.block_on(store.put(d)).unwrap();
        }
    }
    std::fs::remove_file(d3.join("journal")).unwrap();
    let s = FileStore::open(&d3).unwrap();
    assert_eq!(rt.block_on(all(&s)), want);
    let d = diff("d", "k", 1.0, 4);
    rt.block_on(s.put(&d)).unwrap();
    drop(s);
    let s = FileStore::open(&d3).unwrap();
    assert_eq!(rt.block_on(all(&s)), merged(&[&want, &d]));

    // 4. A journal whose header was cut short by a crash at creation.
    let d4 = tmp.path().join("short-header");
    copy_dir(&d3, &d4);
    std::fs::write(d4.join("journal"), b"GUNJ").unwrap();
    let s = FileStore::open(&d4).unwrap();
    assert_eq!(
        rt.block_on(all(&s)),
        want,
        "the snapshot holds a, b, c (d lived in the journal)"
    );
    rt.block_on(s.put(&d)).unwrap();
    drop(s);
    assert_eq!(
        rt.block_on(all(&FileStore::open(&d4).unwrap())),
        merged(&[&want, &d])
    );
}

#[test]
fn a_foreign_journal_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("journal"), b"this is not a journal").unwrap();
    assert!(matches!(
        FileStore::open(tmp.path()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn one_store_per_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let first = FileStore::open(tmp.path()).unwrap();
    match FileStore::open(tmp.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, tmp.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    FileStore::open(tmp.path()).unwrap();
}

#[test]
fn a_full_disk_fails_puts_but_keeps_reads_and_the_data() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let a = diff("a", "k", 1.0, "fits");
    let store = FileStore::open_with(tmp.path(), &Options::new().fail_after_bytes(200)).unwrap();
    rt.block_on(store.put(&a)).unwrap();
    let big = diff("b", "k", 1.0, "x".repeat(500));
    for _ in 0..3 {
        let e = rt.block_on(store.put(&big)).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
    assert_eq!(rt.block_on(all(&store)), a);
    rt.block_on(store.flush()).unwrap();
    drop(store);
    let store = FileStore::open(tmp.path()).unwrap();
    assert_eq!(rt.block_on(all(&store)), a);
}

#[test]
fn compaction_keeps_large_graphs_and_nodes_whole() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Graph::new();
    // One node far larger than a snapshot record's target size, and many small ones.
    let big = Soul::new("big").unwrap();
    for i in 0..20_000 {
        g.put(
            big.clone(),
            format!("k{i:05}"),
            State::new(1.0).unwrap(),
            Value::from("y".repeat(100)),
        )
        .unwrap();
    }
    for i in 0..5_000 {
        g.put(
            Soul::new(format!("n{i}")).unwrap(),
            "k",
            State::new(2.0).unwrap(),
            Value::from(i),
        )
        .unwrap();
    }
    {
        let store = FileStore::open(tmp.path()).unwrap();
        rt.block_on(store.put(&g)).unwrap();
        rt.block_on(store.compact()).unwrap();
        let stats = rt.block_on(store.stats()).unwrap();
        assert_eq!((stats.souls, stats.keys), (5_001, 25_000));
        assert!(stats.bytes > 2_000_000, "{stats:?}");
    }
    let store = FileStore::open(tmp.path()).unwrap();
    assert_eq!(rt.block_on(all(&store)), g);
}
