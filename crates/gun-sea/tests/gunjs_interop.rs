//! gun-sea against genuine SEA (npm `gun@0.2020.1241`, installed in `interop/` by
//! `npm ci --prefix interop`, which scripts/test.sh runs), both ways:
//!
//! * `interop/sea/vectors.js` makes vectors with SEA (pairs, signatures of varied
//!   JSON, user-space values written by a logged-in Gun user, certified writes,
//!   encryptions with pairs, passphrases and secrets, works, secrets,
//!   certificates); every one is checked here;
//! * this test makes at least as many vectors with gun-sea, including puts that
//!   a Gun peer must store, refuse (with the same text as ours) or drop, and
//!   `interop/sea/check.js FILE` checks each with genuine SEA and a Gun peer.
//!
//! Node.js and the npm package are required: the test fails, with the reason,
//! when they are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{js, m_text, workspace_root};
use gun_graph::{Soul, State, Value};
use gun_sea::{
    Certificants, CertifyOptions, Error, Key, Pair, SeaValidator, WorkOptions, certify, decrypt,
    encrypt, secret, sign, sign_value, sign_value_certified, verify, verify_value, work,
    work_value,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as J, json};

fn node() -> String {
    std::env::var("GUN_SEA_NODE").unwrap_or_else(|_| "node".into())
}

fn require_gun() {
    let sea = workspace_root().join("interop/node_modules/gun/sea.js");
    assert!(
        sea.is_file(),
        "{} is missing: run `npm ci --prefix interop` (scripts/test.sh does it)",
        sea.display()
    );
    let v = Command::new(node()).arg("--version").output();
    assert!(
        v.as_ref().is_ok_and(|o| o.status.success()),
        "cannot run `{}` (Node.js is needed for this test): {v:?}",
        node()
    );
}

fn state(v: &J) -> State {
    State::new(v.as_f64().unwrap()).unwrap()
}

fn key_of(v: &J) -> Key<'_> {
    match v.get("pair") {
        Some(_) => unreachable!("pairs are handled by the caller"),
        None => Key::Passphrase(v["pass"].as_str().unwrap()),
    }
}

