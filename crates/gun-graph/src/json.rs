//! The one JavaScript-exact JSON text writer.
//!
//! Gun compares, hashes and signs the text `JSON.stringify` produces: the HAM
//! tie-break compares it, the `##` hash digests it and SEA signs it. serde_json's
//! output differs from JavaScript's (it prints `1.0` where JavaScript prints `1`,
//! `1e21` where JavaScript prints `1e+21`, and orders object keys differently), so
//! every place that needs that text goes through this module.
//!
//! The rules reproduced here:
//! * numbers in ECMAScript `Number::toString` form (shortest round trip, `1e+21`
//!   from 10^21 up, `1e-7` below 10^-6, `-0` as `0`); NaN and infinities as `null`;
//! * strings escaped only for `"`, `\`, the control characters (`\b \f \n \r \t`,
//!   others as `\u00xx` in lowercase hex) and lone surrogates (`\udxxx`); `/`, DEL,
//!   U+2028/U+2029 and all other characters are written as they are;
//! * object keys in JavaScript's own order: array-index keys (`"0"` … `"4294967294"`)
//!   first in ascending numeric order, then the other keys in insertion order;
//! * no white space.
//!
//! ```
//! use gun_graph::json;
//! let mut s = String::new();
//! json::write_number(&mut s, 1e21);
//! s.push(' ');
//! json::write_number(&mut s, 1795643451809.001);
//! s.push(' ');
//! json::write_str(&mut s, "a\"b\u{1}");
//! assert_eq!(s, r#"1e+21 1795643451809.001 "a\"b\u0001""#);
//!
//! let v: serde_json::Value = serde_json::from_str(r#"{"b":1.0,"1":true,"a":[null]}"#).unwrap();
//! assert_eq!(json::stringify(&v), r#"{"1":true,"b":1,"a":[null]}"#);
//! ```

use std::cmp::Ordering;

/// Appends the JavaScript text of the number `n` as `JSON.stringify` writes it.
pub fn write_number(out: &mut String, n: f64) {
    if !n.is_finite() {
        out.push_str("null");
        return;
    }
    if n == 0.0 {
        out.push('0');
        return;
    }
    // Integers below 2^53 print as plain digits in JavaScript.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        let mut buf = itoa_buf(n as i64);
        out.push_str(buf.as_str());
        buf.clear();
        return;
    }
    let mut buf = ryu_js::Buffer::new();
    out.push_str(buf.format_finite(n));
}

/// A tiny stack buffer for integer formatting (avoids `format!` allocation).
struct IntBuf {
    bytes: [u8; 24],
    start: usize,
}

impl IntBuf {
    fn as_str(&self) -> &str {
        // Only ASCII digits and '-' are ever written.
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("0")
    }
    fn clear(&mut self) {
        self.start = self.bytes.len();
    }
}

fn itoa_buf(v: i64) -> IntBuf {
    let mut b = IntBuf {
        bytes: [0; 24],
        start: 24,
    };
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        b.start -= 1;
        b.bytes[b.start] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        b.start -= 1;
        b.bytes[b.start] = b'-';
    }
    b
}

/// The JavaScript text of a number, as a new string.
pub fn number_text(n: f64) -> String {
    let mut s = String::new();
    write_number(&mut s, n);
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a quoted, escaped JSON string, as `JSON.stringify` writes it.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if needs_escape(b) {
            out.push_str(&s[start..i]);
            push_escape(out, u16::from(b));
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn push_escape(out: &mut String, unit: u16) {
    match unit {
        0x22 => out.push_str("\\\""),
        0x5c => out.push_str("\\\\"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        0x0a => out.push_str("\\n"),
        0x0d => out.push_str("\\r"),
        0x09 => out.push_str("\\t"),
        u => {
            out.push_str("\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[((u >> shift) & 0xf) as usize] as char);
            }
        }
    }
}

/// Appends a string given as UTF-16 code units, which may contain lone
/// surrogates, as `JSON.stringify` writes it (lone surrogates become `\udxxx`).
pub fn write_utf16_str(out: &mut String, units: &[u16]) {
    out.push('"');
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok(c) if (c as u32) < 0x20 || c == '"' || c == '\\' => push_escape(out, c as u16),
            Ok(c) => out.push(c),
            Err(e) => push_escape(out, e.unpaired_surrogate()),
        }
    }
    out.push('"');
}

/// The escaped JSON text of `s` (with quotes), as a new string.
pub fn str_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    write_str(&mut o, s);
    o
}

