use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use gun_ham::HamValue;

use crate::Error;
use crate::json;

/// A node's id: any non-empty string.
///
/// Cloning is cheap (a reference count). Souls order by their UTF-8 bytes in
/// Rust collections; [`json::cmp_utf16`] gives JavaScript's order where needed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Soul(Arc<str>);

impl Soul {
    /// Makes a soul, refusing the empty string.
    pub fn new(s: impl Into<Arc<str>>) -> Result<Soul, Error> {
        let s = s.into();
        if s.is_empty() {
            Err(Error::EmptySoul)
        } else {
            Ok(Soul(s))
        }
    }

    /// The soul's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared text of the soul.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }

    /// For call sites that checked that `s` is not empty.
    pub(crate) fn from_arc(s: Arc<str>) -> Soul {
        debug_assert!(!s.is_empty());
        Soul(s)
    }
}

impl Borrow<str> for Soul {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Soul {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Soul {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Soul({:?})", &*self.0)
    }
}

impl fmt::Display for Soul {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Soul {
    type Error = Error;
    fn try_from(s: &str) -> Result<Soul, Error> {
        Soul::new(s)
    }
}

impl TryFrom<String> for Soul {
    type Error = Error;
    fn try_from(s: String) -> Result<Soul, Error> {
        Soul::new(s)
    }
}

/// A value Gun can store under a key: `null` (the deletion marker), a boolean, a
/// finite number, a string, or a link `{"#": soul}` to another node.
///
/// Arrays and other objects are not values; nested objects become linked nodes
/// (the chain API does that).
#[derive(Clone, PartialEq)]
pub enum Value {
    /// `null`: the key was deleted (tombstones keep their state).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A finite number. Build it with [`Value::number`] to refuse NaN and infinities;
    /// a non-finite number found here is written as `null`, as JavaScript does.
    Number(f64),
    /// A string.
    String(Arc<str>),
    /// A link to the node with this soul, `{"#": soul}` on the wire.
    Link(Soul),
}

impl Value {
    /// A number value, refusing NaN and infinities (Gun.js treats them as invalid).
    pub fn number(n: f64) -> Result<Value, Error> {
        if n.is_finite() {
            Ok(Value::Number(n + 0.0))
        } else {
            Err(Error::NonFiniteNumber)
        }
    }

    /// A string value.
    pub fn string(s: impl Into<Arc<str>>) -> Value {
        Value::String(s.into())
    }

    /// A link to `soul`.
    pub fn link(soul: Soul) -> Value {
        Value::Link(soul)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The linked soul, if this is a link.
    pub fn as_link(&self) -> Option<&Soul> {
        match self {
            Value::Link(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends `JSON.stringify(self)`.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Number(n) => json::write_number(out, *n),
            Value::String(s) => json::write_str(out, s),
            Value::Link(s) => {
                out.push_str("{\"#\":");
                json::write_str(out, s.as_str());
                out.push('}');
            }
        }
    }

    /// `JSON.stringify(self)`: the text HAM compares and SEA signs.
    pub fn to_json_text(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }

    /// The value as a `serde_json::Value` (a link becomes `{"#": soul}`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            // Integers come back as JSON integers (`json!(30)`), as JavaScript
            // prints them; other numbers as floats.
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => {
                serde_json::Value::Number((*n as i64).into())
            }
            Value::Number(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Link(s) => {
                let mut m = serde_json::Map::new();
                m.insert("#".into(), serde_json::Value::String(s.to_string()));
                serde_json::Value::Object(m)
            }
        }
    }

    /// Reads a value from JSON, validating as Gun.js does: objects must be exactly
    /// `{"#": non-empty string}`; arrays, other objects and non-finite numbers are
    /// refused. The error names what was wrong.
    pub fn from_json(v: &serde_json::Value) -> Result<Value, InvalidValue> {
        use serde_json::Value as J;
        Ok(match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Value::Number(f + 0.0),
                _ => return Err(InvalidValue::NonFiniteNumber),
            },
            J::String(s) => Value::String(s.as_str().into()),
            J::Array(_) => return Err(InvalidValue::Array),
            J::Object(m) => {
                if m.len() != 1 {
                    return Err(InvalidValue::Object);
                }
                match m.get("#") {
                    Some(J::String(s)) if !s.is_empty() => Value::Link(Soul(s.as_str().into())),
                    Some(J::String(_)) => return Err(InvalidValue::EmptyLink),
                    _ => return Err(InvalidValue::Object),
                }
            }
        })
    }

