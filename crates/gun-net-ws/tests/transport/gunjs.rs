//! Smoke test against a genuine Gun.js relay (npm gun@0.2020.1241, node).
//!
//! Needs `node` and `npm` (the pinned packages are installed on first use by the interop kit's
//! `lib/deps.sh` into a per-user cache). The kit is found at `$GUN_INTEROP_KIT`, else
//! `<repo>/../shared/interop` (where CI and developers have it), else `/work/shared/interop`.
//! Without it (a bare clone) the test prints a SKIPPED line and passes, except under CI
//! (`CI=true`), where a missing kit is a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gun_net_ws::{Client, ClientOptions, Direction};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::hub::{Event, TestHub};

fn interop_kit() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("GUN_INTEROP_KIT").map(PathBuf::from),
        Some(manifest.join("../../../shared/interop")),
        Some(PathBuf::from("/work/shared/interop")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|dir| dir.join("gunjs-relay.js").is_file());
    if found.is_none() {
        let why = format!(
            "Gun.js interop kit not found (looked at $GUN_INTEROP_KIT, {}/../../../shared/interop, \
             /work/shared/interop): cannot start a genuine Gun.js relay",
            manifest.display()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: Gun.js relay smoke test: ../shared/interop not found (CI has it)");
    }
    found
}

/// Installs (once) and locates the pinned npm packages; returns NODE_PATH.
async fn node_path(kit: &Path) -> String {
    let node = Command::new("node").arg("--version").output().await;
    match node {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "`node` is not available ({other:?}): the Gun.js interop smoke test needs node >= 18 \
             and npm (apt-get install nodejs npm)"
        ),
    }
    let script = format!(
        ". '{}/lib/deps.sh' && gun_interop_deps '{}'",
        kit.display(),
        kit.display()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output(),
    )
    .await
    .expect("npm install of the Gun.js interop packages took more than 5 minutes")
    .expect("cannot run bash for the interop kit's deps.sh");
    assert!(
        out.status.success(),
        "installing gun@0.2020.1241 for the interop test failed (npm ci; see stderr above)"
    );
    let dir = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    format!("{dir}/node_modules")
}

/// Starts `gunjs-relay.js --port 0 --no-radisk`; returns the child and its port.
async fn start_relay() -> Option<(Child, u16)> {
    let kit = interop_kit()?;
    let node_path = node_path(&kit).await;
    let mut child = Command::new("node")
        .arg(kit.join("gunjs-relay.js"))
        .args(["--port", "0", "--no-radisk"])
        .env("NODE_PATH", node_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start node gunjs-relay.js");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(port) = line.strip_prefix("READY ") {
                return port.trim().parse::<u16>().expect("READY <port>");
            }
        }
        panic!("gunjs-relay.js exited without printing READY <port>");
    })
    .await
    .expect("gunjs-relay.js did not print READY within 30 s");
    // Keep draining its stdout so the relay never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some((child, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_gunjs_relay_greets_our_client_first() {
    let Some((mut relay, port)) = start_relay().await else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}/gun");
    let hub = TestHub::new();
    let client = Client::dial(&url, hub.clone(), ClientOptions::default()).unwrap();
    let peer = tokio::time::timeout(Duration::from_secs(10), client.connected())
        .await
        .expect("connected to the Gun.js relay")
        .unwrap();
    assert_eq!(hub.attached(0).await.1, Direction::Outgoing { url });
    let first = hub
        .wait_for("the relay's first frame", |ev| {
            ev.iter().find_map(|e| match e {
                Event::Receive(p, f) if *p == peer => Some(f.clone()),
                _ => None,
            })
        })
        .await;
    // §3: the accepting side sends {"#":id,"dam":"?","pid":<its pid>} before anything else.
    assert!(
        first.starts_with('{'),
        "first frame is not one JSON object: {first}"
    );
    assert!(
        first.contains(r#""dam":"?""#),
        "first frame is not the dam:? greeting: {first}"
    );
    let pid = first
        .split(r#""pid":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("greeting without a pid: {first}"));
    assert_eq!(pid.len(), 9, "Gun pids are 9 chars: {first}");

    // The mesh's job, done by hand: answer the greeting, then read something back.
    let id = first
        .split(r##""#":""##)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    hub.send(
        peer,
        &format!(r##"{{"#":"rsAnswer1","@":"{id}","dam":"?","pid":"rustpeer1"}}"##),
    )
    .unwrap();
    hub.send(
        peer,
        r##"{"#":"rsGet00001","get":{"#":"gun-net-ws-smoke"}}"##,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        client.is_connected(),
        "the relay dropped us after our frames"
    );

    client.shutdown().await;
    hub.detached(peer).await;
    let _ = relay.kill().await;
}
