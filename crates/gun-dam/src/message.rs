//! The message envelope (§2 of the protocol notes): what one JSON object of a
//! frame means, how it is read and how it is written back.
//!
//! Reading is lenient where Gun.js is lenient and strict where a wrong type would
//! change routing:
//!
//! * `#` and `@` must be strings (or `null`, meaning absent); anything else makes
//!   the message [`Error::InvalidMessage`]. An empty `@` counts as absent, as in
//!   Gun.js (it tests truthiness).
//! * `get` must be an object with a soul (`#`: a non-empty string or a lexical
//!   query), see [`Get`].
//! * `put` is validated by gun-graph straight from the text; a failure is
//!   [`Error::InvalidPut`] for that message only. `"put":null` counts as absent.
//! * `##` that is not a 32-bit integer, `><`/`pid` that are not strings, and an
//!   empty `dam` are kept in [`Message::extra`] untouched (Gun.js ignores them
//!   too), so they still survive relaying.
//! * A non-string `err` is kept as its JSON text.
//! * Every unknown field (`FOO`, `DBG`, `nts`, …) lands in [`Message::extra`] in
//!   the order received and is written back when the message is relayed.

use std::borrow::Cow;
use std::fmt;

use gun_graph::{Graph, Lex, Soul, json};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::Error;

/// The soul part of a get: one soul, or a lexical query over souls (radisk only).
#[derive(Debug, Clone, PartialEq)]
pub enum SoulQuery {
    /// `{"#": "alice"}`.
    Exact(Soul),
    /// `{"#": {"*": "fruit"}}`: every soul matching.
    Lex(Lex),
}

/// A read request: the `get` field of a message (§4.1).
///
/// [`Get::raw`] is the object as received (or as built by the constructors) and is
/// what [`Message::write_json`] emits, so forwarding re-emits a get exactly,
/// unknown members included. The typed fields are derived from it; change them
/// only through the constructors or [`Get::from_json`].
#[derive(Debug, Clone, PartialEq)]
pub struct Get {
    /// `#`: which soul(s).
    pub soul: SoulQuery,
    /// `.`: which key(s); `None` for the whole node. A plain string key is
    /// [`Lex::exact`].
    pub key: Option<Lex>,
    /// `%` inside the get: the byte budget for lexical reads (radisk), if a number.
    pub budget: Option<f64>,
    /// The whole `get` object as it is sent on the wire.
    pub raw: Value,
}

impl Get {
    /// A get for a whole node: `{"#": soul}`.
    pub fn node(soul: Soul) -> Get {
        let mut m = Map::new();
        m.insert("#".into(), Value::String(soul.as_str().to_owned()));
        Get {
            soul: SoulQuery::Exact(soul),
            key: None,
            budget: None,
            raw: Value::Object(m),
        }
    }

    /// A get for one key of a node: `{"#": soul, ".": key}`.
    pub fn key(soul: Soul, key: impl Into<String>) -> Get {
        let key = key.into();
        let mut m = Map::new();
        m.insert("#".into(), Value::String(soul.as_str().to_owned()));
        m.insert(".".into(), Value::String(key.clone()));
        Get {
            soul: SoulQuery::Exact(soul),
            key: Some(Lex::exact(key)),
            budget: None,
            raw: Value::Object(m),
        }
    }

    /// Any get: souls, keys and a byte budget (`%`).
    pub fn query(soul: SoulQuery, key: Option<Lex>, budget: Option<f64>) -> Get {
        let mut m = Map::new();
        let soul_json = match &soul {
            SoulQuery::Exact(s) => Value::String(s.as_str().to_owned()),
            SoulQuery::Lex(l) => l.to_json(),
        };
        m.insert("#".into(), soul_json);
        if let Some(k) = &key {
            m.insert(".".into(), k.to_json());
        }
        if let Some(b) = budget.and_then(serde_json::Number::from_f64) {
            m.insert("%".into(), Value::Number(b));
        }
        Get {
            soul,
            key,
            budget,
            raw: Value::Object(m),
        }
    }

