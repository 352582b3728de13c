//! A shortcut through the frames peers send most: one message object, or an
//! array of them, whose keys are plain strings. The envelope is scanned here,
//! and a `put` in the usual node shape is parsed straight out of the frame by
//! [`Graph::from_wire_prefix`], so the put's bytes are read once instead of
//! twice (serde_json would first skip them to capture the field's raw text,
//! then the graph parser would read them again). Every other field is captured
//! as raw text by serde_json and made into the message by the same code as the
//! general path ([`build`]).
//!
//! It takes only what it is sure about and answers `None` for anything else
//! (an escaped key, a non-object batch element, a syntax error, too many
//! messages, `NaN`), which the general path in `frame.rs` then parses, errors
//! included: the two give the same messages for every frame (tested there).

use std::borrow::Cow;

use gun_graph::Graph;
use serde_json::value::RawValue;

use crate::frame::Limits;
use crate::message::{Field, build};
use crate::{Error, Message};

struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// The messages of `text` (a frame starting with `{` or `[`), or `None`.
pub(crate) fn frame(text: &str, limits: &Limits) -> Option<Vec<Result<Message, Error>>> {
    let mut p = Scan {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let out = match p.peek()? {
        b'{' => vec![p.message(limits.max_value_depth)?],
        b'[' => {
            p.i += 1;
            let mut out = Vec::new();
            if p.peek()? == b']' {
                p.i += 1;
            } else {
                loop {
                    if out.len() == limits.max_batch {
                        return None;
                    }
                    out.push(p.message(limits.max_value_depth)?);
                    if !p.next_or_end(b']')? {
                        break;
                    }
                }
            }
            out
        }
        _ => return None,
    };
    p.ws();
    (p.i == p.b.len()).then_some(out)
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace (not taken).
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Takes `,` (then `true`: another item follows) or `end` (then `false`).
    fn next_or_end(&mut self, end: u8) -> Option<bool> {
        let c = self.peek()?;
        if c != b',' && c != end {
            return None;
        }
        self.i += 1;
        Some(c == b',')
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        self.s.get(start..start + len)
    }

    /// One JSON value's text, as serde_json captures it (and checks it).
    fn raw(&mut self) -> Option<&'a RawValue> {
        self.ws();
        let rest = self.s.get(self.i..)?;
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<&'a RawValue>();
        let raw = values.next()?.ok()?;
        self.i += values.byte_offset();
        Some(raw)
    }

    fn message(&mut self, max_depth: usize) -> Option<Result<Message, Error>> {
        self.eat(b'{')?;
        let mut fields: Vec<(Cow<'a, str>, Field<'a>)> = Vec::with_capacity(4);
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                let key = self.plain_string()?;
                self.eat(b':')?;
                self.ws();
                let field = match key {
                    "put" => match Graph::from_wire_prefix(self.s.get(self.i..)?) {
                        Some((g, n)) => {
                            self.i += n;
                            Field::Put(g)
                        }
                        None => Field::Raw(self.raw()?),
                    },
                    _ => Field::Raw(self.raw()?),
                };
                fields.push((Cow::Borrowed(key), field));
                if !self.next_or_end(b'}')? {
                    break;
                }
            }
        }
        Some(build(fields, max_depth))
    }
}
