//! Differential test of HAM and the JSON text writer against genuine Gun.js.
//!
//! `interop/differential/gen.js` runs the npm package `gun@0.2020.1241` (installed by
//! `npm ci --prefix interop`) and prints JSON Lines:
//!
//! * `ham` cases: a current value and an incoming write injected into a real Gun
//!   instance; the expected decision is what Gun's own `ham()` did;
//! * `json` cases: an arbitrary JSON tree and the text V8's `JSON.stringify` made of it.
//!
//! Every case is checked here against [`gun_graph::decide`], [`Value::to_json_text`] and
//! [`gun_graph::json`]. The generator is deterministic for a seed: set `GUN_DIFF_SEED` to
//! try another one (the seed used is printed). `GUN_DIFF_NODE` overrides the `node` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use gun_graph::{Decision, Ignored, Soul, State, Value, decide, json};
use serde_json::Value as J;

const GUN_VERSION: &str = "0.2020.1241";
const DEFAULT_SEED: u64 = 1241;
const HAM_CASES: usize = 10_000;
const JSON_CASES: usize = 100_000;
const SHOW: usize = 20;

fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

// ------------------------------------------------------------------ decoding the lines

/// A JS number sent as its 16-hex-digit big-endian IEEE-754 bit pattern.
fn bits(v: &J) -> Result<f64, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a bit-pattern string, got {v}"))?;
    if s.len() != 16 {
        return Err(format!("bit pattern {s:?} is not 16 hex digits"));
    }
    u64::from_str_radix(s, 16)
        .map(f64::from_bits)
        .map_err(|e| format!("bit pattern {s:?}: {e}"))
}

fn units(v: &J) -> Result<Vec<u16>, String> {
    v.as_array()
        .ok_or_else(|| format!("expected an array of UTF-16 code units, got {v}"))?
        .iter()
        .map(|u| {
            u.as_u64()
                .and_then(|u| u16::try_from(u).ok())
                .ok_or_else(|| format!("bad UTF-16 code unit {u}"))
        })
        .collect()
}

fn well_formed(u: &[u16]) -> Result<String, String> {
    String::from_utf16(u).map_err(|_| format!("lone surrogate in {u:x?}"))
}

/// `{"z":1}`, `{"b":..}`, `{"n":B}`, `{"s":[units]}`, `{"l":[units]}` → a Gun value.
fn gun_value(v: &J) -> Result<Value, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("bad value encoding {v}"))?;
    if o.contains_key("z") {
        Ok(Value::Null)
    } else if let Some(b) = o.get("b") {
        b.as_bool()
            .map(Value::Bool)
            .ok_or_else(|| format!("bad bool {b}"))
    } else if let Some(n) = o.get("n") {
        let n = bits(n)?;
        Value::number(n).map_err(|e| format!("Value::number({n:?}): {e}"))
    } else if let Some(s) = o.get("s") {
        Ok(Value::string(well_formed(&units(s)?)?))
    } else if let Some(l) = o.get("l") {
        let soul = Soul::new(well_formed(&units(l)?)?).map_err(|e| format!("Soul::new: {e}"))?;
        Ok(Value::link(soul))
    } else {
        Err(format!("bad value encoding {v}"))
    }
}

fn state(v: &J) -> Result<State, String> {
    let n = bits(v)?;
    State::new(n).map_err(|e| format!("State::new({n:?}): {e}"))
}

fn field<'a>(line: &'a J, name: &str) -> Result<&'a J, String> {
    line.get(name)
        .ok_or_else(|| format!("missing field {name:?}"))
}

// ------------------------------------------------------------------ HAM cases

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Defer { .. } => "defer",
        Decision::Historical => "historical",
        Decision::Accept => "accept",
        Decision::Ignore(Ignored::Identical) => "identical",
        Decision::Ignore(Ignored::TieLost) => "tie_lost",
    }
}

