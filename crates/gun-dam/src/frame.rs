//! Frames: the text of one WebSocket message, holding one message or a batch (§1.2).
//!
//! | first non-whitespace character | treatment |
//! |---|---|
//! | `[` | a batch: each object element is a message; other elements are skipped |
//! | `{` | one message |
//! | anything else | ignored (empty result): `"…"` double-encoded batches, `not json` |
//!
//! `[]` (the relays' keep-alive) is an empty batch. Frames from Gun.js relays are
//! not always strict JSON: a relay that stored a string state emits
//! `">":{"s":-Infinity}`. When a frame fails to parse and holds a bare
//! `-Infinity`, `Infinity` or `NaN` outside strings, those tokens are rewritten
//! to `null` and the frame is parsed again (the put then fails validation for
//! that message only, as its state is not a number).
//!
//! Memory and stack are bounded: frames over [`Limits::max_frame_bytes`] are
//! refused before parsing, batches over [`Limits::max_batch`] are refused,
//! fields nested deeper than [`Limits::max_value_depth`] invalidate their
//! message, and any nesting deeper than serde_json's recursion limit (128) is a
//! JSON error. Field values are first captured as raw text, which serde_json
//! scans without recursion, so no input depth can overflow the stack.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::message::MessageVisitor;
use crate::{Error, Message};

/// Default for [`Limits::max_frame_bytes`]: 8 MiB. (Gun.js allows 90 MB.)
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Default for [`Limits::max_batch`]: 10 000 messages in one array frame.
pub const MAX_BATCH: usize = 10_000;

/// Default for [`Limits::max_value_depth`]: 32 levels of nesting in a field.
pub const MAX_VALUE_DEPTH: usize = 32;

/// Bounds applied to received frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Frames longer than this many bytes are refused with [`Error::TooBig`].
    pub max_frame_bytes: usize,
    /// Array frames with more elements than this are refused with
    /// [`Error::TooManyMessages`].
    pub max_batch: usize,
    /// Envelope and unknown fields (other than `put`) nested deeper than this
    /// make their message [`Error::InvalidMessage`]. Gun messages nest 3 or 4
    /// levels deep; the bound keeps the parser's stack use small (a 256 KiB
    /// thread stack is enough, also in debug builds). serde_json refuses more
    /// than 128 levels in any case; `put` is bounded by gun-graph's parser.
    pub max_value_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: MAX_FRAME_BYTES,
            max_batch: MAX_BATCH,
            max_value_depth: MAX_VALUE_DEPTH,
        }
    }
}

/// Parses a frame with the default [`Limits`]. See [`parse_frame_with`].
pub fn parse_frame(text: &str) -> Vec<Result<Message, Error>> {
    parse_frame_with(text, &Limits::default())
}

/// Parses a frame into its messages, in order.
///
/// Returns an empty vector for frames Gun.js ignores (first character not `[`
/// or `{`, empty batches). A frame-level failure is a single `Err`
/// ([`Error::TooBig`], [`Error::Json`], [`Error::TooManyMessages`]); otherwise
/// each object of the frame yields one entry, `Err` for a message whose envelope
/// or put is invalid. Never panics, whatever the input.
pub fn parse_frame_with(text: &str, limits: &Limits) -> Vec<Result<Message, Error>> {
    parse_frame_impl(text, limits, true)
}

/// [`parse_frame_with`] without the envelope shortcut: the reference the
/// shortcut is checked against (its tests and the `frame_parse` fuzz target).
#[doc(hidden)]
pub fn parse_frame_general(text: &str, limits: &Limits) -> Vec<Result<Message, Error>> {
    parse_frame_impl(text, limits, false)
}

fn parse_frame_impl(text: &str, limits: &Limits, shortcut: bool) -> Vec<Result<Message, Error>> {
    if text.len() > limits.max_frame_bytes {
        return vec![Err(Error::TooBig {
            len: text.len(),
            max: limits.max_frame_bytes,
        })];
    }
    let t = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !(t.starts_with('[') || t.starts_with('{')) {
        return Vec::new();
    }
    if shortcut && let Some(v) = crate::frame_fast::frame(t, limits) {
        return v;
    }
    parse_general(t, limits)
}