/// Checks one vector made by SEA; `Err` describes a mismatch.
fn check_gunjs_vector(v: &J, validator: &SeaValidator, mine: &Pair) -> Result<(), String> {
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    match v["t"].as_str().unwrap() {
        "pair" => {
            let p = Pair::from_json(&v["pair"]).map_err(|e| e.to_string())?;
            let signed = sign(&json!("check"), &p).map_err(|e| e.to_string())?;
            verify(&signed, &p.pub_).map_err(|e| format!("pub/priv: {e}"))?;
            if secret(&mine.epub, &p).unwrap() != secret(&p.epub, mine).unwrap() {
                return Err("epub/epriv do not agree".into());
            }
        }
        "sign" => {
            let out = s("out");
            let got = verify(&out, &s("pub")).map_err(|e| format!("verify: {e}"))?;
            if js(&got) != js(&v["verified"]) {
                return Err(format!(
                    "verify gave {}, SEA gave {}",
                    js(&got),
                    js(&v["verified"])
                ));
            }
            let ours = sign(&v["data"], mine).unwrap();
            if m_text(&ours) != m_text(&out) {
                return Err(format!(
                    "our m {} differs from SEA's {}",
                    m_text(&ours),
                    m_text(&out)
                ));
            }
        }
        "value" | "certified" => {
            let (soul, key, wire, st) = (s("soul"), s("key"), s("wire"), state(&v["state"]));
            let signer = if v["t"] == "value" {
                s("pub")
            } else {
                s("writer")
            };
            let want = Value::from_json(&v["value"]).unwrap();
            let got = verify_value(&soul, &key, &wire, st, &signer)
                .map_err(|e| format!("verify_value: {e}"))?;
            if got != want {
                return Err(format!("value {got:?}, expected {want:?}"));
            }
            validator
                .check_key(&soul, &key, &Value::from(wire.as_str()), st.as_f64())
                .map_err(|e| format!("validator: {e}"))?;
            if v["t"] == "value" {
                // Our wire text is SEA's up to the signature.
                let ours = sign_value(&soul, &key, &want, st, mine).unwrap();
                let cut = |w: &str| w[..w.find(",\"~\":").unwrap()].to_owned();
                if cut(&ours) != cut(&wire) {
                    return Err(format!("our wire {ours} vs SEA's {wire}"));
                }
            }
        }
        "encrypt" => {
            let out = s("out");
            let got = match v["key"].get("pair") {
                Some(p) => decrypt(&out, &Pair::from_json(p).unwrap()),
                None => decrypt(&out, key_of(&v["key"])),
            }
            .map_err(|e| format!("decrypt: {e}"))?;
            if js(&got) != js(&v["decrypted"]) {
                return Err(format!(
                    "decrypt gave {}, SEA gave {}",
                    js(&got),
                    js(&v["decrypted"])
                ));
            }
        }
        "work" => {
            let opt = WorkOptions::from_json(&v["opt"]);
            let run = || {
                opt.clone()
                    .and_then(|o| work_value(&v["data"], &v["salt"], &o))
            };
            check_work(&v["out"], v["random"] == json!(true), run(), run)?;
            // The string API, where SEA's arguments are plain strings.
            if let (J::String(data), J::Null) = (&v["data"], &v["opt"]) {
                let salt = v["salt"].as_str();
                let run = || work(data, salt, &WorkOptions::default());
                check_work(&v["out"], v["random"] == json!(true), run(), run)
                    .map_err(|e| format!("work(): {e}"))?;
            }
        }
        "secret" => {
            let got = secret(&s("epub"), &Pair::from_json(&v["pair"]).unwrap())
                .map_err(|e| e.to_string())?;
            if got != s("out") {
                return Err(format!("secret gave {got}, SEA gave {}", s("out")));
            }
        }
        "cert" => {
            let got = verify(&s("cert"), &s("pub")).map_err(|e| format!("verify: {e}"))?;
            if js(&got) != js(&v["verified"]) {
                return Err(format!(
                    "verify gave {}, SEA gave {}",
                    js(&got),
                    js(&v["verified"])
                ));
            }
        }
        other => return Err(format!("unknown kind {other}")),
    }
    Ok(())
}

/// Our `work` result against SEA's `out` (`null`: SEA failed). With a random
/// salt (`random`), SEA's output cannot be reproduced: ours must then be random
/// too (a second run differs) and as long as SEA's.
fn check_work(
    out: &J,
    random: bool,
    got: gun_sea::Result<String>,
    again: impl Fn() -> gun_sea::Result<String>,
) -> Result<(), String> {
    match (out, got) {
        (J::Null, Err(_)) => Ok(()),
        (J::Null, Ok(got)) => Err(format!("work gave {got:?}, SEA failed")),
        (out, Err(e)) => Err(format!("work failed ({e}), SEA gave {out}")),
        (J::String(out), Ok(got)) if random => {
            let again = again().map_err(|e| e.to_string())?;
            if got == again {
                Err(format!("work gave {got:?} twice; SEA drew a random salt"))
            } else if got.chars().count() != out.chars().count() {
                Err(format!("work gave {got:?}, not as long as SEA's {out:?}"))
            } else {
                Ok(())
            }
        }
        (out, Ok(got)) if out.as_str() == Some(got.as_str()) => Ok(()),
        (out, Ok(got)) => Err(format!("work gave {got:?}, SEA gave {out}")),
    }
}

