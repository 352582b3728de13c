//! Damaged data files ("Durable storage", issue #5): data is written through the
//! relay, the relay is stopped, a file is cut short or partly overwritten with
//! garbage, and the relay is started again. It must never panic, must say on
//! stderr what it could not read, and then either serve everything else exactly
//! (values and states), or — where sled cannot open its database — exit with a
//! clear error naming the directory and what to do.
//!
//! * **file store** (`--store file`, CRC-checked journal + snapshots): always
//!   starts. A torn journal tail loses only the records it cut; garbage inside
//!   the journal loses only the records it overlaps (the reader resynchronises on
//!   the next record with a valid checksum); a damaged snapshot is recovered from
//!   `snapshot.prev + journal.prev + journal` when those are whole ("nothing is
//!   lost"), else only the nodes of the damaged snapshot records are lost. The
//!   exact set of souls that must survive is computed from the files' records.
//! * **sled store**: sled 0.34 panics in recovery on most damage inside `db`, and
//!   opens an empty or partial database on other damage without a word;
//!   gun-store-sled turns the panic into an error, refuses a database that lost
//!   its metadata record, and reports partial loss (fewer souls than at the last
//!   clean close, or than its metadata record). The relay then exits with status
//!   1 and a hint, or serves what sled still has.
//!
//! Also here: `gun-relay import-radisk` on a radisk directory written by a
//! genuine Gun.js (node), intact and with a damaged file, then served by the
//! relay (skipped without node).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{
    Found, Put, Relay, Start, panicked, puts_from_graph, random_put, random_text,
    read_back_parallel, write,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `n` puts (souls `TAG/i`, 10 fields, one of up to 2,000 characters)
/// through a relay on `data`, then stops it with SIGTERM. Every put must be acked.
fn populate(store: &str, data: &Path, tag: &str, n: usize, seed: u64) -> Vec<Put> {
    let rt = rt();
    let mut relay = Relay::start(store, data, 0).ready();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut i = 0;
    let prefix = tag.to_string();
    let next = move || {
        if i == n {
            return None;
        }
        i += 1;
        let mut p = random_put(
            &mut rng,
            format!("{prefix}{i}x"),
            format!("{prefix}/{i}"),
            10,
            40,
        );
        if let Some(last) = p.fields.last_mut() {
            last.1 = random_text(&mut rng, 2000).into();
        }
        Some(p)
    };
    let out = rt.block_on(write(relay.port, 32, Duration::from_secs(30), next));
    assert!(
        out.unacked.is_empty() && out.bad_acks.is_empty(),
        "populate {tag}: {} unacked, bad acks {:?}, ended {:?}",
        out.unacked.len(),
        out.bad_acks,
        out.ended
    );
    stop(&mut relay);
    out.acked
}