/// The general path: serde_json over the whole frame (every frame the shortcut
/// in `frame_fast.rs` leaves, and every error).
fn parse_general(t: &str, limits: &Limits) -> Vec<Result<Message, Error>> {
    match parse_json(t, limits) {
        Ok(v) => v,
        Err(e) if has_non_finite_token(t) => {
            let clean = non_finite_to_null(t);
            parse_json(&clean, limits).unwrap_or_else(|_| vec![Err(e)])
        }
        Err(e) => vec![Err(e)],
    }
}

fn parse_json(text: &str, limits: &Limits) -> Result<Vec<Result<Message, Error>>, Error> {
    let too_many = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let r = FrameSeed {
        max_batch: limits.max_batch,
        max_depth: limits.max_value_depth,
        too_many: &too_many,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match r {
        Ok(v) => Ok(v),
        Err(_) if too_many.get() => Err(Error::TooManyMessages {
            max: limits.max_batch,
        }),
        Err(e) => Err(Error::Json(e.to_string())),
    }
}

/// Encodes messages as one frame: a single message as an object, several as an
/// array (both forms are accepted by Gun.js). No messages: `[]`.
pub fn encode_batch(messages: &[Message]) -> String {
    let mut out = String::with_capacity(128 * messages.len().max(1));
    match messages {
        [one] => one.write_json(&mut out),
        many => {
            out.push('[');
            for (i, m) in many.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                m.write_json(&mut out);
            }
            out.push(']');
        }
    }
    out
}

struct FrameSeed<'l> {
    max_batch: usize,
    max_depth: usize,
    too_many: &'l Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for FrameSeed<'_> {
    type Value = Vec<Result<Message, Error>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FrameSeed<'_> {
    type Value = Vec<Result<Message, Error>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object or an array of messages")
    }

    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        Ok(vec![
            MessageVisitor {
                max_depth: self.max_depth,
            }
            .visit_map(a)?,
        ])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(a.size_hint().unwrap_or(4).min(64));
        let mut count = 0usize;
        while let Some(elem) = a.next_element_seed(ElemSeed {
            max_depth: self.max_depth,
        })? {
            count += 1;
            if count > self.max_batch {
                self.too_many.set(true);
                return Err(de::Error::custom("too many messages in one frame"));
            }
            match elem {
                Some(m) => out.push(m),
                None => tracing::debug!(
                    index = count - 1,
                    "skipping a batch element that is not an object"
                ),
            }
        }
        Ok(out)
    }
}

/// One batch element: a message, or `None` for a non-object (skipped).
struct ElemSeed {
    max_depth: usize,
}