/// Whether `key` is a JavaScript array index (a canonical decimal below 2^32 − 1),
/// which JavaScript objects list before every other key.
pub fn is_array_index(key: &str) -> bool {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 10 || (b.len() > 1 && b[0] == b'0') {
        return false;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    key.parse::<u64>().is_ok_and(|v| v < u64::from(u32::MAX))
}

/// Orders keys as a JavaScript object enumerates them: array indices first in
/// ascending numeric order, then the rest in their given (insertion) order.
/// Returns the indices into `keys` in that order.
pub fn js_key_order<K: AsRef<str>>(keys: &[K]) -> Vec<usize> {
    let mut idx: Vec<(Option<u64>, usize)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let k = k.as_ref();
            (
                if is_array_index(k) {
                    k.parse::<u64>().ok()
                } else {
                    None
                },
                i,
            )
        })
        .collect();
    // Stable: non-index keys keep insertion order; `None` sorts after every `Some`.
    idx.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
    idx.into_iter().map(|(_, i)| i).collect()
}

/// Appends `JSON.stringify(v)` for an arbitrary JSON value.
///
/// serde_json is built with `preserve_order`, so an object's map holds its keys in
/// insertion (or received) order; JavaScript's array-index-first rule is applied on
/// top. Duplicate keys cannot occur in a map; as in `JSON.parse`, the last one won.
pub fn write_json(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(true) => out.push_str("true"),
        J::Bool(false) => out.push_str("false"),
        J::Number(n) => write_number(out, n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => write_str(out, s),
        J::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, e);
            }
            out.push(']');
        }
        J::Object(m) => {
            out.push('{');
            let any_index = m.keys().any(|k| is_array_index(k));
            let mut first = true;
            let mut emit = |out: &mut String, k: &str, e: &serde_json::Value| {
                if !first {
                    out.push(',');
                }
                first = false;
                write_str(out, k);
                out.push(':');
                write_json(out, e);
            };
            if any_index {
                let entries: Vec<(&String, &serde_json::Value)> = m.iter().collect();
                let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
                for i in js_key_order(&keys) {
                    emit(out, entries[i].0, entries[i].1);
                }
            } else {
                for (k, e) in m {
                    emit(out, k, e);
                }
            }
            out.push('}');
        }
    }
}

/// `JSON.stringify(v)` for an arbitrary JSON value, as a new string.
pub fn stringify(v: &serde_json::Value) -> String {
    let mut s = String::new();
    write_json(&mut s, v);
    s
}

/// Compares two strings as JavaScript compares them: by UTF-16 code units.
///
/// This differs from Rust's `str` order (UTF-8 bytes, i.e. code points) only when
/// a character above U+FFFF meets one in U+E000–U+FFFF: JavaScript sees the former
/// as a surrogate pair (U+D800–U+DFFF) and orders it first.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    // Fast path: byte order equals UTF-16 order up to the first difference unless
    // that difference involves a 4-byte sequence against a U+E000+ character.
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let common = ab.iter().zip(bb).take_while(|(x, y)| x == y).count();
    if common == ab.len() || common == bb.len() {
        return ab.len().cmp(&bb.len());
    }
    // Back up to the start of the differing characters.
    let mut start = common;
    while start > 0 && !a.is_char_boundary(start) {
        start -= 1;
    }
    let ca = a[start..].chars().next();
    let cb = b[start..].chars().next();
    match (ca, cb) {
        (Some(x), Some(y)) => cmp_char_utf16(x, y),
        _ => ab.len().cmp(&bb.len()),
    }
}

/// Compares two characters by their first UTF-16 code unit, then the second.
#[inline]
pub(crate) fn cmp_char_utf16(x: char, y: char) -> Ordering {
    let mut bx = [0u16; 2];
    let mut by = [0u16; 2];
    let ux = x.encode_utf16(&mut bx);
    let uy = y.encode_utf16(&mut by);
    (*ux).cmp(&*uy)
}

/// The UTF-16 code units of the escaped JSON text of a string, quotes included,
/// produced lazily so two texts can be compared without allocating.
pub(crate) struct EscapedUnits<'a> {
    chars: std::str::Chars<'a>,
    pending: [u16; 6],
    len: u8,
    pos: u8,
    opened: bool,
    closed: bool,
}

impl<'a> EscapedUnits<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        EscapedUnits {
            chars: s.chars(),
            pending: [0; 6],
            len: 0,
            pos: 0,
            opened: false,
            closed: false,
        }
    }

    fn set(&mut self, units: &[u16]) {
        self.pending[..units.len()].copy_from_slice(units);
        self.len = units.len() as u8;
        self.pos = 0;
    }
}