/// SIGTERM; the relay must exit 0.
fn stop(relay: &mut Relay) {
    let st = relay.terminate(Duration::from_secs(30));
    assert!(
        st.is_some_and(|s| s.success()),
        "clean stop failed ({st:?}):\n{}",
        relay.stderr()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if e.file_name() != "LOCK" {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Overwrites `len` bytes at `at` with random bytes.
fn garbage(path: &Path, at: usize, len: usize, seed: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for b in &mut bytes[at..at + len] {
        *b = rng.random();
    }
    std::fs::write(path, bytes).unwrap();
}

/// The records of a journal or snapshot file: `(start, end, souls)`.
fn records(path: &Path) -> Vec<(usize, usize, Vec<String>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 8;
    while at + 9 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + 9 + len;
        assert!(
            end <= bytes.len(),
            "{}: record at {at} runs past the end",
            path.display()
        );
        let souls = match bytes[at + 8] {
            // diffs (journal) and nodes (snapshot): {soul: node, …}
            1 | 2 => serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes[at + 9..end])
                .unwrap()
                .keys()
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        out.push((at, end, souls));
        at = end;
    }
    assert_eq!(at, bytes.len(), "{}", path.display());
    out
}

/// Souls of the records overlapping `[from, to)`.
fn souls_in(records: &[(usize, usize, Vec<String>)], from: usize, to: usize) -> HashSet<String> {
    records
        .iter()
        .filter(|(s, e, _)| *s < to && *e > from)
        .flat_map(|(_, _, souls)| souls.iter().cloned())
        .collect()
}

/// Lines of `log` at WARN or ERROR.
fn complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

/// Reads every put back; each soul in `lost` must be missing, every other one
/// exactly as written. Returns (served, missing).
fn check_served(
    rt: &tokio::runtime::Runtime,
    relay: &Relay,
    puts: &[Put],
    lost: &HashSet<String>,
    case: &str,
) -> (usize, usize) {
    let found = rt
        .block_on(read_back_parallel(relay.port, puts, 4, case))
        .unwrap_or_else(|e| panic!("{case}: reading back: {e}\n{}", relay.stderr()));
    let mut wrong = Vec::new();
    for (p, f) in puts.iter().zip(&found) {
        let want = if lost.contains(&p.soul) {
            Found::Missing
        } else {
            Found::Exact
        };
        if *f != want {
            wrong.push(format!("{}: {f:?}, expected {want:?}", p.soul));
        }
    }
    assert!(
        wrong.is_empty(),
        "{case}: {} of {} souls are not as expected:\n{}\nrelay stderr:\n{}",
        wrong.len(),
        puts.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        relay.stderr()
    );
    let missing = found.iter().filter(|f| **f == Found::Missing).count();
    (found.len() - missing, missing)
}

/// Starts the relay on damaged data: it must start and not panic.
fn start_damaged(store: &str, data: &Path, case: &str) -> Relay {
    match Relay::start(store, data, 0) {
        Start::Ready(r) => {
            assert!(!panicked(&r.stderr()), "{case}: panic:\n{}", r.stderr());
            r
        }
        Start::Exited { status, stderr } => {
            panic!("{case}: the relay did not start ({status}):\n{stderr}")
        }
        Start::Hung { stderr } => panic!("{case}: the relay hung at start:\n{stderr}"),
    }
}

/// After recovery: a clean stop and start shows no more complaints, serves the
/// same, and takes new writes.
fn restart_is_clean(
    rt: &tokio::runtime::Runtime,
    mut relay: Relay,
    store: &str,
    data: &Path,
    puts: &[Put],
    lost: &HashSet<String>,
    case: &str,
) {
    stop(&mut relay);
    let relay = start_damaged(store, data, case);
    // The file store's compactions and sled's check log within a moment.
    std::thread::sleep(Duration::from_millis(300));
    let log = relay.stderr();
    assert!(
        complaints(&log).is_empty(),
        "{case}: the second start still complains:\n{log}"
    );
    check_served(rt, &relay, puts, lost, &format!("{case}-again"));
    let mut rng = StdRng::seed_from_u64(99);
    let extra = random_put(&mut rng, "extra1x".into(), format!("extra/{case}"), 10, 40);
    let mut once = Some(extra.clone());
    let out = rt.block_on(write(relay.port, 1, Duration::from_secs(30), move || {
        once.take()
    }));
    assert_eq!(out.acked.len(), 1, "{case}: a new write was not acked");
    check_served(
        rt,
        &relay,
        &[extra],
        &HashSet::new(),
        &format!("{case}-new"),
    );
}

/// Waits up to `timeout` for a line of the relay's stderr containing all of `needles`.
fn wait_for_line(relay: &Relay, needles: &[&str], timeout: Duration) -> Option<String> {
    let t0 = Instant::now();
    loop {
        let log = relay.stderr();
        if let Some(l) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return Some(l.to_string());
        }
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --------------------------------------------------------------- file store

#[test]
fn file_store_serves_everything_it_can_read() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let file = |d: &Path| d.join("file");

    // A: snapshot.prev; B: journal.prev; A+B: snapshot; C: journal.
    let a = populate("file", &base, "a", 1500, 1);
    compact(&file(&base));
    let b = populate("file", &base, "b", 200, 2);
    compact(&file(&base));
    let c = populate("file", &base, "c", 300, 3);
    for f in ["snapshot", "snapshot.prev", "journal", "journal.prev"] {
        assert!(file(&base).join(f).is_file(), "{f}");
    }
    let all: Vec<Put> = a.iter().chain(&b).chain(&c).cloned().collect();
    let journal = records(&file(&base).join("journal"));
    let snapshot = records(&file(&base).join("snapshot"));
    assert_eq!(journal.len(), c.len(), "one journal record per put");
    assert!(snapshot.len() >= 5, "{} snapshot records", snapshot.len());
    eprintln!(
        "[file] {} souls written; journal {} records, snapshot {} records",
        all.len(),
        journal.len(),
        snapshot.len()
    );

    // 1. The journal cut in the middle of a record: that record and all after
    //    it are lost (a torn tail), nothing else.
    {
        let case = "file-journal-cut";
        let d = tmp.path().join(case);
        copy_dir(&base, &d);
        let (s, e, _) = &journal[journal.len() / 2];
        let cut = (s + e) / 2;
        truncate(&file(&d).join("journal"), cut as u64);
        let lost = souls_in(&journal, cut, usize::MAX);
        let relay = start_damaged("file", &d, case);
        let (served, missing) = check_served(&rt, &relay, &all, &lost, case);
        let warn = wait_for_line(
            &relay,
            &[" WARN ", "journal", &format!("offset={s} ")],
            Duration::ZERO,
        )
        .unwrap_or_else(|| {
            panic!(
                "{case}: no warning naming the torn record:\n{}",
                relay.stderr()
            )
        });
        eprintln!("[{case}] {served} served, {missing} lost (the torn tail); stderr: {warn}");
        restart_is_clean(&rt, relay, "file", &d, &all, &lost, case);
    }

    // 2. Garbage over a few records inside the journal: only those are lost.
    {
        let case = "file-journal-garbage";
        let d = tmp.path().join(case);
        copy_dir(&base, &d);
        let from = journal[journal.len() / 3].0 + 100;
        let to = from + 6000;
        garbage(&file(&d).join("journal"), from, to - from, 5);
        let lost = souls_in(&journal, from, to);
        assert!(!lost.is_empty() && lost.len() < 10, "{lost:?}");
        let relay = start_damaged("file", &d, case);
        let (served, missing) = check_served(&rt, &relay, &all, &lost, case);
        let err = wait_for_line(&relay, &[" ERROR ", "journal", "damaged"], Duration::ZERO)
            .unwrap_or_else(|| panic!("{case}: no error naming the damage:\n{}", relay.stderr()));
        eprintln!(
            "[{case}] {served} served, {missing} lost (records under the garbage); stderr: {err}"
        );
        restart_is_clean(&rt, relay, "file", &d, &all, &lost, case);
    }

    // 3. The snapshot cut in half, with the older snapshot and journal whole:
    //    everything is recovered, and the warning says so.
    {
        let case = "file-snapshot-cut";
        let d = tmp.path().join(case);
        copy_dir(&base, &d);
        let len = std::fs::metadata(file(&d).join("snapshot")).unwrap().len();
        truncate(&file(&d).join("snapshot"), len / 2);
        let relay = start_damaged("file", &d, case);
        let (served, missing) = check_served(&rt, &relay, &all, &HashSet::new(), case);
        assert_eq!(missing, 0);
        let warn = wait_for_line(
            &relay,
            &[" WARN ", "snapshot", "nothing is lost"],
            Duration::ZERO,
        )
        .unwrap_or_else(|| panic!("{case}: no warning:\n{}", relay.stderr()));
        assert!(file(&d).join("snapshot.corrupt").is_file(), "kept aside");
        eprintln!("[{case}] {served} served, nothing lost; stderr: {warn}");
        restart_is_clean(&rt, relay, "file", &d, &all, &HashSet::new(), case);
    }

    // 4. Garbage inside the snapshot, with no older copy left (snapshot.prev and
    //    journal.prev removed): the nodes of the damaged records are lost, every
    //    other node is served.
    {
        let case = "file-snapshot-garbage";
        let d = tmp.path().join(case);
        copy_dir(&base, &d);
        std::fs::remove_file(file(&d).join("snapshot.prev")).unwrap();
        std::fs::remove_file(file(&d).join("journal.prev")).unwrap();
        let boundary = snapshot[2].0;
        let (from, to) = (boundary - 500, boundary + 500);
        garbage(&file(&d).join("snapshot"), from, to - from, 6);
        let lost = souls_in(&snapshot, from, to);
        assert!(!lost.is_empty());
        let relay = start_damaged("file", &d, case);
        let (served, missing) = check_served(&rt, &relay, &all, &lost, case);
        assert_eq!(missing, lost.len());
        let range = format!("bytes {}..{}", snapshot[1].0, snapshot[3].0);
        let err = wait_for_line(&relay, &[" ERROR ", "snapshot", &range], Duration::ZERO)
            .unwrap_or_else(|| panic!("{case}: no error naming {range}:\n{}", relay.stderr()));
        eprintln!(
            "[{case}] {served} served, {missing} lost (nodes of 2 damaged snapshot records); stderr: {err}"
        );
        restart_is_clean(&rt, relay, "file", &d, &all, &lost, case);
    }
}

/// Compacts the file store in `dir` (what it does by itself every 8 MiB of
/// journal), so the test gets snapshots without writing that much.
fn compact(dir: &Path) {
    let store = gun_store_file::FileStore::open(dir).unwrap();
    rt().block_on(store.compact()).unwrap();
}

// --------------------------------------------------------------- sled store

/// What the relay did on a damaged sled database.
enum Outcome {
    /// Refused to start: exit status 1, a clear error.
    Refused(String),
    /// Started and served `served` of the souls; its stderr.
    Served {
        served: usize,
        missing: usize,
        log: String,
    },
}

/// Starts the relay on damaged sled data and checks it does something sensible:
/// no panic, and either a clear refusal (exit 1, the directory named, a hint),
/// or serving what sled still has exactly, with an ERROR saying data was lost
/// when some is missing.
fn sled_case(rt: &tokio::runtime::Runtime, data: &Path, puts: &[Put], case: &str) -> Outcome {
    let dir = data.join("sled").display().to_string();
    match Relay::start("sled", data, 0) {
        Start::Exited { status, stderr } => {
            assert!(!panicked(&stderr), "{case}: panic output:\n{stderr}");
            assert_eq!(status.code(), Some(1), "{case}: {stderr}");
            let line = stderr
                .lines()
                .find(|l| l.starts_with("gun-relay: cannot open sled store"))
                .unwrap_or_else(|| panic!("{case}: no error line:\n{stderr}"));
            assert!(
                line.contains(&dir) && line.contains("damaged"),
                "{case}: {line}"
            );
            assert!(
                stderr.contains(&format!("hint: the store in {dir} is damaged"))
                    && stderr.contains("backup")
                    && stderr.contains("move it aside"),
                "{case}: no hint:\n{stderr}"
            );
            Outcome::Refused(line.to_string())
        }
        Start::Hung { stderr } => panic!("{case}: hung:\n{stderr}"),
        Start::Ready(relay) => {
            assert!(
                !panicked(&relay.stderr()),
                "{case}: panic:\n{}",
                relay.stderr()
            );
            let found = rt
                .block_on(read_back_parallel(relay.port, puts, 4, case))
                .unwrap_or_else(|e| panic!("{case}: reading back: {e}\n{}", relay.stderr()));
            let different: Vec<_> = found
                .iter()
                .zip(puts)
                .filter(|(f, _)| matches!(f, Found::Different(_)))
                .map(|(f, p)| format!("{}: {f:?}", p.soul))
                .collect();
            assert!(
                different.is_empty(),
                "{case}: served wrong data: {different:?}"
            );
            let missing = found.iter().filter(|f| **f == Found::Missing).count();
            if missing > 0 {
                let err = wait_for_line(
                    &relay,
                    &[" ERROR ", &dir, "damaged"],
                    Duration::from_secs(20),
                )
                .unwrap_or_else(|| {
                    panic!(
                        "{case}: {missing} souls lost without an error:\n{}",
                        relay.stderr()
                    )
                });
                eprintln!("[{case}] stderr: {err}");
            }
            let mut relay = relay;
            stop(&mut relay);
            Outcome::Served {
                served: puts.len() - missing,
                missing,
                log: relay.stderr(),
            }
        }
    }
}

#[test]
fn sled_store_serves_what_sled_recovers_or_refuses_clearly() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let puts = populate("sled", &base, "s", 1500, 11);
    let db = base.join("sled").join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    eprintln!("[sled] {} souls written; db {len} bytes", puts.len());
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Damage<'_>)> = vec![
        (
            "sled-db-tail-cut",
            Box::new(|d: &Path| truncate(d, len - 4096)),
        ),
        (
            "sled-db-cut-in-half",
            Box::new(|d: &Path| truncate(d, len / 2)),
        ),
        ("sled-db-cut-to-zero", Box::new(|d: &Path| truncate(d, 0))),
        (
            "sled-db-garbage-middle",
            Box::new(|d: &Path| garbage(d, len as usize / 2, 65536, 7)),
        ),
        (
            "sled-db-garbage-start",
            Box::new(|d: &Path| garbage(d, 16, 4096, 8)),
        ),
        (
            "sled-db-garbage-tail",
            Box::new(|d: &Path| garbage(d, len as usize - 5000, 4096, 9)),
        ),
    ];
    let mut summary = Vec::new();
    for (case, damage) in &cases {
        let d = tmp.path().join(case);
        copy_dir(&base, &d);
        damage(&d.join("sled").join("db"));
        let outcome = sled_case(&rt, &d, &puts, case);
        let text = match &outcome {
            Outcome::Refused(line) => format!("refused: {line}"),
            Outcome::Served {
                served, missing, ..
            } => match missing {
                0 => format!("served all {served} souls exactly (the damage hit no live data)"),
                _ => format!("served {served} souls exactly, {missing} lost (reported)"),
            },
        };
        eprintln!("[{case}] {text}");
        summary.push(format!("{case}: {text}"));
        if let Outcome::Served { missing, log, .. } = outcome {
            // A loss found at open was reported and the database rebuilt from
            // what sled could read (the damaged one kept aside); a tree found
            // to contradict itself later was served read-only and is rebuilt at
            // the next start. After that, starts are clean, serve the same, and
            // take writes.
            let mut starts = 0;
            let mut log = log;
            loop {
                if missing > 0 && log.contains("rebuilt the database") {
                    assert!(
                        d.join("sled.damaged").is_dir(),
                        "{case}: the damaged database is not kept aside"
                    );
                }
                let relay = start_damaged("sled", &d, case);
                starts += 1;
                let again = rt
                    .block_on(read_back_parallel(relay.port, &puts, 4, "again"))
                    .unwrap();
                assert_eq!(
                    again.iter().filter(|f| **f == Found::Missing).count(),
                    missing,
                    "{case}: start {starts} serves other data"
                );
                std::thread::sleep(Duration::from_millis(500));
                let l = relay.stderr();
                if complaints(&l).is_empty() {
                    let mut rng = StdRng::seed_from_u64(98);
                    let extra = random_put(&mut rng, "x1x".into(), format!("extra/{case}"), 3, 9);
                    let mut once = Some(extra);
                    let out =
                        rt.block_on(write(relay.port, 1, Duration::from_secs(30), move || {
                            once.take()
                        }));
                    assert_eq!(
                        out.acked.len(),
                        1,
                        "{case}: not writable after recovery:\n{l}"
                    );
                    let mut relay = relay;
                    stop(&mut relay);
                    break;
                }
                assert!(
                    starts < 2 && log.contains("refuses writes"),
                    "{case}: start {} after the damage still complains:\n{l}",
                    starts + 1
                );
                let mut relay = relay;
                stop(&mut relay);
                log = l;
            }
        }
    }
    // What sled 0.34 does with a cut tail depends on how full its last
    // segment was when the store closed, which varies from run to run (seen:
    // the cut hits no live data; the last writes are lost and reported; sled's
    // recovery fails and the store is refused). Each of those is an answer this
    // test accepts, as checked above: served exactly, losses reported, or
    // refused with a clear line. A database cut in half or to nothing has
    // always been refused (its metadata record is gone while the marker says
    // data was there).
    for s in &summary[1..3] {
        assert!(s.contains("refused"), "{summary:?}");
    }
    eprintln!("[sled] SUMMARY:\n  {}", summary.join("\n  "));
}