impl<'de> DeserializeSeed<'de> for ElemSeed {
    type Value = Option<Result<Message, Error>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElemSeed {
    type Value = Option<Result<Message, Error>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        MessageVisitor {
            max_depth: self.max_depth,
        }
        .visit_map(a)
        .map(Some)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        // Skipped as raw text: no recursion, whatever the depth.
        while a
            .next_element::<&'de serde_json::value::RawValue>()?
            .is_some()
        {}
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

const NON_FINITE: [&str; 3] = ["-Infinity", "Infinity", "NaN"];

fn has_non_finite_token(t: &str) -> bool {
    t.contains("Infinity") || t.contains("NaN")
}

/// Rewrites bare `-Infinity`, `Infinity` and `NaN` outside JSON strings to `null`.
fn non_finite_to_null(t: &str) -> String {
    let b = t.as_bytes();
    let mut out = String::with_capacity(t.len());
    let mut i = 0;
    let mut start = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_str = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        if c == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        if let Some(tok) = NON_FINITE
            .iter()
            .find(|tok| b[i..].starts_with(tok.as_bytes()))
        {
            // Token boundaries are ASCII, so these are char boundaries.
            out.push_str(&t[start..i]);
            out.push_str("null");
            i += tok.len();
            start = i;
            continue;
        }
        i += 1;
    }
    out.push_str(t.get(start..).unwrap_or(""));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ids(v: &[Result<Message, Error>]) -> Vec<Option<String>> {
        v.iter()
            .map(|r| r.as_ref().ok().and_then(|m| m.id.clone()))
            .collect()
    }

    #[test]
    fn frame_forms() {
        assert_eq!(ids(&parse_frame(r##"{"#":"a"}"##)), [Some("a".into())]);
        assert_eq!(ids(&parse_frame(r##"  [{"#":"a"}]"##)), [Some("a".into())]);
        assert_eq!(
            ids(&parse_frame(r##"[{"#":"a"},"junk",1,null,[2],{"#":"b"}]"##)),
            [Some("a".into()), Some("b".into())]
        );
        assert!(parse_frame("[]").is_empty());
        assert!(parse_frame("not json").is_empty());
        assert!(parse_frame("").is_empty());
        assert!(parse_frame(r##""[{\"#\":\"x\"}]""##).is_empty());
        assert!(matches!(
            parse_frame("{bad json").as_slice(),
            [Err(Error::Json(_))]
        ));
        assert!(matches!(
            parse_frame(r##"{"#":"a"} x"##).as_slice(),
            [Err(Error::Json(_))]
        ));
    }

    #[test]
    fn non_finite_tokens_are_tolerated() {
        let t = r##"{"#":"r","@":"q","put":{"s":{"_":{"#":"s",">":{"k":-Infinity}},"k":"a -Infinity NaN \"Infinity"}},"x":NaN,"y":[Infinity]}"##;
        let v = parse_frame(t);
        // The state became null, so the put is invalid; the envelope survived.
        assert!(matches!(&v[..], [Err(Error::InvalidPut { id: Some(i), .. })] if i == "r"));
        let t = r##"{"#":"r","x":-Infinity,"s":"NaN"}"##;
        let m = parse_frame(t).remove(0).unwrap();
        assert_eq!(m.to_json(), r##"{"#":"r","x":null,"s":"NaN"}"##);
        assert_eq!(
            non_finite_to_null(r#"["\\",NaN,"\"NaN"]"#),
            r#"["\\",null,"\"NaN"]"#
        );
    }

    #[test]
    fn limits() {
        let l = Limits {
            max_frame_bytes: 10,
            max_batch: 2,
            ..Limits::default()
        };
        assert!(matches!(
            parse_frame_with(r##"{"#":"abcdefgh"}"##, &l).as_slice(),
            [Err(Error::TooBig { len: 16, max: 10 })]
        ));
        let l = Limits {
            max_frame_bytes: 1000,
            max_batch: 2,
            ..Limits::default()
        };
        assert_eq!(parse_frame_with("[{},{}]", &l).len(), 2);
        assert!(matches!(
            parse_frame_with("[{},{},{}]", &l).as_slice(),
            [Err(Error::TooManyMessages { max: 2 })]
        ));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        for open in ["[", "{\"a\":"] {
            for (pre, post) in [
                ("", ""),
                ("{\"x\":", "}"),
                ("[", "]"),
                ("{\"put\":", "}"),
                ("{\"get\":", "}"),
            ] {
                let close = if open == "[" { "]" } else { "}" };
                let t = format!("{pre}{}{}{post}", open.repeat(5000), close.repeat(5000));
                let v = parse_frame(&t);
                assert!(v.iter().all(Result::is_err), "{pre}{open}");
            }
        }
    }

    #[test]
    fn encode() {
        let a = Message {
            id: Some("a".into()),
            ..Message::default()
        };
        let b = Message {
            id: Some("b".into()),
            ..Message::default()
        };
        assert_eq!(encode_batch(std::slice::from_ref(&a)), r##"{"#":"a"}"##);
        assert_eq!(encode_batch(&[a, b]), r##"[{"#":"a"},{"#":"b"}]"##);
        assert_eq!(encode_batch(&[]), "[]");
    }

    /// The shortcut (`frame_fast.rs`) against the general path on random
    /// frames built from the fields peers send, in any order, repeated or not,
    /// with escaped keys, non-object batch elements, bad puts, `NaN`, stray
    /// text and small batch limits: whenever the shortcut answers, it answers
    /// what the general path does.
    #[test]
    fn the_shortcut_parses_as_the_general_path_does() {
        use proptest::prelude::*;
        let put = prop_oneof![
            Just(r##"{"s":{"_":{"#":"s",">":{"k":1795643412520,"n":2}},"k":"v","n":{"#":"t"}}}"##),
            Just(r##"{"s":{"_":{">":{"k":1},"#":"s"},"k":"v"}}"##),
            Just(
                r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":1},"b":{"_":{"#":"b",">":{"y":1.5}},"y":"\u00e9"}}"##
            ),
            Just(r##"{"s":{"_":{"#":"other",">":{"k":1}},"k":"v"}}"##),
            Just(r##"{"s":{"_":{"#":"s",">":{"k":1}},"k":NaN}}"##),
            Just(r##"{"s":{"_":{"#":"s",">":{"k":1}},"k":[1]}}"##),
            Just("{}"),
            Just("null"),
            Just("5"),
            Just(r##" { "s" : { "_" : { "#" : "s" , ">" : { "k" : 1 } } , "k" : true } } "##),
        ];
        let field = prop_oneof![
            put.prop_map(|p| format!(r##""put":{p}"##)),
            "[a-z]{0,6}".prop_map(|v| format!(r##""#":"{v}""##)),
            Just(r##""#":"a\"b""##.to_owned()),
            Just(r##""#":5"##.to_owned()),
            Just(r##""#":null"##.to_owned()),
            "[a-z]{0,4}".prop_map(|v| format!(r##""@":"{v}""##)),
            Just(r##""ok":{"@":9,"/":1}"##.to_owned()),
            Just(r##""ok":true"##.to_owned()),
            Just(r###""##":-930504113"###.to_owned()),
            Just(r###""##":1.5"###.to_owned()),
            Just(r##""><":"a,b""##.to_owned()),
            Just(r##""get":{"#":"s",".":"k"}"##.to_owned()),
            Just(r##""get":{"#":5}"##.to_owned()),
            Just(r##""err":"no""##.to_owned()),
            Just(r##""dam":"?","pid":"p""##.to_owned()),
            Just(r##""FOO":[1,{"a":[[[[[[[[[[[[1]]]]]]]]]]]}]"##.to_owned()),
            Just(r##""x\u0041":1"##.to_owned()),
            Just(r##""%":NaN"##.to_owned()),
            Just(r##""n":-0.0e+1"##.to_owned()),
        ];
        let message =
            prop::collection::vec(field, 0..5).prop_map(|f| format!("{{{}}}", f.join(",")));
        let element = prop_oneof![
            6 => message.clone(),
            1 => Just("1".to_owned()),
            1 => Just(r#""junk""#.to_owned()),
            1 => Just("[2]".to_owned()),
        ];
        let frame = prop_oneof![
            message.clone(),
            prop::collection::vec(element, 0..5).prop_map(|e| format!("[{}]", e.join(","))),
            message.prop_map(|m| format!("{m} x")),
        ];
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(
                &(frame, 1usize..4, prop::bool::ANY),
                |(text, batch, spaced)| {
                    let text = if spaced {
                        text.replace(',', " ,\n ")
                    } else {
                        text
                    };
                    let limits = Limits {
                        max_batch: batch,
                        max_value_depth: 8,
                        ..Limits::default()
                    };
                    if let Some(fast) = crate::frame_fast::frame(&text, &limits) {
                        prop_assert_eq!(fast, parse_general(&text, &limits), "{}", text);
                    }
                    prop_assert_eq!(
                        parse_frame_with(&text, &limits),
                        parse_general(&text, &limits),
                        "{}",
                        text
                    );
                    Ok(())
                },
            )
            .unwrap();
        // The shortcut is taken for what peers usually send.
        for text in [
            r##"{"#":"m","put":{"s":{"_":{"#":"s",">":{"k":1}},"k":"v"}}}"##,
            r##"{"put":{"s":{"_":{"#":"s",">":{"k":1}},"k":"v"}},"ok":{"@":9,"/":1},"#":"m"}"##,
            r##"[{"#":"a","@":"b","ok":true},{"#":"c","get":{"#":"s"}}]"##,
        ] {
            assert!(
                crate::frame_fast::frame(text, &Limits::default()).is_some(),
                "{text}"
            );
        }
    }
}
