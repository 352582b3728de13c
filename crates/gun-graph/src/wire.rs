//! The wire form of graphs and nodes: parse with validation, and emit.
//!
//! Parsing goes straight from JSON text to [`Graph`] in one pass (no intermediate
//! `serde_json::Value`), validating as Gun.js does on receipt (§5.2 of the protocol
//! notes):
//!
//! * each node is an object with a `_` meta object, `_["#"]` equal to the soul it
//!   is filed under, and a `_[">"]` state object;
//! * every key other than `_` has a state, which must be a finite number (Gun.js
//!   accepts strings by accident; we refuse them);
//! * every value is `null`, a boolean, a finite number, a string, or a link
//!   `{"#": non-empty string}`.
//!
//! A put is all or nothing here: the first invalid node or key rejects the whole
//! graph with an [`Error`] naming the soul, the key and the reason. (Gun.js applies
//! the keys it processed before the first bad one; a peer that only ever sends
//! valid data, as Gun.js peers do, sees no difference.)

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use gun_ham::State;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::node::{Entry, Node};
use crate::value::{InvalidValue, Soul, Value};
use crate::{Error, Graph};

/// Where a typed validation error is kept while serde unwinds.
struct Ctx {
    err: RefCell<Option<Error>>,
}

impl Ctx {
    fn fail<E: de::Error>(&self, e: Error) -> E {
        let msg = e.to_string();
        *self.err.borrow_mut() = Some(e);
        E::custom(msg)
    }
}

/// A string that borrows from the input when it has no escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, classified only as far as validation needs.
enum Loose<'de> {
    Num(f64),
    Str(Cow<'de, str>),
    Other,
}