#[test]
fn gunjs_made_vectors_verify_in_rust() {
    require_gun();
    let started = Instant::now();
    let out = Command::new(node())
        .current_dir(workspace_root())
        .arg("interop/sea/vectors.js")
        .stdin(Stdio::null())
        .output()
        .expect("running interop/sea/vectors.js");
    assert!(
        out.status.success(),
        "vectors.js failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let made = started.elapsed();
    let text = String::from_utf8(out.stdout).unwrap();
    let validator = SeaValidator::new();
    let mine = Pair::generate().unwrap();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    let mut done = None;
    for (no, line) in text.lines().enumerate() {
        let v: J =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", no + 1));
        if v["t"] == "done" {
            done = Some(v["counts"].clone());
            continue;
        }
        *counts
            .entry(v["t"].as_str().unwrap().to_owned())
            .or_default() += 1;
        if let Err(e) = check_gunjs_vector(&v, &validator, &mine) {
            failures.push(format!("line {} ({}): {e}", no + 1, v["t"]));
        }
    }
    let total: usize = counts.values().sum();
    println!(
        "SEA-made vectors checked by gun-sea: {total} {counts:?} (SEA made them in {made:?}, all checked in {:?})",
        started.elapsed()
    );
    let done = done.expect("vectors.js did not finish (no done line)");
    for (k, n) in counts.iter() {
        assert_eq!(done[k].as_u64(), Some(*n as u64), "count of {k}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= 1000, "only {total} vectors");
    let works: Vec<J> = text
        .lines()
        .map(|l| serde_json::from_str::<J>(l).unwrap())
        .filter(|v| v["t"] == "work")
        .collect();
    assert!(
        works.iter().any(|v| v["random"] == json!(true)),
        "no work vector with a random salt"
    );
    assert!(
        works.iter().any(|v| v["out"].is_null()),
        "no work vector that SEA refused"
    );
}

// ---- the other direction -----------------------------------------------------------

const PIECES: &[&str] = &[
    "hello",
    "a",
    "",
    " ",
    "ü",
    "é",
    "日本語",
    "😀",
    "𝄞",
    "\u{1}",
    "\u{1f}",
    "\n",
    "\t",
    "\r",
    "\"",
    "\\",
    "/",
    "</script>",
    "\u{2028}",
    "\u{ff}",
    "\u{7f}",
    "\u{e000}",
    "\u{ffff}",
    "~",
    "@",
    "#",
    ".",
    ":",
    "x y",
];
const JSONY: &[&str] = &[
    "12",
    "-0",
    "1e21",
    "12.50",
    "true",
    "false",
    "null",
    "\"quoted\"",
    "{\"z\":2,\"a\":1}",
    "[1,\"two\"]",
    "{\"1\":\"one\",\"b\":2,\"0\":\"zero\"}",
    " 7 ",
    "{}",
    "[]",
    "{\"m\":1}",
];
const KEYS: &[&str] = &[
    "a", "b", "z", "1", "10", "0", "2", "name", "_", "#", ">", "ü", "😀", "a b", "", "01", "-1",
];

struct Gen(StdRng);

impl Gen {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.0.random_range(0..xs.len())]
    }
    fn text(&mut self) -> String {
        if self.0.random_bool(0.15) {
            return self.pick(JSONY).to_owned();
        }
        let n = self.0.random_range(0..5);
        (0..n).map(|_| self.pick(PIECES)).collect()
    }
    fn number(&mut self) -> f64 {
        match self.0.random_range(0..10) {
            0 => f64::from(self.0.random_range(0..1000)),
            1 => -f64::from(self.0.random_range(0..100_000)),
            2 => self.0.random::<f64>() * 1e6,
            3 => 1e21,
            4 => 1e-7,
            5 => 9007199254740994.0,
            6 => 0.1 + 0.2,
            7 => 5e-324,
            8 => 1795643451809.001,
            _ => -self.0.random::<f64>(),
        }
    }
    fn json(&mut self, depth: usize) -> J {
        match self.0.random_range(0..if depth > 2 { 4 } else { 7 }) {
            0 => J::String(self.text()),
            1 => Value::Number(self.number()).to_json(),
            2 => J::Bool(self.0.random()),
            3 => J::Null,
            4 => J::Array(
                (0..self.0.random_range(0..4))
                    .map(|_| self.json(depth + 1))
                    .collect(),
            ),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.0.random_range(0..5) {
                    let k = self.pick(KEYS).to_owned();
                    let v = self.json(depth + 1);
                    m.insert(k, v);
                }
                J::Object(m)
            }
        }
    }
    fn value(&mut self) -> Value {
        match self.0.random_range(0..6) {
            0 | 1 => Value::from(self.text()),
            2 => Value::Number(self.number()),
            3 => Value::Bool(self.0.random()),
            4 => Value::Null,
            _ => Value::link(
                Soul::new(format!(
                    "soul/{}{}",
                    self.text(),
                    self.0.random_range(0..100)
                ))
                .unwrap(),
            ),
        }
    }
}