    /// The first character class of the JSON text, for fast tie-break ordering:
    /// `"` < `-` < digits < `f` < `n` < `t` < `{`.
    fn text_rank(&self) -> u8 {
        match self {
            Value::String(_) => 0,
            Value::Number(n) if n.is_finite() && *n < 0.0 => 1,
            Value::Number(n) if n.is_finite() => 2,
            Value::Bool(false) => 3,
            // A non-finite number prints as `null`.
            Value::Null | Value::Number(_) => 4,
            Value::Bool(true) => 5,
            Value::Link(_) => 6,
        }
    }
}

/// Why a JSON value is not a Gun value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidValue {
    /// Arrays are not values (Gun.js: "Invalid data: Array").
    Array,
    /// An object that is not a link `{"#": soul}` (extra keys, or `#` not a string).
    Object,
    /// A link with an empty soul `{"#": ""}`.
    EmptyLink,
    /// NaN, `Infinity` or `-Infinity`.
    NonFiniteNumber,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidValue::Array => "an array is not a valid value",
            InvalidValue::Object => {
                "an object other than a link {\"#\": soul} is not a valid value"
            }
            InvalidValue::EmptyLink => "a link must name a non-empty soul",
            InvalidValue::NonFiniteNumber => "NaN and infinities are not valid values",
        })
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_text())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_text())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s.into())
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Value {
        Value::Number(f64::from(n))
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Value {
        Value::Number(f64::from(n))
    }
}

impl From<Soul> for Value {
    fn from(s: Soul) -> Value {
        Value::Link(s)
    }
}

impl HamValue for Value {
    /// Compares `JSON.stringify` texts in UTF-16 code-unit order, without building
    /// them for the common cases.
    fn lexical_cmp(&self, other: &Self) -> Ordering {
        let (ra, rb) = (self.text_rank(), other.text_rank());
        if ra != rb {
            return ra.cmp(&rb);
        }
        match (self, other) {
            (Value::String(a), Value::String(b)) => json::cmp_str_json_text(a, b),
            (Value::Link(a), Value::Link(b)) => {
                // `{"#":` is a common prefix; then the escaped souls, then `}` (0x7d).
                let mut x = json::EscapedUnits::new(a.as_str()).chain([0x7d]);
                let mut y = json::EscapedUnits::new(b.as_str()).chain([0x7d]);
                loop {
                    match (x.next(), y.next()) {
                        (Some(p), Some(q)) if p == q => continue,
                        (Some(p), Some(q)) => return p.cmp(&q),
                        (None, None) => return Ordering::Equal,
                        (None, Some(_)) => return Ordering::Less,
                        (Some(_), None) => return Ordering::Greater,
                    }
                }
            }
            (Value::Number(a), Value::Number(b)) => {
                if a == b {
                    return Ordering::Equal;
                }
                // Number texts are ASCII: byte order is UTF-16 order.
                let mut sa = String::new();
                let mut sb = String::new();
                json::write_number(&mut sa, *a);
                json::write_number(&mut sb, *b);
                sa.as_bytes().cmp(sb.as_bytes())
            }
            // Same rank, same literal text (null/true/false, or null vs NaN).
            _ => Ordering::Equal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &Value, b: &Value) -> Ordering {
        let fast = a.lexical_cmp(b);
        // The fast comparison must agree with comparing the full texts.
        let ta: Vec<u16> = a.to_json_text().encode_utf16().collect();
        let tb: Vec<u16> = b.to_json_text().encode_utf16().collect();
        assert_eq!(fast, ta.cmp(&tb), "{a:?} vs {b:?}");
        fast
    }

    #[test]
    fn tie_break_order_of_gun() {
        let s = |x: &str| Value::string(x);
        assert_eq!(cmp(&s("ccc"), &s("bbb")), Ordering::Greater);
        assert_eq!(
            cmp(&Value::Number(6.0), &Value::Number(5.0)),
            Ordering::Greater
        );
        assert_eq!(
            cmp(&Value::Number(9.0), &Value::Number(10.0)),
            Ordering::Greater
        );
        assert_eq!(cmp(&Value::Number(5.0), &s("5")), Ordering::Greater);
        let link = Value::Link(Soul::new("a").unwrap_or_else(|_| unreachable!()));
        assert_eq!(cmp(&link, &s("zzz")), Ordering::Greater);
        assert_eq!(cmp(&Value::Null, &s("x")), Ordering::Greater);
        assert_eq!(cmp(&Value::Number(-1.0), &s("x")), Ordering::Greater);
        assert_eq!(
            cmp(&Value::Bool(false), &Value::Number(1e21)),
            Ordering::Greater
        );
        assert_eq!(cmp(&Value::Bool(true), &Value::Null), Ordering::Greater);
        assert_eq!(cmp(&s("😀"), &s("\u{e000}")), Ordering::Less);
        assert_eq!(cmp(&s("a\"b"), &s("a!b")), Ordering::Greater);
        assert_eq!(cmp(&Value::Number(f64::NAN), &Value::Null), Ordering::Equal);
    }

    #[test]
    fn validation_of_json_values() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_default();
        assert_eq!(Value::from_json(&j("[]")), Err(InvalidValue::Array));
        assert_eq!(
            Value::from_json(&j(r##"{"#":""}"##)),
            Err(InvalidValue::EmptyLink)
        );
        assert_eq!(
            Value::from_json(&j(r##"{"#":1}"##)),
            Err(InvalidValue::Object)
        );
        assert_eq!(
            Value::from_json(&j(r##"{"#":"x","y":1}"##)),
            Err(InvalidValue::Object)
        );
        assert!(matches!(
            Value::from_json(&j(r##"{"#":"x"}"##)),
            Ok(Value::Link(_))
        ));
        assert_eq!(Value::from_json(&j("1.5")), Ok(Value::Number(1.5)));
    }
}
