//! SEA enforcement of the relay binary, over raw WebSocket frames: by default a
//! forged write into a user's space (`~<pub>`) is refused with Gun.js's error
//! text and not stored, while a value signed by the owner (made with gun-sea) is
//! acked and served verbatim; with `--no-sea` the forged write is stored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gun_graph::{Soul, State, Value};
use gun_sea::{
    Certificants, CertifyOptions, Pair, certify, sign_value, sign_value_certified, verify_value,
};
use serde_json::{Value as J, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long to wait for the relay to start or answer before giving up (a guard
/// against hangs; nothing here measures speed).
const PATIENCE: Duration = Duration::from_secs(20);

/// A gun-relay process on the memory store, killed on drop.
struct Relay {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Relay {
    fn start(extra: &[&str]) -> Relay {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gun-relay"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--store",
                "memory",
                "--log",
                "warn",
            ])
            .arg("--data")
            .arg(data.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting gun-relay");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Keep reading (and dropping) after the ready line so the relay
                // never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        // Owned (and so killed on drop) before anything can panic.
        let mut relay = Relay {
            child,
            addr: String::new(),
            _data: data,
        };
        let prefix = "gun-relay listening on ws://";
        loop {
            let line = rx
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("gun-relay printed no ready line: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                relay.addr = rest.split("/gun").next().unwrap().to_owned();
                return relay;
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw Gun wire client: JSON messages in text frames.
struct Wire {
    ws: WebSocketStream<TcpStream>,
}

fn fresh_id(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Wire {
    async fn connect(addr: &str) -> Wire {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/gun"), tcp)
            .await
            .unwrap();
        Wire { ws }
    }

    /// Sends one message and returns the first message answering it (`@` = its `#`).
    async fn ask(&mut self, msg: J) -> J {
        let id = msg["#"].as_str().unwrap().to_owned();
        self.ws
            .send(WsMessage::text(msg.to_string()))
            .await
            .unwrap();
        let answer = async {
            loop {
                let frame = self
                    .ws
                    .next()
                    .await
                    .expect("relay closed the socket")
                    .unwrap();
                let WsMessage::Text(text) = frame else {
                    continue;
                };
                let msgs = match serde_json::from_str::<J>(text.as_str()).unwrap() {
                    J::Array(a) => a,
                    m => vec![m],
                };
                if let Some(m) = msgs.into_iter().find(|m| m["@"] == json!(id)) {
                    return m;
                }
            }
        };
        tokio::time::timeout(PATIENCE, answer)
            .await
            .unwrap_or_else(|_| panic!("no answer to {id}"))
    }

    /// Puts one key, returns the ack.
    async fn put(&mut self, soul: &str, key: &str, value: J, state: f64) -> J {
        let node = json!({"_": {"#": soul, ">": {key: state}}, key: value});
        self.ask(json!({"#": fresh_id("put"), "put": {soul: node}}))
            .await
    }

    /// Gets one key: `Some((value, state))` if the relay has it.
    async fn get(&mut self, soul: &str, key: &str) -> Option<(J, f64)> {
        let reply = self
            .ask(json!({"#": fresh_id("get"), "get": {"#": soul, ".": key}}))
            .await;
        let node = reply["put"].get(soul)?;
        let value = node.get(key)?.clone();
        Some((value, node["_"][">"][key].as_f64().unwrap()))
    }
}

fn now() -> f64 {
    // a little in the past, so that no peer defers the write as a future state
    gun_core::now_ms() - 1000.0
}

fn err_of(ack: &J) -> Option<&str> {
    ack["err"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sea_is_enforced_by_default() {
    let relay = Relay::start(&[]);
    let mut wire = Wire::connect(&relay.addr).await;
    let (alice, mallory) = (Pair::generate().unwrap(), Pair::generate().unwrap());
    let soul = format!("~{}", alice.pub_);
    let st = now();

    // Forgeries, each refused with Gun.js's text and not stored.
    let ack = wire.put(&soul, "name", json!("mallory"), st).await;
    assert_eq!(
        err_of(&ack),
        Some("Unverified data."),
        "unsigned value: {ack}"
    );
    let by_mallory = sign_value(
        &soul,
        "name",
        &Value::from("mallory"),
        State::new(st).unwrap(),
        &mallory,
    )
    .unwrap();
    let ack = wire.put(&soul, "name", json!(by_mallory), st).await;
    assert_eq!(
        err_of(&ack),
        Some("Unverified data."),
        "value signed by another user: {ack}"
    );
    assert_eq!(
        wire.get(&soul, "name").await,
        None,
        "a forged value was stored"
    );

    let profile = format!("{soul}/profile");
    let ack = wire.put(&profile, "bio", json!("forged"), st).await;
    assert_eq!(
        err_of(&ack),
        Some("Unverified data."),
        "unsigned value in a child soul: {ack}"
    );
    assert_eq!(wire.get(&profile, "bio").await, None);

    let ack = wire.put(&soul, "pub", json!(mallory.pub_), st).await;
    assert_eq!(err_of(&ack), Some("Account not same!"), "{ack}");
    assert_eq!(wire.get(&soul, "pub").await, None);

    let alias = "~@alice-sea-test";
    let ack = wire
        .put(alias, &soul, json!({"#": format!("~{}", mallory.pub_)}), st)
        .await;
    assert_eq!(err_of(&ack), Some("Alias not same!"), "{ack}");
    assert_eq!(wire.get(alias, &soul).await, None);

    // The owner's signed values are acked and served verbatim.
    let signed = sign_value(
        &soul,
        "name",
        &Value::from("alice"),
        State::new(st).unwrap(),
        &alice,
    )
    .unwrap();
    let ack = wire.put(&soul, "name", json!(signed), st).await;
    assert_eq!(err_of(&ack), None, "signed value refused: {ack}");
    assert_eq!(ack["ok"], json!(true), "{ack}");
    let (got, got_state) = wire
        .get(&soul, "name")
        .await
        .expect("the signed value is stored");
    assert_eq!(got, json!(signed));
    assert_eq!(got_state, st);
    let read = verify_value(
        &soul,
        "name",
        got.as_str().unwrap(),
        State::new(got_state).unwrap(),
        &alice.pub_,
    );
    assert_eq!(read.unwrap(), Value::from("alice"));

    let signed_bio = sign_value(
        &profile,
        "bio",
        &Value::from("hi"),
        State::new(st).unwrap(),
        &alice,
    )
    .unwrap();
    let ack = wire.put(&profile, "bio", json!(signed_bio), st).await;
    assert_eq!(err_of(&ack), None, "{ack}");
    assert_eq!(
        wire.get(&profile, "bio").await.map(|(v, _)| v),
        Some(json!(signed_bio))
    );

    let ack = wire.put(&soul, "pub", json!(alice.pub_), st).await;
    assert_eq!(err_of(&ack), None, "the owner's own pub is refused: {ack}");
    let ack = wire.put(alias, &soul, json!({"#": soul}), st).await;
    assert_eq!(
        err_of(&ack),
        None,
        "a matching alias entry is refused: {ack}"
    );
    assert_eq!(
        wire.get(alias, &soul).await.map(|(v, _)| v),
        Some(json!({"#": soul}))
    );

    // A signature from the owner is no licence to tamper with the value.
    let tampered = signed.replace("\":\"alice\"", "\":\"mallory\"");
    assert_ne!(tampered, signed);
    let ack = wire.put(&soul, "name", json!(tampered), st + 1.0).await;
    assert_eq!(err_of(&ack), Some("Unverified data."), "{ack}");
    assert_eq!(
        wire.get(&soul, "name").await.map(|(v, _)| v),
        Some(json!(signed))
    );

    // Plain souls are not SEA's business.
    let ack = wire.put("sea-test-plain", "a", json!("anything"), st).await;
    assert_eq!(err_of(&ack), None, "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sea_stores_forged_writes() {
    let relay = Relay::start(&["--no-sea"]);
    let mut wire = Wire::connect(&relay.addr).await;
    let (alice, mallory) = (Pair::generate().unwrap(), Pair::generate().unwrap());
    let soul = format!("~{}", alice.pub_);
    let st = now();

    let ack = wire.put(&soul, "name", json!("mallory"), st).await;
    assert_eq!(
        err_of(&ack),
        None,
        "--no-sea refused an unsigned value: {ack}"
    );
    assert_eq!(ack["ok"], json!(true), "{ack}");
    assert_eq!(wire.get(&soul, "name").await, Some((json!("mallory"), st)));

    let ack = wire.put(&soul, "pub", json!(mallory.pub_), st).await;
    assert_eq!(err_of(&ack), None, "{ack}");
    assert_eq!(
        wire.get(&soul, "pub").await.map(|(v, _)| v),
        Some(json!(mallory.pub_))
    );
}

/// A certificate that names a write block list (`wb`): the relay reads the list
/// from its store, as a Gun.js peer does with `get(list).get(pub).once(..)`, and
/// refuses the writers it marks (and only them, and only while marked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_with_a_write_block_list_refuse_the_writers_it_marks() {
    let relay = Relay::start(&[]);
    let mut wire = Wire::connect(&relay.addr).await;
    let (alice, bob, carol) = (
        Pair::generate().unwrap(),
        Pair::generate().unwrap(),
        Pair::generate().unwrap(),
    );
    let root = format!("~{}", alice.pub_);
    let (list, inbox) = (format!("{root}/blocklist"), format!("{root}/inbox"));
    let st = now();
    let by_alice = |soul: &str, key: &str, v: Value, at: f64| {
        json!(sign_value(soul, key, &v, State::new(at).unwrap(), &alice).unwrap())
    };
    let mut opts = CertifyOptions::default();
    opts.write_block = Some(json!("blocklist"));
    let cert = certify(Certificants::Anyone, &json!({"*": "inbox"}), &alice, &opts).unwrap();
    let write = |by: &Pair, key: &str, at: f64| {
        json!(
            sign_value_certified(
                &inbox,
                key,
                &Value::from("hi"),
                State::new(at).unwrap(),
                by,
                &cert
            )
            .unwrap()
        )
    };

    // No list stored yet: nobody is blocked.
    let ack = wire
        .put(&inbox, "early", write(&bob, "early", st), st)
        .await;
    assert_eq!(err_of(&ack), None, "{ack}");

    // Alice's client stores the list as Gun.js's `user.get('blocklist')` does:
    // `~alice`.blocklist links to `~alice/blocklist`, which marks bob.
    let link = Value::link(Soul::new(list.as_str()).unwrap());
    let ack = wire
        .put(
            &root,
            "blocklist",
            by_alice(&root, "blocklist", link, st),
            st,
        )
        .await;
    assert_eq!(err_of(&ack), None, "{ack}");
    let ack = wire
        .put(
            &list,
            &bob.pub_,
            by_alice(&list, &bob.pub_, Value::Bool(true), st),
            st,
        )
        .await;
    assert_eq!(err_of(&ack), None, "{ack}");

    let ack = wire.put(&inbox, "m1", write(&bob, "m1", st), st).await;
    assert_eq!(
        err_of(&ack),
        Some(format!("Certificant {} blocked.", bob.pub_).as_str()),
        "{ack}"
    );
    assert_eq!(
        wire.get(&inbox, "m1").await,
        None,
        "a blocked write was stored"
    );
    let from_carol = write(&carol, "m2", st);
    let ack = wire.put(&inbox, "m2", from_carol.clone(), st).await;
    assert_eq!(err_of(&ack), None, "a writer the list does not mark: {ack}");
    assert_eq!(wire.get(&inbox, "m2").await, Some((from_carol, st)));

    // Unblocked (a newer `false`): bob writes again.
    let later = st + 1.0;
    let ack = wire
        .put(
            &list,
            &bob.pub_,
            by_alice(&list, &bob.pub_, Value::Bool(false), later),
            later,
        )
        .await;
    assert_eq!(err_of(&ack), None, "{ack}");
    let ack = wire
        .put(&inbox, "m3", write(&bob, "m3", later), later)
        .await;
    assert_eq!(err_of(&ack), None, "an unblocked writer: {ack}");
}