/// A put for check.js: `{"t", "soul", "key", "state", "wire"}` plus extras.
fn put(t: &str, soul: &str, key: &str, st: f64, wire: J) -> J {
    json!({"t": t, "soul": soul, "key": key, "state": Value::Number(st).to_json(), "wire": wire})
}

/// Puts covering each enforcement rule, with what a Gun peer does (`t`) and what
/// our validator must say (`ours`: `null` = accepted, else the error text).
fn rule_puts(a: &Pair, b: &Pair, c: &Pair, now: f64, tag: &str) -> Vec<(J, Option<String>)> {
    let sa = format!("~{}", a.pub_);
    let inbox = format!("{sa}/inbox");
    let st = now - 5000.0;
    let signed = |soul: &str, key: &str, v: Value, by: &Pair| {
        J::String(sign_value(soul, key, &v, State::new(st).unwrap(), by).unwrap())
    };
    let certified = |soul: &str, key: &str, cert: &str| {
        J::String(
            sign_value_certified(
                soul,
                key,
                &Value::from("hi"),
                State::new(st).unwrap(),
                b,
                cert,
            )
            .unwrap(),
        )
    };
    let good = certify(
        Certificants::One(&b.pub_),
        &json!({"*": "inbox"}),
        a,
        &CertifyOptions::default(),
    )
    .unwrap();
    let star = certify(
        Certificants::Anyone,
        &json!({"*": "inbox", "+": "*"}),
        a,
        &CertifyOptions::default(),
    )
    .unwrap();
    let expired = certify(
        Certificants::One(&b.pub_),
        &json!({"*": "inbox"}),
        a,
        &CertifyOptions::expiring(st - 1.0),
    )
    .unwrap();
    let forged = certify(
        Certificants::One(&b.pub_),
        &json!({"*": "inbox"}),
        c,
        &CertifyOptions::default(),
    )
    .unwrap();
    let many = certify(
        Certificants::Many(&[&b.pub_, &c.pub_]),
        &json!({"*": "inbox"}),
        a,
        &CertifyOptions::default(),
    )
    .unwrap();
    let unverified = Some("Unverified data.".to_owned());
    let hash = |text: &str| work(text, None, &WorkOptions::sha256()).unwrap();
    let k = |s: &str| format!("{s}{tag}");
    let stolen = {
        let sig = sign_value(
            &sa,
            &k("alias"),
            &Value::from("by B"),
            State::new(st).unwrap(),
            b,
        )
        .unwrap();
        let mut o: J = serde_json::from_str(&sig).unwrap();
        o["*"] = J::String(b.pub_.clone());
        J::String(js(&o))
    };
    let tampered = {
        let w = sign_value(&sa, &k("t"), &Value::from("x"), State::new(st).unwrap(), a).unwrap();
        J::String(w.replace("\":\"x\"", "\":\"y\""))
    };
    vec![
        (
            put("reject", &sa, &k("status"), st, json!("plain")),
            unverified.clone(),
        ),
        (
            put(
                "reject",
                &sa,
                &k("status"),
                st,
                signed(&sa, &k("status"), Value::from("by B"), b),
            ),
            unverified.clone(),
        ),
        (
            put("reject", &sa, &k("t"), st, tampered),
            unverified.clone(),
        ),
        (
            put(
                "reject",
                &sa,
                &k("n"),
                st + 1.0,
                signed(&sa, &k("n"), Value::from(1), a),
            ),
            unverified.clone(),
        ),
        (
            put(
                "reject",
                &sa,
                &k("o"),
                st,
                signed(&sa, &k("other"), Value::from(1), a),
            ),
            unverified.clone(),
        ),
        (
            put(
                "reject",
                &format!("{sa}/profile"),
                &k("bio"),
                st,
                json!("x"),
            ),
            unverified.clone(),
        ),
        (
            put("reject", &format!("x~{}.b/y", tag), "a", st, json!("x")),
            unverified.clone(),
        ),
        (
            put("reject", &sa, "pub", st, json!(b.pub_.clone())),
            Some("Account not same!".into()),
        ),
        (put("accept", &sa, "pub", st, json!(a.pub_.clone())), None),
        (
            put(
                "reject",
                &format!("~@m{tag}"),
                &sa,
                st,
                json!({"#": format!("~{}", b.pub_)}),
            ),
            Some("Alias not same!".into()),
        ),
        (
            put("reject", &format!("~@m{tag}"), &sa, st, json!(null)),
            Some("Alias must exist!".into()),
        ),
        (
            put(
                "accept",
                &format!("~@m{tag}"),
                &sa,
                st,
                json!({"#": sa.clone()}),
            ),
            None,
        ),
        (
            put("reject", "~@", &k("m"), st, json!({"#": "~@other"})),
            Some("Alias not same!".into()),
        ),
        (
            put("reject", "~@", &k("m2"), st, json!("")),
            Some("Data must exist!".into()),
        ),
        (
            put(
                "accept",
                "~@",
                &k("m3"),
                st,
                json!({"#": format!("~@{}", k("m3"))}),
            ),
            None,
        ),
        (
            put(
                "accept",
                "#",
                &hash(&k("immutable")),
                st,
                json!(k("immutable")),
            ),
            None,
        ),
        (
            put("reject", "#", &hash(&k("immutable")), st, json!("tampered")),
            Some("Data hash not same as hash!".into()),
        ),
        (
            put(
                "accept",
                &format!("posts{tag}#"),
                &hash(&k("x")),
                st,
                json!(k("x")),
            ),
            None,
        ),
        (
            put(
                "accept",
                &format!("hex{tag}#"),
                &common_hex(&k("h")),
                st,
                json!(k("h")),
            ),
            None,
        ),
        (
            put(
                "accept",
                &format!("~foo{tag}"),
                "a",
                st,
                json!("not user space"),
            ),
            None,
        ),
        (
            put(
                "certified",
                &inbox,
                &k("m1"),
                st,
                certified(&inbox, &k("m1"), &good),
            ),
            None,
        ),
        (
            put(
                "reject",
                &format!("{sa}/private"),
                &k("m"),
                st,
                certified(&format!("{sa}/private"), &k("m"), &good),
            ),
            Some("Certificate verification fail.".into()),
        ),
        (
            put(
                "reject",
                &inbox,
                &k("late"),
                st,
                certified(&inbox, &k("late"), &expired),
            ),
            Some("Certificate expired.".into()),
        ),
        (
            put(
                "reject",
                &inbox,
                &k("m5"),
                st,
                certified(&inbox, &k("m5"), &star),
            ),
            Some(format!(
                "Path \"inbox\" or key \"{}\" must contain string \"{}\".",
                k("m5"),
                b.pub_
            )),
        ),
        (
            put(
                "certified",
                &inbox,
                &format!("{}{tag}", b.pub_),
                st,
                certified(&inbox, &format!("{}{tag}", b.pub_), &star),
            ),
            None,
        ),
        (
            put(
                "silent",
                &inbox,
                &k("forged"),
                st,
                certified(&inbox, &k("forged"), &forged),
            ),
            Some("Certificate not signed by owner.".into()),
        ),
        (
            put(
                "silent",
                &inbox,
                &k("many"),
                st,
                certified(&inbox, &k("many"), &many),
            ),
            None,
        ),
        (
            put("gun_accepts", &sa, &k("alias"), st, stolen),
            Some("Certificate required.".into()),
        ),
        (
            put(
                "silent",
                &format!("/RTC/room{tag}<?9"),
                "+",
                now - 60_000.0,
                json!("pid"),
            ),
            Some("Data older than <?9 allows.".into()),
        ),
        (
            put(
                "accept",
                &format!("/RTC/room{tag}<?99"),
                "+",
                now - 60_000.0,
                json!("pid"),
            ),
            None,
        ),
    ]
}

