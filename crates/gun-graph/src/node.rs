use std::sync::Arc;

use gun_ham::{Decision, State, decide};

use crate::Error;
use crate::entries::{Entries, Iter};
use crate::json;
use crate::value::{Soul, Value};

/// A key's state and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When the value was written (HAM state).
    pub state: State,
    /// The value.
    pub value: Value,
}

/// A node: a soul and its keys, each with a state and a value.
///
/// On the wire: `{"_": {"#": soul, ">": {key: state}}, key: value}`. Keys are kept
/// sorted (by UTF-8 bytes), the order Gun.js relays emit them in.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    soul: Soul,
    entries: Entries,
}

impl Node {
    /// An empty node.
    pub fn new(soul: Soul) -> Node {
        Node {
            soul,
            entries: Entries::default(),
        }
    }

    /// A node of these entries, in any order; of repeated keys the last is kept.
    pub(crate) fn from_entries(soul: Soul, entries: Vec<(Arc<str>, Entry)>) -> Node {
        Node {
            soul,
            entries: Entries::from_unsorted(entries),
        }
    }

    /// The node's soul.
    pub fn soul(&self) -> &Soul {
        &self.soul
    }

    /// The state and value of `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The value of `key`.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.entries.get(key).map(|e| &e.value)
    }

    /// The state of `key`.
    pub fn state(&self, key: &str) -> Option<State> {
        self.entries.get(key).map(|e| e.state)
    }

    /// Sets `key` without HAM (for building data; use [`Node::merge_key`] to merge).
    /// Returns the previous entry. The key `_` is reserved.
    pub fn insert(
        &mut self,
        key: impl Into<Arc<str>>,
        state: State,
        value: Value,
    ) -> Result<Option<Entry>, Error> {
        let key = key.into();
        if &*key == "_" {
            return Err(Error::ReservedKey);
        }
        Ok(self.entries.insert(key, Entry { state, value }))
    }

    /// Removes `key` (no tombstone: for caches and tests; Gun deletes by writing `null`).
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        self.entries.remove(key)
    }

    /// Merges one key through HAM at machine state `machine`, applying it if accepted.
    pub fn merge_key(
        &mut self,
        key: &Arc<str>,
        state: State,
        value: &Value,
        machine: State,
    ) -> Decision {
        match self.entries.get_mut(key) {
            Some(cur) => {
                let d = decide(machine, state, value, Some((cur.state, &cur.value)));
                if d.is_accept() {
                    cur.state = state;
                    cur.value = value.clone();
                }
                d
            }
            None => {
                let d = decide(machine, state, value, None);
                if d.is_accept() && &**key != "_" {
                    self.entries.insert(
                        key.clone(),
                        Entry {
                            state,
                            value: value.clone(),
                        },
                    );
                }
                d
            }
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the node has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys with their entries, in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Arc<str>, &Entry)> + '_ {
        self.entries.iter()
    }

    /// Keys in key order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| &**k)
    }

    /// Entries whose keys are within `bounds`, in key order.
    pub(crate) fn range(&self, bounds: (std::ops::Bound<&str>, std::ops::Bound<&str>)) -> Iter<'_> {
        self.entries.range(bounds)
    }

    /// The stored key and entry of `key`.
    pub(crate) fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &Entry)> {
        self.entries.get_key_value(key)
    }

    /// A node with only the listed keys that exist here.
    pub fn select<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Node {
        let mut n = Node::new(self.soul.clone());
        for k in keys {
            if let Some((key, e)) = self.entries.get_key_value(k) {
                n.entries.insert(key.clone(), e.clone());
            }
        }
        n
    }

    /// Appends the wire form: `{"_":{"#":soul,">":{k:state,…}},k:value,…}`.
    pub fn write_wire(&self, out: &mut String) {
        out.push_str("{\"_\":{\"#\":");
        json::write_str(out, self.soul.as_str());
        out.push_str(",\">\":{");
        for (i, (k, e)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_str(out, k);
            out.push(':');
            json::write_number(out, e.state.as_f64());
        }
        out.push_str("}}");
        for (k, e) in self.entries.iter() {
            out.push(',');
            json::write_str(out, k);
            out.push(':');
            e.value.write_json(out);
        }
        out.push('}');
    }

    /// The wire form as a string.
    pub fn to_wire(&self) -> String {
        let mut s = String::with_capacity(64 + self.entries.len() * 48);
        self.write_wire(&mut s);
        s
    }

    /// The node as JSON data without the meta: `{key: value}` (links as `{"#": soul}`).
    pub fn to_data(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, e) in self.entries.iter() {
            m.insert(k.to_string(), e.value.to_json());
        }
        serde_json::Value::Object(m)
    }

    /// Approximate heap bytes held by this node (keys, strings, entries), for
    /// budgets and statistics.
    pub fn approx_bytes(&self) -> usize {
        let mut n = self.soul.as_str().len() + 48;
        for (k, e) in self.entries.iter() {
            n += k.len() + size_of::<Entry>() + 32;
            if let Value::String(s) = &e.value {
                n += s.len();
            }
        }
        n
    }
}
