//! A parser specialised for the shape Gun.js peers send: `{soul: {"_": {"#":
//! soul, ">": {key: state, …}}, key: value, …}, …}` with `_` first, `#` before
//! `>`, and the states listed in the node's key order.
//!
//! It accepts only input it is sure about and answers `None` for anything
//! else (another order, an unusual value, any error), which the general
//! parser in `wire.rs` then parses, so the two always agree: this one is a
//! shortcut, never a second set of rules. What it builds is what the general
//! parser builds for the same text (checked by the tests below on every case
//! they share, and by the differential tests against Gun.js).
//!
//! Speed comes from scanning the bytes once without serde's visitor calls,
//! borrowing strings without escapes, and sharing the text of keys repeated
//! across the nodes of one graph (`f0`…`f9` of a hundred nodes are ten
//! allocations, not a thousand).

use std::collections::BTreeMap;
use std::sync::Arc;

use gun_ham::State;

use crate::Graph;
use crate::node::{Entry, Node};
use crate::value::{Soul, Value};

/// Keys remembered for sharing within one graph.
const SHARED_KEYS: usize = 64;

struct P<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
    keys: Vec<Arc<str>>,
}

/// A string token: borrowed when it has no escapes.
enum Text<'a> {
    Plain(&'a str),
    Owned(String),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Plain(s) => s,
            Text::Owned(s) => s,
        }
    }
}

/// Parses `text` if it has the usual shape; `None` otherwise (the caller then
/// uses the general parser).
pub(crate) fn parse(text: &str) -> Option<Graph> {
    let mut p = P {
        b: text.as_bytes(),
        s: text,
        i: 0,
        keys: Vec::new(),
    };
    let g = p.graph()?;
    p.ws();
    (p.i == p.b.len()).then_some(g)
}