impl Iterator for EscapedUnits<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        if self.pos < self.len {
            let u = self.pending[self.pos as usize];
            self.pos += 1;
            return Some(u);
        }
        if !self.opened {
            self.opened = true;
            return Some(u16::from(b'"'));
        }
        match self.chars.next() {
            Some(c) => {
                let cu = c as u32;
                if cu < 0x20 || c == '"' || c == '\\' {
                    let mut tmp = String::with_capacity(6);
                    push_escape(&mut tmp, cu as u16);
                    let units: Vec<u16> = tmp.encode_utf16().collect();
                    self.set(&units[1..]);
                    Some(units[0])
                } else {
                    let mut b = [0u16; 2];
                    let enc = c.encode_utf16(&mut b);
                    if enc.len() == 2 {
                        let second = enc[1];
                        self.set(&[second]);
                    }
                    Some(b[0])
                }
            }
            None if !self.closed => {
                self.closed = true;
                Some(u16::from(b'"'))
            }
            None => None,
        }
    }
}

/// Compares the escaped JSON texts (quotes included) of two strings in UTF-16
/// order, without building them.
pub fn cmp_str_json_text(a: &str, b: &str) -> Ordering {
    // Strings without characters that need escaping compare like their raw forms,
    // except that the closing quote (0x22) sorts above ' ' and '!' only.
    EscapedUnits::new(a).cmp(EscapedUnits::new(b))
}

/// JavaScript truthiness of a JSON value (`null`, `false`, `0`, `NaN` and `""`
/// are falsy; arrays and objects are truthy).
pub fn truthy(v: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match v {
        J::Null => false,
        J::Bool(b) => *b,
        J::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        J::String(s) => !s.is_empty(),
        J::Array(_) | J::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: f64) -> String {
        number_text(n)
    }

    #[test]
    fn numbers_like_javascript() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-5.0), "-5");
        assert_eq!(num(1e21), "1e+21");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(1e-7), "1e-7");
        assert_eq!(num(1e-6), "0.000001");
        assert_eq!(num(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(num(1795643451809.001), "1795643451809.001");
        assert_eq!(num(1795643412520.0), "1795643412520");
        assert_eq!(num(f64::NAN), "null");
        assert_eq!(num(f64::INFINITY), "null");
        assert_eq!(num(5e-324), "5e-324");
        assert_eq!(num(2f64.powi(53)), "9007199254740992");
        assert_eq!(num(-1.5e300), "-1.5e+300");
        assert_eq!(num(123e-20), "1.23e-18");
    }

    #[test]
    fn strings_like_json_stringify() {
        assert_eq!(str_text("a/b"), r#""a/b""#);
        assert_eq!(str_text("\u{7f}\u{2028}"), "\"\u{7f}\u{2028}\"");
        assert_eq!(str_text("\u{0}\u{1f}\t\n"), r#""\u0000\u001f\t\n""#);
        assert_eq!(str_text("é😀"), "\"é😀\"");
        let mut s = String::new();
        write_utf16_str(&mut s, &[0x61, 0xd800, 0x62, 0xdfff, 0xd83d, 0xde00]);
        assert_eq!(s, "\"a\\ud800b\\udfff😀\"");
    }

    #[test]
    fn key_order_puts_indices_first() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"b":1,"10":2,"a":3,"2":4,"01":5,"4294967295":6,"4294967294":7}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            stringify(&v),
            r#"{"2":4,"10":2,"4294967294":7,"b":1,"a":3,"01":5,"4294967295":6}"#
        );
    }

    #[test]
    fn utf16_order() {
        // U+1F600 is D83D DE00 in UTF-16, below U+E000.
        assert_eq!(cmp_utf16("😀", "\u{e000}"), Ordering::Less);
        assert_eq!("😀".cmp("\u{e000}"), Ordering::Greater);
        assert_eq!(cmp_utf16("ab", "abc"), Ordering::Less);
        assert_eq!(cmp_utf16("b", "abc"), Ordering::Greater);
        assert_eq!(cmp_str_json_text("ab", "ab!"), Ordering::Greater);
        assert_eq!(cmp_str_json_text("ab", "ab\u{1}"), Ordering::Less);
        assert_eq!(cmp_str_json_text("😀", "\u{e000}"), Ordering::Less);
        assert_eq!(cmp_str_json_text("x", "x"), Ordering::Equal);
    }
}
