//! A gun-rs peer driven over stdin/stdout, for interop tests against genuine
//! Gun.js (interop/relay/*.test.js start it next to a Gun.js relay).
//!
//! ```text
//! cargo run -p gun-interop-peer -- ws://127.0.0.1:8765/gun [--wait-ms 3000]
//! ```
//!
//! It dials the given peers (any number of URLs) with the WebSocket transport
//! and reads one JSON command per line on stdin:
//!
//! ```text
//! {"id":1,"op":"put","path":["soul","key"],"value":{...},"acks":1,"timeoutMs":5000}
//!     -> {"id":1,"ok":true,"result":{"accepted":N,"acked":M,"msgId":"..."}}
//! {"id":2,"op":"get","path":["soul","key"]}      (Chain::then)
//!     -> {"id":2,"ok":true,"result":<data or null>}
//! {"id":3,"op":"on","path":["soul"],"sub":"s1"}  (Chain::on; events follow)
//!     -> {"id":3,"ok":true,"result":true}
//!     -> {"event":"sub","sub":"s1","key":"soul","data":{...}}   (per change)
//! {"id":4,"op":"off","sub":"s1"}
//! {"id":5,"op":"peers"}                          -> number of connected peers
//! {"id":7,"op":"user.create","alias":"a","pass":"p","acks":1,"timeoutMs":5000}
//!     -> {"id":7,"ok":true,"result":{"pub":"..."}}   (logged in as the new user)
//! {"id":8,"op":"user.auth","alias":"a","pass":"p"} -> {"pub":"...","alias":"a"}
//! {"id":9,"op":"user.leave"}                     -> true
//! {"id":10,"op":"user.put","path":["profile"],"value":{...},"acks":1,"timeoutMs":5000}
//!     (signed, into the logged-in user's space; path below the user's root)
//! {"id":11,"op":"userOf.get","pub":"...","path":["profile","name"]}
//!     -> verified data of that user's space, or null (an error if it does not verify)
//! {"id":12,"op":"user.set","path":["friends"],"value":{...},"acks":1,"timeoutMs":5000}
//!     -> {"key":"<the item's key (its soul for a node)>", "accepted":..,"acked":..}
//! {"id":13,"op":"userOf.map","pub":"...","path":["friends"]}
//!     -> {key: verified data of each child} or null
//! {"id":14,"op":"userOf.putCertified","pub":"...","path":["inbox","k"],"value":..,"cert":"SEA{...}","acks":1}
//!     (into that user's space as the logged-in user, under its certificate)
//! {"id":15,"op":"user.changePassword","alias":"a","pass":"old","newPass":"new","acks":1}
//!     -> {"pub":"..."}   (logged in; the account's auth sealed with the new password)
//! {"id":16,"op":"user.createFromPair","pair":{"pub","priv","epub","epriv"},"acks":1}
//!     -> {"pub":"..."}   (the account published for the pair, logged in with it)
//! {"id":6,"op":"exit"}                           (also on end of input)
//! ```
//!
//! On start it prints `{"event":"ready","connected":bool}` once a peer is
//! connected (or after 10 s with `false`). Every line it prints is one JSON
//! object; logs go to stderr (`RUST_LOG`-style filters are not wired here).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use gun::{Chain, Gun, GunOptions, PutOptions, Subscription, UserChain};
use serde_json::{Value, json};

fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the driver is gone; the stdin EOF will end us.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn chain(gun: &Gun, path: &[Value]) -> Result<Chain, String> {
    let mut keys = path.iter().map(|k| match k {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("path elements must be strings, not {other}")),
    });
    let first = keys.next().ok_or("empty path")??;
    let mut c = gun.get(first);
    for k in keys {
        c = c.get(k?);
    }
    Ok(c)
}

fn user_chain(mut c: UserChain, path: &[Value]) -> Result<UserChain, String> {
    for k in path {
        match k {
            Value::String(s) => c = c.get(s.clone()),
            other => return Err(format!("path elements must be strings, not {other}")),
        }
    }
    Ok(c)
}

fn str_arg<'a>(cmd: &'a Value, name: &str) -> Result<&'a str, String> {
    cmd.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing \"{name}\" (a string)"))
}

fn put_options(cmd: &Value) -> PutOptions {
    let acks = cmd.get("acks").and_then(Value::as_u64).unwrap_or(1) as usize;
    let timeout = cmd.get("timeoutMs").and_then(Value::as_u64).unwrap_or(5000);
    PutOptions {
        acks,
        timeout: Duration::from_millis(timeout),
        ..PutOptions::default()
    }
}

fn path_of(cmd: &Value) -> Result<Vec<Value>, String> {
    cmd.get("path")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| "missing \"path\" (an array of keys)".to_owned())
}

