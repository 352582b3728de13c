//! Shared by the `tls` and `backup` tests: a gun-relay process started with
//! any flags, the one-shot subcommands, and a minimal Gun client over any
//! WebSocket stream (plain or TLS).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Lines, RELAY_BIN, collect_lines};

/// How long one answer may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A relay process started with `args`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub addr: String,
    pub log: Lines,
}

impl Proc {
    /// Starts `gun-relay --port 0 ARGS` and waits for the ready line with `scheme`
    /// (`ws` or `wss`).
    pub fn start(scheme: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(RELAY_BIN)
            .args(["--port", "0", "--log", "info"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gun-relay");
        let log = Lines::default();
        collect_lines(child.stdout.take().unwrap(), log.clone());
        collect_lines(child.stderr.take().unwrap(), log.clone());
        let ready = format!("gun-relay listening on {scheme}://");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = log.find(|l| l.starts_with(&ready)) {
                let addr = l[ready.len()..].split("/gun").next().unwrap().to_owned();
                return Proc { child, addr, log };
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("gun-relay exited at startup ({st}):\n{}", log.tail(20));
            }
            assert!(
                Instant::now() < deadline,
                "no ready line in 20 s:\n{}",
                log.tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Sends `kill -SIG pid`.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} failed");
    }

    /// SIGTERM and wait for the exit (10 s), so the store is flushed and unlocked.
    pub fn stop(mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(
                    st.success(),
                    "relay exited with {st}:\n{}",
                    self.log.tail(20)
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("relay did not stop in 10 s:\n{}", self.log.tail(20));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `gun-relay ARGS` to completion (a subcommand).
pub fn run(args: &[&str]) -> Output {
    Command::new(RELAY_BIN)
        .args(["--log", "warn"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gun-relay")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Sends `msg` and returns the first message answering `id` (`"@": id`).
pub async fn ask<S>(ws: &mut WebSocketStream<S>, msg: &Value, id: &str) -> Value
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::text(msg.to_string())).await.unwrap();
    let fut = async {
        loop {
            let Some(frame) = ws.next().await else {
                panic!("connection closed before the answer to {id}")
            };
            let Message::Text(t) = frame.unwrap() else {
                continue;
            };
            let msgs = match serde_json::from_str::<Value>(t.as_str()) {
                Ok(Value::Array(a)) => a,
                Ok(v) => vec![v],
                Err(_) => continue,
            };
            if let Some(m) = msgs.into_iter().find(|m| m["@"] == id) {
                return m;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("no answer to {id} in {WAIT:?}"))
}

/// Puts `node` (wire form, `{"_":{"#":soul,">":{..}},..}`) and checks the ack.
pub async fn put<S>(ws: &mut WebSocketStream<S>, node: &Value)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let soul = node["_"]["#"].as_str().unwrap();
    let id = format!("put-{soul}-{}", rand::random::<u32>());
    let ack = ask(ws, &json!({"#": id, "put": {soul: node}}), &id).await;
    assert!(ack["err"].is_null(), "put of {soul} refused: {ack}");
}

/// Gets the whole node `soul` (`None`: not found).
pub async fn get<S>(ws: &mut WebSocketStream<S>, soul: &str) -> Option<Value>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = format!("get-{soul}-{}", rand::random::<u32>());
    let answer = ask(ws, &json!({"#": id, "get": {"#": soul}}), &id).await;
    let node = &answer["put"][soul];
    node.is_object().then(|| node.clone())
}
