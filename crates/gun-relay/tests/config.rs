//! gun-relay for operators: flags from `GUN_RELAY_*` environment variables
//! (a flag wins), start-up errors printed once with their cause (busy port,
//! bad `--log` filter), `--store memory` creating no data directory, and
//! `--serve-gun-js DIR` serving Gun.js's browser files.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Lines, RELAY_BIN, collect_lines};

/// A relay process started with `args` and `env` (no other GUN_RELAY_*
/// variable is inherited), in `cwd`; killed on drop.
struct Proc {
    child: std::process::Child,
    log: Lines,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(RELAY_BIN);
    cmd.current_dir(cwd).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("GUN_RELAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn spawn(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut child = command(cwd, args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Lines::default();
    collect_lines(child.stderr.take().unwrap(), log.clone());
    Proc { child, log }
}

/// Runs a relay that must exit on its own (10 s max).
fn run_to_exit(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = command(cwd, args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

impl Proc {
    /// The `HOST:PORT` of the ready line (20 s max).
    fn ready(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self
                .log
                .find(|l| l.starts_with("gun-relay listening on ws://"))
            {
                let rest = &l["gun-relay listening on ws://".len()..];
                return rest.split("/gun").next().unwrap().to_owned();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("relay exited at start ({st}):\n{}", self.log.tail(20));
            }
            assert!(
                Instant::now() < deadline,
                "no ready line:\n{}",
                self.log.tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

fn get(addr: &str, target: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    Resp {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head,
        body: raw[split + 4..].to_vec(),
    }
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[test]
fn flags_come_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("env-data");
    let port = free_port();
    let mut r = spawn(
        tmp.path(),
        &[],
        &[
            ("GUN_RELAY_HOST", "127.0.0.1"),
            ("GUN_RELAY_PORT", &port.to_string()),
            ("GUN_RELAY_DATA", data.to_str().unwrap()),
            ("GUN_RELAY_STORE", "file"),
            ("GUN_RELAY_LOG", "warn"),
            ("GUN_RELAY_NO_SEA", "true"),
            (
                "GUN_RELAY_PEERS",
                "http://127.0.0.1:9/gun,http://127.0.0.1:10/gun",
            ),
        ],
    );
    let addr = r.ready();
    assert_eq!(addr, format!("127.0.0.1:{port}"));
    let h = get(&addr, "/health").json();
    assert_eq!(h["store"], "file", "{h}");
    assert_eq!(h["sea"], false, "{h}");
    assert_eq!(
        h["dialing"],
        serde_json::json!(["http://127.0.0.1:9/gun", "http://127.0.0.1:10/gun"]),
        "GUN_RELAY_PEERS is comma-separated"
    );
    assert!(data.join("file").is_dir(), "GUN_RELAY_DATA used");
    // warn: the info line "relay ready" is not logged.
    assert!(r.log.find(|l| l.contains("relay ready")).is_none());
}

#[test]
fn sled_page_cache_comes_from_the_flag_or_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_line = |r: &mut Proc| {
        r.ready();
        r.log
            .find(|l| l.contains("sled store open"))
            .expect("the sled store logs its cache when opened")
    };
    // The relay's default: 128 MiB, not sled's 1 GiB.
    let mut r = spawn(tmp.path(), &["--port", "0", "--data", "d1"], &[]);
    let line = cache_line(&mut r);
    assert!(line.contains("cache_bytes=134217728"), "{line}");
    drop(r);
    let mut r = spawn(
        tmp.path(),
        &["--port", "0", "--data", "d2"],
        &[("GUN_RELAY_SLED_CACHE_MB", "32")],
    );
    let line = cache_line(&mut r);
    assert!(line.contains("cache_bytes=33554432"), "{line}");
    drop(r);
    // 0: sled's own default.
    let mut r = spawn(
        tmp.path(),
        &["--port", "0", "--data", "d3", "--sled-cache-mb", "0"],
        &[("GUN_RELAY_SLED_CACHE_MB", "32")],
    );
    let line = cache_line(&mut r);
    assert!(line.contains("cache_bytes=1073741824"), "{line}");
}

#[test]
fn a_flag_wins_over_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let (env_port, flag_port) = (free_port(), free_port());
    let mut r = spawn(
        tmp.path(),
        &["--port", &flag_port.to_string(), "--store", "memory"],
        &[
            ("GUN_RELAY_PORT", &env_port.to_string()),
            ("GUN_RELAY_STORE", "sled"),
            ("GUN_RELAY_NO_SEA", "false"),
        ],
    );
    let addr = r.ready();
    assert_eq!(addr, format!("127.0.0.1:{flag_port}"));
    let h = get(&addr, "/health").json();
    assert_eq!(h["store"], "memory", "{h}");
    assert_eq!(h["sea"], true, "{h}");
    assert!(TcpStream::connect(("127.0.0.1", env_port)).is_err());
}

#[test]
fn help_names_the_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_to_exit(tmp.path(), &["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for v in [
        "GUN_RELAY_HOST",
        "GUN_RELAY_PORT",
        "GUN_RELAY_DATA",
        "GUN_RELAY_STORE",
        "GUN_RELAY_PEERS",
        "GUN_RELAY_LOG",
        "GUN_RELAY_NO_SEA",
        "GUN_RELAY_STATIC",
        "GUN_RELAY_SERVE_GUN_JS",
        "GUN_RELAY_SLED_CACHE_MB",
        "GUN_RELAY_MAX_DEFERRED_KEYS",
    ] {
        assert!(
            help.contains(&format!("[env: {v}=")),
            "{v} in --help:\n{help}"
        );
    }
}

#[test]
fn busy_port_is_reported_once_with_its_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = run_to_exit(
        tmp.path(),
        &["--port", &port, "--store", "memory", "--log", "info"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("in use").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("cannot listen on").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("gun-relay: cannot listen on 127.0.0.1:{port}: ")),
        "{stderr}"
    );
}

#[test]
fn bad_log_filter_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, env) in [
        (&["--log", "bogus!!"][..], &[][..]),
        (&["--log", "info,gun=loud"][..], &[][..]),
        (&[][..], &[("GUN_RELAY_LOG", "bogus!!")][..]),
    ] {
        let mut all = vec!["--port", "0", "--store", "memory"];
        all.extend_from_slice(args);
        let out = run_to_exit(tmp.path(), &all, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("--log"), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

#[test]
fn memory_store_creates_no_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = spawn(
        tmp.path(),
        &["--port", "0", "--store", "memory", "--log", "warn"],
        &[],
    );
    let addr = r.ready();
    assert_eq!(get(&addr, "/health").status, 200);
    let explicit = tmp.path().join("explicit");
    let mut r2 = spawn(
        tmp.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--data",
            explicit.to_str().unwrap(),
        ],
        &[],
    );
    r2.ready();
    drop((r, r2));
    let left: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "created: {left:?}");
}

fn gun_package() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/node_modules/gun");
    assert!(
        dir.join("gun.js").is_file(),
        "{} is missing: run `npm ci --prefix interop --no-audit --no-fund`",
        dir.display()
    );
    dir
}

