//! User space: which souls belong to a public key, and signed values.

use gun_graph::json::{write_json, write_number, write_str};
use gun_graph::{State, Value};
use serde_json::Value as J;

use crate::error::{Error, Result};
use crate::js;
use crate::pair::Pair;
use crate::sign::{sea_parse, sign_text, verify_text};

/// `SEA.opt.pub(soul)`: the public key whose user space `soul` is in, if any.
///
/// Exactly Gun.js's rule: take the text between the first `~` and the next `~`
/// (or the end); split it at every UTF-16 code unit outside `[A-Za-z0-9_-]`; the
/// first two pieces joined by `.` are the pub. So `~a.b`, `~a.b/x`, `~a/b` and
/// even `x~a.b/y` belong to `a.b`; `~foo` (one piece), `~` and `x` to nobody.
/// (Gun.js also tests for a leading `@`, which can never be true because `@`
/// splits; the `~@…` souls are handled before this rule is consulted.)
///
/// ```
/// use gun_sea::pub_of_soul;
/// assert_eq!(pub_of_soul("~a.b/inbox").as_deref(), Some("a.b"));
/// assert_eq!(pub_of_soul("x~a.b/y").as_deref(), Some("a.b"));
/// assert_eq!(pub_of_soul("note~draft 1").as_deref(), Some("draft.1"));
/// assert_eq!(pub_of_soul("~foo"), None);
/// assert_eq!(pub_of_soul("plain"), None);
/// ```
pub fn pub_of_soul(soul: &str) -> Option<String> {
    let part = soul.split('~').nth(1)?;
    if part.is_empty() {
        return None;
    }
    let mut pieces: Vec<String> = vec![String::new()];
    for c in part.chars() {
        if pieces.len() > 2 {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            if let Some(last) = pieces.last_mut() {
                last.push(c);
            }
        } else {
            // One separator per UTF-16 code unit: a character above U+FFFF is two.
            for _ in 0..c.len_utf16() {
                pieces.push(String::new());
            }
        }
    }
    if pieces.len() < 2 {
        return None;
    }
    if pieces[0].starts_with('@') {
        return None;
    }
    Some(format!("{}.{}", pieces[0], pieces[1]))
}

/// The text a user-space signature covers:
/// `{"#":soul,".":key,":":value,">":state}`, JavaScript-exact.
fn signed_text(soul: &str, key: &str, state: f64, value: impl FnOnce(&mut String)) -> String {
    let mut s = String::with_capacity(soul.len() + key.len() + 64);
    s.push_str("{\"#\":");
    write_str(&mut s, soul);
    s.push_str(",\".\":");
    write_str(&mut s, key);
    s.push_str(",\":\":");
    value(&mut s);
    s.push_str(",\">\":");
    write_number(&mut s, state);
    s.push('}');
    s
}

pub(crate) fn signed_text_json(soul: &str, key: &str, value: &J, state: f64) -> String {
    signed_text(soul, key, state, |s| write_json(s, value))
}

/// Signs a value for user space, as a logged-in Gun.js client does on every
/// put into its own `~pub` souls: returns the wire string `{":":value,"~":sig}`
/// where `sig` signs `{"#":soul,".":key,":":value,">":state}` (exactly this key
/// order, JavaScript number text) as [`sign`](crate::sign) does.
///
/// The result is what goes on the wire as the key's value (a JSON string).
pub fn sign_value(
    soul: &str,
    key: &str,
    value: &Value,
    state: State,
    pair: &Pair,
) -> Result<String> {
    let text = signed_text(soul, key, state.as_f64(), |s| value.write_json(s));
    let sig = sign_text(&text, &pair.priv_)?;
    let mut out = String::from("{\":\":");
    value.write_json(&mut out);
    out.push_str(",\"~\":");
    write_str(&mut out, &sig);
    out.push('}');
    Ok(out)
}

