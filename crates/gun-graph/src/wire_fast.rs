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
//! allocations, not a thousand), and with the keys of earlier graphs parsed
//! on the same thread (a client writing `{name, age, …}` put after put costs
//! no allocation per key: see `recent_key`).

use std::cell::RefCell;
use std::sync::Arc;

use gun_ham::State;

use crate::Graph;
use crate::node::{Entry, Node};
use crate::value::{Soul, Value};

/// Keys remembered for sharing within one graph.
const SHARED_KEYS: usize = 64;

/// Slots of the per-thread cache of recent keys (a power of two).
const RECENT_KEYS: usize = 128;

/// Keys longer than this are not cached (field names are short; a long key is
/// rarely written twice, and the cache's memory stays a few KiB per thread).
const RECENT_KEY_MAX: usize = 32;

thread_local! {
    /// Keys of the graphs parsed lately on this thread, each in the slot its
    /// text hashes to (a later key with the same slot replaces it).
    static RECENT: RefCell<[Option<Arc<str>>; RECENT_KEYS]> =
        const { RefCell::new([const { None }; RECENT_KEYS]) };
}

/// `k` as an `Arc<str>`, shared with the same key of an earlier graph parsed on
/// this thread when it is still in the cache. Applications write the same
/// field names put after put; sharing them saves an allocation and a free per
/// key on the put path, and memory wherever the nodes are kept. The cache is
/// bounded (`RECENT_KEYS` keys of at most `RECENT_KEY_MAX` bytes), and a key is
/// only ever shared with a key of the same text, so a peer choosing its keys
/// can at worst make every lookup miss.
fn recent_key(k: &str) -> Arc<str> {
    if k.len() > RECENT_KEY_MAX {
        return Arc::from(k);
    }
    // FNV-1a: keys are a few bytes; the slot needs no protection from chosen
    // collisions (a collision only replaces a cached key).
    let mut h: u32 = 0x811c_9dc5;
    for &b in k.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let i = (h ^ (h >> 16)) as usize % RECENT_KEYS;
    RECENT
        .try_with(|r| {
            let mut r = r.borrow_mut();
            match &r[i] {
                Some(a) if **a == *k => Arc::clone(a),
                _ => {
                    let a: Arc<str> = Arc::from(k);
                    r[i] = Some(Arc::clone(&a));
                    a
                }
            }
        })
        // A thread being torn down has no cache any more.
        .unwrap_or_else(|_| Arc::from(k))
}

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
    /// A node's `>` list, kept from node to node (one allocation per graph).
    states: Vec<(Text<'a>, f64)>,
    /// Where an escaped string value is decoded before its one copy into an
    /// `Arc<str>`.
    scratch: String,
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
    let mut p = P::new(text);
    let g = p.graph()?;
    Some((g, p.i))
}

/// Decodes the body of a JSON string whose escapes are all valid (`\"`, `\\`,
/// `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\uXXXX` with surrogates in pairs) into
/// `out`; `None` for anything else (a lone surrogate, an unknown escape), which
/// the general parser then reads and refuses or accepts as serde_json does.
/// `body` holds no unescaped `"` nor control character (the caller scanned it).
fn unescape(body: &str, out: &mut String) -> Option<()> {
    fn hex4(b: &[u8]) -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(..4)? {
            v = v * 16 + char::from(c).to_digit(16)?;
        }
        Some(v)
    }
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // The plain run up to the next backslash, copied whole.
        let run = b[i..]
            .iter()
            .position(|&c| c == b'\\')
            .unwrap_or(b.len() - i);
        out.push_str(body.get(i..i + run)?);
        i += run;
        if i == b.len() {
            break;
        }
        let c = match *b.get(i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(b.get(i + 2..)?)?;
                i += 6;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        if b.get(i..i + 2)? != b"\\u" {
                            return None;
                        }
                        let lo = hex4(b.get(i + 2..)?)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        i += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => hi,
                };
                out.push(char::from_u32(code)?);
                continue;
            }
            _ => return None,
        };
        out.push(c);
        i += 2;
    }
    Some(())
}

