//! A throw-away PostgreSQL server for tests (feature `testing`).
//!
//! [`TempPostgres::start`] finds the server binaries (`initdb`, `pg_ctl` on
//! `PATH`, else the newest `/usr/lib/postgresql/*/bin`, as Debian's
//! `postgresql` package installs them), runs `initdb` into a temporary
//! directory (as the `postgres` user when running as root: `initdb` refuses
//! root), and starts the server on a free loopback port with its socket in
//! that directory. The server is stopped, and the directory removed, when the
//! value is dropped — and by a watchdog process if the test process dies
//! first (a `static` server, or a panic that aborts).
//!
//! [`TempPostgres::start_or_skip`] is what tests call: without the binaries it
//! returns `None` after printing why (the test then skips), except in CI
//! (`CI=true`), where a missing PostgreSQL is a failure. `scripts/test.sh`
//! installs Debian's `postgresql` package when it is absent.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL server in a temporary directory (see the [module
/// docs](self)).
#[derive(Debug)]
pub struct TempPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `Some(user)` when the server runs as another user (we are root).
    run_as: Option<String>,
    fsync: bool,
}

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestServerError {
    /// No `initdb`/`pg_ctl` found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH nor in /usr/lib/postgresql/*/bin; install Debian's `postgresql` package (scripts/test.sh does)"
    )]
    NotInstalled,
    /// A step failed.
    #[error("{0}")]
    Failed(String),
}

fn failed(what: impl Into<String>) -> TestServerError {
    TestServerError::Failed(what.into())
}

/// The directory holding `initdb` and `pg_ctl`, if any.
pub fn find_binaries() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}

fn free_port() -> Result<u16, TestServerError> {
    let l =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|e| failed(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| failed(format!("no free port: {e}")))
}

impl TempPostgres {
    /// Starts a server (see the [module docs](self)) with `fsync` off: tests
    /// check what the store does, not the disk.
    pub fn start() -> Result<TempPostgres, TestServerError> {
        TempPostgres::start_with(false)
    }

    /// Starts a server; `fsync` as given (benchmarks want it on).
    pub fn start_with(fsync: bool) -> Result<TempPostgres, TestServerError> {
        let bin = find_binaries().ok_or(TestServerError::NotInstalled)?;
        let run_as = is_root().then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("gun-pg-test")
            .tempdir()
            .map_err(|e| failed(format!("cannot create a temporary directory: {e}")))?;
        if let Some(user) = &run_as {
            // The server's user owns the directory.
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .map_err(|e| failed(format!("chown: {e}")))?;
            if !st.success() {
                return Err(failed(format!(
                    "cannot chown {} to {user} (does the user exist? Debian's postgresql package creates it)",
                    dir.path().display()
                )));
            }
        }
        let mut pg = TempPostgres {
            bin,
            dir,
            port: 0,
            run_as,
            fsync,
        };
        let data = pg.data_dir();
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|e| failed(format!("initdb: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        pg.spawn_watchdog();
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port()?;
            match pg.start_server() {
                Ok(()) => return Ok(pg),
                Err(e) => last = e.to_string(),
            }
        }
        Err(failed(format!("the server did not start: {last}")))
    }

    /// [`TempPostgres::start`], or `None` (after printing why) when PostgreSQL
    /// is not installed and this is not CI. Panics in CI (`CI=true`) without
    /// PostgreSQL, and when an installed server fails to start.
    pub fn start_or_skip(test: &str) -> Option<TempPostgres> {
        match TempPostgres::start() {
            Ok(pg) => Some(pg),
            Err(TestServerError::NotInstalled)
                if std::env::var("CI").map_or(true, |v| v != "true") =>
            {
                eprintln!(
                    "SKIPPED {test}: {} (set CI=true to make this a failure)",
                    TestServerError::NotInstalled
                );
                None
            }
            Err(e) => panic!("{test}: cannot start PostgreSQL: {e}"),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The temporary directory (the socket and the server log are here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db` as the superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The URL of the default database `postgres`.
    pub fn default_url(&self) -> String {
        self.url("postgres")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn start_server(&self) -> Result<(), TestServerError> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
            self.port,
            self.dir.path().display(),
            if self.fsync { "on" } else { "off" }
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-o")
            .arg(opts)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("pg_ctl start: {e}")))?;
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            return Err(failed(format!(
                "pg_ctl start failed: {}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Stops the server (`-m fast`: clients are disconnected, committed data
    /// is kept).
    pub fn stop(&self) -> Result<(), TestServerError> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "-m", "fast", "stop"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("pg_ctl stop: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Starts the server again on the same port, after [`TempPostgres::stop`].
    pub fn resume(&self) -> Result<(), TestServerError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.start_server() {
                Ok(()) => return Ok(()),
                // The port may linger for a moment after the stop.
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stops the server and starts it again.
    pub fn restart(&self) -> Result<(), TestServerError> {
        self.stop()?;
        self.resume()
    }

    /// Runs SQL through `psql` on database `postgres` (for setup: `CREATE
    /// DATABASE`, …) and returns its output.
    pub fn psql(&self, sql: &str) -> Result<String, TestServerError> {
        let psql = self.bin.join("psql");
        let psql = if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let out = Command::new(psql)
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.default_url())
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("psql: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A watchdog that stops the server and removes the directory when this
    /// process ends without dropping the value.
    fn spawn_watchdog(&self) {
        let pid = std::process::id();
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let stop = match &self.run_as {
            Some(u) => format!(
                "runuser -u {u} -- '{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            ),
            None => format!(
                "'{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            ),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -d '{data}' ]; then {stop} >/dev/null 2>&1; rm -rf '{dir}'; fi",
            data = data.display(),
            dir = self.dir.path().display(),
        );
        let spawned = Command::new("setsid")
            .arg("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!("warning: no watchdog for the test PostgreSQL server: {e}");
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