#[test]
fn serves_gun_js_from_an_npm_install() {
    let gun = gun_package();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>app</h1>").unwrap();
    std::fs::write(site.join("gun.js"), "not gun").unwrap();
    let mut r = spawn(
        tmp.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--log",
            "warn",
            "--serve-gun-js",
            gun.to_str().unwrap(),
            "--static",
            site.to_str().unwrap(),
        ],
        &[],
    );
    let addr = r.ready();
    for (path, file) in [
        ("/gun.js", "gun.js"),
        ("/sea.js", "sea.js"),
        ("/lib/webrtc.js", "lib/webrtc.js"),
        ("/gun/lib/radix.js", "lib/radix.js"),
        ("/gun/sea.js", "sea.js"),
    ] {
        let resp = get(&addr, path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(
            resp.body,
            std::fs::read(gun.join(file)).unwrap(),
            "{path} is {file}"
        );
        let ct = resp.header("content-type").unwrap();
        assert!(ct.starts_with("text/javascript"), "{path}: {ct}");
        assert_eq!(
            resp.header("access-control-allow-origin").as_deref(),
            Some("*")
        );
    }
    // Only the mounted paths: the rest is the static site, or 404.
    assert_eq!(get(&addr, "/").body, b"<h1>app</h1>");
    assert_eq!(get(&addr, "/package.json").status, 404);
    assert_eq!(get(&addr, "/lib/../../../etc/passwd").status, 404);
    assert_eq!(get(&addr, "/lib/%2e%2e/gun.js").status, 404);
    assert_eq!(get(&addr, "/health").json()["ok"], true);
}

#[test]
fn serve_gun_js_from_the_environment_and_without_static() {
    let gun = gun_package();
    let tmp = tempfile::tempdir().unwrap();
    let mut r = spawn(
        tmp.path(),
        &["--port", "0", "--store", "memory"],
        &[("GUN_RELAY_SERVE_GUN_JS", gun.to_str().unwrap())],
    );
    let addr = r.ready();
    assert_eq!(
        get(&addr, "/gun.js").body,
        std::fs::read(gun.join("gun.js")).unwrap()
    );
    // Health stays at / without --static.
    assert_eq!(get(&addr, "/").json()["name"], "gun-relay");
}

#[test]
fn serve_gun_js_refuses_a_folder_without_gun_js() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_to_exit(
        tmp.path(),
        &[
            "--port",
            "0",
            "--store",
            "memory",
            "--serve-gun-js",
            tmp.path().to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("--serve-gun-js").count(), 1, "{stderr}");
    assert!(stderr.contains("no gun.js"), "{stderr}");
}