/// Signs a value for another user's space under a certificate, as Gun.js does
/// for `put(data, cb, {opt: {cert}})`: `{":":value,"~":sig,"+":cert,"*":writer}`
/// where `sig` is the writer's signature (as [`sign_value`]), `cert` the
/// certificate's `{"m","s"}` object (from [`certify`](crate::certify)) and
/// `writer` the writer's pub.
pub fn sign_value_certified(
    soul: &str,
    key: &str,
    value: &Value,
    state: State,
    writer: &Pair,
    certificate: &str,
) -> Result<String> {
    let cert = sea_parse(certificate);
    if !(js::truthy_opt(js::prop(&cert, "m")) && js::truthy_opt(js::prop(&cert, "s"))) {
        return Err(Error::NotSea {
            expected: "signature",
        });
    }
    let text = signed_text(soul, key, state.as_f64(), |s| value.write_json(s));
    let sig = sign_text(&text, &writer.priv_)?;
    let mut out = String::from("{\":\":");
    value.write_json(&mut out);
    out.push_str(",\"~\":");
    write_str(&mut out, &sig);
    out.push_str(",\"+\":");
    write_json(&mut out, &cert);
    out.push_str(",\"*\":");
    write_str(&mut out, &writer.pub_);
    out.push('}');
    Ok(out)
}

/// The parts of a signed user-space value `{":":…,"~":…,"+"?:…,"*"?:…}`.
pub(crate) struct Wrapped {
    /// The parsed object, in received key order.
    pub(crate) obj: serde_json::Map<String, J>,
}

impl Wrapped {
    /// Parses the wire string; `None` when SEA would find no signature in it
    /// (not JSON, not an object, `:` absent, `~` falsy).
    pub(crate) fn parse(wire: &str) -> Option<Wrapped> {
        match js::parse(wire)? {
            J::Object(obj) if obj.contains_key(":") && js::truthy_opt(obj.get("~")) => {
                Some(Wrapped { obj })
            }
            _ => None,
        }
    }

    pub(crate) fn value(&self) -> &J {
        self.obj.get(":").unwrap_or(&J::Null)
    }

    /// `~`, when it is text (a signature of another type never verifies).
    pub(crate) fn sig(&self) -> Option<&str> {
        self.obj.get("~").and_then(J::as_str)
    }

    /// Checks the signature over `{"#":soul,".":key,":":value,">":state}`.
    pub(crate) fn verify(&self, soul: &str, key: &str, state: f64, pub_: &str) -> Result<()> {
        let sig = self.sig().ok_or(Error::SignatureMismatch)?;
        verify_text(&signed_text_json(soul, key, self.value(), state), sig, pub_)
    }
}

/// Verifies a signed user-space value (the wire string `{":":value,"~":sig}`)
/// against `pub_` and returns the value.
///
/// Fields `+` and `*` (certified writes) are not looked at: pass the writer's
/// pub to check a certified value's own signature; [`SeaValidator`](crate::SeaValidator)
/// checks the certificate.
pub fn verify_value(soul: &str, key: &str, wire: &str, state: State, pub_: &str) -> Result<Value> {
    let w = Wrapped::parse(wire).ok_or(Error::NotSea {
        expected: "signed value",
    })?;
    w.verify(soul, key, state.as_f64(), pub_)?;
    Value::from_json(w.value()).map_err(Error::InvalidValue)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pub_of_soul_matches_gun() {
        let cases: &[(&str, Option<&str>)] = &[
            ("~a.b", Some("a.b")),
            ("~a.b/x", Some("a.b")),
            ("~a/b", Some("a.b")),
            ("x~a.b/y", Some("a.b")),
            ("~a.b~c.d", Some("a.b")),
            ("~foo", None),
            ("~", None),
            ("", None),
            ("x", None),
            ("~~a.b", None),
            ("~@alice", Some(".alice")),
            ("x~@", Some(".")),
            ("~a..b", Some("a.")),
            ("~a\u{1F600}b", Some("a.")),
            ("~a\u{e9}b", Some("a.b")),
            ("/RTC/room<?99", None),
            ("note~draft 1", Some("draft.1")),
        ];
        for (soul, want) in cases {
            assert_eq!(pub_of_soul(soul).as_deref(), *want, "{soul:?}");
        }
    }

    #[test]
    fn signed_values_round_trip() {
        let p = Pair::generate().unwrap();
        let soul = format!("~{}", p.pub_);
        let st = State::new(1795643451809.001).unwrap();
        for v in [
            Value::from("hello"),
            Value::Number(42.5),
            Value::Null,
            Value::Bool(false),
            Value::link(gun_graph::Soul::new(format!("{soul}/profile")).unwrap()),
        ] {
            let wire = sign_value(&soul, "k", &v, st, &p).unwrap();
            assert_eq!(verify_value(&soul, "k", &wire, st, &p.pub_).unwrap(), v);
            let other_state = State::new(1795643451809.002).unwrap();
            assert!(verify_value(&soul, "k", &wire, other_state, &p.pub_).is_err());
            assert!(verify_value(&soul, "k2", &wire, st, &p.pub_).is_err());
        }
    }
}
