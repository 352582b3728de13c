//! `import_radisk` on real Gun.js radisk directories:
//!
//! * the captures of a stock relay (`tests/data/`, byte-for-byte copies of
//!   `shared/spec/captures/radisk-relay1-files.json` and `radisk-split.json`,
//!   made by `shared/spec/captures/tools/run-all.sh` with gun 0.2020.1241);
//! * directories written live by genuine Gun.js (`tests/radisk-live.js`, run with
//!   node against `interop/node_modules/gun`), compared value by value and state
//!   by state with the graph Gun itself held.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gun_graph::{Graph, Lex, Soul, Value};
use gun_store::Store;
use gun_store_file::{FileStore, SkipReason, import_radisk};
use gun_store_memory::MemoryStore;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Writes `{file name: contents}` as a directory.
fn write_dir(files: &serde_json::Map<String, serde_json::Value>, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text.as_str().unwrap()).unwrap();
    }
}

async fn everything(store: &dyn Store) -> Graph {
    store
        .query(&Lex::default(), &Lex::default(), None)
        .await
        .unwrap()
}

#[test]
fn test_data_matches_the_shared_captures() {
    // The copies must stay identical to the captures (when shared/ is beside the repo).
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/captures");
    if !shared.is_dir() {
        eprintln!("shared/spec/captures not found next to the repository; comparing skipped");
        return;
    }
    for f in ["radisk-relay1-files.json", "radisk-split.json"] {
        assert_eq!(
            std::fs::read(data(f)).unwrap(),
            std::fs::read(shared.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[tokio::test]
async fn imports_the_relay1_capture() {
    let files: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(data("radisk-relay1-files.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("radata");
    write_dir(&files, &dir);
    let store = MemoryStore::new();
    let report = import_radisk(&dir, &store).await.unwrap();

    assert_eq!(report.files, ["!"]);
    assert!(
        report.skipped_files.is_empty(),
        "{:?}",
        report.skipped_files
    );
    // 70 leaves: 69 imported, one with a string state (the Gun.js bug of §8.2).
    assert_eq!((report.souls, report.keys), (26, 69));
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert_eq!(report.skipped[0].key, "hamoe3as\u{1b}s");
    assert_eq!(
        report.skipped[0].reason,
        SkipReason::StringState("1795643424521".into())
    );

    let g = everything(&store).await;
    assert_eq!(g.len(), 26);
    assert_eq!(g.key_count(), 69);
    let alice = g.get("alice2ie3").unwrap();
    assert_eq!(alice.value("name"), Some(&Value::from("Alice")));
    assert_eq!(alice.value("age"), Some(&Value::from(30)));
    assert_eq!(
        alice.value("car"),
        Some(&Value::Link(Soul::new("car2ie3").unwrap()))
    );
    assert_eq!(alice.state("name").unwrap().as_f64(), 1795643412520.0);
    let big = g.get("big2ie3").unwrap();
    assert_eq!(big.len(), 20);
    for i in 0..20u32 {
        assert_eq!(big.value(&format!("k{i:02}")), Some(&Value::from(i)));
    }
    let ham = g.get("hamoe3a").unwrap();
    assert_eq!(
        ham.value("t"),
        Some(&Value::Null),
        "tombstones are imported"
    );
    assert_eq!(ham.value("n"), Some(&Value::from(6)));
    assert_eq!(
        g.get("hamoe3af").unwrap().value("x"),
        Some(&Value::from("future"))
    );
    assert!(
        g.get("hamoe3as").is_none(),
        "the string-state entry is skipped"
    );
    // Fractional states survive exactly.
    let user = g.get("~5Ic1Dkxfa5JKc4qVp_rIj4W2IAgxWMF9ZAi_iDzqyys.yPHFDYVMWpke7ThV8TzmuZARFgy9zt2j2210Xqy16sI").unwrap();
    assert_eq!(user.state("status").unwrap().as_f64(), 1795643451809.001);
    // Souls split over several radix labels come back whole.
    let pet = g.get("ciqy8-alice/pet").unwrap();
    assert_eq!(pet.value("name"), Some(&Value::from("Tom")));
    assert_eq!(g.get("~@malloryfu3o").unwrap().len(), 1);
    let fruit = g.get("fruit2ie3").unwrap();
    assert_eq!(
        fruit.keys().collect::<Vec<_>>(),
        ["apple", "apricot", "banana", "cherry", "date"]
    );

    // Importing again changes nothing (HAM in the store).
    let again = import_radisk(&dir, &store).await.unwrap();
    assert_eq!(again.keys, 69);
    assert_eq!(everything(&store).await, g);
}

#[tokio::test]
async fn reports_the_split_capture_it_cannot_read() {
    // The capture holds the directory file and only the first 200 characters of
    // `!` (after a line Gun.js printed to stdout).
    let text = std::fs::read_to_string(data("radisk-split.json")).unwrap();
    let json = &text[text.find('{').unwrap()..];
    let cap: serde_json::Value = serde_json::from_str(json).unwrap();
    let names: Vec<&str> = cap["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["!", "%1C", "soul01500%1Bval"]);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("radata");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("%1C"), cap["directory_file"].as_str().unwrap()).unwrap();
    std::fs::write(dir.join("!"), cap["first_file_head"].as_str().unwrap()).unwrap();
    let store = MemoryStore::new();
    let report = import_radisk(&dir, &store).await.unwrap();
    assert!(report.files.is_empty());
    let mut skipped: Vec<(String, String)> = report
        .skipped_files
        .iter()
        .map(|f| (f.file.clone(), f.reason.to_string()))
        .collect();
    skipped.sort();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "!");
    assert!(skipped[0].1.starts_with("invalid JSON"), "{skipped:?}");
    assert_eq!(
        skipped[1],
        (
            "soul01500\u{1b}val".to_string(),
            "listed in %1C but missing".to_string()
        )
    );
    assert!(everything(&store).await.is_empty());
}

#[tokio::test]
async fn line_format_files_and_unlisted_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("%1C"), r#"{"!":{"":1},"b":{"":0}}"#).unwrap();
    std::fs::write(
        dir.join("!"),
        "\u{1f}\u{1f}#\u{1f}\"a\u{1b}b\u{1f}=\u{1f}+1\u{1f}\n",
    )
    .unwrap();
    std::fs::write(dir.join("b"), r#"{"b\u001bk":{"":{":":1,">":1}}}"#).unwrap();
    let report = import_radisk(dir, &MemoryStore::new()).await.unwrap();
    let mut reasons: Vec<String> = report
        .skipped_files
        .iter()
        .map(|f| format!("{}: {}", f.file, f.reason))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "!: line-based RAD format (gun 0.2019), not supported",
            "b: not listed in %1C (radisk ignores it too)",
        ]
    );
    assert_eq!(report.keys, 0);
    // Without a directory file every file is read.
    std::fs::remove_file(dir.join("%1C")).unwrap();
    std::fs::remove_file(dir.join("!")).unwrap();
    let report = import_radisk(dir, &MemoryStore::new()).await.unwrap();
    assert_eq!((report.files.len(), report.keys), (1, 1));
    // A missing directory is an error.
    assert!(
        import_radisk(&dir.join("nope"), &MemoryStore::new())
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------
// live Gun.js

/// `interop/node_modules/gun`, or `None` (with a message) when `node` is not
/// installed. With node but without Gun.js, a panic saying how to get it.
fn gun_module() -> Option<PathBuf> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`node --version` failed ({}): the live radisk tests need a working Node.js",
            o.status
        ),
        Err(e) => {
            eprintln!(
                "SKIPPED: cannot run `node` ({e}): the live radisk tests need Node.js on PATH"
            );
            return None;
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/node_modules/gun");
    if !dir.join("package.json").is_file() {
        panic!(
            "Gun.js is not installed at {}: run `npm ci --prefix interop` in the repository \
             (interop/package.json pins gun 0.2020.1241); this test writes a radisk directory with it",
            dir.display()
        );
    }
    // node resolves `..` lexically; hand it the real path.
    Some(std::fs::canonicalize(&dir).unwrap())
}

/// What tests/radisk-live.js reported.
struct Live {
    /// The graph Gun.js held in memory.
    graph: Graph,
    /// The graph its files hold, as read by the script's own radix walk.
    disk: Graph,
    /// Whether the files came to hold all of `graph`.
    converged: bool,
    /// Full radisk keys of the entries the script found unusable.
    bad: Vec<String>,
}

/// Runs tests/radisk-live.js (`None`: node is not installed).
fn run_gun(mode: &str, radata: &Path) -> Option<Live> {
    let gun = gun_module()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/radisk-live.js");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(&gun)
        .arg(radata)
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning node");
    // Drain the pipes on threads, so a large graph cannot fill them and stall node.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out_pipe, &mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err_pipe, &mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(150) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("radisk-live.js did not finish in 150 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap().unwrap();
    let stderr = err_reader.join().unwrap().unwrap();
    assert!(
        status.success(),
        "radisk-live.js {mode} failed ({status}):\n{stdout}\n{stderr}"
    );
    let line = |tag: &str| -> &str {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("radisk-live.js printed no {tag:?} line:\n{stdout}"))
    };
    let live = Live {
        graph: Graph::from_wire(line("GRAPH ")).unwrap(),
        disk: Graph::from_wire(line("DISK ")).unwrap(),
        converged: line("CONVERGED ") == "true",
        bad: serde_json::from_str(line("BAD ")).unwrap(),
    };
    eprintln!(
        "radisk-live.js {mode}: Gun.js held {} souls / {} keys; its files hold {} / {}; {} unusable entries; converged: {}",
        live.graph.len(),
        live.graph.key_count(),
        live.disk.len(),
        live.disk.key_count(),
        live.bad.len(),
        live.converged
    );
    Some(live)
}

/// Keys of `want` that `got` does not hold with the same value and state.
fn differing(want: &Graph, got: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (soul, node) in want.iter() {
        for (key, e) in node.iter() {
            let same = got
                .get(soul.as_str())
                .and_then(|n| n.get(key))
                .is_some_and(|g| g.state == e.state && g.value == e.value);
            if !same {
                out.push(format!("{soul:?}.{key:?}"));
            }
        }
    }
    out
}

/// The checks every live import gets: the import holds exactly what the files
/// hold (read independently by the script), skips exactly the entries the
/// script found unusable, and equals Gun.js's own graph whenever the files came
/// to hold all of it (genuine radisk corrupts a few entries now and then; those
/// are then reported, and must be fewer than half).
fn check_live_import(live: &Live, report: &gun_store_file::ImportReport, imported: &Graph) {
    assert!(
        report.skipped_files.is_empty(),
        "{:?}",
        report.skipped_files
    );
    let mut skipped: Vec<&str> = report.skipped.iter().map(|s| s.key.as_str()).collect();
    skipped.sort_unstable();
    let mut bad: Vec<&str> = live.bad.iter().map(String::as_str).collect();
    bad.sort_unstable();
    assert_eq!(skipped, bad, "skipped entries: {:?}", report.skipped);
    let d = differing(&live.disk, imported);
    assert!(d.is_empty(), "imported differs from the files at {d:?}");
    assert_eq!(imported, &live.disk, "the import holds more than the files");
    assert_eq!(
        (report.souls, report.keys),
        (live.disk.len(), live.disk.key_count())
    );
    let lost = differing(&live.graph, imported);
    if live.converged {
        assert!(lost.is_empty(), "{lost:?}");
        assert_eq!(imported, &live.graph);
    } else {
        eprintln!(
            "NOTE: genuine Gun.js acked {} keys its radisk files do not hold intact \
             (a radisk bug, spec §14.11; the import matches the files): {:?}",
            lost.len(),
            lost.iter().take(20).collect::<Vec<_>>()
        );
        assert!(
            lost.len() * 2 <= live.graph.key_count(),
            "Gun.js's files lost more than half of its keys ({} of {}): not a useful test run",
            lost.len(),
            live.graph.key_count()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_a_directory_written_by_gunjs() {
    let tmp = tempfile::tempdir().unwrap();
    let radata = tmp.path().join("radata");
    let Some(live) = run_gun("graph", &radata) else {
        return;
    };
    assert_eq!(
        live.graph.len(),
        7,
        "souls Gun.js wrote: {:?}",
        live.graph.souls().collect::<Vec<_>>()
    );
    assert!(
        live.converged,
        "radisk did not write this small graph intact"
    );

    let store = FileStore::open(tmp.path().join("store")).unwrap();
    let report = import_radisk(&radata, &store).await.unwrap();
    assert_eq!(report.files, ["!"]);
    let imported = everything(&store).await;
    check_live_import(&live, &report, &imported);

    // Every value and every state exactly as Gun.js held them.
    let alice = imported.get("alice").unwrap();
    assert_eq!(alice.value("name"), Some(&Value::from("Alice")));
    assert_eq!(alice.value("age"), Some(&Value::from(30)));
    assert_eq!(alice.value("frac"), Some(&Value::number(0.1).unwrap()));
    assert_eq!(alice.value("big"), Some(&Value::number(1e21).unwrap()));
    assert_eq!(alice.value("tiny"), Some(&Value::number(5e-324).unwrap()));
    assert_eq!(alice.value("yes"), Some(&Value::Bool(true)));
    assert_eq!(alice.value("nothing"), Some(&Value::Null));
    assert_eq!(
        alice.value("uni"),
        Some(&Value::from("héllo wörld 😀 日本語"))
    );
    assert_eq!(
        alice.value("quote"),
        Some(&Value::from("say \"hi\"\n\ttab \\ slash /"))
    );
    assert_eq!(
        alice.value("friend"),
        Some(&Value::Link(Soul::new("bob").unwrap()))
    );
    assert!(
        alice.state("friend") > alice.state("name"),
        "Gun.js states grow"
    );
    let u = imported.get("ünïcödé/😀").unwrap();
    assert_eq!(u.value("ключ"), Some(&Value::from("значение")));
    let carol = imported.get("carol").unwrap();
    let pet = carol.value("pet").and_then(Value::as_link).unwrap();
    assert_eq!(
        imported.get(pet.as_str()).unwrap().value("kind"),
        Some(&Value::from("cat"))
    );
    assert_eq!(imported.get("gone").unwrap().value("a"), Some(&Value::Null));
    assert_eq!(
        imported.get("../x").unwrap().value("path"),
        Some(&Value::from("not a path"))
    );

    // And it survives reopening the file store.
    drop(store);
    let store = FileStore::open(tmp.path().join("store")).unwrap();
    assert_eq!(everything(&store).await, live.graph);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_a_split_directory_written_by_gunjs() {
    let tmp = tempfile::tempdir().unwrap();
    let radata = tmp.path().join("radata");
    let Some(live) = run_gun("split", &radata) else {
        return;
    };
    assert_eq!(live.graph.len(), 1800);

    let store = MemoryStore::new();
    let report = import_radisk(&radata, &store).await.unwrap();
    assert!(
        report.files.len() >= 2,
        "radisk split its first file: {:?}",
        report.files
    );
    assert_eq!(report.files[0], "!");
    check_live_import(&live, &report, &everything(&store).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_many_nested_souls_written_by_gunjs() {
    let tmp = tempfile::tempdir().unwrap();
    let radata = tmp.path().join("radata");
    let Some(live) = run_gun("many", &radata) else {
        return;
    };
    // 200 users x 3 nodes, and 6 nested puts x 3 nodes.
    assert_eq!(live.graph.len(), 618);

    let store = FileStore::open(tmp.path().join("store")).unwrap();
    let report = import_radisk(&radata, &store).await.unwrap();
    let imported = everything(&store).await;
    check_live_import(&live, &report, &imported);

    // What the data set is made of, as imported (where Gun.js wrote it intact).
    let kinds = |pred: fn(&Value) -> bool| {
        imported
            .iter()
            .flat_map(|(_, n)| n.iter().map(|(_, e)| e.value.clone()))
            .filter(&pred)
            .count()
    };
    assert!(kinds(|v| matches!(v, Value::Link(_))) >= 500, "links");
    assert!(kinds(|v| matches!(v, Value::Bool(_))) >= 400, "booleans");
    assert!(kinds(|v| matches!(v, Value::Null)) >= 100, "nulls");
    assert!(kinds(|v| matches!(v, Value::Number(_))) >= 1000, "numbers");
    assert!(
        kinds(|v| matches!(v, Value::String(s) if !s.is_ascii())) >= 300,
        "unicode text"
    );
    // Gun's own nested puts: parent -> child -> grandchild by the souls Gun made.
    for i in 0..6 {
        let Some(top) = imported.get(format!("nest/{i}").as_str()) else {
            continue; // reported above if Gun.js lost it
        };
        let child = top.value("child").and_then(Value::as_link).unwrap();
        let child = imported.get(child.as_str()).unwrap();
        assert_eq!(child.value("depth"), Some(&Value::from(2)));
        let grand = child.value("child").and_then(Value::as_link).unwrap();
        assert_eq!(
            imported.get(grand.as_str()).unwrap().value("n"),
            Some(&Value::number(f64::from(i) * 0.5).unwrap())
        );
    }
    // Reopened, the file store still holds all of it.
    drop(store);
    let store = FileStore::open(tmp.path().join("store")).unwrap();
    assert_eq!(everything(&store).await, imported);
}