impl<'a> P<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// `,` (then `true`) or `end` (then `false`).
    #[inline]
    fn next_or_end(&mut self, end: u8) -> Option<bool> {
        self.ws();
        match self.b.get(self.i)? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if *c == end => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<Text<'a>> {
        self.ws();
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            let c = *self.b.get(j)?;
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                0..=0x1f => return None,
                _ => j += 1,
            }
        }
        self.i = j + 1;
        if escaped {
            // Escapes are rare: serde_json decodes them exactly as the
            // general parser does (and refuses what it refuses).
            let quoted = self.s.get(start - 1..j + 1)?;
            serde_json::from_str::<String>(quoted).ok().map(Text::Owned)
        } else {
            self.s.get(start..j).map(Text::Plain)
        }
    }

    /// A JSON number, exactly as serde_json (with `float_roundtrip`) reads
    /// it; `None` for `-0` (left to the general parser) and bad syntax.
    fn number(&mut self) -> Option<f64> {
        self.ws();
        let start = self.i;
        let b = self.b;
        let mut j = start;
        if b.get(j) == Some(&b'-') {
            j += 1;
        }
        match b.get(j)? {
            b'0' => j += 1,
            b'1'..=b'9' => {
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
            }
            _ => return None,
        }
        if b.get(j) == Some(&b'.') {
            j += 1;
            if !b.get(j).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
        }
        if matches!(b.get(j), Some(b'e' | b'E')) {
            j += 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if !b.get(j).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
        }
        let n: f64 = self.s.get(start..j)?.parse().ok()?;
        if !n.is_finite() || (n == 0.0 && b[start] == b'-') {
            return None;
        }
        self.i = j;
        Some(n)
    }

    fn key(&mut self, k: &str) -> Arc<str> {
        if let Some(a) = self.keys.iter().find(|a| &***a == k) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(k);
        if self.keys.len() < SHARED_KEYS {
            self.keys.push(a.clone());
        }
        a
    }

    fn graph(&mut self) -> Option<Graph> {
        self.eat(b'{')?;
        let mut g = Graph::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(g);
        }
        loop {
            let soul = self.string()?;
            if soul.as_str().is_empty() {
                return None;
            }
            self.eat(b':')?;
            let node = self.node(soul.as_str())?;
            g.insert_node(node);
            if !self.next_or_end(b'}')? {
                return Some(g);
            }
        }
    }

    fn node(&mut self, soul: &str) -> Option<Node> {
        self.eat(b'{')?;
        // `_` first, `#` (the soul), then `>`.
        if self.string()?.as_str() != "_" {
            return None;
        }
        self.eat(b':')?;
        self.eat(b'{')?;
        if self.string()?.as_str() != "#" {
            return None;
        }
        self.eat(b':')?;
        if self.string()?.as_str() != soul {
            return None;
        }
        self.eat(b',')?;
        if self.string()?.as_str() != ">" {
            return None;
        }
        self.eat(b':')?;
        self.eat(b'{')?;
        let mut states: Vec<(Text<'a>, f64)> = Vec::with_capacity(16);
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
        } else {
            loop {
                let k = self.string()?;
                self.eat(b':')?;
                let n = self.number()?;
                states.push((k, n));
                if !self.next_or_end(b'}')? {
                    break;
                }
            }
        }
        self.eat(b'}')?;
        // The values, in the order of the states.
        let mut entries: Vec<(Arc<str>, Entry)> = Vec::with_capacity(states.len());
        for (k, state) in &states {
            self.eat(b',')?;
            if self.string()?.as_str() != k.as_str() {
                return None;
            }
            self.eat(b':')?;
            let value = self.value()?;
            let state = State::new(*state).ok()?;
            let key = self.key(k.as_str());
            entries.push((key, Entry { state, value }));
        }
        self.eat(b'}')?;
        if entries.iter().any(|(k, _)| &**k == "_") {
            return None;
        }
        let map: BTreeMap<Arc<str>, Entry> = entries.into_iter().collect();
        Some(Node::from_entries(Soul::from_arc(Arc::from(soul)), map))
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => {
                let t = self.string()?;
                Some(Value::String(match t {
                    Text::Plain(s) => Arc::from(s),
                    Text::Owned(s) => Arc::from(s),
                }))
            }
            b'n' => self.word(b"null", Value::Null),
            b't' => self.word(b"true", Value::Bool(true)),
            b'f' => self.word(b"false", Value::Bool(false)),
            b'{' => {
                self.i += 1;
                if self.string()?.as_str() != "#" {
                    return None;
                }
                self.eat(b':')?;
                let to = self.string()?;
                if to.as_str().is_empty() {
                    return None;
                }
                self.eat(b'}')?;
                Some(Value::Link(Soul::from_arc(Arc::from(to.as_str()))))
            }
            _ => Some(Value::Number(self.number()? + 0.0)),
        }
    }

    fn word(&mut self, w: &[u8], v: Value) -> Option<Value> {
        if self.b.get(self.i..self.i + w.len())? == w {
            self.i += w.len();
            Some(v)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::parse;
    use crate::Graph;

    /// The general parser alone (what `Graph::from_wire` did before).
    fn general(text: &str) -> Result<Graph, crate::Error> {
        super::super::wire::general_from_wire(text)
    }

    const CASES: &[&str] = &[
        r##"{}"##,
        r##"{"a":{"_":{"#":"a",">":{}}}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":"hi"}}"##,
        r##" { "a" : { "_" : { "#" : "a" , ">" : { "x" : 1.5e3 , "y" : 2 } } , "x" : null , "y" : true } } "##,
        r##"{"a":{"_":{"#":"a",">":{"x":1,"y":2,"z":3,"w":4}},"x":false,"y":-12.5,"z":{"#":"b"},"w":"\u00e9t\u00e9 \ud83d\ude00 \"q\" \\"}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":-0}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":-0}},"x":1}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":1e400}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":[1]}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":{"#":""}}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":{"#":"b","y":1}}}"##,
        r##"{"a":{"_":{"#":"b",">":{"x":1}},"x":1}}"##,
        r##"{"a":{"_":{">":{"x":1},"#":"a"},"x":1}}"##,
        r##"{"a":{"x":1,"_":{"#":"a",">":{"x":1}}}}"##,
        r##"{"a":{"_":{"#":"a",">":{"y":1,"x":2}},"x":1,"y":2}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":1,"x":2}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1,"x":2}},"x":1,"x":2}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":"1"}},"x":1}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}}}}"##,
        r##"{"a":{"_":{"#":"a",">":{"_":1}},"_":1}}"##,
        r##"{"":{"_":{"#":"",">":{}}}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":01}},"x":1}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1.}},"x":1}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":"a
b"}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":"\ud800"}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":1}} x"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":1},"a":{"_":{"#":"a",">":{"y":2}},"y":2}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":12345678901234567890123}},"x":0.1}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":tru}}"##,
        r##"[]"##,
        r##"{"a":1}"##,
    ];

    #[test]
    fn the_shortcut_agrees_with_the_general_parser() {
        for case in CASES {
            let want = general(case);
            // `None`: left to the general parser, nothing to compare.
            if let Some(g) = parse(case) {
                assert_eq!(Ok(g), want, "{case}");
            }
            assert_eq!(Graph::from_wire(case), want, "{case}");
        }
    }

    #[test]
    fn the_shortcut_takes_the_usual_shape() {
        for case in &CASES[..6] {
            if *case != CASES[5] {
                assert!(parse(case).is_some(), "{case}");
            }
        }
    }
}