/// A hex SHA-256 key for content addressing.
fn common_hex(text: &str) -> String {
    use std::fmt::Write as _;
    let b64 = work(text, None, &WorkOptions::sha256()).unwrap();
    let mut hex = String::new();
    for byte in base64_decode(&b64) {
        write!(hex, "{byte:02x}").unwrap();
    }
    hex
}

fn base64_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        bits = (bits << 6) | alphabet.iter().position(|&a| a == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[test]
fn rust_made_vectors_verify_in_gunjs() {
    require_gun();
    let started = Instant::now();
    let seed: u64 = std::env::var("GUN_SEA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1241);
    let mut g = Gen(StdRng::seed_from_u64(seed));
    let mut lines: Vec<J> = Vec::new();
    let pairs: Vec<Pair> = (0..30).map(|_| Pair::generate().unwrap()).collect();
    let pick = |g: &mut Gen| pairs[g.0.random_range(0..pairs.len())].clone();
    for p in &pairs {
        lines.push(json!({"t": "pair", "pair": p.to_json()}));
    }
    for _ in 0..400 {
        let (data, p) = (g.json(0), pick(&mut g));
        let out = sign(&data, &p).unwrap();
        let expect = verify(&out, &p.pub_).unwrap();
        lines.push(json!({"t": "sign", "data": data, "pub": p.pub_, "out": out, "expect": expect}));
    }
    // milliseconds since the epoch, as JavaScript's `+new Date`
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    for i in 0..200 {
        let p = pick(&mut g);
        let soul = match i % 3 {
            0 => format!("~{}", p.pub_),
            1 => format!("~{}/sub{}", p.pub_, g.text()),
            _ => format!("x~{}/y", p.pub_),
        };
        let key = format!("k{i}{}", g.text());
        let value = g.value();
        // fractional states, all in the past for the Gun peer's HAM
        let st = State::new(now - 20_000.0 + f64::from(i) + 0.001 * f64::from(i % 7)).unwrap();
        let wire = sign_value(&soul, &key, &value, st, &p).unwrap();
        let mut v = put("value", &soul, &key, st.as_f64(), J::String(wire));
        v["pub"] = J::String(p.pub_.clone());
        v["value"] = value.to_json();
        lines.push(v);
    }
    for i in 0..250 {
        let data = g.json(0);
        let (out, key) = match i % 3 {
            0 => {
                let p = pick(&mut g);
                (encrypt(&data, &p).unwrap(), json!({"pair": p.to_json()}))
            }
            1 => {
                let pass = format!("{}{i}", g.text());
                (
                    encrypt(&data, pass.as_str()).unwrap(),
                    json!({"pass": pass}),
                )
            }
            _ => {
                let s = secret(&pick(&mut g).epub, &pick(&mut g)).unwrap();
                (encrypt(&data, s.as_str()).unwrap(), json!({"pass": s}))
            }
        };
        let expect = match &key.get("pair") {
            Some(p) => decrypt(&out, &Pair::from_json(p).unwrap()).unwrap(),
            None => decrypt(&out, key["pass"].as_str().unwrap()).unwrap(),
        };
        lines.push(json!({"t": "encrypt", "key": key, "out": out, "expect": expect}));
    }
    // work: a falsy salt ("" included) is a random one, for SEA and for us ("random").
    let work_vector = |data: J, salt: J, opt: J| {
        let run = || {
            WorkOptions::from_json(&opt)
                .and_then(|o| work_value(&data, &salt, &o))
                .ok()
        };
        let (out, again) = (run(), run());
        let random = out.is_some() && out != again;
        json!({"t": "work", "data": data, "salt": salt, "opt": opt, "out": out, "random": random})
    };
    for i in 0..20 {
        let data = format!("{}{i}", g.text());
        let salt = if i % 4 == 0 {
            pick(&mut g).epub
        } else {
            g.text()
        };
        lines.push(work_vector(json!(data), json!(salt), J::Null));
    }
    for i in 0..80 {
        let data = format!("{}{i}", g.text());
        lines.push(work_vector(
            json!(data),
            J::Null,
            json!({"name": "SHA-256"}),
        ));
    }
    for i in 0..60 {
        let data = if i % 2 == 1 {
            json!(format!("{}{i}", g.text()))
        } else {
            g.json(0)
        };
        let salt = match g.0.random_range(0..13) {
            0 => json!(g.text()),
            1 => json!(""),
            2 => json!(0),
            3 => Value::Number(g.number()).to_json(),
            4 => json!(true),
            5 => json!(false),
            6 => J::Null,
            7 => json!([]),
            8 => json!([1, null, "a", [2, 3]]),
            9 => json!({"a": 1}),
            10 => json!({"epub": g.text()}),
            11 => pick(&mut g).to_json(),
            _ => json!(format!("{}x", g.text())),
        };
        let mut opt = serde_json::Map::new();
        let mut maybe = |g: &mut Gen, k: &str, xs: &[J]| {
            if g.0.random_bool(0.5) {
                opt.insert(k.to_owned(), xs[g.0.random_range(0..xs.len())].clone());
            }
        };
        let names = [
            "SHA-256", "sha-256", "SHA-1", "SHA-384", "SHA-512", "Sha-512", "sha256", "SHA-3",
            "PBKDF2", "pbkdf2", "HKDF", "",
        ];
        let mut names: Vec<J> = names.iter().map(|n| json!(n)).collect();
        names.extend([json!(0), J::Null]);
        maybe(&mut g, "name", &names);
        maybe(
            &mut g,
            "encode",
            &[
                json!("hex"),
                json!("utf8"),
                json!("base64"),
                json!(""),
                json!("binary"),
                json!("HEX"),
                J::Null,
            ],
        );
        maybe(
            &mut g,
            "hash",
            &[
                json!({"name": "SHA-1"}),
                json!("SHA-512"),
                json!("sha-384"),
                json!({"name": "SHA-256"}),
                json!("MD5"),
                json!({}),
                J::Null,
            ],
        );
        maybe(
            &mut g,
            "length",
            &[
                json!(8),
                json!(64),
                json!(256),
                json!(1024),
                json!(0),
                json!(12),
                json!(-8),
                json!("256"),
                json!("8x"),
                J::Null,
            ],
        );
        maybe(
            &mut g,
            "salt",
            &[
                json!("s"),
                json!(""),
                json!(0),
                json!(7),
                json!({"epub": "E"}),
                json!([1, 2]),
                J::Null,
                json!(true),
            ],
        );
        let iterations = [
            json!(1),
            json!(2),
            json!(3),
            json!(10),
            json!(1000),
            json!(0),
            json!(-1),
            json!(2.5),
            json!("2"),
            J::Null,
        ];
        opt.insert(
            "iterations".into(),
            iterations[g.0.random_range(0..iterations.len())].clone(),
        );
        lines.push(work_vector(data, salt, J::Object(opt)));
    }
    for _ in 0..60 {
        let (me, other) = (pick(&mut g), pick(&mut g));
        let out = secret(&other.epub, &me).unwrap();
        lines.push(json!({"t": "secret", "epub": other.epub, "pair": me.to_json(), "out": out}));
    }
    for i in 0..20 {
        let a = pick(&mut g);
        let (b, c) = (pick(&mut g).pub_, pick(&mut g).pub_);
        let list = [b.as_str(), c.as_str()];
        let who = match i % 3 {
            0 => Certificants::Anyone,
            1 => Certificants::One(&b),
            _ => Certificants::Many(&list),
        };
        let policy = [
            json!("inbox"),
            json!({"*": "inbox", "+": "*"}),
            json!([{"#": "a"}, {".": {">": "k"}}]),
        ][i % 3]
            .clone();
        let opts = if i % 2 == 1 {
            CertifyOptions::expiring(1900000000000.0 + i as f64)
        } else {
            CertifyOptions::default()
        };
        let cert = certify(who, &policy, &a, &opts).unwrap();
        let expect = verify(&cert, &a.pub_).unwrap();
        lines.push(json!({"t": "cert", "cert": cert, "pub": a.pub_, "expect": expect}));
    }
    // Every enforcement rule, and what our validator says about the same puts.
    let (a, b, c) = (pairs[0].clone(), pairs[1].clone(), pairs[2].clone());
    let validator = SeaValidator::new().with_clock(move || now);
    let mut ours_failures = Vec::new();
    for (i, (v, ours)) in rule_puts(&a, &b, &c, now, &format!("r{seed}"))
        .into_iter()
        .enumerate()
    {
        let value = Value::from_json(&v["wire"]).unwrap();
        let got = validator
            .check_key(
                v["soul"].as_str().unwrap(),
                v["key"].as_str().unwrap(),
                &value,
                v["state"].as_f64().unwrap(),
            )
            .err()
            .map(|e: Error| e.to_string());
        if got != ours {
            ours_failures.push(format!(
                "rule put {i} ({} {}): ours {got:?}, expected {ours:?}",
                v["t"], v["soul"]
            ));
        }
        let mut v = v;
        if v["soul"].as_str().is_some_and(|s| s.contains("<?")) {
            // `<?N` souls are judged by the age of the state: check.js rebases the
            // state on its own clock, however long this test took to get there.
            v["age"] = Value::Number(now - v["state"].as_f64().unwrap()).to_json();
        }
        if v["t"] == "reject" {
            v["err"] = J::String(ours.clone().unwrap());
        }
        if v["t"] == "certified" {
            v["owner"] = J::String(a.pub_.clone());
            v["writer"] = J::String(b.pub_.clone());
            v["pub"] = J::String(b.pub_.clone());
            v["value"] = json!("hi");
        }
        lines.push(v);
    }
    assert!(ours_failures.is_empty(), "{}", ours_failures.join("\n"));
    let works: Vec<&J> = lines.iter().filter(|v| v["t"] == "work").collect();
    assert!(
        works.iter().any(|v| v["random"] == json!(true)),
        "no work vector with a random salt"
    );
    assert!(
        works.iter().any(|v| v["out"].is_null()),
        "no work vector that we refused"
    );
    let made = started.elapsed();

    let mut file = tempfile::NamedTempFile::new().unwrap();
    for l in &lines {
        writeln!(file, "{}", js(l)).unwrap();
    }
    file.flush().unwrap();
    let out = Command::new(node())
        .current_dir(workspace_root())
        .arg("interop/sea/check.js")
        .arg(file.path())
        .stdin(Stdio::null())
        .output()
        .expect("running interop/sea/check.js");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "gun-sea-made vectors: {} (made in {made:?}); genuine SEA's verdict after {:?}:\n{stdout}",
        lines.len(),
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "check.js failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("Signature did not match") && !l.contains("Hello wonderful"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let summary: J = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["total_failed"], json!(0));
    assert_eq!(summary["total_ok"].as_u64().unwrap() as usize, lines.len());
    assert!(lines.len() >= 1000);
}