// ------------------------------------------------- radisk import, live Gun.js

/// `interop/node_modules/gun`, or `None` (with a message) when `node` is not
/// installed.
fn gun_module() -> Option<PathBuf> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!(
                "SKIPPED: `node` is not available: the live radisk import test needs Node.js"
            );
            return None;
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/node_modules/gun");
    assert!(
        dir.join("package.json").is_file(),
        "Gun.js is not installed at {}: run `npm ci --prefix interop`",
        dir.display()
    );
    Some(std::fs::canonicalize(dir).unwrap())
}

/// Runs gun-store-file's tests/radisk-live.js: the graph its files hold (read by
/// the script) and whether that is all Gun.js held.
fn gunjs_radata(mode: &str, radata: &Path) -> Option<(Value, bool)> {
    let gun = gun_module()?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../gun-store-file/tests/radisk-live.js");
    let out = Command::new("node")
        .arg(script)
        .arg(gun)
        .arg(radata)
        .arg(mode)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "radisk-live.js failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |tag: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag:?} in {stdout}"))
            .to_string()
    };
    let disk: Value = serde_json::from_str(&line("DISK ")).unwrap();
    Some((disk, line("CONVERGED ") == "true"))
}

/// `gun-relay import-radisk RADATA --data DATA --store sled`: its status and stdout.
fn import(radata: &Path, data: &Path) -> (std::process::ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gun-relay"))
        .arg("import-radisk")
        .arg(radata)
        .arg("--data")
        .arg(data)
        .args(["--store", "sled"])
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn relay_imports_and_serves_radisk_written_by_gunjs() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();

    // Intact: 618 souls of users, profiles, addresses, links, nested puts.
    let radata = tmp.path().join("radata-many");
    let Some((disk, converged)) = gunjs_radata("many", &radata) else {
        return;
    };
    let puts = puts_from_graph(&disk);
    assert!(puts.len() >= 300, "Gun.js wrote {} souls", puts.len());
    let data = tmp.path().join("imported");
    let (status, stdout, stderr) = import(&radata, &data);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(!panicked(&stderr), "{stderr}");
    let keys: usize = puts.iter().map(|p| p.fields.len()).sum();
    assert!(
        stdout.starts_with(&format!(
            "imported {} souls, {keys} keys from 1 radisk file(s)",
            puts.len()
        )),
        "{stdout}"
    );
    let mut relay = Relay::start("sled", &data, 0).ready();
    let (served, missing) = check_served(&rt, &relay, &puts, &HashSet::new(), "import");
    assert_eq!((served, missing), (puts.len(), 0));
    eprintln!(
        "[import] {served} souls / {keys} keys imported with `gun-relay import-radisk --store sled` and served exactly (Gun.js's files held all it acked: {converged})"
    );
    stop(&mut relay);

    // Damaged: radisk split into several files, one of them garbage. The import
    // reports that file and brings in the others.
    let radata = tmp.path().join("radata-split");
    let (disk, _) = gunjs_radata("split", &radata).unwrap();
    let puts = puts_from_graph(&disk);
    let files: BTreeSet<String> = std::fs::read_dir(&radata)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "%1C")
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    let victim = files.iter().next_back().unwrap().clone();
    let text = std::fs::read_to_string(radata.join(&victim)).unwrap();
    // What survives: the entries of the other files (a soul may be split over two).
    let gone = radix_keys(&serde_json::from_str(&text).unwrap());
    let puts: Vec<Put> = puts
        .into_iter()
        .map(|mut p| {
            p.fields
                .retain(|(k, _, _)| !gone.contains(&format!("{}\u{1b}{k}", p.soul)));
            p
        })
        .collect();
    let lost: HashSet<String> = puts
        .iter()
        .filter(|p| p.fields.is_empty())
        .map(|p| p.soul.clone())
        .collect();
    assert!(!lost.is_empty() && lost.len() < puts.len());
    let len = text.len();
    garbage(&radata.join(&victim), len / 3, 200, 12);
    let data = tmp.path().join("imported-damaged");
    let (status, stdout, stderr) = import(&radata, &data);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(!panicked(&stderr), "{stderr}");
    assert!(
        stdout.contains("skipped 1 file(s):") && stdout.contains("invalid JSON"),
        "{stdout}"
    );
    let relay = Relay::start("sled", &data, 0).ready();
    let (served, missing) = check_served(&rt, &relay, &puts, &lost, "import-damaged");
    eprintln!(
        "[import-damaged] radisk file {victim:?} garbled: reported ({}), {served} souls served, {missing} lost with it",
        stdout.lines().nth(2).unwrap_or("").trim()
    );
}

/// The full keys (`soul ESC key`) of a radisk radix tree.
fn radix_keys(tree: &Value) -> HashSet<String> {
    fn walk(t: &Value, prefix: &str, out: &mut HashSet<String>) {
        for (label, child) in t.as_object().into_iter().flatten() {
            if label.is_empty() {
                out.insert(prefix.to_string());
            } else {
                walk(child, &format!("{prefix}{label}"), out);
            }
        }
    }
    let mut out = HashSet::new();
    walk(tree, "", &mut out);
    out
}
