//! The bits of JavaScript semantics that SEA's checks depend on: `JSON.parse`
//! attempts, truthiness, `parseFloat`, `ToString`, loose comparison, and Gun's
//! `String.match` (the lex matcher certificates use).

use std::cmp::Ordering;

use gun_graph::json;
use serde_json::Value as J;

/// `JSON.parse(text)`, or `None` where it throws.
///
/// Differences that remain: JSON with lone surrogate escapes, numbers beyond
/// `f64` (JavaScript makes them `Infinity`) and nesting deeper than 128 fail here.
pub(crate) fn parse(text: &str) -> Option<J> {
    serde_json::from_str(text).ok()
}

/// SEA's `S.parse` on a string: the parsed JSON when the text is JSON, else the
/// string itself.
pub(crate) fn parse_or_string(text: &str) -> J {
    parse(text).unwrap_or_else(|| J::String(text.to_owned()))
}

/// JavaScript truthiness of a JSON value.
pub(crate) use gun_graph::json::truthy;

/// Truthiness of a property that may be absent (`undefined` is falsy).
pub(crate) fn truthy_opt(v: Option<&J>) -> bool {
    v.is_some_and(truthy)
}

/// `x[key]` for a JSON value: only objects have properties here (a string's or
/// an array's named properties are never the ones SEA reads).
pub(crate) fn prop<'a>(v: &'a J, key: &str) -> Option<&'a J> {
    match v {
        J::Object(m) => m.get(key),
        _ => None,
    }
}

/// `JSON.stringify(v)`, JavaScript-exact.
pub(crate) fn stringify(v: &J) -> String {
    json::stringify(v)
}

/// The text SEA hashes for `m`: `m` itself if it is a string, else `JSON.stringify(m)`.
pub(crate) fn text_of(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => stringify(other),
    }
}

/// ECMAScript `ToString` of a JSON value.
pub(crate) fn to_string(v: &J) -> String {
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => json::number_text(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => s.clone(),
        J::Array(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|e| match e {
                    J::Null => String::new(),
                    other => to_string(other),
                })
                .collect();
            parts.join(",")
        }
        J::Object(_) => "[object Object]".into(),
    }
}

/// JavaScript's `StrWhiteSpaceChar` (white space and line terminators).
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// Length of the longest prefix of `s` that is a `StrDecimalLiteral` without
/// sign (digits, one `.`, an exponent), or `None` if there is none.
fn decimal_prefix(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        let mut frac = 0;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
            frac += 1;
        }
        if digits + frac > 0 {
            i = j;
            digits += frac;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > start {
            i = j;
        }
    }
    Some(i)
}

/// `parseFloat(text)`: the longest numeric prefix after leading white space.
pub(crate) fn parse_float_str(text: &str) -> f64 {
    let t = text.trim_start_matches(is_js_space);
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    if rest.starts_with("Infinity") {
        return sign * f64::INFINITY;
    }
    match decimal_prefix(rest) {
        Some(n) => rest[..n].parse::<f64>().map_or(f64::NAN, |v| sign * v),
        None => f64::NAN,
    }
}

/// `parseFloat(v)` for a JSON value (numbers pass through, the rest via `ToString`).
pub(crate) fn parse_float(v: &J) -> f64 {
    match v {
        J::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        other => parse_float_str(&to_string(other)),
    }
}

