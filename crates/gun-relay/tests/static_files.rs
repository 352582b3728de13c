//! `gun-relay --static DIR` over real HTTP: files and content types, index.html
//! for directories, 404s for traversal attempts (`..`, `%2e%2e`, absolute
//! paths, symlinks out of DIR), health at /health, /stats and /dashboard.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Relay {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(static_dir: Option<&Path>) -> Relay {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gun-relay"));
    cmd.args([
        "--port", "0", "--store", "memory", "--log", "warn", "--data",
    ])
    .arg(data.path());
    if let Some(d) = static_dir {
        cmd.arg("--static").arg(d);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            let Ok(l) = l else { break };
            if let Some(rest) = l.strip_prefix("gun-relay listening on ws://") {
                let _ = tx.send(rest.split("/gun").next().unwrap().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("relay ready line");
    Relay {
        child,
        addr,
        _data: data,
    }
}

struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends `method target` as written (no normalization of the target).
fn request(addr: &str, method: &str, target: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Resp {
        status,
        headers: head,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(addr: &str, target: &str) -> Resp {
    request(addr, "GET", target)
}

fn site() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for (f, body) in [
        ("index.html", "<h1>root</h1>"),
        ("sub/index.html", "<h1>sub</h1>"),
        ("app.js", "console.log(1)"),
        ("style.css", "body{}"),
        ("data.json", "{}"),
        ("logo.png", "png"),
        ("logo.svg", "<svg/>"),
        ("favicon.ico", "ico"),
        ("notes.txt", "notes"),
        ("mod.wasm", "wasm"),
    ] {
        std::fs::write(root.join(f), body).unwrap();
    }
    std::fs::write(tmp.path().join("secret.txt"), "secret").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("up")).unwrap();
    }
    tmp
}

#[test]
fn serves_files_with_content_types() {
    let tmp = site();
    let r = start(Some(&tmp.path().join("site")));
    for (path, ct) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/logo.png", "image/png"),
        ("/logo.svg", "image/svg+xml"),
        ("/favicon.ico", "image/x-icon"),
        ("/notes.txt", "text/plain; charset=utf-8"),
        ("/mod.wasm", "application/wasm"),
        ("/index.html", "text/html; charset=utf-8"),
    ] {
        let resp = get(&r.addr, path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("content-type").as_deref(), Some(ct), "{path}");
        assert_eq!(
            resp.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
    }
    let root = get(&r.addr, "/");
    assert_eq!(root.status, 200);
    assert_eq!(root.body, b"<h1>root</h1>");
    assert_eq!(get(&r.addr, "/sub").body, b"<h1>sub</h1>");
    assert_eq!(get(&r.addr, "/sub/").body, b"<h1>sub</h1>");
    assert_eq!(get(&r.addr, "/%61pp.js").body, b"console.log(1)");
    let head = request(&r.addr, "HEAD", "/app.js");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length").as_deref(), Some("14"));
    assert_eq!(get(&r.addr, "/missing.js").status, 404);
    assert_eq!(request(&r.addr, "POST", "/app.js").status, 405);
    // Health moves to /health; /stats and /dashboard stay.
    let health = get(&r.addr, "/health");
    assert_eq!(health.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(v["ok"], true);
    let stats = get(&r.addr, "/stats");
    let v: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert!(v["now"]["peers"].is_u64());
    assert!(v["history"].is_array());
    let dash = get(&r.addr, "/dashboard");
    assert_eq!(dash.status, 200);
    let html = String::from_utf8(dash.body).unwrap();
    assert!(html.contains("/stats"));
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn refuses_traversal() {
    let tmp = site();
    let r = start(Some(&tmp.path().join("site")));
    for target in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/%2fetc%2fpasswd",
        "/leak.txt",
        "/up/secret.txt",
        "/%00",
        "/%zz",
    ] {
        let resp = get(&r.addr, target);
        assert_eq!(resp.status, 404, "{target}");
        assert!(
            !String::from_utf8_lossy(&resp.body).contains("secret"),
            "{target}"
        );
    }
}

#[test]
fn health_at_root_without_static() {
    let r = start(None);
    for path in ["/", "/health"] {
        let resp = get(&r.addr, path);
        assert_eq!(resp.status, 200, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["name"], "gun-relay", "{path}");
    }
    assert_eq!(get(&r.addr, "/index.html").status, 404);
    assert_eq!(get(&r.addr, "/dashboard").status, 200);
}