/// Checks one `ham` line; returns the list of disagreements (empty when all agree).
fn check_ham(line: &J) -> Result<Vec<String>, String> {
    let mut bad = Vec::new();
    let machine = state(field(line, "machine")?)?;
    let in_state = state(field(line, "in_state")?)?;
    let incoming = gun_value(field(line, "in")?)?;
    let expect = field(line, "expect")?
        .as_str()
        .ok_or("expect is not a string")?;

    let in_json = field(line, "in_json")?
        .as_str()
        .ok_or("in_json is not a string")?;
    let got = incoming.to_json_text();
    if got != in_json {
        bad.push(format!(
            "incoming Value::to_json_text: expected {in_json:?}, got {got:?}"
        ));
    }

    let cur = match field(line, "cur")? {
        J::Null => None,
        c => {
            let s = state(field(c, "state")?)?;
            let v = gun_value(field(c, "v")?)?;
            let want = field(c, "json")?
                .as_str()
                .ok_or("cur.json is not a string")?;
            let got = v.to_json_text();
            if got != want {
                bad.push(format!(
                    "current Value::to_json_text: expected {want:?}, got {got:?}"
                ));
            }
            Some((s, v))
        }
    };

    let d = decide(
        machine,
        in_state,
        &incoming,
        cur.as_ref().map(|(s, v)| (*s, v)),
    );
    if decision_name(d) != expect {
        bad.push(format!(
            "decide: gun.js says {expect:?}, gun_graph::decide says {d:?} \
             (machine {} incoming {} @ {} current {})",
            machine.as_f64(),
            got,
            in_state.as_f64(),
            match &cur {
                Some((s, v)) => format!("{} @ {}", v.to_json_text(), s.as_f64()),
                None => "none".into(),
            }
        ));
    }
    if let Decision::Defer { until } = d
        && until != in_state
    {
        bad.push(format!(
            "Defer until {:?}, expected the incoming state {:?}",
            until.as_f64(),
            in_state.as_f64()
        ));
    }
    Ok(bad)
}

// ------------------------------------------------------------------ JSON cases

/// A JSON tree as sent by gen.js; strings are UTF-16 code units (maybe lone surrogates).
enum Tree {
    Null,
    Bool(bool),
    /// The number and the text `JSON.stringify` gave for it.
    Num(f64, String),
    Str(Vec<u16>),
    Arr(Vec<Tree>),
    /// Keys and values in creation order.
    Obj(Vec<(Vec<u16>, Tree)>),
}

fn tree(v: &J) -> Result<Tree, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("bad tree encoding {v}"))?;
    Ok(if o.contains_key("z") {
        Tree::Null
    } else if let Some(b) = o.get("b") {
        Tree::Bool(b.as_bool().ok_or_else(|| format!("bad bool {b}"))?)
    } else if let Some(n) = o.get("n") {
        let js = o
            .get("js")
            .and_then(J::as_str)
            .ok_or("number without its js text")?;
        Tree::Num(bits(n)?, js.to_owned())
    } else if let Some(s) = o.get("s") {
        Tree::Str(units(s)?)
    } else if let Some(a) = o.get("a") {
        let a = a.as_array().ok_or("bad array")?;
        Tree::Arr(a.iter().map(tree).collect::<Result<_, _>>()?)
    } else if let Some(m) = o.get("o") {
        let m = m.as_array().ok_or("bad object")?;
        let mut pairs = Vec::with_capacity(m.len());
        for p in m {
            let p = p
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or("bad object pair")?;
            pairs.push((units(&p[0])?, tree(&p[1])?));
        }
        Tree::Obj(pairs)
    } else {
        return Err(format!("bad tree encoding {v}"));
    })
}

fn has_lone_surrogate(t: &Tree) -> bool {
    match t {
        Tree::Str(u) => String::from_utf16(u).is_err(),
        Tree::Arr(a) => a.iter().any(has_lone_surrogate),
        Tree::Obj(m) => m
            .iter()
            .any(|(k, v)| String::from_utf16(k).is_err() || has_lone_surrogate(v)),
        _ => false,
    }
}

