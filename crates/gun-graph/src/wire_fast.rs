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

use std::sync::Arc;

use gun_ham::State;

use crate::Graph;
use crate::node::{Entry, Node};
use crate::value::{Soul, Value};

/// Keys remembered for sharing within one graph.
const SHARED_KEYS: usize = 64;

/// The bytes that end a plain run inside a string: `"`, `\\` and the control
/// characters (which JSON does not allow unescaped).
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The powers of ten that are exact doubles.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

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
    let (g, n) = parse_prefix(text)?;
    text[n..]
        .bytes()
        .all(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        .then_some(g)
}

/// Parses a graph of the usual shape at the start of `text` (after any
/// whitespace) and returns it with the bytes it took, whatever follows; `None`
/// otherwise. For a caller that scans an envelope around the graph.
pub(crate) fn parse_prefix(text: &str) -> Option<(Graph, usize)> {
    let mut p = P {
        b: text.as_bytes(),
        s: text,
        i: 0,
        keys: Vec::new(),
    };
    let g = p.graph()?;
    Some((g, p.i))
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
            // To the next quote, backslash or control character.
            j += self
                .b
                .get(j..)?
                .iter()
                .position(|&c| STOP[usize::from(c)])?;
            match self.b[j] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                _ => return None,
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
        let neg = b.get(j) == Some(&b'-');
        if neg {
            j += 1;
        }
        // The digits as an integer (exact while there are at most 19).
        let mut mant: u64 = 0;
        let int_start = j;
        match b.get(j)? {
            b'0' => j += 1,
            b'1'..=b'9' => {
                while j < b.len() && b[j].is_ascii_digit() {
                    mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[j] - b'0'));
                    j += 1;
                }
            }
            _ => return None,
        }
        let mut digits = j - int_start;
        let mut frac = 0usize;
        if b.get(j) == Some(&b'.') {
            j += 1;
            let f = j;
            while j < b.len() && b[j].is_ascii_digit() {
                mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[j] - b'0'));
                j += 1;
            }
            frac = j - f;
            if frac == 0 {
                return None;
            }
            digits += frac;
        }
        let mut exp = false;
        if matches!(b.get(j), Some(b'e' | b'E')) {
            exp = true;
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
        // Clinger's fast path: a mantissa up to 2^53 and a power of ten up to
        // 10^22 are both exact doubles, and one IEEE division rounds
        // correctly, so this is the correctly rounded value every full parser
        // gives. Anything else (more than 19 digits, which could wrap the
        // mantissa, or an exponent) goes to the standard library's parser.
        let n = if !exp && digits <= 19 && mant <= 1 << 53 && frac < POW10.len() {
            let m = mant as f64;
            let v = if frac == 0 { m } else { m / POW10[frac] };
            if neg { -v } else { v }
        } else {
            self.s.get(start..j)?.parse().ok()?
        };
        if !n.is_finite() || (n == 0.0 && neg) {
            return None;
        }
        self.i = j;
        Some(n)
    }

    /// A key's shared text: the key at the same position in the previous
    /// node is tried first (nodes of one put usually have the same keys in the
    /// same order), then the others seen in this graph.
    fn key(&mut self, pos: usize, k: &str) -> Arc<str> {
        if let Some(a) = self.keys.get(pos)
            && **a == *k
        {
            return a.clone();
        }
        if let Some(a) = self.keys.iter().find(|a| &***a == k) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(k);
        if self.keys.len() < SHARED_KEYS {
            // One allocation for the keys of a usual node, not one per doubling.
            if self.keys.capacity() == 0 {
                self.keys.reserve_exact(16);
            }
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
            let key = self.key(entries.len(), k.as_str());
            entries.push((key, Entry { state, value }));
        }
        self.eat(b'}')?;
        if entries.iter().any(|(k, _)| &**k == "_") {
            return None;
        }
        Some(Node::from_entries(Soul::from_arc(Arc::from(soul)), entries))
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
        r##"{"a":{"_":{"#":"a",">":{"x":1795643412520.001,"y":0.000123,"z":123456789012345.6}},"x":0.1,"y":1234567890123456789,"z":-0.0}}"##,
        r##"{"a":{"_":{"#":"a",">":{"x":9007199254740993}},"x":00.5}}"##,
        r##"{"a":{"_":{"#":"a",">":{"p":1,"q":2}},"p":1,"q":2},"b":{"_":{"#":"b",">":{"q":1,"p":2}},"q":"x","p":"y"},"c":{"_":{"#":"c",">":{"r":1}},"r":3}}"##,
    ];

    /// Random graphs in the usual shape (any key and string text, any number):
    /// the shortcut and the general parser give the same graph or error.
    #[test]
    fn random_graphs_parse_as_the_general_parser_does() {
        use crate::json::{write_number, write_str};
        use proptest::prelude::*;
        let value = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<f64>().prop_map(|n| {
                let mut o = String::new();
                write_number(&mut o, n);
                o
            }),
            (0i64..10_000_000, 0u32..6)
                .prop_map(|(m, k)| format!("{}", m as f64 / 10f64.powi(k as i32))),
            ".{0,6}".prop_map(|t| {
                let mut o = String::new();
                write_str(&mut o, &t);
                o
            }),
            "[a-z]{0,3}".prop_map(|t| format!(r##"{{"#":"{t}"}}"##)),
        ];
        let node = prop::collection::vec((".{0,3}", 0.0f64..2e12, value), 0..6);
        let graph = prop::collection::vec(("[a-c]{1,2}", node), 0..4);
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&graph, |g| {
                let mut t = String::from("{");
                for (i, (soul, keys)) in g.iter().enumerate() {
                    if i > 0 {
                        t.push(',');
                    }
                    t.push_str(&format!(r##""{soul}":{{"_":{{"#":"{soul}",">":{{"##));
                    for (j, (k, st, _)) in keys.iter().enumerate() {
                        if j > 0 {
                            t.push(',');
                        }
                        write_str(&mut t, k);
                        t.push(':');
                        write_number(&mut t, st.floor());
                    }
                    t.push_str("}}");
                    for (k, _, v) in keys {
                        t.push(',');
                        write_str(&mut t, k);
                        t.push(':');
                        t.push_str(v);
                    }
                    t.push('}');
                }
                t.push('}');
                let want = general(&t);
                if let Some(fast) = parse(&t) {
                    prop_assert_eq!(Ok(fast), want.clone(), "{}", t);
                }
                prop_assert_eq!(Graph::from_wire(&t), want.clone(), "{}", t);
                // Inside an envelope: the prefix taken is the graph's text.
                let env = format!("{t},\"#\":\"m\"}}");
                if let Some((g, n)) = super::parse_prefix(&env) {
                    prop_assert_eq!(&env[n..], ",\"#\":\"m\"}");
                    prop_assert_eq!(Ok(g), want, "{}", t);
                }
                Ok(())
            })
            .unwrap();
    }

    /// Every number the fast path reads is the double the standard library's
    /// correctly rounding parser reads from the same text.
    #[test]
    fn numbers_are_read_exactly() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        let text = "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?";
        runner
            .run(&text, |t| {
                let mut p = super::P {
                    b: t.as_bytes(),
                    s: &t,
                    i: 0,
                    keys: Vec::new(),
                };
                let want: f64 = t.parse().unwrap();
                match p.number() {
                    Some(n) => {
                        prop_assert_eq!(n.to_bits(), want.to_bits(), "{}", t);
                        prop_assert_eq!(p.i, t.len());
                    }
                    // Left to the general parser: -0 and what overflows.
                    None => prop_assert!(want == 0.0 || !want.is_finite(), "{}", t),
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn the_shortcut_agrees_with_the_general_parser() {
        for case in CASES {
            let want = general(case);
            // `None`: left to the general parser, nothing to compare.
            if let Some(g) = parse(case) {
                assert_eq!(Ok(g), want, "{case}");
            }
            assert_eq!(Graph::from_wire(case), want, "{case}");
            // As the start of an envelope: what the prefix parser takes parses
            // to the same graph on its own.
            let env = format!("{case},\"#\":\"m\"}}");
            if let Some((g, n)) = super::parse_prefix(&env) {
                assert_eq!(Ok(g), general(&env[..n]), "{case}");
            }
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