/// `ToNumber(text)` (`StringToNumber`): the whole text must be numeric.
pub(crate) fn to_number_str(text: &str) -> f64 {
    let t = text.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let radix = |p: &str, r: u32| -> f64 {
        if p.is_empty() || !p.chars().all(|c| c.is_digit(r)) {
            return f64::NAN;
        }
        p.chars()
            .filter_map(|c| c.to_digit(r))
            .fold(0.0, |acc, d| acc * f64::from(r) + f64::from(d))
    };
    let lower = t.get(..2).map(str::to_ascii_lowercase);
    match lower.as_deref() {
        Some("0x") => return radix(&t[2..], 16),
        Some("0o") => return radix(&t[2..], 8),
        Some("0b") => return radix(&t[2..], 2),
        _ => {}
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    if rest == "Infinity" {
        return sign * f64::INFINITY;
    }
    match decimal_prefix(rest) {
        Some(n) if n == rest.len() => rest.parse::<f64>().map_or(f64::NAN, |v| sign * v),
        _ => f64::NAN,
    }
}

/// The order of the JavaScript comparison `t < v` / `t > v` for a string `t`,
/// or `None` when the comparison is false both ways (NaN).
fn js_cmp(t: &str, v: &J) -> Option<Ordering> {
    let num = |x: f64| to_number_str(t).partial_cmp(&x);
    match v {
        J::String(s) => Some(json::cmp_utf16(t, s)),
        J::Number(n) => num(n.as_f64().unwrap_or(f64::NAN)),
        J::Bool(b) => num(if *b { 1.0 } else { 0.0 }),
        J::Null => num(0.0),
        J::Array(_) | J::Object(_) => Some(json::cmp_utf16(t, &to_string(v))),
    }
}

fn js_ge(t: &str, v: &J) -> bool {
    matches!(js_cmp(t, v), Some(Ordering::Greater | Ordering::Equal))
}

fn js_le(t: &str, v: &J) -> bool {
    matches!(js_cmp(t, v), Some(Ordering::Less | Ordering::Equal))
}

/// Gun's `String.match(t, o)` (gun.js 0.2020.1241, the shim version that sea.js
/// uses), for a string `t` and a lex `o` that may be absent.
///
/// A string `o` means `{"=": o}`; `=` is equality, `*` a prefix, `>`/`<` bounds
/// compared as JavaScript compares (UTF-16 code units for strings).
pub(crate) fn text_match(t: &str, o: Option<&J>) -> bool {
    let eq_only;
    let obj: Option<&serde_json::Map<String, J>> = match o {
        Some(J::String(s)) => {
            eq_only = s.as_str();
            // {'=': s}: `t === s` when s is non-empty; otherwise '=' is defined → false.
            return !eq_only.is_empty() && t == eq_only;
        }
        Some(J::Object(m)) => Some(m),
        // `o || {}`, or a primitive/array whose named properties are all undefined.
        _ => None,
    };
    let Some(m) = obj else {
        return false;
    };
    let get = |k: &str| m.get(k);
    // tmp = o['='] || o['*'] || o['>'] || o['<']  (the last operand if none is truthy)
    let tmp = ["=", "*", ">"]
        .iter()
        .map(|k| get(k))
        .find(|v| truthy_opt(*v))
        .unwrap_or_else(|| get("<"));
    if let Some(J::String(s)) = tmp
        && s == t
    {
        return true;
    }
    if get("=").is_some() {
        return false;
    }
    // tmp = o['*'] || o['>'];  t.slice(0, (tmp||'').length) === tmp
    let tmp = if truthy_opt(get("*")) {
        get("*")
    } else {
        get(">")
    };
    if let Some(J::String(s)) = tmp
        && t.starts_with(s.as_str())
    {
        return true;
    }
    if get("*").is_some() {
        return false;
    }
    match (get(">"), get("<")) {
        (Some(lo), Some(hi)) => js_ge(t, lo) && js_le(t, hi),
        (Some(lo), None) => js_ge(t, lo),
        (None, Some(hi)) => js_le(t, hi),
        (None, None) => false,
    }
}

/// `x.indexOf('*') > -1` for a string or an array; `None` where JavaScript
/// would throw (no `indexOf` on numbers, booleans, objects).
pub(crate) fn has_star(v: &J) -> Option<bool> {
    match v {
        J::String(s) => Some(s.contains('*')),
        J::Array(a) => Some(a.iter().any(|e| e.as_str() == Some("*"))),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_float_takes_the_numeric_prefix() {
        assert_eq!(parse_float_str("99"), 99.0);
        assert_eq!(parse_float_str("  1.5e3xyz"), 1500.0);
        assert_eq!(parse_float_str("-2."), -2.0);
        assert_eq!(parse_float_str(".5"), 0.5);
        assert_eq!(parse_float_str("1e"), 1.0);
        assert_eq!(parse_float_str("Infinityx"), f64::INFINITY);
        assert!(parse_float_str("").is_nan());
        assert!(parse_float_str("abc").is_nan());
        assert!(parse_float_str(".").is_nan());
        assert_eq!(parse_float(&json!(1900000000000u64)), 1.9e12);
        assert_eq!(parse_float(&json!("1900000000000")), 1.9e12);
        assert!(parse_float(&json!(null)).is_nan());
    }

    #[test]
    fn to_number_needs_the_whole_text() {
        assert_eq!(to_number_str(" 12 "), 12.0);
        assert_eq!(to_number_str(""), 0.0);
        assert_eq!(to_number_str("0x1f"), 31.0);
        assert!(to_number_str("12a").is_nan());
        assert!(to_number_str("inf").is_nan());
        assert_eq!(to_number_str("-Infinity"), f64::NEG_INFINITY);
    }

    #[test]
    fn text_match_follows_gun() {
        assert!(text_match("inbox/x", Some(&json!({"*": "inbox"}))));
        assert!(!text_match("private/x", Some(&json!({"*": "inbox"}))));
        assert!(text_match("inbox", Some(&json!("inbox"))));
        assert!(!text_match("inbox/x", Some(&json!("inbox"))));
        assert!(!text_match("", Some(&json!(""))));
        assert!(!text_match("x", None));
        assert!(text_match("b", Some(&json!({">": "a", "<": "c"}))));
        assert!(!text_match("d", Some(&json!({">": "a", "<": "c"}))));
        assert!(text_match("d", Some(&json!({">": "a"}))));
        assert!(text_match("a", Some(&json!({"<": "c"}))));
        // '>' is also a prefix (tmp = o['*'] || o['>'])
        assert!(text_match("abc", Some(&json!({">": "ab", "<": "a"}))));
        assert!(!text_match("x", Some(&json!({"=": "y", ">": "a"}))));
        assert!(text_match("5", Some(&json!({">": 3}))));
        assert!(!text_match("x", Some(&json!(5))));
    }

    #[test]
    fn to_string_is_ecmascript() {
        assert_eq!(to_string(&json!([1, null, "a", [2, 3]])), "1,,a,2,3");
        assert_eq!(to_string(&json!({"a": 1})), "[object Object]");
        assert_eq!(to_string(&json!(12.5)), "12.5");
    }
}
