//! JSON data ↔ graph: how a `put` of nested JSON becomes linked nodes (§9.1), and
//! how nodes become JSON for callbacks.

use serde_json::{Map, Value as Json};

use gun_graph::{Graph, Node, Soul, State, Value};

use crate::{Engine, Error};

/// Turns a JSON leaf into a Gun value; objects other than links and arrays are
/// not leaves. `path` names the place for the error text, as Gun.js does
/// ("Invalid data: Array at x.y").
pub(crate) fn leaf(v: &Json, path: &str) -> Result<Option<Value>, Error> {
    Ok(Some(match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Value::Number(f),
            _ => return Err(Error::InvalidData(format!("Number at {path}"))),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(_) => return Err(Error::InvalidData(format!("Array at {path}"))),
        Json::Object(m) => match link_of(m) {
            Some(soul) => Value::Link(soul),
            None => return Ok(None),
        },
    }))
}

/// `{"#": "soul"}` and nothing else: a link.
pub(crate) fn link_of(m: &Map<String, Json>) -> Option<Soul> {
    if m.len() != 1 {
        return None;
    }
    match m.get("#") {
        Some(Json::String(s)) => Soul::new(s.as_str()).ok(),
        _ => None,
    }
}

/// The soul an object names for itself in `_["#"]`.
fn own_soul(m: &Map<String, Json>) -> Option<Soul> {
    match m.get("_")?.get("#")? {
        Json::String(s) => Soul::new(s.as_str()).ok(),
        _ => None,
    }
}

/// Adds the keys of `data` to `graph` under `soul`, nested objects becoming
/// child nodes: the soul the object names in `_`, else the soul already linked
/// at that key (in the cache or store), else `soul/key`.
pub(crate) async fn build(
    engine: &Engine,
    graph: &mut Graph,
    soul: Soul,
    data: &Map<String, Json>,
    state: State,
    path: &str,
) -> Result<(), Error> {
    let mut stack: Vec<(Soul, &Map<String, Json>, String)> = vec![(soul, data, path.to_string())];
    while let Some((soul, obj, path)) = stack.pop() {
        // The current links matter only when there are nested objects.
        let nested = obj
            .values()
            .any(|v| matches!(v, Json::Object(m) if link_of(m).is_none()));
        let existing: Option<Node> = if nested {
            engine.read_node(&soul, None, None).await?
        } else {
            None
        };
        // An object with no keys still makes its node exist (with no keys).
        graph.node_mut(&soul);
        for (k, v) in obj {
            if k == "_" {
                continue;
            }
            if k.is_empty() {
                return Err(Error::EmptyKey);
            }
            let here = format!("{path}.{k}");
            match leaf(v, &here)? {
                Some(value) => graph.put(soul.clone(), engine.intern(k), state, value)?,
                None => {
                    let Json::Object(child) = v else {
                        continue;
                    };
                    let linked = existing
                        .as_ref()
                        .and_then(|n| n.value(k))
                        .and_then(Value::as_link)
                        .cloned();
                    let child_soul = match own_soul(child).or(linked) {
                        Some(s) => s,
                        None => Soul::new(format!("{soul}/{k}"))?,
                    };
                    graph.put(
                        soul.clone(),
                        engine.intern(k),
                        state,
                        Value::Link(child_soul.clone()),
                    )?;
                    stack.push((child_soul, child, here));
                }
            }
        }
    }
    // Drop nodes that ended up with no keys at all (an empty object): Gun.js
    // writes them as nodes with no keys, which store nothing.
    let empty: Vec<Soul> = graph
        .iter()
        .filter(|(_, n)| n.is_empty())
        .map(|(s, _)| s.clone())
        .collect();
    for s in empty {
        graph.remove(s.as_str());
    }
    Ok(())
}

/// A node as JSON data for callbacks: `{key: value}`, links as `{"#": soul}`,
/// without the `_` meta.
pub(crate) fn node_json(node: &Node) -> Json {
    node.to_data()
}
