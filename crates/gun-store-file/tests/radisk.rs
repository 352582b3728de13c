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

/// `interop/node_modules/gun`, or a panic saying how to get it.
fn gun_module() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/node_modules/gun");
    if !dir.join("package.json").is_file() {
        panic!(
            "Gun.js is not installed at {}: run `npm ci --prefix interop` in the repository \
             (interop/package.json pins gun 0.2020.1241); this test writes a radisk directory with it",
            dir.display()
        );
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`node --version` failed ({}): the live radisk test needs Node.js",
            o.status
        ),
        Err(e) => panic!("cannot run `node` ({e}): the live radisk test needs Node.js on PATH"),
    }
    // node resolves `..` lexically; hand it the real path.
    std::fs::canonicalize(&dir).unwrap()
}

/// Runs tests/radisk-live.js and returns the graph Gun.js held.
fn run_gun(mode: &str, radata: &Path) -> Graph {
    let gun = gun_module();
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
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("radisk-live.js did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap().unwrap();
    let stderr = err_reader.join().unwrap().unwrap();
    assert!(
        status.success(),
        "radisk-live.js {mode} failed ({status}):\n{stdout}\n{stderr}"
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("GRAPH "))
        .unwrap_or_else(|| panic!("radisk-live.js printed no graph:\n{stdout}"));
    Graph::from_wire(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_a_directory_written_by_gunjs() {
    let tmp = tempfile::tempdir().unwrap();
    let radata = tmp.path().join("radata");
    let gun_graph = run_gun("graph", &radata);
    assert_eq!(
        gun_graph.len(),
        7,
        "souls Gun.js wrote: {:?}",
        gun_graph.souls().collect::<Vec<_>>()
    );

    let store = FileStore::open(tmp.path().join("store")).unwrap();
    let report = import_radisk(&radata, &store).await.unwrap();
    assert_eq!(report.files, ["!"]);
    assert!(
        report.skipped.is_empty() && report.skipped_files.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        (report.souls, report.keys),
        (gun_graph.len(), gun_graph.key_count())
    );

    // Every value and every state exactly as Gun.js held them.
    let imported = everything(&store).await;
    assert_eq!(imported, gun_graph);

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
    assert_eq!(everything(&store).await, gun_graph);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_a_split_directory_written_by_gunjs() {
    let tmp = tempfile::tempdir().unwrap();
    let radata = tmp.path().join("radata");
    let gun_graph = run_gun("split", &radata);
    assert_eq!(gun_graph.len(), 1800);

    let store = MemoryStore::new();
    let report = import_radisk(&radata, &store).await.unwrap();
    assert!(
        report.files.len() >= 2,
        "radisk split its first file: {:?}",
        report.files
    );
    assert_eq!(report.files[0], "!");
    assert!(
        report.skipped.is_empty() && report.skipped_files.is_empty(),
        "{report:?}"
    );
    assert_eq!((report.souls, report.keys), (1800, 3600));
    assert_eq!(everything(&store).await, gun_graph);
}