impl<'de> de::Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose<'de>, E> {
                Ok(Loose::Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose<'de>, E> {
                Ok(Loose::Num(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose<'de>, E> {
                Ok(Loose::Num(v as f64))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Loose<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Loose<'de>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A value, or why it is not one.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Result<Value, InvalidValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Result<Value, InvalidValue>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Gun value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ok(Value::Null))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Ok(Value::Bool(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Value::number(v).map_err(|_| InvalidValue::NonFiniteNumber))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Ok(Value::Number(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Ok(Value::Number(v as f64 + 0.0)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Ok(Value::String(v.into())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Err(InvalidValue::Array))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut link: Option<Result<Arc<str>, InvalidValue>> = None;
                let mut count = 0usize;
                while let Some(k) = a.next_key::<Str<'de>>()? {
                    count += 1;
                    if k.0 == "#" {
                        link = Some(match a.next_value::<Loose<'de>>()? {
                            Loose::Str(s) if !s.is_empty() => Ok(Arc::from(&*s)),
                            Loose::Str(_) => Err(InvalidValue::EmptyLink),
                            _ => Err(InvalidValue::Object),
                        });
                    } else {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(match link {
                    Some(Ok(s)) if count == 1 => Ok(Value::Link(Soul::from_arc(s))),
                    Some(Err(e)) if count == 1 => Err(e),
                    _ => Err(InvalidValue::Object),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// The `_` meta object of a node.
#[derive(Default)]
struct Meta<'de> {
    soul: Option<Loose<'de>>,
    states: Option<Vec<(Cow<'de, str>, Option<f64>)>>,
    is_object: bool,
}

struct MetaSeed;

impl<'de> DeserializeSeed<'de> for MetaSeed {
    type Value = Meta<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Meta<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("node meta data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Meta<'de>, A::Error> {
                let mut m = Meta {
                    is_object: true,
                    ..Meta::default()
                };
                while let Some(k) = a.next_key::<Str<'de>>()? {
                    match &*k.0 {
                        "#" => m.soul = Some(a.next_value::<Loose<'de>>()?),
                        ">" => m.states = a.next_value_seed(StatesSeed)?,
                        _ => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(m)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Meta<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Meta::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Meta<'de>, E> {
                Ok(Meta::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Meta<'de>, E> {
                Ok(Meta::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Meta<'de>, E> {
                Ok(Meta::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Meta<'de>, E> {
                Ok(Meta::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Meta<'de>, E> {
                Ok(Meta::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Meta<'de>, E> {
                Ok(Meta::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// `_[">"]`: `Some(states)` when it is an object; each state `None` when not a number.
struct StatesSeed;

impl<'de> DeserializeSeed<'de> for StatesSeed {
    type Value = Option<Vec<(Cow<'de, str>, Option<f64>)>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Vec<(Cow<'de, str>, Option<f64>)>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("node states")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(8));
                while let Some(k) = a.next_key::<Str<'de>>()? {
                    let s = match a.next_value::<Loose<'de>>()? {
                        Loose::Num(n) if n.is_finite() => Some(n),
                        _ => None,
                    };
                    v.push((k.0, s));
                }
                Ok(Some(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V)
    }
}

/// One node, filed under `soul`.
struct NodeSeed<'c> {
    ctx: &'c Ctx,
    soul: &'c str,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        struct V<'c> {
            ctx: &'c Ctx,
            soul: &'c str,
        }
        impl V<'_> {
            fn no_node<E: de::Error>(&self) -> Result<Node, E> {
                Err(self.ctx.fail(Error::NoNode {
                    soul: self.soul.to_owned(),
                }))
            }
        }
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let ctx = self.ctx;
                let soul = self.soul;
                let mut meta: Option<Meta<'de>> = None;
                let mut values: Vec<(Cow<'de, str>, Result<Value, InvalidValue>)> =
                    Vec::with_capacity(a.size_hint().unwrap_or(8));
                while let Some(k) = a.next_key::<Str<'de>>()? {
                    if k.0 == "_" {
                        meta = Some(a.next_value_seed(MetaSeed)?);
                    } else {
                        let v = a.next_value_seed(ValueSeed)?;
                        values.push((k.0, v));
                    }
                }
                // Checks in Gun.js's order: meta, soul, states, then each key.
                let Some(meta) = meta.filter(|m| m.is_object) else {
                    return Err(ctx.fail(Error::NoMeta { soul: soul.into() }));
                };
                match &meta.soul {
                    Some(Loose::Str(s)) if s == soul => {}
                    other => {
                        return Err(ctx.fail(Error::SoulMismatch {
                            soul: soul.into(),
                            found: match other {
                                Some(Loose::Str(s)) => Some(s.to_string()),
                                _ => None,
                            },
                        }));
                    }
                }
                let Some(mut states) = meta.states else {
                    return Err(ctx.fail(Error::NoStates { soul: soul.into() }));
                };
                // Gun.js writes `>` with the keys in the node's own order, so the
                // common case pairs states and values by position. Otherwise:
                // last duplicate wins, as in JSON.parse: a stable sort keeps the
                // order of duplicates, and the search below takes the last one.
                let in_order = states.len() == values.len()
                    && states.iter().zip(&values).all(|(s, v)| s.0 == v.0);
                if !in_order {
                    states.sort_by(|x, y| x.0.cmp(&y.0));
                }
                let node_soul = Soul::from_arc(Arc::from(soul));
                let mut entries: Vec<(Arc<str>, Entry)> = Vec::with_capacity(values.len());
                for (i, (key, value)) in values.into_iter().enumerate() {
                    // In order, a duplicated key pairs its last value with its
                    // last state once the map below keeps the last entry.
                    let found = if in_order {
                        Ok(i)
                    } else {
                        states.binary_search_by(|p| p.0.as_ref().cmp(&*key))
                    };
                    let state = match found {
                        Ok(mut i) => {
                            if !in_order {
                                while i + 1 < states.len() && states[i + 1].0 == key {
                                    i += 1;
                                }
                            }
                            states[i].1
                        }
                        Err(_) => {
                            return Err(ctx.fail(Error::NoState {
                                soul: soul.into(),
                                key: key.into_owned(),
                            }));
                        }
                    };
                    let Some(state) = state.and_then(|s| State::new(s).ok()) else {
                        return Err(ctx.fail(Error::InvalidState {
                            soul: soul.into(),
                            key: key.into_owned(),
                        }));
                    };
                    let value = match value {
                        Ok(v) => v,
                        Err(reason) => {
                            return Err(ctx.fail(Error::InvalidValue {
                                soul: soul.into(),
                                key: key.into_owned(),
                                reason,
                            }));
                        }
                    };
                    entries.push((Arc::from(&*key), Entry { state, value }));
                }
                // Sorted (if they were not), the last of equal keys kept.
                Ok(Node::from_entries(node_soul, entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                self.no_node()
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                self.no_node()
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                self.no_node()
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                self.no_node()
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                self.no_node()
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                self.no_node()
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                self.no_node()
            }
        }
        d.deserialize_any(V {
            ctx: self.ctx,
            soul: self.soul,
        })
    }
}

/// A whole graph `{soul: node}`.
pub(crate) struct GraphSeed<'c> {
    ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for GraphSeed<'_> {
    type Value = Graph;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Graph, D::Error> {
        struct V<'c> {
            ctx: &'c Ctx,
        }
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Graph;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a graph object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Graph, A::Error> {
                let mut g = Graph::new();
                while let Some(k) = a.next_key::<Str<'de>>()? {
                    if k.0.is_empty() {
                        return Err(self.ctx.fail(Error::EmptySoul));
                    }
                    let node = a.next_value_seed(NodeSeed {
                        ctx: self.ctx,
                        soul: &k.0,
                    })?;
                    g.insert_node(node);
                }
                Ok(g)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Graph, A::Error> {
                Err(self.ctx.fail(Error::NotAGraph))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Graph, E> {
                Err(self.ctx.fail(Error::NotAGraph))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Graph, E> {
                Err(self.ctx.fail(Error::NotAGraph))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Graph, E> {
                Err(self.ctx.fail(Error::NotAGraph))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Graph, E> {
                Err(self.ctx.fail(Error::NotAGraph))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Graph, E> {
                Err(self.ctx.fail(Error::NotAGraph))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Graph, E> {
                Err(self.ctx.fail(Error::NotAGraph))
            }
        }
        d.deserialize_any(V { ctx: self.ctx })
    }
}

fn finish<T>(r: Result<T, serde_json::Error>, ctx: Ctx) -> Result<T, Error> {
    r.map_err(|e| {
        ctx.err
            .into_inner()
            .unwrap_or_else(|| Error::Json(e.to_string()))
    })
}

/// [`Graph::from_wire`] without the shortcut.
pub(crate) fn general_from_wire(text: &str) -> Result<Graph, Error> {
    // From a `str`, serde_json need not check each string for UTF-8 again.
    general(serde_json::Deserializer::from_str(text))
}

/// The general parser over any of serde_json's readers.
fn general<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<Graph, Error> {
    let ctx = Ctx {
        err: RefCell::new(None),
    };
    let r = GraphSeed { ctx: &ctx }
        .deserialize(&mut de)
        .and_then(|g| de.end().map(|()| g));
    finish(r, ctx)
}

impl Graph {
    /// Parses and validates the wire form of a graph, `{soul: node, …}` (the value
    /// of a put's `put` field), from JSON bytes.
    pub fn from_wire_bytes(bytes: &[u8]) -> Result<Graph, Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Graph::from_wire(text),
            // serde_json names where the bad UTF-8 is.
            Err(_) => general(serde_json::Deserializer::from_slice(bytes)),
        }
    }

    /// Parses and validates the wire form of a graph from JSON text.
    ///
    /// The usual shape (what Gun.js sends) takes a specialised shortcut
    /// (`wire_fast.rs`); anything else, and every error, goes through the
    /// general parser, so both give the same graph or the same error.
    pub fn from_wire(text: &str) -> Result<Graph, Error> {
        if let Some(g) = crate::wire_fast::parse(text) {
            return Ok(g);
        }
        general_from_wire(text)
    }

    /// A shortcut for a parser that scans a larger text (a message envelope)
    /// around a graph: if `text` starts (after whitespace) with a graph of the
    /// usual shape Gun.js peers send, returns it, exactly as [`Graph::from_wire`]
    /// would parse that part of the text, with the number of bytes it took.
    /// `None` says only that the shortcut does not apply: the caller then finds
    /// the value's end itself and parses it with [`Graph::from_wire`], which
    /// gives the graph or the error.
    ///
    /// ```
    /// use gun_graph::Graph;
    /// let text = r##"{"a":{"_":{"#":"a",">":{"k":1}},"k":"v"}},"#":"m1"}"##;
    /// let (g, n) = Graph::from_wire_prefix(text).unwrap();
    /// assert_eq!(&text[n..], r##","#":"m1"}"##);
    /// assert_eq!(g, Graph::from_wire(&text[..n]).unwrap());
    /// assert!(Graph::from_wire_prefix("null").is_none());
    /// ```
    pub fn from_wire_prefix(text: &str) -> Option<(Graph, usize)> {
        crate::wire_fast::parse_prefix(text)
    }

    /// Reads a graph out of any serde deserializer (for example a field of a
    /// larger message being parsed), validating as [`Graph::from_wire`] does.
    pub fn deserialize_wire<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Graph, GraphDeError<D::Error>> {
        let ctx = Ctx {
            err: RefCell::new(None),
        };
        match (GraphSeed { ctx: &ctx }).deserialize(d) {
            Ok(g) => Ok(g),
            Err(e) => Err(match ctx.err.into_inner() {
                Some(v) => GraphDeError::Invalid(v),
                None => GraphDeError::Syntax(e),
            }),
        }
    }

    /// Validates a graph held as a `serde_json::Value`.
    pub fn from_json(v: &serde_json::Value) -> Result<Graph, Error> {
        match Graph::deserialize_wire(v) {
            Ok(g) => Ok(g),
            Err(GraphDeError::Invalid(e)) => Err(e),
            Err(GraphDeError::Syntax(e)) => Err(Error::Json(e.to_string())),
        }
    }

    /// Appends the wire form `{soul: node, …}`.
    pub fn write_wire(&self, out: &mut String) {
        out.push('{');
        for (i, (soul, node)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            crate::json::write_str(out, soul.as_str());
            out.push(':');
            node.write_wire(out);
        }
        out.push('}');
    }

    /// The wire form as a string.
    pub fn to_wire(&self) -> String {
        let mut s = String::with_capacity(128);
        self.write_wire(&mut s);
        s
    }
}

/// The error of [`Graph::deserialize_wire`]: a syntax error of the underlying
/// deserializer, or a validation error.
#[derive(Debug)]
pub enum GraphDeError<E> {
    /// The input was not well-formed.
    Syntax(E),
    /// The input was well-formed but not a valid graph.
    Invalid(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_captured_put() {
        let text = r##"{"ciqy8-alice":{"_":{"#":"ciqy8-alice",">":{"born":1795643444566,"name":1795643444566,"pet":1795643444566}},"born":1990,"name":"Alice","pet":{"#":"ciqy8-alice/pet"}},"ciqy8-alice/pet":{"_":{">":{"kind":1795643444566,"name":1795643444566},"#":"ciqy8-alice/pet"},"kind":"cat","name":"Tom"}}"##;
        let g = Graph::from_wire(text).unwrap_or_default();
        assert_eq!(g.len(), 2);
        let alice = g.get("ciqy8-alice");
        assert_eq!(
            alice.and_then(|n| n.value("name")),
            Some(&Value::from("Alice"))
        );
        assert_eq!(
            alice
                .and_then(|n| n.value("pet"))
                .and_then(Value::as_link)
                .map(Soul::as_str),
            Some("ciqy8-alice/pet")
        );
        assert_eq!(
            alice.and_then(|n| n.state("born")).map(State::as_f64),
            Some(1795643444566.0)
        );
        // Round trip through our own emitter.
        assert_eq!(Graph::from_wire(&g.to_wire()), Ok(g));
    }

    #[test]
    fn validation_errors_name_soul_and_key() {
        let e = |t: &str| Graph::from_wire(t).err();
        assert_eq!(e(r#"{"a":5}"#), Some(Error::NoNode { soul: "a".into() }));
        assert_eq!(
            e(r#"{"a":{"x":1}}"#),
            Some(Error::NoMeta { soul: "a".into() })
        );
        assert_eq!(
            e(r##"{"a":{"_":{"#":"b",">":{}}}}"##),
            Some(Error::SoulMismatch {
                soul: "a".into(),
                found: Some("b".into())
            })
        );
        assert_eq!(
            e(r##"{"a":{"_":{"#":"a"}}}"##),
            Some(Error::NoStates { soul: "a".into() })
        );
        assert_eq!(
            e(r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":1,"y":2}}"##),
            Some(Error::NoState {
                soul: "a".into(),
                key: "y".into()
            })
        );
        assert_eq!(
            e(r##"{"a":{"_":{"#":"a",">":{"x":"17"}},"x":1}}"##),
            Some(Error::InvalidState {
                soul: "a".into(),
                key: "x".into()
            })
        );
        for (v, reason) in [
            ("[1]", InvalidValue::Array),
            (r#"{"y":1}"#, InvalidValue::Object),
            (r##"{"#":""}"##, InvalidValue::EmptyLink),
            (r##"{"#":"s","y":1}"##, InvalidValue::Object),
            (r##"{"#":5}"##, InvalidValue::Object),
        ] {
            let t = format!(r##"{{"a":{{"_":{{"#":"a",">":{{"x":1}}}},"x":{v}}}}}"##);
            assert_eq!(
                e(&t),
                Some(Error::InvalidValue {
                    soul: "a".into(),
                    key: "x".into(),
                    reason
                }),
                "{t}"
            );
        }
        assert!(matches!(e("[1]"), Some(Error::NotAGraph)));
        assert!(matches!(e("{"), Some(Error::Json(_))));
        assert!(matches!(e(r#"{"":{}}"#), Some(Error::EmptySoul)));
    }

    #[test]
    fn meta_after_values_and_duplicates() {
        let g = Graph::from_wire(r##"{"a":{"x":1,"x":2,"_":{">":{"x":5,"x":6},"#":"a"}}}"##)
            .unwrap_or_default();
        let n = g.get("a");
        assert_eq!(n.and_then(|n| n.value("x")), Some(&Value::Number(2.0)));
        assert_eq!(n.and_then(|n| n.state("x")).map(State::as_f64), Some(6.0));
    }

    #[test]
    fn states_in_another_order_than_values() {
        let g = Graph::from_wire(
            r##"{"a":{"x":1,"y":2,"x":3,"_":{"#":"a",">":{"y":7,"x":5,"x":6}}}}"##,
        )
        .unwrap_or_default();
        let n = g.get("a");
        assert_eq!(n.and_then(|n| n.value("x")), Some(&Value::Number(3.0)));
        assert_eq!(n.and_then(|n| n.state("x")).map(State::as_f64), Some(6.0));
        assert_eq!(n.and_then(|n| n.value("y")), Some(&Value::Number(2.0)));
        assert_eq!(n.and_then(|n| n.state("y")).map(State::as_f64), Some(7.0));
        // Same keys, same count, but one missing state: refused.
        assert!(matches!(
            Graph::from_wire(r##"{"a":{"x":1,"y":2,"_":{"#":"a",">":{"x":5,"x":6}}}}"##),
            Err(Error::NoState { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Graph::from_wire(&deep).is_err());
        let deep_val = format!(
            r##"{{"a":{{"_":{{"#":"a",">":{{"x":1}}}},"x":{}{}}}}}"##,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(Graph::from_wire(&deep_val).is_err());
    }

    #[test]
    fn bytes_parse_as_text_does_and_bad_utf8_is_an_error() {
        let text = r##"{"a":{"_":{"#":"a",">":{"x":1}},"x":"été"}}"##;
        assert_eq!(
            Graph::from_wire_bytes(text.as_bytes()),
            Graph::from_wire(text)
        );
        let mut bad = text.as_bytes().to_vec();
        let at = bad.len() - 5;
        bad[at] = 0xFF;
        let Err(err) = Graph::from_wire_bytes(&bad) else {
            panic!("bad UTF-8 parsed");
        };
        assert!(
            err.to_string().contains("invalid unicode code point"),
            "{err}"
        );
    }
}