    /// Reads a `get` object as received.
    pub fn from_json(raw: Value) -> Result<Get, &'static str> {
        let Value::Object(m) = &raw else {
            return Err("`get` must be an object");
        };
        let soul = match m.get("#") {
            Some(Value::String(s)) => {
                SoulQuery::Exact(Soul::new(s.as_str()).map_err(|_| "`get` has an empty soul")?)
            }
            Some(v @ Value::Object(_)) => {
                SoulQuery::Lex(Lex::from_json(v).map_err(|_| "`get` has an invalid soul query")?)
            }
            _ => return Err("`get` has no soul"),
        };
        let key = match m.get(".") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Lex::from_json(v).map_err(|_| "`get` has an invalid key query")?),
        };
        let budget = m.get("%").and_then(Value::as_f64);
        Ok(Get {
            soul,
            key,
            budget,
            raw,
        })
    }

    /// The soul, when the get names exactly one.
    pub fn exact_soul(&self) -> Option<&Soul> {
        match &self.soul {
            SoulQuery::Exact(s) => Some(s),
            SoulQuery::Lex(_) => None,
        }
    }

    /// The key, when the get names exactly one (a plain `.` string or `{"=": k}`).
    pub fn exact_key(&self) -> Option<&str> {
        self.key
            .as_ref()
            .filter(|l| l.is_exact())
            .and_then(|l| l.exact.as_deref())
    }
}

/// One Gun wire message: every envelope field of §2, plus the unknown ones.
///
/// Build outgoing messages with the constructors ([`Message::get`],
/// [`Message::put`], [`Message::reply`], [`Message::not_found`],
/// [`Message::ack_ok`], [`Message::ack_err`]) and hand them to the
/// [`Mesh`](crate::Mesh), which assigns the `#` when it is `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// `#`: the message id.
    pub id: Option<String>,
    /// `@`: the id of the request or write this answers.
    pub reply_to: Option<String>,
    /// `get`: a read request.
    pub get: Option<Get>,
    /// `put`: a graph (a write without `@`, a get reply or an ack-less push with).
    pub put: Option<Graph>,
    /// `ok`: the ack-wanted hint on a put, or the ack payload (`true`, `{"":1}`,
    /// WebRTC signalling `{"rtc":…}`: relayed unchanged).
    pub ok: Option<Value>,
    /// `err`: why a write was refused.
    pub err: Option<String>,
    /// `##`: the hash of the `put` (§7.5).
    pub hash: Option<i32>,
    /// `><`: comma-separated ids of the peers the sender is connected to.
    pub seen: Option<String>,
    /// `%`: byte budget on a request, or "more is coming" on a reply.
    pub percent: Option<Value>,
    /// `dam`: a mesh-control message (`?`, `hi`, `!`, `mob`, `opt`).
    pub dam: Option<String>,
    /// `pid`: the sender's peer id, on `dam:"?"`.
    pub pid: Option<String>,
    /// Every other field, in the order received, written back when relayed.
    /// It also holds envelope fields whose value Gun.js would ignore (a `##`
    /// that is not an int32, a non-string `><` or `pid`, an empty `dam`); an
    /// entry whose typed field is also set is not written.
    pub extra: Map<String, Value>,
}

impl Message {
    /// A read request.
    pub fn get(get: Get) -> Message {
        Message {
            get: Some(get),
            ..Message::default()
        }
    }

    /// A write.
    pub fn put(graph: Graph) -> Message {
        Message {
            put: Some(graph),
            ..Message::default()
        }
    }

    /// A get reply carrying data: `{"@": to_id, "put": graph}`.
    pub fn reply(to_id: impl Into<String>, put: Graph) -> Message {
        Message {
            reply_to: Some(to_id.into()),
            put: Some(put),
            ..Message::default()
        }
    }

    /// A get reply saying "I have nothing": `{"@": to_id}` (§4.2).
    pub fn not_found(to_id: impl Into<String>) -> Message {
        Message {
            reply_to: Some(to_id.into()),
            ..Message::default()
        }
    }

    /// A successful ack of a write: `{"@": to_id, "ok": true}`, as Gun relays send.
    pub fn ack_ok(to_id: impl Into<String>) -> Message {
        Message {
            reply_to: Some(to_id.into()),
            ok: Some(Value::Bool(true)),
            ..Message::default()
        }
    }

    /// A refused write: `{"@": to_id, "err": text}`.
    pub fn ack_err(to_id: impl Into<String>, text: impl Into<String>) -> Message {
        Message {
            reply_to: Some(to_id.into()),
            err: Some(text.into()),
            ..Message::default()
        }
    }

    /// Whether this is a mesh-control (`dam`) message.
    pub fn is_dam(&self) -> bool {
        self.dam.is_some()
    }