async fn run_op(
    gun: &Gun,
    subs: &mut HashMap<String, Subscription>,
    cmd: &Value,
) -> Result<Value, String> {
    let op = cmd.get("op").and_then(Value::as_str).unwrap_or("");
    match op {
        "put" => {
            let c = chain(gun, &path_of(cmd)?)?;
            let value = cmd.get("value").cloned().unwrap_or(Value::Null);
            let acks = cmd.get("acks").and_then(Value::as_u64).unwrap_or(1) as usize;
            let timeout = cmd.get("timeoutMs").and_then(Value::as_u64).unwrap_or(5000);
            let opts = PutOptions {
                acks,
                timeout: Duration::from_millis(timeout),
                ..PutOptions::default()
            };
            let ack = c.put_with(value, opts).await.map_err(|e| e.to_string())?;
            Ok(json!({
                "accepted": ack.accepted,
                "acked": ack.acked_by.len(),
                "msgId": ack.id,
            }))
        }
        "get" => {
            let c = chain(gun, &path_of(cmd)?)?;
            let data = c.then().await.map_err(|e| e.to_string())?;
            Ok(data.unwrap_or(Value::Null))
        }
        "on" => {
            let c = chain(gun, &path_of(cmd)?)?;
            let sub = cmd
                .get("sub")
                .and_then(Value::as_str)
                .ok_or("missing \"sub\"")?
                .to_owned();
            let name = sub.clone();
            let handle = c.on(move |data, key| {
                emit(&json!({"event": "sub", "sub": name, "key": key, "data": data}));
            });
            subs.insert(sub, handle);
            Ok(Value::Bool(true))
        }
        "off" => {
            let sub = cmd.get("sub").and_then(Value::as_str).unwrap_or("");
            Ok(Value::Bool(subs.remove(sub).is_some()))
        }
        "peers" => Ok(json!(gun.engine().peer_count())),
        "user.create" => {
            let (alias, pass) = (str_arg(cmd, "alias")?, str_arg(cmd, "pass")?);
            let pub_ = gun
                .user()
                .create_with(alias, pass, put_options(cmd))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"pub": pub_}))
        }
        "user.auth" => {
            let (alias, pass) = (str_arg(cmd, "alias")?, str_arg(cmd, "pass")?);
            let pub_ = gun
                .user()
                .auth(alias, pass)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"pub": pub_, "alias": alias}))
        }
        "user.changePassword" => {
            let (alias, old, new) = (
                str_arg(cmd, "alias")?,
                str_arg(cmd, "pass")?,
                str_arg(cmd, "newPass")?,
            );
            let pub_ = gun
                .user()
                .change_password_with(alias, old, new, put_options(cmd))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"pub": pub_}))
        }
        "user.createFromPair" => {
            let pair = cmd
                .get("pair")
                .ok_or("pair missing")
                .and_then(|p| gun::sea::Pair::from_json(p).map_err(|_| "pair: not a SEA pair"))?;
            let pub_ = gun
                .user()
                .create_from_pair_with(pair, put_options(cmd))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"pub": pub_}))
        }
        "user.leave" => {
            gun.user().leave();
            Ok(Value::Bool(gun.user().is().is_none()))
        }
        "user.put" => {
            let c = user_chain(gun.user().root(), &path_of(cmd)?)?;
            let value = cmd.get("value").cloned().unwrap_or(Value::Null);
            let ack = c
                .put_with(value, put_options(cmd))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({
                "accepted": ack.accepted,
                "acked": ack.acked_by.len(),
                "msgId": ack.id,
            }))
        }
        "user.set" => {
            let c = user_chain(gun.user().root(), &path_of(cmd)?)?;
            let value = cmd.get("value").cloned().unwrap_or(Value::Null);
            let (item, ack) = c
                .set_with(value, put_options(cmd))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({
                "key": item.key(),
                "accepted": ack.accepted,
                "acked": ack.acked_by.len(),
            }))
        }
        "userOf.map" => {
            let c = user_chain(gun.user_of(str_arg(cmd, "pub")?), &path_of(cmd)?)?;
            let data = c.map().then().await.map_err(|e| e.to_string())?;
            Ok(data.unwrap_or(Value::Null))
        }
        "userOf.putCertified" => {
            let c = user_chain(gun.user_of(str_arg(cmd, "pub")?), &path_of(cmd)?)?;
            let value = cmd.get("value").cloned().unwrap_or(Value::Null);
            let ack = c
                .put_certified(value, str_arg(cmd, "cert")?, put_options(cmd))
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({
                "accepted": ack.accepted,
                "acked": ack.acked_by.len(),
            }))
        }
        "userOf.get" => {
            let c = user_chain(gun.user_of(str_arg(cmd, "pub")?), &path_of(cmd)?)?;
            let data = c.then().await.map_err(|e| e.to_string())?;
            Ok(data.unwrap_or(Value::Null))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

#[tokio::main]
async fn main() {
    let mut peers = Vec::new();
    let mut wait = Duration::from_secs(3);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--wait-ms" {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(ms) => wait = Duration::from_millis(ms),
                None => {
                    eprintln!("interop_peer: --wait-ms needs a number");
                    std::process::exit(2);
                }
            }
        } else {
            peers.push(a);
        }
    }
    let gun = Gun::new(GunOptions {
        peers,
        wait,
        ..GunOptions::default()
    });

    // Commands are read on a plain thread and handed over one line at a time.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    while gun.engine().peer_count() == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emit(&json!({"event": "ready", "connected": gun.engine().peer_count() > 0}));

    let mut subs: HashMap<String, Subscription> = HashMap::new();
    while let Some(line) = rx.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                emit(&json!({"ok": false, "error": format!("bad command line: {e}")}));
                continue;
            }
        };
        let id = cmd.get("id").cloned().unwrap_or(Value::Null);
        if cmd.get("op").and_then(Value::as_str) == Some("exit") {
            emit(&json!({"id": id, "ok": true, "result": true}));
            break;
        }
        // Ops run one after another, in input order (the driver awaits each).
        match run_op(&gun, &mut subs, &cmd).await {
            Ok(result) => emit(&json!({"id": id, "ok": true, "result": result})),
            Err(error) => emit(&json!({"id": id, "ok": false, "error": error})),
        }
    }
    drop(subs);
    if let Err(e) = gun.shutdown().await {
        eprintln!("interop_peer: shutdown: {e}");
    }
}