/// The first `i >= j` where `b[i]` is a quote, a backslash or a control
/// character; eight bytes at a time while eight are there.
#[inline]
fn stop_at(b: &[u8], mut j: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(j..j + 8) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // Bytes equal to '"' or '\\', or below 0x20: each test may also flag
        // bytes above (in memory after) a true hit, never one before it, so
        // the lowest flag is the first stop.
        let quote = v ^ (ONES * u64::from(b'"'));
        let slash = v ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (v.wrapping_sub(ONES * 0x20) & !v);
        let hits = hits & HIGH;
        if hits != 0 {
            return Some(j + (hits.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    Some(j + b.get(j..)?.iter().position(|&c| STOP[usize::from(c)])?)
}

/// Reads the run of ASCII digits at `b[j..]` into `mant` (`mant * 10 + d` per
/// digit, wrapping: callers use it only for at most 19 digits) and returns
/// where the run ends. Eight digits at a time where eight are there (a
/// millisecond state has thirteen), one at a time after.
#[inline]
fn read_digits(b: &[u8], mut j: usize, mant: &mut u64) -> usize {
    while let Some(chunk) = b.get(j..j + 8) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // All eight bytes are '0'..='9' (the check of simdjson's
        // `is_made_of_eight_digits_fast`).
        let hi = v & 0xF0F0_F0F0_F0F0_F0F0;
        let carry = (v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4;
        if hi | carry != 0x3333_3333_3333_3333 {
            break;
        }
        // Their value: pairs, then fours, then the eight (little-endian lanes).
        let d = v.wrapping_sub(0x3030_3030_3030_3030);
        let d = d.wrapping_mul(10).wrapping_add(d >> 8);
        let mask = 0x0000_00FF_0000_00FF;
        let eight = ((d & mask)
            .wrapping_mul(100 + (1_000_000 << 32))
            .wrapping_add(((d >> 16) & mask).wrapping_mul(1 + (10_000 << 32))))
            >> 32;
        *mant = mant.wrapping_mul(100_000_000).wrapping_add(eight);
        j += 8;
    }
    while j < b.len() && b[j].is_ascii_digit() {
        *mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[j] - b'0'));
        j += 1;
    }
    j
}

impl<'a> P<'a> {
    fn new(text: &'a str) -> P<'a> {
        P {
            b: text.as_bytes(),
            s: text,
            i: 0,
            keys: Vec::new(),
            states: Vec::new(),
            scratch: String::new(),
        }
    }

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
        let (start, end, escaped) = self.string_span()?;
        if escaped {
            let mut out = String::with_capacity(end - start);
            unescape(self.s.get(start..end)?, &mut out)?;
            Some(Text::Owned(out))
        } else {
            self.s.get(start..end).map(Text::Plain)
        }
    }

    /// The next string token's body `start..end` (between the quotes) and
    /// whether it holds escapes; the token is consumed.
    #[inline]
    fn string_span(&mut self) -> Option<(usize, usize, bool)> {
        self.ws();
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            // To the next quote, backslash or control character.
            j = stop_at(self.b, j)?;
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
        Some((start, j, escaped))
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
                j = read_digits(b, j, &mut mant);
            }
            _ => return None,
        }
        let mut digits = j - int_start;
        let mut frac = 0usize;
        if b.get(j) == Some(&b'.') {
            j += 1;
            let f = j;
            j = read_digits(b, j, &mut mant);
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

    /// A key's text, shared with an earlier node of this graph when one had
    /// it (`true`): the key at the same position in the previous node is
    /// tried first (nodes of one put usually have the same keys in the same
    /// order), then the others remembered.
    fn key(&self, pos: usize, k: &str) -> (Arc<str>, bool) {
        if let Some(a) = self.keys.get(pos)
            && **a == *k
        {
            return (a.clone(), true);
        }
        if let Some(a) = self.keys.iter().find(|a| &***a == k) {
            return (a.clone(), true);
        }
        (recent_key(k), false)
    }

    /// Remembers the new keys of a node that another node follows (a put of
    /// one node, the usual case, remembers nothing).
    fn remember(&mut self, entries: &[(Arc<str>, Entry)]) {
        for (k, _) in entries {
            if self.keys.len() >= SHARED_KEYS {
                break;
            }
            if !self.keys.iter().any(|a| Arc::ptr_eq(a, k)) {
                // One allocation for the keys of a usual node, not one per doubling.
                if self.keys.capacity() == 0 {
                    self.keys.reserve_exact(16);
                }
                self.keys.push(k.clone());
            }
        }
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

    /// The string token `"text"`, written without escapes (what Gun.js
    /// writes); `None` for anything else, escaped forms of the same text
    /// included (the general parser reads those).
    #[inline]
    fn expect(&mut self, text: &[u8]) -> Option<()> {
        self.ws();
        let i = self.i;
        let end = i + 1 + text.len();
        // A byte loop: these are a few bytes, shorter than a call to memcmp.
        if self.b.get(i) == Some(&b'"')
            && self
                .b
                .get(i + 1..end)?
                .iter()
                .zip(text)
                .all(|(a, b)| a == b)
            && self.b.get(end) == Some(&b'"')
        {
            self.i = end + 1;
            Some(())
        } else {
            None
        }
    }

    fn node(&mut self, soul: &str) -> Option<Node> {
        self.eat(b'{')?;
        // `_` first, `#` (the soul), then `>`.
        self.expect(b"_")?;
        self.eat(b':')?;
        self.eat(b'{')?;
        self.expect(b"#")?;
        self.eat(b':')?;
        self.expect(soul.as_bytes())?;
        self.eat(b',')?;
        self.expect(b">")?;
        self.eat(b':')?;
        self.eat(b'{')?;
        let mut states = std::mem::take(&mut self.states);
        states.clear();
        if states.capacity() == 0 {
            states.reserve_exact(16);
        }
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
        let mut all_shared = true;
        for (k, state) in &states {
            self.eat(b',')?;
            if self.string()?.as_str() != k.as_str() {
                return None;
            }
            self.eat(b':')?;
            let value = self.value()?;
            let state = State::new(*state).ok()?;
            let (key, shared) = self.key(entries.len(), k.as_str());
            all_shared &= shared;
            entries.push((key, Entry { state, value }));
        }
        self.eat(b'}')?;
        self.states = states;
        self.ws();
        if !all_shared && self.b.get(self.i) == Some(&b',') {
            self.remember(&entries);
        }
        if entries.iter().any(|(k, _)| &**k == "_") {
            return None;
        }
        Some(Node::from_entries(Soul::from_arc(Arc::from(soul)), entries))
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => {
                let (start, end, escaped) = self.string_span()?;
                let body = self.s.get(start..end)?;
                if escaped {
                    // Decoded into the reused buffer, then copied once.
                    self.scratch.clear();
                    unescape(body, &mut self.scratch)?;
                    Some(Value::String(Arc::from(self.scratch.as_str())))
                } else {
                    Some(Value::String(Arc::from(body)))
                }
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
                let mut p = super::P::new(&t);
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

    /// The escape decoder gives what serde_json gives for every string body
    /// it accepts, and refuses only what it must leave to the general parser:
    /// bodies built from plain text and every kind of escape, valid or not
    /// (lone and reversed surrogates, bad hex, unknown escapes, a cut `\u`).
    #[test]
    fn escapes_decode_as_serde_json_decodes_them() {
        use proptest::prelude::*;
        let piece = prop_oneof![
            "[a-z \u{e9}\u{1F600}]{0,3}",
            Just(r#"\""#.to_owned()),
            Just(r"\\".to_owned()),
            Just(r"\/".to_owned()),
            Just(r"\b".to_owned()),
            Just(r"\f".to_owned()),
            Just(r"\n".to_owned()),
            Just(r"\r".to_owned()),
            Just(r"\t".to_owned()),
            Just(r"\x".to_owned()),
            Just(r"\u12".to_owned()),
            Just(r"\u00G0".to_owned()),
            prop_oneof![
                0u32..0x80,
                0x80u32..0xD800,
                0xD800u32..0xDC00,
                0xDC00u32..0xE000,
                0xE000u32..0x10000
            ]
            .prop_flat_map(|c| prop_oneof![
                Just(format!("\\u{c:04x}")),
                Just(format!("\\u{c:04X}"))
            ]),
        ];
        let body = prop::collection::vec(piece, 0..8).prop_map(|v| v.concat());
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&body, |b| {
                let want = serde_json::from_str::<String>(&format!("\"{b}\"")).ok();
                let mut got = String::new();
                match super::unescape(&b, &mut got) {
                    Some(()) => prop_assert_eq!(Some(got), want, "{}", b),
                    // Left to the general parser: only what serde_json refuses.
                    None => prop_assert!(want.is_none(), "{}", b),
                }
                Ok(())
            })
            .unwrap();
        // Surrogate pairs decode; a lone or reversed one is left to the general parser.
        let mut out = String::new();
        assert_eq!(super::unescape(r"\ud83d\ude00!", &mut out), Some(()));
        assert_eq!(out, "\u{1F600}!");
        assert_eq!(super::unescape(r"\ud83d", &mut String::new()), None);
        assert_eq!(super::unescape(r"\ude00\ud83d", &mut String::new()), None);
        assert_eq!(super::unescape(r"a\", &mut String::new()), None);
    }

    /// The eight-at-a-time string scan stops where a byte-by-byte scan stops,
    /// for every byte at every place (and none: the end of the text).
    #[test]
    fn string_scans_stop_at_the_first_quote_backslash_or_control() {
        let stop = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        for c in 0..=255u8 {
            for at in 0..20 {
                for fill in [b'a', 0xC3, 0x7F, 0xFF, b'!'] {
                    let mut t = vec![fill; 20];
                    t[at] = c;
                    let want = t.iter().position(|&x| stop(x));
                    assert_eq!(super::stop_at(&t, 0), want, "{c} at {at} in {fill}");
                    assert_eq!(
                        super::stop_at(&t, 3),
                        t[3..].iter().position(|&x| stop(x)).map(|p| p + 3)
                    );
                }
            }
        }
    }

    /// The eight-at-a-time digit reader stops exactly where the one-at-a-time
    /// reader stops, for every byte that can follow a digit at every place.
    #[test]
    fn digit_runs_end_at_the_first_non_digit() {
        for c in 0..=255u8 {
            for at in 0..18 {
                let mut t: Vec<u8> = b"123456789012345678".to_vec();
                t[at] = c;
                let end = if c.is_ascii_digit() { t.len() } else { at };
                let want: u64 = std::str::from_utf8(&t[..end]).unwrap().parse().unwrap_or(0);
                let mut mant = 0;
                assert_eq!(super::read_digits(&t, 0, &mut mant), end, "{c} at {at}");
                assert_eq!(mant, want, "{c} at {at}");
            }
        }
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

    #[test]
    fn keys_of_later_graphs_share_the_text_of_earlier_ones() {
        let key_of = |text: &str, key: &str| {
            let g = parse(text).unwrap();
            let node = g.iter().next().unwrap().1;
            std::sync::Arc::clone(node.iter().find(|(k, _)| &***k == key).unwrap().0)
        };
        let a = key_of(
            r##"{"a":{"_":{"#":"a",">":{"name":1}},"name":"x"}}"##,
            "name",
        );
        let b = key_of(
            r##"{"b":{"_":{"#":"b",">":{"name":2}},"name":"y"}}"##,
            "name",
        );
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        // Another key is its own text, whatever slot it shares.
        let c = key_of(r##"{"c":{"_":{"#":"c",">":{"nam":1}},"nam":"z"}}"##, "nam");
        assert_eq!(&*c, "nam");
        // Long keys are not cached (the cache's memory stays small).
        let long = "k".repeat(super::RECENT_KEY_MAX + 1);
        let text = |soul: &str| {
            format!(r##"{{"{soul}":{{"_":{{"#":"{soul}",">":{{"{long}":1}}}},"{long}":1}}}}"##)
        };
        let d = key_of(&text("d"), &long);
        let e = key_of(&text("e"), &long);
        assert_eq!(d, e);
        assert!(!std::sync::Arc::ptr_eq(&d, &e));
    }
}
