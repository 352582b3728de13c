//! Relays for the facade's tests: gun-relay in process (`gun::server::Relay`)
//! and a genuine Gun.js relay process (interop/lib/gunjs-relay.js, needs
//! `npm ci --prefix interop`), and clients of them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gun::server::{Relay, RelayOptions, StoreKind};
use gun::{Gun, GunOptions};

/// Which relay a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// gun-relay (the facade's `server`), in this process, sled store.
    GunRs,
    /// Genuine Gun.js (npm gun 0.2020.1241) with radisk, AXE and SEA.
    GunJs,
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether a Gun.js relay can run here. Without node or interop/node_modules
/// the Gun.js half is skipped with a SKIPPED line, except under CI (CI=true),
/// where that is a failure.
pub fn gunjs_available() -> bool {
    let installed = repo()
        .join("interop/node_modules/gun/package.json")
        .is_file();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && node {
        return true;
    }
    let why = if node {
        "interop/node_modules has no gun: run `npm ci --prefix interop`"
    } else {
        "no `node` on PATH"
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the Gun.js relay cases cannot run: {why}");
    }
    eprintln!("SKIPPED (Gun.js relay): {why}");
    false
}

/// The relays every case runs against.
pub fn kinds() -> Vec<Kind> {
    let mut k = vec![Kind::GunRs];
    if gunjs_available() {
        k.push(Kind::GunJs);
    }
    k
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/gun")
}

pub struct TestRelay {
    pub kind: Kind,
    pub port: u16,
    pub rs: Option<Relay>,
    js: Option<Child>,
    _dir: tempfile::TempDir,
}

impl TestRelay {
    /// Starts a relay of `kind` on `port` (0: any free port).
    pub async fn start(kind: Kind, port: u16) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        match kind {
            Kind::GunRs => {
                let relay = Relay::start(RelayOptions {
                    listen: format!("127.0.0.1:{port}").parse().unwrap(),
                    store: StoreKind::Sled,
                    data_dir: dir.path().to_path_buf(),
                    ..RelayOptions::default()
                })
                .unwrap();
                TestRelay {
                    kind,
                    port: relay.local_addr().port(),
                    rs: Some(relay),
                    js: None,
                    _dir: dir,
                }
            }
            Kind::GunJs => {
                let script = repo().join("interop/lib/gunjs-relay.js");
                let mut child = Command::new("node")
                    .arg(&script)
                    .arg(port.to_string())
                    .arg(dir.path().join("radata"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start the Gun.js relay");
                let stdout = child.stdout.take().unwrap();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                        if let Some(p) = line.strip_prefix("READY ") {
                            let _ = tx.send(p.trim().parse::<u16>().ok());
                        }
                    }
                });
                let port =
                    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
                        .await
                        .unwrap()
                        .ok()
                        .flatten()
                        .expect("the Gun.js relay did not print READY within 30 s");
                TestRelay {
                    kind,
                    port,
                    rs: None,
                    js: Some(child),
                    _dir: dir,
                }
            }
        }
    }

    pub fn url(&self) -> String {
        url(self.port)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.rs.take() {
            r.shutdown().await.unwrap();
        }
        if let Some(mut c) = self.js.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(c) = self.js.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A client of `url` on the memory store.
pub fn client(url: &str) -> Gun {
    Gun::new(GunOptions {
        peers: vec![url.to_owned()],
        wait: Duration::from_secs(4),
        ..Default::default()
    })
}

/// Waits until `g` has a connected peer (at most 15 s).
pub async fn connected(g: &Gun) {
    let t = Instant::now();
    while g.engine().peer_count() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no peer connected in 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A soul no other case or run uses.
pub fn soul(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
}