/// The tree as a `serde_json::Value` (only for trees without lone surrogates).
fn to_serde(t: &Tree) -> Result<J, String> {
    Ok(match t {
        Tree::Null => J::Null,
        Tree::Bool(b) => J::Bool(*b),
        // JSON.stringify prints NaN and the infinities as null.
        Tree::Num(n, _) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Tree::Str(u) => J::String(well_formed(u)?),
        Tree::Arr(a) => J::Array(a.iter().map(to_serde).collect::<Result<_, _>>()?),
        Tree::Obj(m) => {
            let mut map = serde_json::Map::new();
            for (k, v) in m {
                let k = well_formed(k)?;
                if map.insert(k.clone(), to_serde(v)?).is_some() {
                    return Err(format!("duplicate key {k:?} in generated object"));
                }
            }
            J::Object(map)
        }
    })
}

/// `JSON.stringify` composed from the per-piece writers: `write_utf16_str` for every
/// string and key (lone surrogates allowed), `write_number`, and `js_key_order`.
fn compose(t: &Tree, out: &mut String) -> Result<(), String> {
    match t {
        Tree::Null => out.push_str("null"),
        Tree::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Tree::Num(n, _) => json::write_number(out, *n),
        Tree::Str(u) => json::write_utf16_str(out, u),
        Tree::Arr(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                compose(e, out)?;
            }
            out.push(']');
        }
        Tree::Obj(m) => {
            // Keys are well-formed (gen.js makes them so); JavaScript's order needs them as text.
            let keys: Vec<String> = m
                .iter()
                .map(|(k, _)| well_formed(k))
                .collect::<Result<_, _>>()?;
            out.push('{');
            for (n, i) in json::js_key_order(&keys).into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                json::write_utf16_str(out, &m[i].0);
                out.push(':');
                compose(&m[i].1, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Every number leaf: `write_number` against the text JavaScript gave for it.
fn check_numbers(t: &Tree, bad: &mut Vec<String>, count: &mut usize) {
    match t {
        Tree::Num(n, js) => {
            *count += 1;
            let got = json::number_text(*n);
            let mut direct = String::from("x");
            json::write_number(&mut direct, *n);
            if got != *js || direct[1..] != *js {
                bad.push(format!(
                    "write_number({n:?}) (bits {:016x}): JavaScript {js:?}, got {got:?}",
                    n.to_bits()
                ));
            }
        }
        Tree::Arr(a) => a.iter().for_each(|e| check_numbers(e, bad, count)),
        Tree::Obj(m) => m.iter().for_each(|(_, v)| check_numbers(v, bad, count)),
        _ => {}
    }
}

fn first_difference(a: &str, b: &str) -> String {
    let i = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let tail = |s: &str| {
        s.chars()
            .skip(i.saturating_sub(10))
            .take(40)
            .collect::<String>()
    };
    format!(
        "first difference at char {i}: expected …{:?}, got …{:?}",
        tail(a),
        tail(b)
    )
}

#[derive(Default)]
struct JsonCounts {
    via_stringify: usize,
    via_compose: usize,
    with_lone_surrogates: usize,
    numbers: usize,
}

fn check_json(line: &J, counts: &mut JsonCounts) -> Result<Vec<String>, String> {
    let mut bad = Vec::new();
    let t = tree(field(line, "v")?)?;
    let want = field(line, "out")?.as_str().ok_or("out is not a string")?;

    check_numbers(&t, &mut bad, &mut counts.numbers);

    if has_lone_surrogate(&t) {
        counts.with_lone_surrogates += 1;
    } else {
        let got = json::stringify(&to_serde(&t)?);
        counts.via_stringify += 1;
        if got != want {
            bad.push(format!(
                "json::stringify: expected {want:?}\n      got {got:?}\n      {}",
                first_difference(want, &got)
            ));
        }
    }
    // Every tree also through the piecewise writers (the only way for lone surrogates).
    let mut got = String::new();
    compose(&t, &mut got)?;
    counts.via_compose += 1;
    if got != want {
        bad.push(format!(
            "write_utf16_str/write_number/js_key_order: expected {want:?}\n      got {got:?}\n      {}",
            first_difference(want, &got)
        ));
    }
    Ok(bad)
}

// ------------------------------------------------------------------ the test

#[test]
fn ham_and_json_text_agree_with_gunjs() {
    let root = workspace_root();
    let gun = root.join("interop/node_modules/gun/gun.js");
    assert!(
        gun.is_file(),
        "{} is missing: run `npm ci --prefix interop` (scripts/test.sh does it)",
        gun.display()
    );
    let seed: u64 = match std::env::var("GUN_DIFF_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("GUN_DIFF_SEED={s:?} is not a non-negative integer")),
        Err(_) => DEFAULT_SEED,
    };
    println!("differential_gunjs: seed {seed} (set GUN_DIFF_SEED to change)");

    let node = std::env::var("GUN_DIFF_NODE").unwrap_or_else(|_| "node".into());
    let started = Instant::now();
    let mut child = Command::new(&node)
        .current_dir(&root)
        .arg("interop/differential/gen.js")
        .args(["--seed", &seed.to_string()])
        .args(["--ham", &HAM_CASES.to_string()])
        .args(["--json", &JSON_CASES.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{node}` (Node.js is needed for this test): {e}"));
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout is piped"));

    let mut ham = 0usize;
    let mut json_values = 0usize;
    let mut json_counts = JsonCounts::default();
    let mut expects = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = 0usize;
    let mut report = String::new();
    let mut done: Option<J> = None;

    for (no, line) in stdout.lines().enumerate() {
        let line = line.expect("reading gen.js output");
        let v: J = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("line {}: not JSON ({e}): {line}", no + 1));
        let result = match v.get("t").and_then(J::as_str) {
            Some("ham") => {
                ham += 1;
                if let Some(e) = v.get("expect").and_then(J::as_str) {
                    *expects.entry(e.to_owned()).or_default() += 1;
                }
                check_ham(&v)
            }
            Some("json") => {
                json_values += 1;
                check_json(&v, &mut json_counts)
            }
            Some("done") => {
                done = Some(v);
                continue;
            }
            _ => Err("unknown line kind".to_owned()),
        };
        let problems =
            result.unwrap_or_else(|e| vec![format!("harness could not read the case: {e}")]);
        if !problems.is_empty() {
            failures += 1;
            if failures <= SHOW {
                let _ = writeln!(report, "#{failures} (line {}): {line}", no + 1);
                for p in problems {
                    let _ = writeln!(report, "    {p}");
                }
            }
        }
    }
    let status = child.wait().expect("waiting for gen.js");
    let stderr = stderr_reader.join().unwrap_or_default();
    let elapsed = started.elapsed();
    assert!(status.success(), "gen.js failed ({status}):\n{stderr}");
    let done =
        done.unwrap_or_else(|| panic!("gen.js output has no `done` line (truncated?)\n{stderr}"));
    assert_eq!(
        done["ham"].as_u64(),
        Some(ham as u64),
        "HAM case count differs from the done line"
    );
    assert_eq!(
        done["json"].as_u64(),
        Some(json_values as u64),
        "JSON case count differs from the done line"
    );

    println!(
        "compared {ham} HAM cases and {json_values} JSON values against gun {GUN_VERSION} in {elapsed:.1?}"
    );
    println!("  HAM outcomes according to Gun.js: {expects:?}");
    println!(
        "  JSON: {} through json::stringify, {} through write_utf16_str/write_number/js_key_order \
         ({} with lone surrogates), {} number leaves through write_number",
        json_counts.via_stringify,
        json_counts.via_compose,
        json_counts.with_lone_surrogates,
        json_counts.numbers
    );
    if failures > 0 {
        panic!(
            "{failures} of {} cases disagree with gun {GUN_VERSION} (seed {seed}); the first {}:\n{report}",
            ham + json_values,
            failures.min(SHOW)
        );
    }
    assert!(ham >= 10_000, "only {ham} HAM cases compared");
    assert!(
        json_values >= 100_000,
        "only {json_values} JSON values compared"
    );
}