    /// Appends the JSON text of the message (JavaScript-exact numbers; `put` in
    /// gun-graph's wire form; `get` re-emitted from [`Get::raw`]).
    ///
    /// Field order: `#`, `##`, `%`, `><`, `@`, `dam`, `err`, `get`, `ok`, `pid`,
    /// then the unknown fields as received, then `put`. (Gun.js does not care
    /// about order; this one is stable and puts the large field last.)
    pub fn write_json(&self, out: &mut String) {
        let mut w = Fields { out, first: true };
        w.out.push('{');
        if let Some(v) = &self.id {
            json::write_str(w.key("#"), v);
        }
        if let Some(v) = self.hash {
            json::write_number(w.key("##"), f64::from(v));
        }
        if let Some(v) = &self.percent {
            json::write_json(w.key("%"), v);
        }
        if let Some(v) = &self.seen {
            json::write_str(w.key("><"), v);
        }
        if let Some(v) = &self.reply_to {
            json::write_str(w.key("@"), v);
        }
        if let Some(v) = &self.dam {
            json::write_str(w.key("dam"), v);
        }
        if let Some(v) = &self.err {
            json::write_str(w.key("err"), v);
        }
        if let Some(v) = &self.get {
            json::write_json(w.key("get"), &v.raw);
        }
        if let Some(v) = &self.ok {
            json::write_json(w.key("ok"), v);
        }
        if let Some(v) = &self.pid {
            json::write_str(w.key("pid"), v);
        }
        for (k, v) in &self.extra {
            if self.has_typed(k) {
                continue;
            }
            json::write_json(w.key(k), v);
        }
        if let Some(v) = &self.put {
            v.write_wire(w.key("put"));
        }
        w.out.push('}');
    }

    /// Whether the typed field for envelope key `k` is set (an unknown field of
    /// the same name would then be a duplicate key and is not written).
    fn has_typed(&self, k: &str) -> bool {
        match k {
            "#" => self.id.is_some(),
            "##" => self.hash.is_some(),
            "%" => self.percent.is_some(),
            "><" => self.seen.is_some(),
            "@" => self.reply_to.is_some(),
            "dam" => self.dam.is_some(),
            "err" => self.err.is_some(),
            "get" => self.get.is_some(),
            "ok" => self.ok.is_some(),
            "pid" => self.pid.is_some(),
            "put" => self.put.is_some(),
            _ => false,
        }
    }

    /// The JSON text of the message.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(128);
        self.write_json(&mut s);
        s
    }
}

struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json::write_str(self.out, k);
        self.out.push(':');
        self.out
    }
}

/// An object key that borrows from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The nesting depth of a JSON text (0 for scalars), found without recursion.
fn depth(raw: &str) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in raw.as_bytes() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
            }
            b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Turns a field's raw text into a value, refusing deep nesting before any
/// recursive parsing happens (the raw capture itself is iterative).
fn value(raw: &RawValue, max_depth: usize) -> Result<Value, &'static str> {
    let text = raw.get();
    // The usual field (`#`, `@`): a string without escapes, taken as it is.
    // The raw text is valid JSON already, so a quote-delimited run without a
    // backslash or another quote is exactly the string's text.
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
        && !inner.bytes().any(|b| b == b'\\' || b == b'"')
    {
        return Ok(Value::String(inner.to_owned()));
    }
    if depth(text) > max_depth {
        return Err("a field is nested too deeply");
    }
    serde_json::from_str(text).map_err(|_| "a field is not valid JSON")
}

/// Reads one message object. Syntax errors fail the visitor (and the frame);
/// envelope and put errors come back as `Ok(Err(..))`, for this message only.
///
/// Every field is first captured as raw text (serde_json skips values
/// iteratively, so any nesting depth is safe for the stack); only fields within
/// `max_depth` are then parsed into values.
pub(crate) struct MessageVisitor {
    pub(crate) max_depth: usize,
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Result<Message, Error>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, Field<'de>)> =
            Vec::with_capacity(a.size_hint().unwrap_or(4));
        while let Some(Key(k)) = a.next_key::<Key<'de>>()? {
            fields.push((k, Field::Raw(a.next_value::<&'de RawValue>()?)));
        }
        Ok(build(fields, self.max_depth))
    }
}

/// A field of a message being read: its raw text, or (for `put`) the graph a
/// scanner already parsed from that text.
pub(crate) enum Field<'a> {
    Raw(&'a RawValue),
    Put(Graph),
}

/// Makes the message of its fields, in the order received (a repeated field:
/// the last one counts).
pub(crate) fn build(
    fields: Vec<(Cow<'_, str>, Field<'_>)>,
    max_depth: usize,
) -> Result<Message, Error> {
    let mut m = Message::default();
    let mut bad: Option<&'static str> = None;
    let mut put: Option<Field<'_>> = None;
    let mut get: Option<Value> = None;
    for (k, field) in fields {
        if &*k == "put" {
            put = Some(field);
            continue;
        }
        let raw = match field {
            Field::Raw(raw) => raw,
            // Only `put` is ever parsed ahead.
            Field::Put(_) => continue,
        };
        let v = match value(raw, max_depth) {
            Ok(v) => v,
            Err(reason) => {
                bad = bad.or(Some(reason));
                continue;
            }
        };
        match &*k {
            "#" => match v {
                Value::String(s) => m.id = Some(s),
                Value::Null => m.id = None,
                _ => bad = bad.or(Some("`#` must be a string")),
            },
            "@" => match v {
                Value::String(s) if !s.is_empty() => m.reply_to = Some(s),
                Value::String(_) | Value::Null => m.reply_to = None,
                _ => bad = bad.or(Some("`@` must be a string")),
            },
            "get" => get = Some(v),
            "ok" => m.ok = Some(v),
            "%" => m.percent = Some(v),
            "err" => {
                m.err = match v {
                    Value::String(s) => Some(s),
                    Value::Null => None,
                    v => Some(json::stringify(&v)),
                }
            }
            "##" => match v.as_i64().and_then(|h| i32::try_from(h).ok()) {
                Some(h) => m.hash = Some(h),
                None => {
                    m.extra.insert(k.into_owned(), v);
                }
            },
            "><" | "pid" | "dam" => match v {
                Value::String(s) if !s.is_empty() || &*k != "dam" => match &*k {
                    "><" => m.seen = Some(s),
                    "pid" => m.pid = Some(s),
                    _ => m.dam = Some(s),
                },
                v => {
                    m.extra.insert(k.into_owned(), v);
                }
            },
            _ => {
                m.extra.insert(k.into_owned(), v);
            }
        }
    }
    if let Some(reason) = bad {
        return Err(Error::InvalidMessage { id: m.id, reason });
    }
    match get {
        None | Some(Value::Null) => {}
        Some(g) => match Get::from_json(g) {
            Ok(g) => m.get = Some(g),
            Err(reason) => return Err(Error::InvalidMessage { id: m.id, reason }),
        },
    }
    match put {
        Some(Field::Put(g)) => m.put = Some(g),
        Some(Field::Raw(raw)) if raw.get() != "null" => match Graph::from_wire(raw.get()) {
            Ok(g) => m.put = Some(g),
            Err(error) => return Err(Error::InvalidPut { id: m.id, error }),
        },
        Some(Field::Raw(_)) | None => {}
    }
    Ok(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use gun_graph::State;

    fn one(text: &str) -> Result<Message, Error> {
        let mut v = crate::parse_frame(text);
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0)
    }

    #[test]
    fn string_fields_with_and_without_escapes() {
        let m = one(r##"{"#":"abc","@":"x y/z"}"##).unwrap();
        assert_eq!(
            (m.id.as_deref(), m.reply_to.as_deref()),
            (Some("abc"), Some("x y/z"))
        );
        let m = one(r##"{"#":"a\"b\u0041\\","@":"\n"}"##).unwrap();
        assert_eq!(m.id.as_deref(), Some("a\"bA\\"));
        assert_eq!(m.reply_to.as_deref(), Some("\n"));
        let m = one(r##"{"#":"","dam":"hi"}"##).unwrap();
        assert_eq!((m.id.as_deref(), m.dam.as_deref()), (Some(""), Some("hi")));
    }

    #[test]
    fn every_envelope_field_round_trips() {
        let text = r###"{"#":"m1","##":-930504113,"%":"o7srz7Ix2","><":"a,b","@":"q","dam":"x","err":"no","get":{"#":"s",".":"k","%":100000},"ok":{"@":2,"/":3},"pid":"p","FOO":1,"DBG":{"a":[1.5,null]},"put":{"s":{"_":{"#":"s",">":{"k":1795643451809.001}},"k":"v"}}}"###;
        let m = one(text).unwrap();
        assert_eq!(m.id.as_deref(), Some("m1"));
        assert_eq!(m.hash, Some(-930504113));
        assert_eq!(m.seen.as_deref(), Some("a,b"));
        assert_eq!(m.reply_to.as_deref(), Some("q"));
        assert_eq!(m.get.as_ref().and_then(Get::exact_key), Some("k"));
        assert_eq!(m.get.as_ref().and_then(|g| g.budget), Some(100000.0));
        assert_eq!(m.extra.len(), 2);
        let st = m
            .put
            .as_ref()
            .and_then(|g| g.get("s"))
            .and_then(|n| n.state("k"));
        assert_eq!(st.map(State::as_f64), Some(1795643451809.001));
        assert_eq!(m.to_json(), text);
    }

    #[test]
    fn lenient_and_strict_fields() {
        // `##` not an int32, `><` not a string: kept as unknown fields.
        let m = one(r###"{"#":"a","##":1.5,"><":5}"###).unwrap();
        assert_eq!(m.hash, None);
        assert_eq!(m.seen, None);
        assert_eq!(m.to_json(), r###"{"#":"a","##":1.5,"><":5}"###);
        // Non-string `#`/`@` invalidate the message.
        assert!(matches!(
            one(r##"{"#":5}"##),
            Err(Error::InvalidMessage { .. })
        ));
        assert!(matches!(
            one(r##"{"#":"x","@":{}}"##),
            Err(Error::InvalidMessage { id: Some(_), .. })
        ));
        // Empty `@` is no `@`.
        assert_eq!(one(r##"{"#":"x","@":""}"##).unwrap().reply_to, None);
        // A get needs a soul.
        assert!(matches!(
            one(r##"{"get":{".":"k"}}"##),
            Err(Error::InvalidMessage { .. })
        ));
        assert!(matches!(
            one(r##"{"get":"s"}"##),
            Err(Error::InvalidMessage { .. })
        ));
        // Non-string err kept as text.
        assert_eq!(
            one(r#"{"err":{"a":1}}"#).unwrap().err.as_deref(),
            Some(r#"{"a":1}"#)
        );
        // put:null is no put.
        assert_eq!(one(r#"{"put":null}"#).unwrap().put, None);
    }

    #[test]
    fn get_shapes() {
        let g = |t: &str| one(t).unwrap().get.unwrap();
        let soul = g(r##"{"get":{"#":{"*":"fruit"},"%":100000}}"##);
        assert_eq!(soul.soul, SoulQuery::Lex(Lex::prefix("fruit")));
        let key = g(r##"{"get":{"#":"s",".":{">":"b","<":"d"}}}"##);
        assert_eq!(key.exact_key(), None);
        assert_eq!(key.key, Some(Lex::range(Some("b"), Some("d"))));
        assert_eq!(
            g(r##"{"get":{"#":"s",".":{"=":"k"}}}"##).exact_key(),
            Some("k")
        );
        let built = Get::key(Soul::new("s").unwrap(), "k");
        assert_eq!(
            Message::get(built).to_json(),
            r##"{"get":{"#":"s",".":"k"}}"##
        );
        let q = Get::query(SoulQuery::Lex(Lex::prefix("f")), None, Some(100000.0));
        assert_eq!(json::stringify(&q.raw), r##"{"#":{"*":"f"},"%":100000}"##);
        assert_eq!(Get::from_json(q.raw.clone()), Ok(q));
    }

    #[test]
    fn constructors() {
        assert_eq!(Message::not_found("q").to_json(), r#"{"@":"q"}"#);
        assert_eq!(Message::ack_ok("q").to_json(), r#"{"@":"q","ok":true}"#);
        assert_eq!(
            Message::ack_err("q", "bad").to_json(),
            r#"{"@":"q","err":"bad"}"#
        );
        let g = Graph::from_wire(r##"{"s":{"_":{"#":"s",">":{"k":1}},"k":1}}"##).unwrap();
        assert_eq!(
            Message::reply("q", g.clone()).to_json(),
            r##"{"@":"q","put":{"s":{"_":{"#":"s",">":{"k":1}},"k":1}}}"##
        );
        assert_eq!(
            Message::put(g).to_json(),
            r##"{"put":{"s":{"_":{"#":"s",">":{"k":1}},"k":1}}}"##
        );
    }

    #[test]
    fn invalid_put_keeps_id() {
        let e = one(r##"{"#":"e1","put":{"s":{"_":{"#":"s",">":{}},"a":[1]}}}"##);
        assert!(matches!(e, Err(Error::InvalidPut { id: Some(ref i), .. }) if i == "e1"));
    }
}
